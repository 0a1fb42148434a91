//! Exec and attach through this crate's client, over WebSocket (v5) and
//! SPDY (v4).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{attach_request, exec_request, fixture, within};
use crate::streaming::client::{self, SessionIo, Transport};
use crate::streaming::{ClientError, TerminalSize};

const BOTH: [Transport; 2] = [Transport::WebSocket, Transport::Spdy];

/// An AsyncWrite whose bytes the test reads afterwards.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("captured")).into_owned()
    }
}

impl AsyncWrite for Captured {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.lock().expect("captured").extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct Run {
    result: Result<i32, ClientError>,
    stdout: String,
    stderr: String,
}

async fn run(url: &str, transport: Transport, stdin: Option<&'static [u8]>) -> Run {
    let (stdout, stderr) = (Captured::default(), Captured::default());
    let io = SessionIo {
        stdin: stdin.map(|data| Box::new(data) as _),
        stdout: Some(Box::new(stdout.clone())),
        stderr: Some(Box::new(stderr.clone())),
        tty: false,
        resize: None,
    };
    let result = within("exec", client::exec(url, io, transport)).await;
    Run {
        result,
        stdout: stdout.text(),
        stderr: stderr.text(),
    }
}

#[tokio::test]
async fn stdout_and_stderr_stay_apart() {
    let f = fixture().await;
    for transport in BOTH {
        let url = f
            .urls
            .exec_url(&exec_request(
                &["sh", "-c", "echo out; echo err >&2"],
                false,
                false,
            ))
            .expect("url");
        let r = run(&url, transport, None).await;
        assert_eq!(r.result.expect("exit"), 0, "{transport:?}");
        assert_eq!(r.stdout, "out\n", "{transport:?}");
        assert_eq!(r.stderr, "err\n", "{transport:?}");
    }
}

#[tokio::test]
async fn stdin_reaches_the_process_and_its_end_closes_it() {
    let f = fixture().await;
    for transport in BOTH {
        let url = f
            .urls
            .exec_url(&exec_request(&["cat"], true, false))
            .expect("url");
        // cat exits only when its stdin closes: v5's close signal (or
        // SPDY's FIN) must reach it.
        let r = run(&url, transport, Some(b"hello\nworld\n")).await;
        assert_eq!(r.result.expect("exit"), 0, "{transport:?}");
        assert_eq!(r.stdout, "hello\nworld\n", "{transport:?}");
    }
}

#[tokio::test]
async fn a_non_zero_exit_comes_back_as_the_exit_code() {
    let f = fixture().await;
    for transport in BOTH {
        let url = f
            .urls
            .exec_url(&exec_request(
                &["sh", "-c", "echo bye; exit 3"],
                false,
                false,
            ))
            .expect("url");
        let r = run(&url, transport, None).await;
        assert_eq!(r.result.expect("exit code"), 3, "{transport:?}");
        assert_eq!(r.stdout, "bye\n");
    }
}

#[tokio::test]
async fn large_output_arrives_whole() {
    let f = fixture().await;
    for transport in BOTH {
        let url = f
            .urls
            .exec_url(&exec_request(&["seq", "1", "200000"], false, false))
            .expect("url");
        let r = run(&url, transport, None).await;
        assert_eq!(r.result.expect("exit"), 0);
        let expected: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
        assert_eq!(r.stdout.len(), expected.len(), "{transport:?}");
        assert!(r.stdout == expected, "{transport:?}: output differs");
    }
}

#[tokio::test]
async fn a_backend_failure_is_an_internal_error_status() {
    let f = fixture().await;
    for transport in BOTH {
        let mut req = exec_request(&["true"], false, false);
        req.container_id = "missing".into();
        let url = f.urls.exec_url(&req).expect("url");
        let r = run(&url, transport, None).await;
        match r.result {
            Err(ClientError::Remote(msg)) => assert_eq!(
                msg,
                "Internal error occurred: error executing command in container: \
                 container \"missing\" not found",
                "{transport:?}"
            ),
            other => panic!("{transport:?}: expected a remote error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn tty_sessions_merge_output_and_apply_resizes() {
    let f = fixture().await;
    for transport in BOTH {
        let url = f
            .urls
            .exec_url(&exec_request(
                &["sh", "-c", "read x; stty size; echo \"[$x]\""],
                true,
                true,
            ))
            .expect("url");
        let (mut stdin_w, stdin_r) = tokio::io::duplex(1024);
        let (resize_tx, resize_rx) = mpsc::channel(4);
        let stdout = Captured::default();
        let io = SessionIo {
            stdin: Some(Box::new(stdin_r)),
            stdout: Some(Box::new(stdout.clone())),
            stderr: None,
            tty: true,
            resize: Some(resize_rx),
        };
        let session = tokio::spawn(async move { client::exec(&url, io, transport).await });
        let size = TerminalSize {
            width: 100,
            height: 40,
        };
        let resized = f.backend.resized.notified();
        resize_tx.send(size).await.expect("resize");
        within("resize", resized).await;
        assert_eq!(
            f.backend.resizes.lock().expect("resizes").last(),
            Some(&size)
        );
        stdin_w.write_all(b"hi\n").await.expect("stdin");
        let code = within("tty exec", session)
            .await
            .expect("task")
            .expect("exit");
        assert_eq!(code, 0, "{transport:?}");
        let out = stdout.text();
        // The terminal echoes input and ends lines with CR LF.
        assert!(out.contains("40 100\r\n"), "{transport:?}: {out:?}");
        assert!(out.contains("[hi]\r\n"), "{transport:?}: {out:?}");
    }
}

#[tokio::test]
async fn attach_carries_stdin_stdout_and_stderr() {
    let f = fixture().await;
    for transport in BOTH {
        let url = f.urls.attach_url(&attach_request(true)).expect("url");
        let r = run(&url, transport, Some(b"hi\n")).await;
        assert_eq!(r.result.expect("exit"), 0, "{transport:?}");
        assert_eq!(r.stdout, "attached\ngot hi\n", "{transport:?}");
        assert_eq!(r.stderr, "bye\n", "{transport:?}");
    }
}
