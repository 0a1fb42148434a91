//! Running one probe or lifecycle hook: exec (ExecSync in the container),
//! httpGet, tcpSocket and grpc (from the node to the pod's IP), sleep; failures
//! worded as kubelet words them.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{grpc, http};
use crate::kubelet::pods::cri::{Cri, go_error};

/// What a probe or hook runs against.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The runtime.
    pub cri: &'a Cri,
    /// The container's spec (named ports).
    pub container: &'a Container,
    /// The running container.
    pub container_id: &'a str,
    /// The pod's IP (the default host of httpGet and tcpSocket).
    pub pod_ip: &'a str,
}

/// A probe's timeout (`timeoutSeconds`, default 1 s).
pub fn timeout_of(probe: &Probe) -> Duration {
    Duration::from_secs(u64::try_from(probe.timeout_seconds.unwrap_or(1).max(1)).unwrap_or(1))
}

/// Runs `probe` once: Ok on success, else what failed.
pub async fn probe(target: Target<'_>, probe: &Probe) -> Result<(), String> {
    let timeout = timeout_of(probe);
    if let Some(exec) = &probe.exec {
        return exec_command(target, exec.command.clone().unwrap_or_default(), timeout).await;
    }
    if let Some(action) = &probe.http_get {
        return http_get(target, action, timeout).await;
    }
    if let Some(action) = &probe.tcp_socket {
        return tcp(target, action.host.as_deref(), &action.port, timeout).await;
    }
    if let Some(action) = &probe.grpc {
        let port = u16::try_from(action.port)
            .map_err(|_| format!("invalid port number: {}", action.port))?;
        let service = action.service.as_deref().unwrap_or_default();
        return grpc::check(target.pod_ip, port, service, timeout).await;
    }
    Err("probe has no handler".into())
}

/// Runs a lifecycle hook within `timeout`.
pub async fn hook(
    target: Target<'_>,
    handler: &LifecycleHandler,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &handler.exec {
        return exec_command(target, exec.command.clone().unwrap_or_default(), timeout).await;
    }
    if let Some(action) = &handler.http_get {
        return http_get(target, action, timeout).await;
    }
    if let Some(sleep) = &handler.sleep {
        let wanted = Duration::from_secs(u64::try_from(sleep.seconds).unwrap_or(0));
        tokio::time::sleep(wanted.min(timeout)).await;
        return Ok(());
    }
    if let Some(action) = &handler.tcp_socket {
        return tcp(target, action.host.as_deref(), &action.port, timeout).await;
    }
    Err("lifecycle hook has no handler".into())
}

async fn exec_command(
    target: Target<'_>,
    command: Vec<String>,
    timeout: Duration,
) -> Result<(), String> {
    let shown = command.join(" ");
    let seconds = i64::try_from(timeout.as_secs().max(1)).unwrap_or(1);
    match target
        .cri
        .exec_sync(target.container_id, command, seconds)
        .await
    {
        Ok(out) if out.exit_code == 0 => Ok(()),
        Ok(out) => {
            let mut output = out.stdout;
            output.extend_from_slice(&out.stderr);
            Err(String::from_utf8_lossy(&output).into_owned())
        }
        Err(status) if status.code() == tonic::Code::DeadlineExceeded => {
            Err(format!("command {shown:?} timed out"))
        }
        Err(status) => Err(go_error(&status)),
    }
}

/// A port number, or a container port's name resolved.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port number: {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name))
        }
    }
}

/// An httpGet probe or hook: HTTPS is not verified, as kubelet's prober
/// does not verify it.
async fn http_get(
    target: Target<'_>,
    action: &HTTPGetAction,
    timeout: Duration,
) -> Result<(), String> {
    let scheme = match action.scheme.as_deref() {
        None | Some("") => http::Scheme::Http,
        Some(s) if s.eq_ignore_ascii_case("HTTP") => http::Scheme::Http,
        Some(s) if s.eq_ignore_ascii_case("HTTPS") => http::Scheme::Https,
        Some(other) => return Err(format!("unsupported scheme: {other:?}")),
    };
    let headers: Vec<(String, String)> = action
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    let port = resolve_port(&action.port, target.container)?;
    let host = action
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or(target.pod_ip);
    let path = action.path.as_deref().unwrap_or("/");
    http::get(scheme, host, port, path, &headers, timeout)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn tcp(
    target: Target<'_>,
    host: Option<&str>,
    port: &IntOrString,
    timeout: Duration,
) -> Result<(), String> {
    let port = resolve_port(port, target.container)?;
    let host = host.filter(|h| !h.is_empty()).unwrap_or(target.pod_ip);
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&address)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!(
            "dial tcp {address}: connect: {}",
            http::go_errno(&err)
        )),
        Err(_) => Err(format!("dial tcp {address}: i/o timeout")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    #[test]
    fn named_ports_resolve_to_container_ports() {
        let c = Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(81), &c), Ok(81));
        assert_eq!(
            resolve_port(&IntOrString::String("nope".into()), &c),
            Err("couldn't find port: nope in web".into())
        );
    }

    #[test]
    fn timeouts_default_to_one_second() {
        assert_eq!(timeout_of(&Probe::default()), Duration::from_secs(1));
    }
}
