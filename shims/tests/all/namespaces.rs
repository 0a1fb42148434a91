//! Pod namespaces pinned by bind mounts and joined by the containers.

use anyhow::Result;
use skiff_shims::PodNamespace;

use crate::harness::{Bundle, Pod, cgroup_procs, ns_inode};

const SHOW: &str =
    "hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts";

#[tokio::test]
async fn containers_share_the_pinned_namespaces() -> Result<()> {
    let pod = Pod::start().await?;
    for id in ["one", "two"] {
        pod.run(id, &Bundle::sh(SHOW)).await?;
        pod.wait_exit(id).await?;
    }
    let one = pod.log_records("one");
    assert_eq!(one, pod.log_records("two"));
    assert_eq!(one[0], "stdout F pod-host");
    let net = format!("stdout F net:[{}]", ns_inode(&pod.path().join("ns/net"))?);
    assert_eq!(one[1], net);
    let host_net = std::fs::read_link("/proc/self/ns/net")?;
    assert_ne!(one[1], format!("stdout F {}", host_net.display()));
    let ipc = format!("stdout F ipc:[{}]", ns_inode(&pod.path().join("ns/ipc"))?);
    assert_eq!(one[2], ipc);
    // No PID namespace asked: no pin and no pod init.
    assert!(!pod.path().join("ns/pid").exists());
    pod.teardown().await
}

#[tokio::test]
async fn a_pod_pid_namespace_has_a_pid_1_in_the_pod_cgroup() -> Result<()> {
    let pod = Pod::start_with(
        &[
            PodNamespace::Net,
            PodNamespace::Ipc,
            PodNamespace::Uts,
            PodNamespace::Pid,
        ],
        Some("pid-pod"),
    )
    .await?;
    let procs = cgroup_procs(&pod.cgroup_parent);
    assert_eq!(procs.len(), 1, "the pod's PID 1 alone: {procs:?}");
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", procs[0]))?;
    assert_eq!(comm.trim(), "skiff-pod-init");
    pod.run("sleeper", &Bundle::sh("sleep 1000")).await?;
    pod.run(
        "looker",
        &Bundle::sh("cat /proc/1/comm; ps 2>/dev/null | wc -l; echo $$"),
    )
    .await?;
    pod.wait_exit("looker").await?;
    let records = pod.log_records("looker");
    assert_eq!(records[0], "stdout F skiff-pod-init");
    assert_ne!(
        records.last().unwrap(),
        "stdout F 1",
        "the container is not PID 1"
    );
    let pid_ns = format!("pid:[{}]", ns_inode(&pod.path().join("ns/pid"))?);
    let sleeper = pod.client.state("sleeper").await?.pid;
    assert_eq!(
        std::fs::read_link(format!("/proc/{sleeper}/ns/pid"))?
            .display()
            .to_string(),
        pid_ns
    );
    // The shim's signals do not reach the pod's PID 1.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(procs[0]),
        nix::sys::signal::SIGTERM,
    )?;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(crate::harness::process_alive(procs[0]));
    pod.teardown().await?;
    assert!(!crate::harness::process_alive(procs[0]));
    Ok(())
}

#[tokio::test]
async fn host_namespaces_when_none_asked() -> Result<()> {
    let pod = Pod::start_with(&[], None).await?;
    pod.run("hostnet", &Bundle::sh("readlink /proc/self/ns/net"))
        .await?;
    pod.wait_exit("hostnet").await?;
    let host_net = std::fs::read_link("/proc/self/ns/net")?;
    assert_eq!(
        pod.log_records("hostnet"),
        [format!("stdout F {}", host_net.display())]
    );
    assert!(!pod.path().join("ns").exists());
    pod.teardown().await
}
