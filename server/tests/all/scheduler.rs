//! The scheduler binds pending pods as kube-scheduler does: to Ready nodes
//! with room, honouring nodeSelector and taints, one pod's room never given
//! twice; when nothing fits it says why in the pod's PodScheduled condition
//! and a FailedScheduling event, and tries again when the cluster changes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skiff_server::run::Components;

use crate::support::TestServer;

const INSUFFICIENT_CPU: &str = "0/1 nodes are available: 1 Insufficient cpu. preemption: \
     0/1 nodes are available: 1 No preemption victims found for incoming pod.";

async fn start() -> (TestServer, kube::Client) {
    let server = TestServer::start(Components {
        scheduler: true,
        controller_manager: false,
    })
    .await;
    let client = server.client().await;
    (server, client)
}

/// Registers a Ready node with `cpu` allocatable, as a kubelet would.
async fn add_node(client: &kube::Client, name: &str, cpu: &str, labels: Value, taints: Value) {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut all_labels = json!({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"});
    if let (Some(all), Some(extra)) = (all_labels.as_object_mut(), labels.as_object()) {
        all.extend(extra.clone());
    }
    let status = json!({
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"},
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"},
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": "2025-01-01T00:00:00Z",
            "lastTransitionTime": "2025-01-01T00:00:00Z",
        }],
    });
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": {"taints": taints},
        "status": status,
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    // The apiserver may drop status on create, as it does for most kinds.
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap();
}

/// Creates a pod in `default` requesting `cpu`, with extra spec fields.
async fn add_pod(client: &kube::Client, name: &str, cpu: &str, extra_spec: Value) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut spec = json!({
        "containers": [{
            "name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
        }],
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": spec,
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

/// Polls the pod until `done` says yes (at most 30 s).
async fn wait_for_pod(
    client: &kube::Client,
    name: &str,
    what: &str,
    done: impl Fn(&Pod) -> bool,
) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut last = None;
    for _ in 0..600 {
        let pod = pods.get(name).await.unwrap();
        if done(&pod) {
            return pod;
        }
        last = Some(pod);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("pod {name} never {what}: {last:#?}");
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

/// Returns once the scheduler has seen `node` Ready (and every node
/// registered before it): a pod without requests pinned there is bound.
async fn scheduler_knows(client: &kube::Client, node: &str) {
    let probe = format!("probe-{node}");
    let pinned = json!({"nodeSelector": {"kubernetes.io/hostname": node}});
    add_pod(client, &probe, "0", pinned).await;
    assert_eq!(wait_bound(client, &probe).await, node);
}

async fn wait_bound(client: &kube::Client, name: &str) -> String {
    let pod = wait_for_pod(client, name, "got bound", |p| node_of(p).is_some()).await;
    node_of(&pod).unwrap_or_default().to_owned()
}

/// The pod's PodScheduled condition: (status, reason, message).
fn pod_scheduled(pod: &Pod) -> Option<(String, String, String)> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")?;
    Some((
        condition.status.clone(),
        condition.reason.clone().unwrap_or_default(),
        condition.message.clone().unwrap_or_default(),
    ))
}

/// Waits until the pod's PodScheduled condition is False with reason
/// Unschedulable and `message`. (The scheduler may first see the pod before
/// a node, or a node before its status: earlier messages can differ.)
async fn wait_unschedulable(client: &kube::Client, name: &str, message: &str) {
    let pod = wait_for_pod(
        client,
        name,
        &format!("was unschedulable with {message:?}"),
        |p| {
            pod_scheduled(p).is_some_and(|(status, reason, text)| {
                status == "False" && reason == "Unschedulable" && text == message
            })
        },
    )
    .await;
    assert_eq!(node_of(&pod), None);
}

/// Waits for an event about pod `name` with this reason and message;
/// returns its type and reporting component.
async fn wait_event(
    client: &kube::Client,
    name: &str,
    reason: &str,
    message: &str,
) -> (String, String) {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let mut seen = Vec::new();
    for _ in 0..600 {
        let list = events.list(&ListParams::default()).await.unwrap();
        seen = list
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .collect();
        let found = seen
            .iter()
            .find(|e| e.reason.as_deref() == Some(reason) && e.message.as_deref() == Some(message));
        if let Some(event) = found {
            return (
                event.type_.clone().unwrap_or_default(),
                event.reporting_component.clone().unwrap_or_default(),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {reason} event {message:?} for pod {name}: {seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_a_pod_to_a_ready_node_and_records_scheduled() {
    let (_server, client) = start().await;
    add_node(&client, "n1", "2", json!({}), json!([])).await;
    add_pod(&client, "web", "500m", json!({})).await;

    assert_eq!(wait_bound(&client, "web").await, "n1");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods.get("web").await.unwrap();
    assert_eq!(
        pod_scheduled(&pod).map(|(status, _, _)| status).as_deref(),
        Some("True")
    );
    let scheduled = "Successfully assigned default/web to n1";
    let (type_, component) = wait_event(&client, "web", "Scheduled", scheduled).await;
    assert_eq!(type_, "Normal");
    assert_eq!(component, "default-scheduler");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn says_why_nothing_fits_then_binds_once_a_node_fits() {
    let (_server, client) = start().await;
    add_node(&client, "small", "1", json!({}), json!([])).await;
    add_pod(&client, "big", "2", json!({})).await;

    wait_unschedulable(&client, "big", INSUFFICIENT_CPU).await;
    let (type_, component) = wait_event(&client, "big", "FailedScheduling", INSUFFICIENT_CPU).await;
    assert_eq!(type_, "Warning");
    assert_eq!(component, "default-scheduler");

    add_node(&client, "large", "4", json!({}), json!([])).await;
    assert_eq!(wait_bound(&client, "big").await, "large");
    let scheduled = "Successfully assigned default/big to large";
    wait_event(&client, "big", "Scheduled", scheduled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_nodes_the_pod_waits_for_one() {
    let (_server, client) = start().await;
    add_pod(&client, "early", "100m", json!({})).await;
    wait_unschedulable(&client, "early", "no nodes available to schedule pods").await;
    add_node(&client, "n1", "1", json!({}), json!([])).await;
    assert_eq!(wait_bound(&client, "early").await, "n1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_node_selectors_and_taints() {
    let (_server, client) = start().await;
    add_node(&client, "plain", "4", json!({}), json!([])).await;
    add_node(&client, "fast", "4", json!({"disk": "ssd"}), json!([])).await;
    let gpu_taint = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
    add_node(&client, "gpu", "4", json!({}), gpu_taint).await;

    add_pod(
        &client,
        "db",
        "100m",
        json!({"nodeSelector": {"disk": "ssd"}}),
    )
    .await;
    assert_eq!(wait_bound(&client, "db").await, "fast");

    let on_gpu = json!({"nodeSelector": {"kubernetes.io/hostname": "gpu"}});
    add_pod(&client, "intruder", "100m", on_gpu.clone()).await;
    let message = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
         2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are \
         available: 3 Preemption is not helpful for scheduling.";
    wait_unschedulable(&client, "intruder", message).await;

    let mut tolerating = on_gpu;
    tolerating["tolerations"] =
        json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]);
    add_pod(&client, "trainer", "100m", tolerating).await;
    assert_eq!(wait_bound(&client, "trainer").await, "gpu");

    // Untainted pods never land on the tainted node.
    for i in 0..4 {
        add_pod(&client, &format!("plain-{i}"), "100m", json!({})).await;
    }
    for i in 0..4 {
        assert_ne!(wait_bound(&client, &format!("plain-{i}")).await, "gpu");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_quick_pods_do_not_share_room_for_one_and_a_deletion_frees_it() {
    let (_server, client) = start().await;
    add_node(&client, "n1", "1", json!({}), json!([])).await;
    scheduler_knows(&client, "n1").await;

    add_pod(&client, "first", "600m", json!({})).await;
    add_pod(&client, "second", "600m", json!({})).await;
    assert_eq!(wait_bound(&client, "first").await, "n1");
    wait_unschedulable(&client, "second", INSUFFICIENT_CPU).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // No kubelet here to finish a graceful deletion: delete at once.
    pods.delete("first", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(wait_bound(&client, "second").await, "n1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_spread_over_nodes() {
    let (_server, client) = start().await;
    add_node(&client, "n1", "4", json!({}), json!([])).await;
    add_node(&client, "n2", "4", json!({}), json!([])).await;
    scheduler_knows(&client, "n2").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..4 {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("web-{i}"), "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let mut on_n1 = 0;
    for i in 0..4 {
        if wait_bound(&client, &format!("web-{i}")).await == "n1" {
            on_n1 += 1;
        }
    }
    assert_eq!(on_n1, 2, "two replicas on each node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_for_another_scheduler_are_left_alone() {
    let (_server, client) = start().await;
    add_node(&client, "n1", "2", json!({}), json!([])).await;
    add_pod(
        &client,
        "custom",
        "100m",
        json!({"schedulerName": "my-scheduler"}),
    )
    .await;
    add_pod(&client, "ordinary", "100m", json!({})).await;
    wait_bound(&client, "ordinary").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let custom = pods.get("custom").await.unwrap();
    assert_eq!(node_of(&custom), None);
    assert_eq!(pod_scheduled(&custom), None);
}
