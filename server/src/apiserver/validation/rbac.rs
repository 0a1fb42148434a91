//! Roles, ClusterRoles and their bindings (`pkg/apis/rbac/validation`).

use serde_json::Value;

use super::cause::{
    Errs, child, field, go_quote, go_string_slice, index, invalid, list, not_supported, required, s,
};
use super::meta::label_selector;
use super::names::{dns1123_subdomain, path_segment};

const GROUP: &str = "rbac.authorization.k8s.io";

/// A Role (`namespaced`) or ClusterRole.
pub(super) fn role(obj: &Value, namespaced: bool, errs: &mut Errs) {
    for (i, rule) in list(obj, "rules").iter().enumerate() {
        policy_rule(rule, namespaced, &index("rules", i), errs);
    }
    if namespaced {
        return;
    }
    if let Some(aggregation) = field(obj, "aggregationRule") {
        let path = "aggregationRule.clusterRoleSelectors";
        let selectors = list(aggregation, "clusterRoleSelectors");
        if selectors.is_empty() {
            required(
                errs,
                path,
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            );
        }
        for (i, sel) in selectors.iter().enumerate() {
            label_selector(Some(sel), &index(path, i), errs);
        }
    }
}

fn policy_rule(rule: &Value, namespaced: bool, p: &str, errs: &mut Errs) {
    if list(rule, "verbs").is_empty() {
        required(
            errs,
            &child(p, "verbs"),
            "verbs must contain at least one value",
        );
    }
    if !list(rule, "nonResourceURLs").is_empty() {
        let urls = go_string_slice(rule.get("nonResourceURLs"));
        if namespaced {
            invalid(
                errs,
                &child(p, "nonResourceURLs"),
                &urls,
                "namespaced rules cannot apply to non-resource URLs",
            );
        }
        if !list(rule, "apiGroups").is_empty()
            || !list(rule, "resources").is_empty()
            || !list(rule, "resourceNames").is_empty()
        {
            invalid(
                errs,
                &child(p, "nonResourceURLs"),
                &urls,
                "rules cannot apply to both regular resources and non-resource URLs",
            );
        }
        return;
    }
    if rule
        .get("apiGroups")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        required(
            errs,
            &child(p, "apiGroups"),
            "resource rules must supply at least one api group",
        );
    }
    if list(rule, "resources").is_empty() {
        required(
            errs,
            &child(p, "resources"),
            "resource rules must supply at least one resource",
        );
    }
}

/// A RoleBinding (`namespaced`) or ClusterRoleBinding (create, or update
/// when `old` is given).
pub(super) fn binding(obj: &Value, old: Option<&Value>, namespaced: bool, errs: &mut Errs) {
    let role_ref = obj.get("roleRef").unwrap_or(&Value::Null);
    let api_group = s(role_ref, "apiGroup");
    if api_group != GROUP {
        not_supported(errs, "roleRef.apiGroup", go_quote(api_group), &[GROUP]);
    }
    let kind = s(role_ref, "kind");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        not_supported(errs, "roleRef.kind", go_quote(kind), kinds);
    }
    let name = s(role_ref, "name");
    if name.is_empty() {
        required(errs, "roleRef.name", "");
    } else {
        for msg in path_segment(name) {
            invalid(errs, "roleRef.name", go_quote(name), &msg);
        }
    }
    for (i, subject) in list(obj, "subjects").iter().enumerate() {
        self::subject(subject, namespaced, &index("subjects", i), errs);
    }
    if let Some(old) = old {
        let old_ref = old.get("roleRef").unwrap_or(&Value::Null);
        let same = ["apiGroup", "kind", "name"]
            .iter()
            .all(|f| s(role_ref, f) == s(old_ref, f));
        if !same {
            let value = format!(
                "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
                go_quote(api_group),
                go_quote(kind),
                go_quote(name)
            );
            invalid(errs, "roleRef", value, "cannot change roleRef");
        }
    }
}

fn subject(subject: &Value, namespaced: bool, p: &str, errs: &mut Errs) {
    let name = s(subject, "name");
    if name.is_empty() {
        required(errs, &child(p, "name"), "");
    }
    let api_group = s(subject, "apiGroup");
    match s(subject, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                for msg in dns1123_subdomain(name) {
                    invalid(errs, &child(p, "name"), go_quote(name), &msg);
                }
            }
            if !api_group.is_empty() {
                not_supported(errs, &child(p, "apiGroup"), go_quote(api_group), &[""]);
            }
            if !namespaced && s(subject, "namespace").is_empty() {
                required(errs, &child(p, "namespace"), "");
            }
        }
        // An empty apiGroup is defaulted for users and groups.
        "User" | "Group" => {
            if !api_group.is_empty() && api_group != GROUP {
                not_supported(errs, &child(p, "apiGroup"), go_quote(api_group), &[GROUP]);
            }
        }
        other => not_supported(
            errs,
            &child(p, "kind"),
            go_quote(other),
            &["ServiceAccount", "User", "Group"],
        ),
    }
}
