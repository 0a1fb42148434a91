//! Where a node-side request goes, as kube-apiserver's `LogLocation`,
//! `streamLocation`, `PortForwardLocation`, `ResourceLocation` and the
//! node connection-info getter decide it: the kubelet of the pod's node
//! (its InternalIP and `daemonEndpoints.kubeletEndpoint.Port`) for logs,
//! exec, attach and port-forward and `nodes/proxy`; the pod's IP for
//! `pods/proxy`; a ready endpoint for `services/proxy`.

use std::net::IpAddr;

use serde_json::Value;

use crate::apiserver::error::ApiError;
use crate::apiserver::object::meta_str;

/// The kubelet port when a node does not say (`--kubelet-port`).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// Node addresses tried in order (k3s's `--kubelet-preferred-address-types`).
const PREFERRED_ADDRESS_TYPES: [&str; 3] = ["InternalIP", "ExternalIP", "Hostname"];

/// What the request is for: it decides the wording of failures, whether
/// an upgrade is required and how the answer is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `pods/log`: a GET whose answer is streamed as `text/plain`.
    Log,
    /// `exec`, `attach`, `portforward`: an upgrade (WebSocket or SPDY)
    /// passed through.
    Stream,
    /// `proxy`: any request relayed, upgrades too.
    Proxy,
}

/// Where the request is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A kubelet API, over TLS with the apiserver's kubelet client certificate.
    Kubelet {
        /// Its address.
        host: String,
        /// Its port.
        port: u16,
    },
    /// A pod (or a node port other than the kubelet's), over HTTP or HTTPS
    /// without verification, as kube-apiserver's proxy transport.
    Direct {
        /// HTTPS rather than HTTP.
        tls: bool,
        /// The address.
        host: String,
        /// The port.
        port: u16,
    },
}

impl Backend {
    /// `host:port` (IPv6 in brackets).
    pub fn authority(&self) -> String {
        let (host, port) = match self {
            Backend::Kubelet { host, port } | Backend::Direct { host, port, .. } => (host, port),
        };
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Backend::Kubelet { .. } | Backend::Direct { tls: true, .. } => "https",
            Backend::Direct { tls: false, .. } => "http",
        }
    }
}

/// A request to relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What for.
    pub purpose: Purpose,
    /// Where to.
    pub backend: Backend,
    /// The path and query to ask for (`/containerLogs/ns/pod/c?follow=true`).
    pub path_and_query: String,
}

impl Target {
    /// The URL, as Go's errors quote it.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.backend.scheme(),
            self.backend.authority(),
            self.path_and_query
        )
    }
}

/// The outcome of resolving a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Relay to a target.
    Forward(Target),
    /// The logs of a pod without a node: an empty answer, as upstream.
    EmptyLog,
}

/// Reads a core object: `(plural, namespace, name)` → the object, if any.
pub type Getter<'a> = dyn Fn(&str, &str, &str) -> Result<Option<Value>, ApiError> + 'a;

/// Resolves a node-side subresource of `plural/name` in `namespace`;
/// `sub` is `log`, `exec`, `attach`, `portforward`, `proxy` or
/// `proxy/<path>`; `raw_path` is the request's path as sent (for the proxied
/// path) and `pairs` its query.
pub fn plan(
    get: &Getter<'_>,
    plural: &str,
    namespace: &str,
    name: &str,
    sub: &str,
    raw_path: &str,
    pairs: &[(String, String)],
) -> Result<Plan, ApiError> {
    match (plural, sub) {
        ("pods", "log") => pod_log(get, namespace, name, pairs),
        ("pods", "exec" | "attach") => pod_stream(get, namespace, name, sub, pairs),
        ("pods", "portforward") => pod_port_forward(get, namespace, name, pairs),
        ("pods", _) => pod_proxy(get, namespace, name, raw_path, pairs),
        ("nodes", _) => node_proxy(get, name, raw_path, pairs),
        ("services", _) => service_proxy(get, namespace, name, raw_path, pairs),
        _ => Err(ApiError::no_resource()),
    }
}

/// Whether `sub` of `plural` is served by relaying to a node.
pub fn is_node_side(plural: &str, sub: &str) -> bool {
    let proxy = sub == "proxy" || sub.starts_with("proxy/");
    match plural {
        "pods" => proxy || matches!(sub, "log" | "exec" | "attach" | "portforward"),
        "nodes" | "services" => proxy,
        _ => false,
    }
}

fn pod_log(
    get: &Getter<'_>,
    namespace: &str,
    name: &str,
    pairs: &[(String, String)],
) -> Result<Plan, ApiError> {
    let pod = get_pod(get, namespace, name)?;
    let container = container_for(&pod, last(pairs, "container").unwrap_or(""))?;
    let query = log_query(name, pairs)?;
    let Some(backend) = kubelet_of(get, &pod)? else {
        return Ok(Plan::EmptyLog);
    };
    Ok(Plan::Forward(Target {
        purpose: Purpose::Log,
        backend,
        path_and_query: with_query(
            format!("/containerLogs/{namespace}/{name}/{container}"),
            &query,
        ),
    }))
}

fn pod_stream(
    get: &Getter<'_>,
    namespace: &str,
    name: &str,
    sub: &str,
    pairs: &[(String, String)],
) -> Result<Plan, ApiError> {
    let pod = get_pod(get, namespace, name)?;
    let container = container_for(&pod, last(pairs, "container").unwrap_or(""))?;
    let backend = kubelet_of(get, &pod)?.ok_or_else(|| no_host(name))?;
    let mut params = Vec::new();
    for (asked, sent) in [
        ("stdin", "input"),
        ("stdout", "output"),
        ("stderr", "error"),
        ("tty", "tty"),
    ] {
        if flag(pairs, asked) {
            params.push((sent.to_owned(), "1".to_owned()));
        }
    }
    if sub == "exec" {
        params.extend(
            pairs
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| ("command".to_owned(), v.clone())),
        );
    }
    Ok(Plan::Forward(Target {
        purpose: Purpose::Stream,
        backend,
        path_and_query: with_query(format!("/{sub}/{namespace}/{name}/{container}"), &params),
    }))
}

fn pod_port_forward(
    get: &Getter<'_>,
    namespace: &str,
    name: &str,
    pairs: &[(String, String)],
) -> Result<Plan, ApiError> {
    let pod = get_pod(get, namespace, name)?;
    let backend = kubelet_of(get, &pod)?.ok_or_else(|| no_host(name))?;
    let ports: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "ports")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut params = Vec::new();
    if !ports.is_empty() {
        params.push(("port".to_owned(), ports.join(",")));
    }
    Ok(Plan::Forward(Target {
        purpose: Purpose::Stream,
        backend,
        path_and_query: with_query(format!("/portForward/{namespace}/{name}"), &params),
    }))
}

fn pod_proxy(
    get: &Getter<'_>,
    namespace: &str,
    id: &str,
    raw_path: &str,
    pairs: &[(String, String)],
) -> Result<Plan, ApiError> {
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid pod request {id:?}")))?;
    let pod = get_pod(get, namespace, name)?;
    let mut port = port.to_owned();
    if port.is_empty() {
        port = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c["ports"][0]["containerPort"].as_u64())
            .map(|p| p.to_string())
            .unwrap_or_default();
    }
    let ip = pod["status"]["podIPs"][0]["ip"].as_str().unwrap_or("");
    let global = ip.parse::<IpAddr>().is_ok_and(|ip| is_global_unicast(&ip));
    if !global {
        return Err(ApiError::bad_request("address not allowed"));
    }
    let tls = scheme == "https";
    Ok(Plan::Forward(Target {
        purpose: Purpose::Proxy,
        backend: Backend::Direct {
            tls,
            host: ip.to_owned(),
            port: port_number(&port, tls)?,
        },
        path_and_query: proxied_path(raw_path, pairs),
    }))
}

fn node_proxy(
    get: &Getter<'_>,
    id: &str,
    raw_path: &str,
    pairs: &[(String, String)],
) -> Result<Plan, ApiError> {
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid node request {id:?}")))?;
    let node = get("nodes", "", name)?.ok_or_else(|| ApiError::not_found("", "nodes", name))?;
    let (host, kubelet_port) = node_address(&node)?;
    let backend = if port.is_empty() || port == kubelet_port.to_string() {
        Backend::Kubelet {
            host,
            port: kubelet_port,
        }
    } else {
        let tls = scheme == "https";
        Backend::Direct {
            tls,
            host,
            port: port_number(port, tls)?,
        }
    };
    Ok(Plan::Forward(Target {
        purpose: Purpose::Proxy,
        backend,
        path_and_query: proxied_path(raw_path, pairs),
    }))
}

fn service_proxy(
    get: &Getter<'_>,
    namespace: &str,
    id: &str,
    raw_path: &str,
    pairs: &[(String, String)],
) -> Result<Plan, ApiError> {
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid service request {id:?}")))?;
    let service = get("services", namespace, name)?
        .ok_or_else(|| ApiError::not_found("", "services", name))?;
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let service_port = ports
        .iter()
        .find(|p| {
            (port.is_empty() && ports.len() == 1)
                || p["name"].as_str() == Some(port)
                || p["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(port)
        })
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "no service port {port:?} found for service {name:?}"
            ))
        })?;
    let port_name = service_port["name"].as_str().unwrap_or("");
    let endpoints = get("endpoints", namespace, name)?;
    let unavailable =
        || ApiError::unavailable(format!("no endpoints available for service {id:?}"));
    let endpoints = endpoints.ok_or_else(unavailable)?;
    for subset in endpoints["subsets"].as_array().into_iter().flatten() {
        let Some(endpoint_port) = subset["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or("") == port_name)
            .and_then(|p| p["port"].as_u64())
        else {
            continue;
        };
        let Some(ip) = subset["addresses"][0]["ip"].as_str() else {
            continue;
        };
        let tls = scheme == "https";
        return Ok(Plan::Forward(Target {
            purpose: Purpose::Proxy,
            backend: Backend::Direct {
                tls,
                host: ip.to_owned(),
                port: u16::try_from(endpoint_port).map_err(|_| unavailable())?,
            },
            path_and_query: proxied_path(raw_path, pairs),
        }));
    }
    Err(unavailable())
}

fn get_pod(get: &Getter<'_>, namespace: &str, name: &str) -> Result<Value, ApiError> {
    get("pods", namespace, name)?.ok_or_else(|| ApiError::not_found("", "pods", name))
}

fn no_host(name: &str) -> ApiError {
    ApiError::bad_request(format!("pod {name} does not have a host assigned"))
}

/// The kubelet of the pod's node; `None` when the pod has no node yet.
fn kubelet_of(get: &Getter<'_>, pod: &Value) -> Result<Option<Backend>, ApiError> {
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or("");
    if node_name.is_empty() {
        return Ok(None);
    }
    let node =
        get("nodes", "", node_name)?.ok_or_else(|| ApiError::not_found("", "nodes", node_name))?;
    let (host, port) = node_address(&node)?;
    Ok(Some(Backend::Kubelet { host, port }))
}

/// A node's kubelet address: the first of its addresses by preferred
/// type, and the port it reports.
pub fn node_address(node: &Value) -> Result<(String, u16), ApiError> {
    let addresses = node["status"]["addresses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let host = PREFERRED_ADDRESS_TYPES
        .iter()
        .find_map(|kind| {
            addresses
                .iter()
                .find(|a| a["type"].as_str() == Some(kind))
                .and_then(|a| a["address"].as_str())
                .filter(|a| !a.is_empty())
        })
        .ok_or_else(|| {
            let known: Vec<String> = addresses
                .iter()
                .map(|a| {
                    format!(
                        "{{{} {}}}",
                        a["type"].as_str().unwrap_or(""),
                        a["address"].as_str().unwrap_or("")
                    )
                })
                .collect();
            ApiError::unknown(
                hyper::StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "no preferred addresses found; known addresses: [{}]",
                    known.join(" ")
                ),
            )
        })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok((host.to_owned(), port))
}

/// The container a request means: the one asked for (it must exist), or
/// the only one; kube-apiserver's `validateContainer`.
pub fn container_for(pod: &Value, asked: &str) -> Result<String, ApiError> {
    let name = meta_str(pod, "name");
    let containers = |key: &str| -> Vec<String> {
        pod["spec"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let all: Vec<String> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|key| containers(key))
        .collect();
    if !asked.is_empty() {
        if all.iter().any(|c| c == asked) {
            return Ok(asked.to_owned());
        }
        return Err(ApiError::bad_request(format!(
            "container {asked} is not valid for pod {name}"
        )));
    }
    match containers("containers").as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            all.join(" ")
        ))),
    }
}

/// The kubelet's log parameters from `PodLogOptions`, checked as
/// kube-apiserver checks them.
fn log_query(name: &str, pairs: &[(String, String)]) -> Result<Vec<(String, String)>, ApiError> {
    let number = |key: &str| -> Result<Option<i64>, ApiError> {
        last(pairs, key)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "strconv.ParseInt: parsing {v:?}: invalid syntax"
                    ))
                })
            })
            .transpose()
    };
    let (tail, limit, since) = (
        number("tailLines")?,
        number("limitBytes")?,
        number("sinceSeconds")?,
    );
    let since_time = last(pairs, "sinceTime")
        .filter(|v| !v.is_empty())
        .map(|v| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map(|t| crate::apiserver::object::timestamp(t.to_offset(time::UtcOffset::UTC)))
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "parsing time {v:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse {v:?} as \"2006\""
                    ))
                })
        })
        .transpose()?;
    let mut causes = Vec::new();
    if let Some(tail) = tail.filter(|t| *t < 0) {
        causes.push((
            "tailLines",
            format!("Invalid value: {tail}: must be greater than or equal to 0"),
        ));
    }
    if let Some(limit) = limit.filter(|l| *l < 1) {
        causes.push((
            "limitBytes",
            format!("Invalid value: {limit}: must be greater than 0"),
        ));
    }
    if since.is_some() && since_time.is_some() {
        causes.push((
            "",
            "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified".to_owned(),
        ));
    } else if let Some(since) = since.filter(|s| *s < 1) {
        causes.push((
            "sinceSeconds",
            format!("Invalid value: {since}: must be greater than 0"),
        ));
    }
    if !causes.is_empty() {
        let causes: Vec<crate::apiserver::validation::Cause> = causes
            .into_iter()
            .map(|(field, message)| crate::apiserver::validation::Cause {
                reason: if message.starts_with("Forbidden") {
                    crate::apiserver::validation::CauseReason::Forbidden
                } else {
                    crate::apiserver::validation::CauseReason::Invalid
                },
                field: field.to_owned(),
                message,
            })
            .collect();
        let message = crate::apiserver::validation::invalid_message("PodLogOptions", name, &causes);
        let causes: Vec<_> = causes
            .iter()
            .map(|c| crate::apiserver::error::StatusCause {
                reason: c.reason.as_str().to_owned(),
                message: c.message.clone(),
                field: c.field.clone(),
            })
            .collect();
        return Err(ApiError::invalid(
            "",
            "PodLogOptions",
            name,
            message,
            &causes,
        ));
    }
    let mut params = Vec::new();
    for key in ["follow", "previous", "timestamps"] {
        if flag(pairs, key) {
            params.push((key.to_owned(), "true".to_owned()));
        }
    }
    if let Some(since) = since {
        params.push(("sinceSeconds".to_owned(), since.to_string()));
    }
    if let Some(since_time) = since_time {
        params.push(("sinceTime".to_owned(), since_time));
    }
    if let Some(tail) = tail {
        params.push(("tailLines".to_owned(), tail.to_string()));
    }
    if let Some(limit) = limit {
        params.push(("limitBytes".to_owned(), limit.to_string()));
    }
    Ok(params)
}

/// The path after `/proxy` (with its trailing slash), "/" for none, and
/// the client's query.
fn proxied_path(raw_path: &str, pairs: &[(String, String)]) -> String {
    let rest = raw_path
        .find("/proxy")
        .map(|i| &raw_path[i + "/proxy".len()..])
        .unwrap_or("");
    let mut path = if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    };
    if !pairs.is_empty() {
        path.push('?');
        path.push_str(
            &pairs
                .iter()
                .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
                .collect::<Vec<_>>()
                .join("&"),
        );
    }
    path
}

/// `path?query` with the query as Go's `url.Values.Encode` writes it
/// (keys sorted, values in order); no `?` when empty.
fn with_query(path: String, params: &[(String, String)]) -> String {
    if params.is_empty() {
        return path;
    }
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let query: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// The last value of `key`.
fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A boolean option: present and not `0`/`false` (Kubernetes' query
/// conversion).
fn flag(pairs: &[(String, String)], key: &str) -> bool {
    last(pairs, key).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// `name`, `name:port` or `scheme:name:port`, scheme `http`, `https` or "".
fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

fn port_number(port: &str, tls: bool) -> Result<u16, ApiError> {
    if port.is_empty() {
        return Ok(if tls { 443 } else { 80 });
    }
    port.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid port {port:?}")))
}

/// Go's `IP.IsGlobalUnicast`: not unspecified, loopback, multicast,
/// link-local or broadcast.
fn is_global_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn pod(containers: &[&str], node: &str) -> Value {
        json!({
            "metadata": { "name": "web", "namespace": "team", "uid": "u" },
            "spec": {
                "nodeName": node,
                "initContainers": [{ "name": "setup" }],
                "containers": containers.iter().map(|c| json!({ "name": c, "ports": [{ "containerPort": 8080 }] })).collect::<Vec<_>>(),
            },
            "status": { "podIPs": [{ "ip": "10.42.0.7" }] },
        })
    }

    fn node(port: u64) -> Value {
        json!({
            "metadata": { "name": "n1" },
            "status": {
                "addresses": [{ "type": "Hostname", "address": "n1" }, { "type": "InternalIP", "address": "192.168.1.5" }],
                "daemonEndpoints": { "kubeletEndpoint": { "Port": port } },
            },
        })
    }

    fn store(
        objects: Vec<(&'static str, &'static str, Value)>,
    ) -> HashMap<(String, String, String), Value> {
        objects
            .into_iter()
            .map(|(plural, ns, obj)| {
                (
                    (
                        plural.to_owned(),
                        ns.to_owned(),
                        meta_str(&obj, "name").to_owned(),
                    ),
                    obj,
                )
            })
            .collect()
    }

    fn resolve(
        objects: &HashMap<(String, String, String), Value>,
        plural: &str,
        name: &str,
        sub: &str,
        query: &str,
    ) -> Result<Plan, ApiError> {
        let get = |p: &str, ns: &str, n: &str| -> Result<Option<Value>, ApiError> {
            Ok(objects
                .get(&(p.to_owned(), ns.to_owned(), n.to_owned()))
                .cloned())
        };
        let namespace = if plural == "nodes" { "" } else { "team" };
        let raw_path = format!("/api/v1/namespaces/{namespace}/{plural}/{name}/{sub}");
        let pairs = crate::apiserver::request::Query::pairs(Some(query));
        plan(&get, plural, namespace, name, sub, &raw_path, &pairs)
    }

    fn forward(plan: Result<Plan, ApiError>) -> Target {
        match plan {
            Ok(Plan::Forward(target)) => target,
            other => panic!("not forwarded: {other:?}"),
        }
    }

    #[test]
    fn logs_go_to_the_kubelet_of_the_pods_node_with_upstreams_parameters() {
        let objects = store(vec![
            ("pods", "team", pod(&["app"], "n1")),
            ("nodes", "", node(10250)),
        ]);
        let target = forward(resolve(
            &objects,
            "pods",
            "web",
            "log",
            "follow=true&tailLines=10&timestamps=true&sinceTime=2026-01-01T01:00:00%2B01:00&limitBytes=500&container=",
        ));
        assert_eq!(target.purpose, Purpose::Log);
        assert_eq!(
            target.url(),
            "https://192.168.1.5:10250/containerLogs/team/web/app?follow=true&limitBytes=500&sinceTime=2026-01-01T00%3A00%3A00Z&tailLines=10&timestamps=true"
        );
    }

    #[test]
    fn a_pod_without_a_node_has_empty_logs_but_no_exec() {
        let objects = store(vec![("pods", "team", pod(&["app"], ""))]);
        assert_eq!(
            resolve(&objects, "pods", "web", "log", ""),
            Ok(Plan::EmptyLog)
        );
        let err = resolve(&objects, "pods", "web", "exec", "command=sh").unwrap_err();
        assert_eq!(
            (err.code.as_u16(), err.message.as_str()),
            (400, "pod web does not have a host assigned")
        );
        let err = resolve(&objects, "pods", "gone", "log", "").unwrap_err();
        assert_eq!(err.message, "pods \"gone\" not found");
    }

    #[test]
    fn the_container_is_the_only_one_or_must_be_named() {
        let objects = store(vec![
            ("pods", "team", pod(&["a", "b"], "n1")),
            ("nodes", "", node(0)),
        ]);
        let err = resolve(&objects, "pods", "web", "log", "").unwrap_err();
        assert_eq!(
            (err.code.as_u16(), err.reason, err.message.as_str()),
            (
                400,
                "BadRequest",
                "a container name must be specified for pod web, choose one of: [setup a b]"
            )
        );
        let err = resolve(&objects, "pods", "web", "exec", "container=c").unwrap_err();
        assert_eq!(err.message, "container c is not valid for pod web");
        let target = forward(resolve(&objects, "pods", "web", "log", "container=setup"));
        assert_eq!(
            target.url(),
            "https://192.168.1.5:10250/containerLogs/team/web/setup"
        );
    }

    #[test]
    fn exec_attach_and_port_forward_carry_kubelets_stream_parameters() {
        let objects = store(vec![
            ("pods", "team", pod(&["app"], "n1")),
            ("nodes", "", node(12345)),
        ]);
        let target = forward(resolve(
            &objects,
            "pods",
            "web",
            "exec",
            "command=sh&command=-c&command=echo+a%26b&stdin=true&stdout=true&stderr=false&tty=true",
        ));
        assert_eq!(target.purpose, Purpose::Stream);
        assert_eq!(
            target.url(),
            "https://192.168.1.5:12345/exec/team/web/app?command=sh&command=-c&command=echo+a%26b&input=1&output=1&tty=1"
        );
        let target = forward(resolve(
            &objects,
            "pods",
            "web",
            "attach",
            "stdout=1&stderr=1",
        ));
        assert_eq!(
            target.path_and_query,
            "/attach/team/web/app?error=1&output=1"
        );
        let target = forward(resolve(&objects, "pods", "web", "portforward", ""));
        assert_eq!(target.path_and_query, "/portForward/team/web");
        let target = forward(resolve(
            &objects,
            "pods",
            "web",
            "portforward",
            "ports=80&ports=443",
        ));
        assert_eq!(target.path_and_query, "/portForward/team/web?port=80%2C443");
    }

    #[test]
    fn log_options_are_validated_as_upstream() {
        let objects = store(vec![
            ("pods", "team", pod(&["app"], "n1")),
            ("nodes", "", node(0)),
        ]);
        let err = resolve(&objects, "pods", "web", "log", "tailLines=-1").unwrap_err();
        assert_eq!(err.code.as_u16(), 422);
        assert_eq!(
            err.message,
            "PodLogOptions \"web\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        let err = resolve(
            &objects,
            "pods",
            "web",
            "log",
            "sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z",
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("at most one of `sinceTime` or `sinceSeconds`")
        );
        let err = resolve(&objects, "pods", "web", "log", "tailLines=x").unwrap_err();
        assert_eq!(err.code.as_u16(), 400);
    }

    #[test]
    fn pod_proxies_go_to_the_pod_ip_and_node_proxies_to_the_kubelet() {
        let objects = store(vec![
            ("pods", "team", pod(&["app"], "n1")),
            ("nodes", "", node(10250)),
        ]);
        let target = forward(resolve(&objects, "pods", "web", "proxy/healthz/", "a=b"));
        assert_eq!(target.url(), "http://10.42.0.7:8080/healthz/?a=b");
        let target = forward(resolve(&objects, "pods", "https:web:8443", "proxy", ""));
        assert_eq!(target.url(), "https://10.42.0.7:8443/");
        let err = resolve(&objects, "pods", "ftp:web:21", "proxy", "").unwrap_err();
        assert_eq!(err.message, "invalid pod request \"ftp:web:21\"");
        let target = forward(resolve(&objects, "nodes", "n1", "proxy/stats/summary", ""));
        assert_eq!(
            target.backend,
            Backend::Kubelet {
                host: "192.168.1.5".into(),
                port: 10250
            }
        );
        assert_eq!(target.path_and_query, "/stats/summary");
        let target = forward(resolve(&objects, "nodes", "n1:9100", "proxy/metrics", ""));
        assert_eq!(target.url(), "http://192.168.1.5:9100/metrics");
    }

    #[test]
    fn a_pod_without_an_ip_cannot_be_proxied() {
        let mut pending = pod(&["app"], "");
        pending["status"] = json!({});
        let objects = store(vec![("pods", "team", pending)]);
        let err = resolve(&objects, "pods", "web", "proxy", "").unwrap_err();
        assert_eq!(err.message, "address not allowed");
    }

    #[test]
    fn nodes_without_addresses_say_which_they_have() {
        let err = node_address(&json!({ "status": { "addresses": [{ "type": "InternalDNS", "address": "n1.local" }] } })).unwrap_err();
        assert_eq!(
            err.message,
            "no preferred addresses found; known addresses: [{InternalDNS n1.local}]"
        );
        assert_eq!(err.status().get("reason"), None);
    }

    #[test]
    fn service_proxies_pick_an_endpoint_of_the_named_port() {
        let service = json!({ "metadata": { "name": "api" }, "spec": { "ports": [{ "name": "http", "port": 80 }, { "name": "grpc", "port": 9000 }] } });
        let endpoints = json!({ "metadata": { "name": "api" }, "subsets": [{ "addresses": [{ "ip": "10.42.0.9" }], "ports": [{ "name": "http", "port": 8080 }, { "name": "grpc", "port": 9090 }] }] });
        let objects = store(vec![
            ("services", "team", service),
            ("endpoints", "team", endpoints),
        ]);
        let target = forward(resolve(&objects, "services", "api:grpc", "proxy/x", ""));
        assert_eq!(target.url(), "http://10.42.0.9:9090/x");
        let err = resolve(&objects, "services", "api", "proxy", "").unwrap_err();
        assert_eq!(
            err.message,
            "no service port \"\" found for service \"api\""
        );
    }

    #[test]
    fn node_side_subresources_are_recognised() {
        assert!(is_node_side("pods", "log"));
        assert!(is_node_side("pods", "proxy/a/b"));
        assert!(is_node_side("nodes", "proxy"));
        assert!(!is_node_side("nodes", "status"));
        assert!(!is_node_side("pods", "binding"));
    }
}
