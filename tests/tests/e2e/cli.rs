//! The command line itself: unbuilt commands fail loudly, config.yaml works,
//! `skiff killall` leaves nothing of a node behind.

use skiff_tests::skiff::skiff_command;

#[test]
fn commands_not_built_yet_exit_non_zero_and_say_so() {
    for command in ["agent", "check-config", "token"] {
        let output = skiff_command().unwrap().arg(command).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "skiff {command}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("not built yet"),
            "skiff {command}: {stderr}"
        );
    }
}

#[test]
fn a_broken_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "data-dir: [unclosed\n").unwrap();
    let output = skiff_command()
        .unwrap()
        .args(["runtime", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("config.yaml") && stderr.contains("not valid YAML"),
        "{stderr}"
    );

    std::fs::write(&config, "no-such-flag: 1\n").unwrap();
    let output = skiff_command()
        .unwrap()
        .args(["runtime", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-such-flag"));
}

#[tokio::test]
async fn killall_stops_the_runtime_and_leaves_no_pod_mount_shim_or_network() {
    let node = crate::node::Node::start().await;
    let pod = node.pod("doomed");
    let pod_id = node.run_pod(pod.clone()).await;
    node.run_container(&pod_id, &pod, node.container("sleeper", "exec sleep 3600"))
        .await;
    let runtime = node.runtime.as_ref().unwrap();
    let runtime_pid = runtime.pid();
    let bridge = node.lease.bridge();
    assert!(link_exists(&bridge), "the pod put the bridge up");

    let out = skiff_command()
        .unwrap()
        .arg("killall")
        .arg("--data-dir")
        .arg(runtime.data_dir())
        .arg("--run-dir")
        .arg(runtime.run_dir())
        .args(["--bridge", &bridge])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("stopped 1 skiff process(es), removed 1 pod(s)"),
        "{stdout}"
    );
    // The runtime got SIGTERM and exited (a zombie until the test reaps it).
    let state = std::fs::read_to_string(format!("/proc/{runtime_pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z"),
        "the runtime still runs: {state}"
    );
    node.assert_no_leaks();
    assert!(!link_exists(&bridge), "the bridge is still there");
    let table = std::process::Command::new("nft")
        .args(["list", "table", "inet", &node.lease.nft_table()])
        .output()
        .unwrap();
    assert!(!table.status.success(), "the nftables table is still there");
}

fn link_exists(name: &str) -> bool {
    std::process::Command::new("ip")
        .args(["link", "show", name])
        .output()
        .is_ok_and(|o| o.status.success())
}
