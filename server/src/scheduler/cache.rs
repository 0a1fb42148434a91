//! What the scheduler knows of the cluster, upstream's informers and
//! scheduler cache in one: nodes and pods as the watches last showed them,
//! plus the pods this scheduler bound that the watch has not shown bound yet
//! ("assumed"), so two quick pods do not both take the room for one.

use std::collections::HashMap;

use kube::runtime::watcher::Event;
use serde_json::Value;

use super::queue::PodKey;

/// The scheduler name pods get by default; pods naming another scheduler
/// are left to it.
pub(super) const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// A change to one object, as the cache saw it.
#[derive(Debug)]
pub(super) enum Change {
    /// Added or modified; `old` is the version it replaced.
    Applied { key: String, old: Option<Value> },
    /// Gone: deleted, or no longer matching the watch.
    Removed { old: Value },
}

/// One kind of object, keyed, with the watcher's re-list buffered until it
/// is complete (as kube-rs's reflector store does).
#[derive(Debug, Default)]
pub(super) struct Objects {
    by_key: HashMap<String, Value>,
    relist: Option<HashMap<String, Value>>,
    synced: bool,
}

impl Objects {
    /// Applies a watch event; `key_of` names an object (None: ignored).
    pub fn apply(
        &mut self,
        event: Event<Value>,
        key_of: fn(&Value) -> Option<String>,
    ) -> Vec<Change> {
        match event {
            Event::Apply(object) => {
                let Some(key) = key_of(&object) else {
                    return Vec::new();
                };
                let old = self.by_key.insert(key.clone(), object);
                vec![Change::Applied { key, old }]
            }
            Event::Delete(object) => key_of(&object)
                .and_then(|key| self.by_key.remove(&key))
                .map(|old| vec![Change::Removed { old }])
                .unwrap_or_default(),
            Event::Init => {
                self.relist = Some(HashMap::new());
                Vec::new()
            }
            Event::InitApply(object) => {
                if let Some(key) = key_of(&object) {
                    self.relist.get_or_insert_default().insert(key, object);
                }
                Vec::new()
            }
            Event::InitDone => {
                let fresh = self.relist.take().unwrap_or_default();
                let mut old = std::mem::replace(&mut self.by_key, fresh);
                self.synced = true;
                let mut changes: Vec<Change> = self
                    .by_key
                    .keys()
                    .map(|key| Change::Applied {
                        key: key.clone(),
                        old: old.remove(key),
                    })
                    .collect();
                changes.extend(old.into_values().map(|old| Change::Removed { old }));
                changes
            }
        }
    }

    /// The object under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.by_key.get(key)
    }

    /// Every object.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.by_key.values()
    }

    /// Whether the first complete list has arrived.
    pub fn synced(&self) -> bool {
        self.synced
    }
}

/// Nodes by name, pods by uid, and the assumed pods.
#[derive(Debug, Default)]
pub(super) struct ClusterCache {
    pub nodes: Objects,
    pub pods: Objects,
    /// Pods bound by this scheduler, as bound, by uid.
    assumed: HashMap<String, Value>,
}

impl ClusterCache {
    /// Whether both watches have listed everything once.
    pub fn synced(&self) -> bool {
        self.nodes.synced() && self.pods.synced()
    }

    /// The pod with this uid if this scheduler should place it now.
    pub fn pending(&self, uid: &str) -> Option<&Value> {
        self.pods
            .get(uid)
            .filter(|pod| is_pending(pod) && !self.assumed.contains_key(uid))
    }

    /// Pods holding room on nodes: those the watch shows bound and those
    /// assumed.
    pub fn bound_pods(&self) -> impl Iterator<Item = &Value> {
        self.pods
            .values()
            .filter(|pod| is_bound(pod))
            .chain(self.assumed.values())
    }

    /// Counts the pending pod `uid` as bound to `node` until the watch
    /// shows it bound or `forget` is called.
    pub fn assume(&mut self, uid: &str, node: &str) {
        if let Some(mut pod) = self.pods.get(uid).cloned() {
            pod["spec"]["nodeName"] = Value::String(node.to_owned());
            self.assumed.insert(uid.to_owned(), pod);
        }
    }

    /// Stops counting an assumed pod; whether it was assumed.
    pub fn forget(&mut self, uid: &str) -> bool {
        self.assumed.remove(uid).is_some()
    }

    /// Whether the pod is assumed.
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.assumed.contains_key(uid)
    }
}

/// A pod's uid, the key of the pod cache.
pub(super) fn pod_uid(pod: &Value) -> Option<String> {
    str_at(pod, &["metadata", "uid"])
        .filter(|uid| !uid.is_empty())
        .map(str::to_owned)
}

/// A node's name, the key of the node cache.
pub(super) fn node_name(node: &Value) -> Option<String> {
    str_at(node, &["metadata", "name"])
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

/// The queue's key for a pod.
pub(super) fn pod_key(pod: &Value) -> Option<PodKey> {
    Some(PodKey {
        namespace: str_at(pod, &["metadata", "namespace"])
            .unwrap_or("default")
            .to_owned(),
        name: str_at(pod, &["metadata", "name"])?.to_owned(),
        uid: pod_uid(pod)?,
    })
}

/// The pod's priority (set at admission from its PriorityClass).
pub(super) fn priority(pod: &Value) -> i64 {
    pod.pointer("/spec/priority")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Whether this scheduler should place the pod: not bound, for the default
/// scheduler, not being deleted, not finished.
pub(super) fn is_pending(pod: &Value) -> bool {
    str_at(pod, &["spec", "nodeName"]).unwrap_or("").is_empty()
        && matches!(
            str_at(pod, &["spec", "schedulerName"]).unwrap_or(""),
            "" | DEFAULT_SCHEDULER
        )
        && pod
            .pointer("/metadata/deletionTimestamp")
            .is_none_or(Value::is_null)
        && !is_finished(pod)
}

/// Whether the pod is bound and still holds its node's room.
pub(super) fn is_bound(pod: &Value) -> bool {
    !str_at(pod, &["spec", "nodeName"]).unwrap_or("").is_empty() && !is_finished(pod)
}

/// Whether the pod's phase is Succeeded or Failed.
fn is_finished(pod: &Value) -> bool {
    matches!(
        str_at(pod, &["status", "phase"]),
        Some("Succeeded" | "Failed")
    )
}

/// Whether a pod changed in a way worth another attempt: anything but its
/// status and bookkeeping metadata (upstream's `isPodUpdated`).
pub(super) fn pod_changed(old: &Value, new: &Value) -> bool {
    fn strip(pod: &Value) -> Value {
        let mut pod = pod.clone();
        if let Some(object) = pod.as_object_mut() {
            object.remove("status");
        }
        if let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "resourceVersion",
                "generation",
                "managedFields",
                "finalizers",
            ] {
                meta.remove(field);
            }
        }
        pod
    }
    strip(old) != strip(new)
}

/// Whether a node changed in a way that may let a pod fit: its labels,
/// taints, cordon, allocatable or readiness (heartbeats are not).
pub(super) fn node_changed(old: &Value, new: &Value) -> bool {
    const FIELDS: [&str; 4] = [
        "/metadata/labels",
        "/spec/unschedulable",
        "/spec/taints",
        "/status/allocatable",
    ];
    FIELDS.iter().any(|f| old.pointer(f) != new.pointer(f)) || ready(old) != ready(new)
}

/// The status of a node's Ready condition.
fn ready(node: &Value) -> Option<&str> {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| str_at(c, &["type"]) == Some("Ready"))
        .and_then(|c| str_at(c, &["status"]))
}

/// The string at a path of object keys.
pub(super) fn str_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "resourceVersion": "1"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "schedulerName": "default-scheduler"},
            "status": {"phase": "Pending"},
        })
    }

    #[test]
    fn pending_means_unbound_ours_alive_and_unfinished() {
        assert!(is_pending(&pod("p")));
        let mut other = pod("p");
        other["spec"]["schedulerName"] = json!("my-scheduler");
        assert!(!is_pending(&other));
        let mut unset = pod("p");
        unset["spec"]
            .as_object_mut()
            .map(|s| s.remove("schedulerName"));
        assert!(is_pending(&unset));
        let mut deleting = pod("p");
        deleting["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        assert!(!is_pending(&deleting));
        let mut failed = pod("p");
        failed["status"]["phase"] = json!("Failed");
        assert!(!is_pending(&failed));
        let mut bound = pod("p");
        bound["spec"]["nodeName"] = json!("n1");
        assert!(!is_pending(&bound));
        assert!(is_bound(&bound));
    }

    #[test]
    fn status_and_bookkeeping_changes_are_not_pod_changes() {
        let old = pod("p");
        let mut new = old.clone();
        new["metadata"]["resourceVersion"] = json!("2");
        new["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False"}]);
        assert!(!pod_changed(&old, &new));
        new["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        assert!(pod_changed(&old, &new));
    }

    #[test]
    fn heartbeats_are_not_node_changes() {
        let old = json!({
            "metadata": {"name": "n1", "labels": {"a": "b"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}]},
        });
        let mut new = old.clone();
        new["status"]["conditions"][0]["lastHeartbeatTime"] = json!("t2");
        assert!(!node_changed(&old, &new));
        new["status"]["conditions"][0]["status"] = json!("False");
        assert!(node_changed(&old, &new));
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"]["disk"] = json!("ssd");
        assert!(node_changed(&old, &relabelled));
    }

    #[test]
    fn a_relist_replaces_the_objects_when_complete() {
        let mut pods = Objects::default();
        pods.apply(Event::Init, pod_uid);
        pods.apply(Event::InitApply(pod("a")), pod_uid);
        pods.apply(Event::InitApply(pod("b")), pod_uid);
        assert!(!pods.synced());
        assert!(pods.get("uid-a").is_none(), "not before InitDone");
        let changes = pods.apply(Event::InitDone, pod_uid);
        assert_eq!(changes.len(), 2);
        assert!(pods.synced());

        pods.apply(Event::Init, pod_uid);
        pods.apply(Event::InitApply(pod("b")), pod_uid);
        let changes = pods.apply(Event::InitDone, pod_uid);
        let removed: Vec<_> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Removed { old } => pod_uid(old),
                Change::Applied { .. } => None,
            })
            .collect();
        assert_eq!(removed, ["uid-a"]);
        assert!(pods.get("uid-a").is_none());
    }

    #[test]
    fn assumed_pods_hold_room_until_forgotten() {
        let mut cache = ClusterCache::default();
        cache.pods.apply(Event::Apply(pod("p")), pod_uid);
        assert!(cache.pending("uid-p").is_some());
        assert_eq!(cache.bound_pods().count(), 0);
        cache.assume("uid-p", "n1");
        assert!(cache.pending("uid-p").is_none());
        let bound: Vec<_> = cache.bound_pods().collect();
        assert_eq!(bound.len(), 1);
        assert_eq!(bound[0]["spec"]["nodeName"], "n1");
        assert!(cache.forget("uid-p"));
        assert!(cache.pending("uid-p").is_some());
    }
}
