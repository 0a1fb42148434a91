//! The scheduler as kubectl users meet it: pods that fit nowhere stay
//! Pending with kube-scheduler's explanation, and get scheduled once the
//! node changes (a label, a removed taint).

use std::time::Duration;

use serde_json::Value;
use skiff_tests::Fixture;

use super::{
    Cluster, SLEEP_FOREVER, described, described_events, event_lines, events, events_for,
    pod_summary,
};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: huge
spec:
  containers:
  - name: huge
    image: IMAGE
    command: [sh, -c, "SLEEP"]
    resources:
      requests: {cpu: "1000"}
---
apiVersion: v1
kind: Pod
metadata:
  name: picky
spec:
  terminationGracePeriodSeconds: 5
  nodeSelector: {disk: ssd}
  containers:
  - name: picky
    image: IMAGE
    command: [sh, -c, "SLEEP"]
"#;

const TOLERANT: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: tolerant
spec:
  terminationGracePeriodSeconds: 5
  tolerations:
  - {key: dedicated, operator: Equal, value: test, effect: NoSchedule}
  containers:
  - name: tolerant
    image: IMAGE
    command: [sh, -c, "SLEEP"]
---
apiVersion: v1
kind: Pod
metadata:
  name: intolerant
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: intolerant
    image: IMAGE
    command: [sh, -c, "SLEEP"]
"#;

/// The PodScheduled condition once it is False; its message.
fn unschedulable(cluster: &Cluster, pod: &str) -> String {
    cluster.eventually(
        &format!("{pod} unschedulable"),
        Duration::from_secs(30),
        || {
            let json = cluster.json(&["get", "pod", pod]);
            let scheduled: Option<Value> = json["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled").cloned());
            match scheduled {
                Some(c) if c["status"] == "False" && c["reason"] == "Unschedulable" => {
                    assert_eq!(json["status"]["phase"], "Pending");
                    Ok(c["message"].as_str().unwrap_or_default().to_string())
                }
                other => Err(format!("{}: {other:?}", pod_summary(&json))),
            }
        },
    )
}

#[test]
fn the_scheduler_explains_pending_pods_and_retries_when_the_node_changes() {
    let cluster = Cluster::start("sched-node");
    let node = cluster.node_name.clone();
    let manifest = |text: &str| {
        text.replace("IMAGE", &cluster.image(Fixture::Busybox))
            .replace("SLEEP", SLEEP_FOREVER)
    };
    cluster.apply(&manifest(PODS));

    // Too big for the node.
    let message = unschedulable(&cluster, "huge");
    assert!(
        message.starts_with("0/1 nodes are available: 1 Insufficient cpu."),
        "{message}"
    );
    let all = cluster.eventually("FailedScheduling for huge", Duration::from_secs(10), || {
        let all = events(&cluster);
        if events_for(&all, "Pod", "huge", "FailedScheduling").is_empty() {
            Err(event_lines(&all))
        } else {
            Ok(all)
        }
    });
    let failed = events_for(&all, "Pod", "huge", "FailedScheduling")[0];
    assert_eq!(failed["type"], "Warning", "{failed}");
    assert_eq!(
        failed["message"].as_str(),
        Some(message.as_str()),
        "{failed}"
    );
    let text = cluster.kubectl(&["describe", "pod", "huge"]);
    assert_eq!(described(&text, "Status"), Some("Pending"), "{text}");
    assert_eq!(described(&text, "Node"), Some("<none>"), "{text}");
    assert!(
        described_events(&text)
            .iter()
            .any(|row| row["Type"] == "Warning"
                && row["Reason"] == "FailedScheduling"
                && row["From"] == "default-scheduler"
                && row["Message"] == message),
        "{text}"
    );

    // A nodeSelector no node matches, until the node gets the label.
    let message = unschedulable(&cluster, "picky");
    assert!(
        message.starts_with(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        ),
        "{message}"
    );
    cluster.kubectl(&["label", "node", &node, "disk=ssd"]);
    cluster.wait_pod_ready("picky");

    // A taint keeps out the pods that do not tolerate it.
    cluster.kubectl(&["taint", "node", &node, "dedicated=test:NoSchedule"]);
    cluster.apply(&manifest(TOLERANT));
    cluster.wait_pod_ready("tolerant");
    let message = unschedulable(&cluster, "intolerant");
    assert!(
        message.starts_with(
            "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: test}."
        ),
        "{message}"
    );
    // NoSchedule leaves the running pod alone.
    let picky = cluster.json(&["get", "pod", "picky"]);
    assert_eq!(
        picky["status"]["phase"],
        "Running",
        "{}",
        pod_summary(&picky)
    );
    cluster.kubectl(&["taint", "node", &node, "dedicated=test:NoSchedule-"]);
    cluster.wait_pod_ready("intolerant");
}
