//! `exec -s`, and the streaming verbs: exec, attach, port-forward.

use std::time::Duration;

use super::{POD_JSON, pod_with_container, run_pod};
use crate::crictl_runtime::harness::Harness;

#[tokio::test]
async fn exec_sync_prints_output_and_exits_with_the_commands_code() {
    let harness = Harness::start().await;
    let (_, id) = pod_with_container(&harness).await;
    harness.crictl(&["start", &id]).await;

    let (code, out, err) = harness
        .crictl(&["exec", "-s", &id[..3], "cat", "/etc/hostname"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ran cat /etc/hostname\na warning\n");
    let (code, out, err) = harness
        .crictl(&["exec", "--sync", "--timeout", "7", &id, "exit", "3"])
        .await;
    assert_eq!(code, 3);
    assert_eq!(out, "ran exit 3\na warning\n");
    assert_eq!(err, "non-zero exit code\n");
    assert!(
        harness
            .state()
            .calls
            .contains(&"ExecSync [\"exit\", \"3\"] timeout=7".to_owned())
    );

    let (code, _, err) = harness.crictl(&["exec", "-s", "nothing", "ls"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(
            r#"execing command in container nothing synchronously: rpc error: code = NotFound"#
        ),
        "{err}"
    );
}

#[tokio::test]
async fn exec_and_attach_stream_through_the_streaming_server() {
    let harness = Harness::start().await;
    let (_, id) = pod_with_container(&harness).await;
    harness.crictl(&["start", &id]).await;

    for transport in ["spdy", "websocket"] {
        let (code, out, err) = harness
            .crictl(&["exec", "--transport", transport, &id, "ls", "-l", "/"])
            .await;
        assert_eq!(code, 0, "{transport}: {err}");
        assert_eq!(out, "ran ls -l /\n", "{transport}");
        assert_eq!(err, "oops\n", "{transport}");

        let (code, out, err) = harness
            .crictl(&["exec", "-r", transport, &id, "exit", "4"])
            .await;
        assert_eq!(code, 4, "{transport}: {err}");
        assert_eq!(out, "ran exit 4\n");
        assert!(
            err.ends_with("command terminated with exit code 4\n"),
            "{transport}: {err}"
        );

        let (code, out, err) = harness.crictl(&["attach", "-r", transport, &id[..4]]).await;
        assert_eq!(code, 0, "{transport}: {err}");
        assert_eq!(
            (out.as_str(), err.as_str()),
            ("attached\n", "bye\n"),
            "{transport}"
        );
    }

    // With filters, the command runs in every match, each ID shown first.
    let (code, out, err) = harness
        .crictl(&["exec", "--name", "web", "-s", "true"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{id}:\nran true\na warning\n"));

    let (code, _, err) = harness.crictl(&["exec", "-t", &id, "sh"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("tty=true must be specified with interactive=true"),
        "{err}"
    );
    let (code, _, err) = harness
        .crictl(&["exec", "-r", "carrier-pigeon", &id, "sh"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("unknown transport"), "{err}");
}

#[tokio::test]
async fn port_forward_carries_connections_to_the_pod() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let harness = Harness::start().await;
    let pod = run_pod(&harness, "pod.json", POD_JSON).await;
    // The "pod's" port: an echo server on the host, which the fake's
    // streaming backend connects to.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let remote = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let local = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let spec = format!("{local}:{remote}");
    let mut forwarder = harness.crictl_in_background(&["port-forward", &pod[..4], &spec]);

    let mut conn = None;
    for _ in 0..50 {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", local)).await {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut conn = conn.expect("port-forward listens on the local port");
    conn.write_all(b"ping through the pod").await.unwrap();
    let mut buf = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut buf))
        .await
        .expect("echo within 10s")
        .unwrap();
    assert_eq!(&buf, b"ping through the pod");
    assert!(
        forwarder.try_recv().is_err(),
        "port-forward runs until stopped"
    );

    let (code, _, err) = harness.crictl(&["port-forward", &pod, "http"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains(r#"port forward: error parsing local port 'http': strconv.ParseUint: parsing \"http\": invalid syntax"#),
        "{err}"
    );
}
