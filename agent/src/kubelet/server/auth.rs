//! Who may use the kubelet API: the client certificate's subject (CN =
//! user, O = groups), verified against the cluster's client CA during the
//! handshake. Allowed are the apiserver's kubelet client and members of
//! `system:masters`; kubelet's own answers are used for everyone else.

use hyper::{Method, StatusCode};
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::Failure;

/// The user the apiserver calls kubelets as.
pub const APISERVER_CLIENT: &str = "kube-apiserver-kubelet-client";
/// The group allowed everything.
const MASTERS: &str = "system:masters";

/// An authenticated client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The certificate's common name.
    pub name: String,
    /// Its organizations.
    pub groups: Vec<String>,
}

/// The user of a connection whose client presented `certs` (verified by
/// TLS); `None` for a client without a certificate.
pub fn user_of(certs: Option<&[CertificateDer<'_>]>) -> Option<User> {
    let leaf = certs?.first()?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(User { name, groups })
}

/// Whether `user` may send `method` to `path`; the refusal kubelet sends
/// otherwise.
pub fn authorize(user: Option<&User>, method: &Method, path: &str) -> Result<(), Failure> {
    let Some(user) = user else {
        return Err(Failure::new(StatusCode::UNAUTHORIZED, "Unauthorized"));
    };
    if user.name == APISERVER_CLIENT || user.groups.iter().any(|g| g == MASTERS) {
        return Ok(());
    }
    Err(Failure::new(
        StatusCode::FORBIDDEN,
        format!(
            "Forbidden (user={}, verb={}, resource=nodes, subresource={})",
            user.name,
            verb(method),
            subresource(path)
        ),
    ))
}

/// kubelet's authorization verb for an HTTP method.
fn verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    }
}

/// kubelet's authorization subresource for a path.
fn subresource(path: &str) -> &'static str {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else if under("/spec") {
        "spec"
    } else if under("/checkpoint") {
        "checkpoint"
    } else {
        "proxy"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn only_the_apiserver_and_masters_are_let_in() {
        let get = Method::GET;
        assert!(authorize(Some(&user(APISERVER_CLIENT, &[])), &get, "/healthz").is_ok());
        assert!(authorize(Some(&user("system:admin", &[MASTERS])), &get, "/healthz").is_ok());
        let refused = authorize(None, &get, "/healthz").unwrap_err();
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        let refused = authorize(
            Some(&user("system:node:n1", &["system:nodes"])),
            &Method::POST,
            "/exec/default/web/c",
        )
        .unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn refusals_name_what_kubelet_names() {
        assert_eq!(subresource("/containerLogs/a/b/c"), "proxy");
        assert_eq!(subresource("/stats/summary"), "stats");
        assert_eq!(subresource("/logs/"), "log");
        assert_eq!(subresource("/metrics"), "metrics");
        assert_eq!(verb(&Method::POST), "create");
    }
}
