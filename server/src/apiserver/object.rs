//! What the server sets in every object's metadata: uid, timestamps, names
//! from generateName, generation; and reading metadata fields.

use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The characters of generated name suffixes (no vowels, no look-alikes:
/// kube-apiserver's alphabet).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Kinds whose `metadata.generation` is kept (bumped when the spec changes).
const WITH_GENERATION: &[&str] = &[
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "jobs",
    "cronjobs",
    "replicationcontrollers",
    "ingresses",
    "networkpolicies",
    "poddisruptionbudgets",
    "customresourcedefinitions",
    "horizontalpodautoscalers",
    "priorityclasses",
    "storageclasses",
    "runtimeclasses",
    "ingressclasses",
];

/// Now, as RFC 3339 UTC with whole seconds (`2026-12-03T17:00:00Z`).
pub fn now() -> String {
    timestamp(OffsetDateTime::now_utc())
}

/// A time as RFC 3339 UTC with whole seconds.
pub fn timestamp(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator does not fail once the process runs; fall back to the
    // clock so a failure cannot yield a constant.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        let nanos = OffsetDateTime::now_utc()
            .unix_timestamp_nanos()
            .to_le_bytes();
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = nanos[i % nanos.len()] ^ (i as u8);
        }
    }
    bytes
}

/// A random (version 4) UUID.
pub fn new_uid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `generateName` plus five random characters (the prefix cut so the name
/// stays within 63 characters).
pub fn generate_name(prefix: &str) -> String {
    let prefix: String = prefix.chars().take(58).collect();
    let random = random_bytes::<5>();
    let suffix: String = random
        .iter()
        .map(|b| SUFFIX_ALPHABET[*b as usize % SUFFIX_ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Whether the kind keeps `metadata.generation`.
pub fn has_generation(resource: &str, custom: bool) -> bool {
    custom || WITH_GENERATION.contains(&resource)
}

/// The object's metadata map (made when missing).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(meta) => meta,
        None => unreachable!("metadata was just made an object"),
    }
}

/// A metadata string field ("" when absent).
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or("")
}

/// The object's finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything of an object but metadata and status: what a generation counts.
pub fn spec_of(obj: &Value) -> Value {
    let mut spec = obj.clone();
    if let Some(map) = spec.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_and_generated_names_look_like_kube_apiservers() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert_ne!(uid, new_uid());
        let name = generate_name("web-");
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert!(name[4..].bytes().all(|b| SUFFIX_ALPHABET.contains(&b)));
        assert_eq!(generate_name(&"x".repeat(70)).len(), 63);
    }

    #[test]
    fn timestamps_have_whole_seconds() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(timestamp(at), "2023-11-14T22:13:20Z");
    }
}
