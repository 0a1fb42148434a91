//! The filter plugins of kube-scheduler's default profile, in its order:
//! NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts,
//! NodeResourcesFit. The first plugin that rejects a node decides its reasons.

use serde_json::Value;

use super::node_info::{NodeInfo, Taint, array_at, host_ports, str_at};
use super::resources::pod_requests;

/// Reason of the NodeUnschedulable plugin.
pub(super) const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// Reason of the NodeName plugin.
pub(super) const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// Reason of the NodeAffinity plugin.
pub(super) const REASON_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// Reason of the NodePorts plugin.
pub(super) const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";

/// Why a node was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rejection {
    /// The reasons, as kube-scheduler words them.
    pub reasons: Vec<String>,
    /// Whether evicting pods could make the node fit (upstream's
    /// `Unschedulable` as opposed to `UnschedulableAndUnresolvable`).
    pub resolvable: bool,
}

impl Rejection {
    fn unresolvable(reason: impl Into<String>) -> Self {
        Rejection {
            reasons: vec![reason.into()],
            resolvable: false,
        }
    }
}

/// Runs the filters for one node; `Ok` means the pod fits there.
pub(super) fn filter(pod: &Value, node: &NodeInfo<'_>) -> Result<(), Rejection> {
    node_unschedulable(pod, node)?;
    node_name(pod, node)?;
    taint_toleration(pod, node)?;
    node_affinity(pod, node)?;
    node_ports(pod, node)?;
    resources_fit(pod, node)
}

fn node_unschedulable(pod: &Value, node: &NodeInfo<'_>) -> Result<(), Rejection> {
    let cordoned = node
        .node
        .get("spec")
        .and_then(|s| s.get("unschedulable"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".to_string(),
        value: String::new(),
        effect: "NoSchedule".to_string(),
    };
    if cordoned && !tolerated(pod, &taint) {
        return Err(Rejection::unresolvable(REASON_UNSCHEDULABLE));
    }
    Ok(())
}

fn node_name(pod: &Value, node: &NodeInfo<'_>) -> Result<(), Rejection> {
    match str_at(pod, &["spec", "nodeName"]) {
        Some(wanted) if !wanted.is_empty() && wanted != node.name => {
            Err(Rejection::unresolvable(REASON_NODE_NAME))
        }
        _ => Ok(()),
    }
}

fn taint_toleration(pod: &Value, node: &NodeInfo<'_>) -> Result<(), Rejection> {
    let untolerated = node
        .taints
        .iter()
        .find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(pod, t));
    match untolerated {
        Some(t) => Err(Rejection::unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key, t.value
        ))),
        None => Ok(()),
    }
}

/// Whether any of the pod's tolerations tolerates the taint.
pub(super) fn tolerated(pod: &Value, taint: &Taint) -> bool {
    array_at(pod, &["spec", "tolerations"])
        .iter()
        .any(|t| tolerates(t, taint))
}

/// Whether one toleration tolerates the taint.
pub(super) fn tolerates(toleration: &Value, taint: &Taint) -> bool {
    let field = |name: &str| str_at(toleration, &[name]).unwrap_or("");
    let effect = field("effect");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = field("key");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match field("operator") {
        "Exists" => true,
        "" | "Equal" => field("value") == taint.value,
        _ => false,
    }
}

fn node_affinity(pod: &Value, node: &NodeInfo<'_>) -> Result<(), Rejection> {
    let selector_matches = pod
        .get("spec")
        .and_then(|s| s.get("nodeSelector"))
        .and_then(Value::as_object)
        .is_none_or(|selector| {
            selector
                .iter()
                .all(|(k, v)| v.as_str().is_some_and(|v| node.label(k) == Some(v)))
        });
    let required = pod
        .get("spec")
        .and_then(|s| s.get("affinity"))
        .and_then(|a| a.get("nodeAffinity"))
        .and_then(|a| a.get("requiredDuringSchedulingIgnoredDuringExecution"));
    let affinity_matches = required.is_none_or(|selector| {
        array_at(selector, &["nodeSelectorTerms"])
            .iter()
            .any(|term| term_matches(term, node))
    });
    if selector_matches && affinity_matches {
        Ok(())
    } else {
        Err(Rejection::unresolvable(REASON_AFFINITY))
    }
}

/// Whether a NodeSelectorTerm matches the node: all its expressions and
/// fields hold, and it has at least one of them.
pub(super) fn term_matches(term: &Value, node: &NodeInfo<'_>) -> bool {
    let expressions = array_at(term, &["matchExpressions"]);
    let fields = array_at(term, &["matchFields"]);
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|e| requirement_matches(e, node.label(str_at(e, &["key"]).unwrap_or(""))))
        && fields.iter().all(|f| {
            str_at(f, &["key"]) == Some("metadata.name")
                && matches!(str_at(f, &["operator"]), Some("In") | Some("NotIn"))
                && requirement_matches(f, Some(node.name))
        })
}

/// Evaluates one NodeSelectorRequirement against the value found (if any).
fn requirement_matches(requirement: &Value, found: Option<&str>) -> bool {
    let values: Vec<&str> = array_at(requirement, &["values"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let as_int = |s: &str| s.parse::<i64>().ok();
    let compare = |want: fn(i64, i64) -> bool| match (found.and_then(as_int), values.as_slice()) {
        (Some(have), [limit]) => as_int(limit).is_some_and(|limit| want(have, limit)),
        _ => false,
    };
    match str_at(requirement, &["operator"]).unwrap_or("") {
        "In" => found.is_some_and(|f| values.contains(&f)),
        "NotIn" => found.is_none_or(|f| !values.contains(&f)),
        "Exists" => found.is_some(),
        "DoesNotExist" => found.is_none(),
        "Gt" => compare(|have, limit| have > limit),
        "Lt" => compare(|have, limit| have < limit),
        _ => false,
    }
}

fn node_ports(pod: &Value, node: &NodeInfo<'_>) -> Result<(), Rejection> {
    let clash = host_ports(pod)
        .iter()
        .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
    if clash {
        Err(Rejection {
            reasons: vec![REASON_PORTS.to_string()],
            resolvable: true,
        })
    } else {
        Ok(())
    }
}

fn resources_fit(pod: &Value, node: &NodeInfo<'_>) -> Result<(), Rejection> {
    let mut reasons = Vec::new();
    let allowed = node.allocatable.pods;
    if i64::try_from(node.pods.len()).unwrap_or(i64::MAX) >= allowed {
        reasons.push("Too many pods".to_string());
    }
    let want = pod_requests(pod, false);
    let free = |alloc: i64, used: i64| alloc.saturating_sub(used);
    let have = node.allocatable.resources;
    let used = node.requested;
    if want.milli_cpu > 0 && want.milli_cpu > free(have.milli_cpu, used.milli_cpu) {
        reasons.push("Insufficient cpu".to_string());
    }
    if want.memory > 0 && want.memory > free(have.memory, used.memory) {
        reasons.push("Insufficient memory".to_string());
    }
    if want.ephemeral_storage > 0
        && want.ephemeral_storage > free(have.ephemeral_storage, used.ephemeral_storage)
    {
        reasons.push("Insufficient ephemeral-storage".to_string());
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            reasons,
            resolvable: true,
        })
    }
}
