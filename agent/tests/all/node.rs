//! Node registration, status and heartbeat against a real apiserver and
//! a real node runtime: the node registers NotReady until it has a pod
//! CIDR, then turns Ready with what kubelet reports; its Lease is renewed
//! while the unchanged status is left alone; a restart keeps the node.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Api, ListParams};

use crate::support::{
    Agent, AgentOptions, Cluster, assign_pod_cidr_and_wait_ready, kubelet_port, ready_status,
    registered, wait_for,
};

fn server_roles() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "node-role.kubernetes.io/control-plane".into(),
            "true".into(),
        ),
        ("node-role.kubernetes.io/master".into(), "true".into()),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_registers_waits_for_its_pod_cidr_and_turns_ready() {
    let cluster = Cluster::start().await;
    let client = cluster.admin().await;
    let options = AgentOptions {
        labels: server_roles(),
        ..AgentOptions::default()
    };
    let agent = Agent::start(&cluster, "edge-1", options).await;

    // Without a pod CIDR the runtime's network is not ready, nor the node.
    let node = registered(&client, "edge-1").await;
    let api: Api<Node> = Api::all(client.clone());
    let not_ready = wait_for("a NotReady status", Duration::from_secs(20), || {
        let api = api.clone();
        async move {
            let node = api.get("edge-1").await.ok()?;
            (ready_status(&node).as_deref() == Some("False")).then_some(node)
        }
    })
    .await;
    let ready = not_ready
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap();
    let ready = ready.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("KubeletNotReady"));
    assert!(
        ready.message.as_deref().unwrap().starts_with(
            "container runtime network not ready: NetworkReady=false reason:NoPodCIDR"
        ),
        "{ready:?}"
    );

    let labels = node.metadata.labels.clone().unwrap();
    for (key, value) in [
        ("kubernetes.io/hostname", "edge-1"),
        ("kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/os", "linux"),
        ("node.kubernetes.io/instance-type", "skiff"),
        ("node-role.kubernetes.io/control-plane", "true"),
        ("node-role.kubernetes.io/master", "true"),
    ] {
        assert_eq!(labels.get(key).map(String::as_str), Some(value), "{key}");
    }
    assert!(labels.contains_key("kubernetes.io/arch"));

    let node = assign_pod_cidr_and_wait_ready(&client, &agent).await;
    let status = node.status.as_ref().unwrap();
    let info = status.node_info.as_ref().unwrap();
    assert_eq!(
        info.kubelet_version,
        format!("v1.32.0+skiff-{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(info.kube_proxy_version, info.kubelet_version);
    assert_eq!(
        info.container_runtime_version,
        format!("skiff://{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(info.operating_system, "linux");
    assert!(!info.kernel_version.is_empty() && !info.os_image.is_empty());
    assert!(!info.boot_id.is_empty() && !info.machine_id.is_empty());
    let capacity = status.capacity.as_ref().unwrap();
    for resource in ["cpu", "memory", "pods", "ephemeral-storage"] {
        assert!(capacity.contains_key(resource), "{resource}: {capacity:?}");
    }
    assert_eq!(capacity["pods"].0, "110");
    let addresses: Vec<(String, String)> = status
        .addresses
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| (a.type_.clone(), a.address.clone()))
        .collect();
    assert_eq!(
        addresses,
        [
            ("InternalIP".to_owned(), "127.0.0.1".to_owned()),
            ("Hostname".to_owned(), "edge-1".to_owned())
        ]
    );
    assert!(kubelet_port(&node) > 0);
    let types: Vec<&str> = status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(
        types,
        ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    );
    let ready = status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("kubelet is posting ready status")
    );
    assert_eq!(
        node.spec.as_ref().unwrap().pod_cidr.as_deref(),
        Some(agent.lease.pod_cidr().as_str())
    );

    // kubectl's wide listing, as k3s users read it.
    let wide = cluster.kubectl(&["get", "nodes", "-o", "wide"]);
    let mut lines = wide.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ]
    );
    let row = lines.next().unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..3],
        ["edge-1", "Ready", "control-plane,master"],
        "{wide}"
    );
    assert_eq!(cells[4], info.kubelet_version);
    assert_eq!(cells[5], "127.0.0.1");
    assert_eq!(cells[6], "<none>");
    assert!(row.contains(&info.os_image), "{wide}");
    assert!(row.contains(&info.kernel_version), "{wide}");
    assert!(row.ends_with(&info.container_runtime_version), "{wide}");

    // kubelet's node events.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let reasons = wait_for("the node's events", Duration::from_secs(10), || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            let reasons: Vec<String> = list
                .items
                .iter()
                .filter(|e| e.involved_object.name.as_deref() == Some("edge-1"))
                .filter_map(|e| e.reason.clone())
                .collect();
            reasons.iter().any(|r| r == "NodeReady").then_some(reasons)
        }
    })
    .await;
    for reason in [
        "Starting",
        "NodeHasSufficientMemory",
        "NodeNotReady",
        "NodeReady",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} in {reasons:?}"
        );
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lease_is_renewed_while_an_unchanged_status_is_left_alone() {
    let cluster = Cluster::start().await;
    let client = cluster.admin().await;
    let agent = Agent::start(&cluster, "edge-2", AgentOptions::default()).await;
    let node = assign_pod_cidr_and_wait_ready(&client, &agent).await;

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = wait_for("the lease", Duration::from_secs(10), || {
        let leases = leases.clone();
        async move { leases.get_opt("edge-2").await.ok().flatten() }
    })
    .await;
    let spec = lease.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("edge-2"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = &lease.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", "edge-2")
    );
    assert_eq!(Some(&owner.uid), node.metadata.uid.as_ref());

    // Let the Ready status settle (the first report after Ready), then
    // let a status round (every 10 s once Ready) and a renewal go by.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let before = nodes.get("edge-2").await.unwrap();
    let first_renewal = leases
        .get("edge-2")
        .await
        .unwrap()
        .spec
        .unwrap()
        .renew_time
        .unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    let renewed = leases
        .get("edge-2")
        .await
        .unwrap()
        .spec
        .unwrap()
        .renew_time
        .unwrap();
    assert!(renewed.0 > first_renewal.0, "the lease was not renewed");
    let after = nodes.get("edge-2").await.unwrap();
    assert_eq!(
        before.metadata.resource_version, after.metadata.resource_version,
        "the node was written although nothing changed"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_agent_keeps_its_node_and_brings_its_labels_up_to_date() {
    let cluster = Cluster::start().await;
    let client = cluster.admin().await;
    let agent = Agent::start(&cluster, "edge-3", AgentOptions::default()).await;
    let first = registered(&client, "edge-3").await;
    let lease = agent.lease.clone();
    agent.stop().await;

    let options = AgentOptions {
        labels: BTreeMap::from([("zone".to_owned(), "north".to_owned())]),
        ..AgentOptions::default()
    };
    let agent = Agent::start_on(&cluster, "edge-3", options, lease).await;
    let api: Api<Node> = Api::all(client.clone());
    let relabelled = wait_for("the new label", Duration::from_secs(20), || {
        let api = api.clone();
        async move {
            let node = api.get("edge-3").await.ok()?;
            let zone = node.metadata.labels.as_ref()?.get("zone").cloned();
            (zone.as_deref() == Some("north")).then_some(node)
        }
    })
    .await;
    assert_eq!(relabelled.metadata.uid, first.metadata.uid);
    let ready = assign_pod_cidr_and_wait_ready(&client, &agent).await;
    assert_eq!(ready.metadata.uid, first.metadata.uid);
    agent.stop().await;
}
