//! Deployments, ReplicaSets, StatefulSets, DaemonSets and
//! ReplicationControllers (`pkg/apis/apps/validation`, core RC rules).

use serde_json::Value;

use super::cause::{
    Errs, child, field, forbidden, go_int_or_string, go_quote, int, invalid, list, map,
    nonnegative, not_supported, required, s, semantic,
};
use super::meta::{go_label_selector, label_selector, selector_is_empty, selector_matches};
use super::names::percent;
use super::pods::{pod_template, selector_mismatch};

/// Which apps kind, for the wording that differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AppsKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
}

/// Validates an apps/v1 workload (create, or update when `old` is given).
pub(super) fn apps(kind: AppsKind, obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    nonnegative(errs, "spec.replicas", int(spec, "replicas"));
    nonnegative(errs, "spec.minReadySeconds", int(spec, "minReadySeconds"));
    nonnegative(
        errs,
        "spec.revisionHistoryLimit",
        int(spec, "revisionHistoryLimit"),
    );
    selector_and_template(kind, spec, errs);
    match kind {
        AppsKind::Deployment => deployment_spec(spec, errs),
        AppsKind::StatefulSet => stateful_set_spec(spec, errs),
        AppsKind::DaemonSet => daemon_set_strategy(spec, errs),
        AppsKind::ReplicaSet => {}
    }
    let Some(old) = old else {
        return;
    };
    let old_spec = old.get("spec").unwrap_or(&Value::Null);
    if field(spec, "selector") != field(old_spec, "selector") {
        invalid(
            errs,
            "spec.selector",
            go_label_selector(field(spec, "selector")),
            "field is immutable",
        );
    }
    if kind == AppsKind::StatefulSet {
        stateful_set_update(spec, old_spec, errs);
    }
}

fn selector_and_template(kind: AppsKind, spec: &Value, errs: &mut Errs) {
    let selector = field(spec, "selector");
    let empty_msg = match kind {
        AppsKind::Deployment | AppsKind::ReplicaSet => "empty selector is invalid for deployment",
        AppsKind::StatefulSet => "empty selector is invalid for statefulset",
        AppsKind::DaemonSet => "empty selector is invalid for daemonset",
    };
    match selector {
        None => required(errs, "spec.selector", ""),
        Some(sel) => {
            label_selector(Some(sel), "spec.selector", errs);
            if selector_is_empty(sel) {
                invalid(
                    errs,
                    "spec.selector",
                    go_label_selector(Some(sel)),
                    empty_msg,
                );
            }
        }
    }
    let template = spec.get("template").unwrap_or(&Value::Null);
    // A missing selector selects nothing; an empty one everything.
    let matches = match selector {
        None => Some(false),
        Some(sel) if selector_is_empty(sel) => Some(true),
        Some(sel) => selector_matches(sel, template.get("metadata").and_then(|m| m.get("labels"))),
    };
    match matches {
        Some(false) => selector_mismatch(template, "spec.template", errs),
        Some(true) => {}
        None if kind == AppsKind::StatefulSet => {
            invalid(errs, "spec.selector", go_label_selector(selector), "")
        }
        None => invalid(
            errs,
            "spec.selector",
            go_label_selector(selector),
            "invalid label selector",
        ),
    }
    let claim_templates: Vec<String> = list(spec, "volumeClaimTemplates")
        .iter()
        .filter_map(|t| {
            t.get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
        })
        .map(str::to_owned)
        .collect();
    pod_template(template, "spec.template", &claim_templates, errs);
    let template_spec = template.get("spec").unwrap_or(&Value::Null);
    if let Some(policy) = template_spec
        .get("restartPolicy")
        .and_then(Value::as_str)
        .filter(|p| *p != "Always")
    {
        not_supported(
            errs,
            "spec.template.spec.restartPolicy",
            go_quote(policy),
            &["Always"],
        );
    }
    if let Some(deadline) = int(template_spec, "activeDeadlineSeconds") {
        let path = "spec.template.spec.activeDeadlineSeconds";
        match kind {
            AppsKind::Deployment | AppsKind::ReplicaSet => forbidden(
                errs,
                path,
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            ),
            AppsKind::StatefulSet => forbidden(
                errs,
                path,
                "activeDeadlineSeconds in StatefulSet is not Supported",
            ),
            AppsKind::DaemonSet => invalid(
                errs,
                path,
                deadline.to_string(),
                "activeDeadlineSeconds in DaemonSet is not Supported",
            ),
        }
    }
}

fn deployment_spec(spec: &Value, errs: &mut Errs) {
    if let Some(strategy) = field(spec, "strategy") {
        let rolling = field(strategy, "rollingUpdate");
        match s(strategy, "type") {
            "Recreate" => {
                if rolling.is_some() {
                    forbidden(
                        errs,
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    );
                }
            }
            "RollingUpdate" => match rolling {
                None => required(
                    errs,
                    "spec.strategy.rollingUpdate",
                    "this should be defaulted and never be nil",
                ),
                Some(r) => rolling_update(r, "spec.strategy.rollingUpdate", errs),
            },
            other => {
                let rolling = if rolling.is_some() {
                    "(*apps.RollingUpdateDeployment)(0xc000000000)"
                } else {
                    "(*apps.RollingUpdateDeployment)(nil)"
                };
                let value = format!(
                    "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{rolling}}}",
                    go_quote(other)
                );
                not_supported(errs, "spec.strategy", value, &["Recreate", "RollingUpdate"]);
            }
        }
    }
    if let Some(deadline) = int(spec, "progressDeadlineSeconds") {
        nonnegative(errs, "spec.progressDeadlineSeconds", Some(deadline));
        if deadline <= int(spec, "minReadySeconds").unwrap_or(0) {
            invalid(
                errs,
                "spec.progressDeadlineSeconds",
                deadline.to_string(),
                "must be greater than minReadySeconds",
            );
        }
    }
}

/// `ValidateRollingUpdateDeployment` (also DaemonSets' rolling updates).
fn rolling_update(r: &Value, path: &str, errs: &mut Errs) {
    let unavailable = r.get("maxUnavailable");
    let surge = r.get("maxSurge");
    positive_int_or_percent(unavailable, &child(path, "maxUnavailable"), errs);
    positive_int_or_percent(surge, &child(path, "maxSurge"), errs);
    if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
        invalid(
            errs,
            &child(path, "maxUnavailable"),
            go_int_or_string(unavailable),
            "may not be 0 when `maxSurge` is 0",
        );
    }
    not_more_than_100_percent(unavailable, &child(path, "maxUnavailable"), errs);
}

/// `ValidatePositiveIntOrPercent`.
pub(super) fn positive_int_or_percent(v: Option<&Value>, path: &str, errs: &mut Errs) {
    match v {
        Some(Value::String(text)) => {
            for msg in percent(text) {
                invalid(errs, path, go_int_or_string(v), &msg);
            }
        }
        Some(n) => nonnegative(errs, path, n.as_i64()),
        None => {}
    }
}

/// `IsNotMoreThan100Percent`.
pub(super) fn not_more_than_100_percent(v: Option<&Value>, path: &str, errs: &mut Errs) {
    if let Some(Value::String(text)) = v
        && text
            .strip_suffix('%')
            .and_then(|n| n.parse::<i64>().ok())
            .is_some_and(|n| n > 100)
    {
        invalid(
            errs,
            path,
            go_int_or_string(v),
            "must not be greater than 100%",
        );
    }
}

fn int_or_percent_value(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(text)) => text
            .strip_suffix('%')
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1),
        Some(n) => n.as_i64().unwrap_or(-1),
        // Absent values are defaulted (25%); never both zero.
        None => -1,
    }
}

fn stateful_set_spec(spec: &Value, errs: &mut Errs) {
    if let Some(policy) = spec.get("podManagementPolicy").and_then(Value::as_str) {
        match policy {
            "OrderedReady" | "Parallel" => {}
            "" => required(errs, "spec.podManagementPolicy", ""),
            other => invalid(
                errs,
                "spec.podManagementPolicy",
                go_quote(other),
                "must be 'OrderedReady' or 'Parallel'",
            ),
        }
    }
    if let Some(strategy) = field(spec, "updateStrategy") {
        let rolling = field(strategy, "rollingUpdate");
        match s(strategy, "type") {
            "" => required(errs, "spec.updateStrategy", ""),
            "OnDelete" => {
                if let Some(r) = rolling {
                    invalid(
                        errs,
                        "spec.updateStrategy.rollingUpdate",
                        r.to_string(),
                        "only allowed for updateStrategy 'RollingUpdate'",
                    );
                }
            }
            "RollingUpdate" => {
                if let Some(r) = rolling {
                    nonnegative(
                        errs,
                        "spec.updateStrategy.rollingUpdate.partition",
                        int(r, "partition"),
                    );
                    if let Some(max) = r.get("maxUnavailable") {
                        positive_int_or_percent(
                            Some(max),
                            "spec.updateStrategy.rollingUpdate.maxUnavailable",
                            errs,
                        );
                        if int_or_percent_value(Some(max)) == 0 {
                            invalid(
                                errs,
                                "spec.updateStrategy.rollingUpdate.maxUnavailable",
                                go_int_or_string(Some(max)),
                                "must be greater than 0",
                            );
                        }
                    }
                }
            }
            _ => invalid(
                errs,
                "spec.updateStrategy",
                strategy.to_string(),
                "must be 'RollingUpdate' or 'OnDelete'",
            ),
        }
    }
    if let Some(policy) = field(spec, "persistentVolumeClaimRetentionPolicy") {
        for name in ["whenDeleted", "whenScaled"] {
            if let Some(v) = policy.get(name).and_then(Value::as_str)
                && !matches!(v, "Retain" | "Delete")
            {
                not_supported(
                    errs,
                    &format!("spec.persistentVolumeClaimRetentionPolicy.{name}"),
                    go_quote(v),
                    &["Retain", "Delete"],
                );
            }
        }
    }
    if let Some(ordinals) = field(spec, "ordinals") {
        nonnegative(errs, "spec.ordinals.start", int(ordinals, "start"));
    }
}

fn stateful_set_update(spec: &Value, old: &Value, errs: &mut Errs) {
    let allowed = [
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    ];
    let strip = |v: &Value| {
        let mut v = semantic(v);
        if let Some(m) = v.as_object_mut() {
            for name in allowed {
                m.remove(name);
            }
        }
        v
    };
    if strip(spec) != strip(old) {
        forbidden(
            errs,
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        );
    }
}

fn daemon_set_strategy(spec: &Value, errs: &mut Errs) {
    let Some(strategy) = field(spec, "updateStrategy") else {
        return;
    };
    match s(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => {
            if let Some(r) = field(strategy, "rollingUpdate") {
                let path = "spec.updateStrategy.rollingUpdate";
                let unavailable = r.get("maxUnavailable");
                let surge = r.get("maxSurge");
                positive_int_or_percent(unavailable, &child(path, "maxUnavailable"), errs);
                positive_int_or_percent(surge, &child(path, "maxSurge"), errs);
                if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
                    invalid(
                        errs,
                        &child(path, "maxUnavailable"),
                        go_int_or_string(unavailable),
                        "may not be 0 when `maxSurge` is 0",
                    );
                }
                not_more_than_100_percent(unavailable, &child(path, "maxUnavailable"), errs);
            }
        }
        other => {
            let value = format!(
                "apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}}",
                go_quote(other)
            );
            not_supported(
                errs,
                "spec.updateStrategy",
                value,
                &["RollingUpdate", "OnDelete"],
            );
        }
    }
}

/// A core/v1 ReplicationController.
pub(super) fn replication_controller(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    nonnegative(errs, "spec.minReadySeconds", int(spec, "minReadySeconds"));
    nonnegative(errs, "spec.replicas", int(spec, "replicas"));
    let Some(template) = field(spec, "template") else {
        if map(spec, "selector").is_none_or(|m| m.is_empty()) {
            required(errs, "spec.selector", "");
        }
        required(errs, "spec.template", "");
        return;
    };
    let template_labels = template.get("metadata").and_then(|m| m.get("labels"));
    // An empty selector is defaulted from the template's labels.
    let selector = map(spec, "selector")
        .filter(|m| !m.is_empty())
        .or_else(|| template_labels.and_then(Value::as_object));
    match selector.filter(|m| !m.is_empty()) {
        None => required(errs, "spec.selector", ""),
        Some(sel) => {
            let labels = template_labels.and_then(Value::as_object);
            let matches = sel
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
            if !matches {
                selector_mismatch(template, "spec.template", errs);
            }
        }
    }
    pod_template(template, "spec.template", &[], errs);
    let template_spec = template.get("spec").unwrap_or(&Value::Null);
    if let Some(policy) = template_spec
        .get("restartPolicy")
        .and_then(Value::as_str)
        .filter(|p| *p != "Always")
    {
        not_supported(
            errs,
            "spec.template.spec.restartPolicy",
            go_quote(policy),
            &["Always"],
        );
    }
    if field(template_spec, "activeDeadlineSeconds").is_some() {
        forbidden(
            errs,
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicationController is not Supported",
        );
    }
}
