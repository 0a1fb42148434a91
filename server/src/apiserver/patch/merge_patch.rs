//! RFC 7386 JSON merge patch as kube-apiserver applies it (with
//! `evanphx/json-patch.v4`'s `MergePatch`): objects merge recursively, `null`
//! deletes a key, anything else (lists included) replaces. A value put where
//! there was none, or over a non-object, loses the `null` members of its
//! objects (recursively, also inside lists).

use serde_json::{Map, Value};

use super::{PatchError, go_json_kind, parse_json};

/// Upstream's `errBadJSONPatch`, answered as 400.
const BAD_MERGE_PATCH: &str = "Invalid JSON Patch";

/// Applies the merge patch `body` to a copy of `original`.
pub(super) fn apply(original: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let patch = parse_json(body).map_err(|_| bad_patch())?;
    match patch {
        Value::Object(patch) => {
            let mut doc = match original {
                Value::Object(map) => map.clone(),
                _ => Map::new(),
            };
            merge_objects(&mut doc, patch);
            Ok(Value::Object(doc))
        }
        // The library returns a list patch as the document, which the
        // apiserver then fails to decode as an object.
        Value::Array(_) => Err(PatchError::Malformed {
            message: format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_json_kind(&patch)
            ),
        }),
        _ => Err(bad_patch()),
    }
}

fn bad_patch() -> PatchError {
    PatchError::Malformed {
        message: BAD_MERGE_PATCH.to_string(),
    }
}

/// Merges `patch` into `doc` (both objects).
pub(super) fn merge_objects(doc: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            doc.remove(&key);
            continue;
        }
        match doc.get_mut(&key) {
            Some(Value::Object(current)) => match value {
                Value::Object(patch) => merge_objects(current, patch),
                other => {
                    doc.insert(key, other);
                }
            },
            _ => {
                let mut value = value;
                prune_nulls(&mut value);
                doc.insert(key, value);
            }
        }
    }
}

/// Drops `null` members of objects, recursively (into lists too, whose
/// `null` items stay).
fn prune_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(prune_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merge(original: Value, patch: Value) -> Result<Value, PatchError> {
        apply(&original, patch.to_string().as_bytes())
    }

    #[test]
    fn replaces_lists_and_deletes_nulls() {
        let original = json!({
            "metadata": {"labels": {"app": "web", "tier": "fe"}},
            "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}],
                     "replicas": 2}
        });
        let out = merge(
            original,
            json!({"metadata": {"labels": {"tier": null, "env": "prod"}},
                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "metadata": {"labels": {"app": "web", "env": "prod"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}], "replicas": 2}
            })
        );
    }

    #[test]
    fn new_values_lose_their_nulls() {
        let out = merge(
            json!({"a": 1, "s": "x"}),
            json!({"b": {"c": null, "d": [{"e": null, "f": 1}, null]}, "s": {"t": null, "u": 2}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"a": 1, "b": {"d": [{"f": 1}, null]}, "s": {"u": 2}})
        );
    }

    #[test]
    fn bad_patches() {
        for body in [&b"null"[..], b"5", b"\"x\"", b"{"] {
            let err = apply(&json!({}), body).unwrap_err();
            assert_eq!(err.to_string(), "Invalid JSON Patch");
            assert_eq!(err.code(), 400);
        }
        assert!(apply(&json!({}), b"[1]").is_err());
    }
}
