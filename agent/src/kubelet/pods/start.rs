//! Starting one container, kubelet's `startContainer`: pull the image,
//! resolve the environment and mounts, create the container with the
//! next restart count, start it, run its postStart hook; every failure
//! becomes the container's waiting reason and a `Failed` event. Older
//! dead instances beyond the previous one are removed afterwards.

use std::time::Duration;

use k8s_openapi::api::core::v1::Container;

use super::containers::{ContainerInputs, container_config, termination_message_file};
use super::env::{EnvContext, container_env};
use super::events::{container_ref, reason};
use super::fieldpath::PodAddresses;
use super::probes::handlers::{Target, hook};
use super::resources::qos_class;
use super::security::verify_run_as_non_root;
use super::status::Waiting;
use super::sync::Sandbox;
use super::worker::{Next, PodWorker, RESYNC};

/// How long a postStart hook may take.
const POST_START_TIMEOUT: Duration = Duration::from_secs(120);
/// How soon a container that failed to start is tried again.
const START_RETRY: Duration = Duration::from_secs(5);

impl PodWorker {
    /// The grace period for stopping `c`: the pod's
    /// `terminationGracePeriodSeconds` (30 s by default).
    pub fn grace_period(&self, _c: &Container) -> i64 {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
    }

    fn fail(&mut self, c: &Container, waiting: Waiting, event: Option<String>) -> Next {
        if let Some(message) = event {
            self.ctx.events.warning(
                &container_ref(&self.pod, &c.name),
                reason::FAILED,
                format!("Error: {message}"),
            );
        }
        self.waiting.insert(c.name.clone(), waiting);
        Next::after(START_RETRY)
    }

    /// Starts container `c` in `sandbox`.
    pub async fn start(&mut self, c: &Container, sandbox: &Sandbox) -> Next {
        let ctx = self.ctx.clone();
        let object = container_ref(&self.pod, &c.name);
        let image_ref = match ctx
            .images
            .ensure(&self.pod, c, &sandbox.config, &sandbox.handler)
            .await
        {
            Ok(image_ref) => image_ref,
            Err(waiting) => {
                let event = waiting.reason.clone();
                let retry = if waiting.reason == "ImagePullBackOff" {
                    Next::after(START_RETRY * 2)
                } else {
                    Next::after(START_RETRY)
                };
                self.fail(c, waiting, Some(event));
                return retry;
            }
        };
        let addresses = PodAddresses {
            host_ip: ctx.kubelet.config.node_ip.to_string(),
            pod_ips: if sandbox.ip.is_empty() {
                Vec::new()
            } else {
                vec![sandbox.ip.clone()]
            },
        };
        let env_ctx = EnvContext {
            client: ctx.client(),
            addresses: &addresses,
            node: &ctx.capacity,
        };
        let env = match container_env(env_ctx, &self.pod, c).await {
            Ok(env) => env,
            Err(message) => {
                return self.fail(
                    c,
                    Waiting::new("CreateContainerConfigError", message.clone()),
                    Some(message),
                );
            }
        };
        for warning in &env.warnings {
            ctx.events
                .warning(&object, "InvalidEnvironmentVariableNames", warning.clone());
        }
        if let Err(message) = self.check_non_root(c, &image_ref).await {
            return self.fail(
                c,
                Waiting::new("CreateContainerConfigError", message.clone()),
                Some(message),
            );
        }
        let mounts = match self.volumes.container_mounts(c, &env.vars) {
            Ok(mounts) => mounts,
            Err(message) => {
                return self.fail(
                    c,
                    Waiting::new("CreateContainerConfigError", message.clone()),
                    Some(message),
                );
            }
        };
        let termination_file = termination_message_file(self.volumes.dir(), &c.name)
            .map_err(|err| tracing::warn!(pod = %self.key(), error = %err, "creating the termination-log file"))
            .ok();
        let restart_count = self.restart_counts.get(&c.name).map_or(0, |n| n + 1);
        let config = container_config(ContainerInputs {
            pod: &self.pod,
            container: c,
            restart_count,
            image_ref: &image_ref,
            env: &env.vars,
            mounts,
            termination_file: termination_file.as_deref(),
            qos: qos_class(&self.pod),
            memory_capacity: ctx.capacity.memory_bytes,
            root_dir: ctx.root_dir(),
        });
        let id = match ctx
            .cri
            .create_container(&sandbox.id, config, sandbox.config.clone())
            .await
        {
            Ok(id) => id,
            Err(status) => {
                let message = status.message().to_owned();
                return self.fail(
                    c,
                    Waiting::new("CreateContainerError", message.clone()),
                    Some(message),
                );
            }
        };
        self.restart_counts.insert(c.name.clone(), restart_count);
        ctx.events.normal(
            &object,
            reason::CREATED,
            format!("Created container {}", c.name),
        );
        if let Err(status) = ctx.cri.start_container(&id).await {
            let message = status.message().to_owned();
            return self.fail(
                c,
                Waiting::new("RunContainerError", message.clone()),
                Some(message),
            );
        }
        ctx.events.normal(
            &object,
            reason::STARTED,
            format!("Started container {}", c.name),
        );
        self.waiting.remove(&c.name);
        tracing::info!(pod = %self.key(), container = %c.name, id = %id, restart_count, "container started");
        if let Some(post_start) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let target = Target {
                cri: &ctx.cri,
                container: c,
                container_id: &id,
                pod_ip: &sandbox.ip,
            };
            if let Err(message) = hook(target, post_start, POST_START_TIMEOUT).await {
                tracing::warn!(pod = %self.key(), container = %c.name, %message, "postStart hook failed");
                ctx.events.warning(
                    &object,
                    reason::FAILED_POST_START_HOOK,
                    "PostStartHook failed",
                );
                let _ = ctx.cri.stop_container(&id, self.grace_period(c)).await;
                self.waiting
                    .insert(c.name.clone(), Waiting::new("PostStartHookError", message));
            }
        }
        self.remove_old_instances(&c.name).await;
        Next::after(RESYNC)
    }

    async fn check_non_root(&self, c: &Container, image_ref: &str) -> Result<(), String> {
        let wants = |sc: Option<bool>| sc.unwrap_or(false);
        let pod_wants = wants(
            self.pod
                .spec
                .as_ref()
                .and_then(|s| s.security_context.as_ref())
                .and_then(|sc| sc.run_as_non_root),
        );
        let container_wants = c
            .security_context
            .as_ref()
            .and_then(|sc| sc.run_as_non_root);
        if !container_wants.unwrap_or(pod_wants) {
            return Ok(());
        }
        let image = self
            .ctx
            .cri
            .image_status(k8s_cri::v1::ImageSpec {
                image: image_ref.to_owned(),
                ..Default::default()
            })
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        verify_run_as_non_root(&self.pod, c, image.uid.map(|u| u.value), &image.username)
    }

    /// Removes dead instances of container `name` but the newest two (the
    /// current and the previous one, for `lastState` and `logs --previous`).
    async fn remove_old_instances(&mut self, name: &str) {
        let Some(snapshot) = self.snapshot().await else {
            return;
        };
        let old: Vec<String> = snapshot
            .instances(name)
            .skip(2)
            .filter(|c| !c.running())
            .map(|c| c.id().to_owned())
            .collect();
        for id in old {
            if let Err(status) = self.ctx.cri.remove_container(&id).await {
                tracing::debug!(container = %id, error = %status, "removing an old container");
            }
        }
    }
}
