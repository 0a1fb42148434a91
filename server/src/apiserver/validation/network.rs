//! Services, Endpoints, EndpointSlices, Ingresses and NetworkPolicies.

use std::collections::BTreeSet;

use serde_json::Value;

use super::cause::{
    Errs, child, duplicate, field, forbidden, go_quote, go_string_slice, index, int, invalid, list,
    not_supported, opt_s, required, s, strings, too_many,
};
use super::containers::{port_num_or_name, protocol};
use super::meta::{label_selector, labels};
use super::names::{
    cidr_error, dns1035_label, dns1123_label, dns1123_subdomain, ip_error, port_name, port_num,
    qualified_name, wildcard_dns1123_subdomain,
};

const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

fn cluster_ips(spec: &Value) -> Vec<&str> {
    let ips = strings(spec.get("clusterIPs"));
    if ips.is_empty() {
        opt_s(spec, "clusterIP")
            .filter(|ip| !ip.is_empty())
            .into_iter()
            .collect()
    } else {
        ips
    }
}

fn is_headless(spec: &Value) -> bool {
    cluster_ips(spec) == ["None"]
}

/// A core/v1 Service (create, or update when `old` is given).
pub(super) fn service(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let kind = opt_s(spec, "type").unwrap_or("ClusterIP");
    let headless = is_headless(spec);
    let ports = list(spec, "ports");
    if ports.is_empty() && !headless && kind != "ExternalName" {
        required(errs, "spec.ports", "");
    }
    match kind {
        "LoadBalancer" | "NodePort" if headless => {
            invalid(
                errs,
                "spec.clusterIPs[0]",
                "\"None\"",
                &format!("may not be set to 'None' for {kind} services"),
            );
        }
        "ExternalName" => {
            if !cluster_ips(spec).is_empty() {
                forbidden(
                    errs,
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                );
            }
            if !list(spec, "ipFamilies").is_empty() {
                forbidden(
                    errs,
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                );
            }
            if field(spec, "ipFamilyPolicy").is_some() {
                forbidden(
                    errs,
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                );
            }
            let cname = s(spec, "externalName").trim_end_matches('.');
            if cname.is_empty() {
                required(errs, "spec.externalName", "");
            } else {
                for msg in dns1123_subdomain(cname) {
                    invalid(errs, "spec.externalName", go_quote(cname), &msg);
                }
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        service_port(
            port,
            ports.len() > 1,
            &mut names,
            &index("spec.ports", i),
            errs,
        );
    }
    if field(spec, "selector").is_some() {
        labels(spec.get("selector"), "spec.selector", errs);
    }
    if let Some(affinity) = opt_s(spec, "sessionAffinity") {
        match affinity {
            "ClientIP" | "None" => {}
            "" => required(errs, "spec.sessionAffinity", ""),
            other => not_supported(
                errs,
                "spec.sessionAffinity",
                go_quote(other),
                &["ClientIP", "None"],
            ),
        }
    }
    if kind != "ExternalName" {
        cluster_ip_fields(spec, errs);
    }
    for (i, ip) in strings(spec.get("externalIPs")).iter().enumerate() {
        if let Some(msg) = ip_error(ip) {
            invalid(errs, &index("spec.externalIPs", i), go_quote(ip), msg);
        }
    }
    match kind {
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName" => {}
        "" => required(errs, "spec.type", ""),
        other => not_supported(
            errs,
            "spec.type",
            go_quote(other),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ),
    }
    node_ports(kind, ports, errs);
    if !list(spec, "loadBalancerSourceRanges").is_empty() {
        if kind != "LoadBalancer" {
            forbidden(
                errs,
                "spec.LoadBalancerSourceRanges",
                "may only be used when `type` is 'LoadBalancer'",
            );
        }
        for (i, range) in strings(spec.get("loadBalancerSourceRanges"))
            .iter()
            .enumerate()
        {
            if let Some(msg) = cidr_error(range.trim()) {
                invalid(
                    errs,
                    &index("spec.LoadBalancerSourceRanges", i),
                    go_quote(range.trim()),
                    msg,
                );
            }
        }
    }
    if field(spec, "allocateLoadBalancerNodePorts").is_some() && kind != "LoadBalancer" {
        forbidden(
            errs,
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        );
    }
    if field(spec, "loadBalancerClass").is_some() && kind != "LoadBalancer" {
        forbidden(
            errs,
            "spec.loadBalancerClass",
            "may only be used when `type` is 'LoadBalancer'",
        );
    }
    if let Some(policy) = opt_s(spec, "internalTrafficPolicy")
        && !matches!(policy, "Cluster" | "Local")
    {
        not_supported(
            errs,
            "spec.internalTrafficPolicy",
            go_quote(policy),
            &["Cluster", "Local"],
        );
    }
    if let Some(policy) = opt_s(spec, "externalTrafficPolicy").filter(|p| !p.is_empty())
        && !matches!(policy, "Cluster" | "Local")
    {
        not_supported(
            errs,
            "spec.externalTrafficPolicy",
            go_quote(policy),
            &["Cluster", "Local"],
        );
    }
    if let Some(old) = old {
        cluster_ips_update(spec, old.get("spec").unwrap_or(&Value::Null), errs);
    }
}

fn service_port<'a>(
    port: &'a Value,
    require_name: bool,
    names: &mut BTreeSet<&'a str>,
    p: &str,
    errs: &mut Errs,
) {
    let name = s(port, "name");
    let name_path = child(p, "name");
    if require_name && name.is_empty() {
        required(errs, &name_path, "");
    } else if !name.is_empty() {
        for msg in dns1123_label(name) {
            invalid(errs, &name_path, go_quote(name), &msg);
        }
        if !names.insert(name) {
            duplicate(errs, &name_path, go_quote(name));
        }
    }
    let number = int(port, "port").unwrap_or(0);
    for msg in port_num(number) {
        invalid(errs, &child(p, "port"), number.to_string(), &msg);
    }
    protocol(port, p, errs);
    if let Some(target) = field(port, "targetPort") {
        port_num_or_name(Some(target), &child(p, "targetPort"), errs);
    }
    if let Some(app) = opt_s(port, "appProtocol") {
        for msg in qualified_name(app) {
            invalid(errs, &child(p, "appProtocol"), go_quote(app), &msg);
        }
    }
}

fn go_service_port(port: &Value) -> String {
    // Upstream reports the (protocol, port) key, a ServicePort with only those set.
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(opt_s(port, "protocol").unwrap_or("TCP")),
        int(port, "port").unwrap_or(0)
    )
}

fn node_ports(kind: &str, ports: &[Value], errs: &mut Errs) {
    let mut node_ports = BTreeSet::new();
    let mut port_keys = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let proto = opt_s(port, "protocol").unwrap_or("TCP");
        if let Some(node_port) = int(port, "nodePort").filter(|n| *n != 0) {
            if kind == "ClusterIP" {
                forbidden(
                    errs,
                    &child(&p, "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                );
            } else if !NODE_PORTS.contains(&node_port) {
                invalid(
                    errs,
                    &child(&p, "nodePort"),
                    node_port.to_string(),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                );
            }
            if !node_ports.insert((proto, node_port)) {
                duplicate(errs, &child(&p, "nodePort"), node_port.to_string());
            }
        }
        if !port_keys.insert((proto, int(port, "port").unwrap_or(0))) {
            duplicate(errs, &p, go_service_port(port));
        }
    }
}

fn cluster_ip_fields(spec: &Value, errs: &mut Errs) {
    let ip = s(spec, "clusterIP");
    let ips = strings(spec.get("clusterIPs"));
    if !ip.is_empty() && !ips.is_empty() && ips[0] != ip {
        invalid(
            errs,
            "spec.clusterIPs",
            go_string_slice(spec.get("clusterIPs")),
            "first value must match `clusterIP`",
        );
    }
    if ip.is_empty() && !ips.is_empty() {
        invalid(
            errs,
            "spec.clusterIPs",
            go_string_slice(spec.get("clusterIPs")),
            "must be empty when `clusterIP` is not specified",
        );
    }
    for (i, family) in strings(spec.get("ipFamilies")).iter().enumerate() {
        if !matches!(*family, "IPv4" | "IPv6") {
            not_supported(
                errs,
                &index("spec.ipFamilies", i),
                go_quote(family),
                &["IPv4", "IPv6"],
            );
        }
    }
    if let Some(policy) = opt_s(spec, "ipFamilyPolicy")
        && !matches!(
            policy,
            "SingleStack" | "PreferDualStack" | "RequireDualStack"
        )
    {
        not_supported(
            errs,
            "spec.ipFamilyPolicy",
            go_quote(policy),
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        );
    }
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && *ip == "None" {
            if ips.len() > 1 {
                invalid(
                    errs,
                    "spec.clusterIPs",
                    go_string_slice(spec.get("clusterIPs")),
                    "'None' must be the first and only value",
                );
            }
            continue;
        }
        if let Some(msg) = ip_error(ip) {
            invalid(errs, &index("spec.clusterIPs", i), go_quote(ip), msg);
        }
    }
    if ips.len() > 2 {
        invalid(
            errs,
            "spec.clusterIPs",
            go_string_slice(spec.get("clusterIPs")),
            "may only hold up to 2 values",
        );
    }
}

fn cluster_ips_update(spec: &Value, old: &Value, errs: &mut Errs) {
    if s(spec, "type") == "ExternalName" || s(old, "type") == "ExternalName" {
        return;
    }
    if is_headless(spec) && is_headless(old) {
        return;
    }
    let new_ips = cluster_ips(spec);
    let old_ips = cluster_ips(old);
    // An update that leaves the address out keeps the allocated one.
    if new_ips.is_empty() || old_ips.is_empty() {
        return;
    }
    let rendered = go_string_slice(Some(&Value::from(new_ips.clone())));
    if new_ips.len() == old_ips.len() {
        for (i, (n, o)) in new_ips.iter().zip(&old_ips).enumerate() {
            if n != o {
                invalid(
                    errs,
                    &index("spec.clusterIPs", i),
                    &rendered,
                    "may not change once set",
                );
            }
        }
    } else if new_ips[0] != old_ips[0] {
        invalid(
            errs,
            "spec.clusterIPs[0]",
            &rendered,
            "may not change once set",
        );
    }
}

/// core/v1 Endpoints.
pub(super) fn endpoints(obj: &Value, errs: &mut Errs) {
    for (i, subset) in list(obj, "subsets").iter().enumerate() {
        let p = index("subsets", i);
        if list(subset, "addresses").is_empty() && list(subset, "notReadyAddresses").is_empty() {
            required(errs, &p, "must specify `addresses` or `notReadyAddresses`");
        }
        for kind in ["addresses", "notReadyAddresses"] {
            for (j, address) in list(subset, kind).iter().enumerate() {
                let ap = index(&child(&p, kind), j);
                let ip = s(address, "ip");
                if let Some(msg) = ip_error(ip) {
                    invalid(errs, &child(&ap, "ip"), go_quote(ip), msg);
                }
                let hostname = s(address, "hostname");
                if !hostname.is_empty() {
                    for msg in dns1123_label(hostname) {
                        invalid(errs, &child(&ap, "hostname"), go_quote(hostname), &msg);
                    }
                }
            }
        }
        let ports = list(subset, "ports");
        for (j, port) in ports.iter().enumerate() {
            endpoint_port(port, ports.len() > 1, &index(&child(&p, "ports"), j), errs);
        }
    }
}

fn endpoint_port(port: &Value, require_name: bool, p: &str, errs: &mut Errs) {
    let name = s(port, "name");
    if require_name && name.is_empty() {
        required(errs, &child(p, "name"), "");
    } else if !name.is_empty() {
        for msg in dns1123_label(name) {
            invalid(errs, &child(p, "name"), go_quote(name), &msg);
        }
    }
    let number = int(port, "port").unwrap_or(0);
    for msg in port_num(number) {
        invalid(errs, &child(p, "port"), number.to_string(), &msg);
    }
    protocol(port, p, errs);
}

/// discovery.k8s.io/v1 EndpointSlice.
pub(super) fn endpoint_slice(obj: &Value, errs: &mut Errs) {
    let address_type = s(obj, "addressType");
    match address_type {
        "" => required(errs, "addressType", ""),
        "IPv4" | "IPv6" | "FQDN" => {}
        other => not_supported(
            errs,
            "addressType",
            go_quote(other),
            &["FQDN", "IPv4", "IPv6"],
        ),
    }
    let endpoints = list(obj, "endpoints");
    if endpoints.len() > 1000 {
        too_many(errs, "endpoints", endpoints.len(), 1000);
    }
    for (i, endpoint) in endpoints.iter().enumerate() {
        let p = child(&index("endpoints", i), "addresses");
        let addresses = strings(endpoint.get("addresses"));
        if addresses.is_empty() {
            required(errs, &p, "must contain at least 1 address");
        } else if addresses.len() > 100 {
            too_many(errs, &p, addresses.len(), 100);
        }
        for (j, address) in addresses.iter().enumerate() {
            let ap = index(&p, j);
            match address_type {
                "IPv4" if address.parse::<std::net::Ipv4Addr>().is_err() => {
                    invalid(errs, &ap, go_quote(address), "must be a valid IPv4 address");
                }
                "IPv6" if address.parse::<std::net::Ipv6Addr>().is_err() => {
                    invalid(errs, &ap, go_quote(address), "must be a valid IPv6 address");
                }
                "FQDN" => {
                    let name = address.trim_end_matches('.');
                    let msgs = dns1123_subdomain(name);
                    if !msgs.is_empty() {
                        invalid(errs, &ap, go_quote(name), &msgs.join(","));
                    }
                }
                _ => {}
            }
        }
    }
    let ports = list(obj, "ports");
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("ports", i);
        let name = s(port, "name");
        if !name.is_empty() {
            for msg in dns1123_label(name) {
                invalid(errs, &child(&p, "name"), go_quote(name), &msg);
            }
        }
        if !names.insert(name) {
            duplicate(errs, &child(&p, "name"), go_quote(name));
        }
        protocol(port, &p, errs);
        if let Some(app) = opt_s(port, "appProtocol") {
            for msg in qualified_name(app) {
                invalid(errs, &child(&p, "appProtocol"), go_quote(app), &msg);
            }
        }
    }
}

/// networking.k8s.io/v1 Ingress.
pub(super) fn ingress(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let rules = list(spec, "rules");
    let default_backend = field(spec, "defaultBackend");
    if rules.is_empty() && default_backend.is_none() {
        invalid(
            errs,
            "spec",
            "[]networking.IngressRule(nil)",
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    if let Some(backend) = default_backend {
        ingress_backend(backend, "spec.defaultBackend", errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = index("spec.rules", i);
        let host = s(rule, "host");
        if !host.is_empty() {
            if host.parse::<std::net::IpAddr>().is_ok() {
                invalid(
                    errs,
                    &child(&p, "host"),
                    go_quote(host),
                    "must be a DNS name, not an IP address",
                );
            }
            let msgs = if host.contains('*') {
                wildcard_dns1123_subdomain(host)
            } else {
                dns1123_subdomain(host)
            };
            for msg in msgs {
                invalid(errs, &child(&p, "host"), go_quote(host), &msg);
            }
        }
        let Some(http) = field(rule, "http") else {
            continue;
        };
        let paths_path = child(&child(&p, "http"), "paths");
        let paths = list(http, "paths");
        if paths.is_empty() {
            required(errs, &paths_path, "");
        }
        for (j, path) in paths.iter().enumerate() {
            ingress_path(path, &index(&paths_path, j), errs);
        }
    }
    for (i, tls) in list(spec, "tls").iter().enumerate() {
        for (j, host) in strings(tls.get("hosts")).iter().enumerate() {
            let msgs = if host.contains('*') {
                wildcard_dns1123_subdomain(host)
            } else {
                dns1123_subdomain(host)
            };
            for msg in msgs {
                invalid(
                    errs,
                    &index(&child(&index("spec.tls", i), "hosts"), j),
                    go_quote(host),
                    &msg,
                );
            }
        }
    }
    if let Some(class) = opt_s(spec, "ingressClassName") {
        for msg in dns1123_subdomain(class) {
            invalid(errs, "spec.ingressClassName", go_quote(class), &msg);
        }
    }
}

fn ingress_path(path: &Value, p: &str, errs: &mut Errs) {
    let Some(path_type) = opt_s(path, "pathType") else {
        required(errs, &child(p, "pathType"), "pathType must be specified");
        return;
    };
    let value = s(path, "path");
    let path_field = child(p, "path");
    match path_type {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                invalid(
                    errs,
                    &path_field,
                    go_quote(value),
                    "must be an absolute path",
                );
            }
            if !value.is_empty() {
                for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                    if value.contains(seq) {
                        invalid(
                            errs,
                            &path_field,
                            go_quote(value),
                            &format!("must not contain '{seq}'"),
                        );
                    }
                }
                for suffix in ["/..", "/."] {
                    if value.ends_with(suffix) {
                        invalid(
                            errs,
                            &path_field,
                            go_quote(value),
                            &format!("cannot end with '{suffix}'"),
                        );
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                invalid(
                    errs,
                    &path_field,
                    go_quote(value),
                    "must be an absolute path",
                );
            }
        }
        other => not_supported(
            errs,
            &child(p, "pathType"),
            go_quote(other),
            &["Exact", "ImplementationSpecific", "Prefix"],
        ),
    }
    ingress_backend(
        path.get("backend").unwrap_or(&Value::Null),
        &child(p, "backend"),
        errs,
    );
}

fn ingress_backend(backend: &Value, p: &str, errs: &mut Errs) {
    let resource = field(backend, "resource");
    let service = field(backend, "service");
    match (resource, service) {
        (Some(_), Some(_)) => invalid(
            errs,
            p,
            "\"\"",
            "cannot set both resource and service backends",
        ),
        (Some(r), None) => {
            if s(r, "kind").is_empty() {
                required(errs, &child(&child(p, "resource"), "kind"), "");
            }
            if s(r, "name").is_empty() {
                required(errs, &child(&child(p, "resource"), "name"), "");
            }
        }
        (None, Some(svc)) => {
            let name = s(svc, "name");
            if name.is_empty() {
                required(errs, &format!("{p}.service.name"), "");
            } else {
                for msg in dns1035_label(name) {
                    invalid(errs, &format!("{p}.service.name"), go_quote(name), &msg);
                }
            }
            let port = svc.get("port").unwrap_or(&Value::Null);
            let port_name_value = s(port, "name");
            let number = int(port, "number").unwrap_or(0);
            match (port_name_value.is_empty(), number == 0) {
                (false, false) => {
                    invalid(errs, p, "\"\"", "cannot set both port name & port number")
                }
                (false, true) => {
                    for msg in port_name(port_name_value) {
                        invalid(
                            errs,
                            &format!("{p}.service.port.name"),
                            go_quote(port_name_value),
                            &msg,
                        );
                    }
                }
                (true, false) => {
                    for msg in port_num(number) {
                        invalid(
                            errs,
                            &format!("{p}.service.port.number"),
                            number.to_string(),
                            &msg,
                        );
                    }
                }
                (true, true) => required(errs, p, "port name or number is required"),
            }
        }
        (None, None) => invalid(errs, p, "\"\"", "resource or service backend is required"),
    }
}

/// networking.k8s.io/v1 NetworkPolicy (selectors and ports).
pub(super) fn network_policy(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    label_selector(spec.get("podSelector"), "spec.podSelector", errs);
    for (i, t) in strings(spec.get("policyTypes")).iter().enumerate() {
        if !matches!(*t, "Ingress" | "Egress") {
            not_supported(
                errs,
                &index("spec.policyTypes", i),
                go_quote(t),
                &["Egress", "Ingress"],
            );
        }
    }
    if strings(spec.get("policyTypes")).len() > 2 {
        invalid(
            errs,
            "spec.policyTypes",
            go_string_slice(spec.get("policyTypes")),
            "may not specify more than two policyTypes",
        );
    }
}
