//! ConfigMaps and Secrets: keys, total size, `immutable`, Secret types.

use serde_json::Value;

use super::cause::{
    Errs, field, flag, forbidden, go_quote, invalid, key, opt_s, required, sorted_entries, too_long,
};
use super::names::config_map_key;

/// Upstream's `MaxSecretSize`, also the ConfigMap limit.
const MAX_SIZE: usize = 1024 * 1024;

/// The decoded length of base64 text (Secret data, ConfigMap binaryData).
fn base64_len(text: &str) -> usize {
    let trimmed = text.trim_end_matches('=');
    trimmed.len() * 3 / 4
}

/// core/v1 ConfigMap (create, or update when `old` is given).
pub(super) fn config_map(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let mut total = 0;
    let binary = obj.get("binaryData").and_then(Value::as_object);
    for (k, v) in sorted_entries(obj.get("data")) {
        for msg in config_map_key(k) {
            invalid(errs, &key("data", k), go_quote(k), &msg);
        }
        if binary.is_some_and(|b| b.contains_key(k)) {
            invalid(
                errs,
                &key("data", k),
                go_quote(k),
                "duplicate of key present in binaryData",
            );
        }
        total += v.as_str().map(str::len).unwrap_or(0);
    }
    for (k, v) in sorted_entries(obj.get("binaryData")) {
        for msg in config_map_key(k) {
            invalid(errs, &key("binaryData", k), go_quote(k), &msg);
        }
        total += v.as_str().map(base64_len).unwrap_or(0);
    }
    if total > MAX_SIZE {
        // Upstream's empty path: the error is about the whole object.
        too_long(errs, "[]", MAX_SIZE);
    }
    if let Some(old) = old {
        immutable_data(obj, old, &["data", "binaryData"], errs);
    }
}

fn immutable_data(obj: &Value, old: &Value, fields: &[&str], errs: &mut Errs) {
    if !flag(old, "immutable") {
        return;
    }
    const MSG: &str = "field is immutable when `immutable` is set";
    if !flag(obj, "immutable") {
        forbidden(errs, "immutable", MSG);
    }
    for name in fields {
        if field(obj, name) != field(old, name) {
            forbidden(errs, name, MSG);
        }
    }
}

/// core/v1 Secret (create, or update when `old` is given).
pub(super) fn secret(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let mut total = 0;
    let mut keys: Vec<&str> = Vec::new();
    for (k, v) in sorted_entries(obj.get("data")) {
        for msg in config_map_key(k) {
            invalid(errs, &key("data", k), go_quote(k), &msg);
        }
        total += v.as_str().map(base64_len).unwrap_or(0);
        keys.push(k);
    }
    // stringData is merged into data before upstream validates.
    for (k, v) in sorted_entries(obj.get("stringData")) {
        if !keys.contains(&k) {
            for msg in config_map_key(k) {
                invalid(errs, &key("data", k), go_quote(k), &msg);
            }
            keys.push(k);
        }
        total += v.as_str().map(str::len).unwrap_or(0);
    }
    if total > MAX_SIZE {
        too_long(errs, "data", MAX_SIZE);
    }
    let has = |k: &str| keys.contains(&k);
    let secret_type = opt_s(obj, "type").unwrap_or("Opaque");
    match secret_type {
        "kubernetes.io/service-account-token" => {
            let name = obj
                .get("metadata")
                .and_then(|m| m.get("annotations"))
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                required(
                    errs,
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                );
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => required(errs, "data[.dockercfg]", ""),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            required(errs, "data[.dockerconfigjson]", "")
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            required(errs, "data[username]", "");
            required(errs, "data[password]", "");
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            required(errs, "data[ssh-privatekey]", "")
        }
        "kubernetes.io/tls" => {
            if !has("tls.crt") {
                required(errs, "data[tls.crt]", "");
            }
            if !has("tls.key") {
                required(errs, "data[tls.key]", "");
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        let old_type = opt_s(old, "type").unwrap_or("Opaque");
        if secret_type != old_type {
            invalid(errs, "type", go_quote(secret_type), "field is immutable");
        }
        immutable_data(obj, old, &["data"], errs);
        let string_data = obj
            .get("stringData")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty());
        if flag(old, "immutable") && string_data && field(obj, "data") == field(old, "data") {
            forbidden(errs, "data", "field is immutable when `immutable` is set");
        }
    }
}
