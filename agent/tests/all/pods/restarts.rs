//! Exits and restarts: a completed pod, a crash loop with growing
//! back-off, a failed liveness probe, init containers in order.

use serde_json::json;

use super::harness::{
    BUSYBOX, PodNode, condition, container, phase, restart_count, waiting_message, waiting_reason,
};

#[tokio::test(flavor = "multi_thread")]
async fn exits_complete_crash_loop_and_restart_as_the_policy_says() {
    let node = PodNode::start().await;
    let pod = |name: &str, policy: &str, script: &str| {
        json!({
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": policy,
                "containers": [{
                    "name": "c",
                    "image": BUSYBOX,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", script],
                    "terminationMessagePolicy": "FallbackToLogsOnError"
                }]
            }
        })
    };
    node.create_pod(pod("done", "Never", "echo finished > /dev/termination-log"))
        .await;
    node.create_pod(pod("crash", "Always", "echo boom; exit 3"))
        .await;
    node.create_pod(pod("fails-once", "OnFailure", "test -f /tmp/x; exit 7"))
        .await;

    let done = node
        .wait_pod("done", "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    let terminated = container(&done, "c").state.unwrap().terminated.unwrap();
    assert_eq!(terminated.exit_code, 0);
    assert_eq!(terminated.reason.as_deref(), Some("Completed"));
    assert_eq!(terminated.message.as_deref(), Some("finished\n"));
    assert!(!condition(&done, "Ready"));

    let crashing = node
        .wait_pod("crash", "in CrashLoopBackOff", |p| {
            waiting_reason(p, "c").as_deref() == Some("CrashLoopBackOff")
                && restart_count(p, "c") >= 1
        })
        .await;
    assert_eq!(phase(&crashing), "Running");
    let status = container(&crashing, "c");
    let waiting = status.state.unwrap().waiting.unwrap();
    let uid = crashing.metadata.uid.clone().unwrap();
    assert!(
        waiting
            .message
            .as_deref()
            .unwrap()
            .starts_with("back-off 10s restarting failed container=c pod=crash_default("),
        "{waiting:?}"
    );
    let last = status.last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 3);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    assert_eq!(last.message.as_deref(), Some("boom\n"), "the log's tail");
    node.wait_event(
        "crash",
        "BackOff",
        &format!("Back-off restarting failed container c in pod crash_default({uid})"),
    )
    .await;
    // The back-off grows.
    node.wait_pod("crash", "backing off 20s", |p| {
        waiting_message(p, "c").is_some_and(|m| m.starts_with("back-off 20s"))
    })
    .await;

    // OnFailure restarts a failing container too.
    node.wait_pod("fails-once", "restarted", |p| restart_count(p, "c") >= 1)
        .await;
    node.delete_all_pods().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_liveness_probe_restarts_the_container() {
    let node = PodNode::start().await;
    node.create_pod(json!({
        "metadata": {"name": "sick"},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "c",
                "image": BUSYBOX,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600"],
                "livenessProbe": {
                    "exec": {"command": ["test", "-f", "/tmp/healthy"]},
                    "periodSeconds": 1,
                    "failureThreshold": 1
                }
            }]
        }
    }))
    .await;
    node.wait_pod("sick", "restarted", |p| restart_count(p, "c") >= 1)
        .await;
    node.wait_event("sick", "Unhealthy", "Liveness probe failed")
        .await;
    node.wait_event(
        "sick",
        "Killing",
        "Container c failed liveness probe, will be restarted",
    )
    .await;
    node.delete_all_pods().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn init_containers_run_in_order_before_the_containers() {
    let node = PodNode::start().await;
    let step = |name: &str| {
        json!({
            "name": name,
            "image": BUSYBOX,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", format!("sleep 0.5; echo {name} >> /work/order")],
            "volumeMounts": [{"name": "work", "mountPath": "/work"}]
        })
    };
    node.create_pod(json!({
        "metadata": {"name": "init"},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [step("first"), step("second")],
            "containers": [{
                "name": "main",
                "image": BUSYBOX,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "cat /work/order > /dev/termination-log"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]
            }],
            "volumes": [{"name": "work", "emptyDir": {}}]
        }
    }))
    .await;
    let pending = node
        .wait_pod("init", "initializing", |p| {
            waiting_reason(p, "main").as_deref() == Some("PodInitializing")
        })
        .await;
    assert_eq!(phase(&pending), "Pending");
    let done = node
        .wait_pod("init", "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    let message = container(&done, "main")
        .state
        .unwrap()
        .terminated
        .unwrap()
        .message
        .unwrap();
    assert_eq!(message, "first\nsecond\n");
    for name in ["first", "second"] {
        let t = container(&done, name).state.unwrap().terminated.unwrap();
        assert_eq!(t.reason.as_deref(), Some("Completed"));
    }
    assert!(condition(&done, "Initialized"));
    node.delete_all_pods().await;
}
