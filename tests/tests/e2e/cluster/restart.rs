//! A `skiff server` killed (SIGKILL) or stopped (SIGTERM, as `systemctl
//! restart` does) and started again keeps its pods: same containers, same
//! IPs, no restarts, still serving; the node stays Ready and new work
//! still runs.

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

    // A crash.
    let renewed = lease_renewed(&cluster);
    if let Err(err) = cluster.server.restart_after_kill() {
        cluster.fail(&format!(
            "the server did not come back after SIGKILL: {err}"
        ));
    }
    check_pods_kept(&cluster, &renewed, &before, 3);

    // A clean stop: SIGTERM stops the server, never its pods.
    let renewed = lease_renewed(&cluster);
    let pid = cluster.server.pid();
    let pid_t = libc::pid_t::try_from(pid).unwrap_or(libc::pid_t::MAX);
    // SAFETY: kill has no memory effects; the pid is our child's, not reaped.
    assert_eq!(unsafe { libc::kill(pid_t, libc::SIGTERM) }, 0);
    cluster.eventually(
        "the server exited after SIGTERM",
        Duration::from_secs(30),
        || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) Z ...`: exited, not yet reaped.
            match stat.rsplit_once(')').map(|(_, rest)| rest.trim_start()) {
                Some(rest) if !rest.starts_with('Z') => Err(format!("still running: {rest:.20}")),
                _ => Ok(()),
            }
        },
    );
    if let Err(err) = cluster.server.restart_after_kill() {
        cluster.fail(&format!(
            "the server did not come back after SIGTERM: {err}"
        ));
    }
    check_pods_kept(&cluster, &renewed, &before, 4);
}

/// The node Lease's renewTime now.
fn lease_renewed(cluster: &Cluster) -> String {
    cluster.kubectl(&[
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        &cluster.node_name,
        "-o",
        "jsonpath={.spec.renewTime}",
    ])
}

/// After a restart: once the new kubelet renewed the Lease (past
/// `renewed_before`) and ran a new pod (the Deployment scaled to
/// `replicas`), the pods of `before` are unchanged and still serve.
fn check_pods_kept(cluster: &Cluster, renewed_before: &str, before: &[Running], replicas: usize) {
    cluster.eventually(
        "the node's Lease renewed by the restarted kubelet",
        Duration::from_secs(60),
        || {
            let renewed = lease_renewed(cluster);
            if renewed != renewed_before && !renewed.is_empty() {
                Ok(())
            } else {
                Err(format!("renewTime {renewed:?}"))
            }
        },
    );
    // By the time a new pod is Ready, the kubelet has synced the old ones.
    cluster.kubectl(&["scale", "deployment/web", &format!("--replicas={replicas}")]);
    cluster.rollout_status("web");
    let pods = cluster.ready_pods("app=web", replicas);
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
