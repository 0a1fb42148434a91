//! Pods, pod specs and pod templates (`ValidatePodSpec`,
//! `ValidatePodTemplateSpec`, `ValidatePodCreate`, `ValidatePodUpdate`).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::cause::{
    Errs, child, diff, field, forbidden, go_quote, go_string_map, index, int, invalid, list,
    not_supported, required, s, semantic,
};
use super::containers::{ContainerKind, containers};
use super::meta::{annotations, label_name, labels};
use super::names::{dns1123_label, dns1123_subdomain, inclusive_range_error, label_value};
use super::volumes::volumes;

const MAX_INT32: i64 = 2_147_483_647;

const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodSpec`; `extra_volumes` are names that count as volumes
/// (a StatefulSet's claim templates).
pub(super) fn pod_spec(spec: &Value, path: &str, extra_volumes: &[String], errs: &mut Errs) {
    let mut vols = volumes(spec, path, errs);
    for name in extra_volumes {
        vols.names.insert(name.clone());
        vols.claims.insert(name.clone());
    }
    let regular = list(spec, "containers");
    let mut names = BTreeSet::new();
    if regular.is_empty() {
        required(errs, &child(path, "containers"), "");
    } else {
        containers(
            regular,
            &child(path, "containers"),
            ContainerKind::Regular,
            &vols,
            &mut names,
            errs,
        );
    }
    containers(
        list(spec, "initContainers"),
        &child(path, "initContainers"),
        ContainerKind::Init,
        &vols,
        &mut names,
        errs,
    );

    if let Some(policy) = spec.get("restartPolicy").and_then(Value::as_str) {
        restart_policy(policy, &child(path, "restartPolicy"), errs);
    }
    if let Some(policy) = spec.get("dnsPolicy").and_then(Value::as_str) {
        let p = child(path, "dnsPolicy");
        match policy {
            "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
            "" => required(errs, &p, ""),
            other => not_supported(
                errs,
                &p,
                go_quote(other),
                &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
            ),
        }
    }
    if s(spec, "dnsPolicy") == "None" && field(spec, "dnsConfig").is_none() {
        required(
            errs,
            &child(path, "dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        );
    }
    labels(spec.get("nodeSelector"), &child(path, "nodeSelector"), errs);
    for name in ["serviceAccountName", "nodeName", "priorityClassName"] {
        let value = s(spec, name);
        if !value.is_empty() {
            for msg in dns1123_subdomain(value) {
                invalid(errs, &child(path, name), go_quote(value), &msg);
            }
        }
    }
    if let Some(rc) = spec.get("runtimeClassName").and_then(Value::as_str) {
        for msg in dns1123_subdomain(rc) {
            invalid(errs, &child(path, "runtimeClassName"), go_quote(rc), &msg);
        }
    }
    if let Some(deadline) = int(spec, "activeDeadlineSeconds")
        && !(1..=MAX_INT32).contains(&deadline)
    {
        invalid(
            errs,
            &child(path, "activeDeadlineSeconds"),
            deadline.to_string(),
            &inclusive_range_error(1, MAX_INT32),
        );
    }
    for name in ["hostname", "subdomain"] {
        let value = s(spec, name);
        if !value.is_empty() {
            for msg in dns1123_label(value) {
                invalid(errs, &child(path, name), go_quote(value), &msg);
            }
        }
    }
    tolerations(list(spec, "tolerations"), &child(path, "tolerations"), errs);
    if let Some(policy) = spec.get("preemptionPolicy").and_then(Value::as_str)
        && !matches!(policy, "PreemptLowerPriority" | "Never")
    {
        not_supported(
            errs,
            &child(path, "preemptionPolicy"),
            go_quote(policy),
            &["PreemptLowerPriority", "Never"],
        );
    }
    if let Some(os) = field(spec, "os") {
        match s(os, "name") {
            "" => required(errs, &child(&child(path, "os"), "name"), "cannot be empty"),
            "linux" | "windows" => {}
            other => not_supported(
                errs,
                &child(path, "os"),
                go_quote(other),
                &["linux", "windows"],
            ),
        }
    }
    for (i, secret) in list(spec, "imagePullSecrets").iter().enumerate() {
        if secret
            .as_object()
            .is_some_and(|o| o.keys().any(|k| k != "name"))
        {
            invalid(
                errs,
                &index(&child(path, "imagePullSecrets"), i),
                secret.to_string(),
                "only name may be set",
            );
        }
    }
}

fn restart_policy(policy: &str, path: &str, errs: &mut Errs) {
    match policy {
        "Always" | "OnFailure" | "Never" => {}
        "" => required(errs, path, ""),
        other => not_supported(
            errs,
            path,
            go_quote(other),
            &["Always", "OnFailure", "Never"],
        ),
    }
}

/// `ValidateTolerations`.
pub(super) fn tolerations(items: &[Value], path: &str, errs: &mut Errs) {
    for (i, t) in items.iter().enumerate() {
        let p = index(path, i);
        let key = s(t, "key");
        let operator = s(t, "operator");
        let effect = s(t, "effect");
        if !key.is_empty() {
            label_name(key, &child(&p, "key"), errs);
        }
        if key.is_empty() && operator != "Exists" {
            invalid(
                errs,
                &child(&p, "operator"),
                go_quote(operator),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            );
        }
        if field(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            invalid(
                errs,
                &child(&p, "effect"),
                go_quote(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            );
        }
        let value = s(t, "value");
        match operator {
            "Equal" | "" => {
                let msgs = label_value(value);
                if !msgs.is_empty() {
                    invalid(
                        errs,
                        &child(&p, "operator"),
                        go_quote(value),
                        &msgs.join(";"),
                    );
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    invalid(
                        errs,
                        &child(&p, "operator"),
                        go_quote(value),
                        "value must be empty when `operator` is 'Exists'",
                    );
                }
            }
            other => not_supported(
                errs,
                &child(&p, "operator"),
                go_quote(other),
                &["Equal", "Exists"],
            ),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            not_supported(
                errs,
                &child(&p, "effect"),
                go_quote(effect),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            );
        }
    }
}

/// `ValidatePodTemplateSpec` at `path` (e.g. `spec.template`).
pub(super) fn pod_template(
    template: &Value,
    path: &str,
    extra_volumes: &[String],
    errs: &mut Errs,
) {
    let meta = template.get("metadata").unwrap_or(&Value::Null);
    labels(meta.get("labels"), &child(path, "labels"), errs);
    annotations(meta.get("annotations"), &child(path, "annotations"), errs);
    let spec = template.get("spec").unwrap_or(&Value::Null);
    pod_spec(spec, &child(path, "spec"), extra_volumes, errs);
    if !list(spec, "ephemeralContainers").is_empty() {
        forbidden(
            errs,
            &child(&child(path, "spec"), "ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        );
    }
}

/// A template's labels as `%#v` prints them.
pub(super) fn go_template_labels(template: &Value) -> String {
    go_string_map(template.get("metadata").and_then(|m| m.get("labels")))
}

/// A pod (create, or update when `old` is given).
pub(super) fn pod(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    pod_spec(spec, "spec", &[], errs);
    for (name, items) in [
        ("containers", list(spec, "containers")),
        ("initContainers", list(spec, "initContainers")),
    ] {
        for (i, c) in items.iter().enumerate() {
            let image = s(c, "image");
            if image.trim() != image {
                invalid(
                    errs,
                    &child(&index(&child("spec", name), i), "image"),
                    go_quote(image),
                    "must not have leading or trailing whitespace",
                );
            }
        }
    }
    match old {
        None => {
            if !list(spec, "ephemeralContainers").is_empty() {
                forbidden(errs, "spec.ephemeralContainers", "cannot be set on create");
            }
            if !s(spec, "nodeName").is_empty() && !list(spec, "schedulingGates").is_empty() {
                forbidden(
                    errs,
                    "spec.nodeName",
                    "cannot be set until all schedulingGates have been cleared",
                );
            }
        }
        Some(old) => pod_update(spec, old.get("spec").unwrap_or(&Value::Null), errs),
    }
}

fn pod_update(new: &Value, old: &Value, errs: &mut Errs) {
    for name in ["containers", "initContainers"] {
        if list(new, name).len() != list(old, name).len() {
            forbidden(
                errs,
                &child("spec", name),
                "pod updates may not add or remove containers",
            );
            return;
        }
    }
    if let Some(deadline) = int(new, "activeDeadlineSeconds") {
        if !(0..=MAX_INT32).contains(&deadline) {
            invalid(
                errs,
                "spec.activeDeadlineSeconds",
                deadline.to_string(),
                &inclusive_range_error(0, MAX_INT32),
            );
            return;
        }
        if int(old, "activeDeadlineSeconds").is_some_and(|o| o < deadline) {
            invalid(
                errs,
                "spec.activeDeadlineSeconds",
                deadline.to_string(),
                "must be less than or equal to previous value",
            );
            return;
        }
    } else if int(old, "activeDeadlineSeconds").is_some() {
        invalid(
            errs,
            "spec.activeDeadlineSeconds",
            "null",
            "must not update from a positive integer to nil value",
        );
    }
    only_added_tolerations(list(new, "tolerations"), list(old, "tolerations"), errs);
    only_deleted_scheduling_gates(new, old, errs);

    if semantic(new) == semantic(old) {
        return;
    }
    // Put back what may change, then anything left over is forbidden.
    let mut munged = new.clone();
    for name in ["containers", "initContainers"] {
        if let Some(items) = munged.get_mut(name).and_then(Value::as_array_mut) {
            for (c, o) in items.iter_mut().zip(list(old, name)) {
                c["image"] = o.get("image").cloned().unwrap_or(Value::Null);
            }
        }
    }
    for name in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
        copy_field(&mut munged, old, name);
    }
    if int(old, "terminationGracePeriodSeconds").is_some_and(|g| g < 0)
        && int(&munged, "terminationGracePeriodSeconds") == Some(1)
    {
        copy_field(&mut munged, old, "terminationGracePeriodSeconds");
    }
    if !list(old, "schedulingGates").is_empty() {
        // Gated pods may gain node selector entries.
        let added_only = old
            .get("nodeSelector")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .all(|(k, v)| munged.get("nodeSelector").and_then(|n| n.get(k)) == Some(v));
        if added_only {
            copy_field(&mut munged, old, "nodeSelector");
        } else {
            invalid(
                errs,
                "spec.nodeSelector",
                go_string_map(new.get("nodeSelector")),
                "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
            );
            copy_field(&mut munged, old, "nodeSelector");
        }
    }
    let (munged, old) = (semantic(&munged), semantic(old));
    if munged != old {
        forbidden(
            errs,
            "spec",
            &format!(
                "pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n  core.PodSpec{{\n{}\n  }}\n",
                diff(&old, &munged)
            ),
        );
    }
}

fn copy_field(into: &mut Value, from: &Value, name: &str) {
    if let Some(m) = into.as_object_mut() {
        match from.get(name) {
            Some(v) => {
                m.insert(name.to_owned(), v.clone());
            }
            None => {
                m.remove(name);
            }
        }
    }
}

fn only_added_tolerations(new: &[Value], old: &[Value], errs: &mut Errs) {
    let without_seconds = |t: &Value| {
        let mut t = t.clone();
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    for o in old {
        let o = without_seconds(o);
        if !new.iter().any(|n| without_seconds(n) == o) {
            forbidden(
                errs,
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            );
            return;
        }
    }
}

fn only_deleted_scheduling_gates(new: &Value, old: &Value, errs: &mut Errs) {
    let old_names: Vec<&str> = list(old, "schedulingGates")
        .iter()
        .map(|g| s(g, "name"))
        .collect();
    for (i, gate) in list(new, "schedulingGates").iter().enumerate() {
        let name = s(gate, "name");
        if !old_names.contains(&name) {
            forbidden(
                errs,
                &child(&index("spec.schedulingGates", i), "name"),
                &format!("only deletion is allowed, but found new scheduling gate '{name}'"),
            );
        }
    }
}

/// A PodTemplate object (`ValidatePodTemplate`).
pub(super) fn pod_template_object(obj: &Value, errs: &mut Errs) {
    pod_template(
        obj.get("template").unwrap_or(&json!({})),
        "template",
        &[],
        errs,
    );
}

/// Checks a template's labels against a selector the way controllers do;
/// reports a mismatch on `<path>.metadata.labels`.
pub(super) fn selector_mismatch(template: &Value, path: &str, errs: &mut Errs) {
    invalid(
        errs,
        &child(&child(path, "metadata"), "labels"),
        go_template_labels(template),
        "`selector` does not match template `labels`",
    );
}
