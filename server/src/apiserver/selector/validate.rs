//! Label key and value validation with upstream's messages
//! (`k8s.io/apimachinery/pkg/util/validation`, `field.Error`, `errors.Aggregate`).

use super::super::validation::names;

/// Upstream's `IsQualifiedName` (label keys): the joined problems, or `None` when valid.
pub(super) fn label_key(key: &str) -> Option<String> {
    let errs = names::qualified_name(key);
    (!errs.is_empty()).then(|| errs.join("; "))
}

/// Upstream's `IsValidLabelValue`: the joined problems, or `None` when valid.
pub(super) fn label_value(value: &str) -> Option<String> {
    let errs = names::label_value(value);
    (!errs.is_empty()).then(|| errs.join("; "))
}

/// A `field.Invalid` error's text: `<path>: Invalid value: <value>: <detail>`.
pub(super) fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {value}: {detail}")
}

/// Go's `%q` of a string.
pub(super) fn go_quote(s: &str) -> String {
    super::super::validation::cause::go_quote(s)
}

/// Go's `%#v` of a `[]string` (an empty one is nil where upstream builds it).
pub(super) fn go_string_slice(values: &[String]) -> String {
    if values.is_empty() {
        return "[]string(nil)".to_string();
    }
    let items: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// Upstream's `utilerrors.Aggregate` text: one message alone, several as `[a, b]`.
pub(super) fn aggregate(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [one] => one.to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}
