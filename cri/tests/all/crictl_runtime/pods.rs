//! The pod verbs: runp, pods, inspectp, stopp, rmp.

use super::{POD_JSON, POD_YAML, json, pod_config, run_pod};
use crate::crictl_runtime::harness::Harness;

#[tokio::test]
async fn runp_reads_snake_and_camel_case_configs_and_pods_lists_them() {
    let harness = Harness::start().await;
    let nginx = run_pod(&harness, "pod.json", POD_JSON).await;
    let busybox = run_pod(&harness, "pod.yaml", POD_YAML).await;
    {
        let state = harness.state();
        let config = &state.pods[0].config;
        assert_eq!(config.hostname, "nginx");
        assert!(config.log_directory.ends_with("/logs"));
        assert_eq!(config.port_mappings[0].host_port, 8080);
        assert_eq!(config.linux.as_ref().unwrap().cgroup_parent, "/skiff");
        assert_eq!(state.pods[1].config.labels["app"], "busybox");
        assert!(state.pods[1].config.log_directory.ends_with("/logs"));
    }

    let (code, out, err) = harness.crictl(&["pods"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let header: Vec<&str> = lines[0]
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "POD ID",
            "CREATED",
            "STATE",
            "NAME",
            "NAMESPACE",
            "ATTEMPT",
            "RUNTIME"
        ]
    );
    // Newest first.
    assert!(lines[1].starts_with(&busybox[..13]), "{out}");
    assert!(lines[1].contains("Less than a second ago   Ready"), "{out}");
    assert!(lines[1].contains("busybox-sandbox"), "{out}");
    assert!(
        lines[2].contains("nginx-sandbox       default             1                   (default)"),
        "{out}"
    );

    let (_, out, _) = harness.crictl(&["pods", "-q"]).await;
    assert_eq!(out, format!("{busybox}\n{nginx}\n"));
    let (_, out, _) = harness.crictl(&["pods", "-q", "--name", "^ngi"]).await;
    assert_eq!(out, format!("{nginx}\n"));
    let (_, out, _) = harness.crictl(&["pods", "-q", "--namespace", "kube"]).await;
    assert_eq!(out, format!("{busybox}\n"));
    let (_, out, _) = harness
        .crictl(&["pods", "-q", "--label", "app=nginx"])
        .await;
    assert_eq!(out, format!("{nginx}\n"));
    let (_, out, _) = harness.crictl(&["pods", "-q", "--last", "1"]).await;
    assert_eq!(out, format!("{busybox}\n"));
    let (_, out, _) = harness.crictl(&["pods", "-q", "--id", &nginx[..4]]).await;
    assert_eq!(out, format!("{nginx}\n"));
    let (_, out, _) = harness.crictl(&["pods", "-q", "-s", "NotReady"]).await;
    assert_eq!(out, "");
    let (_, out, _) = harness.crictl(&["pods", "--no-trunc"]).await;
    assert!(out.contains(&nginx), "{out}");

    let (code, out, _) = harness.crictl(&["pods", "-o", "json"]).await;
    assert_eq!(code, 0);
    let listed = json(&out);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["id"], nginx.as_str());
    assert_eq!(items[1]["state"], "SANDBOX_READY");
    assert!(
        items[1]["createdAt"].is_string(),
        "int64 as a string: {out}"
    );
    assert_eq!(items[1]["metadata"]["attempt"], 1);
    assert_eq!(items[1]["runtimeHandler"], "");
    let (code, out, _) = harness.crictl(&["pods", "-o", "yaml"]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("items:\n- annotations: {}\n"), "{out}");

    let (code, _, err) = harness.crictl(&["pods", "-o", "xml"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(r#"listing pod sandboxes: unsupported output format \"xml\""#),
        "{err}"
    );
    let (code, _, err) = harness.crictl(&["pods", "-s", "sleepy"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("--state should be ready or notready"), "{err}");
}

#[tokio::test]
async fn inspectp_prints_status_and_parsed_info() {
    let harness = Harness::start().await;
    let pod = run_pod(&harness, "pod.json", POD_JSON).await;
    let (code, out, err) = harness.crictl(&["inspectp", &pod[..3]]).await;
    assert_eq!(code, 0, "{err}");
    let value = json(&out);
    let status = &value["status"];
    assert_eq!(status["id"], pod.as_str());
    assert_eq!(status["state"], "SANDBOX_READY");
    assert_eq!(status["network"]["ip"], "10.42.0.2");
    assert!(
        status["linux"].is_null() && status.get("linux").is_some(),
        "{out}"
    );
    let created = status["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.contains('T'), "{created}");
    assert_eq!(value["info"]["pid"], 42);
    assert_eq!(value["info"]["config"]["hostname"], "nginx");
    // Go's maps print sorted.
    assert!(out.find("\"info\"").unwrap() < out.find("\"status\"").unwrap());

    let (_, out, _) = harness.crictl(&["inspectp", "-q", &pod]).await;
    assert!(json(&out).get("info").is_none(), "{out}");
    let (_, out, _) = harness.crictl(&["inspectp", "-o", "yaml", &pod]).await;
    assert!(out.contains("  state: SANDBOX_READY\n"), "{out}");
    let (_, out, _) = harness.crictl(&["inspectp", "-o", "table", &pod]).await;
    assert!(
        out.starts_with(&format!(
            "ID: {pod}\nName: nginx-sandbox\nUID: hdishd83djaidwnduwk28bcsb\nNamespace: default\nAttempt: 1\nStatus: SANDBOX_READY\nCreated: "
        )),
        "{out}"
    );
    assert!(
        out.contains(
            " +0000 UTC\nIP Addresses: 10.42.0.2\nLabels:\n\tapp -> nginx\nInfo: map[info:{"
        ),
        "{out}"
    );

    // Without IDs, the filters pick the pods; two statuses print as an array.
    run_pod(&harness, "pod.yaml", POD_YAML).await;
    let (_, out, _) = harness.crictl(&["inspectp"]).await;
    assert_eq!(json(&out).as_array().map(Vec::len), Some(2), "{out}");
    let (_, out, err) = harness.crictl(&["inspectp", "--name", "nothing"]).await;
    assert!(
        err.contains("No IDs provided or nothing found per filter"),
        "{err}"
    );
    assert!(out.contains("Usage:"), "{out}");

    let (code, _, err) = harness.crictl(&["inspectp", "ffff"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(r#"get the status of pod sandboxes: get pod sandbox status: rpc error: code = NotFound desc = an error occurred when try to find sandbox \"ffff\": not found"#),
        "{err}"
    );
    // Both pod IDs start with "0": a prefix must pick one.
    let (code, _, err) = harness.crictl(&["inspectp", "0"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("pod ID prefix \\\"0\\\" is ambiguous"),
        "{err}"
    );
}

#[tokio::test]
async fn stopp_and_rmp_print_what_they_did() {
    let harness = Harness::start().await;
    let nginx = run_pod(&harness, "pod.json", POD_JSON).await;
    let busybox = run_pod(&harness, "pod.yaml", POD_YAML).await;

    let (code, _, err) = harness.crictl(&["rmp", &nginx]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "pod sandbox \\\"{nginx}\\\" is running, please stop it first"
        )),
        "{err}"
    );
    let (code, out, err) = harness.crictl(&["stopp", &nginx[..6]]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("Stopped sandbox {}\n", &nginx[..6]));
    assert!(
        harness
            .state()
            .calls
            .contains(&format!("StopPodSandbox {nginx}"))
    );
    let (_, out, _) = harness.crictl(&["pods", "-q", "--state", "notready"]).await;
    assert_eq!(out, format!("{nginx}\n"));
    let (code, out, err) = harness.crictl(&["rmp", &nginx]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("Removed sandbox {nginx}\n"));

    let (code, out, err) = harness.crictl(&["rmp", "-f", &busybox]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("Stopped sandbox {busybox}\nRemoved sandbox {busybox}\n")
    );
    let (code, out, err) = harness.crictl(&["rmp", "-a"]).await;
    assert_eq!((code, out.as_str()), (0, ""));
    assert!(
        err.contains("level=info msg=\"No pods to remove\""),
        "{err}"
    );

    let (code, _, err) = harness.crictl(&["stopp", "gone"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(r#"stopping the pod sandbox \"gone\": rpc error: code = NotFound"#),
        "{err}"
    );
}

#[tokio::test]
async fn runp_refuses_bad_configs_and_duplicates() {
    let harness = Harness::start().await;
    let missing = harness.dir.path().join("none.json").display().to_string();
    let (code, _, err) = harness.crictl(&["runp", &missing]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "load podSandboxConfig: config at {missing} not found"
        )),
        "{err}"
    );

    let nameless = harness.write("nameless.yaml", "metadata:\n  namespace: default\n");
    let (code, _, err) = harness.crictl(&["runp", &nameless]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("load podSandboxConfig: name or namespace is not in metadata"),
        "{err}"
    );

    let typo = harness.write(
        "typo.json",
        r#"{"metadata": {"name": "a", "namespace": "b"}, "linux": {}, "hostnmae": "x"}"#,
    );
    let (code, _, err) = harness
        .crictl(&["runp", "--runtime", "wasmtime", &typo])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("level=warning msg=\"cgroup_parent is not set."),
        "{err}"
    );
    assert!(
        err.contains(r#"ignoring unknown field \"hostnmae\""#),
        "{err}"
    );
    {
        let state = harness.state();
        assert!(
            state
                .calls
                .contains(&"RunPodSandbox a handler=\"wasmtime\"".to_owned())
        );
        // A pod without a UID gets one.
        assert_eq!(
            state.pods[0].status.metadata.as_ref().unwrap().uid.len(),
            36
        );
    }

    let pod = pod_config(&harness, "pod.json", POD_JSON);
    let (code, _, _) = harness.crictl(&["runp", &pod]).await;
    assert_eq!(code, 0);
    let (code, _, err) = harness.crictl(&["runp", &pod]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("run pod sandbox: rpc error: code = AlreadyExists desc ="),
        "{err}"
    );
}
