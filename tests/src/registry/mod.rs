//! Real registries for tests: Debian's `docker-registry` on 127.0.0.1, in
//! four kinds sharing one storage seeded with every fixture.
//!
//! ```no_run
//! use skiff_tests::fixtures::Fixture;
//! use skiff_tests::registry::TestRegistries;
//! # fn main() -> skiff_tests::Result<()> {
//! let regs = TestRegistries::start()?;
//! let image = Fixture::Busybox.reference(&regs.open); // 127.0.0.1:PORT/skiff-test/busybox:latest
//! regs.write_registries_yaml("/tmp/registries.yaml".as_ref())?;
//! // ... pull `image` with the code under test, then:
//! let layer = Fixture::Busybox.load()?.manifest()?.layers[0].digest.clone();
//! assert_eq!(regs.open.blob_get_count(&layer)?, 1);
//! # Ok(()) }
//! ```
//!
//! Each [`TestRegistries`] (or lone [`TestRegistry`]) gets its own copy of
//! the seed storage, so pushes and deletions stay private to the test.

mod access_log;
mod client;
mod http;
mod pki;
mod process;
mod registries_yaml;
mod seed;
mod token;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use access_log::AccessLogEntry;
pub use client::{RegistryClient, parse_challenge};
pub use http::HttpResponse;
pub use pki::TestPki;
pub use process::REGISTRY_BIN_ENV;
pub use token::TokenServer;

use crate::error::{HarnessError, Result, io_error};
use crate::oci::{Digest, ImageSource, reachable};
use process::{RegistryAuth, RegistryConfig, RegistryProcess};

/// The user the basic and token registries accept.
pub const TEST_USER: &str = "skiff";
/// Its password.
pub const TEST_PASSWORD: &str = "skiff-test-password";
/// Set to keep registry temp dirs (storage, logs, certificates) after the test.
pub const KEEP_ENV: &str = "SKIFF_TEST_KEEP";

/// How a test registry lets clients in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistryKind {
    /// Plain HTTP, anonymous.
    Open,
    /// Plain HTTP, Basic auth (bcrypt htpasswd) with [`TEST_USER`].
    Basic,
    /// HTTPS with a test CA, anonymous.
    Tls,
    /// Plain HTTP, Bearer tokens from a [`TokenServer`] that wants [`TEST_USER`].
    Token,
}

impl fmt::Display for RegistryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RegistryKind::Open => "open",
            RegistryKind::Basic => "basic",
            RegistryKind::Tls => "tls",
            RegistryKind::Token => "token",
        })
    }
}

/// What the registries of one set share: a temp dir with the storage, the
/// certificates, the htpasswd file, and the token server.
#[derive(Debug)]
struct Shared {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    storage: PathBuf,
    pki: TestPki,
    token: Option<TokenServer>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if std::env::var_os(KEEP_ENV).is_some()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            tracing::info!(dir = %kept.display(), "kept test registry files");
        }
    }
}

impl Shared {
    fn create(with_token: bool) -> Result<Shared> {
        let seed = seed::seed_storage()?;
        let dir = tempfile::Builder::new()
            .prefix("skiff-registries-")
            .tempdir()
            .map_err(io_error("create temp dir", std::env::temp_dir()))?;
        let path = dir.path().to_path_buf();
        let storage = path.join("storage");
        seed::copy_tree(&seed, &storage)?;
        let pki = TestPki::generate(&path.join("pki"))?;
        let token = if with_token {
            Some(TokenServer::start(
                &pki,
                (TEST_USER.to_string(), TEST_PASSWORD.to_string()),
            )?)
        } else {
            None
        };
        Ok(Shared {
            dir: Some(dir),
            path,
            storage,
            pki,
            token,
        })
    }

    fn config(&self, kind: RegistryKind) -> Result<RegistryConfig> {
        let auth = match kind {
            RegistryKind::Open | RegistryKind::Tls => RegistryAuth::None,
            RegistryKind::Basic => {
                let hash = bcrypt::hash(TEST_PASSWORD, 4).map_err(|e| {
                    HarnessError::Crypto(format!("hashing the htpasswd entry: {e}"))
                })?;
                let path = self.path.join("htpasswd");
                fs::write(&path, format!("{TEST_USER}:{hash}\n"))
                    .map_err(io_error("write", &path))?;
                RegistryAuth::Htpasswd(path)
            }
            RegistryKind::Token => {
                let token = self.token.as_ref().ok_or_else(|| {
                    HarnessError::InvalidContent("token registry without a token server".into())
                })?;
                RegistryAuth::Token {
                    realm: token.realm(),
                    service: token.service().to_string(),
                    issuer: token.issuer().to_string(),
                    root_cert_bundle: self.pki.token_ca_pem.clone(),
                }
            }
        };
        let tls = (kind == RegistryKind::Tls)
            .then(|| (self.pki.server_cert.clone(), self.pki.server_key.clone()));
        Ok(RegistryConfig {
            kind: kind.to_string(),
            dir: self.path.join(kind.to_string()),
            storage: self.storage.clone(),
            tls,
            auth,
        })
    }
}

/// One running registry; the process is killed on drop.
#[derive(Debug)]
pub struct TestRegistry {
    // Dropped first: the process must die before its files go.
    process: RegistryProcess,
    kind: RegistryKind,
    client: RegistryClient,
    shared: Arc<Shared>,
}

/// The four kinds of registry, sharing one storage seeded with every fixture.
#[derive(Debug)]
pub struct TestRegistries {
    /// Plain HTTP, anonymous.
    pub open: TestRegistry,
    /// Plain HTTP, Basic auth.
    pub basic: TestRegistry,
    /// HTTPS with the test CA.
    pub tls: TestRegistry,
    /// Plain HTTP, Bearer token auth.
    pub token: TestRegistry,
}

impl TestRegistries {
    /// Starts all four kinds on a private copy of the seed storage.
    pub fn start() -> Result<TestRegistries> {
        let shared = Arc::new(Shared::create(true)?);
        let kinds = [
            RegistryKind::Open,
            RegistryKind::Basic,
            RegistryKind::Tls,
            RegistryKind::Token,
        ];
        // Spawn all, then wait: the processes start in parallel.
        let mut starting = Vec::new();
        for kind in kinds {
            starting.push((kind, process::spawn(shared.config(kind)?)?));
        }
        let mut started = Vec::new();
        for (kind, process) in starting {
            started.push(TestRegistry::new(
                kind,
                process.wait_ready()?,
                Arc::clone(&shared),
            )?);
        }
        let mut started = started.into_iter();
        let mut next = || {
            started
                .next()
                .ok_or_else(|| HarnessError::InvalidContent("a registry is missing".into()))
        };
        Ok(TestRegistries {
            open: next()?,
            basic: next()?,
            tls: next()?,
            token: next()?,
        })
    }

    /// The four registries.
    pub fn all(&self) -> [&TestRegistry; 4] {
        [&self.open, &self.basic, &self.tls, &self.token]
    }

    /// A k3s-style `registries.yaml` that makes all four usable: plain-HTTP
    /// ones as mirrors of themselves with an `http://` endpoint, credentials
    /// for the basic and token ones, the CA for the TLS one.
    pub fn registries_yaml(&self) -> Result<String> {
        registries_yaml::render(&self.all())
    }

    /// Writes [`TestRegistries::registries_yaml`] to `path`.
    pub fn write_registries_yaml(&self, path: &Path) -> Result<()> {
        fs::write(path, self.registries_yaml()?).map_err(io_error("write", path))
    }
}

impl TestRegistry {
    /// Starts one registry of `kind` on its own copy of the seed storage.
    pub fn start(kind: RegistryKind) -> Result<TestRegistry> {
        let shared = Arc::new(Shared::create(kind == RegistryKind::Token)?);
        let process = process::spawn(shared.config(kind)?)?.wait_ready()?;
        TestRegistry::new(kind, process, shared)
    }

    fn new(
        kind: RegistryKind,
        process: RegistryProcess,
        shared: Arc<Shared>,
    ) -> Result<TestRegistry> {
        let scheme = if kind == RegistryKind::Tls {
            "https"
        } else {
            "http"
        };
        let credentials = matches!(kind, RegistryKind::Basic | RegistryKind::Token)
            .then(|| (TEST_USER.to_string(), TEST_PASSWORD.to_string()));
        let tls = if kind == RegistryKind::Tls {
            Some(shared.pki.client_config()?)
        } else {
            None
        };
        let client = RegistryClient::new(&format!("{scheme}://{}", process.addr), tls, credentials);
        Ok(TestRegistry {
            process,
            kind,
            client,
            shared,
        })
    }

    /// Which kind it is.
    pub fn kind(&self) -> RegistryKind {
        self.kind
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        self.process.addr.to_string()
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.kind == RegistryKind::Tls {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.process.addr)
    }

    /// `127.0.0.1:PORT/<name>` for `name` = `repo:tag` or `repo@digest`.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }

    /// The user and password, for the basic and token kinds.
    pub fn credentials(&self) -> Option<(&'static str, &'static str)> {
        matches!(self.kind, RegistryKind::Basic | RegistryKind::Token)
            .then_some((TEST_USER, TEST_PASSWORD))
    }

    /// The CA certificate (PEM) to trust, for the TLS kind.
    pub fn ca_pem_path(&self) -> Option<&Path> {
        (self.kind == RegistryKind::Tls).then_some(self.shared.pki.ca_pem.as_path())
    }

    /// A client certificate and key signed by the test CA (the registry does
    /// not require one), for the TLS kind.
    pub fn client_cert_paths(&self) -> Option<(&Path, &Path)> {
        (self.kind == RegistryKind::Tls).then_some((
            self.shared.pki.client_cert.as_path(),
            self.shared.pki.client_key.as_path(),
        ))
    }

    /// The token server, for the token kind.
    pub fn token_server(&self) -> Option<&TokenServer> {
        if self.kind == RegistryKind::Token {
            self.shared.token.as_ref()
        } else {
            None
        }
    }

    /// The storage root (shared with the other registries of the set).
    pub fn storage_dir(&self) -> &Path {
        &self.shared.storage
    }

    /// Where the registry keeps a blob's bytes.
    pub fn blob_data_path(&self, digest: &Digest) -> PathBuf {
        self.shared.storage.join(format!(
            "docker/registry/v2/blobs/sha256/{}/{}/data",
            &digest.hex()[..2],
            digest.hex()
        ))
    }

    /// The process id of the registry.
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// The registry's own log (stderr).
    pub fn log_path(&self) -> &Path {
        &self.process.log
    }

    /// Its access log (combined format, one line per request).
    pub fn access_log_path(&self) -> &Path {
        &self.process.access_log
    }

    /// Every request served so far.
    pub fn access_log(&self) -> Result<Vec<AccessLogEntry>> {
        access_log::read_access_log(&self.process.access_log)
    }

    /// How many times the blob was successfully downloaded (GET 2xx) from
    /// this registry process, in any repository.
    pub fn blob_get_count(&self, digest: &Digest) -> Result<usize> {
        let entries = self.access_log()?;
        Ok(entries
            .iter()
            .filter(|e| e.is_blob_download(digest.as_str()))
            .count())
    }

    /// How many times a manifest was successfully downloaded by `reference`
    /// (a tag or a digest), in any repository.
    pub fn manifest_get_count(&self, reference: &str) -> Result<usize> {
        let entries = self.access_log()?;
        Ok(entries
            .iter()
            .filter(|e| e.is_manifest_download(reference))
            .count())
    }

    /// An authenticated client for raw requests (trusts the test CA).
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// Pushes an image or index as `name` (`repo:tag`), returning its
    /// digest. Blobs whose bytes do not match their digest (see
    /// [`crate::oci::Blob::corrupted`]) are written straight into the
    /// storage, since the registry would refuse the upload.
    pub fn push(&self, source: &dyn ImageSource, name: &str) -> Result<Digest> {
        let (repository, tag) = split_name(name)?;
        for desc in reachable(source)? {
            let bytes = source.blob(&desc.digest)?;
            if Digest::of(&bytes) != desc.digest {
                self.plant_blob(repository, &desc.digest, &bytes)?;
            }
        }
        self.client.push(source, repository, Some(tag))
    }

    /// Overwrites a stored blob with different bytes of the same length;
    /// the registry keeps serving it under the old digest.
    pub fn corrupt_blob(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_data_path(digest);
        let mut bytes = fs::read(&path).map_err(io_error("read blob", &path))?;
        let middle = bytes.len() / 2;
        match bytes.get_mut(middle) {
            Some(byte) => *byte ^= 0xff,
            None => bytes.push(0),
        }
        fs::write(&path, bytes).map_err(io_error("write blob", &path))
    }

    /// Writes a blob and its repository link into the storage directly.
    fn plant_blob(&self, repository: &str, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let data = self.blob_data_path(digest);
        if let Some(parent) = data.parent() {
            fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
        }
        fs::write(&data, bytes).map_err(io_error("write blob", &data))?;
        let link_dir = self.shared.storage.join(format!(
            "docker/registry/v2/repositories/{repository}/_layers/sha256/{}",
            digest.hex()
        ));
        fs::create_dir_all(&link_dir).map_err(io_error("create directory", &link_dir))?;
        let link = link_dir.join("link");
        fs::write(&link, digest.as_str()).map_err(io_error("write", &link))
    }
}

/// `repo:tag` -> (`repo`, `tag`); the tag defaults to `latest`.
fn split_name(name: &str) -> Result<(&str, &str)> {
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repository, tag) = match last.rsplit_once(':') {
        Some((_, tag)) => (&name[..name.len() - tag.len() - 1], tag),
        None => (name, "latest"),
    };
    if repository.is_empty() || repository.contains('@') {
        return Err(HarnessError::InvalidContent(format!(
            "{name:?} is not a repo:tag name"
        )));
    }
    Ok((repository, tag))
}
