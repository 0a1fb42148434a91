//! Deterministic OCI building blocks: tar layers, image configs, manifests,
//! indexes, on-disk layouts and import archives.
//!
//! Everything here is written by hand (no dependency on the code under test)
//! and byte-for-byte reproducible: fixed mtimes, uid/gid 0 unless asked,
//! gzip headers without name or time, JSON with a fixed key order.

mod archive;
mod image;
mod layer;
mod layout;
pub mod media_type;
mod schema1;
mod tar;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{HarnessError, Result};

pub use archive::{write_docker_archive, write_oci_archive};
pub use image::{DEFAULT_PATH, Image, ImageBuilder, ImageIndex, IndexBuilder};
pub use layer::{Layer, LayerBuilder};
pub(crate) use layout::named as layout_named;
pub use layout::{LayoutImage, OciLayout, REF_NAME};
pub use schema1::signed_schema1_manifest;
pub use tar::{EntryKind, TarEntry, write_tar};

/// The fixed timestamp (2024-01-01T00:00:00Z) of every tar entry and config.
pub const EPOCH_SECONDS: u64 = 1_704_067_200;
/// [`EPOCH_SECONDS`] in RFC 3339, as image configs carry it.
pub const EPOCH_RFC3339: &str = "2024-01-01T00:00:00Z";

/// A content digest, always `sha256:<64 hex>` here.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// Parses `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Digest> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| HarnessError::InvalidContent(format!("digest {s:?} is not sha256")))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HarnessError::InvalidContent(format!(
                "digest {s:?} is malformed"
            )));
        }
        Ok(Digest(s.to_string()))
    }

    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part alone.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

/// An OS/architecture/variant triple as image indexes carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// GOARCH-style architecture (`amd64`, `arm64`, `arm`, ...).
    pub architecture: String,
    /// GOOS-style OS (`linux`).
    pub os: String,
    /// CPU variant (`v7` for 32-bit arm), if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/<architecture>[/<variant>]`.
    pub fn linux(architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: architecture.to_string(),
            os: "linux".to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// `wasi/wasm`, the platform of Wasm images.
    pub fn wasi() -> Platform {
        Platform {
            architecture: "wasm".to_string(),
            os: "wasi".to_string(),
            variant: None,
        }
    }

    /// The platform of the machine running the tests, in OCI naming.
    pub fn host() -> Platform {
        match std::env::consts::ARCH {
            "x86_64" => Platform::linux("amd64", None),
            "aarch64" => Platform::linux("arm64", None),
            "arm" => Platform::linux("arm", Some("v7")),
            "x86" => Platform::linux("386", None),
            "powerpc64" => Platform::linux("ppc64le", None),
            other => Platform::linux(other, None),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The media type of the referenced content.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The platform, for entries of an image index.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<Platform>,
    /// Annotations (`org.opencontainers.image.ref.name`, ...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A piece of content with its media type and (declared) digest.
///
/// The digest is normally the sha256 of `bytes`; [`Blob::corrupted`] makes a
/// blob whose bytes no longer match it, to test digest verification.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob {
    /// The media type it is referenced with.
    pub media_type: String,
    /// The digest it is referenced by.
    pub digest: Digest,
    /// The content.
    pub bytes: Vec<u8>,
}

impl Blob {
    /// A blob whose digest is computed from `bytes`.
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: Digest::of(&bytes),
            bytes,
        }
    }

    /// Its descriptor (without platform).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            platform: None,
            annotations: None,
        }
    }

    /// The same blob with one byte flipped in the middle: digest and size
    /// stay as declared, so a consumer must notice the mismatch.
    pub fn corrupted(mut self) -> Blob {
        if self.bytes.is_empty() {
            self.bytes.push(0);
        } else {
            let middle = self.bytes.len() / 2;
            self.bytes[middle] ^= 0xff;
        }
        self
    }

    /// True when `bytes` really hash to `digest`.
    pub fn is_intact(&self) -> bool {
        Digest::of(&self.bytes) == self.digest
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("media_type", &self.media_type)
            .field("digest", &self.digest)
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// How a layer blob or an archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (level 6, no name, no timestamp).
    Gzip,
    /// zstd (level 3, single-threaded).
    Zstd,
}

impl Compression {
    /// Compresses `data` deterministically.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut encoder =
                    flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
                // Writing into a Vec cannot fail.
                let _ = encoder.write_all(data);
                encoder.finish().unwrap_or_default()
            }
            Compression::Zstd => zstd::bulk::compress(data, 3).unwrap_or_default(),
        }
    }

    /// Decompresses `data` that was compressed this way.
    pub fn decompress(self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let result = match self {
            Compression::None => return Ok(data.to_vec()),
            Compression::Gzip => flate2::read::GzDecoder::new(data).read_to_end(&mut out),
            Compression::Zstd => {
                zstd::stream::read::Decoder::new(data).and_then(|mut d| d.read_to_end(&mut out))
            }
        };
        result.map_err(|e| {
            HarnessError::InvalidContent(format!("cannot decompress {self:?}: {e}"))
        })?;
        Ok(out)
    }

    /// The compression a layer media type implies.
    pub fn of_layer_media_type(media_type: &str) -> Compression {
        if media_type.ends_with("+zstd") || media_type.ends_with(".zstd") {
            Compression::Zstd
        } else if media_type.ends_with("gzip") {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for a tar compressed this way.
    pub fn oci_layer_media_type(self) -> &'static str {
        match self {
            Compression::None => media_type::OCI_LAYER_TAR,
            Compression::Gzip => media_type::OCI_LAYER_GZIP,
            Compression::Zstd => media_type::OCI_LAYER_ZSTD,
        }
    }
}

/// Something that holds an image (or index) and its blobs: a built
/// [`Image`], an [`ImageIndex`], a loaded fixture. Registries push it,
/// archive writers export it.
pub trait ImageSource {
    /// The descriptor of the top manifest or index.
    fn root(&self) -> Descriptor;
    /// The bytes of one blob (manifest, config or layer) reachable from the root.
    fn blob(&self, digest: &Digest) -> Result<Cow<'_, [u8]>>;
}

impl<T: ImageSource + ?Sized> ImageSource for &T {
    fn root(&self) -> Descriptor {
        (**self).root()
    }

    fn blob(&self, digest: &Digest) -> Result<Cow<'_, [u8]>> {
        (**self).blob(digest)
    }
}

/// The parts of a manifest or index the harness needs to walk content.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ParsedManifest {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

impl ParsedManifest {
    /// Parses a manifest or index blob.
    pub(crate) fn parse(bytes: &[u8], digest: &Digest) -> Result<ParsedManifest> {
        serde_json::from_slice(bytes)
            .map_err(crate::error::json_error(format!("manifest {digest}")))
    }

    /// True for an image index or Docker manifest list.
    pub(crate) fn is_index(&self) -> bool {
        !self.manifests.is_empty()
            || matches!(
                self.media_type.as_deref(),
                Some(media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST)
            )
    }
}

/// Picks the entry of an index matching `platform` (ignoring the variant
/// when the index entry has none).
pub(crate) fn select_platform<'a>(
    manifests: &'a [Descriptor],
    platform: &Platform,
) -> Option<&'a Descriptor> {
    manifests.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == platform.os
                && p.architecture == platform.architecture
                && (p.variant.is_none() || p.variant == platform.variant)
        })
    })
}

/// Every descriptor reachable from `source`'s root, children before their
/// parents (blobs, then manifests, then the index), each digest once: the
/// order in which a registry accepts them.
pub(crate) fn reachable(source: &dyn ImageSource) -> Result<Vec<Descriptor>> {
    let mut out = Vec::new();
    collect(source, &source.root(), &mut out)?;
    Ok(out)
}

fn collect(source: &dyn ImageSource, desc: &Descriptor, out: &mut Vec<Descriptor>) -> Result<()> {
    let bytes = source.blob(&desc.digest)?;
    let manifest = ParsedManifest::parse(&bytes, &desc.digest)?;
    let children = manifest.manifests.iter();
    for child in children {
        collect(source, child, out)?;
    }
    let blobs = manifest.config.iter().chain(manifest.layers.iter());
    for blob in blobs {
        if !out.iter().any(|d| d.digest == blob.digest) {
            out.push(blob.clone());
        }
    }
    if !out.iter().any(|d| d.digest == desc.digest) {
        out.push(Descriptor {
            annotations: None,
            ..desc.clone()
        });
    }
    Ok(())
}
