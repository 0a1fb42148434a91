//! Exec: pipes, stdin, a pty, exit codes, and the end of the container.

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};
use skiff_shims::client::ProcessIo;
use skiff_shims::protocol::{ErrorKind, ExecProcess};

use crate::harness::{Bundle, Pod, read_to_end};

fn command(script: &str) -> ExecProcess {
    ExecProcess {
        args: vec!["sh".into(), "-c".into(), script.into()],
        ..ExecProcess::default()
    }
}

#[tokio::test]
async fn exec_with_pipes_and_exit_code() -> Result<()> {
    let pod = Pod::start().await?;
    pod.run("box", &Bundle::sh("sleep 1000")).await?;
    let mut process = command("echo hi; echo oops >&2; echo $GREETING; pwd; exit 5");
    process.env = vec!["GREETING=hello".into()];
    process.cwd = Some("/tmp".into());
    let started = pod.client.exec("box", "e1", &process, false, false).await?;
    let ProcessIo::Pipes {
        stdin: None,
        stdout: Some(stdout),
        stderr: Some(stderr),
    } = started.io
    else {
        bail!("unexpected stdio: {:?}", started.io);
    };
    assert_eq!(read_to_end(stdout).await?, "hi\nhello\n/tmp\n");
    assert_eq!(read_to_end(stderr).await?, "oops\n");
    assert_eq!(pod.client.exec_wait("e1").await?, 5);
    // Waited for: the exec is forgotten.
    assert_eq!(
        pod.client.exec_wait("e1").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    pod.teardown().await
}

#[tokio::test]
async fn exec_with_stdin() -> Result<()> {
    let pod = Pod::start().await?;
    pod.run("box", &Bundle::sh("sleep 1000")).await?;
    let process = ExecProcess {
        args: vec!["cat".into()],
        ..ExecProcess::default()
    };
    let started = pod.client.exec("box", "cat", &process, true, false).await?;
    let ProcessIo::Pipes {
        stdin: Some(stdin),
        stdout: Some(stdout),
        stderr: Some(_),
    } = started.io
    else {
        bail!("unexpected stdio: {:?}", started.io);
    };
    let mut stdin = std::fs::File::from(stdin);
    stdin.write_all(b"ping\n")?;
    drop(stdin);
    assert_eq!(read_to_end(stdout).await?, "ping\n");
    assert_eq!(pod.client.exec_wait("cat").await?, 0);
    pod.teardown().await
}

#[tokio::test]
async fn exec_with_a_tty() -> Result<()> {
    let pod = Pod::start().await?;
    pod.run("box", &Bundle::sh("sleep 1000")).await?;
    let started = pod
        .client
        .exec(
            "box",
            "t1",
            &command("tty; echo term=$TERM; exit 2"),
            true,
            true,
        )
        .await?;
    let ProcessIo::Terminal(pty) = started.io else {
        bail!("no terminal: {:?}", started.io);
    };
    pod.client.resize("box", Some("t1"), 100, 40).await.ok();
    let output = read_to_end(pty).await?;
    assert!(output.contains("/dev/pts/"), "{output:?}");
    assert!(output.contains("term=xterm"), "{output:?}");
    assert_eq!(pod.client.exec_wait("t1").await?, 2);
    pod.teardown().await
}

#[tokio::test]
async fn exec_ends_with_its_container_and_can_be_killed() -> Result<()> {
    let pod = Pod::start().await?;
    pod.run("box", &Bundle::sh("sleep 1000")).await?;
    // ExecSync's timeout: the runtime kills the exec.
    pod.client
        .exec("box", "slow", &command("sleep 100"), false, false)
        .await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    pod.client.signal_exec("box", "slow", 9).await?;
    assert_eq!(pod.client.exec_wait("slow").await?, 137);

    pod.client
        .exec("box", "orphan", &command("sleep 100"), false, false)
        .await?;
    let waiting = {
        let client = pod.client.clone();
        tokio::spawn(async move { client.exec_wait("orphan").await })
    };
    pod.client.signal("box", 9).await?;
    pod.wait_exit("box").await?;
    let code = tokio::time::timeout(Duration::from_secs(20), waiting).await???;
    assert_eq!(code, 137);
    let refused = pod
        .client
        .exec("box", "late", &command("true"), false, false)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::FailedPrecondition);
    pod.teardown().await
}
