//! What several controllers need: the controller owner reference they
//! stamp on what they create, finding an object's controller or selectors
//! in a cache, pod readiness as upstream reads it, and an event recorder
//! named as the upstream controller.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kube::core::{Selector, SelectorExt};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};

/// The ownerReference a controller puts on what it creates for `owner`
/// (`controller: true`, `blockOwnerDeletion: true`), or None when the
/// owner has no name or uid yet.
pub fn controller_ref<K>(owner: &K) -> Option<OwnerReference>
where
    K: Resource<DynamicType = ()>,
{
    let meta = owner.meta();
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The owner reference of `meta` marked `controller: true`, if any.
pub fn controller_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|owner| owner.controller == Some(true))
}

/// The `K` in `cache` that `meta`'s controller reference names: same
/// kind and API group, same namespace, and still the same uid.
pub fn cached_controller<K>(cache: &Store<K>, meta: &ObjectMeta) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    let owner = controller_of(meta)?;
    let group = K::group(&());
    let same_group = if group.is_empty() {
        !owner.api_version.contains('/')
    } else {
        owner
            .api_version
            .strip_prefix(group.as_ref())
            .is_some_and(|rest| rest.starts_with('/'))
    };
    if owner.kind != K::kind(&()) || !same_group {
        return None;
    }
    let key = ObjectRef::new(&owner.name).within(meta.namespace.as_deref()?);
    cache
        .get(&key)
        .filter(|found| found.meta().uid.as_deref() == Some(owner.uid.as_str()))
}

/// The `K`s in `cache` of `meta`'s namespace whose non-empty selector
/// (read by `selector_of`) matches `meta`'s labels: who may adopt it.
pub fn cached_selecting<K>(
    cache: &Store<K>,
    meta: &ObjectMeta,
    selector_of: impl Fn(&K) -> Option<Selector>,
) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    let empty = std::collections::BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    cache.state_filter(|candidate| {
        candidate.meta().namespace == meta.namespace
            && selector_of(candidate).is_some_and(|s| !s.selects_all() && s.matches(labels))
    })
}

/// Whether the pod's Ready condition is True.
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// Since when the pod's Ready condition has been True, if it is.
pub fn pod_ready_since(pod: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// Whether the pod still counts toward its controller's replicas: not
/// Succeeded, not Failed, not being deleted (upstream's `IsPodActive`).
pub fn pod_is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// Records events as the upstream controller named `controller`
/// (`deployment-controller`, `replicaset-controller`, ...).
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    /// A recorder reporting as `controller`.
    pub fn new(client: kube::Client, controller: &str) -> Self {
        let reporter = Reporter {
            controller: controller.to_owned(),
            instance: None,
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Records a Normal event on `object`; failures are logged, never fatal.
    pub async fn normal(&self, object: &ObjectReference, reason: &str, note: String) {
        self.publish(object, EventType::Normal, reason, note).await;
    }

    /// Records a Warning event on `object`; failures are logged, never fatal.
    pub async fn warning(&self, object: &ObjectReference, reason: &str, note: String) {
        self.publish(object, EventType::Warning, reason, note).await;
    }

    async fn publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        // kube-rs's recorder folds events with the same object, reason and
        // action into one series; upstream keeps events whose messages
        // differ ("Created pod: a", "Created pod: b") apart, so the action
        // carries the message (cut to the API's 128 bytes).
        let event = Event {
            type_,
            reason: reason.to_owned(),
            action: truncate(&note, 128).to_owned(),
            note: Some(note),
            secondary: None,
        };
        if let Err(err) = self.recorder.publish(&event, object).await {
            tracing::debug!(%err, reason, "recording an event");
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
