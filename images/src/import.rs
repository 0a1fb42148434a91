//! Air-gap import: OCI image-layout and docker-archive tarballs (plain,
//! `.gz` or `.zst`), as k3s imports everything under
//! `<data-dir>/agent/images/` at start. Imported images are pinned, so
//! garbage collection never removes what an offline node cannot pull again.
//!
//! A tarball is read twice, streaming: the first pass keeps only the small
//! JSON documents (index, manifests, configs); the second unpacks the layers
//! the node lacks straight from the archive into their snapshots, verified
//! like pulled layers. Nothing is extracted to a temporary directory.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::config::parse_image_config;
use crate::digest::Digest;
use crate::error::ImageError;
use crate::metadata::{ImageRecord, LayerRef};
use crate::pull::{VerifyingReader, layer_refs};
use crate::reference::Reference;
use crate::store::{ImageStore, Inner, unix_now};
use crate::unpack::{Compression, LayerFormat};

/// JSON documents bigger than this are not image metadata.
const DOCUMENT_LIMIT: u64 = 4 << 20;
/// Total metadata kept in memory per archive.
const METADATA_BUDGET: usize = 64 << 20;
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What importing a directory did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Archives imported, with the images each held.
    pub imported: Vec<(PathBuf, Vec<ImageRecord>)>,
    /// Archives that failed, with why. Other archives are still imported.
    pub failed: Vec<(PathBuf, ImageError)>,
}

/// One image found in an archive, before its layers are unpacked.
#[derive(Debug)]
struct ArchiveImage {
    names: Vec<String>,
    manifest_media_type: String,
    manifest_bytes: Vec<u8>,
    config_bytes: Vec<u8>,
    /// Extra blobs to keep (an index the names' repo digests point at).
    extra_blobs: Vec<Vec<u8>>,
    layers: Vec<LayerRef>,
    /// Where each layer's blob is inside the archive, by position.
    layer_paths: Vec<String>,
    /// Verify layer blobs against their digest (OCI) or only their diff ID (docker).
    verify_blobs: bool,
}

impl ImageStore {
    /// Imports every `*.tar`, `*.tar.gz`/`*.tgz` and `*.tar.zst`/`*.tzst`
    /// file in `dir` (a missing directory imports nothing). One bad archive
    /// does not stop the others.
    pub async fn import_dir(&self, dir: &Path) -> ImportReport {
        let mut report = ImportReport::default();
        let mut archives: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return report,
            Err(err) => {
                report
                    .failed
                    .push((dir.to_path_buf(), ImageError::io("read", dir)(err)));
                return report;
            }
        };
        archives.sort();
        for path in archives {
            if archive_compression(&path).is_none() {
                if path.is_file() {
                    tracing::debug!(path = %path.display(), "not an image archive; skipped");
                }
                continue;
            }
            match self.import_archive(&path).await {
                Ok(images) => report.imported.push((path, images)),
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "image import failed");
                    report.failed.push((path, err));
                }
            }
        }
        report
    }

    /// Imports the images of one OCI image-layout or docker-archive tarball.
    pub async fn import_archive(&self, path: &Path) -> Result<Vec<ImageRecord>, ImageError> {
        let inner = self.inner().clone();
        let archive = path.to_path_buf();
        let images = tokio::task::spawn_blocking(move || read_archive_metadata(&inner, &archive))
            .await
            .map_err(|e| ImageError::Task(e.to_string()))??;
        if images.is_empty() {
            return Err(import_error(
                path,
                "no image for this node's platform in the archive",
            ));
        }

        // Hold every needed layer's lock (in a fixed order, so two imports
        // cannot deadlock) while the second pass unpacks them.
        let inner = self.inner();
        let mut keys: BTreeSet<Digest> = BTreeSet::new();
        images.iter().flat_map(|i| &i.layers).for_each(|l| {
            keys.insert(l.diff_id.clone());
        });
        let mut guards = Vec::with_capacity(keys.len());
        let mut claims = Vec::with_capacity(keys.len());
        for key in &keys {
            guards.push(inner.layer_locks.lock(key.hex()).await);
            claims.push(inner.claim(key));
        }
        let mut wanted: HashMap<String, LayerRef> = HashMap::new();
        let mut verify: HashMap<String, bool> = HashMap::new();
        for image in &images {
            for (layer, entry) in image.layers.iter().zip(&image.layer_paths) {
                if inner.snapshots.layer(&layer.diff_id)?.is_none() {
                    wanted.insert(entry.clone(), layer.clone());
                    verify.insert(entry.clone(), image.verify_blobs);
                }
            }
        }
        if !wanted.is_empty() {
            let (inner, archive) = (inner.clone(), path.to_path_buf());
            tokio::task::spawn_blocking(move || unpack_layers(&inner, &archive, wanted, &verify))
                .await
                .map_err(|e| ImageError::Task(e.to_string()))??;
        }
        drop(guards);

        let mut imported = Vec::with_capacity(images.len());
        for image in images {
            imported.push(record(inner, image).await?);
        }
        drop(claims);
        crate::store::release_freed_memory();
        for image in &imported {
            tracing::info!(archive = %path.display(), image = %image.id, names = ?image.names, "imported image");
        }
        Ok(imported)
    }
}

async fn record(inner: &Arc<Inner>, image: ArchiveImage) -> Result<ImageRecord, ImageError> {
    let id = Digest::sha256_of(&image.config_bytes);
    let manifest_digest = Digest::sha256_of(&image.manifest_bytes);
    inner.content.write(&id, &image.config_bytes)?;
    inner
        .content
        .write(&manifest_digest, &image.manifest_bytes)?;
    for blob in &image.extra_blobs {
        inner.content.write(&Digest::sha256_of(blob), blob)?;
    }
    let config: ImageConfiguration =
        parse_image_config(&image.config_bytes).map_err(|e| ImageError::InvalidImage {
            image: id.to_string(),
            reason: e.to_string(),
        })?;
    let now = unix_now();
    let size = (image.manifest_bytes.len() + image.config_bytes.len()) as u64
        + image.layers.iter().map(|l| l.blob_size).sum::<u64>();
    inner
        .record_image(ImageRecord {
            id,
            manifest_digest,
            manifest_media_type: image.manifest_media_type,
            names: image.names,
            layers: image.layers,
            size,
            user: config
                .config()
                .as_ref()
                .and_then(|c| c.user().clone())
                .unwrap_or_default(),
            pinned: true,
            created_at: now,
            last_used: now,
        })
        .await
}

fn import_error(path: &Path, reason: impl Into<String>) -> ImageError {
    ImageError::Import {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The archive's compression, from its file name; `None` if not an archive.
fn archive_compression(path: &Path) -> Option<Compression> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".tar") {
        Some(Compression::None)
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(Compression::Gzip)
    } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
        Some(Compression::Zstd)
    } else {
        None
    }
}

fn open_archive(path: &Path) -> Result<tar::Archive<Box<dyn Read>>, ImageError> {
    let compression = archive_compression(path)
        .ok_or_else(|| import_error(path, "not a .tar, .tar.gz or .tar.zst file"))?;
    let file = BufReader::with_capacity(
        256 << 10,
        File::open(path).map_err(ImageError::io("open", path))?,
    );
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(file)
                .map_err(ImageError::io("open zstd", path))?,
        ),
    };
    Ok(tar::Archive::new(reader))
}

fn entry_path<R: Read>(entry: &tar::Entry<'_, R>) -> Option<String> {
    let path = entry.path().ok()?;
    let path = path
        .to_str()?
        .trim_start_matches("./")
        .trim_start_matches('/');
    Some(path.to_string())
}

/// What the first pass keeps of an archive.
#[derive(Debug, Default)]
struct Documents {
    /// Small JSON documents, by path inside the archive.
    json: HashMap<String, Vec<u8>>,
    /// Every regular file's size, by path.
    sizes: HashMap<String, u64>,
}

/// First pass: the small JSON documents and every file's size.
fn read_documents(path: &Path) -> Result<Documents, ImageError> {
    let mut archive = open_archive(path)?;
    let mut documents = HashMap::new();
    let mut sizes = HashMap::new();
    let mut budget = METADATA_BUDGET;
    let read_err = |e: io::Error| import_error(path, format!("reading the archive: {e}"));
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let Some(name) = entry_path(&entry) else {
            continue;
        };
        sizes.insert(name.clone(), entry.size());
        if entry.size() > DOCUMENT_LIMIT {
            continue;
        }
        let mut reader = BufReader::new(&mut entry);
        let starts_like_json =
            reader.fill_buf().map_err(read_err)?.first() == Some(&b'{') || name == "manifest.json";
        if !starts_like_json && name != "oci-layout" {
            continue;
        }
        let mut data = Vec::new();
        reader.read_to_end(&mut data).map_err(read_err)?;
        budget = budget
            .checked_sub(data.len())
            .ok_or_else(|| import_error(path, "more than 64 MiB of JSON metadata"))?;
        documents.insert(name, data);
    }
    Ok(Documents {
        json: documents,
        sizes,
    })
}

fn read_archive_metadata(inner: &Inner, path: &Path) -> Result<Vec<ArchiveImage>, ImageError> {
    let documents = read_documents(path)?;
    if documents.json.contains_key("index.json") {
        oci_layout_images(inner, path, &documents.json)
    } else if documents.json.contains_key("manifest.json") {
        docker_archive_images(path, &documents)
    } else {
        Err(import_error(
            path,
            "neither an OCI image layout (index.json) nor a docker archive (manifest.json)",
        ))
    }
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn descriptor_digest(path: &Path, descriptor: &Descriptor) -> Result<Digest, ImageError> {
    descriptor
        .digest()
        .to_string()
        .parse()
        .map_err(|e| import_error(path, format!("descriptor digest: {e}")))
}

/// A blob by digest, verified.
fn document<'a>(
    path: &Path,
    documents: &'a HashMap<String, Vec<u8>>,
    digest: &Digest,
) -> Result<&'a [u8], ImageError> {
    let data = documents
        .get(&blob_path(digest))
        .ok_or_else(|| import_error(path, format!("blob {digest} is missing from the archive")))?;
    let actual = Digest::sha256_of(data);
    if &actual != digest {
        return Err(import_error(
            path,
            format!("blob {digest} hashes to {actual}"),
        ));
    }
    Ok(data)
}

fn oci_layout_images(
    inner: &Inner,
    path: &Path,
    documents: &HashMap<String, Vec<u8>>,
) -> Result<Vec<ArchiveImage>, ImageError> {
    let index: ImageIndex = serde_json::from_slice(&documents["index.json"])
        .map_err(|e| import_error(path, format!("index.json: {e}")))?;
    let platforms = inner.client.platforms();
    let mut images = Vec::new();
    for top in index.manifests() {
        let annotations = top.annotations().clone().unwrap_or_default();
        let name = annotations.get(CONTAINERD_NAME).or_else(|| {
            annotations
                .get(OCI_REF_NAME)
                .filter(|n| n.contains('/') || n.contains(':'))
        });
        let top_digest = descriptor_digest(path, top)?;
        let mut names = Vec::new();
        if let Some(name) = name {
            let reference: Reference = name.parse()?;
            names.push(reference.with_digest(top_digest.clone()).to_string());
            if reference.digest.is_none() {
                names.push(reference.to_string());
            }
        } else {
            tracing::warn!(archive = %path.display(), digest = %top_digest, "image has no name in the archive; importing it by ID only");
        }

        // Follow indexes down to the manifest for this node, among those whose
        // blobs the archive actually carries.
        let mut descriptor = top.clone();
        let mut extra_blobs = Vec::new();
        for _ in 0..4 {
            let media_type = descriptor.media_type().to_string();
            if !crate::distribution::is_index(&media_type) {
                break;
            }
            let digest = descriptor_digest(path, &descriptor)?;
            let bytes = document(path, documents, &digest)?;
            let nested: ImageIndex = serde_json::from_slice(bytes)
                .map_err(|e| import_error(path, format!("index {digest}: {e}")))?;
            extra_blobs.push(bytes.to_vec());
            let present: Vec<Descriptor> = nested
                .manifests()
                .iter()
                .filter(|d| {
                    descriptor_digest(path, d).is_ok_and(|d| documents.contains_key(&blob_path(&d)))
                })
                .cloned()
                .collect();
            descriptor = platforms.select(&present).cloned().ok_or_else(|| {
                import_error(
                    path,
                    format!("index {digest} has no manifest for {platforms}"),
                )
            })?;
        }
        let manifest_digest = descriptor_digest(path, &descriptor)?;
        let manifest_bytes = document(path, documents, &manifest_digest)?;
        let manifest: ImageManifest = serde_json::from_slice(manifest_bytes)
            .map_err(|e| import_error(path, format!("manifest {manifest_digest}: {e}")))?;
        let config_digest = descriptor_digest(path, manifest.config())?;
        let config_bytes = document(path, documents, &config_digest)?;
        let config: ImageConfiguration = parse_image_config(config_bytes)
            .map_err(|e| import_error(path, format!("config {config_digest}: {e}")))?;
        let layers = layer_refs(&manifest_digest, manifest.layers(), &config)?;
        let layer_paths = layers.iter().map(|l| blob_path(&l.blob_digest)).collect();
        images.push(ArchiveImage {
            names,
            manifest_media_type: descriptor.media_type().to_string(),
            manifest_bytes: manifest_bytes.to_vec(),
            config_bytes: config_bytes.to_vec(),
            extra_blobs,
            layers,
            layer_paths,
            verify_blobs: true,
        });
    }
    Ok(images)
}

/// One entry of a docker archive's `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn docker_archive_images(
    path: &Path,
    documents: &Documents,
) -> Result<Vec<ArchiveImage>, ImageError> {
    let entries: Vec<DockerArchiveEntry> = serde_json::from_slice(&documents.json["manifest.json"])
        .map_err(|e| import_error(path, format!("manifest.json: {e}")))?;
    let mut images = Vec::new();
    for entry in entries {
        let config_path = entry.config.trim_start_matches("./").to_string();
        let config_bytes = documents
            .json
            .get(&config_path)
            .ok_or_else(|| {
                import_error(
                    path,
                    format!("config {config_path} is missing from the archive"),
                )
            })?
            .clone();
        let config: ImageConfiguration = parse_image_config(&config_bytes)
            .map_err(|e| import_error(path, format!("config {config_path}: {e}")))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != entry.layers.len() {
            return Err(import_error(
                path,
                format!(
                    "{} lists {} layers but its config {} diff IDs",
                    config_path,
                    entry.layers.len(),
                    diff_ids.len()
                ),
            ));
        }
        // Docker archives carry no manifest: write the OCI manifest the
        // image would have with uncompressed layers, so every image has one.
        let layer_paths: Vec<String> = entry
            .layers
            .iter()
            .map(|l| l.trim_start_matches("./").to_string())
            .collect();
        let mut layers = Vec::new();
        for (diff_id, layer_path) in diff_ids.iter().zip(&layer_paths) {
            let diff_id: Digest = diff_id
                .parse()
                .map_err(|e| import_error(path, format!("diff ID: {e}")))?;
            layers.push(LayerRef {
                blob_digest: diff_id.clone(),
                blob_size: documents.sizes.get(layer_path).copied().unwrap_or(0),
                media_type: DOCKER_LAYER.into(),
                diff_id,
            });
        }
        let manifest_bytes = synthesized_manifest(&config_bytes, &layers);
        let manifest_digest = Digest::sha256_of(&manifest_bytes);
        let mut names = Vec::new();
        for tag in entry.repo_tags.unwrap_or_default() {
            let reference: Reference = tag.parse()?;
            names.push(reference.to_string());
            names.push(reference.with_digest(manifest_digest.clone()).to_string());
        }
        images.push(ArchiveImage {
            names,
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            manifest_bytes,
            config_bytes,
            extra_blobs: Vec::new(),
            layers,
            layer_paths,
            verify_blobs: false,
        });
    }
    Ok(images)
}

fn synthesized_manifest(config: &[u8], layers: &[LayerRef]) -> Vec<u8> {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Digest::sha256_of(config).to_string(),
            "size": config.len(),
        },
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": l.diff_id.to_string(),
        })).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&manifest).unwrap_or_default()
}

/// Second pass: unpack the `wanted` layers (by archive path) into snapshots.
fn unpack_layers(
    inner: &Inner,
    path: &Path,
    mut wanted: HashMap<String, LayerRef>,
    verify: &HashMap<String, bool>,
) -> Result<(), ImageError> {
    let mut archive = open_archive(path)?;
    let read_err = |e: io::Error| import_error(path, format!("reading the archive: {e}"));
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let Some(name) = entry_path(&entry) else {
            continue;
        };
        let Some(layer) = wanted.remove(&name) else {
            continue;
        };
        let mut reader = BufReader::with_capacity(256 << 10, &mut entry);
        let format = if verify.get(&name).copied().unwrap_or(false) {
            LayerFormat::from_media_type(&layer.media_type).map_err(|source| {
                ImageError::Unpack {
                    layer: layer.blob_digest.clone(),
                    source,
                }
            })?
        } else {
            LayerFormat::Tar(Compression::sniff(reader.fill_buf().map_err(read_err)?))
        };
        let expected = verify
            .get(&name)
            .copied()
            .unwrap_or(false)
            .then(|| (layer.blob_digest.clone(), layer.blob_size));
        let blob = VerifyingReader::new(reader, expected, None);
        inner.unpack_layer_into_snapshot(&layer, format, blob)?;
        // A layer listed twice in one archive is unpacked once.
        wanted.retain(|_, l| l.diff_id != layer.diff_id);
    }
    if let Some(missing) = wanted.keys().next() {
        return Err(import_error(
            path,
            format!("layer {missing} is missing from the archive"),
        ));
    }
    Ok(())
}
