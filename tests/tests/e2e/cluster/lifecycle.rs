//! A pod's life as kubectl shows it: init containers in order, a missing
//! image (ErrImagePull, ImagePullBackOff), OOMKilled, a failing init
//! container, and graceful termination (Terminating, preStop before
//! SIGTERM, SIGKILL after the grace period).

use std::time::Duration;

use skiff_tests::Fixture;

use super::{
    Cluster, assert_contains, container_status, event_lines, events, events_for, pod_summary, table,
};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: init
spec:
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: first
    image: IMAGE
    command: [sh, -c, "echo one >> /work/order; echo first done"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: IMAGE
    command: [sh, -c, "echo two >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: IMAGE
    command: [sh, -c, "cat /work/order; trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{name: work, mountPath: /work}]
  volumes:
  - name: work
    emptyDir: {}
---
apiVersion: v1
kind: Pod
metadata:
  name: broken-init
spec:
  restartPolicy: Never
  initContainers:
  - name: fails
    image: IMAGE
    command: [sh, -c, "exit 3"]
  containers:
  - name: never
    image: IMAGE
    command: [sh, -c, "echo must not run"]
---
apiVersion: v1
kind: Pod
metadata:
  name: ghost
spec:
  containers:
  - name: ghost
    image: MISSING
---
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: IMAGE
    # tail keeps its whole input when there is no newline in it.
    command: [sh, -c, "head -c 300m /dev/zero | tail"]
    resources:
      limits: {memory: 32Mi}
"#;

#[test]
fn init_containers_missing_images_and_oom_as_kubectl_shows_them() {
    let cluster = Cluster::start("life-node");
    let image = cluster.image(Fixture::Busybox);
    let missing = cluster.regs.open.reference("skiff-test/missing:latest");
    cluster.apply(&PODS.replace("IMAGE", &image).replace("MISSING", &missing));

    // Init containers run in order, to completion, before the main one.
    cluster.wait_pod_ready("init");
    assert_eq!(cluster.kubectl(&["logs", "init"]), "one\ntwo\n");
    assert_eq!(
        cluster.kubectl(&["logs", "init", "-c", "first"]),
        "first done\n"
    );
    let pod = cluster.json(&["get", "pod", "init"]);
    let inits = pod["status"]["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(inits.len(), 2, "{}", pod["status"]);
    for init in &inits {
        let done = &init["state"]["terminated"];
        assert_eq!(
            (done["exitCode"].as_i64(), done["reason"].as_str()),
            (Some(0), Some("Completed")),
            "{init}"
        );
    }
    assert!(
        inits[0]["state"]["terminated"]["finishedAt"].as_str()
            <= inits[1]["state"]["terminated"]["startedAt"].as_str(),
        "{inits:?}"
    );
    let rows = table(&cluster.kubectl(&["get", "pod", "init"]));
    assert_eq!(
        (rows[0]["READY"].as_str(), rows[0]["STATUS"].as_str()),
        ("1/1", "Running"),
        "{rows:?}"
    );

    // A failing init container fails the pod (restartPolicy Never); the
    // main container never runs.
    let pod = cluster.eventually("broken-init Failed", Duration::from_secs(60), || {
        let pod = cluster.json(&["get", "pod", "broken-init"]);
        if pod["status"]["phase"] == "Failed" {
            Ok(pod)
        } else {
            Err(pod_summary(&pod))
        }
    });
    let init = &pod["status"]["initContainerStatuses"][0]["state"]["terminated"];
    assert_eq!(init["exitCode"], 3, "{}", pod["status"]);
    assert!(
        container_status(&pod)["state"]["running"].is_null()
            && container_status(&pod)["state"]["terminated"]["startedAt"].is_null(),
        "{}",
        pod["status"]
    );
    let rows = table(&cluster.kubectl(&["get", "pod", "broken-init"]));
    assert_eq!(rows[0]["STATUS"], "Init:Error", "{rows:?}");

    // A missing image: ErrImagePull, then ImagePullBackOff.
    let row = cluster.eventually("ghost in ImagePullBackOff", Duration::from_secs(60), || {
        let rows = table(&cluster.kubectl(&["get", "pod", "ghost"]));
        match rows.first() {
            Some(row) if row["STATUS"] == "ImagePullBackOff" => Ok(row.clone()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(row["READY"], "0/1", "{row:?}");
    let pod = cluster.json(&["get", "pod", "ghost"]);
    let waiting = &container_status(&pod)["state"]["waiting"];
    assert_eq!(waiting["reason"], "ImagePullBackOff", "{waiting}");
    assert!(
        waiting["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("Back-off pulling image \"{missing}\"")),
        "{waiting}"
    );
    let all = events(&cluster);
    let failed: Vec<String> = events_for(&all, "Pod", "ghost", "Failed")
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        failed
            .iter()
            .any(|m| m.starts_with(&format!("Failed to pull image \"{missing}\": "))),
        "{}",
        event_lines(&all)
    );
    assert!(
        failed.iter().any(|m| m == "Error: ErrImagePull"),
        "{}",
        event_lines(&all)
    );
    let backoff = events_for(&all, "Pod", "ghost", "BackOff");
    assert!(
        backoff.iter().any(|e| e["type"] == "Normal"
            && e["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("Back-off pulling image \"{missing}\""))),
        "{}",
        event_lines(&all)
    );

    // Over its memory limit: OOMKilled.
    let pod = cluster.eventually("hog OOMKilled", Duration::from_secs(60), || {
        let pod = cluster.json(&["get", "pod", "hog"]);
        if pod["status"]["phase"] == "Failed" {
            Ok(pod)
        } else {
            Err(pod_summary(&pod))
        }
    });
    let done = &container_status(&pod)["state"]["terminated"];
    assert_eq!(done["reason"], "OOMKilled", "{done}");
    assert_eq!(done["exitCode"], 137, "{done}");
    let rows = table(&cluster.kubectl(&["get", "pod", "hog"]));
    assert_eq!(rows[0]["STATUS"], "OOMKilled", "{rows:?}");
}

const GRACEFUL: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: grace
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: grace
    image: IMAGE
    command:
    - sh
    - -c
    - "trap 'echo term >> /host/log; exit 0' TERM; echo started >> /host/log; while true; do sleep 1; done"
    lifecycle:
      preStop:
        exec:
          command: [sh, -c, "echo prestop >> /host/log; sleep 2"]
    volumeMounts: [{name: host, mountPath: /host}]
  volumes:
  - name: host
    hostPath: {path: HOSTDIR, type: Directory}
---
apiVersion: v1
kind: Pod
metadata:
  name: stubborn
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: stubborn
    image: IMAGE
    command: [sh, -c, "trap '' TERM; while true; do sleep 1; done"]
"#;

#[test]
fn graceful_termination_runs_pre_stop_then_sigterm_then_sigkill() {
    let cluster = Cluster::start("grace-node");
    let host = cluster.scratch().join("grace");
    std::fs::create_dir_all(&host).expect("create the hostPath directory");
    cluster.apply(
        &GRACEFUL
            .replace("IMAGE", &cluster.image(Fixture::Busybox))
            .replace("HOSTDIR", &host.display().to_string()),
    );
    cluster.wait_pod_ready("grace");
    cluster.wait_pod_ready("stubborn");
    let log = host.join("log");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap_or_default(),
        "started\n"
    );

    // preStop, then SIGTERM; kubectl shows Terminating meanwhile.
    assert_contains(
        &cluster.kubectl(&["delete", "pod", "grace", "--wait=false"]),
        "pod \"grace\" deleted",
    );
    cluster.eventually("grace shown Terminating", Duration::from_secs(10), || {
        let rows = table(&cluster.kubectl(&["get", "pod", "grace"]));
        match rows.first() {
            Some(row) if row["STATUS"] == "Terminating" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    cluster.eventually("grace gone", Duration::from_secs(30), || {
        let out = cluster.run(&["get", "pod", "grace", "-o", "name"]);
        if out.status.success() {
            Err(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Ok(())
        }
    });
    assert_eq!(
        std::fs::read_to_string(&log).unwrap_or_default(),
        "started\nprestop\nterm\n",
        "preStop runs to its end before SIGTERM"
    );

    // A container that ignores SIGTERM is killed once its 2 s are up
    // (kubectl delete waits for the pod to be gone).
    let out = cluster.run(&["delete", "pod", "stubborn", "--timeout=30s"]);
    assert!(
        out.status.success(),
        "stubborn not deleted within 30 s of a 2 s grace period: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = events(&cluster);
    let killing = events_for(&all, "Pod", "stubborn", "Killing");
    assert_eq!(
        killing.first().map(|e| e["message"].clone()),
        Some("Stopping container stubborn".into()),
        "{}",
        event_lines(&all)
    );
}
