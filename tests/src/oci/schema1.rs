//! Docker image manifest schema 1, signed (libtrust "pretty JWS").
//!
//! Obsolete, but registries still serve it and Skiff must refuse it. The
//! registry only stores a schema 1 manifest whose signature verifies, so the
//! harness signs one with a throwaway ES256 key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde::Serialize;
use serde_json::json;

use super::{Blob, Digest, EPOCH_RFC3339, media_type};
use crate::error::{HarnessError, Result};

#[derive(Serialize)]
struct FsLayer<'a> {
    #[serde(rename = "blobSum")]
    blob_sum: &'a str,
}

#[derive(Serialize)]
struct History {
    #[serde(rename = "v1Compatibility")]
    v1_compatibility: String,
}

#[derive(Serialize)]
struct Schema1Payload<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    name: &'a str,
    tag: &'a str,
    architecture: &'a str,
    #[serde(rename = "fsLayers")]
    fs_layers: Vec<FsLayer<'a>>,
    history: Vec<History>,
}

/// A signed schema 1 manifest for `name:tag` over `layers` (blob digests,
/// bottom first; the blobs must exist in the registry before the PUT).
///
/// The returned blob has media type
/// `application/vnd.docker.distribution.manifest.v1+prettyjws`. Registries
/// name schema 1 manifests by the digest of the unsigned payload, not of
/// these bytes, so push it by tag.
pub fn signed_schema1_manifest(
    name: &str,
    tag: &str,
    architecture: &str,
    layers: &[Digest],
) -> Result<Blob> {
    // Schema 1 lists layers top first, each with a v1 "image" JSON.
    let mut ids: Vec<String> = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        ids.push(
            Digest::of(format!("{i}:{layer}").as_bytes())
                .hex()
                .to_string(),
        );
    }
    let mut history = Vec::new();
    for i in (0..layers.len()).rev() {
        let mut v1 = json!({ "id": ids[i], "created": EPOCH_RFC3339 });
        if i > 0 {
            v1["parent"] = json!(ids[i - 1]);
        }
        if i + 1 == layers.len() {
            v1["architecture"] = json!(architecture);
            v1["os"] = json!("linux");
        }
        history.push(History {
            v1_compatibility: v1.to_string(),
        });
    }
    let payload = Schema1Payload {
        schema_version: 1,
        name,
        tag,
        architecture,
        fs_layers: layers
            .iter()
            .rev()
            .map(|d| FsLayer {
                blob_sum: d.as_str(),
            })
            .collect(),
        history,
    };
    let mut formatted = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut formatted, formatter);
    payload
        .serialize(&mut serializer)
        .map_err(crate::error::json_error("schema 1 payload"))?;

    // libtrust signs the payload as is, and stores where the signatures go:
    // everything up to the last value (`formatLength`) plus the closing tail.
    let close = formatted
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .filter(|&i| formatted[i] == b'}')
        .ok_or_else(|| HarnessError::InvalidContent("schema 1 payload is not an object".into()))?;
    let format_length = formatted[..close]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let format_tail = &formatted[format_length..];
    let protected = json!({
        "formatLength": format_length,
        "formatTail": URL_SAFE_NO_PAD.encode(format_tail),
        "time": EPOCH_RFC3339,
    });
    let protected = URL_SAFE_NO_PAD.encode(protected.to_string());
    let signing_input = format!("{protected}.{}", URL_SAFE_NO_PAD.encode(&formatted));

    let rng = SystemRandom::new();
    let crypto = |what: &str| HarnessError::Crypto(format!("{what} for a schema 1 manifest"));
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| crypto("generating a key"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| crypto("loading the key"))?;
    let signature = key
        .sign(&rng, signing_input.as_bytes())
        .map_err(|_| crypto("signing"))?;
    // An uncompressed P-256 point: 0x04 || X (32 bytes) || Y (32 bytes).
    let point = key.public_key().as_ref();
    let jwk = json!({
        "crv": "P-256",
        "kty": "EC",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    let signatures = json!([{
        "header": { "jwk": jwk, "alg": "ES256" },
        "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
        "protected": protected,
    }]);

    let mut signed = formatted[..format_length].to_vec();
    signed.extend_from_slice(b",\n   \"signatures\": ");
    signed.extend_from_slice(signatures.to_string().as_bytes());
    signed.extend_from_slice(format_tail);
    Ok(Blob::new(media_type::DOCKER_SCHEMA1_SIGNED, signed))
}
