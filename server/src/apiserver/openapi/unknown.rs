//! Fields an object has that its schema does not declare, named as
//! upstream's strict JSON decoder names them (`spec.template.spec.containers[0].imagee`).

use serde_json::{Map, Value};

use super::index::{DefinitionId, Index, Node, Shape};

/// The definition of `metadata` in every object.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Unknown fields of `object` against a built-in definition.
pub(super) fn in_definition(index: &Index, definition: &str, object: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(id) = index.id(definition) {
        walk_definition(index, id, object, &mut String::new(), &mut out);
    }
    out
}

/// Unknown fields of a custom resource against its CRD's `openAPIV3Schema`.
pub(super) fn in_schema(index: &Index, schema: &Value, object: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_schema(index, schema, object, true, &mut String::new(), &mut out);
    out
}

fn walk_definition(
    index: &Index,
    id: DefinitionId,
    value: &Value,
    path: &mut String,
    out: &mut Vec<String>,
) {
    let Some(definition) = index.definition(id) else {
        return;
    };
    match &definition.shape {
        Shape::Value(node) => walk_node(index, node, value, path, out),
        Shape::Struct => {
            let Value::Object(map) = value else {
                return;
            };
            for (key, child) in map {
                let len = push_field(path, key);
                match definition.field(key) {
                    Some(field) => walk_node(index, &field.node, child, path, out),
                    None => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
    }
}

fn walk_node(index: &Index, node: &Node, value: &Value, path: &mut String, out: &mut Vec<String>) {
    match (node, value) {
        (Node::Definition(id), _) => walk_definition(index, *id, value, path, out),
        (Node::Array(item), Value::Array(items)) => {
            for (i, child) in items.iter().enumerate() {
                let len = push_index(path, i);
                walk_node(index, item, child, path, out);
                path.truncate(len);
            }
        }
        (Node::Map(values), Value::Object(map)) => {
            for (key, child) in map {
                let len = push_field(path, key);
                walk_node(index, values, child, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Walks a CRD schema. `resource` marks the root and
/// `x-kubernetes-embedded-resource` objects, where `apiVersion`, `kind` and
/// `metadata` are implied.
fn walk_schema(
    index: &Index,
    schema: &Value,
    value: &Value,
    resource: bool,
    path: &mut String,
    out: &mut Vec<String>,
) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if flag(schema, "x-kubernetes-int-or-string") {
        return;
    }
    match value {
        Value::Object(map) => {
            let resource = resource || flag(schema, "x-kubernetes-embedded-resource");
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let typed = schema.contains_key("type");
            let declares_fields = properties.is_some() || additional.is_some() || typed;
            for (key, child) in map {
                let len = push_field(path, key);
                let property = properties
                    .and_then(|p| p.get(key))
                    .or(additional.filter(|a| a.is_object()));
                if resource && key == "metadata" {
                    if let Some(id) = index.id(OBJECT_META) {
                        walk_definition(index, id, child, path, out);
                    }
                } else if let Some(property) = property {
                    walk_schema(index, property, child, false, path, out);
                } else {
                    let known = (resource && (key == "apiVersion" || key == "kind"))
                        || additional == Some(&Value::Bool(true))
                        || preserve
                        || !declares_fields;
                    if !known {
                        out.push(path.clone());
                    }
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, child) in items.iter().enumerate() {
                    let len = push_index(path, i);
                    walk_schema(index, item, child, false, path, out);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

fn flag(schema: &Map<String, Value>, name: &str) -> bool {
    schema.get(name) == Some(&Value::Bool(true))
}

/// Appends `.name` (or `name` at the root); returns the length to truncate back to.
fn push_field(path: &mut String, name: &str) -> usize {
    let len = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(name);
    len
}

/// Appends `[i]`; returns the length to truncate back to.
fn push_index(path: &mut String, i: usize) -> usize {
    let len = path.len();
    path.push('[');
    path.push_str(&i.to_string());
    path.push(']');
    len
}
