//! What can go wrong while turning a CRI container request into an OCI spec.

use std::io;
use std::path::PathBuf;

/// Why [`container_spec`](super::container_spec) refused or failed.
///
/// `field` values name the offending CRI field with the proto's own names,
/// relative to the `ContainerConfig` (e.g. `mounts[2].container_path`,
/// `linux.security_context.seccomp.localhost_ref`) or, for pod-level fields,
/// prefixed with `sandbox_config.`.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The request itself is wrong (gRPC `InvalidArgument`).
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// The CRI field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Something on the host the request names does not exist (gRPC `NotFound`).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `device /dev/fuse (devices[0].host_path)`.
        what: String,
    },
    /// The host is not in a state the request needs (gRPC `FailedPrecondition`),
    /// e.g. bidirectional propagation from a host path that is not on a shared mount.
    #[error("{field}: {message}")]
    FailedPrecondition {
        /// The CRI field whose request cannot be met.
        field: String,
        /// Why not.
        message: String,
    },
    /// Reading or creating a file failed (gRPC `Internal`).
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. `read`, `create directory`.
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl SpecError {
    /// An [`InvalidArgument`](Self::InvalidArgument) error.
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An [`Io`](Self::Io) error.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The CRI field at fault, when the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidArgument { field, .. } | Self::FailedPrecondition { field, .. } => {
                Some(field)
            }
            Self::NotFound { .. } | Self::Io { .. } => None,
        }
    }
}
