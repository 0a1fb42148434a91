//! The PodSandboxConfig kubelet asks the runtime for: metadata, hostname,
//! log directory, DNS, host ports, labels and annotations, the cgroup
//! parent and security context, and the RuntimeClass handler.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::Api;

use super::cri::{POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL};
use super::dns::{ClusterDns, ResolvConf, pod_dns_config};
use super::resources::{cgroup_parent, qos_class};
use super::security::sandbox_security;

/// The longest hostname (a DNS label).
const MAX_HOSTNAME: usize = 63;

/// What a sandbox config is made from besides the pod.
#[derive(Debug, Clone, Copy)]
pub struct SandboxSettings<'a> {
    /// The cluster DNS.
    pub dns: ClusterDns<'a>,
    /// The host's resolv.conf.
    pub host_dns: &'a ResolvConf,
    /// kubelet's `--cgroup-root`.
    pub cgroup_root: &'a str,
    /// Where pod logs go.
    pub logs_dir: &'a Path,
    /// kubelet's root directory (seccomp profiles).
    pub root_dir: &'a Path,
}

/// `<logs_dir>/<namespace>_<name>_<uid>`.
pub fn log_directory(logs_dir: &Path, pod: &Pod) -> PathBuf {
    logs_dir.join(format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    ))
}

/// The pod's hostname: `spec.hostname` or its name, at most 63 characters.
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    if name.len() <= MAX_HOSTNAME {
        return name;
    }
    name[..MAX_HOSTNAME].trim_end_matches(['-', '.']).to_owned()
}

/// The labels kubelet puts on sandboxes: the pod's, plus its name,
/// namespace and UID.
pub fn sandbox_labels(pod: &Pod) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let meta = &pod.metadata;
    labels.insert(POD_NAME_LABEL.into(), meta.name.clone().unwrap_or_default());
    labels.insert(
        POD_NAMESPACE_LABEL.into(),
        meta.namespace.clone().unwrap_or_default(),
    );
    labels.insert(POD_UID_LABEL.into(), meta.uid.clone().unwrap_or_default());
    labels
}

fn protocol(name: Option<&str>) -> i32 {
    (match name {
        Some("UDP") => cri::Protocol::Udp,
        Some("SCTP") => cri::Protocol::Sctp,
        _ => cri::Protocol::Tcp,
    }) as i32
}

/// Host ports of the pod's containers.
pub fn port_mappings(pod: &Pod) -> Vec<cri::PortMapping> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| cri::PortMapping {
            protocol: protocol(p.protocol.as_deref()),
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or_default(),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect()
}

/// The sandbox config of `pod`'s sandbox number `attempt`.
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    settings: &SandboxSettings<'_>,
) -> cri::PodSandboxConfig {
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let uid = meta.uid.clone().unwrap_or_default();
    let sysctls = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.sysctls.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name, s.value))
        .collect();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: meta.name.clone().unwrap_or_default(),
            uid: uid.clone(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        hostname: if spec.host_network.unwrap_or(false) {
            String::new()
        } else {
            hostname(pod)
        },
        log_directory: log_directory(settings.logs_dir, pod).display().to_string(),
        dns_config: Some(pod_dns_config(pod, &settings.dns, settings.host_dns)),
        port_mappings: port_mappings(pod),
        labels: sandbox_labels(pod),
        annotations: meta
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(settings.cgroup_root, qos_class(pod), &uid),
            security_context: Some(sandbox_security(
                pod,
                &settings.root_dir.display().to_string(),
            )),
            sysctls,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The runtime handler of the pod's RuntimeClass ("" without one).
pub async fn runtime_handler(client: &kube::Client, pod: &Pod) -> Result<String, String> {
    let Some(name) = pod
        .spec
        .as_ref()
        .and_then(|s| s.runtime_class_name.clone())
        .filter(|n| !n.is_empty())
    else {
        return Ok(String::new());
    };
    let api: Api<RuntimeClass> = Api::all(client.clone());
    match api.get_opt(&name).await {
        Ok(Some(class)) => Ok(class.handler),
        Ok(None) => Err(format!("runtimeclass.node.k8s.io {name:?} not found")),
        Err(err) => Err(format!("looking up RuntimeClass {name:?}: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                annotations: Some(BTreeMap::from([("a".into(), "b".into())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![
                        ContainerPort {
                            container_port: 80,
                            host_port: Some(8080),
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        },
                        ContainerPort {
                            container_port: 53,
                            protocol: Some("UDP".into()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn sandbox_configs_are_built_as_kubelet_builds_them() {
        let host = ResolvConf::default();
        let servers = ["10.43.0.10".parse().unwrap()];
        let settings = SandboxSettings {
            dns: ClusterDns {
                servers: &servers,
                domain: "cluster.local",
            },
            host_dns: &host,
            cgroup_root: "/",
            logs_dir: Path::new("/var/log/pods"),
            root_dir: Path::new("/var/lib/kubelet"),
        };
        let config = sandbox_config(&pod(), 2, &settings);
        let meta = config.metadata.unwrap();
        assert_eq!(
            (
                meta.name.as_str(),
                meta.namespace.as_str(),
                meta.uid.as_str(),
                meta.attempt
            ),
            ("web", "shop", "u-1", 2)
        );
        assert_eq!(config.hostname, "web");
        assert_eq!(config.log_directory, "/var/log/pods/shop_web_u-1");
        assert_eq!(config.labels["io.kubernetes.pod.uid"], "u-1");
        assert_eq!(config.labels["io.kubernetes.pod.namespace"], "shop");
        assert_eq!(config.labels["app"], "web");
        assert_eq!(config.annotations["a"], "b");
        assert_eq!(config.port_mappings.len(), 1);
        assert_eq!(config.port_mappings[0].host_port, 8080);
        assert_eq!(config.dns_config.unwrap().servers, ["10.43.0.10"]);
        assert_eq!(
            config.linux.unwrap().cgroup_parent,
            "/kubepods/besteffort/podu-1"
        );
    }

    #[test]
    fn long_names_make_valid_hostnames() {
        let mut p = pod();
        p.metadata.name = Some(format!("{}-{}", "a".repeat(62), "b"));
        assert_eq!(hostname(&p), "a".repeat(62));
    }
}
