//! Connections to kubelets and pods: TCP, then TLS for a kubelet (its
//! serving certificate checked against the server CA, the apiserver's
//! kubelet client certificate presented) or for an `https:` proxy target
//! (not verified, as kube-apiserver's proxy transport). Failures are worded
//! as Go's net and crypto/tls packages word them, since clients show them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use skiff_images::distribution::AcceptAnyServerCert;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::location::Backend;

/// How long a connection may take (kube-apiserver's kubelet dialer: 30 s).
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A byte stream to a backend.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The apiserver's TLS identities towards kubelets and pods.
#[derive(Clone)]
pub struct KubeletClient {
    kubelet: TlsConnector,
    insecure: TlsConnector,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient").finish_non_exhaustive()
    }
}

impl KubeletClient {
    /// Trusts kubelets whose certificate `server_ca_pem` signed, and
    /// presents `cert_pem`/`key_pem` to them.
    pub fn new(server_ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(server_ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("server CA: {e}"))?;
            roots.add(cert).map_err(|e| format!("server CA: {e}"))?;
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("kubelet client certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("kubelet client key: {e}"))?;
        let kubelet = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("kubelet client certificate: {e}"))?;
        let insecure = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(provider)))
            .with_no_client_auth();
        Ok(Self {
            kubelet: TlsConnector::from(Arc::new(with_http1(kubelet))),
            insecure: TlsConnector::from(Arc::new(with_http1(insecure))),
        })
    }

    /// Connects to `backend`; the error is Go's wording
    /// (`dial tcp 10.0.0.5:10250: connect: connection refused`).
    pub async fn dial(&self, backend: &Backend) -> Result<Box<dyn Io>, String> {
        let authority = backend.authority();
        let (host, connector) = match backend {
            Backend::Kubelet { host, .. } => (host, Some(&self.kubelet)),
            Backend::Direct { host, tls, .. } => (host, tls.then_some(&self.insecure)),
        };
        let tcp = match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&authority)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(err)) => {
                return Err(format!("dial tcp {authority}: {}", go_connect_error(&err)));
            }
            Err(_) => return Err(format!("dial tcp {authority}: i/o timeout")),
        };
        let _ = tcp.set_nodelay(true);
        let Some(connector) = connector else {
            return Ok(Box::new(tcp));
        };
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.clone())
                .map_err(|e| format!("tls: invalid server name {host:?}: {e}"))?,
        };
        match tokio::time::timeout(DIAL_TIMEOUT, connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => Ok(Box::new(tls)),
            Ok(Err(err)) => Err(go_tls_error(&err, host)),
            Err(_) => Err("net/http: TLS handshake timeout".to_owned()),
        }
    }
}

fn with_http1(mut config: rustls::ClientConfig) -> rustls::ClientConfig {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A connect failure as Go's net package says it after `dial tcp <addr>: `.
fn go_connect_error(err: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::ConnectionRefused => "connect: connection refused".to_owned(),
        ErrorKind::HostUnreachable => "connect: no route to host".to_owned(),
        ErrorKind::NetworkUnreachable => "connect: network is unreachable".to_owned(),
        ErrorKind::TimedOut => "i/o timeout".to_owned(),
        _ => {
            let text = err.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => format!("connect: {}{}", first.to_lowercase(), chars.as_str()),
                None => "connect: failed".to_owned(),
            }
        }
    }
}

/// A TLS handshake failure as Go's crypto/tls says it.
fn go_tls_error(err: &std::io::Error, host: &str) -> String {
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return format!("read tcp: {err}");
    };
    match tls {
        rustls::Error::InvalidCertificate(why) => {
            let x509 = match why {
                rustls::CertificateError::UnknownIssuer => {
                    "certificate signed by unknown authority".to_owned()
                }
                rustls::CertificateError::Expired | rustls::CertificateError::NotValidYet => {
                    "certificate has expired or is not yet valid".to_owned()
                }
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. } => {
                    format!("certificate is not valid for {host}")
                }
                other => format!("{other:?}"),
            };
            format!("tls: failed to verify certificate: x509: {x509}")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("remote error: tls: {}", format!("{alert:?}").to_lowercase())
        }
        other => format!("tls: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_read_as_gos() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(go_connect_error(&refused), "connect: connection refused");
        let other = std::io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
        assert_eq!(
            go_connect_error(&other),
            "connect: cannot assign requested address"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_in_gos_words() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let dir = tempfile::tempdir().unwrap();
        let tls = crate::tls::ClusterTls::load_or_create(dir.path(), &[]).unwrap();
        let cert = tls.component_client("k", "k", None).unwrap();
        let client =
            KubeletClient::new(&tls.server_ca.cert_pem, &cert.cert_pem, &cert.key_pem).unwrap();
        let err = client
            .dial(&Backend::Kubelet {
                host: "127.0.0.1".into(),
                port,
            })
            .await
            .err()
            .unwrap();
        assert_eq!(
            err,
            format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
    }
}
