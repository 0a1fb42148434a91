//! Pulling an image: resolve the reference at a registry, then stream every
//! missing layer straight into its snapshot — verified against the blob's
//! digest and size as it arrives and against the config's diff ID once
//! unpacked — and only then record the image. A layer shared by concurrent
//! pulls is fetched once; layers already unpacked are never fetched.

use std::io::{self, BufReader, Read};
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use oci_spec::image::{Descriptor, ImageConfiguration};
use tokio::sync::Semaphore;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::config::parse_image_config;
use crate::digest::{Digest, Hasher};
use crate::distribution::{Credentials, RegistryError, ResolvedImage};
use crate::error::ImageError;
use crate::metadata::{ImageRecord, LayerRef};
use crate::progress::{LayerState, PullProgress};
use crate::reference::Reference;
use crate::snapshots::Usage;
use crate::store::{Inner, LayerClaim, unix_now};
use crate::unpack::{LayerFormat, UnpackOptions, unpack_layer, unpack_wasm_module};
use crate::wasm::is_wasm_media_type;

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    /// The image as stored.
    pub image: ImageRecord,
    /// Layers fetched from the registry by this pull.
    pub layers_fetched: usize,
    /// Layers already on the node (or fetched by a concurrent pull).
    pub layers_reused: usize,
    /// Bytes received from the registry for layers.
    pub bytes_fetched: u64,
}

/// Whether a layer had to be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerOutcome {
    Fetched,
    Reused,
}

impl Inner {
    pub(crate) async fn pull(
        self: &Arc<Self>,
        reference: &Reference,
        credentials: Option<&Credentials>,
        progress: Arc<PullProgress>,
    ) -> Result<PullOutcome, ImageError> {
        let resolved = Arc::new(self.client.resolve(reference, credentials).await?);
        let image_id = digest_of(&resolved.config_descriptor, reference)?;
        let config: ImageConfiguration =
            parse_image_config(&resolved.config).map_err(|e| ImageError::InvalidImage {
                image: reference.to_string(),
                reason: format!("config: {e}"),
            })?;
        let layers = layer_refs(reference, &resolved.manifest.layers()[..], &config)?;
        progress.set_layers(layers.iter().map(|l| (l.blob_digest.clone(), l.blob_size)));

        // Each layer runs as its own task: if the caller goes away, layers in
        // flight still finish (and the next pull reuses them) instead of
        // leaving a half-unpacked directory behind a released lock.
        let slots = Arc::new(Semaphore::new(self.config.max_concurrent_downloads.max(1)));
        let tasks: Vec<_> = layers
            .iter()
            .zip(resolved.manifest.layers().iter())
            .map(|(layer, descriptor)| {
                tokio::spawn(self.clone().fetch_layer(
                    resolved.clone(),
                    layer.clone(),
                    descriptor.clone(),
                    progress.clone(),
                    slots.clone(),
                ))
            })
            .collect();
        // Wait for every layer even when one fails, so a failed pull returns
        // with nothing of it still being written.
        let mut outcomes: Vec<(LayerOutcome, LayerClaim)> = Vec::with_capacity(tasks.len());
        let mut first_error = None;
        for result in futures::future::join_all(tasks).await {
            match result
                .map_err(|e| ImageError::Task(e.to_string()))
                .and_then(|r| r)
            {
                Ok(outcome) => outcomes.push(outcome),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        if let Some(err) = first_error {
            return Err(err);
        }

        self.content.write(&image_id, &resolved.config)?;
        self.content
            .write(&resolved.manifest_digest, &resolved.manifest_bytes)?;
        if let Some(index) = &resolved.index {
            self.content.write(&resolved.repo_digest, &index.bytes)?;
        }
        let mut names = vec![
            reference
                .with_digest(resolved.repo_digest.clone())
                .to_string(),
        ];
        if let (None, Some(tag)) = (&reference.digest, &reference.tag) {
            names.push(reference.with_tag(tag)?.to_string());
        }
        let now = unix_now();
        let size = resolved.manifest_bytes.len() as u64
            + resolved.config.len() as u64
            + layers.iter().map(|l| l.blob_size).sum::<u64>();
        let record = ImageRecord {
            id: image_id,
            manifest_digest: resolved.manifest_digest.clone(),
            manifest_media_type: resolved.manifest_media_type.clone(),
            names,
            layers,
            size,
            user: config
                .config()
                .as_ref()
                .and_then(|c| c.user().clone())
                .unwrap_or_default(),
            pinned: false,
            created_at: now,
            last_used: now,
        };
        let image = self.record_image(record).await?;
        let fetched = outcomes
            .iter()
            .filter(|(o, _)| *o == LayerOutcome::Fetched)
            .count();
        tracing::info!(
            image = %reference,
            id = %image.id,
            layers_fetched = fetched,
            layers_reused = outcomes.len() - fetched,
            bytes = progress.bytes_received(),
            "pulled image"
        );
        Ok(PullOutcome {
            image,
            layers_fetched: fetched,
            layers_reused: outcomes.len() - fetched,
            bytes_fetched: progress.bytes_received(),
        })
    }

    async fn fetch_layer(
        self: Arc<Self>,
        resolved: Arc<ResolvedImage>,
        layer: LayerRef,
        descriptor: Descriptor,
        progress: Arc<PullProgress>,
        slots: Arc<Semaphore>,
    ) -> Result<(LayerOutcome, LayerClaim), ImageError> {
        let _guard = self.layer_locks.lock(layer.diff_id.hex()).await;
        if self.snapshots.layer(&layer.diff_id)?.is_some() {
            progress.set_state(&layer.blob_digest, LayerState::Exists);
            return Ok((LayerOutcome::Reused, self.claim(&layer.diff_id)));
        }
        let _slot = slots
            .acquire_owned()
            .await
            .map_err(|e| ImageError::Task(e.to_string()))?;
        let format = LayerFormat::from_media_type(&layer.media_type).map_err(|source| {
            ImageError::Unpack {
                layer: layer.blob_digest.clone(),
                source,
            }
        })?;
        let stream = self.client.fetch_blob(&resolved, &descriptor, 0).await?;

        // The unpacker reads synchronously on a blocking thread; network
        // errors travel through io::Error, so keep the original to report.
        let network_error: Arc<Mutex<Option<RegistryError>>> = Arc::default();
        let slot = network_error.clone();
        let stream = stream.map_err(move |err| {
            let io_err = io::Error::other(err.to_string());
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
            io_err
        });
        let reader = SyncIoBridge::new(StreamReader::new(stream));
        let inner = self.clone();
        let (job_layer, job_progress) = (layer.clone(), progress.clone());
        let unpacked = tokio::task::spawn_blocking(move || {
            let verifying = VerifyingReader::new(
                BufReader::with_capacity(256 << 10, reader),
                Some((job_layer.blob_digest.clone(), job_layer.blob_size)),
                Some(job_progress),
            );
            inner.unpack_layer_into_snapshot(&job_layer, format, verifying)
        })
        .await
        .map_err(|e| ImageError::Task(e.to_string()))?;
        if let Err(err) = unpacked {
            progress.set_state(&layer.blob_digest, LayerState::Failed);
            if let Some(network) = network_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                return Err(network.into());
            }
            return Err(err);
        }
        progress.set_state(&layer.blob_digest, LayerState::Done);
        Ok((LayerOutcome::Fetched, self.claim(&layer.diff_id)))
    }

    /// Unpacks one layer from `blob` into a new snapshot (a raw Wasm layer
    /// becomes its one module file), checking the blob's digest and size
    /// (when known) and the diff ID. Nothing is left behind when any check
    /// fails. Blocking: call from a blocking thread.
    pub(crate) fn unpack_layer_into_snapshot<R: Read>(
        &self,
        layer: &LayerRef,
        format: LayerFormat,
        mut blob: VerifyingReader<R>,
    ) -> Result<(), ImageError> {
        self.snapshots.create_layer(&layer.diff_id, |dir| {
            let options = UnpackOptions::default();
            let unpacked = match format {
                LayerFormat::Tar(compression) => {
                    unpack_layer(&mut blob, compression, dir, &options)
                }
                LayerFormat::WasmModule => {
                    unpack_wasm_module(&mut blob, &layer.blob_digest, dir, &options)
                }
            };
            // A corrupted blob often shows up as a broken tar first; the
            // verification failure is the truer error, so it wins.
            blob.finish()?;
            let stats = unpacked.map_err(|source| ImageError::Unpack {
                layer: layer.blob_digest.clone(),
                source,
            })?;
            if stats.diff_id != layer.diff_id {
                return Err(ImageError::DiffIdMismatch {
                    layer: layer.blob_digest.clone(),
                    expected: layer.diff_id.clone(),
                    actual: stats.diff_id,
                });
            }
            Ok(Usage {
                bytes: stats.disk_usage,
                inodes: stats.inodes,
            })
        })?;
        Ok(())
    }
}

fn digest_of(descriptor: &Descriptor, reference: &Reference) -> Result<Digest, ImageError> {
    descriptor
        .digest()
        .to_string()
        .parse()
        .map_err(|e| ImageError::InvalidImage {
            image: reference.to_string(),
            reason: format!("descriptor digest: {e}"),
        })
}

/// Pairs the manifest's layer blobs with the config's diff IDs.
///
/// A raw Wasm layer is uncompressed, so its diff ID is its blob digest: a
/// config may list it so, or (Wasm artifacts) list diff IDs only for the tar
/// layers, or none at all when every layer is Wasm.
pub(crate) fn layer_refs(
    reference: &impl std::fmt::Display,
    layers: &[Descriptor],
    config: &ImageConfiguration,
) -> Result<Vec<LayerRef>, ImageError> {
    let invalid = |reason: String| ImageError::InvalidImage {
        image: reference.to_string(),
        reason,
    };
    let diff_ids = config.rootfs().diff_ids();
    let is_wasm: Vec<bool> = layers
        .iter()
        .map(|d| is_wasm_media_type(d.media_type().as_ref()))
        .collect();
    let tar_layers = is_wasm.iter().filter(|wasm| !**wasm).count();
    // Whether only the tar layers have an entry in `diff_ids`.
    let tar_only = diff_ids.len() != layers.len() && diff_ids.len() == tar_layers;
    if diff_ids.len() != layers.len() && !tar_only {
        return Err(invalid(format!(
            "the manifest has {} layers but the config lists {} diff IDs",
            layers.len(),
            diff_ids.len()
        )));
    }
    let mut listed = diff_ids.iter();
    layers
        .iter()
        .zip(is_wasm)
        .map(|(descriptor, wasm)| {
            let blob_digest: Digest = descriptor
                .digest()
                .to_string()
                .parse()
                .map_err(|e| invalid(format!("layer digest: {e}")))?;
            let diff_id = if tar_only && wasm {
                blob_digest.clone()
            } else {
                listed
                    .next()
                    .ok_or_else(|| invalid("fewer diff IDs than tar layers".into()))?
                    .parse()
                    .map_err(|e| invalid(format!("diff ID: {e}")))?
            };
            Ok(LayerRef {
                blob_digest,
                blob_size: descriptor.size(),
                media_type: descriptor.media_type().to_string(),
                diff_id,
            })
        })
        .collect()
}

/// Reads a blob while checking it against its digest and size, reporting
/// progress. At the end of the stream, a mismatch turns into a read error
/// (so the unpacker stops) and [`VerifyingReader::finish`] names it.
#[derive(Debug)]
pub(crate) struct VerifyingReader<R> {
    inner: R,
    hasher: Hasher,
    expected: Option<(Digest, u64)>,
    progress: Option<Arc<PullProgress>>,
    failure: Option<ImageError>,
}

impl<R: Read> VerifyingReader<R> {
    pub(crate) fn new(
        inner: R,
        expected: Option<(Digest, u64)>,
        progress: Option<Arc<PullProgress>>,
    ) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
            expected,
            progress,
            failure: None,
        }
    }

    fn fail(&mut self, err: ImageError) -> io::Error {
        let io_err = io::Error::new(io::ErrorKind::InvalidData, err.to_string());
        self.failure.get_or_insert(err);
        io_err
    }

    /// Reads what the consumer left and reports whether the blob verified.
    pub(crate) fn finish(&mut self) -> Result<(), ImageError> {
        if self.failure.is_none() {
            let mut sink = [0u8; 64 << 10];
            loop {
                match self.read(&mut sink) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(_) if self.failure.is_some() => break,
                    // The transport failed; the caller reports that error.
                    Err(err) => return Err(ImageError::Task(format!("reading layer blob: {err}"))),
                }
            }
        }
        match self.failure.take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(err) = &self.failure {
            return Err(io::Error::new(io::ErrorKind::InvalidData, err.to_string()));
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        let Some((digest, size)) = &self.expected else {
            return Ok(n);
        };
        if let Some(progress) = &self.progress {
            progress.add_bytes(digest, n as u64);
        }
        let received = self.hasher.len();
        if received > *size || (n == 0 && received < *size) {
            let err = ImageError::LayerSizeMismatch {
                layer: digest.clone(),
                expected: *size,
                actual: received,
            };
            return Err(self.fail(err));
        }
        if n == 0 {
            let actual = std::mem::take(&mut self.hasher).finish();
            if &actual != digest {
                let err = ImageError::LayerDigestMismatch {
                    layer: digest.clone(),
                    actual,
                };
                return Err(self.fail(err));
            }
            // Keep the count so repeated reads at the end stay consistent.
            self.hasher = Hasher::new();
            self.expected = None;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAR: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const WASM: &str = "application/wasm";

    fn descriptor(media_type: &str, content: &str) -> Descriptor {
        serde_json::from_value(serde_json::json!({
            "mediaType": media_type,
            "digest": Digest::sha256_of(content.as_bytes()).to_string(),
            "size": content.len(),
        }))
        .unwrap()
    }

    fn config(diff_ids: &[&str]) -> ImageConfiguration {
        let diff_ids: Vec<String> = diff_ids
            .iter()
            .map(|d| Digest::sha256_of(d.as_bytes()).to_string())
            .collect();
        serde_json::from_value(serde_json::json!({
            "architecture": "wasm", "os": "wasi",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }

    fn diff_ids(layers: &[LayerRef]) -> Vec<Digest> {
        layers.iter().map(|l| l.diff_id.clone()).collect()
    }

    fn sha(content: &str) -> Digest {
        Digest::sha256_of(content.as_bytes())
    }

    #[test]
    fn a_wasm_layer_without_a_diff_id_is_keyed_by_its_blob_digest() {
        let layers = [descriptor(WASM, "module")];
        let refs = layer_refs(&"wasm", &layers, &config(&[])).unwrap();
        assert_eq!(diff_ids(&refs), [sha("module")]);
        assert_eq!(refs[0].blob_digest, sha("module"));
        assert_eq!(refs[0].media_type, WASM);

        // Diff IDs for the tar layers only: the Wasm ones take their digests.
        let layers = [
            descriptor(TAR, "gz"),
            descriptor(WASM, "module"),
            descriptor(TAR, "gz2"),
        ];
        let refs = layer_refs(&"mixed", &layers, &config(&["tar", "tar2"])).unwrap();
        assert_eq!(diff_ids(&refs), [sha("tar"), sha("module"), sha("tar2")]);
    }

    #[test]
    fn diff_ids_listed_for_every_layer_are_taken_as_listed() {
        let layers = [descriptor(TAR, "gz"), descriptor(WASM, "module")];
        let refs = layer_refs(&"listed", &layers, &config(&["tar", "module"])).unwrap();
        assert_eq!(diff_ids(&refs), [sha("tar"), sha("module")]);
        // A wrong entry stays wrong: the unpack reports the mismatch.
        let refs = layer_refs(&"listed", &layers, &config(&["tar", "other"])).unwrap();
        assert_eq!(refs[1].diff_id, sha("other"));
    }

    #[test]
    fn layer_and_diff_id_counts_must_agree() {
        let layers = [descriptor(TAR, "gz"), descriptor(WASM, "module")];
        for listed in [&[][..], &["a", "b", "c"]] {
            let err = layer_refs(&"img", &layers, &config(listed)).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("2 layers but the config lists {}", listed.len())),
                "{err}"
            );
        }
        let tar_only = [descriptor(TAR, "gz")];
        assert!(layer_refs(&"img", &tar_only, &config(&[])).is_err());
    }

    #[test]
    fn a_blob_that_matches_verifies() {
        let data = b"layer bytes".to_vec();
        let expected = (Digest::sha256_of(&data), data.len() as u64);
        let mut reader = VerifyingReader::new(&data[..], Some(expected), None);
        let mut first = [0u8; 3];
        reader.read_exact(&mut first).unwrap();
        reader.finish().unwrap();
    }

    #[test]
    fn a_corrupted_blob_fails_with_a_digest_mismatch() {
        let data = b"layer bytes".to_vec();
        let expected = (Digest::sha256_of(b"other bytes"), data.len() as u64);
        let mut reader = VerifyingReader::new(&data[..], Some(expected), None);
        let err = io::copy(&mut reader, &mut io::sink()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            reader.finish(),
            Err(ImageError::LayerDigestMismatch { .. })
        ));
    }

    #[test]
    fn a_blob_longer_or_shorter_than_its_descriptor_fails() {
        let data = b"layer bytes".to_vec();
        for size in [data.len() as u64 - 1, data.len() as u64 + 1] {
            let expected = (Digest::sha256_of(&data), size);
            let mut reader = VerifyingReader::new(&data[..], Some(expected), None);
            assert!(matches!(
                reader.finish(),
                Err(ImageError::LayerSizeMismatch { .. })
            ));
        }
    }
}
