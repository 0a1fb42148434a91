//! A Deployment's pod template and its ReplicaSets: the
//! `pod-template-hash` label (upstream's `ComputeHash`: FNV-32a of the
//! template plus the collision count, the decimal sum made DNS-safe by
//! `SafeEncodeString`) and template equality ignoring that label
//! (upstream's `EqualIgnoreHash`).
//!
//! The hashed bytes are the template's JSON, not Go's `spew` dump of its
//! struct, so the hash values differ from kube-controller-manager's; their
//! form (up to ten characters from `bcdfghjklmnpqrstvwxz2456789`) and role
//! are the same.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// The label and selector key naming a ReplicaSet's template.
pub(crate) const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Characters that cannot form bad words or confusable names
/// (apimachinery's `rand` alphabet).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// The `pod-template-hash` of `template` with the Deployment's
/// `status.collisionCount`.
pub(crate) fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hash = FNV_OFFSET;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    };
    // Serializing a typed template cannot fail: every field is plain data.
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(count) = collision_count {
        // Upstream writes the count as a little-endian uint32 into an
        // eight-byte buffer.
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&count.cast_unsigned().to_le_bytes());
        feed(&bytes);
    }
    safe_encode(&hash.to_string())
}

/// Maps each byte to the safe alphabet (apimachinery's `SafeEncodeString`).
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// Whether two templates are the same but for `pod-template-hash`, with
/// empty and absent fields alike (as apimachinery's semantic equality
/// treats nil and empty maps and slices).
pub(crate) fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized(a) == normalized(b)
}

fn normalized(template: &PodTemplateSpec) -> Value {
    let mut value = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Some(labels) = value
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    strip_empty(&mut value);
    value
}

/// Drops nulls and empty maps and lists, recursively.
fn strip_empty(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for item in map.values_mut() {
                strip_empty(item);
            }
            map.retain(|_, item| !is_empty(item));
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                strip_empty(item);
            }
        }
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// The template of `rs`.
pub(crate) fn template_of(rs: &ReplicaSet) -> Option<&PodTemplateSpec> {
    rs.spec.as_ref()?.template.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn template(image: &str, extra_label: Option<(&str, &str)>) -> PodTemplateSpec {
        let mut labels: std::collections::BTreeMap<String, String> =
            [("app".into(), "web".into())].into();
        if let Some((k, v)) = extra_label {
            labels.insert(k.into(), v.into());
        }
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        let fnv = |s: &[u8]| {
            let mut hash = FNV_OFFSET;
            for b in s {
                hash ^= u32::from(*b);
                hash = hash.wrapping_mul(FNV_PRIME);
            }
            hash
        };
        assert_eq!(fnv(b""), 0x811c_9dc5);
        assert_eq!(fnv(b"a"), 0xe40c_292c);
        assert_eq!(fnv(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encoding_uses_the_apimachinery_alphabet() {
        // '0'..'9' are bytes 48..57: 48 % 27 = 21 -> '4', 57 % 27 = 3 -> 'f'.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn hashes_are_stable_safe_and_change_with_template_and_collisions() {
        let t = template("busybox:1", None);
        let h = compute_hash(&t, None);
        assert_eq!(h, compute_hash(&t, None));
        assert!(!h.is_empty() && h.len() <= 10, "{h}");
        assert!(h.bytes().all(|b| b"456789bcdf".contains(&b)), "{h}");
        assert_ne!(h, compute_hash(&template("busybox:2", None), None));
        assert_ne!(h, compute_hash(&t, Some(1)));
        assert_ne!(compute_hash(&t, Some(0)), compute_hash(&t, Some(1)));
    }

    #[test]
    fn equality_ignores_the_hash_label_and_empty_fields() {
        let a = template("busybox:1", None);
        let b = template("busybox:1", Some((POD_TEMPLATE_HASH, "abc")));
        assert!(equal_ignore_hash(&a, &b));
        let mut c = a.clone();
        c.spec.as_mut().unwrap().volumes = Some(vec![]);
        c.metadata.as_mut().unwrap().annotations = Some(Default::default());
        assert!(equal_ignore_hash(&a, &c));
        assert!(!equal_ignore_hash(&a, &template("busybox:2", None)));
        assert!(!equal_ignore_hash(
            &a,
            &template("busybox:1", Some(("tier", "fe")))
        ));
    }
}
