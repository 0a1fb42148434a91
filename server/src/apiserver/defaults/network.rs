//! Networking kinds: Service, Endpoints, EndpointSlice, NetworkPolicy,
//! Ingress, IngressClass. Cluster IPs and node ports are allocated
//! elsewhere (`services`); the IP family fields are set here as the
//! allocator's first step does on a single-stack IPv4 cluster.

use serde_json::{Value, json};

use super::{child, default_str, default_value, empty_map, existing, items, str_of, unset};

/// Seconds a ClientIP session sticks by default (3 hours).
const CLIENT_IP_TIMEOUT: i64 = 10_800;

/// Service defaults.
pub(super) fn service(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_str(spec, "sessionAffinity", "None");
    match str_of(spec, "sessionAffinity") {
        "None" => {
            if let Some(map) = spec.as_object_mut() {
                map.remove("sessionAffinityConfig");
            }
        }
        "ClientIP" => {
            let timeout = spec.pointer("/sessionAffinityConfig/clientIP/timeoutSeconds");
            if timeout.is_none_or(Value::is_null)
                && let Some(map) = spec.as_object_mut()
            {
                map.insert(
                    "sessionAffinityConfig".into(),
                    json!({ "clientIP": { "timeoutSeconds": CLIENT_IP_TIMEOUT } }),
                );
            }
        }
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    for port in items(spec, "ports") {
        default_str(port, "protocol", "TCP");
        let target = port.get("targetPort");
        let unset_target =
            target.is_none_or(|t| t.is_null() || t.as_i64() == Some(0) || t.as_str() == Some(""));
        if unset_target
            && let Some(number) = port.get("port").cloned().filter(Value::is_number)
            && let Some(map) = port.as_object_mut()
        {
            map.insert("targetPort".into(), number);
        }
    }
    let kind = str_of(spec, "type").to_owned();
    let external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let externally_accessible = matches!(kind.as_str(), "NodePort" | "LoadBalancer")
        || (kind == "ClusterIP" && external_ips);
    if externally_accessible {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(kind.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        default_value(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        default_value(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if kind != "ExternalName" {
        ip_families(spec);
    }
    let Some(status) = child(obj, "status") else {
        return;
    };
    let Some(load_balancer) = child(status, "loadBalancer") else {
        return;
    };
    if kind == "LoadBalancer" {
        for ingress in items(load_balancer, "ingress") {
            if !str_of(ingress, "ip").is_empty() {
                default_value(ingress, "ipMode", json!("VIP"));
            }
        }
    }
}

/// `ipFamilyPolicy` and `ipFamilies` on a single-stack IPv4 cluster:
/// SingleStack `[IPv4]`, except a headless service without a selector,
/// which asks for both families (RequireDualStack, `[IPv4, IPv6]`).
fn ip_families(spec: &mut Value) {
    let headless_selectorless = str_of(spec, "clusterIP") == "None" && empty_map(spec, "selector");
    let policy = if headless_selectorless {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    default_value(spec, "ipFamilyPolicy", json!(policy));
    let families_unset = spec
        .get("ipFamilies")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if !families_unset {
        return;
    }
    let first_ip = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .and_then(|ips| ips.first())
        .and_then(Value::as_str)
        .or_else(|| spec.get("clusterIP").and_then(Value::as_str))
        .unwrap_or("");
    let primary = if first_ip.contains(':') {
        "IPv6"
    } else {
        "IPv4"
    };
    let mut families = vec![primary];
    if headless_selectorless && str_of(spec, "ipFamilyPolicy") != "SingleStack" {
        families.push(if primary == "IPv4" { "IPv6" } else { "IPv4" });
    }
    if let Some(map) = spec.as_object_mut() {
        map.insert("ipFamilies".into(), json!(families));
    }
}

/// Endpoints: ports' protocol TCP.
pub(super) fn endpoints(obj: &mut Value) {
    for subset in items(obj, "subsets") {
        for port in items(subset, "ports") {
            default_str(port, "protocol", "TCP");
        }
    }
}

/// EndpointSlice: ports' name "" and protocol TCP.
pub(super) fn endpoint_slice(obj: &mut Value) {
    for port in items(obj, "ports") {
        default_value(port, "name", json!(""));
        default_value(port, "protocol", json!("TCP"));
    }
}

/// NetworkPolicy: ports' protocol TCP; policy types Ingress, plus Egress
/// when egress rules are given.
pub(super) fn network_policy(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    for direction in ["ingress", "egress"] {
        for rule in items(spec, direction) {
            for port in items(rule, "ports") {
                default_value(port, "protocol", json!("TCP"));
            }
        }
    }
    let no_types = spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_types {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let types = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        if let Some(map) = spec.as_object_mut() {
            map.insert("policyTypes".into(), types);
        }
    }
}

/// Ingress: no defaults upstream; its status always shows `loadBalancer`.
pub(super) fn ingress(obj: &mut Value) {
    if let Some(status) = child(obj, "status") {
        default_value(status, "loadBalancer", json!({}));
    }
}

/// IngressClass: parameters' scope Cluster.
pub(super) fn ingress_class(obj: &mut Value) {
    if let Some(parameters) = existing(obj, "spec").and_then(|s| existing(s, "parameters"))
        && unset(parameters, "scope")
    {
        default_value(parameters, "scope", json!("Cluster"));
    }
}
