//! The cluster's certificates: made once, reloaded, and good for a real TLS
//! handshake with client-certificate authentication.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use skiff_server::tls::ClusterTls;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn made_once_kept_on_restart_and_the_serving_cert_follows_the_sans() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("server/tls");
    let first = ClusterTls::load_or_create(&tls_dir, &["10.0.0.5".into()]).unwrap();
    assert_eq!(mode(&tls_dir), 0o700);
    for key in [
        "server-ca.key",
        "client-ca.key",
        "serving-kube-apiserver.key",
        "client-admin.key",
    ] {
        assert_eq!(mode(&tls_dir.join(key)), 0o600, "{key}");
    }
    let again = ClusterTls::load_or_create(&tls_dir, &["10.0.0.5".into()]).unwrap();
    assert_eq!(again.server_ca, first.server_ca);
    assert_eq!(again.client_ca, first.client_ca);
    assert_eq!(again.serving, first.serving, "same names: same certificate");
    assert_eq!(again.admin, first.admin);
    let renamed = ClusterTls::load_or_create(&tls_dir, &["edge.example".into()]).unwrap();
    assert_eq!(renamed.server_ca, first.server_ca, "the CA stays");
    assert_ne!(
        renamed.serving, first.serving,
        "new names: a new certificate"
    );
    handshake(&renamed, "edge.example").unwrap();
    handshake(&renamed, "localhost").unwrap();
    // A name it was not made for.
    let wrong = handshake(&renamed, "10.0.0.5").unwrap_err();
    assert!(wrong.starts_with("client side"), "{wrong}");
}

#[test]
fn a_client_with_the_admin_certificate_completes_a_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let tls = ClusterTls::load_or_create(dir.path(), &[]).unwrap();
    handshake(&tls, "127.0.0.1").unwrap();
    handshake(&tls, "kubernetes.default.svc").unwrap();
}

#[test]
fn a_client_certificate_from_another_cluster_is_refused() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let ours = ClusterTls::load_or_create(ours.path(), &[]).unwrap();
    let theirs = ClusterTls::load_or_create(theirs.path(), &[]).unwrap();
    let stranger = ClusterTls {
        admin: theirs.admin.clone(),
        ..ours.clone()
    };
    let refused = handshake(&stranger, "localhost").unwrap_err();
    assert!(refused.starts_with("server side"), "{refused}");
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// A TLS 1.3 handshake in memory: the client trusts the server CA and
/// checks `name`; the server requires a certificate from the client CA.
/// An error says which side refused.
fn handshake(tls: &ClusterTls, name: &str) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client_roots = rustls::RootCertStore::empty();
    client_roots.add_parsable_certificates(certs(&tls.server_ca.cert_pem));
    let client_config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(client_roots)
        .with_client_auth_cert(certs(&tls.admin.cert_pem), key(&tls.admin.key_pem))
        .unwrap();
    let mut server_roots = rustls::RootCertStore::empty();
    server_roots.add_parsable_certificates(certs(&tls.client_ca.cert_pem));
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        server_roots.into(),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&tls.serving.cert_pem), key(&tls.serving.key_pem))
        .unwrap();
    let mut client = rustls::ClientConnection::new(
        Arc::new(client_config),
        ServerName::try_from(name.to_owned()).unwrap(),
    )
    .unwrap();
    let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
    client.writer().write_all(b"ping").unwrap();
    for _ in 0..10 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        server.read_tls(&mut buf.as_slice()).unwrap();
        server
            .process_new_packets()
            .map_err(|e| format!("server side, {name}: {e}"))?;
        let mut buf = Vec::new();
        server.write_tls(&mut buf).unwrap();
        client.read_tls(&mut buf.as_slice()).unwrap();
        client
            .process_new_packets()
            .map_err(|e| format!("client side, {name}: {e}"))?;
    }
    assert!(!client.is_handshaking() && !server.is_handshaking());
    let peer = server
        .peer_certificates()
        .expect("the client presented a certificate");
    assert_eq!(peer.len(), 1);
    let mut got = [0u8; 4];
    server.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    Ok(())
}

#[test]
fn the_admin_kubeconfig_is_private_and_kubectl_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let tls = ClusterTls::load_or_create(&dir.path().join("tls"), &[]).unwrap();
    let path = dir.path().join("etc/skiff.yaml");
    skiff_server::kubeconfig::write_admin_kubeconfig(&path, 0o600, &tls, "https://127.0.0.1:6443")
        .unwrap();
    assert_eq!(mode(&path), 0o600);
    let kubectl = |jsonpath: &str| {
        let out = std::process::Command::new("kubectl")
            .args(["config", "view", "--raw", "--kubeconfig"])
            .arg(&path)
            .args(["-o", &format!("jsonpath={jsonpath}")])
            .output()
            .expect("kubectl on PATH");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(kubectl("{.current-context}"), "default");
    assert_eq!(
        kubectl("{.clusters[0].cluster.server}"),
        "https://127.0.0.1:6443"
    );
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(kubectl("{.clusters[0].cluster.certificate-authority-data}"))
        .unwrap();
    assert_eq!(ca, tls.server_ca.cert_pem.as_bytes());
    // A mode the user asks for is kept, whatever the umask.
    skiff_server::kubeconfig::write_admin_kubeconfig(&path, 0o644, &tls, "https://127.0.0.1:6443")
        .unwrap();
    assert_eq!(mode(&path), 0o644);
}
