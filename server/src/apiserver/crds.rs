//! CustomResourceDefinitions: the kinds they add, and their custom
//! resources' defaults, validation (the version's openAPIV3Schema) and
//! printer columns.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Api;
use super::error::ApiError;
use super::object::{self, meta_str};
use super::resources::ResourceType;
use super::table::PrinterColumn;
use super::validation::{Cause, CauseReason};

fn crd_type(api: &Api) -> Option<Arc<ResourceType>> {
    api.resources
        .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
}

/// The served kinds of every established CRD.
pub fn resource_types(api: &Api) -> Result<Vec<Arc<ResourceType>>, ApiError> {
    let Some(rt) = crd_type(api) else {
        return Ok(Vec::new());
    };
    let page = api.store.list(&rt, "", 0, None, 0)?;
    let mut types = Vec::new();
    for crd in &page.items {
        if !meta_str(crd, "deletionTimestamp").is_empty() {
            continue;
        }
        let spec = &crd["spec"];
        let names = &spec["names"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        for version in spec["versions"].as_array().into_iter().flatten() {
            if version["served"].as_bool() != Some(true) {
                continue;
            }
            let mut subresources = Vec::new();
            if version["subresources"]["status"].is_object() {
                subresources.push("status".to_owned());
            }
            if version["subresources"]["scale"].is_object() {
                subresources.push("scale".to_owned());
            }
            let kind = names["kind"].as_str().unwrap_or("").to_owned();
            types.push(Arc::new(ResourceType {
                group: spec["group"].as_str().unwrap_or("").to_owned(),
                version: version["name"].as_str().unwrap_or("").to_owned(),
                singular: names["singular"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| kind.to_lowercase()),
                kind,
                plural: names["plural"].as_str().unwrap_or("").to_owned(),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                subresources,
                verbs: super::resources::STORED_VERBS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                custom: true,
            }));
        }
    }
    Ok(types)
}

/// Deletes every custom resource of a deleted CRD (kube-apiserver does this
/// before the CRD goes), so a CRD made again later starts empty; returns
/// how many were removed.
pub fn delete_custom_resources(api: &Api, crd: &Value) -> Result<usize, ApiError> {
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
    if group.is_empty() || plural.is_empty() {
        return Ok(0);
    }
    let prefix = format!("/registry/{group}/{plural}/");
    let log = api.store.log();
    let mut removed = 0;
    loop {
        let page = log.list(&crate::datastore::ListOptions {
            prefix: prefix.clone(),
            start_after: None,
            revision: 0,
            limit: 500,
        })?;
        if page.kvs.is_empty() {
            return Ok(removed);
        }
        for kv in &page.kvs {
            match log.delete(&kv.key, 0) {
                Ok(_) => removed += 1,
                Err(crate::datastore::DatastoreError::NotFound(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// The CRD version serving `rt`.
fn version_of(api: &Api, rt: &ResourceType) -> Option<Value> {
    let crd_rt = crd_type(api)?;
    let crd = api
        .store
        .try_get(&crd_rt, "", &format!("{}.{}", rt.plural, rt.group), 0)
        .ok()??;
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"].as_str() == Some(rt.version.as_str()))
        .cloned()
}

/// The openAPIV3Schema of a custom resource's version.
pub fn schema_of(api: &Api, rt: &ResourceType) -> Option<Value> {
    let schema = version_of(api, rt)?["schema"]["openAPIV3Schema"].clone();
    (!schema.is_null()).then_some(schema)
}

/// The version's additionalPrinterColumns.
pub fn printer_columns(api: &Api, rt: &ResourceType) -> Option<Vec<PrinterColumn>> {
    let version = version_of(api, rt)?;
    Some(PrinterColumn::from_crd_version(&version))
}

/// Fills the schema's `default`s where fields are absent.
pub fn apply_defaults(api: &Api, rt: &ResourceType, obj: &mut Value) {
    if let Some(schema) = schema_of(api, rt) {
        default_value(&schema, obj);
    }
}

fn default_value(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema["properties"].as_object() {
                for (name, sub) in properties {
                    if name == "metadata" || name == "apiVersion" || name == "kind" {
                        continue;
                    }
                    if !map.contains_key(name)
                        && let Some(default) = sub.get("default")
                    {
                        map.insert(name.clone(), default.clone());
                    }
                    if let Some(child) = map.get_mut(name) {
                        default_value(sub, child);
                    }
                }
            } else if let Some(additional) =
                schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for child in map.values_mut() {
                    default_value(additional, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    default_value(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Validates a custom resource against its schema (and its name).
pub fn validate(api: &Api, rt: &ResourceType, obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = meta_str(obj, "name");
    if name.is_empty() {
        causes.push(cause(
            CauseReason::Required,
            "metadata.name",
            "Required value: name or generateName is required".into(),
        ));
    } else if !is_dns_subdomain(name) {
        causes.push(cause(
            CauseReason::Invalid,
            "metadata.name",
            format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
        ));
    }
    if let Some(schema) = schema_of(api, rt)
        && let Some(map) = obj.as_object()
    {
        let properties = &schema["properties"];
        for (field, value) in map {
            if matches!(field.as_str(), "metadata" | "apiVersion" | "kind") {
                continue;
            }
            if let Some(sub) = properties.get(field) {
                check(sub, value, field, &mut causes);
            }
        }
        for required in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(required) {
                causes.push(cause(
                    CauseReason::Required,
                    required,
                    "Required value".into(),
                ));
            }
        }
    }
    causes
}

fn cause(reason: CauseReason, field: &str, message: String) -> Cause {
    Cause {
        reason,
        field: field.to_owned(),
        message,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `value` at `path` against an OpenAPI v3 (structural) schema.
fn check(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() && schema["nullable"].as_bool() == Some(true) {
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"].as_bool() == Some(true);
    if let Some(expected) = schema["type"].as_str() {
        let actual = type_name(value);
        let ok = actual == expected
            || (expected == "number" && actual == "integer")
            || (int_or_string && matches!(actual, "integer" | "string"));
        if !ok {
            causes.push(cause(
                CauseReason::TypeInvalid,
                path,
                format!("Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\""),
            ));
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        let supported: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        causes.push(cause(
            CauseReason::NotSupported,
            path,
            format!(
                "Unsupported value: {value}: supported values: {}",
                supported.join(", ")
            ),
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema["minimum"].as_f64()
            && n < min
        {
            causes.push(cause(CauseReason::Invalid, path, format!("Invalid value: {value}: {path} in body should be greater than or equal to {min}")));
        }
        if let Some(max) = schema["maximum"].as_f64()
            && n > max
        {
            causes.push(cause(
                CauseReason::Invalid,
                path,
                format!(
                    "Invalid value: {value}: {path} in body should be less than or equal to {max}"
                ),
            ));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(max) = schema["maxLength"].as_u64()
            && len > max
        {
            causes.push(cause(
                CauseReason::TooLong,
                path,
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
        if let Some(min) = schema["minLength"].as_u64()
            && len < min
        {
            causes.push(cause(
                CauseReason::Invalid,
                path,
                format!(
                    "Invalid value: {value}: {path} in body should be at least {min} chars long"
                ),
            ));
        }
        if let Some(pattern) = schema["pattern"].as_str()
            && let Ok(re) = regex::Regex::new(pattern)
            && !re.is_match(s)
        {
            causes.push(cause(
                CauseReason::Invalid,
                path,
                format!("Invalid value: {value}: {path} in body should match '{pattern}'"),
            ));
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema["properties"].as_object() {
                for (field, child) in map {
                    if let Some(sub) = properties.get(field) {
                        check(sub, child, &format!("{path}.{field}"), causes);
                    }
                }
            } else if let Some(additional) =
                schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for (field, child) in map {
                    check(additional, child, &format!("{path}.{field}"), causes);
                }
            }
            for required in schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(required) {
                    causes.push(cause(
                        CauseReason::Required,
                        &format!("{path}.{required}"),
                        "Required value".into(),
                    ));
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                causes.push(cause(
                    CauseReason::TooMany,
                    path,
                    format!("Too many: {}: must have at most {max} items", items.len()),
                ));
            }
            if let Some(min) = schema["minItems"].as_u64()
                && (items.len() as u64) < min
            {
                causes.push(cause(
                    CauseReason::Invalid,
                    path,
                    format!(
                        "Invalid value: {}: {path} in body should have at least {min} items",
                        items.len()
                    ),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), causes);
                }
            }
        }
        _ => {}
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A new or changed CRD is accepted and established at once (names are
/// checked by validation).
pub fn admit(crd: &mut Value, _old: Option<&Value>) {
    let now = object::now();
    let names = crd["spec"]["names"].clone();
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    let condition = |kind: &str, reason: &str, message: &str| json!({ "type": kind, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message });
    crd["status"] = json!({
        "acceptedNames": names,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": storage,
    });
}
