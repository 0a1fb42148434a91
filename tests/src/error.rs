//! The harness's error type.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while building fixtures or running test
/// registries. Tests usually just `?` it into `anyhow`.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "create directory", ...).
        action: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A helper program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The OS error.
        source: io::Error,
    },
    /// A docker-registry process did not come up.
    #[error("{kind} registry did not start: {reason}\n--- registry log (tail) ---\n{log_tail}")]
    RegistryStart {
        /// Which kind of registry (open, basic, tls, token).
        kind: String,
        /// Why the harness gave up.
        reason: String,
        /// The last lines the registry logged.
        log_tail: String,
    },
    /// An HTTP exchange failed at the transport level.
    #[error("{method} {url}: {source}")]
    Http {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The transport error.
        source: io::Error,
    },
    /// An HTTP request got an answer the harness did not expect.
    #[error("{method} {url} answered {status}: {body}")]
    UnexpectedStatus {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The (possibly truncated) response body.
        body: String,
    },
    /// A response or URL could not be understood.
    #[error("malformed HTTP exchange with {url}: {reason}")]
    MalformedHttp {
        /// The URL involved.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// JSON could not be parsed or produced.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        /// What was being parsed (a blob digest, a file, ...).
        what: String,
        /// The parser error.
        source: serde_json::Error,
    },
    /// An image or layout did not have the expected shape.
    #[error("invalid image content: {0}")]
    InvalidContent(String),
    /// A blob the harness needed is not in the content source.
    #[error("blob {digest} not found in {source_name}")]
    BlobNotFound {
        /// The missing blob.
        digest: String,
        /// Where it was looked up.
        source_name: String,
    },
    /// Certificate or key generation failed.
    #[error("cannot generate {what}: {source}")]
    Certificate {
        /// Which certificate or key.
        what: &'static str,
        /// The rcgen error.
        source: rcgen::Error,
    },
    /// A Wasm fixture could not be built (WAT, C with clang, component).
    #[error("building Wasm fixture {what}: {reason}")]
    Wasm {
        /// Which fixture.
        what: String,
        /// Why.
        reason: String,
    },
    /// A cryptographic operation (signing, TLS setup) failed.
    #[error("crypto failure while {0}")]
    Crypto(String),
}

/// The harness's result type.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// Builds a closure mapping an `io::Error` on `path` into [`HarnessError::Io`].
pub(crate) fn io_error(
    action: &'static str,
    path: impl AsRef<Path>,
) -> impl FnOnce(io::Error) -> HarnessError {
    let path = path.as_ref().to_path_buf();
    move |source| HarnessError::Io {
        action,
        path,
        source,
    }
}

/// Builds a closure mapping a `serde_json::Error` about `what` into [`HarnessError::Json`].
pub(crate) fn json_error(
    what: impl Into<String>,
) -> impl FnOnce(serde_json::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Json { what, source }
}
