//! Images (config + manifest) and image indexes, OCI or Docker flavoured.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::layer::Layer;
use super::{Blob, Descriptor, Digest, EPOCH_RFC3339, ImageSource, Platform, media_type};
use crate::error::{HarnessError, Result};

/// The PATH every fixture image sets.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds a single-platform image from layers.
///
/// Defaults: the host platform, `Env` = [`DEFAULT_PATH`], `Cmd` = `["sh"]`,
/// OCI media types.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    platform: Platform,
    layers: Vec<Layer>,
    env: Vec<String>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    user: Option<String>,
    working_dir: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    docker: bool,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        ImageBuilder::new()
    }
}

impl ImageBuilder {
    /// An image with no layers and the defaults above.
    pub fn new() -> ImageBuilder {
        ImageBuilder {
            platform: Platform::host(),
            layers: Vec::new(),
            env: vec![DEFAULT_PATH.to_string()],
            cmd: Some(vec!["sh".to_string()]),
            entrypoint: None,
            user: None,
            working_dir: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            docker: false,
        }
    }

    /// Sets the platform written into the config (and the index entry).
    pub fn platform(mut self, platform: Platform) -> ImageBuilder {
        self.platform = platform;
        self
    }

    /// Appends a layer (bottom first).
    pub fn layer(mut self, layer: Layer) -> ImageBuilder {
        self.layers.push(layer);
        self
    }

    /// Appends several layers.
    pub fn layers(mut self, layers: impl IntoIterator<Item = Layer>) -> ImageBuilder {
        self.layers.extend(layers);
        self
    }

    /// Adds a `KEY=value` environment entry.
    pub fn env(mut self, entry: &str) -> ImageBuilder {
        self.env.push(entry.to_string());
        self
    }

    /// Sets `Cmd`.
    pub fn cmd(mut self, cmd: &[&str]) -> ImageBuilder {
        self.cmd = Some(cmd.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Removes `Cmd` (e.g. for an image that only has an `Entrypoint`).
    pub fn without_cmd(mut self) -> ImageBuilder {
        self.cmd = None;
        self
    }

    /// Sets `Entrypoint`.
    pub fn entrypoint(mut self, entrypoint: &[&str]) -> ImageBuilder {
        self.entrypoint = Some(entrypoint.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Sets `User` (`"1000:1000"`, `"nobody"`, ...).
    pub fn user(mut self, user: &str) -> ImageBuilder {
        self.user = Some(user.to_string());
        self
    }

    /// Sets `WorkingDir`.
    pub fn working_dir(mut self, dir: &str) -> ImageBuilder {
        self.working_dir = Some(dir.to_string());
        self
    }

    /// Adds a config label.
    pub fn label(mut self, key: &str, value: &str) -> ImageBuilder {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    /// Adds a manifest annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> ImageBuilder {
        self.annotations.insert(key.to_string(), value.to_string());
        self
    }

    /// Uses Docker schema 2 media types for the manifest, config and layers.
    pub fn docker_media_types(mut self) -> ImageBuilder {
        self.docker = true;
        self
    }

    /// Serialises the config and manifest.
    pub fn build(self) -> Image {
        let mut runtime = serde_json::Map::new();
        runtime.insert("Env".into(), json!(self.env));
        if let Some(cmd) = &self.cmd {
            runtime.insert("Cmd".into(), json!(cmd));
        }
        if let Some(entrypoint) = &self.entrypoint {
            runtime.insert("Entrypoint".into(), json!(entrypoint));
        }
        if let Some(user) = &self.user {
            runtime.insert("User".into(), json!(user));
        }
        if let Some(dir) = &self.working_dir {
            runtime.insert("WorkingDir".into(), json!(dir));
        }
        if !self.labels.is_empty() {
            runtime.insert("Labels".into(), json!(self.labels));
        }
        let history: Vec<Value> = self
            .layers
            .iter()
            .map(|l| json!({ "created": EPOCH_RFC3339, "created_by": l.created_by }))
            .collect();
        let mut config = json!({
            "architecture": self.platform.architecture,
            "os": self.platform.os,
            "created": EPOCH_RFC3339,
            "config": runtime,
            "rootfs": {
                "type": "layers",
                "diff_ids": self.layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
            },
            "history": history,
        });
        if let (Some(variant), Some(map)) = (&self.platform.variant, config.as_object_mut()) {
            map.insert("variant".into(), json!(variant));
        }

        let (manifest_type, config_type) = if self.docker {
            (media_type::DOCKER_MANIFEST, media_type::DOCKER_CONFIG)
        } else {
            (media_type::OCI_MANIFEST, media_type::OCI_CONFIG)
        };
        let layers: Vec<Layer> = if self.docker {
            self.layers.into_iter().map(docker_layer).collect()
        } else {
            self.layers
        };
        let config = Blob::new(config_type, to_json(&config));
        let manifest = manifest_blob(manifest_type, &config, &layers, &self.annotations);
        Image {
            manifest,
            config,
            layers,
            platform: self.platform,
        }
    }
}

fn docker_layer(layer: Layer) -> Layer {
    let media_type = match layer.blob.media_type.as_str() {
        media_type::OCI_LAYER_GZIP => media_type::DOCKER_LAYER_GZIP,
        media_type::OCI_LAYER_TAR => "application/vnd.docker.image.rootfs.diff.tar",
        media_type::OCI_LAYER_ZSTD => "application/vnd.docker.image.rootfs.diff.tar.zstd",
        other => other,
    }
    .to_string();
    layer.with_media_type(&media_type)
}

#[derive(Serialize)]
struct ManifestJson<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

fn manifest_blob(
    media_type: &str,
    config: &Blob,
    layers: &[Layer],
    annotations: &BTreeMap<String, String>,
) -> Blob {
    let manifest = ManifestJson {
        schema_version: 2,
        media_type,
        config: config.descriptor(),
        layers: layers.iter().map(Layer::descriptor).collect(),
        annotations,
    };
    Blob::new(media_type, to_json(&manifest))
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serialising plain structs and `Value`s cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A built image: manifest, config and layer blobs, all in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The manifest blob.
    pub manifest: Blob,
    /// The config blob.
    pub config: Blob,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
    /// The platform the config declares.
    pub platform: Platform,
}

impl Image {
    /// The manifest digest.
    pub fn digest(&self) -> &Digest {
        &self.manifest.digest
    }

    /// The config as JSON.
    pub fn config_json(&self) -> Result<Value> {
        serde_json::from_slice(&self.config.bytes).map_err(crate::error::json_error(format!(
            "config {}",
            self.config.digest
        )))
    }

    /// Edits the config JSON; the manifest is rebuilt to point at the new
    /// config (e.g. to declare wrong `diff_ids`).
    pub fn rewrite_config(mut self, edit: impl FnOnce(&mut Value)) -> Result<Image> {
        let mut config = self.config_json()?;
        edit(&mut config);
        self.config = Blob::new(&self.config.media_type, to_json(&config));
        let config_descriptor = self.config.descriptor();
        self.rewrite_manifest(|m| m["config"] = json!(config_descriptor))
    }

    /// Edits the manifest JSON (e.g. to reference a missing blob or an odd
    /// media type). Blobs are kept as they are.
    pub fn rewrite_manifest(mut self, edit: impl FnOnce(&mut Value)) -> Result<Image> {
        let mut manifest: Value = serde_json::from_slice(&self.manifest.bytes).map_err(
            crate::error::json_error(format!("manifest {}", self.manifest.digest)),
        )?;
        edit(&mut manifest);
        self.manifest = Blob::new(&self.manifest.media_type, to_json(&manifest));
        Ok(self)
    }

    /// Replaces one layer's blob (same position), keeping the manifest as
    /// it is: the typical way to serve a corrupted layer.
    pub fn replace_layer_blob(mut self, index: usize, blob: Blob) -> Result<Image> {
        let layer = self
            .layers
            .get_mut(index)
            .ok_or_else(|| HarnessError::InvalidContent(format!("image has no layer {index}")))?;
        layer.blob = blob;
        Ok(self)
    }

    /// Its descriptor as an index entry (with platform).
    pub fn index_entry(&self) -> Descriptor {
        Descriptor {
            platform: Some(self.platform.clone()),
            ..self.manifest.descriptor()
        }
    }

    fn find_blob(&self, digest: &Digest) -> Option<&Blob> {
        std::iter::once(&self.manifest)
            .chain(std::iter::once(&self.config))
            .chain(self.layers.iter().map(|l| &l.blob))
            .find(|b| &b.digest == digest)
    }
}

impl ImageSource for Image {
    fn root(&self) -> Descriptor {
        self.manifest.descriptor()
    }

    fn blob(&self, digest: &Digest) -> Result<Cow<'_, [u8]>> {
        self.find_blob(digest)
            .map(|b| Cow::Borrowed(b.bytes.as_slice()))
            .ok_or_else(|| HarnessError::BlobNotFound {
                digest: digest.to_string(),
                source_name: format!("image {}", self.manifest.digest),
            })
    }
}

/// Builds a multi-platform image index (or Docker manifest list).
#[derive(Debug, Clone, Default)]
pub struct IndexBuilder {
    images: Vec<Image>,
    docker: bool,
}

impl IndexBuilder {
    /// An empty index.
    pub fn new() -> IndexBuilder {
        IndexBuilder::default()
    }

    /// Adds a platform image.
    pub fn image(mut self, image: Image) -> IndexBuilder {
        self.images.push(image);
        self
    }

    /// Produces a Docker manifest list instead of an OCI index.
    pub fn docker_media_types(mut self) -> IndexBuilder {
        self.docker = true;
        self
    }

    /// Serialises the index.
    pub fn build(self) -> ImageIndex {
        let media_type = if self.docker {
            media_type::DOCKER_MANIFEST_LIST
        } else {
            media_type::OCI_INDEX
        };
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": self.images.iter().map(Image::index_entry).collect::<Vec<_>>(),
        });
        ImageIndex {
            index: Blob::new(media_type, to_json(&index)),
            images: self.images,
        }
    }
}

/// A built image index and its platform images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageIndex {
    /// The index blob.
    pub index: Blob,
    /// The platform images it lists.
    pub images: Vec<Image>,
}

impl ImageIndex {
    /// The index digest.
    pub fn digest(&self) -> &Digest {
        &self.index.digest
    }
}

impl ImageSource for ImageIndex {
    fn root(&self) -> Descriptor {
        self.index.descriptor()
    }

    fn blob(&self, digest: &Digest) -> Result<Cow<'_, [u8]>> {
        if &self.index.digest == digest {
            return Ok(Cow::Borrowed(&self.index.bytes));
        }
        self.images
            .iter()
            .find_map(|i| i.find_blob(digest))
            .map(|b| Cow::Borrowed(b.bytes.as_slice()))
            .ok_or_else(|| HarnessError::BlobNotFound {
                digest: digest.to_string(),
                source_name: format!("index {}", self.index.digest),
            })
    }
}
