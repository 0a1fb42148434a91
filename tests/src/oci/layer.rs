//! Layers: a list of tar entries, compressed into a blob.

use super::tar::{TarEntry, write_tar};
use super::{Blob, Compression, Descriptor, Digest};

/// Builds one layer from tar entries, in the order they are added.
///
/// ```
/// use skiff_tests::oci::{Compression, LayerBuilder, TarEntry};
/// let layer = LayerBuilder::new()
///     .dir("data")
///     .file("data/hello", "hi\n")
///     .entry(TarEntry::file("data/suid", "x").mode(0o4755).owner(1000, 1000))
///     .whiteout("data/old")
///     .build(Compression::Gzip);
/// assert!(layer.blob.is_intact());
/// ```
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    entries: Vec<TarEntry>,
    created_by: Option<String>,
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> LayerBuilder {
        LayerBuilder::default()
    }

    /// Sets the `created_by` text the image history shows for this layer.
    pub fn created_by(mut self, text: &str) -> LayerBuilder {
        self.created_by = Some(text.to_string());
        self
    }

    /// Appends any entry (owner, mode, xattrs, raw hostile paths...).
    pub fn entry(mut self, entry: TarEntry) -> LayerBuilder {
        self.entries.push(entry);
        self
    }

    /// Appends a directory, mode 0755.
    pub fn dir(self, path: &str) -> LayerBuilder {
        self.entry(TarEntry::dir(path))
    }

    /// Appends a regular file, mode 0644.
    pub fn file(self, path: &str, contents: impl Into<Vec<u8>>) -> LayerBuilder {
        self.entry(TarEntry::file(path, contents))
    }

    /// Appends an executable file, mode 0755.
    pub fn executable(self, path: &str, contents: impl Into<Vec<u8>>) -> LayerBuilder {
        self.entry(TarEntry::file(path, contents).mode(0o755))
    }

    /// Appends a symlink.
    pub fn symlink(self, path: &str, target: &str) -> LayerBuilder {
        self.entry(TarEntry::symlink(path, target))
    }

    /// Appends a hard link to an earlier entry.
    pub fn hardlink(self, path: &str, target: &str) -> LayerBuilder {
        self.entry(TarEntry::hardlink(path, target))
    }

    /// Appends the whiteout that deletes `path` from lower layers
    /// (`dir/.wh.name`).
    pub fn whiteout(self, path: &str) -> LayerBuilder {
        let path = path.trim_end_matches('/');
        let whiteout = match path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.wh.{name}"),
            None => format!(".wh.{path}"),
        };
        self.entry(TarEntry::file(&whiteout, Vec::new()))
    }

    /// Appends the opaque marker that hides everything lower layers put in
    /// `dir` (`dir/.wh..wh..opq`).
    pub fn opaque(self, dir: &str) -> LayerBuilder {
        let dir = dir.trim_end_matches('/');
        self.entry(TarEntry::file(&format!("{dir}/.wh..wh..opq"), Vec::new()))
    }

    /// The uncompressed tar.
    pub fn tar(&self) -> Vec<u8> {
        write_tar(&self.entries)
    }

    /// Builds the layer blob with the OCI media type for `compression`.
    pub fn build(self, compression: Compression) -> Layer {
        let created_by = self
            .created_by
            .clone()
            .unwrap_or_else(|| "skiff-tests layer".to_string());
        Layer::from_tar(&self.tar(), compression, &created_by)
    }
}

/// A built layer: its blob (compressed tar) and the digest of the
/// uncompressed tar that image configs list as a `diff_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer blob as registries serve it.
    pub blob: Blob,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// The history text of the layer.
    pub created_by: String,
}

impl Layer {
    /// Wraps an existing tar.
    pub fn from_tar(tar: &[u8], compression: Compression, created_by: &str) -> Layer {
        Layer {
            blob: Blob::new(
                compression.oci_layer_media_type(),
                compression.compress(tar),
            ),
            diff_id: Digest::of(tar),
            created_by: created_by.to_string(),
        }
    }

    /// A raw Wasm layer: the module's bytes themselves (not a tar) under a
    /// Wasm media type; its `diff_id` is the blob's own digest.
    pub fn wasm(module: &[u8], media_type: &str) -> Layer {
        Layer {
            blob: Blob::new(media_type, module.to_vec()),
            diff_id: Digest::of(module),
            created_by: "wasm module".to_string(),
        }
    }

    /// The same bytes under another media type (e.g. a Docker one).
    pub fn with_media_type(mut self, media_type: &str) -> Layer {
        self.blob.media_type = media_type.to_string();
        self
    }

    /// The same layer with a flipped byte: the manifest still names the
    /// original digest, so pulls must fail verification.
    pub fn corrupted(mut self) -> Layer {
        self.blob = self.blob.corrupted();
        self
    }

    /// The descriptor a manifest lists.
    pub fn descriptor(&self) -> Descriptor {
        self.blob.descriptor()
    }
}
