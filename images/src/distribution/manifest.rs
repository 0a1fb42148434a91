//! Manifest media types and telling manifests, indexes and schema 1 apart.

use oci_spec::image::{ImageIndex, ImageManifest};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform), schema 2.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// What manifest requests accept: every current format, never schema 1.
pub(crate) const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// A parsed manifest document.
#[derive(Debug)]
pub(crate) enum Document {
    /// A single-platform image manifest.
    Manifest(Box<ImageManifest>),
    /// A multi-platform index or manifest list.
    Index(Box<ImageIndex>),
}

/// Why a manifest document was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Docker schema 1.
    Schema1,
    /// Not a manifest or index at all.
    Unsupported(String),
    /// Claims to be one but does not parse.
    Invalid(String),
}

/// Whether `media_type` names an index or manifest list.
pub fn is_index(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// Whether `media_type` names a single-platform image manifest.
pub fn is_manifest(media_type: &str) -> bool {
    matches!(media_type, OCI_MANIFEST | DOCKER_MANIFEST)
}

pub(crate) fn is_schema1(media_type: &str) -> bool {
    matches!(media_type, DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED)
}

/// Parses a manifest response. The media type comes from the body's
/// `mediaType` when it names a known format, else from `Content-Type`, else
/// from the document's shape (OCI allows omitting `mediaType`).
/// Returns the document and its media type.
pub(crate) fn parse(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(Document, String), Refusal> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<serde_json::Value>,
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        config: Option<serde::de::IgnoredAny>,
        fs_layers: Option<serde::de::IgnoredAny>,
    }

    let content_type = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty());
    let known = |m: &str| is_index(m) || is_manifest(m) || is_schema1(m);
    if content_type.as_deref().is_some_and(is_schema1) {
        return Err(Refusal::Schema1);
    }
    let probe: Probe = match serde_json::from_slice(body) {
        Ok(probe) => probe,
        Err(e) => {
            return Err(match content_type {
                Some(ct) if known(&ct) => Refusal::Invalid(format!("not valid JSON: {e}")),
                Some(ct) => Refusal::Unsupported(ct),
                None => Refusal::Invalid(format!("not valid JSON: {e}")),
            });
        }
    };
    if probe.fs_layers.is_some()
        || probe.schema_version.as_ref().and_then(|v| v.as_u64()) == Some(1)
    {
        return Err(Refusal::Schema1);
    }
    let media_type = probe
        .media_type
        .clone()
        .filter(|m| known(m))
        .or_else(|| content_type.clone().filter(|c| known(c)))
        .or_else(|| probe.media_type.clone())
        .or_else(
            || match (probe.manifests.is_some(), probe.config.is_some()) {
                (true, false) => Some(OCI_INDEX.to_owned()),
                (false, true) => Some(OCI_MANIFEST.to_owned()),
                _ => None,
            },
        )
        .or(content_type)
        .unwrap_or_else(|| "(none)".to_owned());

    if is_schema1(&media_type) {
        Err(Refusal::Schema1)
    } else if is_index(&media_type) {
        serde_json::from_slice::<ImageIndex>(body)
            .map(|index| (Document::Index(Box::new(index)), media_type))
            .map_err(|e| Refusal::Invalid(format!("index does not parse: {e}")))
    } else if is_manifest(&media_type) {
        serde_json::from_slice::<ImageManifest>(body)
            .map(|manifest| (Document::Manifest(Box::new(manifest)), media_type))
            .map_err(|e| Refusal::Invalid(format!("manifest does not parse: {e}")))
    } else {
        Err(Refusal::Unsupported(media_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn docker_v2() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":0,"digest":"{DIGEST}"}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":0,"digest":"{DIGEST}"}}]}}"#
        )
    }

    fn oci_index_without_media_type() -> String {
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","size":0,"digest":"{DIGEST}",
            "platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        )
    }

    #[test]
    fn docker_schema2_parses_into_the_oci_shape() {
        let (doc, media_type) = parse(Some(DOCKER_MANIFEST), docker_v2().as_bytes()).unwrap();
        assert_eq!(media_type, DOCKER_MANIFEST);
        let Document::Manifest(m) = doc else {
            panic!("not a manifest")
        };
        assert_eq!(m.layers().len(), 1);
        assert_eq!(m.config().digest().to_string(), DIGEST);
    }

    #[test]
    fn media_type_from_body_then_header_then_shape() {
        let body = docker_v2();
        let (_, mt) = parse(Some("application/json; charset=utf-8"), body.as_bytes()).unwrap();
        assert_eq!(mt, DOCKER_MANIFEST);
        let index = oci_index_without_media_type();
        let (doc, mt) = parse(Some(OCI_INDEX), index.as_bytes()).unwrap();
        assert!(matches!(doc, Document::Index(_)));
        assert_eq!(mt, OCI_INDEX);
        let (doc, mt) = parse(Some("text/plain"), index.as_bytes()).unwrap();
        assert!(matches!(doc, Document::Index(_)) && mt == OCI_INDEX);
        let (_, mt) = parse(None, index.as_bytes()).unwrap();
        assert_eq!(mt, OCI_INDEX);
    }

    #[test]
    fn schema1_is_refused_however_it_arrives() {
        let signed = br#"{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[],"signatures":[]}"#;
        assert_eq!(
            parse(Some(DOCKER_SCHEMA1_SIGNED), signed).unwrap_err(),
            Refusal::Schema1
        );
        assert_eq!(
            parse(Some(DOCKER_SCHEMA1), b"garbage").unwrap_err(),
            Refusal::Schema1
        );
        assert_eq!(
            parse(Some("application/json"), signed).unwrap_err(),
            Refusal::Schema1
        );
        assert_eq!(
            parse(None, br#"{"schemaVersion":1}"#).unwrap_err(),
            Refusal::Schema1
        );
    }

    #[test]
    fn other_documents_are_unsupported_or_invalid() {
        assert_eq!(
            parse(Some("text/html"), b"<html>login</html>").unwrap_err(),
            Refusal::Unsupported("text/html".into())
        );
        let artifact =
            br#"{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[]}"#;
        assert_eq!(
            parse(None, artifact).unwrap_err(),
            Refusal::Unsupported("application/vnd.oci.artifact.manifest.v1+json".into())
        );
        assert!(matches!(
            parse(Some(OCI_MANIFEST), b"{not json").unwrap_err(),
            Refusal::Invalid(_)
        ));
        assert!(matches!(
            parse(Some(OCI_MANIFEST), br#"{"schemaVersion":2,"layers":[]}"#).unwrap_err(),
            Refusal::Invalid(m) if m.contains("config")
        ));
        assert_eq!(
            parse(None, b"{}").unwrap_err(),
            Refusal::Unsupported("(none)".into())
        );
    }
}
