//! Wasm workloads through the CRI socket: modules and components run by
//! wasmtime in their pod's shim, chosen by the image (platform `wasi/wasm`,
//! Wasm layer media types, a `.wasm` entrypoint) whatever the handler; the
//! `wasmtime` handler still runs Linux binaries as OCI containers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use skiff_tests::oci::media_type;
use skiff_tests::wasm;

use crate::node::Node;
use crate::runtime_pods::wait_http;

const RUNNING: i32 = cri::ContainerState::ContainerRunning as i32;
const EXITED: i32 = cri::ContainerState::ContainerExited as i32;

/// A container of `image` with no command of its own.
fn wasm_container(name: &str, image: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<cri::KeyValue> {
    pairs
        .iter()
        .map(|(key, value)| cri::KeyValue {
            key: (*key).into(),
            value: (*value).into(),
        })
        .collect()
}

/// The container's log lines without their timestamps: `<stream> <P|F> <text>`.
fn log_lines(status: &cri::ContainerStatus) -> Vec<String> {
    std::fs::read_to_string(&status.log_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest.to_string()))
        .collect()
}

/// `tests/wasm/echo.c` built with wasi-libc, in an ordinary image at `path`
/// (its entrypoint), pushed as `tag` and pulled; returns the image ref.
async fn push_echo(node: &Node, path: &str, tag: &str) -> String {
    let module = wasm::c_program("echo", wasm::ECHO_C).unwrap();
    node.push_and_pull(&wasm::rootfs_image(&module, path), tag)
        .await
}

async fn wait_exited(node: &Node, id: &str) -> cri::ContainerStatus {
    node.wait_for(id, |s| s.state == EXITED).await
}

#[tokio::test]
async fn wasm_artifacts_log_and_exit_under_either_handler() {
    let node = Node::start().await;
    let hello = wasm::artifact_image(&wasm::wat(wasm::HELLO_WAT).unwrap(), media_type::WASM_LAYER);
    let hello = node.push_and_pull(&hello, "wasm/hello:v1").await;
    let exit42 = wasm::artifact_image(
        &wasm::wat(wasm::EXIT42_WAT).unwrap(),
        media_type::WASM_PLAIN,
    );
    let exit42 = node.push_and_pull(&exit42, "wasm/exit42:v1").await;

    // The RuntimeClass handler `wasmtime`.
    let pod = node.pod("wasm-hello");
    let pod_id = node.run_pod_with(pod.clone(), "wasmtime").await;
    let ctr = node
        .run_container(&pod_id, &pod, wasm_container("hello", &hello))
        .await;
    let status = wait_exited(&node, &ctr).await;
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (0, "Completed"),
        "{status:?}"
    );
    assert!(status.finished_at >= status.started_at && status.started_at > 0);
    assert_eq!(log_lines(&status), ["stdout F hello from wasm"]);
    assert!(status.image_ref.contains("sha256:"), "{status:?}");

    // The default handler: the image alone makes it Wasm.
    let pod = node.pod("wasm-exit");
    let pod_id2 = node.run_pod(pod.clone()).await;
    let ctr = node
        .run_container(&pod_id2, &pod, wasm_container("exit", &exit42))
        .await;
    let status = wait_exited(&node, &ctr).await;
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (42, "Error"),
        "{status:?}"
    );

    node.remove_pod(&pod_id).await;
    node.remove_pod(&pod_id2).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn a_c_program_gets_args_env_image_files_and_volumes() {
    let node = Node::start().await;
    let image = push_echo(&node, "/app/echo.wasm", "wasm/echo:v1").await;
    let volume = node.dir.path().join("volume");
    std::fs::create_dir_all(&volume).unwrap();

    let pod = node.pod("wasm-echo");
    let pod_id = node.run_pod_with(pod.clone(), "wasmtime").await;
    let mut config = wasm_container("echo", &image);
    config.args = vec!["one".into(), "two words".into()];
    config.envs = env(&[
        ("GREETING", "hi there"),
        ("READ_FILE", "/data/message.txt"),
        ("WRITE_FILE", "/mnt/out.txt"),
        ("EXIT_CODE", "7"),
    ]);
    config.mounts = vec![cri::Mount {
        container_path: "/mnt".into(),
        host_path: volume.display().to_string(),
        ..Default::default()
    }];
    let ctr = node.run_container(&pod_id, &pod, config).await;
    let status = wait_exited(&node, &ctr).await;
    let lines = log_lines(&status);
    assert_eq!(status.exit_code, 7, "{lines:?}");
    for expected in [
        "stdout F arg 0=/app/echo.wasm",
        "stdout F arg 1=one",
        "stdout F arg 2=two words",
        "stdout F env GREETING=hi there",
        "stdout F file: a file from the image",
        "stderr F done",
    ] {
        assert!(lines.iter().any(|l| l == expected), "{expected}: {lines:?}");
    }
    assert_eq!(
        std::fs::read_to_string(volume.join("out.txt")).unwrap(),
        "written by wasm\n"
    );

    // Exec has no meaning for a Wasm guest: a clear error, nothing else.
    let err = node
        .cri
        .runtime
        .clone()
        .exec_sync(cri::ExecSyncRequest {
            container_id: ctr.clone(),
            cmd: vec!["sh".into()],
            timeout: 5,
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("not supported for Wasm containers")
            || err.message().contains("not running"),
        "{err:?}"
    );

    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn a_preview2_component_runs_like_a_module() {
    let node = Node::start().await;
    let module = wasm::c_program("echo", wasm::ECHO_C).unwrap();
    let component = wasm::component(&module).unwrap();
    let image = wasm::artifact_image(&component, media_type::WASM_COMPONENT_LAYER);
    let image = node.push_and_pull(&image, "wasm/echo-component:v1").await;

    let pod = node.pod("wasm-component");
    let pod_id = node.run_pod_with(pod.clone(), "wasmtime").await;
    let mut config = wasm_container("echo", &image);
    config.args = vec!["from-a-component".into()];
    config.envs = env(&[("GREETING", "p2"), ("EXIT_CODE", "3")]);
    let ctr = node.run_container(&pod_id, &pod, config).await;
    let status = wait_exited(&node, &ctr).await;
    let lines = log_lines(&status);
    // wasi:cli/exit carries only success or failure: a non-zero code is 1.
    assert_eq!(status.exit_code, 1, "{lines:?}");
    assert!(
        lines.iter().any(|l| l == "stdout F arg 1=from-a-component"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "stdout F env GREETING=p2"),
        "{lines:?}"
    );

    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn a_spinning_guest_is_interrupted_by_stop_within_the_grace_period() {
    let node = Node::start().await;
    let image = wasm::artifact_image(&wasm::wat(wasm::SPIN_WAT).unwrap(), media_type::WASM_LAYER);
    let image = node.push_and_pull(&image, "wasm/spin:v1").await;
    let pod = node.pod("wasm-spin");
    let pod_id = node.run_pod_with(pod.clone(), "wasmtime").await;
    let ctr = node
        .run_container(&pod_id, &pod, wasm_container("spin", &image))
        .await;
    let status = node
        .wait_for(&ctr, |s| {
            s.state == RUNNING && log_lines(s).iter().any(|l| l == "stdout F spinning")
        })
        .await;
    assert_eq!(status.state, RUNNING);

    // Stats come from the container's cgroup, as for any container.
    let stats = node
        .cri
        .runtime
        .clone()
        .container_stats(cri::ContainerStatsRequest {
            container_id: ctr.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let memory = stats.memory.unwrap().working_set_bytes.unwrap().value;
    assert!(memory > 0, "{stats:?}");
    let cpu = stats.cpu.unwrap().usage_core_nano_seconds.unwrap().value;
    assert!(cpu > 0, "{stats:?}");

    let started = Instant::now();
    node.cri
        .runtime
        .clone()
        .stop_container(cri::StopContainerRequest {
            container_id: ctr.clone(),
            timeout: 30,
        })
        .await
        .unwrap();
    let took = started.elapsed();
    // Well inside the 30 s grace period: SIGTERM interrupts the loop.
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let status = node.status(&ctr).await;
    assert_eq!(
        (status.state, status.exit_code),
        (EXITED, 143),
        "{status:?}"
    );

    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn a_guest_over_its_memory_limit_is_oom_killed() {
    let node = Node::start().await;
    let module = wasm::c_program("hog", wasm::HOG_C).unwrap();
    let image = node
        .push_and_pull(&wasm::rootfs_image(&module, "/hog.wasm"), "wasm/hog:v1")
        .await;
    let pod = node.pod("wasm-hog");
    let pod_id = node.run_pod_with(pod.clone(), "wasmtime").await;
    let mut config = wasm_container("hog", &image);
    config.envs = env(&[("LIMIT_MIB", "256")]);
    config.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let ctr = node.run_container(&pod_id, &pod, config).await;
    let status = wait_exited(&node, &ctr).await;
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (137, "OOMKilled"),
        "{:?}",
        log_lines(&status)
    );
    assert!(
        !log_lines(&status)
            .iter()
            .any(|l| l.contains("allocated 256 MiB")),
        "the guest got past its limit"
    );

    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn linux_and_wasm_containers_share_a_pod_and_its_volume() {
    let node = Node::start().await;
    let image = push_echo(&node, "/echo.wasm", "wasm/echo:shared").await;
    let shared = node.dir.path().join("empty-dir");
    std::fs::create_dir_all(&shared).unwrap();
    let mount = cri::Mount {
        container_path: "/shared".into(),
        host_path: shared.display().to_string(),
        ..Default::default()
    };

    // The wasmtime handler still runs a Linux binary as an OCI container.
    let pod = node.pod("wasm-mixed");
    let pod_id = node.run_pod_with(pod.clone(), "wasmtime").await;
    let mut linux = node.container(
        "writer",
        "echo from linux > /shared/note.txt; hostname > /shared/host.txt; sleep 3600",
    );
    linux.mounts = vec![mount.clone()];
    let writer = node.run_container(&pod_id, &pod, linux).await;
    node.wait_for(&writer, |s| s.state == RUNNING).await;
    for _ in 0..100 {
        if shared.join("note.txt").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut config = wasm_container("reader", &image);
    config.envs = env(&[
        ("READ_FILE", "/shared/note.txt"),
        ("WRITE_FILE", "/shared/reply.txt"),
    ]);
    config.mounts = vec![mount];
    let reader = node.run_container(&pod_id, &pod, config).await;
    let status = wait_exited(&node, &reader).await;
    let lines = log_lines(&status);
    assert_eq!(status.exit_code, 0, "{lines:?}");
    assert!(
        lines.iter().any(|l| l == "stdout F file: from linux"),
        "{lines:?}"
    );
    let out = node.exec(&writer, &["cat", "/shared/reply.txt"]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "written by wasm\n");
    assert_eq!(
        std::fs::read_to_string(shared.join("host.txt")).unwrap(),
        "wasm-mixed\n"
    );

    // Both containers are listed in the pod like any others.
    let listed = node
        .cri
        .runtime
        .clone()
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: pod_id.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(listed.len(), 2);

    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn a_second_start_of_an_image_reuses_its_compiled_code() {
    let node = Node::start().await;
    let image = push_echo(&node, "/echo.wasm", "wasm/echo:cache").await;
    let cache = node.node_dir().join("data/agent/wasm-cache");
    let cached = || -> HashMap<std::path::PathBuf, std::time::SystemTime> {
        std::fs::read_dir(&cache)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    };

    let pod = node.pod("wasm-cache");
    let pod_id = node.run_pod_with(pod.clone(), "wasmtime").await;
    let first = node
        .run_container(&pod_id, &pod, wasm_container("first", &image))
        .await;
    assert_eq!(wait_exited(&node, &first).await.exit_code, 0);
    let after_first = cached();
    assert_eq!(after_first.len(), 1, "{after_first:?}");

    let second = node
        .run_container(&pod_id, &pod, wasm_container("second", &image))
        .await;
    assert_eq!(wait_exited(&node, &second).await.exit_code, 0);
    assert_eq!(cached(), after_first, "the second start compiled again");

    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn the_readme_example_imports_from_the_air_gap_dir_and_runs() {
    let mut node = Node::start().await;
    let airgap = node.node_dir().join("data/agent/images");
    std::fs::create_dir_all(&airgap).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wasm/build-image.sh");
    // Through bash, so a failure shows the script's stderr rather than a
    // bare spawn error (one full run saw ENOENT spawning it directly).
    let built = std::process::Command::new("bash")
        .arg(&script)
        .arg("example.local/hello-wasm:e2e")
        .arg(airgap.join("hello-wasm.tar"))
        .output()
        .unwrap();
    crate::ok(built);
    // The air-gap directory is read when the runtime starts.
    node.restart_after_kill().await;

    let pod = node.pod("wasm-example");
    let pod_id = node.run_pod_with(pod.clone(), "wasmtime").await;
    let mut config = wasm_container("hello", "example.local/hello-wasm:e2e");
    config.args = vec!["from".into(), "a pod".into()];
    let ctr = node.run_container(&pod_id, &pod, config).await;
    let status = node
        .wait_for(&ctr, |s| {
            log_lines(s).iter().any(|l| l == "stdout F tick 0")
        })
        .await;
    let lines = log_lines(&status);
    assert_eq!(status.state, RUNNING, "{lines:?}");
    for expected in [
        "stdout F hello from wasm, skiff!",
        "stdout F argument 1: from",
        "stdout F argument 2: a pod",
    ] {
        assert!(lines.iter().any(|l| l == expected), "{expected}: {lines:?}");
    }

    // The guest sleeps in a host call: stop still ends it promptly.
    let started = Instant::now();
    node.cri
        .runtime
        .clone()
        .stop_container(cri::StopContainerRequest {
            container_id: ctr.clone(),
            timeout: 30,
        })
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(node.status(&ctr).await.state, EXITED);

    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn crictl_drives_wasm_pods_like_any_other() {
    let node = Node::start().await;
    let image = wasm::artifact_image(&wasm::wat(wasm::HELLO_WAT).unwrap(), media_type::WASM_LAYER);
    let image = node.push_and_pull(&image, "wasm/hello:crictl").await;
    let runtime = node.runtime.as_ref().unwrap();
    let crictl = |args: &[&str]| crate::ok(runtime.crictl(args).unwrap());

    let info = crictl(&["info"]);
    assert!(info.contains("wasmtime"), "{info}");
    let dir = node.dir.path();
    let logs = node.logs_dir().join("crictl-wasm");
    std::fs::write(
        dir.join("pod.json"),
        serde_json::json!({
            "metadata": {"name": "crictl-wasm", "namespace": "default", "uid": "crictl-wasm-1"},
            "log_directory": logs,
            "linux": {"cgroup_parent": format!("/{}/crictl-wasm", node.lease.bridge())},
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("ctr.json"),
        serde_json::json!({
            "metadata": {"name": "hello"},
            "image": {"image": image},
            "log_path": "hello.log",
        })
        .to_string(),
    )
    .unwrap();
    let pod_json = dir.join("pod.json").display().to_string();
    let ctr_json = dir.join("ctr.json").display().to_string();
    let pod_id = crictl(&["runp", "--runtime", "wasmtime", &pod_json])
        .trim()
        .to_string();
    let inspect = crictl(&["inspectp", &pod_id]);
    assert!(
        inspect.contains("\"runtimeHandler\": \"wasmtime\""),
        "{inspect}"
    );
    let ctr = crictl(&["create", &pod_id, &ctr_json, &pod_json])
        .trim()
        .to_string();
    crictl(&["start", &ctr]);
    let status = wait_exited(&node, &ctr).await;
    assert_eq!(status.exit_code, 0);
    assert_eq!(crictl(&["logs", &ctr]), "hello from wasm\n");
    let listed = crictl(&["ps", "-a", "-q", "--pod", &pod_id]);
    assert_eq!(listed.trim(), ctr);
    let inspect = crictl(&["inspect", &ctr]);
    assert!(inspect.contains("\"engine\": \"wasm\""), "{inspect}");
    crictl(&["stopp", &pod_id]);
    crictl(&["rmp", &pod_id]);
    node.assert_no_leaks();
}

#[tokio::test]
async fn a_wasi_http_component_serves_the_pod_ip_a_host_port_and_its_neighbours() {
    let node = Node::start().await;
    let component = skiff_tests::wasm_http::hello_http_component().unwrap();
    let image = wasm::artifact_image(&component, media_type::WASM_COMPONENT_LAYER);
    let image = node.push_and_pull(&image, "wasm/http:v1").await;

    let mut pod = node.pod("wasm-http");
    let host_port = 30000 + (node.lease.bridge()[3..].parse::<u16>().unwrap() % 10000);
    pod.port_mappings = vec![cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port: 8080,
        host_port: host_port as i32,
        host_ip: String::new(),
    }];
    let pod_id = node.run_pod_with(pod.clone(), "wasmtime").await;
    let server = node
        .run_container(&pod_id, &pod, wasm_container("server", &image))
        .await;
    let ip = node.pod_ip(&pod_id).await;
    let body = |response: String| {
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or(response)
    };
    let hello = skiff_tests::wasm_http::HELLO_HTTP_BODY;
    assert_eq!(body(wait_http(&format!("{ip}:8080")).await), hello);
    assert_eq!(
        body(wait_http(&format!("127.0.0.1:{host_port}")).await),
        hello
    );
    for _ in 0..5 {
        assert_eq!(
            body(crate::runtime_pods::http_get(&format!("{ip}:8080"))),
            hello
        );
    }

    // A Linux container in the same pod reaches it on localhost.
    let client = node
        .run_container(&pod_id, &pod, node.container("client", "sleep 3600"))
        .await;
    node.wait_for(&client, |s| s.state == RUNNING).await;
    let out = node
        .exec(&client, &["wget", "-qO-", "http://127.0.0.1:8080/"])
        .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), hello, "{out:?}");

    let status = node.status(&server).await;
    assert_eq!(status.state, RUNNING);
    let lines = log_lines(&status);
    assert!(
        lines
            .iter()
            .filter(|l| l.contains(skiff_tests::wasm_http::HELLO_HTTP_LOG_LINE))
            .count()
            >= 8,
        "{lines:?}"
    );
    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}
