//! Stopping containers and terminating pods as kubelet does: a `Killing`
//! event, the preStop hook, then StopContainer with what is left of the
//! grace period (at least 2 s); for a deleted pod, every container at
//! once, then the sandbox, a final status, the sandbox's removal, the
//! pod's volumes, logs and cgroup, and the final DELETE (grace 0) that
//! lets the apiserver drop the pod object.

use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use kube::api::{DeleteParams, Preconditions};

use super::events::{container_ref, reason};
use super::probes::handlers::{Target, hook};
use super::resources::{cgroup_parent, qos_class};
use super::sandbox::log_directory;
use super::snapshot::ContainerInfo;
use super::sync::all_containers;
use super::volumes;
use super::worker::{Next, PodWorker};

/// kubelet's smallest grace period for stopping a container.
const MIN_GRACE_SECONDS: i64 = 2;
/// How soon a termination that failed midway is tried again.
const RETRY: Duration = Duration::from_secs(2);

impl PodWorker {
    /// Stops one container: event, preStop hook, StopContainer.
    pub async fn kill_container(
        &self,
        c: &Container,
        info: &ContainerInfo,
        message: &str,
        grace_seconds: i64,
    ) {
        let ctx = &self.ctx;
        let object = container_ref(&self.pod, &c.name);
        let text = if message.is_empty() {
            format!("Stopping container {}", c.name)
        } else {
            message.to_owned()
        };
        ctx.events.normal(&object, reason::KILLING, text);
        let started = Instant::now();
        let grace = Duration::from_secs(u64::try_from(grace_seconds.max(0)).unwrap_or(0));
        if let Some(pre_stop) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
            let pod_ip = self
                .status
                .last()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default();
            let target = Target {
                cri: &ctx.cri,
                container: c,
                container_id: info.id(),
                pod_ip: &pod_ip,
            };
            if let Err(message) = hook(target, pre_stop, grace).await {
                tracing::warn!(pod = %self.key(), container = %c.name, %message, "preStop hook failed");
                ctx.events
                    .warning(&object, reason::FAILED_PRE_STOP_HOOK, "PreStopHook failed");
            }
        }
        let left = grace.saturating_sub(started.elapsed()).as_secs();
        let timeout = i64::try_from(left).unwrap_or(0).max(MIN_GRACE_SECONDS);
        if let Err(status) = ctx.cri.stop_container(info.id(), timeout).await {
            tracing::warn!(pod = %self.key(), container = %c.name, error = %status, "stopping a container");
        }
    }

    /// The grace period of a deletion: the pod's
    /// `deletionGracePeriodSeconds`, else its spec's.
    fn deletion_grace(&self) -> i64 {
        self.pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
    }

    /// Terminates the pod; `Done` once it is gone from the runtime, the
    /// node and the API.
    pub async fn terminate(&mut self) -> Next {
        let now = Instant::now();
        let grace = self.deletion_grace();
        let deadline = *self.kill_deadline.get_or_insert_with(|| {
            now + Duration::from_secs(u64::try_from(grace.max(0)).unwrap_or(0))
        });
        let Some(snapshot) = self.snapshot().await else {
            return Next::after(RETRY);
        };
        self.probes.stop_all();
        let left = i64::try_from(deadline.saturating_duration_since(now).as_secs()).unwrap_or(0);
        let running: Vec<(Container, ContainerInfo)> = snapshot
            .containers
            .iter()
            .filter(|info| info.running())
            .filter_map(|info| {
                all_containers(&self.pod)
                    .find(|c| c.name == info.name)
                    .map(|c| (c.clone(), info.clone()))
            })
            .collect();
        if !running.is_empty() {
            tracing::info!(pod = %self.key(), containers = running.len(), grace = left, "stopping the pod's containers");
        }
        let this = &*self;
        join_all(
            running
                .iter()
                .map(|(c, info)| this.kill_container(c, info, "", left)),
        )
        .await;
        for sandbox in snapshot.sandboxes.iter().filter(|s| s.ready) {
            if let Err(status) = self.ctx.cri.stop_pod_sandbox(&sandbox.id).await {
                tracing::warn!(pod = %self.key(), error = %status, "stopping the sandbox");
                return Next::after(RETRY);
            }
        }
        if !self.gone {
            self.write_status(true).await;
        }
        for sandbox in &snapshot.sandboxes {
            if let Err(status) = self.ctx.cri.remove_pod_sandbox(&sandbox.id).await {
                tracing::warn!(pod = %self.key(), error = %status, "removing the sandbox");
                return Next::after(RETRY);
            }
        }
        cleanup_pod_files(&self.ctx, &self.pod);
        if self.gone {
            return Next::Done;
        }
        match delete_pod(self.ctx.client(), &self.pod).await {
            Ok(()) => {
                tracing::info!(pod = %self.key(), "pod terminated and deleted");
                Next::Done
            }
            Err(err) => {
                tracing::warn!(pod = %self.key(), error = %err, "deleting the terminated pod");
                Next::after(RETRY)
            }
        }
    }
}

/// Removes what a pod left on the node: volumes (unmounted first), its
/// log directory and its cgroup.
pub fn cleanup_pod_files(ctx: &super::context::NodeContext, pod: &Pod) {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    if uid.is_empty() {
        return;
    }
    if let Err(message) = volumes::teardown(&volumes::pod_dir(ctx.root_dir(), uid)) {
        tracing::warn!(pod = uid, %message, "removing the pod's volumes");
    }
    let logs = log_directory(&ctx.options.pod_logs_dir, pod);
    if let Err(err) = std::fs::remove_dir_all(&logs)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %logs.display(), error = %err, "removing the pod's logs");
    }
    remove_pod_cgroup(&cgroup_parent(
        &ctx.options.cgroup_root,
        qos_class(pod),
        uid,
    ));
}

/// Removes a pod's cgroup (its containers' are gone with them).
pub fn remove_pod_cgroup(path: &str) {
    if let Err(err) = skiff_runtime::cgroups::remove(path) {
        tracing::debug!(cgroup = path, error = %err, "removing the pod cgroup");
    }
}

/// The final DELETE: grace 0, only this pod (UID precondition).
async fn delete_pod(client: &kube::Client, pod: &Pod) -> Result<(), kube::Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(err) => Err(err),
    }
}
