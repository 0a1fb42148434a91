//! The shim outlives its spawner and its clients.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use anyhow::Result;
use skiff_shims::ShimClient;
use skiff_shims::protocol::ContainerStatus;

use crate::harness::{Bundle, Pod, process_alive, shim_binary};

/// The stand-in runtime's process group, killed however the test ends.
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn kill_group(&self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::SIGKILL,
        );
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill_group();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_shim_survives_its_spawner_being_killed() -> Result<()> {
    let mut pod = Pod::prepare(&[skiff_shims::PodNamespace::Net], None)?;
    // The "runtime": a process group that starts the shim, then stays.
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg("\"$0\" shim \"$@\" && exec sleep 1000")
        .arg(shim_binary())
        .args(pod.args.to_args())
        .process_group(0);
    let mut runtime = KillOnDrop(command.spawn()?);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let client = loop {
        if let Ok(client) = ShimClient::connect(pod.path()).await {
            break client;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the shim never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    pod.client = client;
    pod.run(
        "ticker",
        &Bundle::sh("i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.05; done"),
    )
    .await?;
    pod.wait_log("ticker", "tick-2").await?;

    runtime.kill_group();
    runtime.0.wait()?;
    let shim_pid = pod.shim_pid()?;
    assert!(process_alive(shim_pid));

    // A new runtime: a new client sees the same state, and logs still flow.
    let lines_then = pod.log("ticker").lines().count();
    let client = ShimClient::connect(pod.path()).await?;
    assert_eq!(client.hello().await?.pid, shim_pid as u32);
    let state = client.state("ticker").await?;
    assert_eq!(state.status, ContainerStatus::Running);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pod.log("ticker").lines().count() > lines_then);
    pod.client = client;
    pod.teardown().await
}

#[tokio::test]
async fn clients_that_vanish_mid_request_do_not_hurt() -> Result<()> {
    let pod = Pod::start().await?;
    pod.run("box", &Bundle::sh("sleep 1000")).await?;
    let socket = pod.path().join("shim.sock");
    // Half a request, then gone.
    let mut half = UnixStream::connect(&socket)?;
    half.write_all(b"{\"type\":\"Sta")?;
    drop(half);
    // A waiter that leaves before the answer.
    pod.client
        .exec(
            "box",
            "waited",
            &skiff_shims::protocol::ExecProcess {
                args: vec!["sleep".into(), "0.2".into()],
                ..Default::default()
            },
            false,
            false,
        )
        .await?;
    let mut waiter = UnixStream::connect(&socket)?;
    waiter.write_all(b"{\"type\":\"ExecWait\",\"exec_id\":\"waited\"}\n")?;
    drop(waiter);
    // An exec whose answer (with descriptors) nobody reads.
    let mut exec = UnixStream::connect(&socket)?;
    exec.write_all(
        b"{\"type\":\"Exec\",\"id\":\"box\",\"exec_id\":\"unread\",\"process\":{\"args\":[\"echo\",\"x\"]}}\n",
    )?;
    drop(exec);
    // Garbage.
    let mut garbage = UnixStream::connect(&socket)?;
    garbage.write_all(b"not json\n")?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        pod.client.state("box").await?.status,
        ContainerStatus::Running
    );
    assert_eq!(pod.client.exec_wait("waited").await?, 0);
    pod.teardown().await
}

#[tokio::test]
async fn containers_and_the_pod_pid_1_outlive_a_killed_shim() -> Result<()> {
    use skiff_shims::PodNamespace;
    let pod = Pod::start_with(
        &[
            PodNamespace::Net,
            PodNamespace::Ipc,
            PodNamespace::Uts,
            PodNamespace::Pid,
        ],
        Some("orphaned"),
    )
    .await?;
    let container = pod.run("sleeper", &Bundle::sh("sleep 1000")).await?;
    let shim = pod.shim_pid()?;
    let pod_init = crate::harness::cgroup_procs(&pod.cgroup_parent)
        .into_iter()
        .find(|pid| *pid != container && !process_is_container(*pid, container))
        .expect("the pod's PID 1");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim), nix::sys::signal::SIGKILL)?;
    crate::harness::wait_gone(shim).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(process_alive(container));
    assert!(process_alive(pod_init));
    assert!(
        ShimClient::connect(pod.path())
            .await
            .unwrap_err()
            .is_unreachable()
    );
    // Drop kills what is left and unpins.
    Ok(())
}

/// Whether `pid` is the container's init or one of its descendants.
fn process_is_container(pid: i32, container: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("PPid:"))
        .is_some_and(|ppid| ppid.trim() == container.to_string())
}

#[tokio::test]
async fn failures_to_start_a_shim_say_why() -> Result<()> {
    use skiff_shims::client::ClientError;
    let missing = skiff_shims::ShimArgs::new("/nonexistent/pod", "x");
    let err = skiff_shims::spawn_shim(&shim_binary(), &missing)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Spawn { .. }), "{err}");
    assert!(
        err.to_string().contains("--pod-dir /nonexistent/pod"),
        "{err}"
    );

    let pod = Pod::start().await?;
    let err = skiff_shims::spawn_shim(&shim_binary(), &pod.args)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("another shim already serves this pod"),
        "{err}"
    );
    pod.client.hello().await?;
    pod.teardown().await
}
