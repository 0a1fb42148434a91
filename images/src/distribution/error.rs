//! What can go wrong talking to a registry, and how callers should classify it.

use reqwest::StatusCode;

use crate::digest::Digest;
use crate::reference::ReferenceError;
use crate::registries::RegistriesError;

/// Why resolving or fetching an image failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image reference does not parse.
    #[error(transparent)]
    InvalidReference(#[from] ReferenceError),
    /// Credentials given by the caller or in `registries.yaml` are unusable.
    #[error("invalid registry credentials: {message}")]
    InvalidCredentials {
        /// What is wrong with them.
        message: String,
    },
    /// The registry has no such manifest or blob (HTTP 404).
    #[error("{reference}: not found at {registry}: {message}")]
    NotFound {
        /// The image (and blob) asked for.
        reference: String,
        /// The endpoint that answered.
        registry: String,
        /// The registry's own explanation, e.g. `MANIFEST_UNKNOWN: manifest unknown`.
        message: String,
    },
    /// The registry wants credentials that were not given or were wrong (HTTP 401).
    #[error("{reference}: authentication with {registry} failed: {message}")]
    Unauthorized {
        /// The image asked for.
        reference: String,
        /// The endpoint (or token server) that refused.
        registry: String,
        /// The registry's explanation.
        message: String,
    },
    /// The credentials are valid but may not pull this image (HTTP 403).
    #[error("{reference}: access denied by {registry}: {message}")]
    Denied {
        /// The image asked for.
        reference: String,
        /// The endpoint (or token server) that refused.
        registry: String,
        /// The registry's explanation.
        message: String,
    },
    /// The image only exists as a Docker schema 1 manifest.
    #[error(
        "{reference} uses Docker image manifest schema 1, which is not supported; \
         push it again with a current Docker or buildx"
    )]
    Schema1 {
        /// The image asked for.
        reference: String,
    },
    /// The registry answered with something that is not an image manifest or index.
    #[error(
        "{reference}: {registry} answered with media type {media_type:?}, which is not an image manifest or index"
    )]
    UnsupportedMediaType {
        /// The image asked for.
        reference: String,
        /// The endpoint that answered.
        registry: String,
        /// What it sent.
        media_type: String,
    },
    /// A multi-platform image has no manifest this node can run.
    #[error("{reference}: no manifest for platform {wanted}; the image has: {}", available.join(", "))]
    NoMatchingPlatform {
        /// The image asked for.
        reference: String,
        /// The platforms this node accepts, best first.
        wanted: String,
        /// The platforms the image's index lists.
        available: Vec<String>,
    },
    /// The TLS handshake failed (unknown CA, bad client certificate, not a TLS server, ...).
    #[error("TLS with {endpoint} failed: {message}")]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// What rustls reported, with a hint where one helps.
        message: String,
    },
    /// The endpoint could not be reached (DNS, refused, timeout, ...).
    #[error("cannot reach {endpoint}: {}", error_chain(source))]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The connection broke or stalled while a body was being read.
    #[error("reading from {endpoint} failed: {}", error_chain(source))]
    Transfer {
        /// The endpoint.
        endpoint: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// An HTTP status that means "try later" or "this server is broken" (5xx, 429, ...).
    #[error("{endpoint} answered HTTP {status}: {message}")]
    Http {
        /// The endpoint.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// A manifest, config or blob is larger than allowed.
    #[error("{what} from {endpoint} is larger than {limit} bytes")]
    TooLarge {
        /// What was being read.
        what: String,
        /// The endpoint.
        endpoint: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// A manifest or index that does not parse or is inconsistent.
    #[error("{reference}: invalid manifest from {registry}: {message}")]
    InvalidManifest {
        /// The image asked for.
        reference: String,
        /// The endpoint that sent it.
        registry: String,
        /// What is wrong.
        message: String,
    },
    /// Content does not match the digest it was asked for or announced with.
    #[error("{what} from {endpoint}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being read.
        what: String,
        /// The endpoint.
        endpoint: String,
        /// The digest asked for or announced.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// A blob body ended before its descriptor's size (resume from `received`).
    #[error("blob {digest} from {endpoint} ended after {received} of {expected} bytes")]
    IncompleteBlob {
        /// The blob.
        digest: Digest,
        /// The endpoint.
        endpoint: String,
        /// Bytes of the blob received, counting from its start.
        received: u64,
        /// The blob's size.
        expected: u64,
    },
    /// A blob fetch asked to start past the blob's end.
    #[error("cannot fetch blob {digest} from offset {offset}: it has only {size} bytes")]
    InvalidOffset {
        /// The blob.
        digest: Digest,
        /// The offset asked for.
        offset: u64,
        /// The blob's size.
        size: u64,
    },
    /// `registries.yaml` disables the default endpoint and lists no mirror endpoints.
    #[error(
        "no endpoints to pull {reference} from: registries.yaml lists no mirror endpoints and the default endpoint is disabled"
    )]
    NoEndpoints {
        /// The image asked for.
        reference: String,
    },
    /// `registries.yaml` or a file it names is unusable.
    #[error(transparent)]
    Config(#[from] RegistriesError),
}

/// A coarse classification for callers: each maps to one gRPC status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad reference or credentials from the caller (`INVALID_ARGUMENT`).
    InvalidArgument,
    /// No such image or blob (`NOT_FOUND`).
    NotFound,
    /// Credentials missing or wrong (`UNAUTHENTICATED`).
    Unauthenticated,
    /// Credentials not allowed to pull (`PERMISSION_DENIED`).
    PermissionDenied,
    /// The image exists but Skiff cannot use it: schema 1, wrong platform,
    /// not an image (`FAILED_PRECONDITION`).
    Unsupported,
    /// Network trouble or a registry error worth retrying later (`UNAVAILABLE`).
    Unavailable,
    /// The registry sent content that fails verification (`DATA_LOSS`).
    Corrupt,
    /// The node's registry configuration is wrong (`FAILED_PRECONDITION`).
    Misconfigured,
}

impl RegistryError {
    /// The classification a CRI server maps to a gRPC code.
    pub fn kind(&self) -> ErrorKind {
        use RegistryError as E;
        match self {
            E::InvalidReference(_) | E::InvalidCredentials { .. } | E::InvalidOffset { .. } => {
                ErrorKind::InvalidArgument
            }
            E::NotFound { .. } => ErrorKind::NotFound,
            E::Unauthorized { .. } => ErrorKind::Unauthenticated,
            E::Denied { .. } => ErrorKind::PermissionDenied,
            E::Schema1 { .. } | E::UnsupportedMediaType { .. } | E::NoMatchingPlatform { .. } => {
                ErrorKind::Unsupported
            }
            E::Http { status: 400, .. } => ErrorKind::InvalidArgument,
            E::Tls { .. }
            | E::Connect { .. }
            | E::Transfer { .. }
            | E::Http { .. }
            | E::IncompleteBlob { .. } => ErrorKind::Unavailable,
            E::TooLarge { .. } | E::InvalidManifest { .. } | E::DigestMismatch { .. } => {
                ErrorKind::Corrupt
            }
            E::NoEndpoints { .. } | E::Config(_) => ErrorKind::Misconfigured,
        }
    }

    /// Whether the image (or blob) does not exist at the registry.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// Whether credentials were missing, wrong or not allowed.
    pub fn is_auth(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Unauthenticated | ErrorKind::PermissionDenied
        )
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }

    /// How informative this error is when every endpoint failed: an answer
    /// from a registry beats an HTTP error, which beats a transport failure.
    pub(crate) fn rank(&self) -> u8 {
        use RegistryError as E;
        match self {
            E::Tls { .. } | E::Connect { .. } | E::Transfer { .. } => 1,
            E::Http { .. } | E::IncompleteBlob { .. } => 2,
            _ => 3,
        }
    }
}

/// The message of an error and all its causes, `a: b: c`, skipping causes
/// whose text their parent already includes.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = e.source();
    }
    out
}

/// Extracts the registry's explanation from an error response body: the
/// distribution spec's `{"errors":[{"code","message","detail"}]}`, a token
/// server's `{"details": ...}`, or short plain text; else the status line.
pub(crate) fn describe_error_body(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Entry>,
        #[serde(default)]
        details: Option<String>,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        error_description: Option<String>,
    }
    if let Ok(body) = serde_json::from_slice::<Body>(body) {
        let parts: Vec<String> = body
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
        if let Some(text) = body.details.or(body.error_description).or(body.error) {
            return text;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if !text.is_empty() && !text.starts_with('<') && !text.starts_with('{') {
        return text.chars().take(300).collect();
    }
    status.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_error_bodies_are_summarized() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(
            describe_error_body(StatusCode::NOT_FOUND, body),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        let two = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"},{"code":"DENIED"}]}"#;
        assert_eq!(
            describe_error_body(StatusCode::UNAUTHORIZED, two),
            "UNAUTHORIZED: authentication required; DENIED"
        );
        let hub = br#"{"details":"incorrect username or password"}"#;
        assert_eq!(
            describe_error_body(StatusCode::UNAUTHORIZED, hub),
            "incorrect username or password"
        );
        let oauth = br#"{"error":"invalid_grant","error_description":"refresh token expired"}"#;
        assert_eq!(
            describe_error_body(StatusCode::UNAUTHORIZED, oauth),
            "refresh token expired"
        );
        assert_eq!(
            describe_error_body(StatusCode::BAD_GATEWAY, b"upstream down\n"),
            "upstream down"
        );
        assert_eq!(
            describe_error_body(StatusCode::BAD_GATEWAY, b"<html>nginx</html>"),
            "502 Bad Gateway"
        );
        assert_eq!(
            describe_error_body(StatusCode::NOT_FOUND, b""),
            "404 Not Found"
        );
        assert_eq!(
            describe_error_body(StatusCode::NOT_FOUND, b"{}"),
            "404 Not Found"
        );
    }

    #[test]
    fn kinds_and_ranks() {
        let answer = RegistryError::NotFound {
            reference: "r".into(),
            registry: "e".into(),
            message: "m".into(),
        };
        let http = RegistryError::Http {
            endpoint: "e".into(),
            status: 503,
            message: "m".into(),
        };
        let tls = RegistryError::Tls {
            endpoint: "e".into(),
            message: "m".into(),
        };
        assert!(answer.is_not_found() && !answer.is_retryable());
        assert!(http.is_retryable() && tls.is_retryable());
        assert!(answer.rank() > http.rank() && http.rank() > tls.rank());
        assert_eq!(
            RegistryError::Schema1 {
                reference: "r".into()
            }
            .kind(),
            ErrorKind::Unsupported
        );
        let denied = RegistryError::Denied {
            reference: "r".into(),
            registry: "e".into(),
            message: "m".into(),
        };
        assert!(denied.is_auth());
        assert_eq!(
            RegistryError::Http {
                endpoint: "e".into(),
                status: 400,
                message: "m".into()
            }
            .kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn schema1_message_says_what_to_do() {
        let e = RegistryError::Schema1 {
            reference: "docker.io/library/old:1".into(),
        };
        assert_eq!(
            e.to_string(),
            "docker.io/library/old:1 uses Docker image manifest schema 1, which is not supported; \
             push it again with a current Docker or buildx"
        );
    }
}
