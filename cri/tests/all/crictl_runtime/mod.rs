//! `skiff crictl`'s runtime verbs against a fake RuntimeService on a real
//! socket: what they send, what they print, how they fail.

mod containers;
mod fake;
mod harness;
mod logs;
mod pods;
mod streams;

use harness::Harness;
use serde_json::Value;

pub(crate) const POD_JSON: &str = r#"{
  "metadata": {"name": "nginx-sandbox", "namespace": "default", "attempt": 1, "uid": "hdishd83djaidwnduwk28bcsb"},
  "hostname": "nginx",
  "log_directory": "LOGDIR",
  "labels": {"app": "nginx"},
  "port_mappings": [{"container_port": 80, "host_port": 8080}],
  "linux": {"cgroup_parent": "/skiff"}
}"#;

pub(crate) const POD_YAML: &str = "\
metadata:
  name: busybox-sandbox
  namespace: kube-system
  uid: busybox-uid
logDirectory: LOGDIR
labels:
  app: busybox
";

pub(crate) const CONTAINER_JSON: &str = r#"{
  "metadata": {"name": "web"},
  "image": {"image": "busybox"},
  "command": ["sh", "-c", "sleep 1000"],
  "log_path": "web/0.log",
  "linux": {}
}"#;

/// A pod config in the harness directory, logging under `logs/`.
pub(crate) fn pod_config(harness: &Harness, name: &str, text: &str) -> String {
    let logs = harness.dir.path().join("logs");
    harness.write(name, &text.replace("LOGDIR", &logs.display().to_string()))
}

/// Runs a pod from `text`; its ID.
pub(crate) async fn run_pod(harness: &Harness, name: &str, text: &str) -> String {
    let path = pod_config(harness, name, text);
    let (code, out, err) = harness.crictl(&["runp", &path]).await;
    assert_eq!(code, 0, "{err}");
    let id = out.trim_end().to_owned();
    assert_eq!(id.len(), 64, "{out}");
    id
}

/// A pod with a created (not started) container; (pod ID, container ID).
pub(crate) async fn pod_with_container(harness: &Harness) -> (String, String) {
    let pod = run_pod(harness, "pod.json", POD_JSON).await;
    let pod_path = pod_config(harness, "pod.json", POD_JSON);
    let container_path = harness.write("container.json", CONTAINER_JSON);
    let (code, out, err) = harness
        .crictl(&["create", &pod[..5], &container_path, &pod_path])
        .await;
    assert_eq!(code, 0, "{err}");
    (pod, out.trim_end().to_owned())
}

pub(crate) fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}
