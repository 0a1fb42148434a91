//! Services, endpoints and networking.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::super::descriptions as d;
use super::super::format::{
    age, arr_at, format_label_selector, format_labels, int_at, or, str_at, text,
};
use super::{AGE, Column, NAME, col, name, s, wide};

pub(super) const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string", d::SVC_SPEC_TYPE),
    col("Cluster-IP", "string", d::SVC_SPEC_CLUSTER_IP),
    col("External-IP", "string", d::SVC_SPEC_EXTERNAL_IPS),
    col("Port(s)", "string", d::SVC_SPEC_PORTS),
    AGE,
    wide("Selector", "string", d::SVC_SPEC_SELECTOR),
];

/// IPs or hostnames of load-balancer ingress points, sorted and deduplicated.
fn load_balancer_addresses(o: &Value) -> String {
    let set: BTreeSet<&str> = arr_at(o, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| match str_at(i, "/ip") {
            "" => str_at(i, "/hostname"),
            ip => ip,
        })
        .filter(|a| !a.is_empty())
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn service_external_ip(o: &Value, kind: &str) -> String {
    let external: Vec<String> = arr_at(o, "/spec/externalIPs").iter().map(text).collect();
    match kind {
        "ClusterIP" | "NodePort" => or(&external.join(","), "<none>"),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(o);
            if !external.is_empty() {
                let mut all: Vec<String> = if lb.is_empty() {
                    Vec::new()
                } else {
                    lb.split(',').map(String::from).collect()
                };
                all.extend(external);
                all.join(",")
            } else {
                or(&lb, "<pending>")
            }
        }
        "ExternalName" => str_at(o, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

pub(super) fn service(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let kind = or(str_at(o, "/spec/type"), "ClusterIP");
    let cluster_ip = match o.pointer("/spec/clusterIPs/0").and_then(Value::as_str) {
        Some(ip) => ip,
        None => str_at(o, "/spec/clusterIP"),
    };
    let ports: Vec<String> = arr_at(o, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = or(str_at(p, "/protocol"), "TCP");
            let port = int_at(p, "/port");
            match int_at(p, "/nodePort") {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    vec![
        name(o),
        s(kind.clone()),
        s(or(cluster_ip, "<none>")),
        s(service_external_ip(o, &kind)),
        s(or(&ports.join(","), "<none>")),
        s(age(o, now)),
        s(format_labels(o.pointer("/spec/selector"))),
    ]
}

pub(super) const ENDPOINTS: &[Column] =
    &[NAME, col("Endpoints", "string", d::ENDPOINTS_SUBSETS), AGE];

fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Upstream's `formatEndpoints` (all ports): the first three addresses and "+ N more...".
fn format_endpoints(o: &Value) -> String {
    let subsets = arr_at(o, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for ss in subsets {
        let addresses = arr_at(ss, "/addresses");
        let ports = arr_at(ss, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(a, "/ip").to_string());
            }
            continue;
        }
        for p in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(str_at(a, "/ip"), int_at(p, "/port")));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

pub(super) fn endpoints(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(o), s(format_endpoints(o)), s(age(o, now))]
}

/// Upstream's `listWithMoreString`.
fn list_with_more(items: Vec<String>, max: usize) -> String {
    let count = items.len();
    let joined = items.into_iter().take(max).collect::<Vec<_>>().join(",");
    if count > max {
        format!("{joined} + {} more...", count - max)
    } else {
        or(&joined, "<unset>")
    }
}

pub(super) const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    col("AddressType", "string", d::EPS_ADDRESS_TYPE),
    col("Ports", "string", d::EPS_PORTS),
    col("Endpoints", "string", d::EPS_ENDPOINTS),
    AGE,
];

pub(super) fn endpoint_slice(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let ports: Vec<String> = arr_at(o, "/ports")
        .iter()
        .map(|p| {
            match (
                p.get("port").and_then(Value::as_i64),
                p.get("name").and_then(Value::as_str),
            ) {
                (Some(port), _) => port.to_string(),
                (None, Some(n)) => n.to_string(),
                (None, None) => "*".to_string(),
            }
        })
        .collect();
    let addresses: Vec<String> = arr_at(o, "/endpoints")
        .iter()
        .flat_map(|e| arr_at(e, "/addresses").iter().map(text))
        .collect();
    vec![
        name(o),
        Value::from(str_at(o, "/addressType")),
        s(list_with_more(ports, 3)),
        s(list_with_more(addresses, 3)),
        s(age(o, now)),
    ]
}

pub(super) const INGRESS: &[Column] = &[
    NAME,
    col(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    col(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    col(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    col("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];

pub(super) fn ingress(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let rules = arr_at(o, "/spec/rules");
    const MAX: usize = 3;
    let mut hosts = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = str_at(rule, "/host");
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    let hosts = match (hosts.is_empty(), more) {
        (true, _) => "*".to_string(),
        (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - MAX),
        (false, false) => hosts.join(","),
    };
    let ports = if arr_at(o, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(o),
        s(or(str_at(o, "/spec/ingressClassName"), "<none>")),
        s(hosts),
        s(load_balancer_addresses(o)),
        s(ports),
        s(age(o, now)),
    ]
}

pub(super) const INGRESS_CLASS: &[Column] = &[
    NAME,
    col(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    col(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

pub(super) fn ingress_class(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let parameters = match o.pointer("/spec/parameters").filter(|p| p.is_object()) {
        Some(p) => {
            let group = p
                .get("apiGroup")
                .and_then(Value::as_str)
                .map(|g| format!(".{g}"))
                .unwrap_or_default();
            format!("{}{group}/{}", str_at(p, "/kind"), str_at(p, "/name"))
        }
        None => "<none>".to_string(),
    };
    vec![
        name(o),
        Value::from(str_at(o, "/spec/controller")),
        s(parameters),
        s(age(o, now)),
    ]
}

pub(super) const NETWORK_POLICY: &[Column] = &[
    NAME,
    col("Pod-Selector", "string", d::NETPOL_SPEC_POD_SELECTOR),
    AGE,
];

pub(super) fn network_policy(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    // podSelector is a struct upstream, never nil: a missing one selects everything.
    let selector = o
        .pointer("/spec/podSelector")
        .cloned()
        .unwrap_or_else(|| json!({}));
    vec![
        name(o),
        s(format_label_selector(Some(&selector))),
        s(age(o, now)),
    ]
}
