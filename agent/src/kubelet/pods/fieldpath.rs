//! The downward API: pod fields (`fieldRef`) and container resources
//! (`resourceFieldRef`) as strings, formatted as kubelet formats them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::resources::{Amount, NodeCapacity, limit, request};

/// What the pod's status fields are right now (the pod object may not
/// have them yet).
#[derive(Debug, Clone, Default)]
pub struct PodAddresses {
    /// The node's IP.
    pub host_ip: String,
    /// The pod's IPs, primary first.
    pub pod_ips: Vec<String>,
}

/// Why a field could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The path names no supported field.
    #[error("unsupported fieldPath: {0}")]
    Unsupported(String),
    /// The resource is not one the downward API exposes.
    #[error("unsupported container resource : {0}")]
    Resource(String),
    /// `containerName` names no container of the pod.
    #[error("cannot find container {0:?} in pod")]
    Container(String),
    /// The divisor does not parse or is zero.
    #[error("invalid divisor {0:?}")]
    Divisor(String),
}

/// Reads `path` of `pod` (`metadata.name`, `metadata.labels['app']`,
/// `status.podIP`, ...). `env` allows the fields only environment
/// variables may read (spec and status).
pub fn pod_field(
    pod: &Pod,
    path: &str,
    addresses: &PodAddresses,
    env: bool,
) -> Result<String, FieldError> {
    let meta = &pod.metadata;
    let unsupported = || FieldError::Unsupported(path.to_owned());
    if let Some((map, key)) = subscript(path) {
        let source = match map {
            "metadata.labels" => &meta.labels,
            "metadata.annotations" => &meta.annotations,
            _ => return Err(unsupported()),
        };
        return Ok(source
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default());
    }
    let spec = pod.spec.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" if env => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" if env => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" if env => addresses.host_ip.clone(),
        "status.hostIPs" if env => addresses.host_ip.clone(),
        "status.podIP" if env => addresses.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" if env => addresses.pod_ips.join(","),
        _ => return Err(unsupported()),
    };
    Ok(value)
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`).
fn subscript(path: &str) -> Option<(&str, &str)> {
    let (map, rest) = path.split_once('[')?;
    let key = rest.strip_suffix(']')?;
    let key = key
        .strip_prefix('\'')
        .and_then(|k| k.strip_suffix('\''))
        .or_else(|| key.strip_prefix('"').and_then(|k| k.strip_suffix('"')))?;
    Some((map, key))
}

/// Labels or annotations as a downward API file shows them:
/// `key="value"` lines, sorted, values quoted as Go's `%q`.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads `resource` (`limits.cpu`, `requests.memory`, ...) of the pod's
/// container `container_name` divided by `divisor` and rounded up; an
/// unset limit is the node's capacity.
pub fn resource_field(
    pod: &Pod,
    container_name: &str,
    resource: &str,
    divisor: Option<&str>,
    node: &NodeCapacity,
) -> Result<String, FieldError> {
    let spec = pod.spec.as_ref();
    let container: &Container = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == container_name)
        .ok_or_else(|| FieldError::Container(container_name.to_owned()))?;
    let divisor_text = divisor.filter(|d| !d.is_empty()).unwrap_or("1");
    let divisor = Amount::parse(divisor_text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| FieldError::Divisor(divisor_text.to_owned()))?;
    let node_cpu = Amount::parse(&format!("{}m", node.cpu_millis)).unwrap_or(divisor);
    let node_memory = Amount::parse(&node.memory_bytes.to_string()).unwrap_or(divisor);
    let zero = Amount::parse("0").unwrap_or(divisor);
    let (amount, cpu) = match resource {
        "limits.cpu" => (limit(container, "cpu").unwrap_or(node_cpu), true),
        "requests.cpu" => (request(container, "cpu").unwrap_or(zero), true),
        "limits.memory" => (limit(container, "memory").unwrap_or(node_memory), false),
        "requests.memory" => (request(container, "memory").unwrap_or(zero), false),
        "limits.ephemeral-storage" => (
            limit(container, "ephemeral-storage").unwrap_or(node_memory),
            false,
        ),
        "requests.ephemeral-storage" => (
            request(container, "ephemeral-storage").unwrap_or(zero),
            false,
        ),
        other => return Err(FieldError::Resource(other.to_owned())),
    };
    let value = if cpu {
        div_ceil(amount.milli_value(), divisor.milli_value())
    } else {
        div_ceil(amount.value(), divisor.value())
    };
    Ok(value.to_string())
}

fn div_ceil(a: i64, b: i64) -> i64 {
    if b == 0 {
        return a;
    }
    let q = a / b;
    if a % b != 0 && (a > 0) == (b > 0) {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([
                    ("app".into(), "web".into()),
                    ("tier".into(), "front \"end\"".into()),
                ])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                service_account_name: Some("default".into()),
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some(BTreeMap::from([("memory".into(), Quantity("64Mi".into()))])),
                        requests: Some(BTreeMap::from([("cpu".into(), Quantity("250m".into()))])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn addresses() -> PodAddresses {
        PodAddresses {
            host_ip: "192.168.1.2".into(),
            pod_ips: vec!["10.42.0.7".into()],
        }
    }

    #[test]
    fn pod_fields() {
        let p = pod();
        let f = |path| pod_field(&p, path, &addresses(), true);
        assert_eq!(f("metadata.name").unwrap(), "web");
        assert_eq!(f("metadata.namespace").unwrap(), "default");
        assert_eq!(f("metadata.uid").unwrap(), "u-1");
        assert_eq!(f("metadata.labels['app']").unwrap(), "web");
        assert_eq!(f("metadata.labels['none']").unwrap(), "");
        assert_eq!(f("spec.nodeName").unwrap(), "n1");
        assert_eq!(f("spec.serviceAccountName").unwrap(), "default");
        assert_eq!(f("status.podIP").unwrap(), "10.42.0.7");
        assert_eq!(f("status.hostIP").unwrap(), "192.168.1.2");
        assert!(matches!(
            f("spec.containers"),
            Err(FieldError::Unsupported(_))
        ));
        // Volumes may read only metadata.
        assert!(pod_field(&p, "spec.nodeName", &addresses(), false).is_err());
    }

    #[test]
    fn labels_are_lines_of_quoted_values() {
        let p = pod();
        assert_eq!(
            pod_field(&p, "metadata.labels", &addresses(), false).unwrap(),
            "app=\"web\"\ntier=\"front \\\"end\\\"\""
        );
    }

    #[test]
    fn resource_fields_round_up_and_default_to_the_node() {
        let p = pod();
        let node = NodeCapacity {
            cpu_millis: 4000,
            memory_bytes: 8 << 30,
        };
        let r = |res, div| resource_field(&p, "c", res, div, &node).unwrap();
        assert_eq!(r("requests.cpu", None), "1");
        assert_eq!(r("requests.cpu", Some("1m")), "250");
        assert_eq!(r("limits.cpu", None), "4");
        assert_eq!(r("limits.memory", Some("1Mi")), "64");
        assert_eq!(r("limits.memory", None), (64u64 << 20).to_string());
        assert_eq!(r("requests.memory", None), "0");
        assert!(resource_field(&p, "nope", "limits.cpu", None, &node).is_err());
        assert!(resource_field(&p, "c", "limits.gpu", None, &node).is_err());
    }
}
