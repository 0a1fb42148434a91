//! The image store's error: every module's error folded into one, with the
//! classification callers (the CRI service) map to status codes.

use std::path::PathBuf;

use crate::content::ContentError;
use crate::digest::Digest;
use crate::distribution::{ErrorKind as RegistryErrorKind, RegistryError};
use crate::metadata::MetadataError;
use crate::reference::ReferenceError;
use crate::registries::RegistriesError;
use crate::snapshots::SnapshotError;
use crate::unpack::UnpackError;

/// What failed in the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference is not a valid image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// Talking to a registry failed (not found, auth, TLS, network, ...).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// `registries.yaml` is unusable.
    #[error(transparent)]
    Registries(#[from] RegistriesError),
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The metadata database failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// A snapshot operation failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A layer could not be unpacked.
    #[error("layer {layer}: {source}")]
    Unpack {
        /// The layer blob.
        layer: Digest,
        /// Why.
        source: UnpackError,
    },
    /// A layer blob's bytes do not hash to its digest.
    #[error("layer {layer} failed verification: content hashes to {actual}")]
    LayerDigestMismatch {
        /// The layer blob's digest.
        layer: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A layer blob's length differs from its descriptor's size.
    #[error("layer {layer} is {actual} bytes, but the manifest says {expected}")]
    LayerSizeMismatch {
        /// The layer blob's digest.
        layer: Digest,
        /// The descriptor's size.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// A layer's uncompressed content does not match the config's diff ID.
    #[error("layer {layer} unpacks to {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        /// The layer blob's digest.
        layer: Digest,
        /// The config's diff ID.
        expected: Digest,
        /// The uncompressed content's digest.
        actual: Digest,
    },
    /// The image is malformed (config unreadable, layer count mismatch, ...).
    #[error("invalid image {image}: {reason}")]
    InvalidImage {
        /// The image reference or ID.
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// No image in the store matches.
    #[error("image {0:?} not found in the image store")]
    NotFound(String),
    /// The image is used by a container.
    #[error("image {image} is in use by container {container}")]
    InUse {
        /// The image ID.
        image: Digest,
        /// A container using it.
        container: String,
    },
    /// An image archive could not be imported.
    #[error("import {}: {reason}", path.display())]
    Import {
        /// The archive.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Another process holds the store.
    #[error("image store {} is in use by another skiff process", .0.display())]
    Locked(PathBuf),
    /// A filesystem operation failed.
    #[error("image store: {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A background task failed unexpectedly.
    #[error("image store task failed: {0}")]
    Task(String),
}

/// A coarse classification: each maps to one CRI (gRPC) status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The caller sent something invalid.
    InvalidArgument,
    /// No such image, here or at the registry.
    NotFound,
    /// Credentials missing or wrong.
    Unauthenticated,
    /// Credentials not allowed.
    PermissionDenied,
    /// The image cannot be used here, or is in use.
    FailedPrecondition,
    /// Out of disk space.
    ResourceExhausted,
    /// Network or registry trouble: retry later.
    Unavailable,
    /// Content failed verification.
    DataLoss,
    /// Anything else: a bug or a broken node.
    Internal,
}

impl ImageError {
    /// The classification the CRI service maps to a status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Reference(_) => ErrorKind::InvalidArgument,
            Self::Registry(err) => match err.kind() {
                RegistryErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                RegistryErrorKind::NotFound => ErrorKind::NotFound,
                RegistryErrorKind::Unauthenticated => ErrorKind::Unauthenticated,
                RegistryErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                RegistryErrorKind::Unsupported | RegistryErrorKind::Misconfigured => {
                    ErrorKind::FailedPrecondition
                }
                RegistryErrorKind::Unavailable => ErrorKind::Unavailable,
                RegistryErrorKind::Corrupt => ErrorKind::DataLoss,
            },
            Self::Registries(_) => ErrorKind::FailedPrecondition,
            Self::LayerDigestMismatch { .. }
            | Self::LayerSizeMismatch { .. }
            | Self::DiffIdMismatch { .. }
            | Self::InvalidImage { .. } => ErrorKind::DataLoss,
            Self::Unpack { source, .. } if source.is_no_space() => ErrorKind::ResourceExhausted,
            Self::Unpack {
                source: UnpackError::Unsafe { .. },
                ..
            } => ErrorKind::DataLoss,
            Self::Unpack {
                source: UnpackError::UnsupportedMediaType(_),
                ..
            } => ErrorKind::FailedPrecondition,
            Self::Content(err) if err.is_no_space() => ErrorKind::ResourceExhausted,
            Self::Io { source, .. } if is_no_space(source) => ErrorKind::ResourceExhausted,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::InUse { .. } | Self::Locked(_) => ErrorKind::FailedPrecondition,
            Self::Import { .. } => ErrorKind::InvalidArgument,
            Self::Snapshot(SnapshotError::Io { source, .. }) if is_no_space(source) => {
                ErrorKind::ResourceExhausted
            }
            Self::Metadata(MetadataError::NoSpace { .. })
            | Self::Snapshot(SnapshotError::Metadata(MetadataError::NoSpace { .. })) => {
                ErrorKind::ResourceExhausted
            }
            _ => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }
}

fn is_no_space(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_the_kind_a_cri_client_expects() {
        let no_space = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let cases = [
            (ImageError::NotFound("x".into()), ErrorKind::NotFound),
            (
                ImageError::Io {
                    op: "write",
                    path: "/x".into(),
                    source: no_space,
                },
                ErrorKind::ResourceExhausted,
            ),
            (
                ImageError::LayerDigestMismatch {
                    layer: Digest::sha256_of(b"a"),
                    actual: Digest::sha256_of(b"b"),
                },
                ErrorKind::DataLoss,
            ),
            (
                ImageError::InUse {
                    image: Digest::sha256_of(b"a"),
                    container: "c".into(),
                },
                ErrorKind::FailedPrecondition,
            ),
            (ImageError::Task("boom".into()), ErrorKind::Internal),
            (
                ImageError::Metadata(MetadataError::NoSpace {
                    path: "/x/metadata.db".into(),
                    source: rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                        None,
                    ),
                }),
                ErrorKind::ResourceExhausted,
            ),
        ];
        for (err, kind) in cases {
            assert_eq!(err.kind(), kind, "{err}");
        }
        let bad_ref = "UPPER".parse::<crate::reference::Reference>().unwrap_err();
        assert_eq!(ImageError::from(bad_ref).kind(), ErrorKind::InvalidArgument);
    }
}
