//! The cluster's certificates, made at first start and kept under
//! `<data-dir>/server/tls` (directory 0700, keys 0600), with k3s's names:
//!
//! - `server-ca.{crt,key}`: signs the apiserver's serving certificate;
//! - `client-ca.{crt,key}`: signs client certificates the apiserver accepts
//!   (x509 authentication: CN = user, O = groups);
//! - `serving-kube-apiserver.{crt,key}`: the apiserver's certificate, for
//!   the node's addresses, localhost, `kubernetes.default.svc…` and every
//!   `--tls-san`; made again (same CA) when those names change;
//! - `client-admin.{crt,key}`: `system:admin` in `system:masters`, for the
//!   admin kubeconfig;
//! - `service.key`: signs service-account tokens (made on first use).
//!
//! A restart loads what exists; the CAs are never replaced, so clients keep
//! trusting the server.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Names every apiserver certificate carries besides the configured ones.
pub const DEFAULT_SANS: [&str; 7] = [
    "localhost",
    "127.0.0.1",
    "::1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// A failure making or loading the certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("certificates: {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key could not be made or parsed.
    #[error("certificates: {what}: {source}")]
    Certificate {
        /// Which one.
        what: String,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
}

/// One certificate and its key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedKey {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// The cluster's certificates.
#[derive(Debug, Clone)]
pub struct ClusterTls {
    /// Where they are.
    pub dir: PathBuf,
    /// The CA clients trust for the apiserver.
    pub server_ca: CertifiedKey,
    /// The CA whose client certificates the apiserver accepts.
    pub client_ca: CertifiedKey,
    /// The apiserver's serving certificate.
    pub serving: CertifiedKey,
    /// The admin's client certificate.
    pub admin: CertifiedKey,
}

impl ClusterTls {
    /// Loads the certificates in `dir`, making what is missing; the serving
    /// certificate is made again when `sans` (with [`DEFAULT_SANS`]) differ
    /// from the ones it was made for.
    pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<ClusterTls, TlsError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("creating", dir))?;
        let server_ca = ca(dir, "server-ca", "skiff-server-ca")?;
        let client_ca = ca(dir, "client-ca", "skiff-client-ca")?;
        let mut names: Vec<String> = DEFAULT_SANS.iter().map(|s| s.to_string()).collect();
        for san in sans {
            if !names.contains(san) {
                names.push(san.clone());
            }
        }
        let names_file = dir.join("serving-kube-apiserver.sans");
        let wanted = names.join("\n");
        let made_for = fs::read_to_string(&names_file).unwrap_or_default();
        let serving = leaf(
            dir,
            "serving-kube-apiserver",
            &server_ca,
            LeafSpec {
                common_name: "kube-apiserver",
                organization: None,
                names: &names,
                usage: ExtendedKeyUsagePurpose::ServerAuth,
            },
            made_for != wanted,
        )?;
        write_private(&names_file, wanted.as_bytes())?;
        let admin = leaf(
            dir,
            "client-admin",
            &client_ca,
            LeafSpec {
                common_name: "system:admin",
                organization: Some("system:masters"),
                names: &[],
                usage: ExtendedKeyUsagePurpose::ClientAuth,
            },
            false,
        )?;
        Ok(ClusterTls {
            dir: dir.to_owned(),
            server_ca,
            client_ca,
            serving,
            admin,
        })
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TlsError {
    let path = path.to_owned();
    move |source| TlsError::Io { op, path, source }
}

fn cert_error(what: &str) -> impl FnOnce(rcgen::Error) -> TlsError {
    let what = what.to_owned();
    move |source| TlsError::Certificate { what, source }
}

impl ClusterTls {
    /// The client certificate `client-<file>` for an in-process component
    /// (`system:kube-scheduler`, `system:node:<name>`, ...), signed by the
    /// client CA, loaded or made.
    pub fn component_client(
        &self,
        file: &str,
        common_name: &str,
        organization: Option<&str>,
    ) -> Result<CertifiedKey, TlsError> {
        leaf(
            &self.dir,
            &format!("client-{file}"),
            &self.client_ca,
            LeafSpec {
                common_name,
                organization,
                names: &[],
                usage: ExtendedKeyUsagePurpose::ClientAuth,
            },
            false,
        )
    }

    /// The serving certificate `serving-<file>` for `names`, signed by the
    /// server CA (the kubelet's on :10250), loaded or made.
    pub fn serving_for(&self, file: &str, names: &[String]) -> Result<CertifiedKey, TlsError> {
        let names_file = self.dir.join(format!("serving-{file}.sans"));
        let wanted = names.join("\n");
        let made_for = fs::read_to_string(&names_file).unwrap_or_default();
        let pair = leaf(
            &self.dir,
            &format!("serving-{file}"),
            &self.server_ca,
            LeafSpec {
                common_name: file,
                organization: None,
                names,
                usage: ExtendedKeyUsagePurpose::ServerAuth,
            },
            made_for != wanted,
        )?;
        write_private(&names_file, wanted.as_bytes())?;
        Ok(pair)
    }
}

impl ClusterTls {
    /// The key service-account tokens are signed with, `service.key` (as
    /// k3s names it; PEM, 0600): loaded, or made once as an ECDSA P-256
    /// PKCS#8 key. An RSA key put there (k3s's) is used as it is.
    pub fn service_account_key(&self) -> Result<String, TlsError> {
        let path = self.dir.join(SERVICE_ACCOUNT_KEY);
        if path.exists() {
            return fs::read_to_string(&path).map_err(io("reading", &path));
        }
        let key = KeyPair::generate().map_err(cert_error(SERVICE_ACCOUNT_KEY))?;
        let pem = key.serialize_pem();
        write_private(&path, pem.as_bytes())?;
        tracing::info!(
            key = SERVICE_ACCOUNT_KEY,
            "made the service-account signing key"
        );
        Ok(pem)
    }
}

/// The service-account signing key's file in the certificates' directory.
pub const SERVICE_ACCOUNT_KEY: &str = "service.key";

/// Writes `bytes` to `path` with mode 0600, atomically (temp file, rename).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("creating", &tmp))?;
    file.write_all(bytes).map_err(io("writing", &tmp))?;
    file.sync_all().map_err(io("syncing", &tmp))?;
    fs::rename(&tmp, path).map_err(io("renaming to", path))
}

/// Reads `<name>.crt` and `<name>.key` in `dir`, if both exist.
fn read_pair(dir: &Path, name: &str) -> Result<Option<CertifiedKey>, TlsError> {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    if !cert.exists() || !key.exists() {
        return Ok(None);
    }
    Ok(Some(CertifiedKey {
        cert_pem: fs::read_to_string(&cert).map_err(io("reading", &cert))?,
        key_pem: fs::read_to_string(&key).map_err(io("reading", &key))?,
    }))
}

/// Writes `<name>.crt` (0644) and `<name>.key` (0600); the key first.
fn write_pair(dir: &Path, name: &str, pair: &CertifiedKey) -> Result<(), TlsError> {
    write_private(&dir.join(format!("{name}.key")), pair.key_pem.as_bytes())?;
    let cert = dir.join(format!("{name}.crt"));
    write_private(&cert, pair.cert_pem.as_bytes())?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&cert, fs::Permissions::from_mode(0o644)).map_err(io("chmod", &cert))
}

/// The CA `name`, loaded or made (valid ten years, as k3s's).
fn ca(dir: &Path, name: &str, common_name: &str) -> Result<CertifiedKey, TlsError> {
    if let Some(pair) = read_pair(dir, name)? {
        return Ok(pair);
    }
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error(name))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let now = time::OffsetDateTime::now_utc();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("{common_name}@{}", now.unix_timestamp()),
    );
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    let key = KeyPair::generate().map_err(cert_error(name))?;
    let cert = params.self_signed(&key).map_err(cert_error(name))?;
    let pair = CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    write_pair(dir, name, &pair)?;
    tracing::info!(ca = name, "made a certificate authority");
    Ok(pair)
}

/// What a leaf certificate says.
struct LeafSpec<'a> {
    common_name: &'a str,
    organization: Option<&'a str>,
    names: &'a [String],
    usage: ExtendedKeyUsagePurpose,
}

/// The leaf `name` signed by `ca`, loaded or made (valid one year, as
/// k3s's); made anew when `renew`.
fn leaf(
    dir: &Path,
    name: &str,
    ca: &CertifiedKey,
    spec: LeafSpec<'_>,
    renew: bool,
) -> Result<CertifiedKey, TlsError> {
    if !renew && let Some(pair) = read_pair(dir, name)? {
        return Ok(pair);
    }
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(cert_error(name))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(cert_error(name))?;
    let mut params = CertificateParams::new(spec.names.to_vec()).map_err(cert_error(name))?;
    params
        .distinguished_name
        .push(DnType::CommonName, spec.common_name);
    if let Some(organization) = spec.organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![spec.usage];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365);
    let key = KeyPair::generate().map_err(cert_error(name))?;
    let cert = params.signed_by(&key, &issuer).map_err(cert_error(name))?;
    let pair = CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    write_pair(dir, name, &pair)?;
    tracing::info!(certificate = name, "made a certificate");
    Ok(pair)
}
