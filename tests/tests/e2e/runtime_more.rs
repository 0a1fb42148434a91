//! More of the RuntimeService: events, OOM kills, a shared PID namespace,
//! sysctls, log rotation, stats, Status, and the streaming verbs through
//! `skiff crictl` (exec, attach, port-forward, logs).

use std::time::Duration;

use k8s_cri::v1 as cri;
use tokio_stream::StreamExt;

use crate::node::Node;

const RUNNING: i32 = cri::ContainerState::ContainerRunning as i32;
const EXITED: i32 = cri::ContainerState::ContainerExited as i32;

#[tokio::test]
async fn container_events_stream_created_started_stopped_and_deleted() {
    let node = Node::start().await;
    let mut rt = node.cri.runtime.clone();
    let mut events = rt
        .get_container_events(cri::GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let pod = node.pod("events");
    let pod_id = node.run_pod(pod.clone()).await;
    let ctr = node
        .run_container(&pod_id, &pod, node.container("short", "exit 0"))
        .await;
    node.wait_for(&ctr, |s| s.state == EXITED).await;
    rt.remove_container(cri::RemoveContainerRequest {
        container_id: ctr.clone(),
    })
    .await
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(event.container_id, ctr);
        assert_eq!(event.pod_sandbox_status.as_ref().unwrap().id, pod_id);
        seen.push(event.container_event_type);
    }
    use cri::ContainerEventType as E;
    let expected = [
        E::ContainerCreatedEvent,
        E::ContainerStartedEvent,
        E::ContainerStoppedEvent,
        E::ContainerDeletedEvent,
    ];
    assert_eq!(seen, expected.map(|e| e as i32));
    node.remove_pod(&pod_id).await;
}

#[tokio::test]
async fn a_container_over_its_memory_limit_is_oom_killed() {
    let node = Node::start().await;
    let pod = node.pod("oom");
    let pod_id = node.run_pod(pod.clone()).await;
    // Builds a string far bigger than the limit in the shell's memory.
    let mut config = node.container("hog", "x=a; while true; do x=$x$x; done");
    config.linux.as_mut().unwrap().resources = Some(cri::LinuxContainerResources {
        memory_limit_in_bytes: 16 << 20,
        ..Default::default()
    });
    let ctr = node.run_container(&pod_id, &pod, config).await;
    let status = node.wait_for(&ctr, |s| s.state == EXITED).await;
    assert_eq!(status.reason, "OOMKilled", "{status:?}");
    assert_eq!(status.exit_code, 137);
    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn a_pod_level_pid_namespace_is_shared_and_sysctls_apply() {
    let node = Node::start().await;
    let mut pod = node.pod("shared");
    let security = pod
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap();
    security.namespace_options.as_mut().unwrap().pid = cri::NamespaceMode::Pod as i32;
    pod.linux
        .as_mut()
        .unwrap()
        .sysctls
        .insert("net.ipv4.ip_unprivileged_port_start".into(), "80".into());
    let pod_id = node.run_pod(pod.clone()).await;
    let pid_pod = |mut c: cri::ContainerConfig| {
        let security = c
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .get_or_insert_with(Default::default);
        security.namespace_options = Some(cri::NamespaceOption {
            pid: cri::NamespaceMode::Pod as i32,
            ..Default::default()
        });
        c
    };
    let a = node
        .run_container(&pod_id, &pod, pid_pod(node.container("a", "sleep 3600")))
        .await;
    node.run_container(
        &pod_id,
        &pod,
        pid_pod(node.container("b", "exec sleep 7777")),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ps = node.exec(&a, &["ps"]).await;
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        ps.contains("sleep 7777"),
        "container a sees container b: {ps}"
    );
    let sysctl = node
        .exec(
            &a,
            &["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
        )
        .await;
    assert_eq!(String::from_utf8_lossy(&sysctl.stdout).trim(), "80");
    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn logs_follow_a_rotation_and_stats_and_status_report() {
    let node = Node::start().await;
    let pod = node.pod("stats");
    let pod_id = node.run_pod(pod.clone()).await;
    let ctr = node
        .run_container(
            &pod_id,
            &pod,
            node.container("ticker", "while true; do echo tick; sleep 0.05; done"),
        )
        .await;
    let status = node.wait_for(&ctr, |s| s.state == RUNNING).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // kubelet rotates by renaming, then asks the runtime to reopen.
    let rotated = format!("{}.1", status.log_path);
    std::fs::rename(&status.log_path, &rotated).unwrap();
    let mut rt = node.cri.runtime.clone();
    rt.reopen_container_log(cri::ReopenContainerLogRequest {
        container_id: ctr.clone(),
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = std::fs::read_to_string(&status.log_path).unwrap();
    assert!(fresh.contains("stdout F tick"), "{fresh}");

    // Stats: CPU and memory of the container, the pod's network.
    let stats = rt
        .container_stats(cri::ContainerStatsRequest {
            container_id: ctr.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert!(stats.cpu.unwrap().usage_core_nano_seconds.unwrap().value > 0);
    assert!(stats.memory.unwrap().working_set_bytes.unwrap().value > 0);
    assert!(stats.writable_layer.is_some());
    let pod_stats = rt
        .pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: pod_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let linux = pod_stats.linux.unwrap();
    assert_eq!(
        linux.network.unwrap().default_interface.unwrap().name,
        "eth0"
    );
    assert_eq!(linux.containers.len(), 1);

    let status = rt
        .status(cri::StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let conditions = status.status.unwrap().conditions;
    assert!(conditions.iter().all(|c| c.status), "{conditions:?}");
    assert!(status.info.contains_key("config"));
    node.remove_pod(&pod_id).await;
}

#[tokio::test]
async fn crictl_exec_attach_port_forward_and_logs_work_against_the_runtime() {
    let node = Node::start().await;
    let pod = node.pod("stream");
    let pod_id = node.run_pod(pod.clone()).await;
    let script = "mkdir -p /www && echo forwarded > /www/index.html; httpd -p 8080 -h /www; \
                  i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done";
    let mut config = node.container("web", script);
    config.stdin = true;
    let ctr = node.run_container(&pod_id, &pod, config).await;
    node.wait_for(&ctr, |s| s.state == RUNNING).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let runtime = node.runtime.as_ref().unwrap();

    // Streaming exec: output and exit code through the streaming server.
    let out = runtime
        .crictl(&["exec", &ctr, "sh", "-c", "echo via-stream; exit 4"])
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("via-stream"),
        "{out:?}"
    );
    // stdin through exec -i.
    let mut child = skiff_tests::skiff::skiff_command()
        .unwrap()
        .args([
            "crictl",
            "--runtime-endpoint",
            &runtime.endpoint(),
            "exec",
            "-i",
            &ctr,
            "cat",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped input\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped input\n");

    // logs --tail.
    let logs = runtime.crictl(&["logs", "--tail", "2", &ctr]).unwrap();
    let text = String::from_utf8_lossy(&logs.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().all(|l| l.starts_with("line ")), "{text}");

    // port-forward to the pod's httpd.
    let local = 31000 + (node.lease.bridge()[3..].parse::<u16>().unwrap() % 10000);
    let mut forward = skiff_tests::GuardedChild::spawn("crictl port-forward", {
        let mut command = skiff_tests::skiff::skiff_command().unwrap();
        command.args([
            "crictl",
            "--runtime-endpoint",
            &runtime.endpoint(),
            "port-forward",
            &pod_id,
            &format!("{local}:8080"),
        ]);
        command
    })
    .unwrap();
    let mut body = String::new();
    for _ in 0..100 {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", local)) {
            use std::io::Read;
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let _ = stream.read_to_string(&mut body);
            if body.contains("forwarded") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(body.contains("forwarded"), "{body}");
    forward.kill();

    // attach: the container's live output.
    let mut attach = skiff_tests::skiff::skiff_command()
        .unwrap()
        .args([
            "crictl",
            "--runtime-endpoint",
            &runtime.endpoint(),
            "attach",
            &ctr,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = attach.stdout.take().unwrap();
    let mut seen = String::new();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 256];
        let n = stdout.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    for _ in 0..50 {
        if reader.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    attach.kill().unwrap();
    let _ = attach.wait();
    if let Ok(text) = reader.join() {
        seen = text;
    }
    assert!(seen.contains("line "), "attach saw: {seen:?}");
    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn a_killed_shim_marks_its_pod_not_ready_and_removal_leaves_nothing() {
    let node = Node::start().await;
    let pod = node.pod("orphan");
    let pod_id = node.run_pod(pod.clone()).await;
    let ctr = node
        .run_container(&pod_id, &pod, node.container("sleeper", "sleep 3600"))
        .await;
    node.wait_for(&ctr, |s| s.state == RUNNING).await;
    for pid in crate::node::shim_processes(&node.node_dir()) {
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let status = node.wait_for(&ctr, |s| s.state == EXITED).await;
    assert!(!status.reason.is_empty(), "{status:?}");
    let mut rt = node.cri.runtime.clone();
    let sandbox = rt
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod_id.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(sandbox.state, cri::PodSandboxState::SandboxNotready as i32);
    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}
