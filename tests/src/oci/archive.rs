//! Air-gap import archives: OCI image-layout tarballs and `docker save`
//! tarballs, plain or compressed as a whole.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

use super::tar::{TarEntry, write_tar};
use super::{
    Compression, Descriptor, Digest, ImageSource, ParsedManifest, Platform, reachable,
    select_platform,
};
use crate::error::{HarnessError, Result, io_error, json_error};

/// The annotation containerd reads the full image name from.
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Writes an OCI image-layout tarball holding `images`, each as an
/// `index.json` entry annotated with `io.containerd.image.name` = the
/// full name and `org.opencontainers.image.ref.name` = its tag (as
/// BuildKit's OCI exporter does).
///
/// `compression` applies to the whole tarball (`.tar`, `.tar.gz`, `.tar.zst`).
pub fn write_oci_archive(
    path: &Path,
    images: &[(&dyn ImageSource, &str)],
    compression: Compression,
) -> Result<()> {
    let mut blobs: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
    let mut index_entries = Vec::new();
    for (source, name) in images {
        for desc in reachable(*source)? {
            if !blobs.contains_key(&desc.digest) {
                let bytes = source.blob(&desc.digest)?.into_owned();
                blobs.insert(desc.digest.clone(), bytes);
            }
        }
        let mut annotations = BTreeMap::new();
        annotations.insert(CONTAINERD_NAME.to_string(), name.to_string());
        if let Some(tag) = tag_of(name) {
            annotations.insert(super::layout::REF_NAME.to_string(), tag.to_string());
        }
        index_entries.push(Descriptor {
            annotations: Some(annotations),
            ..source.root()
        });
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": super::media_type::OCI_INDEX,
        "manifests": index_entries,
    });

    let mut entries = vec![TarEntry::dir("blobs"), TarEntry::dir("blobs/sha256")];
    for (digest, bytes) in blobs {
        entries.push(TarEntry::file(
            &format!("blobs/sha256/{}", digest.hex()),
            bytes,
        ));
    }
    entries.push(TarEntry::file(
        "index.json",
        serde_json::to_vec(&index).map_err(json_error("index.json"))?,
    ));
    entries.push(TarEntry::file(
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    write_compressed(path, &entries, compression)
}

#[derive(Serialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Writes a `docker save` tarball (`manifest.json` with Config/RepoTags/
/// Layers, `<config hex>.json`, `<diff_id hex>/layer.tar` uncompressed).
///
/// An index is resolved to its entry for the host platform.
pub fn write_docker_archive(
    path: &Path,
    images: &[(&dyn ImageSource, &str)],
    compression: Compression,
) -> Result<()> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut manifest = Vec::new();
    for (source, name) in images {
        let image = resolve_platform(*source, &source.root(), &Platform::host())?;
        let config = image.config.as_ref().ok_or_else(|| {
            HarnessError::InvalidContent(format!("{name}: manifest has no config"))
        })?;
        let config_path = format!("{}.json", config.digest.hex());
        files.insert(
            config_path.clone(),
            source.blob(&config.digest)?.into_owned(),
        );
        let mut layer_paths = Vec::new();
        for layer in &image.layers {
            let blob = source.blob(&layer.digest)?;
            let tar = Compression::of_layer_media_type(&layer.media_type).decompress(&blob)?;
            let layer_path = format!("{}/layer.tar", Digest::of(&tar).hex());
            files.insert(layer_path.clone(), tar);
            layer_paths.push(layer_path);
        }
        manifest.push(DockerManifestEntry {
            config: config_path,
            repo_tags: vec![name.to_string()],
            layers: layer_paths,
        });
    }
    files.insert(
        "manifest.json".to_string(),
        serde_json::to_vec(&manifest).map_err(json_error("manifest.json"))?,
    );

    let mut entries = Vec::new();
    for (file, bytes) in files {
        if let Some((dir, _)) = file.rsplit_once('/') {
            entries.push(TarEntry::dir(dir));
        }
        entries.push(TarEntry::file(&file, bytes));
    }
    write_compressed(path, &entries, compression)
}

/// Follows an index down to the manifest for `platform`.
fn resolve_platform(
    source: &dyn ImageSource,
    desc: &Descriptor,
    platform: &Platform,
) -> Result<ParsedManifest> {
    let manifest = ParsedManifest::parse(&source.blob(&desc.digest)?, &desc.digest)?;
    if !manifest.is_index() {
        return Ok(manifest);
    }
    let child = select_platform(&manifest.manifests, platform).ok_or_else(|| {
        HarnessError::InvalidContent(format!("index {} has no {platform} entry", desc.digest))
    })?;
    resolve_platform(source, child, platform)
}

/// The tag of `repo:tag` (not a registry port), if any.
fn tag_of(name: &str) -> Option<&str> {
    let last = name.rsplit('/').next()?;
    let (_, tag) = last.split_once(':')?;
    Some(tag.split('@').next().unwrap_or(tag))
}

fn write_compressed(path: &Path, entries: &[TarEntry], compression: Compression) -> Result<()> {
    let tar = write_tar(entries);
    fs::write(path, compression.compress(&tar)).map_err(io_error("write archive", path))
}

#[cfg(test)]
mod tests {
    use super::tag_of;

    #[test]
    fn tags_are_found_after_the_last_slash() {
        assert_eq!(tag_of("skiff-test/busybox:1.0"), Some("1.0"));
        assert_eq!(tag_of("127.0.0.1:5000/busybox"), None);
        assert_eq!(tag_of("busybox"), None);
    }
}
