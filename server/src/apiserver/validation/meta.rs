//! Object metadata (names, labels, annotations, owner references,
//! finalizers) and label selectors, as apimachinery validates them.

use serde_json::Value;

use super::cause::{
    Errs, child, field, forbidden, go_quote, go_string_map, go_string_slice, index, int, invalid,
    list, map, nonnegative, required, s, sorted_entries, strings, too_long,
};
use super::names::{NameRule, dns1123_label, label_value, name_errors, qualified_name};

const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

/// What a kind's metadata must satisfy.
#[derive(Debug, Clone, Copy)]
pub(super) struct MetaRules {
    /// `Some(true)`: namespaced, `Some(false)`: cluster-scoped, `None`: unknown.
    pub namespaced: Option<bool>,
    /// The name format.
    pub name: NameRule,
    /// Core (non-apiextensions) kinds also require finalizers without a
    /// prefix to be one of the standard ones.
    pub kube_finalizers: bool,
}

/// `ValidateObjectMeta` (the caller has resolved `generateName` into `name`;
/// an empty namespace on a namespaced kind is the caller's to report).
pub(super) fn object_meta(obj: &Value, rules: MetaRules, errs: &mut Errs) {
    let meta = obj.get("metadata").unwrap_or(&Value::Null);
    let generate = s(meta, "generateName");
    if !generate.is_empty() {
        for msg in name_errors(rules.name, generate, true) {
            invalid(errs, "metadata.generateName", go_quote(generate), &msg);
        }
    }
    let name = s(meta, "name");
    if name.is_empty() {
        required(errs, "metadata.name", "name or generateName is required");
    } else {
        for msg in name_errors(rules.name, name, false) {
            invalid(errs, "metadata.name", go_quote(name), &msg);
        }
    }
    let namespace = s(meta, "namespace");
    match rules.namespaced {
        Some(false) if !namespace.is_empty() => {
            forbidden(errs, "metadata.namespace", "not allowed on this type")
        }
        Some(false) => {}
        _ if namespace.is_empty() => {}
        _ => {
            for msg in dns1123_label(namespace) {
                invalid(errs, "metadata.namespace", go_quote(namespace), &msg);
            }
        }
    }
    nonnegative(errs, "metadata.generation", int(meta, "generation"));
    meta_common(meta, rules, errs);
}

/// The parts of `ValidateObjectMetaUpdate` beyond the create checks:
/// identity fields are immutable, generation never goes back, no new
/// finalizers once deletion started.
pub(super) fn object_meta_update(obj: &Value, old: &Value, errs: &mut Errs) {
    let new_meta = obj.get("metadata").unwrap_or(&Value::Null);
    let old_meta = old.get("metadata").unwrap_or(&Value::Null);
    if !s(old_meta, "deletionTimestamp").is_empty() {
        let old_finalizers = strings(old_meta.get("finalizers"));
        let mut extra: Vec<&str> = strings(new_meta.get("finalizers"))
            .into_iter()
            .filter(|f| !old_finalizers.contains(f))
            .collect();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            let quoted: Vec<String> = extra.iter().map(|f| go_quote(f)).collect();
            forbidden(
                errs,
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    quoted.join(", ")
                ),
            );
        }
    }
    if let (Some(new), Some(old)) = (int(new_meta, "generation"), int(old_meta, "generation"))
        && new < old
    {
        invalid(
            errs,
            "metadata.generation",
            new.to_string(),
            "must not be decremented",
        );
    }
    // The server fills these from the stored object when a client leaves
    // them out, so only a differing value the client sent is an error.
    for name in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
    ] {
        let new = s(new_meta, name);
        let old = s(old_meta, name);
        if !new.is_empty() && new != old {
            invalid(
                errs,
                &format!("metadata.{name}"),
                go_quote(new),
                "field is immutable",
            );
        }
    }
}

fn meta_common(meta: &Value, rules: MetaRules, errs: &mut Errs) {
    labels(meta.get("labels"), "metadata.labels", errs);
    annotations(meta.get("annotations"), "metadata.annotations", errs);
    owner_references(meta, errs);
    finalizers(meta, rules.kube_finalizers, errs);
}

/// `ValidateLabels`: each key a qualified name, each value a label value.
pub(super) fn labels(labels: Option<&Value>, path: &str, errs: &mut Errs) {
    for (k, v) in sorted_entries(labels) {
        label_name(k, path, errs);
        let value = v.as_str().unwrap_or("");
        for msg in label_value(value) {
            invalid(errs, path, go_quote(value), &msg);
        }
    }
}

/// `ValidateLabelName`.
pub(super) fn label_name(name: &str, path: &str, errs: &mut Errs) {
    for msg in qualified_name(name) {
        invalid(errs, path, go_quote(name), &msg);
    }
}

/// `ValidateAnnotations`: keys are qualified names (case-insensitive), the
/// total size at most 256 KiB.
pub(super) fn annotations(annotations: Option<&Value>, path: &str, errs: &mut Errs) {
    let mut total = 0usize;
    for (k, v) in sorted_entries(annotations) {
        for msg in qualified_name(&k.to_lowercase()) {
            invalid(errs, path, go_quote(k), &msg);
        }
        total += k.len() + v.as_str().map(str::len).unwrap_or(0);
    }
    if total > TOTAL_ANNOTATION_SIZE {
        too_long(errs, path, TOTAL_ANNOTATION_SIZE);
    }
}

fn owner_references(meta: &Value, errs: &mut Errs) {
    let path = "metadata.ownerReferences";
    let mut controller: Option<String> = None;
    for reference in list(meta, "ownerReferences") {
        let api_version = s(reference, "apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            invalid(
                errs,
                &child(path, "apiVersion"),
                go_quote(api_version),
                "version must not be empty",
            );
        }
        for (name, detail) in [
            ("kind", "must not be empty"),
            ("name", "must not be empty"),
            ("uid", "must not be empty"),
        ] {
            if s(reference, name).is_empty() {
                invalid(errs, &child(path, name), "\"\"", detail);
            }
        }
        if api_version == "v1" && s(reference, "kind") == "Event" {
            invalid(
                errs,
                path,
                reference.to_string(),
                "/v1, Kind=Event is disallowed from being an owner",
            );
        }
        if reference.get("controller").and_then(Value::as_bool) == Some(true) {
            let this = format!("{}/{}", s(reference, "kind"), s(reference, "name"));
            match &controller {
                Some(first) => invalid(
                    errs,
                    path,
                    field(meta, "ownerReferences")
                        .map(Value::to_string)
                        .unwrap_or_default(),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                ),
                None => controller = Some(this),
            }
        }
    }
}

fn finalizers(meta: &Value, kube: bool, errs: &mut Errs) {
    let path = "metadata.finalizers";
    let names = strings(meta.get("finalizers"));
    for f in &names {
        for msg in qualified_name(f) {
            invalid(errs, path, go_quote(f), &msg);
        }
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        invalid(
            errs,
            path,
            go_string_slice(meta.get("finalizers")),
            "finalizer orphan and foregroundDeletion cannot be both set",
        );
    }
    if kube {
        for (i, f) in names.iter().enumerate() {
            kube_finalizer(f, &index(path, i), errs);
        }
    }
}

/// `validateKubeFinalizerName`: an unprefixed finalizer must be a standard one.
pub(super) fn kube_finalizer(name: &str, path: &str, errs: &mut Errs) {
    if !name.contains('/') && !matches!(name, "kubernetes" | "orphan" | "foregroundDeletion") {
        invalid(
            errs,
            path,
            go_quote(name),
            "name is neither a standard finalizer name nor is it fully qualified",
        );
    }
}

/// `ValidateLabelSelector` (a missing selector is valid).
pub(super) fn label_selector(sel: Option<&Value>, path: &str, errs: &mut Errs) {
    let Some(sel) = sel.filter(|v| !v.is_null()) else {
        return;
    };
    labels(sel.get("matchLabels"), &child(path, "matchLabels"), errs);
    let exprs_path = child(path, "matchExpressions");
    for (i, expr) in list(sel, "matchExpressions").iter().enumerate() {
        let p = index(&exprs_path, i);
        let values = strings(expr.get("values"));
        match s(expr, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    required(
                        errs,
                        &child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    );
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    forbidden(
                        errs,
                        &child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    );
                }
            }
            other => invalid(
                errs,
                &child(&p, "operator"),
                go_quote(other),
                "not a valid selector operator",
            ),
        }
        label_name(s(expr, "key"), &child(&p, "key"), errs);
        for (j, value) in values.iter().enumerate() {
            for msg in label_value(value) {
                invalid(errs, &index(&child(&p, "values"), j), go_quote(value), &msg);
            }
        }
    }
}

/// Whether `sel` selects objects carrying `labels` (`None`: the selector
/// cannot be converted, e.g. an unknown operator).
pub(super) fn selector_matches(sel: &Value, labels: Option<&Value>) -> Option<bool> {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let mut ok = true;
    if let Some(match_labels) = map(sel, "matchLabels") {
        for (k, v) in match_labels {
            if get(k) != v.as_str() {
                ok = false;
            }
        }
    }
    for expr in list(sel, "matchExpressions") {
        let have = get(s(expr, "key"));
        let values = strings(expr.get("values"));
        let hit = match s(expr, "operator") {
            "In" => have.is_some_and(|h| values.contains(&h)),
            "NotIn" => have.is_none_or(|h| !values.contains(&h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => return None,
        };
        ok &= hit;
    }
    Some(ok)
}

/// A selector with neither matchLabels nor matchExpressions.
pub(super) fn selector_is_empty(sel: &Value) -> bool {
    map(sel, "matchLabels").is_none_or(|m| m.is_empty()) && list(sel, "matchExpressions").is_empty()
}

/// A `metav1.LabelSelector` as `%#v` prints it.
pub(super) fn go_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|v| !v.is_null()) else {
        return "(*v1.LabelSelector)(nil)".into();
    };
    let exprs = list(sel, "matchExpressions");
    let exprs = if exprs.is_empty() {
        "[]v1.LabelSelectorRequirement(nil)".to_owned()
    } else {
        let items: Vec<String> = exprs
            .iter()
            .map(|e| {
                format!(
                    "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                    go_quote(s(e, "key")),
                    go_quote(s(e, "operator")),
                    go_string_slice(e.get("values"))
                )
            })
            .collect();
        format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_string_map(sel.get("matchLabels"))
    )
}
