//! Namespaces, Nodes, Leases, RuntimeClasses, PodDisruptionBudgets,
//! Events, PriorityClasses, LimitRanges and ResourceQuotas.

use std::collections::BTreeSet;

use serde_json::Value;

use super::cause::{
    Errs, child, duplicate, field, flag, forbidden, go_int_or_string, go_quote, index, int,
    invalid, list, not_supported, opt_s, required, s, sorted_entries, strings,
};
use super::containers::quantity_value;
use super::meta::{kube_finalizer, label_name, label_selector};
use super::names::{cidr_error, dns1123_label, label_value, qualified_name};
use super::workloads::{not_more_than_100_percent, positive_int_or_percent};

/// core/v1 Namespace: `spec.finalizers` must be qualified.
pub(super) fn namespace(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    for f in strings(spec.get("finalizers")) {
        for msg in qualified_name(f) {
            invalid(errs, "spec.finalizers", go_quote(f), &msg);
        }
        kube_finalizer(f, "spec.finalizers", errs);
    }
}

/// core/v1 Node (create, or update when `old` is given).
pub(super) fn node(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (i, taint) in list(spec, "taints").iter().enumerate() {
        // Upstream reports taints under metadata.taints.
        let p = index("metadata.taints", i);
        label_name(s(taint, "key"), &child(&p, "key"), errs);
        let msgs = label_value(s(taint, "value"));
        if !msgs.is_empty() {
            invalid(
                errs,
                &child(&p, "value"),
                go_quote(s(taint, "value")),
                &msgs.join(";"),
            );
        }
        match s(taint, "effect") {
            "" => required(errs, &child(&p, "effect"), ""),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => not_supported(
                errs,
                &child(&p, "effect"),
                go_quote(other),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ),
        }
        if !seen.insert((s(taint, "effect"), s(taint, "key"))) {
            let value = format!(
                "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:(*v1.Time)(nil)}}: taints must be unique by key and effect pair",
                go_quote(s(taint, "key")),
                go_quote(s(taint, "value")),
                go_quote(s(taint, "effect"))
            );
            duplicate(errs, &p, value);
        }
    }
    let cidrs = strings(spec.get("podCIDRs"));
    for (i, cidr) in cidrs.iter().enumerate() {
        if let Some(msg) = cidr_error(cidr) {
            invalid(errs, &index("spec.podCIDRs", i), go_quote(cidr), msg);
        }
    }
    let Some(old) = old else {
        return;
    };
    let old_spec = old.get("spec").unwrap_or(&Value::Null);
    let old_cidrs = strings(old_spec.get("podCIDRs"));
    if !old_cidrs.is_empty() && old_cidrs != cidrs {
        forbidden(
            errs,
            "spec.podCIDRs",
            "node updates may not change podCIDR except from \"\" to valid",
        );
    }
    let old_provider = s(old_spec, "providerID");
    if !old_provider.is_empty() && old_provider != s(spec, "providerID") {
        forbidden(
            errs,
            "spec.providerID",
            "node updates may not change providerID except from \"\" to valid",
        );
    }
}

/// coordination.k8s.io/v1 Lease.
pub(super) fn lease(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if let Some(d) = int(spec, "leaseDurationSeconds").filter(|d| *d <= 0) {
        invalid(
            errs,
            "spec.leaseDurationSeconds",
            d.to_string(),
            "must be greater than 0",
        );
    }
    if let Some(t) = int(spec, "leaseTransitions").filter(|t| *t < 0) {
        invalid(
            errs,
            "spec.leaseTransitions",
            t.to_string(),
            "must be greater than or equal to 0",
        );
    }
}

/// node.k8s.io/v1 RuntimeClass (create, or update when `old` is given).
pub(super) fn runtime_class(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let handler = s(obj, "handler");
    for msg in dns1123_label(handler) {
        invalid(errs, "handler", go_quote(handler), &msg);
    }
    if let Some(overhead) = field(obj, "overhead") {
        for (name, value) in sorted_entries(overhead.get("podFixed")) {
            quantity_value(name, value, &format!("overhead.podFixed[{name}]"), errs);
        }
    }
    if let Some(scheduling) = field(obj, "scheduling") {
        super::meta::labels(
            scheduling.get("nodeSelector"),
            "scheduling.nodeSelector",
            errs,
        );
        super::pods::tolerations(
            list(scheduling, "tolerations"),
            "scheduling.tolerations",
            errs,
        );
    }
    if let Some(old) = old
        && handler != s(old, "handler")
    {
        invalid(errs, "handler", go_quote(handler), "field is immutable");
    }
}

/// policy/v1 PodDisruptionBudget.
pub(super) fn pod_disruption_budget(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let min = field(spec, "minAvailable");
    let max = field(spec, "maxUnavailable");
    if min.is_some() && max.is_some() {
        let value = format!(
            "policy.PodDisruptionBudgetSpec{{MinAvailable:{}, Selector:(*v1.LabelSelector)(nil), MaxUnavailable:{}, UnhealthyPodEvictionPolicy:(*policy.UnhealthyPodEvictionPolicyType)(nil)}}",
            go_int_or_string(min),
            go_int_or_string(max)
        );
        invalid(
            errs,
            "spec",
            value,
            "minAvailable and maxUnavailable cannot be both set",
        );
    }
    for (name, v) in [("minAvailable", min), ("maxUnavailable", max)] {
        if v.is_some() {
            let path = child("spec", name);
            positive_int_or_percent(v, &path, errs);
            not_more_than_100_percent(v, &path, errs);
        }
    }
    label_selector(field(spec, "selector"), "spec.selector", errs);
    if let Some(policy) = opt_s(spec, "unhealthyPodEvictionPolicy")
        && !matches!(policy, "AlwaysAllow" | "IfHealthyBudget")
    {
        not_supported(
            errs,
            "spec.unhealthyPodEvictionPolicy",
            go_quote(policy),
            &["AlwaysAllow", "IfHealthyBudget"],
        );
    }
}

/// A core/v1 Event (`events_api`: false) or events.k8s.io/v1 Event.
pub(super) fn event(obj: &Value, events_api: bool, errs: &mut Errs) {
    let namespace = obj.get("metadata").map(|m| s(m, "namespace")).unwrap_or("");
    let (involved, reporting_name, reporting) = if events_api {
        (
            "regarding",
            "reportingController",
            s(obj, "reportingController"),
        )
    } else {
        (
            "involvedObject",
            "reportingComponent",
            s(obj, "reportingComponent"),
        )
    };
    let involved_namespace = obj.get(involved).map(|o| s(o, "namespace")).unwrap_or("");
    let event_time = !s(obj, "eventTime").is_empty();
    let mismatch = "does not match event.namespace";
    if !event_time {
        if involved_namespace.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                invalid(
                    errs,
                    "involvedObject.namespace",
                    go_quote(involved_namespace),
                    mismatch,
                );
            }
        } else if namespace != involved_namespace {
            invalid(
                errs,
                "involvedObject.namespace",
                go_quote(involved_namespace),
                mismatch,
            );
        }
    } else {
        if involved_namespace.is_empty() && namespace != "default" && namespace != "kube-system" {
            invalid(
                errs,
                "involvedObject.namespace",
                go_quote(involved_namespace),
                mismatch,
            );
        }
        if reporting.is_empty() {
            required(errs, reporting_name, "");
        }
        for msg in qualified_name(reporting) {
            invalid(errs, reporting_name, go_quote(reporting), &msg);
        }
        let instance = s(obj, "reportingInstance");
        if instance.is_empty() {
            required(errs, "reportingInstance", "");
        }
        if instance.len() > 128 {
            invalid(
                errs,
                "reportingInstance",
                "\"\"",
                "can have at most 128 characters",
            );
        }
        let action = s(obj, "action");
        if action.is_empty() {
            required(errs, "action", "");
        }
        if action.len() > 128 {
            invalid(errs, "action", "\"\"", "can have at most 128 characters");
        }
        let reason = s(obj, "reason");
        if reason.is_empty() {
            required(errs, "reason", "");
        }
        if reason.len() > 128 {
            invalid(errs, "reason", "\"\"", "can have at most 128 characters");
        }
        let note = if events_api {
            s(obj, "note")
        } else {
            s(obj, "message")
        };
        if note.len() > 1024 {
            invalid(errs, "message", "\"\"", "can have at most 1024 characters");
        }
    }
    if !events_api {
        return;
    }
    // Strict rules for the events.k8s.io API.
    if !event_time {
        required(errs, "eventTime", "");
    }
    let kind = s(obj, "type");
    if kind != "Normal" && kind != "Warning" {
        invalid(errs, "type", "\"\"", &format!("has invalid value: {kind}"));
    }
    for (name, internal) in [
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
    ] {
        if !s(obj, name).is_empty() {
            invalid(errs, internal, "\"\"", "needs to be unset");
        }
    }
    if int(obj, "deprecatedCount").is_some_and(|c| c != 0) {
        invalid(errs, "count", "\"\"", "needs to be unset");
    }
    if let Some(source) = field(obj, "deprecatedSource")
        && (!s(source, "component").is_empty() || !s(source, "host").is_empty())
    {
        invalid(errs, "source", "\"\"", "needs to be unset");
    }
}

const SYSTEM_PRIORITY_CLASSES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// scheduling.k8s.io/v1 PriorityClass (create, or update when `old` is given).
pub(super) fn priority_class(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let name = obj.get("metadata").map(|m| s(m, "name")).unwrap_or("");
    let value = int(obj, "value");
    if value.is_none() {
        required(errs, "value", "");
    }
    let value = value.unwrap_or(0);
    if name.starts_with("system-") {
        let problem = match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, v)) if *v != value => {
                Some(format!("value of {name} PriorityClass must be {v}"))
            }
            Some(_) if flag(obj, "globalDefault") => Some(format!(
                "globalDefault of {name} PriorityClass must be false"
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            forbidden(
                errs,
                "metadata.name",
                &format!(
                    "priority class names with 'system-' prefix are reserved for system use only. error: {problem}"
                ),
            );
        }
    } else if value > 1_000_000_000 {
        forbidden(
            errs,
            "value",
            "maximum allowed value of a user defined priority is 1000000000",
        );
    }
    if let Some(policy) = opt_s(obj, "preemptionPolicy")
        && !matches!(policy, "PreemptLowerPriority" | "Never")
    {
        not_supported(
            errs,
            "preemptionPolicy",
            go_quote(policy),
            &["PreemptLowerPriority", "Never"],
        );
    }
    if let Some(old) = old {
        if int(old, "value") != int(obj, "value") {
            forbidden(errs, "value", "may not be changed in an update.");
        }
        if opt_s(old, "preemptionPolicy").unwrap_or("PreemptLowerPriority")
            != opt_s(obj, "preemptionPolicy").unwrap_or("PreemptLowerPriority")
        {
            invalid(
                errs,
                "preemptionPolicy",
                go_quote(opt_s(obj, "preemptionPolicy").unwrap_or("")),
                "field is immutable",
            );
        }
    }
}

/// core/v1 LimitRange: limit types and quantities.
pub(super) fn limit_range(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let mut types = BTreeSet::new();
    for (i, limit) in list(spec, "limits").iter().enumerate() {
        let p = index("spec.limits", i);
        let kind = s(limit, "type");
        for msg in qualified_name(kind) {
            invalid(errs, &child(&p, "type"), go_quote(kind), &msg);
        }
        if !types.insert(kind) {
            duplicate(errs, &child(&p, "type"), go_quote(kind));
        }
        for section in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            for (name, value) in sorted_entries(limit.get(section)) {
                quantity_value(
                    name,
                    value,
                    &format!("{}[{name}]", child(&p, section)),
                    errs,
                );
            }
        }
        if kind == "Pod" {
            for section in ["default", "defaultRequest"] {
                if limit
                    .get(section)
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
                {
                    forbidden(
                        errs,
                        &child(&p, section),
                        "may not be specified when `type` is 'Pod'",
                    );
                }
            }
        }
    }
}

/// core/v1 ResourceQuota: quantities and scopes.
pub(super) fn resource_quota(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    for (name, value) in sorted_entries(spec.get("hard")) {
        let path = format!("spec.hard[{name}]");
        for msg in qualified_name(name) {
            invalid(errs, &path, go_quote(name), &msg);
        }
        quantity_value(name, value, &path, errs);
    }
    let scopes = strings(spec.get("scopes"));
    let known = [
        "Terminating",
        "NotTerminating",
        "BestEffort",
        "NotBestEffort",
        "PriorityClass",
        "CrossNamespacePodAffinity",
        "VolumeAttributesClass",
    ];
    if scopes.iter().any(|sc| !known.contains(sc)) {
        invalid(
            errs,
            "spec.scopes",
            super::cause::go_string_slice(spec.get("scopes")),
            "unsupported scope",
        );
    }
    for (a, b) in [
        ("BestEffort", "NotBestEffort"),
        ("Terminating", "NotTerminating"),
    ] {
        if scopes.contains(&a) && scopes.contains(&b) {
            invalid(
                errs,
                "spec.scopes",
                super::cause::go_string_slice(spec.get("scopes")),
                "conflicting scopes",
            );
        }
    }
}
