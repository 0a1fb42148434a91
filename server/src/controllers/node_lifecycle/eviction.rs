//! Taint-based eviction (upstream's `taint-eviction-controller`): a pod on
//! a node with NoExecute taints it does not tolerate is deleted at once; one
//! tolerating them all for a while (`tolerationSeconds`, 300 s for
//! `not-ready`/`unreachable` by the DefaultTolerationSeconds admission) is
//! deleted when the shortest of those times has passed since the taints
//! were first seen on its node, unless they go first. Deleted pods get a
//! `DisruptionTarget` condition first, as upstream sets it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::applier;
use kube::runtime::controller::{Action, Config as ControllerConfig, ReconcileRequest};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use super::taints::{taints_of, tolerates};
use crate::controllers::common::Events;
use crate::controllers::queue::{ErrorBackoff, object_key};

/// What to do with a pod on a tainted node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Nothing pending: no NoExecute taints, or tolerated forever.
    Keep,
    /// Delete at `at`; the clock started at `since`.
    EvictAt {
        /// When the taints were first seen for this pod.
        since: Timestamp,
        /// When the pod goes.
        at: Timestamp,
    },
    /// Delete now.
    EvictNow,
}

/// Upstream's `processPodOnNode`: the decision for a pod with
/// `tolerations` on a node with NoExecute `taints`, given when an eviction
/// was first scheduled (`since`).
pub(super) fn decide(
    tolerations: &[Toleration],
    taints: &[Taint],
    since: Option<Timestamp>,
    now: Timestamp,
) -> Decision {
    if taints.is_empty() {
        return Decision::Keep;
    }
    let mut used = Vec::new();
    for taint in taints {
        match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(toleration) => used.push(toleration),
            None => return Decision::EvictNow,
        }
    }
    // The shortest toleration time; tolerations without one do not count,
    // and if none has one the pod stays forever.
    let Some(seconds) = used.iter().filter_map(|t| t.toleration_seconds).min() else {
        return Decision::Keep;
    };
    let since = since.unwrap_or(now);
    let wait = Duration::from_secs(u64::try_from(seconds.max(0)).unwrap_or(0));
    match since.checked_add(wait) {
        Ok(at) if at > now => Decision::EvictAt { since, at },
        _ => Decision::EvictNow,
    }
}

/// The eviction loop's state.
pub(super) struct Context {
    client: kube::Client,
    nodes: Store<Node>,
    /// When the eviction of each pod (namespace, name, uid) was scheduled.
    scheduled: Mutex<HashMap<(String, String, String), Timestamp>>,
    backoff: ErrorBackoff,
    events: Events,
}

impl Context {
    /// The eviction loop over the node cache.
    pub(super) fn new(client: kube::Client, nodes: Store<Node>) -> Self {
        Self {
            events: Events::new(client.clone(), "taint-eviction-controller"),
            client,
            nodes,
            scheduled: Mutex::default(),
            backoff: ErrorBackoff::default(),
        }
    }

    /// Forgets a deleted pod.
    pub(super) fn forget(&self, pod: &Pod) {
        self.lock().remove(&pod_key(pod));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String, String), Timestamp>> {
        self.scheduled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What failed while evicting a pod.
#[derive(Debug, thiserror::Error)]
pub enum EvictionError {
    /// Marking or deleting the pod failed.
    #[error("evicting pod {pod}: {source}")]
    Api {
        /// `namespace/name`.
        pod: String,
        /// The client's error.
        source: kube::Error,
    },
}

/// Runs taint-based eviction over the `pods` cache, reconciling the pods
/// `requests` name, until the requests end.
pub(super) async fn run(
    ctx: Arc<Context>,
    pods: Store<Pod>,
    requests: impl futures::Stream<Item = Result<ReconcileRequest<Pod>, kube::runtime::watcher::Error>>
    + Send
    + 'static,
) {
    applier(
        |pod, ctx| Box::pin(reconcile(pod, ctx)),
        error_policy,
        ctx,
        pods,
        requests,
        ControllerConfig::default(),
    )
    .for_each(|result| async move {
        match result {
            Ok(_) | Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
            Err(err) => tracing::debug!(%err, "taint eviction"),
        }
    })
    .await;
}

fn error_policy(pod: Arc<Pod>, err: &EvictionError, ctx: Arc<Context>) -> Action {
    let key = object_key(&pod.metadata);
    tracing::warn!(pod = %key, %err, "taint eviction");
    Action::requeue(ctx.backoff.next_delay(&key))
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Context>) -> Result<Action, EvictionError> {
    let key = pod_key(&pod);
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default();
    if node_name.is_empty() || pod.metadata.deletion_timestamp.is_some() {
        ctx.lock().remove(&key);
        return Ok(Action::await_change());
    }
    if ctx.nodes.wait_until_ready().await.is_err() {
        return Ok(Action::await_change());
    }
    let taints: Vec<Taint> = ctx
        .nodes
        .get(&ObjectRef::new(node_name))
        .map(|node| {
            taints_of(&node)
                .iter()
                .filter(|t| t.effect == "NoExecute")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let now = Timestamp::now();
    let since = ctx.lock().get(&key).copied();
    match decide(tolerations, &taints, since, now) {
        Decision::Keep => {
            if ctx.lock().remove(&key).is_some() {
                let note = format!("Cancelling deletion of Pod {}/{}", key.0, key.1);
                ctx.events
                    .normal(&pod_reference(&pod), "TaintManagerEviction", note)
                    .await;
            }
            Ok(Action::await_change())
        }
        Decision::EvictAt { since, at } => {
            ctx.lock().insert(key, since);
            let wait = at.duration_since(now).unsigned_abs();
            Ok(Action::requeue(wait.max(Duration::from_millis(10))))
        }
        Decision::EvictNow => {
            evict(&pod, &ctx).await?;
            ctx.lock().remove(&key);
            ctx.backoff.reset(&object_key(&pod.metadata));
            Ok(Action::await_change())
        }
    }
}

/// Marks the pod as disrupted and deletes it.
async fn evict(pod: &Pod, ctx: &Context) -> Result<(), EvictionError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let note = format!("Marking for deletion Pod {namespace}/{name}");
    ctx.events
        .normal(&pod_reference(pod), "TaintManagerEviction", note)
        .await;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let failed = |source| EvictionError::Api {
        pod: format!("{namespace}/{name}"),
        source,
    };
    let marked = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "DisruptionTarget" && c.status == "True");
    if !marked {
        let patch = json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": Time(Timestamp::now()),
        }]}});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(err) => return Err(failed(err)),
        }
    }
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(failed(err)),
    }
}

fn pod_key(pod: &Pod) -> (String, String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::node_lifecycle::taints::{NOT_READY, UNREACHABLE, taint};

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: seconds,
            ..Default::default()
        }
    }

    #[test]
    fn no_taints_keep_the_pod() {
        assert_eq!(decide(&[], &[], None, at(0)), Decision::Keep);
    }

    #[test]
    fn an_untolerated_taint_evicts_at_once() {
        let taints = [taint(UNREACHABLE, "NoExecute")];
        assert_eq!(
            decide(&[toleration(NOT_READY, Some(300))], &taints, None, at(0)),
            Decision::EvictNow
        );
    }

    #[test]
    fn tolerated_taints_evict_after_the_shortest_time_from_first_sight() {
        let taints = [
            taint(UNREACHABLE, "NoExecute"),
            taint(NOT_READY, "NoExecute"),
        ];
        let tolerations = [
            toleration(UNREACHABLE, Some(300)),
            toleration(NOT_READY, Some(60)),
        ];
        assert_eq!(
            decide(&tolerations, &taints, None, at(0)),
            Decision::EvictAt {
                since: at(0),
                at: at(60)
            }
        );
        assert_eq!(
            decide(&tolerations, &taints, Some(at(0)), at(30)),
            Decision::EvictAt {
                since: at(0),
                at: at(60)
            }
        );
        assert_eq!(
            decide(&tolerations, &taints, Some(at(0)), at(60)),
            Decision::EvictNow
        );
    }

    #[test]
    fn tolerations_without_a_time_tolerate_forever_unless_another_has_one() {
        let taints = [taint(UNREACHABLE, "NoExecute")];
        assert_eq!(
            decide(&[toleration(UNREACHABLE, None)], &taints, None, at(0)),
            Decision::Keep
        );
        let two = [
            taint(UNREACHABLE, "NoExecute"),
            taint(NOT_READY, "NoExecute"),
        ];
        let mixed = [
            toleration(UNREACHABLE, None),
            toleration(NOT_READY, Some(10)),
        ];
        assert_eq!(
            decide(&mixed, &two, None, at(0)),
            Decision::EvictAt {
                since: at(0),
                at: at(10)
            }
        );
    }

    #[test]
    fn zero_or_negative_times_evict_at_once() {
        let taints = [taint(UNREACHABLE, "NoExecute")];
        assert_eq!(
            decide(&[toleration(UNREACHABLE, Some(0))], &taints, None, at(0)),
            Decision::EvictNow
        );
        assert_eq!(
            decide(&[toleration(UNREACHABLE, Some(-5))], &taints, None, at(0)),
            Decision::EvictNow
        );
    }
}
