//! Events as kubelet records them: core/v1 Events from source
//! `kubelet`/<node>, about the pod or one of its containers
//! (`spec.containers{web}`), with repeats of the same event counted on one
//! object (`BackOff (x5 over 2m)`). Recording never blocks a pod worker:
//! a background task writes them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::status::api_time;

/// Events kubelet records (reasons as upstream's `events` package).
pub mod reason {
    /// An image pull starts.
    pub const PULLING: &str = "Pulling";
    /// An image was pulled or was present.
    pub const PULLED: &str = "Pulled";
    /// A pull or a container start failed.
    pub const FAILED: &str = "Failed";
    /// Back-off (image pull or container restart).
    pub const BACK_OFF: &str = "BackOff";
    /// `imagePullPolicy: Never` and no image.
    pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
    /// The image name does not parse.
    pub const INSPECT_FAILED: &str = "InspectFailed";
    /// A container was created.
    pub const CREATED: &str = "Created";
    /// A container was started.
    pub const STARTED: &str = "Started";
    /// A container is being stopped.
    pub const KILLING: &str = "Killing";
    /// A probe failed.
    pub const UNHEALTHY: &str = "Unhealthy";
    /// A volume could not be set up.
    pub const FAILED_MOUNT: &str = "FailedMount";
    /// The pod network is not ready for a pod that needs it.
    pub const NETWORK_NOT_READY: &str = "NetworkNotReady";
    /// The sandbox could not be created.
    pub const FAILED_CREATE_POD_SANDBOX: &str = "FailedCreatePodSandBox";
    /// The sandbox is gone and will be made again.
    pub const SANDBOX_CHANGED: &str = "SandboxChanged";
    /// A preStop hook failed.
    pub const FAILED_PRE_STOP_HOOK: &str = "FailedPreStopHook";
    /// A postStart hook failed.
    pub const FAILED_POST_START_HOOK: &str = "FailedPostStartHook";
}

/// How long an event may be counted again instead of recorded anew.
const AGGREGATE_WINDOW: Duration = Duration::from_secs(600);
/// Events waiting to be written; more are dropped (and logged).
const QUEUE: usize = 1024;

/// What to record.
#[derive(Debug)]
struct Record {
    object: ObjectReference,
    type_: &'static str,
    reason: &'static str,
    message: String,
}

/// Records events for pods.
#[derive(Debug, Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Record>,
}

impl Recorder {
    /// Starts the writer; it stops with `shutdown`.
    pub fn start(client: kube::Client, node: String, shutdown: CancellationToken) -> Recorder {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_events(client, node, rx, shutdown));
        Recorder { queue }
    }

    /// A Normal event.
    pub fn normal(
        &self,
        object: &ObjectReference,
        reason: &'static str,
        message: impl Into<String>,
    ) {
        self.record(object, "Normal", reason, message.into());
    }

    /// A Warning event.
    pub fn warning(
        &self,
        object: &ObjectReference,
        reason: &'static str,
        message: impl Into<String>,
    ) {
        self.record(object, "Warning", reason, message.into());
    }

    fn record(
        &self,
        object: &ObjectReference,
        type_: &'static str,
        reason: &'static str,
        message: String,
    ) {
        let record = Record {
            object: object.clone(),
            type_,
            reason,
            message,
        };
        if let Err(err) = self.queue.try_send(record) {
            tracing::warn!(error = %err, "dropping an event: the event queue is full");
        }
    }
}

/// A reference to `pod`.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// A reference to container `name` of `pod` (`spec.containers{name}`, or
/// `spec.initContainers{name}`).
pub fn container_ref(pod: &Pod, name: &str) -> ObjectReference {
    let init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|list| list.iter().any(|c| c.name == name));
    let field = if init { "initContainers" } else { "containers" };
    ObjectReference {
        field_path: Some(format!("spec.{field}{{{name}}}")),
        ..pod_ref(pod)
    }
}

/// `name_namespace(uid)`, how kubelet names a pod in messages.
pub fn pod_label(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

#[derive(Debug)]
struct Seen {
    name: String,
    count: i32,
    at: Instant,
}

type Key = (String, String, &'static str, &'static str, String);

async fn write_events(
    client: kube::Client,
    node: String,
    mut rx: mpsc::Receiver<Record>,
    shutdown: CancellationToken,
) {
    let mut seen: HashMap<Key, Seen> = HashMap::new();
    loop {
        let record = tokio::select! {
            () = shutdown.cancelled() => return,
            record = rx.recv() => match record {
                Some(record) => record,
                None => return,
            },
        };
        seen.retain(|_, s| s.at.elapsed() < AGGREGATE_WINDOW);
        let key: Key = (
            record.object.uid.clone().unwrap_or_default(),
            record.object.field_path.clone().unwrap_or_default(),
            record.type_,
            record.reason,
            record.message.clone(),
        );
        let namespace = record
            .object
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let now = api_time(Timestamp::now());
        if let Some(s) = seen.get_mut(&key) {
            s.count += 1;
            s.at = Instant::now();
            let patch = json!({"count": s.count, "lastTimestamp": now});
            match api
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => continue,
                Err(err) => {
                    tracing::debug!(error = %err, event = %s.name, "counting an event; recording it anew");
                    seen.remove(&key);
                }
            }
        }
        let name = format!(
            "{}.{:x}",
            record.object.name.as_deref().unwrap_or("kubelet"),
            Timestamp::now().as_nanosecond()
        );
        let event = Event {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: record.object,
            reason: Some(record.reason.to_owned()),
            message: Some(record.message),
            type_: Some(record.type_.to_owned()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(node.clone()),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(node.clone()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                seen.insert(
                    key,
                    Seen {
                        name,
                        count: 1,
                        at: Instant::now(),
                    },
                );
            }
            Err(err) => tracing::debug!(error = %err, "recording an event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn references_name_the_container_field() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ..Default::default()
                }],
                init_containers: Some(vec![Container {
                    name: "setup".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            container_ref(&pod, "c").field_path.as_deref(),
            Some("spec.containers{c}")
        );
        assert_eq!(
            container_ref(&pod, "setup").field_path.as_deref(),
            Some("spec.initContainers{setup}")
        );
        assert_eq!(pod_ref(&pod).field_path, None);
        assert_eq!(pod_label(&pod), "web_ns(u)");
    }
}
