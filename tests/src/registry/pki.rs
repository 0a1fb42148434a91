//! Certificates for the test registries: a CA, a server certificate for
//! 127.0.0.1/localhost, a client certificate, and the token-signing chain.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;

use crate::error::{HarnessError, Result, io_error};

/// PEM files written for one set of registries, plus what the token server
/// needs to sign JWTs.
#[derive(Debug)]
pub struct TestPki {
    /// The CA that signed the server and client certificates.
    pub ca_pem: PathBuf,
    /// The TLS registry's certificate (SANs 127.0.0.1, ::1, localhost).
    pub server_cert: PathBuf,
    /// Its key (PKCS#8 PEM).
    pub server_key: PathBuf,
    /// A client certificate signed by the CA (for mTLS tests).
    pub client_cert: PathBuf,
    /// Its key (PKCS#8 PEM).
    pub client_key: PathBuf,
    /// The CA the token registry trusts for JWT signatures (`rootcertbundle`).
    pub token_ca_pem: PathBuf,
    /// DER of the certificate whose key signs JWTs (sent in `x5c`).
    pub(crate) token_signer_der: Vec<u8>,
    /// PKCS#8 DER of the JWT signing key (ECDSA P-256).
    pub(crate) token_signer_pkcs8: Vec<u8>,
    ca_der: CertificateDer<'static>,
}

fn cert_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> HarnessError {
    move |source| HarnessError::Certificate { what, source }
}

fn new_ca(common_name: &str) -> Result<(rcgen::Certificate, Issuer<'static, KeyPair>)> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error("CA"))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().map_err(cert_error("CA key"))?;
    let cert = params
        .self_signed(&key)
        .map_err(cert_error("CA certificate"))?;
    Ok((cert, Issuer::new(params, key)))
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    common_name: &str,
    names: Vec<String>,
    usage: Option<ExtendedKeyUsagePurpose>,
) -> Result<(rcgen::Certificate, KeyPair)> {
    let mut params = CertificateParams::new(names).map_err(cert_error("leaf certificate"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usage.into_iter().collect();
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().map_err(cert_error("leaf key"))?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(cert_error("leaf certificate"))?;
    Ok((cert, key))
}

impl TestPki {
    /// Generates everything and writes the PEM files into `dir`.
    pub fn generate(dir: &Path) -> Result<TestPki> {
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        let write = |name: &str, pem: String| -> Result<PathBuf> {
            let path = dir.join(name);
            fs::write(&path, pem).map_err(io_error("write", &path))?;
            Ok(path)
        };

        let (ca, issuer) = new_ca("skiff-test CA")?;
        let names = vec![
            "127.0.0.1".to_string(),
            "::1".to_string(),
            "localhost".to_string(),
        ];
        let (server, server_key) = leaf(
            &issuer,
            "127.0.0.1",
            names,
            Some(ExtendedKeyUsagePurpose::ServerAuth),
        )?;
        let (client, client_key) = leaf(
            &issuer,
            "skiff-test-client",
            Vec::new(),
            Some(ExtendedKeyUsagePurpose::ClientAuth),
        )?;
        let (token_ca, token_issuer) = new_ca("skiff-test token CA")?;
        let (signer, signer_key) =
            leaf(&token_issuer, "skiff-test token signer", Vec::new(), None)?;

        Ok(TestPki {
            ca_pem: write("ca.pem", ca.pem())?,
            server_cert: write("server.pem", server.pem())?,
            server_key: write("server-key.pem", server_key.serialize_pem())?,
            client_cert: write("client.pem", client.pem())?,
            client_key: write("client-key.pem", client_key.serialize_pem())?,
            token_ca_pem: write("token-ca.pem", token_ca.pem())?,
            token_signer_der: signer.der().to_vec(),
            token_signer_pkcs8: signer_key.serialize_der(),
            ca_der: ca.der().clone(),
        })
    }

    /// A rustls client configuration trusting the test CA.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).map_err(|e| {
            HarnessError::Crypto(format!("adding the test CA to a root store: {e}"))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HarnessError::Crypto(format!("configuring TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}
