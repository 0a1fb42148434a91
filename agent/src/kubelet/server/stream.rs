//! exec, attach and port-forward: the request is turned into a CRI Exec,
//! Attach or PortForward call on the in-process runtime, which answers
//! with a one-time streaming URL; the client's HTTP upgrade is then
//! proxied to that URL byte for byte (kubelet's `proxyStream`), so the
//! streaming server negotiates SPDY or WebSocket with the client itself.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;

use super::lookup::{self, PodRef};
use super::proxy;
use super::query::Query;
use super::{Body, text};
use crate::kubelet::Kubelet;

/// The stdio a remote command asks for, as kubelet's
/// `remotecommand.NewOptions` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Attach stdin.
    pub stdin: bool,
    /// Attach stdout.
    pub stdout: bool,
    /// Attach stderr (never with a terminal).
    pub stderr: bool,
    /// Allocate a terminal.
    pub tty: bool,
}

impl StreamOptions {
    /// Reads the options; at least one stream is needed.
    pub fn from_query(query: &Query) -> Result<StreamOptions, String> {
        // The apiserver names them as kubelet reads them (`input`,
        // `output`, `error`); kubectl's own names are accepted too.
        let either = |upstream: &str, kubectl: &str| -> Result<bool, String> {
            Ok(query.flag(upstream)? || query.flag(kubectl)?)
        };
        let tty = query.flag("tty")?;
        let mut options = StreamOptions {
            stdin: either("input", "stdin")?,
            stdout: either("output", "stdout")?,
            stderr: either("error", "stderr")?,
            tty,
        };
        if tty && options.stderr {
            // kubelet drops stderr rather than failing.
            options.stderr = false;
        }
        if !options.stdin && !options.stdout && !options.stderr {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(options)
    }
}

/// `/exec/...` and `/attach/...`.
pub async fn remote_command(
    kubelet: &Kubelet,
    request: Request<Incoming>,
    kind: &str,
    namespace: &str,
    pod: &str,
    uid: Option<&str>,
    container: &str,
) -> Response<Body> {
    let query = Query::parse(request.uri().query());
    let options = match StreamOptions::from_query(&query) {
        Ok(options) => options,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let pod_ref = PodRef {
        namespace,
        name: pod,
        uid,
    };
    let instances = match lookup::containers(&kubelet.cri, pod_ref, container).await {
        Ok(instances) => instances,
        Err(status) => return text(StatusCode::INTERNAL_SERVER_ERROR, status.message()),
    };
    let running = cri::ContainerState::ContainerRunning as i32;
    let Some(target) = instances.iter().find(|c| c.state == running) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("container not found ({container:?})"),
        );
    };
    let answer = if kind == "exec" {
        let request = cri::ExecRequest {
            container_id: target.id.clone(),
            cmd: query.all("command"),
            tty: options.tty,
            stdin: options.stdin,
            stdout: options.stdout,
            stderr: options.stderr,
        };
        RuntimeService::exec(&kubelet.cri, tonic::Request::new(request))
            .await
            .map(|r| r.into_inner().url)
    } else {
        let request = cri::AttachRequest {
            container_id: target.id.clone(),
            stdin: options.stdin,
            tty: options.tty,
            stdout: options.stdout,
            stderr: options.stderr,
        };
        RuntimeService::attach(&kubelet.cri, tonic::Request::new(request))
            .await
            .map(|r| r.into_inner().url)
    };
    match answer {
        Ok(url) => proxy::upgrade(request, &url).await,
        Err(status) => text(StatusCode::INTERNAL_SERVER_ERROR, status.message()),
    }
}

/// `/portForward/{namespace}/{pod}[/{uid}]`: ports come from the `port`
/// query parameters (WebSocket clients) or, with SPDY, from each stream's
/// headers.
pub async fn port_forward(
    kubelet: &Kubelet,
    request: Request<Incoming>,
    namespace: &str,
    pod: &str,
    uid: Option<&str>,
) -> Response<Body> {
    let query = Query::parse(request.uri().query());
    let ports = match ports(&query) {
        Ok(ports) => ports,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let pod_ref = PodRef {
        namespace,
        name: pod,
        uid,
    };
    let sandbox = match lookup::sandbox(&kubelet.cri, pod_ref).await {
        Ok(Some(sandbox)) if sandbox.state == cri::PodSandboxState::SandboxReady as i32 => sandbox,
        Ok(_) => return text(StatusCode::NOT_FOUND, "pod does not exist"),
        Err(status) => return text(StatusCode::INTERNAL_SERVER_ERROR, status.message()),
    };
    let request_cri = cri::PortForwardRequest {
        pod_sandbox_id: sandbox.id,
        port: ports,
    };
    match RuntimeService::port_forward(&kubelet.cri, tonic::Request::new(request_cri)).await {
        Ok(answer) => proxy::upgrade(request, &answer.into_inner().url).await,
        Err(status) => text(StatusCode::INTERNAL_SERVER_ERROR, status.message()),
    }
}

/// The `port` parameters (each may list several, comma-separated).
fn ports(query: &Query) -> Result<Vec<i32>, String> {
    let mut ports = Vec::new();
    for value in query.all("port") {
        for port in value.split(',') {
            let parsed = port
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("unable to parse {value:?} as a port"))?;
            ports.push(i32::from(parsed));
        }
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_options_follow_kubelet() {
        let parse = |q: &str| StreamOptions::from_query(&Query::parse(Some(q)));
        assert_eq!(
            parse("stdin=1&stdout=1&tty=1&stderr=1").unwrap(),
            StreamOptions {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }
        );
        assert_eq!(
            parse("tty=true").unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        assert!(parse("stdout=true&stderr=true").is_ok());
    }

    #[test]
    fn ports_come_from_the_query() {
        let parse = |q: &str| ports(&Query::parse(Some(q)));
        assert_eq!(parse("port=80&port=8080,9090").unwrap(), [80, 8080, 9090]);
        assert_eq!(parse("").unwrap(), Vec::<i32>::new());
        assert!(parse("port=0").is_err());
        assert!(parse("port=http").is_err());
    }
}
