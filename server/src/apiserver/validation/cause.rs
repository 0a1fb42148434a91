//! Building causes the way apimachinery's `field.Error` words them, field
//! paths, Go's `%q`/`%#v` rendering of bad values, and JSON accessors.

use serde_json::{Map, Value};

use super::{Cause, CauseReason};

/// The causes found so far.
pub(super) type Errs = Vec<Cause>;

fn push(errs: &mut Errs, reason: CauseReason, field: &str, message: String) {
    errs.push(Cause {
        reason,
        field: field.to_owned(),
        message,
    });
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

/// `field.Required`: `Required value[: detail]`.
pub(super) fn required(errs: &mut Errs, field: &str, detail: &str) {
    push(
        errs,
        CauseReason::Required,
        field,
        with_detail("Required value".into(), detail),
    );
}

/// `field.Invalid`: `Invalid value: <value>[: detail]` (`value` already rendered).
pub(super) fn invalid(errs: &mut Errs, field: &str, value: impl AsRef<str>, detail: &str) {
    let head = format!("Invalid value: {}", value.as_ref());
    push(errs, CauseReason::Invalid, field, with_detail(head, detail));
}

/// `field.NotSupported`: `Unsupported value: <value>: supported values: "a", "b"`.
pub(super) fn not_supported(
    errs: &mut Errs,
    field: &str,
    value: impl AsRef<str>,
    supported: &[&str],
) {
    let head = format!("Unsupported value: {}", value.as_ref());
    let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
    let detail = if quoted.is_empty() {
        String::new()
    } else {
        format!("supported values: {}", quoted.join(", "))
    };
    push(
        errs,
        CauseReason::NotSupported,
        field,
        with_detail(head, &detail),
    );
}

/// `field.Duplicate`: `Duplicate value: <value>`.
pub(super) fn duplicate(errs: &mut Errs, field: &str, value: impl AsRef<str>) {
    push(
        errs,
        CauseReason::Duplicate,
        field,
        format!("Duplicate value: {}", value.as_ref()),
    );
}

/// `field.Forbidden`: `Forbidden[: detail]`.
pub(super) fn forbidden(errs: &mut Errs, field: &str, detail: &str) {
    push(
        errs,
        CauseReason::Forbidden,
        field,
        with_detail("Forbidden".into(), detail),
    );
}

/// `field.TooLong`: `Too long: may not be more than <max> bytes`.
pub(super) fn too_long(errs: &mut Errs, field: &str, max: usize) {
    push(
        errs,
        CauseReason::TooLong,
        field,
        format!("Too long: may not be more than {max} bytes"),
    );
}

/// `field.TooMany`: `Too many: <n>: must have at most <max> items`.
pub(super) fn too_many(errs: &mut Errs, field: &str, actual: usize, max: usize) {
    push(
        errs,
        CauseReason::TooMany,
        field,
        format!("Too many: {actual}: must have at most {max} items"),
    );
}

/// `field.NotFound`: `Not found: <value>`.
pub(super) fn not_found(errs: &mut Errs, field: &str, value: impl AsRef<str>) {
    push(
        errs,
        CauseReason::NotFound,
        field,
        format!("Not found: {}", value.as_ref()),
    );
}

/// `field.Invalid` with the "must be greater than or equal to 0" detail
/// when `value` is negative (upstream's `ValidateNonnegativeField`).
pub(super) fn nonnegative(errs: &mut Errs, field: &str, value: Option<i64>) {
    if let Some(n) = value.filter(|n| *n < 0) {
        invalid(
            errs,
            field,
            n.to_string(),
            "must be greater than or equal to 0",
        );
    }
}

/// `parent.child` (`child` alone at the root).
pub(super) fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// `parent[i]`.
pub(super) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `parent[key]` (upstream prints map keys unquoted).
pub(super) fn key(parent: &str, k: &str) -> String {
    format!("{parent}[{k}]")
}

/// Go's `%q` of a string.
pub(in crate::apiserver) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` of a `map[string]string` (keys sorted, `(nil)` when absent).
pub(super) fn go_string_map(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        None => "map[string]string(nil)".into(),
        Some(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        go_quote(k),
                        go_quote(map[k.as_str()].as_str().unwrap_or(""))
                    )
                })
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// Go's `%#v` of a `[]string` (`(nil)` when absent or empty).
pub(super) fn go_string_slice(v: Option<&Value>) -> String {
    let items = strings(v);
    if items.is_empty() {
        return "[]string(nil)".into();
    }
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// A bad value printed as `field.Error` does: strings quoted, numbers and
/// booleans bare, `null` when absent, anything else as compact JSON.
pub(super) fn go_value(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "null".into(),
        Some(Value::String(s)) => go_quote(s),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => other.to_string(),
    }
}

/// An `intstr.IntOrString` as `%#v` prints it.
pub(super) fn go_int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            go_quote(s)
        ),
        Some(other) => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
        None => "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".into(),
    }
}

/// `obj[name]` as a string ("" when absent or not a string).
pub(super) fn s<'a>(obj: &'a Value, name: &str) -> &'a str {
    obj.get(name).and_then(Value::as_str).unwrap_or("")
}

/// `obj[name]` as a string, `None` when absent or not a string.
pub(super) fn opt_s<'a>(obj: &'a Value, name: &str) -> Option<&'a str> {
    obj.get(name).and_then(Value::as_str)
}

/// `obj[name]` as an integer.
pub(super) fn int(obj: &Value, name: &str) -> Option<i64> {
    obj.get(name).and_then(Value::as_i64)
}

/// `obj[name]` as a boolean (false when absent).
pub(super) fn flag(obj: &Value, name: &str) -> bool {
    obj.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// `obj[name]` as an array (empty when absent).
pub(super) fn list<'a>(obj: &'a Value, name: &str) -> &'a [Value] {
    obj.get(name)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `obj[name]` as an object.
pub(super) fn map<'a>(obj: &'a Value, name: &str) -> Option<&'a Map<String, Value>> {
    obj.get(name).and_then(Value::as_object)
}

/// `obj[name]` when present and not null.
pub(super) fn field<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

/// The string items of an array value.
pub(super) fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The entries of a string map, sorted by key (Go iterates maps randomly;
/// a stable order keeps messages reproducible).
pub(super) fn sorted_entries(v: Option<&Value>) -> Vec<(&str, &Value)> {
    let mut entries: Vec<(&str, &Value)> = v
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// A compact leaf-by-leaf diff of two values (`- path: old` / `+ path: new`),
/// standing in for the `cmp.Diff` upstream appends to some messages.
pub(super) fn diff(old: &Value, new: &Value) -> String {
    let mut lines = Vec::new();
    diff_into("", old, new, &mut lines);
    lines.join("\n")
}

fn diff_into(path: &str, old: &Value, new: &Value, lines: &mut Vec<String>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = child(path, k);
                diff_into(
                    &sub,
                    a.get(k.as_str()).unwrap_or(&Value::Null),
                    b.get(k.as_str()).unwrap_or(&Value::Null),
                    lines,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_into(&index(path, i), x, y, lines);
            }
        }
        _ => {
            if !old.is_null() {
                lines.push(format!("- {path}: {old}"));
            }
            if !new.is_null() {
                lines.push(format!("+ {path}: {new}"));
            }
        }
    }
}

/// `v` without zero values (null, false, 0, "", empty lists and maps) in
/// its objects: Go's semantic equality does not tell them from absent.
pub(super) fn semantic(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let v = semantic(v);
                let zero = match &v {
                    Value::Null => true,
                    Value::Bool(b) => !b,
                    Value::Number(n) => n.as_f64() == Some(0.0),
                    Value::String(s) => s.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                };
                if !zero {
                    out.insert(k.clone(), v);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(semantic).collect()),
        other => other.clone(),
    }
}
