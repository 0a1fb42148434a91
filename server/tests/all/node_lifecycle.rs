//! The node lifecycle and node IPAM controllers against a real apiserver.
//! There is no kubelet: the test creates Nodes, their Leases and pods, and
//! renews Leases itself; the grace period is shortened to seconds.

use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skiff_server::controllers::node_ipam;
use skiff_server::controllers::node_lifecycle::{self, NodeLifecycleConfig};
use skiff_server::run::Components;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::endpoints::eventually;
use crate::support::TestServer;

/// Timings for tests: silent for 2 s is Unknown; looked at every 200 ms.
fn fast() -> NodeLifecycleConfig {
    NodeLifecycleConfig {
        node_monitor_grace_period: Duration::from_secs(2),
        node_startup_grace_period: Duration::from_secs(4),
        node_monitor_period: Duration::from_millis(200),
        ..NodeLifecycleConfig::default()
    }
}

async fn server() -> (TestServer, kube::Client) {
    let server = TestServer::start(Components {
        scheduler: false,
        controller_manager: false,
    })
    .await;
    let client = server.client().await;
    (server, client)
}

fn lifecycle(client: &kube::Client) -> DropGuard {
    let stop = CancellationToken::new();
    tokio::spawn(node_lifecycle::run_with(
        client.clone(),
        fast(),
        stop.clone(),
    ));
    stop.drop_guard()
}

fn now() -> String {
    Timestamp::now().to_string()
}

/// A node whose kubelet posted `ready`, with a fresh Lease.
async fn add_node(client: &kube::Client, name: &str, ready: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    post_status(client, name, ready).await;
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now()},
    }))
    .unwrap();
    Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
}

/// What a kubelet posts: Ready with a fresh heartbeat.
async fn post_status(client: &kube::Client, name: &str, ready: &str) {
    let status = json!({"status": {"conditions": [
        {"type": "Ready", "status": ready, "reason": "KubeletReady", "message": "kubelet is posting ready status",
         "lastHeartbeatTime": now(), "lastTransitionTime": now()},
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
         "lastHeartbeatTime": now(), "lastTransitionTime": now()},
    ]}});
    Api::<Node>::all(client.clone())
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn renew(client: &kube::Client, name: &str) {
    let patch = json!({"spec": {"renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now())}});
    Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Renews the node's Lease every 300 ms until dropped.
fn heartbeat(client: &kube::Client, name: &str) -> DropGuard {
    let stop = CancellationToken::new();
    let (client, name, stopped) = (client.clone(), name.to_owned(), stop.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stopped.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(300)) => renew(&client, &name).await,
            }
        }
    });
    stop.drop_guard()
}

async fn add_pod(client: &kube::Client, name: &str, node: &str, tolerations: Value) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "tolerations": tolerations, "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"phase": "Running", "podIP": "10.42.1.5", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now()},
    ]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn condition<'a>(
    node: &'a Node,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn taint_keys(node: &Node) -> Vec<String> {
    let mut keys: Vec<String> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    keys.sort();
    keys
}

async fn node_where(
    client: &kube::Client,
    name: &str,
    what: &str,
    test: impl Fn(&Node) -> bool,
) -> Node {
    eventually(what, || {
        let nodes: Api<Node> = Api::all(client.clone());
        let test = &test;
        async move { nodes.get(name).await.ok().filter(|n| test(n)) }
    })
    .await
}

async fn events(client: &kube::Client, namespace: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), namespace)
        .list(&Default::default())
        .await
        .unwrap()
        .items
}

fn has_event(events: &[Event], object: &str, reason: &str, message: &str) -> bool {
    events.iter().any(|e| {
        e.involved_object.name.as_deref() == Some(object)
            && e.reason.as_deref() == Some(reason)
            && e.message.as_deref() == Some(message)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_lease_stops_is_unknown_tainted_and_its_pods_evicted_or_not_ready() {
    let (_server, client) = server().await;
    add_node(&client, "node-a", "True").await;
    add_node(&client, "node-b", "True").await;
    let _alive = heartbeat(&client, "node-a");
    add_pod(&client, "web", "node-b", json!([])).await;
    add_pod(
        &client,
        "brief",
        "node-b",
        json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]),
    )
    .await;
    let _controller = lifecycle(&client);

    let node = node_where(&client, "node-b", "node-b Unknown", |n| {
        condition(n, "Ready").is_some_and(|c| c.status == "Unknown")
    })
    .await;
    let ready = condition(&node, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    for type_ in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(
            condition(&node, type_).unwrap().status,
            "Unknown",
            "{type_}"
        );
    }
    let node = node_where(&client, "node-b", "node-b tainted unreachable", |n| {
        taint_keys(n)
            == [
                "node.kubernetes.io/unreachable:NoExecute",
                "node.kubernetes.io/unreachable:NoSchedule",
            ]
    })
    .await;
    let no_execute = node
        .spec
        .unwrap()
        .taints
        .unwrap()
        .into_iter()
        .find(|t| t.effect == "NoExecute")
        .unwrap();
    assert!(no_execute.time_added.is_some());

    // The Lease-renewing node is untouched.
    let a = Api::<Node>::all(client.clone())
        .get("node-a")
        .await
        .unwrap();
    assert_eq!(condition(&a, "Ready").unwrap().status, "True");
    assert!(taint_keys(&a).is_empty());

    // Its pods: marked not ready; the one tolerating unreachable for 1 s
    // is evicted, the one with the default 300 s stays.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually("web not ready", || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("web").await.unwrap();
            let conditions = pod.status?.conditions?;
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "False")
                .then_some(())
        }
    })
    .await;
    let evicted = eventually("brief evicted", || {
        let pods = pods.clone();
        async move {
            pods.get_opt("brief")
                .await
                .unwrap()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
        }
    })
    .await;
    let disruption = evicted
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .unwrap();
    assert_eq!(disruption.status, "True");
    assert_eq!(disruption.reason.as_deref(), Some("DeletionByTaintManager"));
    assert!(
        pods.get("web")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );

    let default_events = events(&client, "default").await;
    assert!(has_event(
        &default_events,
        "node-b",
        "NodeNotReady",
        "Node node-b status is now: NodeNotReady"
    ));
    assert!(has_event(
        &default_events,
        "web",
        "NodeNotReady",
        "Node is not ready"
    ));
    assert!(has_event(
        &default_events,
        "brief",
        "TaintManagerEviction",
        "Marking for deletion Pod default/brief"
    ));
    assert!(has_event(
        &default_events,
        "node-a",
        "RegisteredNode",
        "Node node-a event: Registered Node node-a in Controller"
    ));

    // The kubelet is back: the taints go.
    let _back = heartbeat(&client, "node-b");
    post_status(&client, "node-b", "True").await;
    node_where(&client, "node-b", "node-b untainted", |n| {
        taint_keys(n).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_its_kubelet_reports_not_ready_gets_not_ready_taints() {
    let (_server, client) = server().await;
    add_node(&client, "node-a", "True").await;
    add_node(&client, "node-b", "False").await;
    let _a = heartbeat(&client, "node-a");
    let _b = heartbeat(&client, "node-b");
    let _controller = lifecycle(&client);
    let node = node_where(&client, "node-b", "node-b tainted not-ready", |n| {
        taint_keys(n)
            == [
                "node.kubernetes.io/not-ready:NoExecute",
                "node.kubernetes.io/not-ready:NoSchedule",
            ]
    })
    .await;
    // The kubelet's own condition stands.
    assert_eq!(
        condition(&node, "Ready").unwrap().reason.as_deref(),
        Some("KubeletReady")
    );
    post_status(&client, "node-b", "True").await;
    node_where(&client, "node-b", "node-b untainted", |n| {
        taint_keys(n).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_node_is_silent_no_pods_are_evicted() {
    let (_server, client) = server().await;
    add_node(&client, "only", "True").await;
    add_pod(
        &client,
        "web",
        "only",
        json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}]),
    )
    .await;
    let _controller = lifecycle(&client);
    node_where(&client, "only", "the node Unknown and unschedulable", |n| {
        condition(n, "Ready").is_some_and(|c| c.status == "Unknown")
            && taint_keys(n) == ["node.kubernetes.io/unreachable:NoSchedule"]
    })
    .await;
    // Several monitor passes later: still no NoExecute taint, pod kept.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let node = Api::<Node>::all(client.clone()).get("only").await.unwrap();
    assert_eq!(
        taint_keys(&node),
        ["node.kubernetes.io/unreachable:NoSchedule"]
    );
    let pod = Api::<Pod>::namespaced(client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    assert!(pod.metadata.deletion_timestamp.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn cordoned_nodes_get_the_unschedulable_taint() {
    let (_server, client) = server().await;
    add_node(&client, "node-a", "True").await;
    let _a = heartbeat(&client, "node-a");
    let _controller = lifecycle(&client);
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            "node-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    node_where(&client, "node-a", "the unschedulable taint", |n| {
        taint_keys(n) == ["node.kubernetes.io/unschedulable:NoSchedule"]
    })
    .await;
    nodes
        .patch(
            "node-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": false}})),
        )
        .await
        .unwrap();
    node_where(&client, "node-a", "no taints", |n| taint_keys(n).is_empty()).await;
}

fn ipam(client: &kube::Client, cidr: &str) -> DropGuard {
    let stop = CancellationToken::new();
    let cidr: Ipv4Net = cidr.parse().unwrap();
    tokio::spawn(node_ipam::run(client.clone(), cidr, stop.clone()));
    stop.drop_guard()
}

async fn pod_cidr_of(client: &kube::Client, name: &str) -> String {
    let node = node_where(client, name, &format!("a pod CIDR for {name}"), |n| {
        n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some()
    })
    .await;
    let spec = node.spec.unwrap();
    assert_eq!(spec.pod_cidrs, Some(vec![spec.pod_cidr.clone().unwrap()]));
    spec.pod_cidr.unwrap()
}

async fn create_node(client: &kube::Client, name: &str) {
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_get_pod_cidrs_that_survive_a_restart() {
    let (_server, client) = server().await;
    let controller = ipam(&client, "10.42.0.0/16");
    create_node(&client, "node-a").await;
    assert_eq!(pod_cidr_of(&client, "node-a").await, "10.42.0.0/24");
    create_node(&client, "node-b").await;
    assert_eq!(pod_cidr_of(&client, "node-b").await, "10.42.1.0/24");
    drop(controller);
    // A new controller learns the taken CIDRs from the nodes first.
    let _controller = ipam(&client, "10.42.0.0/16");
    create_node(&client, "node-c").await;
    assert_eq!(pod_cidr_of(&client, "node-c").await, "10.42.2.0/24");
    assert_eq!(pod_cidr_of(&client, "node-a").await, "10.42.0.0/24");
}

#[tokio::test(flavor = "multi_thread")]
async fn cidrs_run_out_and_come_back_when_a_node_goes() {
    let (_server, client) = server().await;
    let _controller = ipam(&client, "10.42.0.0/23");
    create_node(&client, "node-a").await;
    assert_eq!(pod_cidr_of(&client, "node-a").await, "10.42.0.0/24");
    create_node(&client, "node-b").await;
    assert_eq!(pod_cidr_of(&client, "node-b").await, "10.42.1.0/24");
    create_node(&client, "node-c").await;
    eventually("CIDRNotAvailable for node-c", || {
        let client = client.clone();
        async move {
            has_event(
                &events(&client, "default").await,
                "node-c",
                "CIDRNotAvailable",
                "Node node-c status is now: CIDRNotAvailable",
            )
            .then_some(())
        }
    })
    .await;
    Api::<Node>::all(client.clone())
        .delete("node-a", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(pod_cidr_of(&client, "node-c").await, "10.42.0.0/24");
}
