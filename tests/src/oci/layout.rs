//! OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/sha256/`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Descriptor, Digest, ImageSource, reachable};
use crate::error::{HarnessError, Result, io_error, json_error};

/// The annotation naming an image in a layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct IndexJson {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

impl OciLayout {
    /// Creates an empty layout in `dir` (which may exist).
    pub fn create(dir: &Path) -> Result<OciLayout> {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(io_error("create directory", &blobs))?;
        let marker = dir.join("oci-layout");
        fs::write(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(io_error("write", &marker))?;
        let layout = OciLayout {
            dir: dir.to_path_buf(),
        };
        layout.write_index(&[])?;
        Ok(layout)
    }

    /// Opens an existing layout.
    pub fn open(dir: &Path) -> OciLayout {
        OciLayout {
            dir: dir.to_path_buf(),
        }
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a blob lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// Reads a blob.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(io_error("read blob", &path))
    }

    /// Writes every blob of `source` (the root included) and returns the
    /// root descriptor; add it to the index with [`OciLayout::write_index`].
    pub fn add(&self, source: &dyn ImageSource) -> Result<Descriptor> {
        for desc in reachable(source)? {
            let path = self.blob_path(&desc.digest);
            if !path.exists() {
                let bytes = source.blob(&desc.digest)?;
                fs::write(&path, &bytes).map_err(io_error("write blob", &path))?;
            }
        }
        Ok(source.root())
    }

    /// Replaces `index.json` with these entries.
    pub fn write_index(&self, manifests: &[Descriptor]) -> Result<()> {
        let index = IndexJson {
            schema_version: 2,
            media_type: Some(super::media_type::OCI_INDEX.to_string()),
            manifests: manifests.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&index).map_err(json_error("index.json"))?;
        let path = self.dir.join("index.json");
        fs::write(&path, bytes).map_err(io_error("write", &path))
    }

    /// The entries of `index.json`.
    pub fn read_index(&self) -> Result<Vec<Descriptor>> {
        let path = self.dir.join("index.json");
        let bytes = fs::read(&path).map_err(io_error("read", &path))?;
        let index: IndexJson =
            serde_json::from_slice(&bytes).map_err(json_error(path.display().to_string()))?;
        Ok(index.manifests)
    }

    /// The `index.json` entry whose ref-name annotation is `name`.
    pub fn find(&self, name: &str) -> Result<Descriptor> {
        self.read_index()?
            .into_iter()
            .find(|d| {
                d.annotations
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .is_some_and(|n| n == name)
            })
            .ok_or_else(|| {
                HarnessError::InvalidContent(format!(
                    "no image named {name} in layout {}",
                    self.dir.display()
                ))
            })
    }

    /// An [`ImageSource`] for the image whose root is `root`.
    pub fn image(&self, root: Descriptor) -> LayoutImage<'_> {
        LayoutImage { layout: self, root }
    }
}

/// Adds a ref-name annotation to a descriptor.
pub(crate) fn named(mut desc: Descriptor, name: &str) -> Descriptor {
    desc.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(REF_NAME.to_string(), name.to_string());
    desc
}

/// One image inside an [`OciLayout`].
#[derive(Debug, Clone)]
pub struct LayoutImage<'a> {
    layout: &'a OciLayout,
    root: Descriptor,
}

impl ImageSource for LayoutImage<'_> {
    fn root(&self) -> Descriptor {
        Descriptor {
            annotations: None,
            ..self.root.clone()
        }
    }

    fn blob(&self, digest: &Digest) -> Result<Cow<'_, [u8]>> {
        let path = self.layout.blob_path(digest);
        match fs::read(&path) {
            Ok(bytes) => Ok(Cow::Owned(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(HarnessError::BlobNotFound {
                digest: digest.to_string(),
                source_name: format!("layout {}", self.layout.dir.display()),
            }),
            Err(e) => Err(io_error("read blob", &path)(e)),
        }
    }
}
