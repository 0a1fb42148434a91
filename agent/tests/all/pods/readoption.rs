//! A restarted kubelet re-adopts running pods without restarting them,
//! and removes the sandboxes of pods deleted while it was down.

use std::time::Duration;

use kube::api::DeleteParams;
use serde_json::json;

use super::harness::{BUSYBOX, PodNode, condition, container, phase};

fn sleeper(name: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c",
                "image": BUSYBOX,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]
            }]
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_kubelet_keeps_running_pods_and_removes_deleted_ones() {
    let mut node = PodNode::start().await;
    node.create_pod(sleeper("keep")).await;
    let gone = node.create_pod(sleeper("gone")).await;
    let running = node
        .wait_pod("keep", "Ready", |p| condition(p, "Ready"))
        .await;
    node.wait_pod("gone", "Ready", |p| condition(p, "Ready"))
        .await;
    let id = container(&running, "c").container_id.unwrap();

    node.stop_kubelet().await;
    // Deleted for good while the kubelet is away.
    node.pods()
        .delete("gone", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    node.wait_gone("gone").await;
    node.start_kubelet();

    let uid = gone.metadata.uid.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while node.sandboxes_of(&uid).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the orphaned sandbox stays"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give the new kubelet a few syncs: nothing restarts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = node.pods().get("keep").await.unwrap();
    let c = container(&after, "c");
    assert_eq!(c.container_id.as_deref(), Some(id.as_str()));
    assert_eq!(c.restart_count, 0);
    assert_eq!(phase(&after), "Running");
    assert!(condition(&after, "Ready"));
    node.delete_all_pods().await;
}
