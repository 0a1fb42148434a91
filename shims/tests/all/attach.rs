//! Attach: live output alongside the log, stdin, a pty with resize.

use std::io::{Read, Write};

use anyhow::{Result, bail};
use skiff_shims::client::{CreateOptions, ProcessIo};

use crate::harness::{Bundle, Pod, read_to_end};

#[tokio::test]
async fn attach_with_stdin_once() -> Result<()> {
    let pod = Pod::start().await?;
    let options = CreateOptions {
        stdin: true,
        stdin_once: true,
        ..CreateOptions::default()
    };
    pod.create(
        "reader",
        &Bundle::sh("read line; echo got:$line; cat; echo bye"),
        &options,
    )
    .await?;
    let io = pod.client.attach("reader").await?;
    let ProcessIo::Pipes {
        stdin: Some(stdin),
        stdout: Some(stdout),
        stderr: Some(_),
    } = io
    else {
        bail!("unexpected stdio: {io:?}");
    };
    pod.client.start("reader").await?;
    let mut stdin = std::fs::File::from(stdin);
    stdin.write_all(b"hello\nmore\n")?;
    // The end of the only attach session closes the container's stdin: cat ends.
    drop(stdin);
    assert_eq!(read_to_end(stdout).await?, "got:hello\nmore\nbye\n");
    assert_eq!(pod.wait_exit("reader").await?.exit_code, Some(0));
    assert_eq!(
        pod.log_records("reader"),
        ["stdout F got:hello", "stdout F more", "stdout F bye"]
    );
    pod.teardown().await
}

#[tokio::test]
async fn attach_receives_live_output() -> Result<()> {
    let pod = Pod::start().await?;
    pod.run(
        "ticker",
        &Bundle::sh("i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.05; done"),
    )
    .await?;
    pod.wait_log("ticker", "tick-2").await?;
    let io = pod.client.attach("ticker").await?;
    let ProcessIo::Pipes {
        stdin: None,
        stdout: Some(stdout),
        ..
    } = io
    else {
        bail!("unexpected stdio: {io:?}");
    };
    let seen = tokio::task::spawn_blocking(move || {
        let mut stdout = std::fs::File::from(stdout);
        let mut seen = Vec::new();
        while seen.iter().filter(|&&b| b == b'\n').count() < 3 {
            let mut chunk = [0u8; 256];
            let n = stdout.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
        }
        std::io::Result::Ok(String::from_utf8_lossy(&seen).into_owned())
    })
    .await??;
    // Live: what arrives was printed after attaching, and is in the log too.
    let first: u32 = seen
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("tick-")
        .parse()?;
    assert!(first >= 2, "{seen:?}");
    pod.wait_log("ticker", seen.lines().nth(2).unwrap()).await?;
    pod.teardown().await
}

#[tokio::test]
async fn tty_container_with_attach_and_resize() -> Result<()> {
    let pod = Pod::start().await?;
    let options = CreateOptions {
        stdin: true,
        ..CreateOptions::default()
    };
    let bundle = Bundle {
        tty: true,
        ..Bundle::sh("read cmd; eval \"$cmd\"")
    };
    pod.create("term", &bundle, &options).await?;
    let io = pod.client.attach("term").await?;
    let ProcessIo::Terminal(terminal) = io else {
        bail!("no terminal: {io:?}");
    };
    pod.client.start("term").await?;
    pod.client.resize("term", None, 100, 40).await?;
    let mut terminal = std::fs::File::from(terminal);
    terminal.write_all(b"stty size; tty; exit 7\n")?;
    let output = read_to_end(terminal.into()).await?;
    assert!(output.contains("40 100"), "{output:?}");
    assert!(output.contains("/dev/pts/"), "{output:?}");
    assert_eq!(pod.wait_exit("term").await?.exit_code, Some(7));
    let log = pod.log("term");
    assert!(log.contains(" stdout F 40 100"), "{log}");
    pod.teardown().await
}
