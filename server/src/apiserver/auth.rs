//! Who a request is: the client certificate's subject, verified against the
//! client CA during the handshake (CN = user name, O = groups), as
//! kube-apiserver's x509 authenticator reads it.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name.
    pub name: String,
    /// The groups, `system:authenticated` included.
    pub groups: Vec<String>,
}

impl User {
    /// One of the server's own components.
    pub fn system(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            groups: vec!["system:authenticated".to_owned()],
        }
    }
}

/// The user of a connection whose client presented `certs` (already
/// verified); `None` for an anonymous client.
pub fn user_of(certs: Option<&[CertificateDer<'_>]>) -> Option<User> {
    let leaf = certs?.first()?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    groups.push("system:authenticated".to_owned());
    Some(User { name, groups })
}
