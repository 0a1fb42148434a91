//! A `skiff server` killed and started again keeps its pods: same
//! containers, same IPs, no restarts, still serving; the node turns Ready
//! again and new work still runs.

use std::time::Duration;

use serde_json::Value;
use skiff_tests::Fixture;

use super::{Cluster, HTTPD, condition, container_status, name, pod_summary};

/// What must not change across a server restart.
#[derive(Debug, PartialEq)]
struct Running {
    pod: String,
    uid: String,
    ip: String,
    container_id: String,
    started_at: String,
    restarts: i64,
}

fn running(pod: &Value) -> Running {
    let status = container_status(pod);
    Running {
        pod: name(pod).to_string(),
        uid: pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        ip: pod["status"]["podIP"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        container_id: status["containerID"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        started_at: status["state"]["running"]["startedAt"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        restarts: status["restartCount"].as_i64().unwrap_or(-1),
    }
}

#[test]
fn a_server_restart_leaves_the_pods_running() {
    let mut cluster = Cluster::start("restart-node");
    let image = cluster.image(Fixture::Busybox);
    cluster.kubectl(&[
        "create",
        "deployment",
        "web",
        &format!("--image={image}"),
        "--replicas=2",
        "--",
        "sh",
        "-c",
        HTTPD,
    ]);
    cluster.rollout_status("web");
    let pods = cluster.ready_pods("app=web", 2);
    let before: Vec<Running> = pods.iter().map(running).collect();
    for pod in &pods {
        assert_eq!(
            cluster.http_from_pod(pod, "/etc/skiff-release").trim(),
            "2.0"
        );
    }
    let lease = |cluster: &Cluster| {
        cluster.kubectl(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            &cluster.node_name,
            "-o",
            "jsonpath={.spec.renewTime}",
        ])
    };
    let renewed_before = lease(&cluster);

    if let Err(err) = cluster.server.restart_after_kill() {
        cluster.fail(&format!("the server did not come back: {err}"));
    }

    // The new kubelet has taken over once it renews the node's Lease.
    cluster.eventually(
        "the node's Lease renewed by the restarted kubelet",
        Duration::from_secs(60),
        || {
            let renewed = lease(&cluster);
            if renewed != renewed_before && !renewed.is_empty() {
                Ok(())
            } else {
                Err(format!("renewTime {renewed:?}"))
            }
        },
    );
    // New work runs: by the time a new pod is Ready, the kubelet has synced
    // the old ones too.
    cluster.kubectl(&["scale", "deployment/web", "--replicas=3"]);
    cluster.rollout_status("web");
    let pods = cluster.ready_pods("app=web", 3);
    let after: Vec<Running> = pods
        .iter()
        .map(running)
        .filter(|r| before.iter().any(|b| b.pod == r.pod))
        .collect();
    assert_eq!(
        after,
        before,
        "the pods changed across the restart:\n{}",
        pods.iter().map(pod_summary).collect::<Vec<_>>().join("\n")
    );
    for pod in pods
        .iter()
        .filter(|p| before.iter().any(|b| b.pod == name(p)))
    {
        assert!(condition(pod, "Ready"), "{}", pod_summary(pod));
        assert_eq!(
            cluster.http_from_pod(pod, "/etc/skiff-release").trim(),
            "2.0"
        );
        // Each container ran once: `started` in its log a single time.
        let logs = cluster.kubectl(&["logs", name(pod)]);
        assert_eq!(logs, "started\n", "{}", name(pod));
        assert_eq!(
            cluster
                .kubectl(&["exec", name(pod), "--", "cat", "/etc/skiff-release"])
                .trim(),
            "2.0"
        );
    }
    let ready = cluster.kubectl(&[
        "get",
        "node",
        &cluster.node_name,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(ready, "True");
}
