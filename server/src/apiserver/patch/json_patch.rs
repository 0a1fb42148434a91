//! RFC 6902 JSON patch as kube-apiserver applies it (with the Go library
//! `gopkg.in/evanphx/json-patch.v4`), quirks included:
//! - a body of `null` is an empty patch; a body that is not a list is refused
//!   with Go's decoder message;
//! - array indices may be negative, counting from the end (`add` at `-1`
//!   appends, `remove` at `-1` drops the last item);
//! - `replace` of a missing key of an object adds it (only a missing parent
//!   or array index fails);
//! - `copy`/`move` from a missing key of an object copies `null`;
//! - a path without a leading `/` loses its first segment (`a/b` is `/b`).
//!
//! Error texts are the library's, each naming the operation's path.

use serde_json::{Map, Value};

use super::{MAX_JSON_PATCH_OPERATIONS, PatchError, go_json_kind, parse_json};

/// Applies the JSON patch `body` to a copy of `original`.
pub(super) fn apply(original: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let ops = decode(body)?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            max: MAX_JSON_PATCH_OPERATIONS,
            got: ops.len(),
        });
    }
    let mut doc = original.clone();
    for op in &ops {
        let op = Operation(op.as_object());
        op.apply(&mut doc)?;
    }
    Ok(doc)
}

/// Decodes the body as Go's `json.Unmarshal(body, &jsonpatch.Patch{})` would.
fn decode(body: &[u8]) -> Result<Vec<Value>, PatchError> {
    let malformed = |kind: &str, go_type: &str| PatchError::Malformed {
        message: format!("json: cannot unmarshal {kind} into Go value of type {go_type}"),
    };
    match parse_json(body)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(ops) => {
            if let Some(bad) = ops.iter().find(|op| !(op.is_object() || op.is_null())) {
                return Err(malformed(go_json_kind(bad), "jsonpatch.Operation"));
            }
            Ok(ops)
        }
        other => Err(malformed(go_json_kind(&other), "jsonpatch.Patch")),
    }
}

/// The `value` member of an operation: absent, `null`, or a value.
enum OpValue {
    Absent,
    Null,
    Present(Value),
}

/// One operation; `None` for a `null` list item (which has no `op`).
struct Operation<'a>(Option<&'a Map<String, Value>>);

impl Operation<'_> {
    fn member(&self, name: &str) -> Option<&Value> {
        self.0.and_then(|m| m.get(name))
    }

    fn kind(&self) -> &str {
        self.member("op")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
    }

    /// The `path` (or `from`) member; `Err` holds the library's text.
    fn pointer(&self, name: &str) -> Result<String, String> {
        match self.member(name) {
            None | Some(Value::Null) if name == "path" => {
                Err("operation missing path field: missing value".to_string())
            }
            None | Some(Value::Null) => {
                Err("operation, missing from field: missing value".to_string())
            }
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!(
                "json: cannot unmarshal {} into Go value of type string",
                go_json_kind(other)
            )),
        }
    }

    fn value(&self) -> OpValue {
        match self.member("value") {
            None => OpValue::Absent,
            Some(Value::Null) => OpValue::Null,
            Some(v) => OpValue::Present(v.clone()),
        }
    }

    fn apply(&self, doc: &mut Value) -> Result<(), PatchError> {
        match self.kind() {
            "add" => self.add(doc),
            "remove" => self.remove(doc),
            "replace" => self.replace(doc),
            "move" => self.move_(doc),
            "test" => self.test(doc),
            "copy" => self.copy(doc),
            other => Err(failed(
                self.pointer("path").unwrap_or_default(),
                format!("Unexpected kind: {other}"),
            )),
        }
    }

    fn add(&self, doc: &mut Value) -> Result<(), PatchError> {
        let path = self.pointer("path").map_err(|_| {
            failed(
                String::new(),
                "add operation failed to decode path: missing value",
            )
        })?;
        let Some((container, key)) = find_container(doc, &path) else {
            let msg = format!(
                "add operation does not apply: doc is missing path: \"{path}\": missing value"
            );
            return Err(failed(path, msg));
        };
        let value = match self.value() {
            OpValue::Present(v) => v,
            OpValue::Absent | OpValue::Null => Value::Null,
        };
        add(container, &key, value).map_err(|e| {
            let msg = format!("error in add for path: '{path}': {e}");
            failed(path.clone(), msg)
        })
    }

    fn remove(&self, doc: &mut Value) -> Result<(), PatchError> {
        let path = self.pointer("path").map_err(|_| {
            failed(
                String::new(),
                "remove operation failed to decode path: missing value",
            )
        })?;
        let Some((container, key)) = find_container(doc, &path) else {
            let msg = format!(
                "remove operation does not apply: doc is missing path: \"{path}\": missing value"
            );
            return Err(failed(path, msg));
        };
        remove(container, &key).map(drop).map_err(|e| {
            let msg = format!("error in remove for path: '{path}': {e}");
            failed(path.clone(), msg)
        })
    }

    fn replace(&self, doc: &mut Value) -> Result<(), PatchError> {
        let path = self.pointer("path").map_err(|e| {
            failed(
                String::new(),
                format!("replace operation failed to decode path: {e}"),
            )
        })?;
        let Some((container, key)) = find_container(doc, &path) else {
            let msg = format!(
                "replace operation does not apply: doc is missing path: {path}: missing value"
            );
            return Err(failed(path, msg));
        };
        if get(container, &key).is_err() {
            let msg = format!(
                "replace operation does not apply: doc is missing key: {path}: missing value"
            );
            return Err(failed(path, msg));
        }
        let value = match self.value() {
            OpValue::Present(v) => v,
            OpValue::Absent | OpValue::Null => Value::Null,
        };
        set(container, &key, value);
        Ok(())
    }

    fn move_(&self, doc: &mut Value) -> Result<(), PatchError> {
        let from = self.pointer("from").map_err(|e| {
            failed(
                String::new(),
                format!("move operation failed to decode from: {e}"),
            )
        })?;
        let Some((container, key)) = find_container(doc, &from) else {
            let msg = format!(
                "move operation does not apply: doc is missing from path: {from}: missing value"
            );
            return Err(failed(from, msg));
        };
        let in_move = |e: String| {
            let msg = format!("error in move for path: '{key}': {e}");
            failed(from.clone(), msg)
        };
        get(container, &key).map_err(in_move)?;
        let value = remove(container, &key).map_err(in_move)?;
        let path = self.pointer("path").map_err(|e| {
            failed(
                from.clone(),
                format!("move operation failed to decode path: {e}"),
            )
        })?;
        let Some((container, key)) = find_container(doc, &path) else {
            let msg = format!(
                "move operation does not apply: doc is missing destination path: {path}: missing value"
            );
            return Err(failed(path, msg));
        };
        add(container, &key, value).map_err(|e| {
            let msg = format!("error in move for path: '{path}': {e}");
            failed(path.clone(), msg)
        })
    }

    fn test(&self, doc: &mut Value) -> Result<(), PatchError> {
        let path = self.pointer("path").map_err(|e| {
            failed(
                String::new(),
                format!("test operation failed to decode path: {e}"),
            )
        })?;
        let Some((container, key)) = find_container(doc, &path) else {
            let msg =
                format!("test operation does not apply: is missing path: {path}: missing value");
            return Err(failed(path, msg));
        };
        let actual = get(container, &key).map_err(|e| {
            let msg = format!("error in test for path: '{path}': {e}");
            failed(path.clone(), msg)
        })?;
        // A missing key and a `null` are the same to the library; a test
        // for `null` passes on both.
        let equal = match (actual, self.value()) {
            (None, OpValue::Null) => true,
            (Some(actual), OpValue::Present(expected)) => *actual == expected,
            _ => false,
        };
        if equal {
            Ok(())
        } else {
            let msg = format!("testing value {path} failed: test failed");
            Err(failed(path, msg))
        }
    }

    fn copy(&self, doc: &mut Value) -> Result<(), PatchError> {
        let from = self.pointer("from").map_err(|e| {
            failed(
                String::new(),
                format!("copy operation failed to decode from: {e}"),
            )
        })?;
        let Some((container, key)) = find_container(doc, &from) else {
            let msg = format!(
                "copy operation does not apply: doc is missing from path: {from}: missing value"
            );
            return Err(failed(from, msg));
        };
        let value = get(container, &key)
            .map_err(|e| {
                let msg = format!("error in copy for from: '{from}': {e}");
                failed(from.clone(), msg)
            })?
            .cloned()
            .unwrap_or(Value::Null);
        let path = self.pointer("path").map_err(|_| {
            failed(
                from.clone(),
                "copy operation failed to decode path: missing value",
            )
        })?;
        let Some((container, key)) = find_container(doc, &path) else {
            let msg = format!(
                "copy operation does not apply: doc is missing destination path: {path}: missing value"
            );
            return Err(failed(path, msg));
        };
        add(container, &key, value).map_err(|e| {
            let msg = format!("error while adding value during copy: {e}");
            failed(path.clone(), msg)
        })
    }
}

fn failed(path: String, message: impl Into<String>) -> PatchError {
    PatchError::JsonPatchOperation {
        path,
        message: message.into(),
    }
}

/// RFC 6901 unescaping: `~1` is `/`, `~0` is `~` (in one pass).
fn decode_key(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    let mut chars = segment.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('~', Some('1')) => {
                out.push('/');
                chars.next();
            }
            ('~', Some('0')) => {
                out.push('~');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// The object or array holding the last segment of `path`, and that
/// segment; `None` when a parent is missing or is not a container.
fn find_container<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() < 2 {
        return None;
    }
    let last = segments.len() - 1;
    let mut current = doc;
    for segment in &segments[1..last] {
        let part = decode_key(segment);
        let next = match current {
            Value::Object(map) => map.get_mut(&part)?,
            Value::Array(items) => {
                let index = usize::try_from(atoi(&part).ok()?).ok()?;
                items.get_mut(index)?
            }
            _ => return None,
        };
        if !(next.is_object() || next.is_array()) {
            return None;
        }
        current = next;
    }
    if !(current.is_object() || current.is_array()) {
        return None;
    }
    Some((current, decode_key(segments[last])))
}

/// Go's `strconv.Atoi`, with its error text.
fn atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {s:?}: invalid syntax"));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: value out of range"))
}

fn invalid_index(index: i64) -> String {
    format!("Unable to access invalid index: {index}: invalid index referenced")
}

/// The value at `key`; `Ok(None)` for a missing object key or a `null`.
fn get<'a>(container: &'a Value, key: &str) -> Result<Option<&'a Value>, String> {
    match container {
        Value::Object(map) => Ok(map.get(key).filter(|v| !v.is_null())),
        Value::Array(items) => {
            let index = atoi(key)?;
            let item = usize::try_from(index)
                .ok()
                .and_then(|i| items.get(i))
                .ok_or_else(|| invalid_index(index))?;
            Ok(Some(item).filter(|v| !v.is_null()))
        }
        _ => Err(invalid_index(0)),
    }
}

fn add(container: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match container {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
            Ok(())
        }
        Value::Array(items) => {
            if key == "-" {
                items.push(value);
                return Ok(());
            }
            let index = atoi(key)
                .map_err(|e| format!("value was not a proper array index: '{key}': {e}"))?;
            let size = i64::try_from(items.len()).unwrap_or(i64::MAX) + 1;
            if index >= size || index < -size {
                return Err(invalid_index(index));
            }
            let at = if index < 0 { index + size } else { index };
            items.insert(usize::try_from(at).unwrap_or(0), value);
            Ok(())
        }
        _ => Err(invalid_index(0)),
    }
}

/// Removes and returns the value at `key`.
fn remove(container: &mut Value, key: &str) -> Result<Value, String> {
    match container {
        Value::Object(map) => map
            .remove(key)
            .ok_or_else(|| format!("Unable to remove nonexistent key: {key}: missing value")),
        Value::Array(items) => {
            let index = atoi(key)?;
            let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
            if index >= len || index < -len {
                return Err(invalid_index(index));
            }
            let at = if index < 0 { index + len } else { index };
            Ok(items.remove(usize::try_from(at).unwrap_or(0)))
        }
        _ => Err(invalid_index(0)),
    }
}

/// Overwrites `key`, which [`get`] has found.
fn set(container: &mut Value, key: &str, value: Value) {
    match container {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(items) => {
            let slot = atoi(key)
                .ok()
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| items.get_mut(i));
            if let Some(slot) = slot {
                *slot = value;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}},
            "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]}
        })
    }

    fn patch(original: &Value, ops: Value) -> Result<Value, PatchError> {
        apply(original, ops.to_string().as_bytes())
    }

    fn message(err: PatchError) -> String {
        err.to_string()
    }

    #[test]
    fn add_replace_remove() {
        let out = patch(
            &pod(),
            json!([
                {"op": "add", "path": "/metadata/labels/env", "value": "prod"},
                {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.27"},
                {"op": "remove", "path": "/metadata/labels/tier"},
                {"op": "add", "path": "/spec/containers/-", "value": {"name": "c", "image": "busybox"}},
                {"op": "add", "path": "/spec/containers/0", "value": {"name": "z", "image": "z"}}
            ]),
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web", "env": "prod"})
        );
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["z", "a", "b", "c"]);
        assert_eq!(out["spec"]["containers"][1]["image"], "nginx:1.27");
    }

    #[test]
    fn test_op_failure_names_the_path() {
        let err = patch(
            &pod(),
            json!([{"op": "test", "path": "/metadata/name", "value": "db"},
                   {"op": "replace", "path": "/metadata/name", "value": "x"}]),
        )
        .unwrap_err();
        assert_eq!(err.field_path(), Some("/metadata/name"));
        assert_eq!(
            message(err),
            "testing value /metadata/name failed: test failed"
        );
        // A passing test lets the rest apply.
        let out = patch(
            &pod(),
            json!([{"op": "test", "path": "/metadata/name", "value": "web"},
                   {"op": "test", "path": "/metadata/missing", "value": null},
                   {"op": "replace", "path": "/metadata/name", "value": "x"}]),
        )
        .unwrap();
        assert_eq!(out["metadata"]["name"], "x");
    }

    #[test]
    fn missing_paths() {
        let err = patch(
            &pod(),
            json!([{"op": "remove", "path": "/metadata/labels/nope"}]),
        )
        .unwrap_err();
        assert_eq!(
            message(err),
            "error in remove for path: '/metadata/labels/nope': Unable to remove nonexistent key: nope: missing value"
        );
        let err = patch(
            &pod(),
            json!([{"op": "add", "path": "/status/phase", "value": "x"}]),
        )
        .unwrap_err();
        assert_eq!(
            message(err),
            "add operation does not apply: doc is missing path: \"/status/phase\": missing value"
        );
        let err = patch(
            &pod(),
            json!([{"op": "replace", "path": "/spec/containers/5/image", "value": "x"}]),
        )
        .unwrap_err();
        assert_eq!(
            message(err),
            "replace operation does not apply: doc is missing path: /spec/containers/5/image: missing value"
        );
        let err = patch(
            &pod(),
            json!([{"op": "replace", "path": "/spec/containers/5", "value": {}}]),
        )
        .unwrap_err();
        assert_eq!(
            message(err),
            "replace operation does not apply: doc is missing key: /spec/containers/5: missing value"
        );
        let err = patch(
            &pod(),
            json!([{"op": "add", "path": "/spec/containers/3", "value": {}}]),
        )
        .unwrap_err();
        assert_eq!(
            message(err),
            "error in add for path: '/spec/containers/3': Unable to access invalid index: 3: invalid index referenced"
        );
    }

    #[test]
    fn upstream_quirks() {
        // replace of a missing key of an existing object adds it
        let out = patch(
            &pod(),
            json!([{"op": "replace", "path": "/metadata/labels/new", "value": "v"}]),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"]["new"], "v");
        // negative indices count from the end
        let out = patch(
            &pod(),
            json!([{"op": "remove", "path": "/spec/containers/-1"}]),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "nginx"}])
        );
        // null body is an empty patch
        assert_eq!(apply(&pod(), b"null").unwrap(), pod());
        // RFC 6901 escapes
        let out = patch(
            &pod(),
            json!([{"op": "add", "path": "/metadata/labels/example.com~1role", "value": "x"}]),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"]["example.com/role"], "x");
    }

    #[test]
    fn move_and_copy() {
        let out = patch(
            &pod(),
            json!([{"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/copy"},
                   {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/tierMoved"}]),
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web", "copy": "web"})
        );
        assert_eq!(out["metadata"]["tierMoved"], "fe");
    }

    #[test]
    fn malformed_bodies() {
        let err = apply(&pod(), br#"{"op": "add"}"#).unwrap_err();
        assert_eq!(err.code(), 400);
        assert_eq!(
            message(err),
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        );
        let err = apply(&pod(), br#"["add"]"#).unwrap_err();
        assert_eq!(
            message(err),
            "json: cannot unmarshal string into Go value of type jsonpatch.Operation"
        );
        let err = apply(&pod(), b"").unwrap_err();
        assert_eq!(message(err), "unexpected end of JSON input");
        let err = patch(&pod(), json!([{"op": "frobnicate", "path": "/a"}])).unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(message(err), "Unexpected kind: frobnicate");
    }

    #[test]
    fn too_many_operations() {
        let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/metadata/name", "value": "web"}))
            .collect();
        let err = patch(&pod(), Value::Array(ops)).unwrap_err();
        assert_eq!(err.code(), 413);
    }
}
