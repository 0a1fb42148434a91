//! The node runtime through its CRI socket: pod and container lifecycle,
//! exec and logs, the pod network, cgroup limits, security contexts,
//! restarts, and that nothing leaks.

use std::io::{Read, Write};
use std::time::Duration;

use k8s_cri::v1 as cri;

use crate::node::{Node, shim_processes};

const RUNNING: i32 = cri::ContainerState::ContainerRunning as i32;
const EXITED: i32 = cri::ContainerState::ContainerExited as i32;

pub(crate) fn http_get(address: &str) -> String {
    let mut stream =
        std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}

pub(crate) async fn wait_http(address: &str) -> String {
    for _ in 0..100 {
        if let Ok(mut stream) = std::net::TcpStream::connect_timeout(
            &address.parse().unwrap(),
            Duration::from_millis(200),
        ) {
            drop(stream.write_all(b""));
            return http_get(address);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing answers on {address}");
}

#[tokio::test]
async fn a_pod_runs_execs_logs_stops_and_is_removed_without_leaks() {
    let node = Node::start().await;
    let pod = node.pod("life");
    let pod_id = node.run_pod(pod.clone()).await;
    let script = "trap 'echo bye; exit 0' TERM; echo hello from $(hostname); echo oops >&2; \
                  i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done";
    let ctr = node
        .run_container(&pod_id, &pod, node.container("main", script))
        .await;
    let status = node.wait_for(&ctr, |s| s.state == RUNNING).await;
    assert!(status.started_at > 0);

    // ExecSync: output, stderr and exit code.
    let out = node
        .exec(
            &ctr,
            &["sh", "-c", "cat /etc/hostname; echo bad >&2; exit 7"],
        )
        .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "life\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "bad\n");
    assert_eq!(out.exit_code, 7);

    // CRI log format: `<RFC3339Nano> <stream> <P|F> <text>`.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let log = std::fs::read_to_string(&status.log_path).unwrap();
    let first: Vec<&str> = log.lines().next().unwrap().splitn(4, ' ').collect();
    assert!(first[0].contains('T') && first[0].ends_with('Z'), "{log}");
    assert_eq!(&first[1..], ["stdout", "F", "hello from life"]);
    assert!(log.lines().any(|l| l.contains(" stderr F oops")), "{log}");

    // Filters, as kubelet and crictl use them.
    let mut rt = node.cri.runtime.clone();
    let filter = cri::ContainerFilter {
        pod_sandbox_id: pod_id[..12].into(),
        ..Default::default()
    };
    let listed = rt
        .list_containers(cri::ListContainersRequest {
            filter: Some(filter),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.containers.len(), 1);

    // StopContainer: SIGTERM, which the script traps to exit cleanly.
    rt.stop_container(cri::StopContainerRequest {
        container_id: ctr.clone(),
        timeout: 10,
    })
    .await
    .unwrap();
    let status = node.status(&ctr).await;
    assert_eq!(
        (status.state, status.exit_code, status.reason.as_str()),
        (EXITED, 0, "Completed")
    );
    assert!(status.finished_at >= status.started_at);
    let log = std::fs::read_to_string(&status.log_path).unwrap();
    assert!(log.lines().any(|l| l.ends_with(" stdout F bye")), "{log}");

    rt.remove_container(cri::RemoveContainerRequest {
        container_id: ctr.clone(),
    })
    .await
    .unwrap();
    rt.remove_container(cri::RemoveContainerRequest {
        container_id: ctr.clone(),
    })
    .await
    .unwrap();
    node.remove_pod(&pod_id).await;
    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn exit_codes_and_reasons_are_reported() {
    let node = Node::start().await;
    let pod = node.pod("exits");
    let pod_id = node.run_pod(pod.clone()).await;
    let ok = node
        .run_container(&pod_id, &pod, node.container("ok", "exit 0"))
        .await;
    let bad = node
        .run_container(&pod_id, &pod, node.container("bad", "exit 3"))
        .await;
    let ok = node.wait_for(&ok, |s| s.state == EXITED).await;
    let bad = node.wait_for(&bad, |s| s.state == EXITED).await;
    assert_eq!((ok.exit_code, ok.reason.as_str()), (0, "Completed"));
    assert_eq!((bad.exit_code, bad.reason.as_str()), (3, "Error"));

    // PID 1 ignores SIGTERM without a handler: SIGKILL after the timeout.
    let stubborn = node
        .run_container(
            &pod_id,
            &pod,
            node.container("stubborn", "sleep 3600 & wait"),
        )
        .await;
    let started = std::time::Instant::now();
    let mut rt = node.cri.runtime.clone();
    rt.stop_container(cri::StopContainerRequest {
        container_id: stubborn.clone(),
        timeout: 1,
    })
    .await
    .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    let status = node.status(&stubborn).await;
    assert_eq!(
        (status.state, status.exit_code, status.reason.as_str()),
        (EXITED, 137, "Error")
    );

    // A command that does not exist: refused with a message naming it.
    let mut missing = node.container("missing", "");
    missing.command = vec!["/no/such/binary".into()];
    let err = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(missing),
            sandbox_config: Some(pod.clone()),
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("/no/such/binary"), "{err}");
    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn httpd_is_reachable_on_the_pod_ip_and_through_a_host_port() {
    let node = Node::start().await;
    let mut pod = node.pod("web");
    let host_port = 20000 + (node.lease.bridge()[3..].parse::<u16>().unwrap() % 10000);
    pod.port_mappings = vec![cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port: 8080,
        host_port: host_port as i32,
        host_ip: String::new(),
    }];
    let pod_id = node.run_pod(pod.clone()).await;
    let script =
        "mkdir -p /www && echo hello-skiff > /www/index.html && exec httpd -f -p 8080 -h /www";
    node.run_container(&pod_id, &pod, node.container("httpd", script))
        .await;
    let ip = node.pod_ip(&pod_id).await;
    assert!(
        ip.starts_with(&node.lease.pod_cidr()[..node.lease.pod_cidr().len() - 4]),
        "{ip}"
    );
    assert!(
        wait_http(&format!("{ip}:8080"))
            .await
            .contains("hello-skiff")
    );
    assert!(
        wait_http(&format!("127.0.0.1:{host_port}"))
            .await
            .contains("hello-skiff")
    );
    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn resources_are_applied_and_updated_in_the_cgroup_files() {
    let node = Node::start().await;
    let pod = node.pod("limits");
    let pod_id = node.run_pod(pod.clone()).await;
    let mut config = node.container("limited", "sleep 3600");
    config.linux.as_mut().unwrap().resources = Some(cri::LinuxContainerResources {
        cpu_shares: 512,
        cpu_period: 100_000,
        cpu_quota: 50_000,
        memory_limit_in_bytes: 64 << 20,
        cpuset_cpus: "0".into(),
        oom_score_adj: 500,
        ..Default::default()
    });
    let ctr = node.run_container(&pod_id, &pod, config).await;
    let cgroup = format!("{}/{}/{ctr}", node.lease.bridge(), "limits");
    let read = |controller: &str, file: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}/{cgroup}/{file}"))
            .unwrap_or_else(|e| panic!("{controller}/{file}: {e}"))
            .trim()
            .to_string()
    };
    assert_eq!(read("cpu", "cpu.shares"), "512");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(read("cpuset", "cpuset.cpus"), "0");
    let out = node.exec(&ctr, &["cat", "/proc/1/oom_score_adj"]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "500");

    let mut rt = node.cri.runtime.clone();
    rt.update_container_resources(cri::UpdateContainerResourcesRequest {
        container_id: ctr.clone(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 96 << 20,
            cpu_shares: 256,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (96u64 << 20).to_string()
    );
    assert_eq!(read("cpu", "cpu.shares"), "256");
    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn security_context_sets_user_read_only_rootfs_and_capabilities() {
    let node = Node::start().await;
    let pod = node.pod("secure");
    let pod_id = node.run_pod(pod.clone()).await;
    let mut config = node.container("locked", "sleep 3600");
    config.linux.as_mut().unwrap().security_context = Some(cri::LinuxContainerSecurityContext {
        run_as_user: Some(cri::Int64Value { value: 1000 }),
        run_as_group: Some(cri::Int64Value { value: 3000 }),
        readonly_rootfs: true,
        capabilities: Some(cri::Capability {
            drop_capabilities: vec!["NET_RAW".into()],
            ..Default::default()
        }),
        ..Default::default()
    });
    let ctr = node.run_container(&pod_id, &pod, config).await;
    let id = node.exec(&ctr, &["id"]).await;
    assert!(
        String::from_utf8_lossy(&id.stdout).starts_with("uid=1000 gid=3000"),
        "{id:?}"
    );
    let write = node.exec(&ctr, &["touch", "/etc/x"]).await;
    assert_ne!(write.exit_code, 0);
    assert!(
        String::from_utf8_lossy(&write.stderr).contains("Read-only file system"),
        "{write:?}"
    );
    // The bounding set lacks CAP_NET_RAW (bit 13).
    let status = node
        .exec(&ctr, &["grep", "CapBnd", "/proc/self/status"])
        .await;
    let bits = String::from_utf8_lossy(&status.stdout);
    let mask = u64::from_str_radix(bits.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(mask & (1 << 13), 0, "{bits}");
    assert_ne!(mask & (1 << 0), 0, "CAP_CHOWN stays: {bits}");
    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn containers_keep_running_through_a_runtime_kill_and_restart() {
    let mut node = Node::start().await;
    let pod = node.pod("survivor");
    let pod_id = node.run_pod(pod.clone()).await;
    let ctr = node
        .run_container(
            &pod_id,
            &pod,
            node.container("ticker", "while true; do echo tick; sleep 0.1; done"),
        )
        .await;
    let before = node.wait_for(&ctr, |s| s.state == RUNNING).await;
    let shims = shim_processes(&node.node_dir());
    assert!(!shims.is_empty());

    node.restart_after_kill().await;
    assert_eq!(
        shim_processes(&node.node_dir()),
        shims,
        "shims survive the runtime"
    );
    let after = node.status(&ctr).await;
    assert_eq!(after.state, RUNNING);
    assert_eq!(after.started_at, before.started_at);
    // Logs kept flowing while the runtime was away and keep flowing now.
    let size = std::fs::metadata(&after.log_path).unwrap().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(std::fs::metadata(&after.log_path).unwrap().len() > size);
    let out = node.exec(&ctr, &["echo", "still here"]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still here\n");
    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

#[tokio::test]
async fn twenty_pods_come_and_go_without_leaks() {
    let node = Node::start().await;
    let mut pods = Vec::new();
    for i in 0..20 {
        let pod = node.pod(&format!("many-{i}"));
        let pod_id = node.run_pod(pod.clone()).await;
        let ctr = node
            .run_container(&pod_id, &pod, node.container("sleeper", "sleep 3600"))
            .await;
        pods.push((pod_id, ctr));
    }
    let mut ips = std::collections::HashSet::new();
    for (pod_id, ctr) in &pods {
        assert_eq!(node.status(ctr).await.state, RUNNING);
        assert!(
            ips.insert(node.pod_ip(pod_id).await),
            "an IP was given twice"
        );
    }
    for (pod_id, _) in &pods {
        node.remove_pod(pod_id).await;
    }
    node.assert_no_leaks();
}
