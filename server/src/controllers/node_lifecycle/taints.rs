//! The taints the node lifecycle controller owns: NoSchedule taints that
//! mirror node conditions (upstream's `TaintNodesByCondition`), the
//! NoExecute `unreachable`/`not-ready` taints, and changing a node's taints
//! safely against concurrent writers (a resourceVersion precondition,
//! retried with a fresh read as upstream's `SwapNodeControllerTaint`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// The taint of a node whose Ready condition is Unknown.
pub(super) const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a node whose Ready condition is False.
pub(super) const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a cordoned node.
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// How many times a taint change is tried against a node that keeps changing.
const ATTEMPTS: usize = 5;

/// The NoSchedule taint key for each (condition, status).
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", NOT_READY),
    ("Ready", "Unknown", UNREACHABLE),
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
    ),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
    ),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
];

/// A taint template (no value, no time).
pub(super) fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        ..Default::default()
    }
}

/// The node's taints.
pub(super) fn taints_of(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

/// Whether the node has a taint with this key and effect.
pub(super) fn has_taint(node: &Node, key: &str, effect: &str) -> bool {
    taints_of(node)
        .iter()
        .any(|t| t.key == key && t.effect == effect)
}

/// The NoSchedule taints the node should have for its conditions and
/// cordon, and the ones it has that should go (upstream's
/// `doNoScheduleTaintingPass`).
pub(super) fn condition_taint_changes(node: &Node) -> (Vec<Taint>, Vec<Taint>) {
    let mut wanted: Vec<Taint> = Vec::new();
    for condition in node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
    {
        for (type_, status, key) in CONDITION_TAINTS {
            if condition.type_ == type_ && condition.status == status {
                wanted.push(taint(key, "NoSchedule"));
            }
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push(taint(UNSCHEDULABLE, "NoSchedule"));
    }
    let managed = |t: &Taint| {
        t.effect == "NoSchedule"
            && (t.key == UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, key)| *key == t.key))
    };
    let current: Vec<&Taint> = taints_of(node).iter().filter(|t| managed(t)).collect();
    let same = |a: &Taint, b: &Taint| a.key == b.key && a.effect == b.effect && a.value == b.value;
    let add = wanted
        .iter()
        .filter(|w| !current.iter().any(|c| same(w, c)))
        .cloned()
        .collect();
    let remove = current
        .into_iter()
        .filter(|c| !wanted.iter().any(|w| same(w, c)))
        .cloned()
        .collect();
    (add, remove)
}

/// The node's taints with `add` put in (those it lacks by key and effect,
/// stamped `timeAdded`) and `remove` taken out (by key and effect); None
/// when that changes nothing.
pub(super) fn swapped_taints(
    current: &[Taint],
    add: &[Taint],
    remove: &[Taint],
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let matches = |a: &Taint, b: &Taint| a.key == b.key && a.effect == b.effect;
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !remove.iter().any(|r| matches(r, t)))
        .cloned()
        .collect();
    for new in add {
        if !taints.iter().any(|t| matches(t, new)) {
            let mut new = new.clone();
            new.time_added = Some(Time(now));
            taints.push(new);
        }
    }
    let unchanged =
        taints.len() == current.len() && taints.iter().all(|t| current.iter().any(|c| c == t));
    (!unchanged).then_some(taints)
}

/// Puts `add` on and takes `remove` off the node (starting from `node` as
/// cached, re-reading it after a conflict). Returns whether the taints
/// changed.
pub(super) async fn swap_taints(
    client: &kube::Client,
    node: &Node,
    add: &[Taint],
    remove: &[Taint],
) -> Result<bool, kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut current = node.clone();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            current = api.get(&name).await?;
        }
        let Some(taints) = swapped_taints(taints_of(&current), add, remove, Timestamp::now())
        else {
            return Ok(false);
        };
        let patch = json!({
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "spec": {"taints": taints},
        });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 && attempt + 1 < ATTEMPTS => {}
            Err(err) => return Err(err),
        }
    }
    Ok(false)
}

/// Whether `toleration` tolerates `taint` (upstream's `ToleratesTaint`).
pub(super) fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    fn set(s: &Option<String>) -> Option<&str> {
        s.as_deref().filter(|v| !v.is_empty())
    }
    if set(&toleration.effect).is_some_and(|e| e != taint.effect) {
        return false;
    }
    if set(&toleration.key).is_some_and(|k| k != taint.key) {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// NoExecute taints by node name, for telling which nodes changed them.
pub(super) type NoExecuteTaints = BTreeMap<String, Vec<(String, String, String)>>;

/// The node's NoExecute taints as (key, value, effect), sorted.
pub(super) fn no_execute_of(node: &Node) -> Vec<(String, String, String)> {
    let mut taints: Vec<(String, String, String)> = taints_of(node)
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .map(|t| {
            (
                t.key.clone(),
                t.value.clone().unwrap_or_default(),
                t.effect.clone(),
            )
        })
        .collect();
    taints.sort();
    taints
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(value: serde_json::Value) -> Node {
        serde_json::from_value(value).unwrap()
    }

    fn keys(taints: &[Taint]) -> Vec<String> {
        taints
            .iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    }

    #[test]
    fn conditions_map_to_no_schedule_taints() {
        let n = node(json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": true, "taints": [
                {"key": NOT_READY, "effect": "NoSchedule"},
                {"key": "user", "effect": "NoSchedule"},
                {"key": UNREACHABLE, "effect": "NoExecute"},
            ]},
            "status": {"conditions": [
                {"type": "Ready", "status": "Unknown"},
                {"type": "DiskPressure", "status": "True"},
                {"type": "MemoryPressure", "status": "False"},
            ]},
        }));
        let (add, remove) = condition_taint_changes(&n);
        assert_eq!(
            keys(&add),
            vec![
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/disk-pressure:NoSchedule",
                "node.kubernetes.io/unschedulable:NoSchedule",
            ]
        );
        assert_eq!(
            keys(&remove),
            vec!["node.kubernetes.io/not-ready:NoSchedule"]
        );
    }

    #[test]
    fn a_ready_node_loses_its_condition_taints_only() {
        let n = node(json!({
            "metadata": {"name": "n"},
            "spec": {"taints": [{"key": UNREACHABLE, "effect": "NoSchedule"}, {"key": "user", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }));
        let (add, remove) = condition_taint_changes(&n);
        assert!(add.is_empty());
        assert_eq!(
            keys(&remove),
            vec!["node.kubernetes.io/unreachable:NoSchedule"]
        );
    }

    #[test]
    fn swapping_adds_missing_taints_with_a_time_and_removes_by_key_and_effect() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let current = vec![taint(NOT_READY, "NoExecute"), taint("user", "NoSchedule")];
        let swapped = swapped_taints(
            &current,
            &[taint(UNREACHABLE, "NoExecute")],
            &[taint(NOT_READY, "NoExecute")],
            now,
        )
        .unwrap();
        assert_eq!(
            keys(&swapped),
            vec![
                "user:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute"
            ]
        );
        assert_eq!(swapped[1].time_added, Some(Time(now)));
        assert!(swapped_taints(&swapped, &[taint(UNREACHABLE, "NoExecute")], &[], now).is_none());
        assert!(swapped_taints(&current, &[], &[taint(UNREACHABLE, "NoExecute")], now).is_none());
    }

    #[test]
    fn tolerations_match_as_upstream() {
        let t = |v: serde_json::Value| -> Toleration { serde_json::from_value(v).unwrap() };
        let unreachable = taint(UNREACHABLE, "NoExecute");
        assert!(tolerates(
            &t(json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"})),
            &unreachable
        ));
        assert!(tolerates(&t(json!({"operator": "Exists"})), &unreachable));
        assert!(!tolerates(
            &t(json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"})),
            &unreachable
        ));
        assert!(!tolerates(
            &t(json!({"key": NOT_READY, "operator": "Exists"})),
            &unreachable
        ));
        assert!(tolerates(&t(json!({"key": UNREACHABLE})), &unreachable));
        assert!(!tolerates(
            &t(json!({"key": UNREACHABLE, "value": "x"})),
            &unreachable
        ));
    }
}
