//! Per-endpoint TLS: CA files, skipping verification, client certificates.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::*;
use crate::distribution::fake_registry::serve_tls;

struct Pki {
    dir: tempfile::TempDir,
    server: Arc<rustls::ServerConfig>,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, on
/// disk; the server requires client certificates when `mutual`.
fn pki(mutual: bool) -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);

    let issue = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = issue("127.0.0.1");
    let (client_cert, client_key) = issue("client");
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.path().join("client.pem"), client_cert).unwrap();
    std::fs::write(dir.path().join("client.key"), client_key).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if mutual {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let chain = vec![CertificateDer::from_pem_slice(server_cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(server_key.as_bytes()).unwrap();
    let server = Arc::new(builder.with_single_cert(chain, key).unwrap());
    Pki { dir, server }
}

fn serve_registry(pki: &Pki) -> (Arc<FakeRegistry>, Server) {
    let registry = FakeRegistry::new();
    TestImage::new("amd64").push(&registry, "app", Some("v1"));
    let handler = registry.clone();
    let server = serve_tls(
        pki.server.clone(),
        Arc::new(move |r: &Request| handler.handle(r)),
    );
    (registry, server)
}

/// registries.yaml sending `tls.test` to the server, with `tls` settings for it.
fn client_with(server: &Server, tls: &str) -> RegistryClient {
    let yaml = format!(
        "mirrors:\n  tls.test:\n    endpoint: [\"https://{host}\"]\nconfigs:\n  \"{host}\":\n    tls: {tls}\n",
        host = server.host()
    );
    let config = RegistriesConfig::from_yaml(&yaml, Path::new("r.yaml"))
        .unwrap()
        .with_default_endpoint_disabled(true);
    RegistryClient::new(
        config,
        PlatformMatcher::new(vec!["linux/amd64".parse().unwrap()]),
    )
    .unwrap()
}

fn image() -> Reference {
    "tls.test/app:v1".parse().unwrap()
}

#[tokio::test]
async fn ca_file_and_insecure_skip_verify() {
    let pki = pki(false);
    let (_registry, server) = serve_registry(&pki);
    let ca = pki.dir.path().join("ca.pem");

    let err = client_with(&server, "{}")
        .resolve(&image(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Tls { message, .. } if message.contains("ca_file")),
        "{err}"
    );
    client_with(&server, &format!("{{ ca_file: {} }}", ca.display()))
        .resolve(&image(), None)
        .await
        .unwrap();
    client_with(&server, "{ insecure_skip_verify: true }")
        .resolve(&image(), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn client_certificates() {
    let pki = pki(true);
    let (_registry, server) = serve_registry(&pki);
    let dir = pki.dir.path();
    let ca = format!("ca_file: {}", dir.join("ca.pem").display());

    let err = client_with(&server, &format!("{{ {ca} }}"))
        .resolve(&image(), None)
        .await
        .unwrap_err();
    // TLS 1.3 reports a missing client certificate after the handshake,
    // so the failure may surface as an alert or as a dropped connection.
    assert!(err.is_retryable() && err.rank() == 1, "{err}");
    let with_cert = format!(
        "{{ {ca}, cert_file: {}, key_file: {} }}",
        dir.join("client.pem").display(),
        dir.join("client.key").display()
    );
    client_with(&server, &with_cert)
        .resolve(&image(), None)
        .await
        .unwrap();
}
