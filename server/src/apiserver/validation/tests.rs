//! Messages as kube-apiserver words them, and valid objects of each kind.

mod fixtures;
mod messages;
mod updates;
mod valid;

use super::{Cause, validate};

/// The causes as `<field>: <message>` lines.
fn texts(causes: &[Cause]) -> Vec<String> {
    causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}

/// Validates and renders the causes.
fn check(group: &str, resource: &str, obj: &serde_json::Value) -> Vec<String> {
    texts(&validate(group, resource, obj, None))
}

/// Validates an update and renders the causes.
fn check_update(
    group: &str,
    resource: &str,
    obj: &serde_json::Value,
    old: &serde_json::Value,
) -> Vec<String> {
    texts(&validate(group, resource, obj, Some(old)))
}
