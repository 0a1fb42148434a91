//! The OCI distribution client: resolves references to this node's manifest
//! through `registries.yaml` mirrors, authenticates as docker does, and streams
//! blobs for the content store to verify.
//!
//! Each endpoint of a registry is tried in order; the first that serves the
//! manifest and config wins and also serves the image's blobs. When all fail,
//! the most informative error is returned (a registry's answer beats an HTTP
//! error, which beats a transport failure; ties go to the first endpoint).

mod auth;
mod blob;
mod error;
mod manifest;
mod session;
mod tls;

#[cfg(test)]
pub(crate) mod fake_registry;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use oci_spec::image::{Descriptor, ImageManifest};
use reqwest::header::{ACCEPT, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, RANGE};
use reqwest::{StatusCode, Url};

use crate::digest::Digest;
use crate::platform::{Platform, PlatformMatcher};
use crate::reference::Reference;
use crate::registries::{Endpoint, RegistriesConfig, RegistriesError};

pub use auth::Credentials;
pub use blob::BlobStream;
pub use error::{ErrorKind, RegistryError};
pub use manifest::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, is_index, is_manifest,
};
pub use tls::AcceptAnyServerCert;

use auth::AuthCache;
use manifest::Document;
use session::{EndpointSession, read_limited};

/// Largest manifest or index accepted (as containerd's limit).
pub const MANIFEST_LIMIT: u64 = 4 << 20;
/// Largest image config accepted.
pub const CONFIG_LIMIT: u64 = 16 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A read that stalls this long fails (a slow but moving download does not).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const USER_AGENT: &str = concat!("skiff/", env!("CARGO_PKG_VERSION"));
/// Indexes may nest (an index entry pointing at another index); bound it.
const MAX_INDEX_DEPTH: usize = 4;

/// Talks to OCI registries. Cheap to clone; clones share connections and tokens.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: RegistriesConfig,
    platforms: PlatformMatcher,
    /// The HTTP client for endpoints without TLS settings.
    default_http: reqwest::Client,
    /// One HTTP client per `configs` entry with TLS settings.
    tls_http: HashMap<String, reqwest::Client>,
    /// Credentials from `configs.<key>.auth`, decoded once.
    configured_credentials: HashMap<String, Credentials>,
    auth: Arc<AuthCache>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("platforms", &self.inner.platforms)
            .field(
                "mirrors",
                &self.inner.config.mirrors.keys().collect::<Vec<_>>(),
            )
            .field(
                "configs",
                &self.inner.config.configs.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A reference resolved at a registry to the manifest this node runs.
#[derive(Clone)]
pub struct ResolvedImage {
    /// The reference as asked (mirror rewrites do not change it).
    pub reference: Reference,
    /// What the reference resolved to at the registry: the index digest for a
    /// multi-platform image (containerd records it as the repo digest).
    pub repo_digest: Digest,
    /// The platform manifest actually used.
    pub manifest_digest: Digest,
    /// The platform manifest (Docker schema 2 parses into the same shape).
    pub manifest: ImageManifest,
    /// The manifest's media type.
    pub manifest_media_type: String,
    /// The manifest exactly as served (its sha256 is `manifest_digest`).
    pub manifest_bytes: Bytes,
    /// The index the reference resolved to, for a multi-platform image.
    pub index: Option<RawIndex>,
    /// The config blob's descriptor.
    pub config_descriptor: Descriptor,
    /// The config blob, digest and size verified.
    pub config: Bytes,
    session: Arc<EndpointSession>,
}

/// An index or manifest list exactly as served; its digest is the image's repo digest.
#[derive(Debug, Clone)]
pub struct RawIndex {
    /// The index's media type.
    pub media_type: String,
    /// The bytes served.
    pub bytes: Bytes,
}

impl fmt::Debug for ResolvedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedImage")
            .field("reference", &self.reference)
            .field("repo_digest", &self.repo_digest)
            .field("manifest_digest", &self.manifest_digest)
            .field("manifest_media_type", &self.manifest_media_type)
            .field("endpoint", &self.session.endpoint.to_string())
            .finish_non_exhaustive()
    }
}

impl ResolvedImage {
    /// The endpoint that served the image (and serves its blobs).
    pub fn endpoint(&self) -> &Endpoint {
        &self.session.endpoint
    }

    /// `name@repo_digest`, as CRI reports repo digests.
    pub fn repo_digest_reference(&self) -> Reference {
        self.reference.with_digest(self.repo_digest.clone())
    }
}

/// What one resolve attempt against one endpoint produced.
struct Fetched {
    bytes: Bytes,
    content_type: Option<String>,
    digest: Digest,
}

impl RegistryClient {
    /// A client for `config`, choosing manifests with `platforms`. Fails when a
    /// TLS file or an `auth` entry in the configuration is unusable.
    pub fn new(
        config: RegistriesConfig,
        platforms: PlatformMatcher,
    ) -> Result<Self, RegistryError> {
        let default_http = build_http("default", tls::client_config("default", None)?)?;
        let mut tls_http = HashMap::new();
        let mut configured_credentials = HashMap::new();
        for (key, entry) in &config.configs {
            if entry.tls.is_some() {
                let tls = tls::client_config(key, entry.tls.as_ref())?;
                tls_http.insert(key.clone(), build_http(key, tls)?);
            }
            if let Some(auth) = &entry.auth {
                let credentials = Credentials::from_auth_config(auth).map_err(|e| {
                    RegistryError::InvalidCredentials {
                        message: format!("configs.{key:?}.auth: {e}"),
                    }
                })?;
                if let Some(credentials) = credentials {
                    configured_credentials.insert(key.clone(), credentials);
                }
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                platforms,
                default_http,
                tls_http,
                configured_credentials,
                auth: Arc::new(AuthCache::default()),
            }),
        })
    }

    /// The registry configuration in use.
    pub fn config(&self) -> &RegistriesConfig {
        &self.inner.config
    }

    /// The platforms manifests are chosen for.
    pub fn platforms(&self) -> &PlatformMatcher {
        &self.inner.platforms
    }

    /// Resolves a reference to the manifest for this node, trying each endpoint in order.
    pub async fn resolve(
        &self,
        reference: &Reference,
        credentials: Option<&Credentials>,
    ) -> Result<ResolvedImage, RegistryError> {
        let endpoints = self.inner.config.endpoints(&reference.registry);
        let mut best: Option<(u8, RegistryError)> = None;
        for endpoint in endpoints {
            let session = Arc::new(self.session(endpoint, reference, credentials));
            match self.resolve_at(&session, reference).await {
                Ok(image) => {
                    tracing::debug!(
                        image = %reference,
                        endpoint = %session.endpoint,
                        manifest = %image.manifest_digest,
                        "resolved image"
                    );
                    return Ok(image);
                }
                Err(error) => {
                    tracing::debug!(
                        image = %reference,
                        endpoint = %session.endpoint,
                        mirror = session.endpoint.mirror,
                        %error,
                        "registry endpoint failed"
                    );
                    let rank = fallback_rank(&session.endpoint, &error);
                    if best.as_ref().is_none_or(|(best_rank, _)| rank > *best_rank) {
                        best = Some((rank, error));
                    }
                }
            }
        }
        Err(best.map_or_else(
            || RegistryError::NoEndpoints {
                reference: reference.to_string(),
            },
            |(_, error)| error,
        ))
    }

    /// Streams a blob (layer) from the endpoint that resolved the image,
    /// starting at `offset` (an HTTP Range; 0 fetches the whole blob).
    pub async fn fetch_blob(
        &self,
        image: &ResolvedImage,
        descriptor: &Descriptor,
        offset: u64,
    ) -> Result<BlobStream, RegistryError> {
        let session = &image.session;
        let endpoint = session.endpoint.to_string();
        let digest = descriptor_digest(descriptor, session)?;
        let size = descriptor.size();
        if offset > size {
            return Err(RegistryError::InvalidOffset {
                digest,
                offset,
                size,
            });
        }
        if offset == size {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let mut headers = HeaderMap::new();
        if offset > 0 {
            let range = HeaderValue::from_str(&format!("bytes={offset}-"))
                .expect("digits are a valid header");
            headers.insert(RANGE, range);
        }
        let url = session
            .endpoint
            .blob_url(&session.repository, &digest.to_string());
        let what = format!("{} (blob {digest})", session.reference);
        let response = session.get(url, headers, &what).await?;

        let skip = if response.status() == StatusCode::PARTIAL_CONTENT {
            let start = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_start);
            if start != Some(offset) {
                return Err(RegistryError::Http {
                    endpoint,
                    status: 206,
                    message: format!(
                        "asked for blob {digest} from byte {offset}, got Content-Range {start:?}"
                    ),
                });
            }
            0
        } else {
            // The server ignored the Range and sends the whole blob.
            offset
        };
        if response
            .content_length()
            .is_some_and(|len| len.saturating_add(offset - skip) > size)
        {
            return Err(RegistryError::TooLarge {
                what: format!("blob {digest}"),
                endpoint,
                limit: size,
            });
        }
        let body = Box::pin(response.bytes_stream());
        Ok(Box::pin(blob::SizedBlob::new(
            body, digest, endpoint, skip, offset, size,
        )))
    }

    fn session(
        &self,
        endpoint: Endpoint,
        reference: &Reference,
        caller: Option<&Credentials>,
    ) -> EndpointSession {
        let configured = endpoint
            .config_key
            .as_ref()
            .and_then(|k| self.inner.configured_credentials.get(k));
        // As containerd: the caller's credentials (a pull secret) are for the
        // image's own registry host; any other endpoint (a mirror elsewhere)
        // gets the credentials the node admin configured for it.
        let credentials = if !endpoint.mirror || endpoint.host == reference.registry {
            caller.or(configured).cloned()
        } else {
            configured.cloned()
        };
        let http = endpoint
            .config_key
            .as_ref()
            .and_then(|k| self.inner.tls_http.get(k))
            .unwrap_or(&self.inner.default_http)
            .clone();
        EndpointSession {
            repository: endpoint.repository(&reference.repository),
            endpoint,
            http,
            reference: reference.to_string(),
            credentials,
            auth: self.inner.auth.clone(),
        }
    }

    async fn resolve_at(
        &self,
        session: &Arc<EndpointSession>,
        reference: &Reference,
    ) -> Result<ResolvedImage, RegistryError> {
        let target = reference.target();
        let top = self
            .fetch_manifest(session, &target, reference.digest.as_ref(), None)
            .await?;
        let repo_digest = top.digest.clone();
        let mut index: Option<RawIndex> = None;
        let mut current = top;
        for _ in 0..MAX_INDEX_DEPTH {
            let (document, media_type) = self.parse_manifest(session, &current)?;
            match document {
                Document::Manifest(manifest) => {
                    let config_descriptor = manifest.config().clone();
                    let config = self.fetch_config(session, &config_descriptor).await?;
                    return Ok(ResolvedImage {
                        reference: reference.clone(),
                        repo_digest,
                        manifest_digest: current.digest,
                        manifest: *manifest,
                        manifest_media_type: media_type,
                        manifest_bytes: current.bytes,
                        index,
                        config_descriptor,
                        config,
                        session: session.clone(),
                    });
                }
                Document::Index(list) => {
                    if index.is_none() {
                        index = Some(RawIndex {
                            media_type,
                            bytes: current.bytes.clone(),
                        });
                    }
                    let chosen =
                        self.inner
                            .platforms
                            .select(list.manifests())
                            .ok_or_else(|| RegistryError::NoMatchingPlatform {
                                reference: reference.to_string(),
                                wanted: self.inner.platforms.to_string(),
                                available: list
                                    .manifests()
                                    .iter()
                                    .filter_map(|d| d.platform().as_ref())
                                    .map(|p| Platform::from_oci(p).to_string())
                                    .collect(),
                            })?;
                    let digest = descriptor_digest(chosen, session)?;
                    current = self
                        .fetch_manifest(
                            session,
                            &digest.to_string(),
                            Some(&digest),
                            Some(chosen.size()),
                        )
                        .await?;
                }
            }
        }
        Err(self.invalid(
            session,
            format!("indexes nest deeper than {MAX_INDEX_DEPTH} levels"),
        ))
    }

    /// GETs a manifest by tag or digest and checks its digest against what was
    /// asked for and what the registry announced.
    async fn fetch_manifest(
        &self,
        session: &EndpointSession,
        target: &str,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<Fetched, RegistryError> {
        let endpoint = session.endpoint.to_string();
        let url: Url = session.endpoint.manifest_url(&session.repository, target);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(manifest::ACCEPT));
        let response = session.get(url, headers, &session.reference).await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE.as_str());
        let announced = header("docker-content-digest");
        let what = format!("manifest {target} of {}", session.reference);
        let bytes = read_limited(response, MANIFEST_LIMIT, &what, &endpoint).await?;
        // Signed schema 1 manifests never match their announced digest (it
        // covers the unsigned payload): refuse them for what they are first.
        if content_type.as_deref().is_some_and(manifest::is_schema1) {
            return Err(RegistryError::Schema1 {
                reference: session.reference.clone(),
            });
        }
        let digest = Digest::sha256_of(&bytes);
        let mismatch = |expected: Digest| RegistryError::DigestMismatch {
            what: what.clone(),
            endpoint: endpoint.clone(),
            expected,
            actual: digest.clone(),
        };
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(mismatch(expected.clone()));
        }
        // Only sha256 announcements can be checked; others are ignored.
        if let Some(announced) = announced.and_then(|a| a.parse::<Digest>().ok())
            && announced != digest
        {
            return Err(mismatch(announced));
        }
        if let Some(size) = expected_size
            && size != bytes.len() as u64
        {
            return Err(self.invalid(
                session,
                format!(
                    "manifest {target} is {} bytes but the index says {size}",
                    bytes.len()
                ),
            ));
        }
        Ok(Fetched {
            bytes,
            content_type,
            digest,
        })
    }

    fn parse_manifest(
        &self,
        session: &EndpointSession,
        fetched: &Fetched,
    ) -> Result<(Document, String), RegistryError> {
        manifest::parse(fetched.content_type.as_deref(), &fetched.bytes).map_err(|refusal| {
            match refusal {
                manifest::Refusal::Schema1 => RegistryError::Schema1 {
                    reference: session.reference.clone(),
                },
                manifest::Refusal::Unsupported(media_type) => RegistryError::UnsupportedMediaType {
                    reference: session.reference.clone(),
                    registry: session.endpoint.to_string(),
                    media_type,
                },
                manifest::Refusal::Invalid(message) => self.invalid(session, message),
            }
        })
    }

    /// Fetches the config blob whole, checking size and digest.
    async fn fetch_config(
        &self,
        session: &EndpointSession,
        descriptor: &Descriptor,
    ) -> Result<Bytes, RegistryError> {
        let endpoint = session.endpoint.to_string();
        let digest = descriptor_digest(descriptor, session)?;
        let what = format!("config {digest} of {}", session.reference);
        if descriptor.size() > CONFIG_LIMIT {
            return Err(RegistryError::TooLarge {
                what,
                endpoint,
                limit: CONFIG_LIMIT,
            });
        }
        let url = session
            .endpoint
            .blob_url(&session.repository, &digest.to_string());
        let response = session.get(url, HeaderMap::new(), &what).await?;
        let bytes = read_limited(response, descriptor.size(), &what, &endpoint).await?;
        let actual = Digest::sha256_of(&bytes);
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                what,
                endpoint,
                expected: digest,
                actual,
            });
        }
        Ok(bytes)
    }

    fn invalid(&self, session: &EndpointSession, message: String) -> RegistryError {
        RegistryError::InvalidManifest {
            reference: session.reference.clone(),
            registry: session.endpoint.to_string(),
            message,
        }
    }
}

/// How informative an endpoint's error is. Speaking the wrong protocol to a
/// loopback registry (plain HTTP to a TLS server) says nothing about the image.
fn fallback_rank(endpoint: &Endpoint, error: &RegistryError) -> u8 {
    let wrong_protocol =
        error.rank() == 1 || matches!(error, RegistryError::Http { status: 400, .. });
    if endpoint.plain_http_fallback && wrong_protocol {
        0
    } else {
        error.rank()
    }
}

fn descriptor_digest(
    descriptor: &Descriptor,
    session: &EndpointSession,
) -> Result<Digest, RegistryError> {
    descriptor
        .digest()
        .to_string()
        .parse()
        .map_err(|e| RegistryError::InvalidManifest {
            reference: session.reference.clone(),
            registry: session.endpoint.to_string(),
            message: format!("descriptor digest {}: {e}", descriptor.digest()),
        })
}

/// The first byte of `bytes <start>-<end>/<total>`.
fn content_range_start(value: &str) -> Option<u64> {
    value
        .trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn build_http(key: &str, tls: rustls::ClientConfig) -> Result<reqwest::Client, RegistryError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| {
            RegistryError::Config(RegistriesError::Tls {
                key: key.to_owned(),
                message: format!("cannot build the HTTP client: {}", error::error_chain(&e)),
            })
        })
}
