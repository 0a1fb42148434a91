//! rustls client settings per registry host: system roots plus `ca_file`, a
//! client certificate, or (when asked) no verification at all.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::registries::{RegistriesError, TlsConfig};

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The operating system's trust store, read once per process.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "problem reading system CA certificates");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                "no system CA certificates found; only registries.yaml ca_file roots are trusted"
            );
        }
        tracing::debug!(added, ignored, "loaded system CA certificates");
        roots
    })
}

/// The rustls settings for endpoints whose `configs` entry is `key`.
pub(crate) fn client_config(
    key: &str,
    tls: Option<&TlsConfig>,
) -> Result<ClientConfig, RegistriesError> {
    let fail = |message: String| RegistriesError::Tls {
        key: key.to_owned(),
        message,
    };
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?;
    let tls = tls.cloned().unwrap_or_default();

    let builder = if tls.insecure_skip_verify {
        tracing::warn!(
            registry = key,
            "insecure_skip_verify is set: registry server certificates are not verified"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
    } else {
        let mut roots = system_roots().clone();
        if let Some(ca_file) = &tls.ca_file {
            let certs = read_certs(ca_file).map_err(|m| fail(format!("ca_file: {m}")))?;
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    fail(format!(
                        "ca_file {}: unusable certificate: {e}",
                        ca_file.display()
                    ))
                })?;
            }
        }
        builder.with_root_certificates(roots)
    };

    match (&tls.cert_file, &tls.key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert_file), Some(key_file)) => {
            let chain = read_certs(cert_file).map_err(|m| fail(format!("cert_file: {m}")))?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
                fail(format!(
                    "key_file {}: no usable private key: {e}",
                    key_file.display()
                ))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                fail(format!(
                    "client certificate {} with key {}: {e}",
                    cert_file.display(),
                    key_file.display()
                ))
            })
        }
        (Some(cert_file), None) => Err(fail(format!(
            "cert_file {} is set but key_file is not",
            cert_file.display()
        ))),
        (None, Some(key_file)) => Err(fail(format!(
            "key_file {} is set but cert_file is not",
            key_file.display()
        ))),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM certificates in the file",
            path.display()
        ));
    }
    Ok(certs)
}

/// Explains a TLS failure found in a reqwest error's causes, if there is one.
pub(crate) fn describe_tls_failure(error: &reqwest::Error, host: &str) -> Option<String> {
    find_rustls_error(error).map(|tls| explain(tls, host))
}

/// Walks causes, looking inside `io::Error`s too: their `source()` skips the
/// error they wrap, which is where hyper-rustls puts the rustls error.
fn find_rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(tls) = find_rustls_error(inner)
        {
            return Some(tls);
        }
        cause = e.source();
    }
    None
}

fn explain(error: &rustls::Error, host: &str) -> String {
    use rustls::{CertificateError, Error, InvalidMessage};
    match error {
        Error::InvalidMessage(InvalidMessage::InvalidContentType)
        | Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion) => format!(
            "{error} (the server does not speak TLS; if it is a plain-HTTP registry, \
             list it as http://{host} in registries.yaml)"
        ),
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            format!("{error} (trust its CA with configs.\"{host}\".tls.ca_file in registries.yaml)")
        }
        _ => error.to_string(),
    }
}

/// Accepts any server certificate but still checks handshake signatures, so
/// the connection is at least bound to the key the server presented: for
/// registries with `insecure_skip_verify`, and the apiserver's proxy to
/// `https:` pod ports (which kube-apiserver does not verify either).
#[derive(Debug)]
pub struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl AcceptAnyServerCert {
    /// Checks signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self(provider)
    }
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_half_configured_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsConfig {
            ca_file: Some(dir.path().join("nope.pem")),
            ..Default::default()
        };
        let err = client_config("reg.example.com", Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("reg.example.com") && err.contains("nope.pem"),
            "{err}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem").unwrap();
        let err = client_config(
            "r",
            Some(&TlsConfig {
                ca_file: Some(empty),
                ..Default::default()
            }),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no PEM certificates"), "{err}");

        let half = TlsConfig {
            cert_file: Some(dir.path().join("c.pem")),
            ..Default::default()
        };
        let err = client_config("r", Some(&half)).unwrap_err().to_string();
        assert!(err.contains("key_file is not"), "{err}");
    }

    #[test]
    fn defaults_and_insecure_build() {
        client_config("*", None).unwrap();
        let insecure = TlsConfig {
            insecure_skip_verify: true,
            ..Default::default()
        };
        client_config("*", Some(&insecure)).unwrap();
    }
}
