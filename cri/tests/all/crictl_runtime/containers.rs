//! The container verbs: create, start, run, ps, inspect, update, stop, rm;
//! and stats, statsp and info.

use super::fake::IMAGE_ID;
use super::{CONTAINER_JSON, POD_JSON, POD_YAML, json, pod_config, pod_with_container, run_pod};
use crate::crictl_runtime::harness::Harness;

#[tokio::test]
async fn containers_go_through_their_lifecycle() {
    let harness = Harness::start().await;
    let (pod, id) = pod_with_container(&harness).await;
    assert_eq!(id.len(), 64);
    {
        let state = harness.state();
        let created = state
            .calls
            .iter()
            .find(|c| c.starts_with("CreateContainer"))
            .unwrap();
        assert_eq!(
            created,
            &format!(
                "CreateContainer web in {pod} image=busybox user_specified=busybox sandbox_uid=hdishd83djaidwnduwk28bcsb"
            )
        );
        assert!(state.pulled.is_empty(), "create does not pull by default");
    }

    // Only running containers by default.
    let (_, out, _) = harness.crictl(&["ps", "-q"]).await;
    assert_eq!(out, "");
    let (_, out, _) = harness.crictl(&["ps", "-a"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let header: Vec<&str> = lines[0]
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "CONTAINER",
            "IMAGE",
            "CREATED",
            "STATE",
            "NAME",
            "ATTEMPT",
            "POD ID",
            "POD",
            "NAMESPACE"
        ]
    );
    let row: Vec<&str> = lines[1]
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        row,
        [
            &id[..13],
            "busybox",
            "Less than a second ago",
            "Created",
            "web",
            "0",
            &pod[..13],
            "nginx-sandbox",
            "default"
        ]
    );

    let (code, out, err) = harness.crictl(&["start", &id[..4]]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{}\n", &id[..4]));
    let (_, out, _) = harness.crictl(&["ps", "-q"]).await;
    assert_eq!(out, format!("{id}\n"));
    let (_, out, _) = harness
        .crictl(&[
            "ps",
            "-q",
            "--pod",
            &pod[..5],
            "--name",
            "^we",
            "--image",
            "busybox",
        ])
        .await;
    assert_eq!(out, format!("{id}\n"));
    let (_, out, _) = harness
        .crictl(&["ps", "-q", "--image", "missing-image"])
        .await;
    assert_eq!(out, "");
    let (_, out, _) = harness.crictl(&["ps", "-r"]).await;
    assert!(out.contains("docker.io/library/busybox:latest"), "{out}");
    let (_, out, _) = harness.crictl(&["ps", "-o", "json"]).await;
    let listed = json(&out);
    assert_eq!(listed["containers"][0]["state"], "CONTAINER_RUNNING");
    assert_eq!(listed["containers"][0]["podSandboxId"], pod.as_str());

    let (code, out, err) = harness.crictl(&["inspect", &id]).await;
    assert_eq!(code, 0, "{err}");
    let value = json(&out);
    assert_eq!(value["status"]["state"], "CONTAINER_RUNNING");
    assert_eq!(value["status"]["finishedAt"], "0001-01-01T00:00:00Z");
    assert_ne!(value["status"]["startedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(value["status"]["imageRef"], IMAGE_ID);
    assert!(value["status"]["resources"].is_null());
    assert_eq!(value["info"]["sandboxID"], pod.as_str());
    assert!(
        value["status"]["logPath"]
            .as_str()
            .unwrap()
            .ends_with("logs/web/0.log")
    );

    let (code, out, err) = harness
        .crictl(&[
            "update",
            "--memory",
            "104857600",
            "--cpu-shares",
            "512",
            &id[..6],
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{}\n", &id[..6]));
    assert!(
        harness.state().calls.contains(&format!(
            "UpdateContainerResources {id} memory=104857600 shares=512 quota=0 cpus=\"\""
        )),
        "{:?}",
        harness.state().calls
    );

    let (code, _, err) = harness.crictl(&["rm", &id]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "container \\\"{id}\\\" is running, please stop it first"
        )),
        "{err}"
    );
    let (code, out, err) = harness.crictl(&["stop", "-t", "5", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{id}\n"));
    assert!(
        harness
            .state()
            .calls
            .contains(&format!("StopContainer {id} timeout=5"))
    );
    let (_, out, _) = harness.crictl(&["inspect", "-o", "table", &id]).await;
    assert!(
        out.starts_with(&format!(
            "ID: {id}\nName: web\nState: CONTAINER_EXITED\nCreated: "
        )),
        "{out}"
    );
    assert!(out.contains("\nExit Code: 0\n"), "{out}");
    let (_, out, _) = harness.crictl(&["ps", "-a", "-s", "exited", "-q"]).await;
    assert_eq!(out, format!("{id}\n"));

    let (code, out, err) = harness.crictl(&["stop", "-a"]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "No running containers found.\n"),
        "{err}"
    );
    let (code, _, err) = harness.crictl(&["stop"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "you must specify at least one CONTAINER-ID or use --all\n"
        )
    );

    let (code, out, err) = harness.crictl(&["rm", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{id}\n"));
    let (_, out, _) = harness.crictl(&["ps", "-a", "-q"]).await;
    assert_eq!(out, "");
    let (code, _, err) = harness.crictl(&["start", "nothing"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(r#"starting the container \"nothing\": rpc error: code = NotFound"#),
        "{err}"
    );
}

#[tokio::test]
async fn create_and_run_pull_as_crictl_decides() {
    let harness = Harness::start().await;
    let pod = run_pod(&harness, "pod.json", POD_JSON).await;
    let pod_path = pod_config(&harness, "pod.json", POD_JSON);
    let container = harness.write("container.json", CONTAINER_JSON);

    let (code, _, err) = harness
        .crictl(&[
            "create",
            "--with-pull",
            "--creds",
            "me:secret",
            &pod,
            &container,
            &pod_path,
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("msg=\"Pulling container image: busybox\""),
        "{err}"
    );
    assert_eq!(
        harness.state().pulled,
        ["busybox auth=me sandbox_uid=hdishd83djaidwnduwk28bcsb"]
    );

    let (code, _, err) = harness
        .crictl(&[
            "create",
            "--with-pull",
            "--no-pull",
            &pod,
            &container,
            &pod_path,
        ])
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("conflict: no-pull and with-pull are both set"),
        "{err}"
    );

    let missing = harness.write(
        "missing.json",
        r#"{"metadata": {"name": "m"}, "image": {"image": "missing:1"}}"#,
    );
    let (code, _, err) = harness
        .crictl(&["create", "--with-pull", &pod, &missing, &pod_path])
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("creating container: rpc error: code = NotFound desc = missing:1: not found"),
        "{err}"
    );

    // run pulls unless told not to, and prints only the container ID.
    let busybox_pod = pod_config(&harness, "pod.yaml", POD_YAML);
    let (code, out, err) = harness.crictl(&["run", &container, &busybox_pod]).await;
    assert_eq!(code, 0, "{err}");
    let id = out.trim_end();
    assert_eq!(id.len(), 64, "{out}");
    assert_eq!(harness.state().pulled.len(), 2);
    let (_, out, _) = harness.crictl(&["ps", "-q"]).await;
    assert_eq!(out, format!("{id}\n"));
    let (code, _, err) = harness
        .crictl(&["run", "--no-pull", &container, &busybox_pod])
        .await;
    assert_eq!(code, 1, "the pod exists already");
    assert!(
        err.contains("running container: run pod sandbox: rpc error: code = AlreadyExists"),
        "{err}"
    );
    assert_eq!(harness.state().pulled.len(), 2);
}

#[tokio::test]
async fn stats_sample_twice_and_info_shows_the_status() {
    let harness = Harness::start().await;
    let (pod, id) = pod_with_container(&harness).await;
    harness.crictl(&["start", &id]).await;

    let (code, out, err) = harness.crictl(&["stats", "-s", "0"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row,
        [&id[..13], "web", "25.00", "13.43MB", "28.67kB", "8", "0B"]
    );
    assert!(
        lines[0].starts_with("CONTAINER           NAME                CPU %"),
        "{out}"
    );

    let (_, out, _) = harness.crictl(&["stats", "-o", "json", &id[..5]]).await;
    let value = json(&out);
    assert_eq!(value["stats"][0]["attributes"]["id"], id.as_str());
    assert_eq!(
        value["stats"][0]["writableLayer"]["inodesUsed"]["value"],
        "8"
    );

    let (code, out, err) = harness.crictl(&["statsp", "-s", "0"]).await;
    assert_eq!(code, 0, "{err}");
    let row: Vec<String> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(
        row,
        ["nginx-sandbox", &pod[..13], "25.00", "13.43MB"],
        "{out}"
    );

    let (code, out, err) = harness.crictl(&["info"]).await;
    assert_eq!(code, 0, "{err}");
    let value = json(&out);
    assert_eq!(value["status"]["conditions"][0]["type"], "RuntimeReady");
    assert_eq!(value["status"]["conditions"][1]["status"], true);
    assert_eq!(value["config"]["podCIDR"], "10.42.0.0/24");
    assert_eq!(value["golang"], "skiff");
    assert_eq!(
        value["runtimeHandlers"][0]["features"]["recursive_read_only_mounts"],
        true
    );
    assert!(value["runtimeHandlers"][0].get("name").is_none(), "{out}");
    assert_eq!(value["runtimeHandlers"][2]["name"], "wasmtime");
    assert!(value.get("features").is_none());
    let (_, out, _) = harness.crictl(&["info", "-q"]).await;
    assert!(json(&out).get("config").is_none(), "{out}");
    let (_, out, _) = harness.crictl(&["info", "-o", "yaml"]).await;
    assert!(
        out.contains("status:\n  conditions:\n  - message: "),
        "{out}"
    );
}
