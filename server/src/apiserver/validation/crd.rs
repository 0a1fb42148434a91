//! CustomResourceDefinitions (`apiextensions-apiserver/pkg/apis/apiextensions/validation`).

use std::collections::BTreeSet;

use serde_json::Value;

use super::cause::{
    Errs, child, field, flag, go_quote, go_value, index, invalid, list, not_supported, required, s,
    strings,
};
use super::names::{dns1035_label, dns1123_subdomain};

/// An apiextensions.k8s.io/v1 CustomResourceDefinition (create, or update
/// when `old` is given).
pub(super) fn custom_resource_definition(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let names = spec.get("names").unwrap_or(&Value::Null);
    let group = s(spec, "group");
    let name = obj.get("metadata").map(|m| s(m, "name")).unwrap_or("");
    if !name.is_empty() && name != format!("{}.{group}", s(names, "plural")) {
        invalid(
            errs,
            "metadata.name",
            go_quote(name),
            "must be spec.names.plural+\".\"+spec.group",
        );
    }
    if group.is_empty() {
        required(errs, "spec.group", "");
    } else {
        let msgs = dns1123_subdomain(group);
        if !msgs.is_empty() {
            invalid(errs, "spec.group", go_quote(group), &msgs.join(","));
        } else if !group.contains('.') {
            invalid(
                errs,
                "spec.group",
                go_quote(group),
                "should be a domain with at least one dot",
            );
        }
    }
    match s(spec, "scope") {
        "" => required(errs, "spec.scope", ""),
        "Cluster" | "Namespaced" => {}
        other => not_supported(
            errs,
            "spec.scope",
            go_quote(other),
            &["Cluster", "Namespaced"],
        ),
    }
    versions(spec, errs);
    if s(names, "plural").is_empty() {
        required(errs, "spec.names.plural", "");
    }
    if s(names, "kind").is_empty() {
        required(errs, "spec.names.kind", "");
    }
    crd_names(names, errs);
    if let Some(old) = old {
        let old_spec = old.get("spec").unwrap_or(&Value::Null);
        for name in ["group", "scope"] {
            if field(spec, name) != field(old_spec, name) {
                invalid(
                    errs,
                    &format!("spec.{name}"),
                    go_value(field(spec, name)),
                    "field is immutable",
                );
            }
        }
    }
}

/// The versions list as upstream's `%#v` of its internal type begins it.
fn go_versions(spec: &Value) -> String {
    let versions = list(spec, "versions");
    if versions.is_empty() {
        return "[]apiextensions.CustomResourceDefinitionVersion(nil)".into();
    }
    let items: Vec<String> = versions
        .iter()
        .map(|v| {
            format!(
                "apiextensions.CustomResourceDefinitionVersion{{Name:{}, Served:{}, Storage:{}}}",
                go_quote(s(v, "name")),
                flag(v, "served"),
                flag(v, "storage")
            )
        })
        .collect();
    format!(
        "[]apiextensions.CustomResourceDefinitionVersion{{{}}}",
        items.join(", ")
    )
}

fn versions(spec: &Value, errs: &mut Errs) {
    let versions = list(spec, "versions");
    let mut seen = BTreeSet::new();
    let mut unique = true;
    let mut storage = 0;
    for (i, version) in versions.iter().enumerate() {
        let p = index("spec.versions", i);
        let name = s(version, "name");
        if flag(version, "storage") {
            storage += 1;
        }
        if !seen.insert(name) {
            unique = false;
        }
        let msgs = dns1035_label(name);
        if !msgs.is_empty() {
            invalid(errs, &child(&p, "name"), go_quote(name), &msgs.join(","));
        }
        let schema = version
            .get("schema")
            .and_then(|sc| sc.get("openAPIV3Schema"))
            .filter(|v| !v.is_null());
        match schema {
            None => required(
                errs,
                &child(&p, "schema.openAPIV3Schema"),
                "schemas are required",
            ),
            Some(schema) => match schema.get("type").and_then(Value::as_str) {
                None | Some("") if !flag(schema, "x-kubernetes-preserve-unknown-fields") => {
                    required(
                        errs,
                        &child(&p, "schema.openAPIV3Schema.type"),
                        "must not be empty at the root",
                    );
                }
                Some(t) if t != "object" && !t.is_empty() => {
                    invalid(
                        errs,
                        &child(&p, "schema.openAPIV3Schema.type"),
                        go_quote(t),
                        "must be object at the root",
                    );
                }
                _ => {}
            },
        }
        for (j, column) in list(version, "additionalPrinterColumns").iter().enumerate() {
            let cp = index(&child(&p, "additionalPrinterColumns"), j);
            if s(column, "name").is_empty() {
                required(errs, &child(&cp, "name"), "");
            }
            match s(column, "type") {
                "" => required(errs, &child(&cp, "type"), ""),
                "integer" | "number" | "string" | "boolean" | "date" => {}
                other => not_supported(
                    errs,
                    &child(&cp, "type"),
                    go_quote(other),
                    &["boolean", "date", "integer", "number", "string"],
                ),
            }
            if s(column, "jsonPath").is_empty() {
                required(errs, &child(&cp, "JSONPath"), "");
            }
        }
    }
    if !unique {
        invalid(
            errs,
            "spec.versions",
            go_versions(spec),
            "must contain unique version names",
        );
    }
    if storage != 1 {
        invalid(
            errs,
            "spec.versions",
            go_versions(spec),
            "must have exactly one version marked as storage version",
        );
    }
}

fn crd_names(names: &Value, errs: &mut Errs) {
    for (name, mixed_case) in [
        ("plural", false),
        ("singular", false),
        ("kind", true),
        ("listKind", true),
    ] {
        let value = s(names, name);
        if value.is_empty() {
            continue;
        }
        let msgs = dns1035_label(&if mixed_case {
            value.to_lowercase()
        } else {
            value.to_owned()
        });
        if !msgs.is_empty() {
            let detail = if mixed_case {
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    msgs.join(",")
                )
            } else {
                msgs.join(",")
            };
            invalid(
                errs,
                &format!("spec.names.{name}"),
                go_quote(value),
                &detail,
            );
        }
    }
    for (list_name, items) in [
        ("shortNames", strings(names.get("shortNames"))),
        ("categories", strings(names.get("categories"))),
    ] {
        for (i, item) in items.iter().enumerate() {
            let msgs = dns1035_label(item);
            if !msgs.is_empty() {
                invalid(
                    errs,
                    &index(&format!("spec.names.{list_name}"), i),
                    go_quote(item),
                    &msgs.join(","),
                );
            }
        }
    }
    let kind = s(names, "kind");
    if !kind.is_empty() && kind == s(names, "listKind") {
        invalid(
            errs,
            "spec.names.listKind",
            go_quote(kind),
            "kind and listKind may not be the same",
        );
    }
}
