//! Image configs, read leniently where Wasm artifacts differ from
//! container images.
//!
//! The OCI image spec requires `rootfs.diff_ids`, but Wasm OCI artifacts
//! (`application/vnd.wasm.config.v0+json`, as `wkg` and `regctl artifact`
//! write them) carry no `rootfs` at all: their layers are raw modules whose
//! diff IDs are their blob digests. Such a config reads as one with an empty
//! `rootfs.diff_ids`; [`crate::pull::layer_refs`] then pairs the layers.

use oci_spec::image::ImageConfiguration;
use serde_json::{Map, Value};

/// Parses an image config; a missing or null `rootfs` (or `rootfs.type`,
/// `rootfs.diff_ids`) reads as an empty list of layers.
pub fn parse_image_config(bytes: &[u8]) -> Result<ImageConfiguration, serde_json::Error> {
    let strict = match serde_json::from_slice(bytes) {
        Ok(config) => return Ok(config),
        Err(err) => err,
    };
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(bytes) else {
        return Err(strict);
    };
    let rootfs = object
        .entry("rootfs")
        .or_insert_with(|| Value::Object(Map::new()));
    if rootfs.is_null() {
        *rootfs = Value::Object(Map::new());
    }
    let Some(rootfs) = rootfs.as_object_mut() else {
        return Err(strict);
    };
    for (key, default) in [
        ("type", Value::String("layers".into())),
        ("diff_ids", Value::Array(Vec::new())),
    ] {
        let field = rootfs.entry(key).or_insert(Value::Null);
        if field.is_null() {
            *field = default;
        }
    }
    serde_json::from_value(Value::Object(object)).map_err(|_| strict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_image_configs_parse_as_they_are() {
        let config = parse_image_config(
            br#"{"architecture":"amd64","os":"linux","config":{"User":"1000"},
                "rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#,
        )
        .unwrap();
        assert_eq!(config.rootfs().diff_ids(), &["sha256:aa".to_string()]);
        assert_eq!(config.os().to_string(), "linux");
    }

    #[test]
    fn wasm_artifact_configs_without_rootfs_have_no_diff_ids() {
        let config = parse_image_config(
            br#"{"created":"2024-01-01T00:00:00Z","architecture":"wasm","os":"wasip2",
                "layerDigests":["sha256:bb"],"component":{"exports":["wasi:cli/run@0.2.0"]}}"#,
        )
        .unwrap();
        assert!(config.rootfs().diff_ids().is_empty());
        assert_eq!(config.architecture().to_string(), "wasm");
        assert_eq!(config.os().to_string(), "wasip2");
        for partial in [
            r#"{"architecture":"wasm","os":"wasi","rootfs":null}"#,
            r#"{"architecture":"wasm","os":"wasi","rootfs":{"type":"layers"}}"#,
            r#"{"architecture":"wasm","os":"wasi","rootfs":{"diff_ids":null}}"#,
        ] {
            let config = parse_image_config(partial.as_bytes()).unwrap();
            assert!(config.rootfs().diff_ids().is_empty(), "{partial}");
        }
    }

    #[test]
    fn broken_configs_keep_the_strict_error() {
        assert!(parse_image_config(b"[1, 2]").is_err());
        assert!(parse_image_config(b"not json").is_err());
        let err = parse_image_config(br#"{"os":"linux","rootfs":"layers"}"#).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}
