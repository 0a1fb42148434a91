//! The Service variables kubelet gives every container: the `kubernetes`
//! Service of the `default` namespace always (what in-cluster clients
//! read), and every Service of the pod's namespace unless
//! `enableServiceLinks: false` — `WEB_SERVICE_HOST`, `WEB_SERVICE_PORT`,
//! `WEB_SERVICE_PORT_<NAME>` and the Docker-link style `WEB_PORT...`.

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;

/// The Service variables for `pod`, in kubelet's order (by Service).
pub async fn service_env(
    client: &kube::Client,
    pod: &Pod,
) -> Result<Vec<(String, String)>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.enable_service_links)
        .unwrap_or(true);
    let mut services: Vec<Service> = Vec::new();
    if links {
        let list = Api::<Service>::namespaced(client.clone(), namespace)
            .list(&Default::default())
            .await
            .map_err(|err| format!("listing the services of namespace {namespace}: {err}"))?;
        services.extend(list.items);
    }
    if !(links && namespace == "default") {
        let master = Api::<Service>::namespaced(client.clone(), "default")
            .get_opt("kubernetes")
            .await
            .map_err(|err| format!("reading service default/kubernetes: {err}"))?;
        services.extend(master);
    }
    services.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(services.iter().flat_map(variables).collect())
}

/// One Service's variables (upstream's `envvars.FromServices`); none for a
/// headless Service or one without a cluster IP.
fn variables(service: &Service) -> Vec<(String, String)> {
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    else {
        return Vec::new();
    };
    let name = env_name(service.metadata.name.as_deref().unwrap_or_default());
    let ports = spec.ports.as_deref().unwrap_or_default();
    let Some(first) = ports.first() else {
        return vec![(format!("{name}_SERVICE_HOST"), ip.to_owned())];
    };
    let mut vars = vec![
        (format!("{name}_SERVICE_HOST"), ip.to_owned()),
        (format!("{name}_SERVICE_PORT"), first.port.to_string()),
    ];
    for port in ports {
        if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            vars.push((
                format!("{name}_SERVICE_PORT_{}", env_name(port_name)),
                port.port.to_string(),
            ));
        }
    }
    let protocol = |p: &k8s_openapi::api::core::v1::ServicePort| {
        p.protocol.as_deref().unwrap_or("TCP").to_owned()
    };
    vars.push((
        format!("{name}_PORT"),
        format!("{}://{ip}:{}", protocol(first).to_lowercase(), first.port),
    ));
    for port in ports {
        let proto = protocol(port);
        let prefix = format!("{name}_PORT_{}_{}", port.port, proto.to_uppercase());
        vars.push((
            prefix.clone(),
            format!("{}://{ip}:{}", proto.to_lowercase(), port.port),
        ));
        vars.push((format!("{prefix}_PROTO"), proto.to_lowercase()));
        vars.push((format!("{prefix}_PORT"), port.port.to_string()));
        vars.push((format!("{prefix}_ADDR"), ip.to_owned()));
    }
    vars
}

/// `my-svc` → `MY_SVC`.
fn env_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubernetes_service_reads_as_in_cluster_clients_expect() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "kubernetes" },
            "spec": { "clusterIP": "10.43.0.1", "ports": [ { "name": "https", "port": 443, "protocol": "TCP" } ] }
        }))
        .unwrap();
        let vars = variables(&service);
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.43.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT"), Some("tcp://10.43.0.1:443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP"), Some("tcp://10.43.0.1:443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_PROTO"), Some("tcp"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_ADDR"), Some("10.43.0.1"));
    }

    #[test]
    fn headless_services_give_nothing_and_dashes_become_underscores() {
        let headless: Service = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "db" }, "spec": { "clusterIP": "None" }
        }))
        .unwrap();
        assert!(variables(&headless).is_empty());
        assert_eq!(env_name("my-web"), "MY_WEB");
    }
}
