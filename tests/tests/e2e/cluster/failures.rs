//! Containers that fail: CrashLoopBackOff with a growing back-off, and
//! probes — a failing liveness probe restarts its container, a failing
//! readiness probe keeps the pod out of Ready.

use std::time::Duration;

use skiff_tests::Fixture;

use super::{
    Cluster, SLEEP_FOREVER, assert_contains, container_status, described, described_events,
    event_lines, events, events_for, pod_summary, table,
};

#[test]
fn a_crashing_container_backs_off_in_crash_loop() {
    let cluster = Cluster::start("crash-node");
    let image = cluster.image(Fixture::Busybox);
    cluster.kubectl(&[
        "run",
        "crash",
        &format!("--image={image}"),
        "--restart=Always",
        "--command",
        "--",
        "sh",
        "-c",
        "echo crashing; exit 1",
    ]);
    let uid = cluster.json(&["get", "pod", "crash"])["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pod = format!("crash_default({uid})");

    // kubelet's back-off doubles from 10 s: the waiting message says so,
    // one restart apart.
    let mut seen: Vec<(i64, String)> = Vec::new();
    cluster.eventually(
        "CrashLoopBackOff, back-off 10s then 20s",
        Duration::from_secs(60),
        || {
            let pod_json = cluster.json(&["get", "pod", "crash"]);
            let status = container_status(&pod_json);
            let waiting = &status["state"]["waiting"];
            if waiting["reason"] == "CrashLoopBackOff" {
                let entry = (
                    status["restartCount"].as_i64().unwrap_or(-1),
                    waiting["message"].as_str().unwrap_or_default().to_string(),
                );
                if !seen.contains(&entry) {
                    seen.push(entry);
                }
            }
            if seen.iter().any(|(_, m)| m.starts_with("back-off 20s")) {
                Ok(())
            } else {
                Err(format!("{}; seen {seen:?}", pod_summary(&pod_json)))
            }
        },
    );
    assert!(
        seen.contains(&(
            1,
            format!("back-off 10s restarting failed container=crash pod={pod}")
        )),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(
            2,
            format!("back-off 20s restarting failed container=crash pod={pod}")
        )),
        "{seen:?}"
    );

    // What the last run left, as the API and kubectl show it.
    let pod_json = cluster.json(&["get", "pod", "crash"]);
    let last = &container_status(&pod_json)["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 1, "{last}");
    assert_eq!(last["reason"], "Error", "{last}");
    assert_eq!(
        pod_json["status"]["phase"],
        "Running",
        "{}",
        pod_summary(&pod_json)
    );
    assert_eq!(cluster.kubectl(&["logs", "crash"]), "crashing\n");
    assert_eq!(
        cluster.kubectl(&["logs", "crash", "--previous"]),
        "crashing\n"
    );
    let row = cluster.eventually(
        "STATUS CrashLoopBackOff in kubectl get pod",
        Duration::from_secs(40),
        || {
            let rows = table(&cluster.kubectl(&["get", "pod", "crash"]));
            match rows.first() {
                Some(row) if row["STATUS"] == "CrashLoopBackOff" => Ok(row.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    assert_eq!(row["READY"], "0/1", "{row:?}");
    // RESTARTS: `2 (3s ago)`.
    assert!(row["RESTARTS"].ends_with(" ago)"), "{row:?}");
    let restarts: i64 = row["RESTARTS"]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(restarts >= 2, "{row:?}");

    let text = cluster.kubectl(&["describe", "pod", "crash"]);
    assert_eq!(described(&text, "State"), Some("Waiting"), "{text}");
    assert_eq!(
        described(&text, "Reason"),
        Some("CrashLoopBackOff"),
        "{text}"
    );
    assert_eq!(described(&text, "Last State"), Some("Terminated"), "{text}");
    assert_eq!(described(&text, "Exit Code"), Some("1"), "{text}");
    let story = described_events(&text);
    assert!(
        story.iter().any(|row| row["Type"] == "Warning"
            && row["Reason"] == "BackOff"
            && row["From"] == "kubelet"
            && row["Message"]
                == format!("Back-off restarting failed container crash in pod {pod}")),
        "{text}"
    );
    let all = events(&cluster);
    let backoff = events_for(&all, "Pod", "crash", "BackOff");
    assert!(!backoff.is_empty(), "{}", event_lines(&all));
    assert_eq!(backoff[0]["type"], "Warning");
}

const PROBED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: liveness
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: liveness
    image: IMAGE
    command: [sh, -c, "echo run; SLEEP"]
    livenessProbe:
      exec:
        command: ["false"]
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: unready
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: unready
    image: IMAGE
    command: [sh, -c, "SLEEP"]
    readinessProbe:
      exec:
        command: ["false"]
      periodSeconds: 1
"#;

#[test]
fn a_failing_liveness_probe_restarts_its_container() {
    let cluster = Cluster::start("probe-node");
    let image = cluster.image(Fixture::Busybox);
    let manifest = PROBED
        .replace("IMAGE", &image)
        .replace("SLEEP", SLEEP_FOREVER);
    assert_contains(&cluster.apply(&manifest), "pod/liveness created");

    let pod = cluster.eventually(
        "the liveness pod's container restarted",
        Duration::from_secs(60),
        || {
            let pod = cluster.json(&["get", "pod", "liveness"]);
            if container_status(&pod)["restartCount"].as_i64().unwrap_or(0) >= 1 {
                Ok(pod)
            } else {
                Err(pod_summary(&pod))
            }
        },
    );
    // Killed by the kubelet, the trap made it exit 0.
    let last = &container_status(&pod)["lastState"]["terminated"];
    assert!(last.is_object(), "{}", pod_summary(&pod));
    let all = cluster.eventually(
        "Unhealthy and Killing events",
        Duration::from_secs(20),
        || {
            let all = events(&cluster);
            if !events_for(&all, "Pod", "liveness", "Unhealthy").is_empty()
                && !events_for(&all, "Pod", "liveness", "Killing").is_empty()
            {
                Ok(all)
            } else {
                Err(event_lines(&all))
            }
        },
    );
    let unhealthy = events_for(&all, "Pod", "liveness", "Unhealthy")[0];
    assert_eq!(unhealthy["type"], "Warning", "{unhealthy}");
    assert!(
        unhealthy["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Liveness probe failed"),
        "{unhealthy}"
    );
    let killing = events_for(&all, "Pod", "liveness", "Killing")[0];
    assert_eq!(killing["type"], "Normal", "{killing}");
    assert_eq!(
        killing["message"], "Container liveness failed liveness probe, will be restarted",
        "{killing}"
    );
    // The restarted container ran again.
    cluster.eventually("a second run in the logs", Duration::from_secs(20), || {
        let logs = cluster.kubectl(&["logs", "liveness", "--previous"]);
        if logs == "run\n" { Ok(()) } else { Err(logs) }
    });

    // A failing readiness probe: Running, never Ready, never restarted.
    let pod = cluster.eventually(
        "the unready pod Running and probed",
        Duration::from_secs(60),
        || {
            let all = events(&cluster);
            let pod = cluster.json(&["get", "pod", "unready"]);
            let probed = !events_for(&all, "Pod", "unready", "Unhealthy").is_empty();
            if pod["status"]["phase"] == "Running" && probed {
                Ok(pod)
            } else {
                Err(format!("{}\n{}", pod_summary(&pod), event_lines(&all)))
            }
        },
    );
    assert!(!super::condition(&pod, "Ready"), "{}", pod_summary(&pod));
    assert!(
        !super::condition(&pod, "ContainersReady"),
        "{}",
        pod_summary(&pod)
    );
    assert_eq!(container_status(&pod)["ready"], false);
    assert_eq!(container_status(&pod)["restartCount"], 0);
    let all = events(&cluster);
    let unhealthy = events_for(&all, "Pod", "unready", "Unhealthy")[0];
    assert!(
        unhealthy["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Readiness probe failed"),
        "{unhealthy}"
    );
    let rows = table(&cluster.kubectl(&["get", "pod", "unready"]));
    assert_eq!(
        (rows[0]["READY"].as_str(), rows[0]["STATUS"].as_str()),
        ("0/1", "Running"),
        "{rows:?}"
    );
}
