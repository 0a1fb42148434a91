//! The runtime's error: what failed, folded from every part, with the
//! classification the CRI service maps to exactly one gRPC code.

use std::path::PathBuf;

use skiff_images::ImageError;
use skiff_shims::client::ClientError;
use skiff_shims::protocol::ErrorKind as ShimErrorKind;

use crate::network::NetworkError;
use crate::spec::SpecError;
use crate::store::StoreError;

/// What failed in the node runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No sandbox or container has that ID (or unique ID prefix).
    #[error("{what} {id:?} not found")]
    NotFound {
        /// "pod sandbox" or "container".
        what: &'static str,
        /// The ID asked for.
        id: String,
    },
    /// The name (or ID prefix) is taken or ambiguous.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// The object is not in a state that allows this.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The operation took too long.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Not supported by this runtime.
    #[error("{0}")]
    Unimplemented(String),
    /// Building the OCI spec failed.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The image store failed (image missing, rootfs, ...).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The pod network failed.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The pod's shim refused or failed.
    #[error(transparent)]
    Shim(#[from] ClientError),
    /// Records could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A filesystem or system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Anything else (a bug or a broken node).
    #[error("{0}")]
    Internal(String),
}

/// A coarse classification: each maps to one gRPC status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// NOT_FOUND.
    NotFound,
    /// ALREADY_EXISTS.
    AlreadyExists,
    /// INVALID_ARGUMENT.
    InvalidArgument,
    /// FAILED_PRECONDITION.
    FailedPrecondition,
    /// DEADLINE_EXCEEDED.
    DeadlineExceeded,
    /// UNIMPLEMENTED.
    Unimplemented,
    /// RESOURCE_EXHAUSTED.
    ResourceExhausted,
    /// UNAVAILABLE.
    Unavailable,
    /// INTERNAL.
    Internal,
}

impl RuntimeError {
    /// The classification the CRI service maps to a status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Self::FailedPrecondition(_) => ErrorKind::FailedPrecondition,
            Self::DeadlineExceeded(_) => ErrorKind::DeadlineExceeded,
            Self::Unimplemented(_) => ErrorKind::Unimplemented,
            Self::Spec(SpecError::InvalidArgument { .. }) => ErrorKind::InvalidArgument,
            Self::Spec(SpecError::NotFound { .. }) => ErrorKind::NotFound,
            Self::Spec(SpecError::FailedPrecondition { .. }) => ErrorKind::FailedPrecondition,
            Self::Image(err) => match err.kind() {
                skiff_images::ErrorKind::NotFound => ErrorKind::NotFound,
                skiff_images::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                skiff_images::ErrorKind::ResourceExhausted => ErrorKind::ResourceExhausted,
                skiff_images::ErrorKind::FailedPrecondition => ErrorKind::FailedPrecondition,
                skiff_images::ErrorKind::Unavailable => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            Self::Network(err) => match err {
                NetworkError::InvalidPortMapping { .. } | NetworkError::InvalidPodCidr { .. } => {
                    ErrorKind::InvalidArgument
                }
                NetworkError::HostPortInUse { .. } => ErrorKind::AlreadyExists,
                NetworkError::AddressesExhausted { .. } => ErrorKind::ResourceExhausted,
                NetworkError::NoPodCidr => ErrorKind::FailedPrecondition,
                NetworkError::CniUnsupported { .. } => ErrorKind::Unimplemented,
                _ => ErrorKind::Internal,
            },
            Self::Shim(err) => match err.kind() {
                ShimErrorKind::NotFound => ErrorKind::NotFound,
                ShimErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
                ShimErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                ShimErrorKind::FailedPrecondition => ErrorKind::FailedPrecondition,
                ShimErrorKind::Internal if err.is_unreachable() => ErrorKind::Unavailable,
                ShimErrorKind::Internal => ErrorKind::Internal,
            },
            Self::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
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

    pub(crate) fn sandbox_not_found(id: &str) -> Self {
        Self::NotFound {
            what: "pod sandbox",
            id: id.to_string(),
        }
    }

    pub(crate) fn container_not_found(id: &str) -> Self {
        Self::NotFound {
            what: "container",
            id: id.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_what_failed() {
        assert_eq!(
            RuntimeError::container_not_found("x").kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            RuntimeError::AlreadyExists("x".into()).kind(),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            RuntimeError::Spec(SpecError::InvalidArgument {
                field: "mounts[0].container_path".into(),
                message: "must be absolute".into()
            })
            .kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            RuntimeError::Network(NetworkError::NoPodCidr).kind(),
            ErrorKind::FailedPrecondition
        );
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(
            RuntimeError::Io {
                op: "write",
                path: "/x".into(),
                source: full
            }
            .kind(),
            ErrorKind::ResourceExhausted
        );
    }
}
