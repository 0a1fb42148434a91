//! Exec and attach sessions (kubelet's remotecommand server): the client's
//! streams, whichever transport carried them, wired to the process the
//! backend started, and the outcome written to the error stream, as a JSON
//! `metav1.Status` in protocols v4 and v5 or as plain text before.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::spdy::{SpdyConnection, StreamSend};
use super::wsstream::{self, ChannelWriter, Channels};
use super::{ProcessIo, ProcessOutput, ResizeTerminal, Stdio, StreamingBackend, TerminalSize};

/// SPDY remote command protocols, newest first (remotecommand's
/// SupportedStreamingProtocols).
pub(crate) const SPDY_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// How long output may keep flowing after the process exited (a
/// background child can hold the pipes open forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for the client to hang up once everything is sent.
const HANGUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What runs behind the session.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Exec {
        container_id: String,
        cmd: Vec<String>,
    },
    Attach {
        container_id: String,
    },
}

/// How the error stream reports the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusFormat {
    /// v1 to v3: nothing on success, the message on failure.
    Text,
    /// v4 and v5: a JSON `metav1.Status`.
    Json,
}

/// One output stream of the session.
#[derive(Clone)]
pub(crate) enum Output {
    Spdy(StreamSend),
    Ws(ChannelWriter, u8),
}

impl Output {
    async fn write(&self, data: Bytes) -> io::Result<()> {
        match self {
            Output::Spdy(s) => s.write(data).await.map_err(io::Error::from),
            Output::Ws(w, channel) => w.write(*channel, data).await,
        }
    }

    /// Half-closes on SPDY; WebSocket channels end with the connection.
    async fn close(&self) {
        if let Output::Spdy(s) = self {
            let _ = s.close().await;
        }
    }
}

/// The client's side of a session, transport-neutral.
#[derive(Default)]
pub(crate) struct SessionStreams {
    pub(crate) stdin: Option<mpsc::Receiver<Bytes>>,
    pub(crate) stdout: Option<Output>,
    pub(crate) stderr: Option<Output>,
    pub(crate) error: Option<Output>,
    pub(crate) resize: Option<mpsc::Receiver<Bytes>>,
    /// SPDY halves the client never sends on but waits to see closed.
    pub(crate) to_close: Vec<Output>,
}

/// How a session ended, as the error stream tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    ExitCode { code: i32, cmd: Vec<String> },
    Internal(String),
}

#[derive(Serialize)]
struct Status<'a> {
    metadata: Empty,
    status: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Details<'a> {
    causes: Vec<Cause<'a>>,
}

#[derive(Serialize)]
struct Cause<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    message: &'a str,
}

impl Outcome {
    /// What kubelet writes for this outcome in `format` (nothing for
    /// success before v4).
    pub(crate) fn encode(&self, format: StatusFormat) -> Vec<u8> {
        let (message, code_text);
        let status = match self {
            Outcome::Success => {
                if format == StatusFormat::Text {
                    return Vec::new();
                }
                Status {
                    metadata: Empty {},
                    status: "Success",
                    message: "",
                    reason: "",
                    details: None,
                    code: None,
                }
            }
            Outcome::ExitCode { code, cmd } => {
                let code = exit_code_byte(*code);
                message = format!(
                    "command terminated with non-zero exit code: command '{}' exited with {code}",
                    cmd.join(" ")
                );
                code_text = code.to_string();
                Status {
                    metadata: Empty {},
                    status: "Failure",
                    message: &message,
                    reason: "NonZeroExitCode",
                    details: Some(Details {
                        causes: vec![Cause {
                            reason: "ExitCode",
                            message: &code_text,
                        }],
                    }),
                    code: None,
                }
            }
            Outcome::Internal(cause) => {
                message = format!("Internal error occurred: {cause}");
                Status {
                    metadata: Empty {},
                    status: "Failure",
                    message: &message,
                    reason: "InternalError",
                    details: Some(Details {
                        causes: vec![Cause {
                            reason: "",
                            message: cause,
                        }],
                    }),
                    code: Some(500),
                }
            }
        };
        match format {
            StatusFormat::Json => serde_json::to_vec(&status).unwrap_or_default(),
            StatusFormat::Text => status.message.as_bytes().to_vec(),
        }
    }
}

/// Exit codes travel as one byte (client-go parses them as uint8): a
/// signal death reported as negative becomes 128 + signal, as shells do.
fn exit_code_byte(code: i32) -> u8 {
    let code = if code < 0 {
        128i32.saturating_sub(code)
    } else {
        code
    };
    u8::try_from(code.clamp(0, 255)).unwrap_or(255)
}

/// Runs the session to its end: starts the process, copies streams, and
/// reports the outcome. Returns early, dropping the process's streams, if
/// the client goes away (`gone`).
pub(crate) async fn run(
    backend: &dyn StreamingBackend,
    command: &Command,
    stdio: Stdio,
    mut streams: SessionStreams,
    format: StatusFormat,
    gone: CancellationToken,
) {
    let started = match command {
        Command::Exec { container_id, cmd } => backend.exec(container_id, cmd.clone(), stdio).await,
        Command::Attach { container_id } => backend.attach(container_id, stdio).await,
    };
    let outcome = match started {
        Ok(process) => {
            let Some(outcome) = supervise(process, command, &mut streams, gone).await else {
                return;
            };
            outcome
        }
        Err(e) => {
            tracing::info!(error = %e, ?command, "streaming session could not start");
            Outcome::Internal(match command {
                Command::Exec { .. } => format!("error executing command in container: {e}"),
                Command::Attach { .. } => format!("error attaching to container: {e}"),
            })
        }
    };
    for out in [&streams.stdout, &streams.stderr].into_iter().flatten() {
        out.close().await;
    }
    if let Some(error) = &streams.error {
        let bytes = outcome.encode(format);
        if !bytes.is_empty() {
            let _ = error.write(Bytes::from(bytes)).await;
        }
        error.close().await;
    }
    for out in &streams.to_close {
        out.close().await;
    }
}

/// Copies streams until the process exits and its output drains; `None`
/// if the client left first.
async fn supervise(
    process: ProcessIo,
    command: &Command,
    streams: &mut SessionStreams,
    gone: CancellationToken,
) -> Option<Outcome> {
    let ProcessIo {
        stdin,
        stdout,
        stderr,
        resize,
        exit,
    } = process;
    let mut tasks = tokio::task::JoinSet::new();
    if let (Some(mut rx), Some(mut input)) = (streams.stdin.take(), stdin) {
        tasks.spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if input.write_all(&chunk).await.is_err() {
                    return;
                }
                let _ = input.flush().await;
            }
            // The client's stdin ended: the process sees EOF.
            let _ = input.shutdown().await;
        });
    }
    if let (Some(rx), Some(resize)) = (streams.resize.take(), resize) {
        tasks.spawn(apply_resizes(rx, resize));
    }
    let mut outputs = tokio::task::JoinSet::new();
    for (reader, out) in [
        (stdout, streams.stdout.clone()),
        (stderr, streams.stderr.clone()),
    ] {
        if let Some(reader) = reader {
            outputs.spawn(copy_output(reader, out));
        }
    }
    let exit = tokio::select! {
        exit = exit => exit,
        () = gone.cancelled() => return None,
    };
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while outputs.join_next().await.is_some() {}
    });
    tokio::select! {
        result = drained => if result.is_err() {
            tracing::debug!(?command, "output still open {DRAIN_TIMEOUT:?} after exit; cutting it off");
        },
        () = gone.cancelled() => return None,
    }
    outputs.abort_all();
    tasks.abort_all();
    Some(match (exit, command) {
        (Ok(0), _) | (Ok(_), Command::Attach { .. }) => Outcome::Success,
        (Ok(code), Command::Exec { cmd, .. }) => Outcome::ExitCode {
            code,
            cmd: cmd.clone(),
        },
        (Err(e), _) => Outcome::Internal(format!("error waiting for the process: {e}")),
    })
}

/// Copies process output to the client; without a client stream for it,
/// reads and discards so the process never blocks on a full pipe.
async fn copy_output(mut reader: ProcessOutput, out: Option<Output>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(out) = &out
                    && out.write(Bytes::copy_from_slice(&buf[..n])).await.is_err()
                {
                    break;
                }
            }
        }
    }
    if let Some(out) = out {
        out.close().await;
    }
}

/// Applies resize events as they arrive; stops at the first malformed
/// one, as kubelet's json.Decoder loop does.
async fn apply_resizes(mut rx: mpsc::Receiver<Bytes>, resize: ResizeTerminal) {
    let mut decoder = ResizeDecoder::default();
    while let Some(chunk) = rx.recv().await {
        let Ok(sizes) = decoder.push(&chunk) else {
            tracing::debug!("malformed terminal resize event; ignoring the rest");
            return;
        };
        for size in sizes {
            if let Err(e) = resize(size).await {
                tracing::debug!(error = %e, "resizing terminal");
            }
        }
    }
}

/// Splits a byte stream of concatenated JSON objects into sizes.
#[derive(Debug, Default)]
pub(crate) struct ResizeDecoder {
    buf: Vec<u8>,
}

impl ResizeDecoder {
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<Vec<TerminalSize>, serde_json::Error> {
        self.buf.extend_from_slice(chunk);
        let mut sizes = Vec::new();
        let mut iter = serde_json::Deserializer::from_slice(&self.buf).into_iter::<TerminalSize>();
        loop {
            match iter.next() {
                Some(Ok(size)) => sizes.push(size),
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        let used = iter.byte_offset();
        self.buf.drain(..used);
        Ok(sizes)
    }
}

/// Waits for the client's SPDY streams (v4 handler's waitForStreams):
/// replies to each, sorts them by `streamType`, and stops once the
/// expected number arrived. `None` if they did not within `timeout`.
pub(crate) async fn spdy_streams(
    conn: &mut SpdyConnection,
    protocol: &str,
    stdio: Stdio,
    timeout: Duration,
) -> Option<SessionStreams> {
    let resize_supported = !matches!(protocol, "v2.channel.k8s.io" | "channel.k8s.io" | "");
    let expected = 1
        + usize::from(stdio.stdin)
        + usize::from(stdio.stdout)
        + usize::from(stdio.stderr)
        + usize::from(stdio.tty && resize_supported);
    let mut streams = SessionStreams::default();
    let collect = async {
        let mut received = 0;
        while received < expected {
            let stream = conn.accept().await?;
            if stream.send.reply().await.is_err() {
                return None;
            }
            let kind = stream.headers.get("streamtype").unwrap_or("").to_owned();
            let out = Output::Spdy(stream.send.clone());
            match kind.as_str() {
                "error" => streams.error = Some(out),
                "stdout" => streams.stdout = Some(out),
                "stderr" => streams.stderr = Some(out),
                "stdin" => {
                    streams.stdin = Some(stream.recv.into_channel());
                    streams.to_close.push(out);
                }
                "resize" => {
                    streams.resize = Some(stream.recv.into_channel());
                    streams.to_close.push(out);
                }
                other => {
                    tracing::debug!(stream_type = other, "unexpected SPDY stream type");
                    continue;
                }
            }
            received += 1;
        }
        Some(())
    };
    match tokio::time::timeout(timeout, collect).await {
        Ok(Some(())) => Some(streams),
        Ok(None) => None,
        Err(_) => {
            tracing::info!("timed out waiting for client to create streams");
            None
        }
    }
}

/// The SPDY status format for a negotiated protocol.
pub(crate) fn spdy_status_format(protocol: &str) -> StatusFormat {
    match protocol {
        "v5.channel.k8s.io" | "v4.channel.k8s.io" => StatusFormat::Json,
        _ => StatusFormat::Text,
    }
}

/// Ends a SPDY session politely: no more streams, then wait for the
/// client to hang up (closing first could lose frames the client has
/// read but not yet delivered).
pub(crate) async fn finish_spdy(conn: SpdyConnection) {
    conn.go_away().await;
    let closed = conn.closed();
    if tokio::time::timeout(HANGUP_TIMEOUT, closed.cancelled())
        .await
        .is_err()
    {
        conn.shutdown().await;
    }
}

/// Sets up a WebSocket session's streams (kubelet's createWebSocketStreams):
/// channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; an empty
/// message on the first writable one tells the client it is connected.
pub(crate) async fn ws_streams(channels: &mut Channels, stdio: Stdio) -> SessionStreams {
    let writer = &channels.writer;
    let first = if stdio.stdout {
        1
    } else if stdio.stderr {
        2
    } else {
        3
    };
    let _ = writer.write(first, Bytes::new()).await;
    SessionStreams {
        stdin: if stdio.stdin {
            channels.inputs[0].take()
        } else {
            None
        },
        stdout: stdio.stdout.then(|| Output::Ws(writer.clone(), 1)),
        stderr: stdio.stderr.then(|| Output::Ws(writer.clone(), 2)),
        error: Some(Output::Ws(writer.clone(), 3)),
        resize: if stdio.tty {
            channels.inputs[4].take()
        } else {
            None
        },
        to_close: Vec::new(),
    }
}

/// Which WebSocket channels a remote command session reads.
pub(crate) const WS_READABLE: [bool; 5] = [true, false, false, false, true];

/// The WebSocket status format for a negotiated protocol.
pub(crate) fn ws_status_format(protocol: &wsstream::ChannelProtocol) -> StatusFormat {
    if protocol.name.starts_with("v4.") || protocol.name.starts_with("v5.") {
        StatusFormat::Json
    } else {
        StatusFormat::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_what_kubelet_writes() {
        assert_eq!(
            Outcome::Success.encode(StatusFormat::Json),
            br#"{"metadata":{},"status":"Success"}"#
        );
        assert!(Outcome::Success.encode(StatusFormat::Text).is_empty());
        let exit = Outcome::ExitCode {
            code: 3,
            cmd: vec!["sh".into(), "-c".into(), "exit 3".into()],
        };
        assert_eq!(
            String::from_utf8(exit.encode(StatusFormat::Json)).expect("utf-8"),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: command 'sh -c exit 3' exited with 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(
            String::from_utf8(exit.encode(StatusFormat::Text)).expect("utf-8"),
            "command terminated with non-zero exit code: command 'sh -c exit 3' exited with 3"
        );
        assert_eq!(
            String::from_utf8(Outcome::Internal("boom".into()).encode(StatusFormat::Json))
                .expect("utf-8"),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: boom","reason":"InternalError","details":{"causes":[{"message":"boom"}]},"code":500}"#
        );
    }

    #[test]
    fn exit_codes_fit_a_byte() {
        assert_eq!(exit_code_byte(1), 1);
        assert_eq!(exit_code_byte(-9), 137);
        assert_eq!(exit_code_byte(300), 255);
    }

    #[test]
    fn resize_events_split_across_chunks() {
        let mut d = ResizeDecoder::default();
        assert_eq!(d.push(br#"{"Width":80,"#).expect("partial"), vec![]);
        let sizes = d
            .push(b"\"Height\":24}\n{\"Width\":100,\"Height\":40}\n")
            .expect("two");
        assert_eq!(
            sizes,
            vec![
                TerminalSize {
                    width: 80,
                    height: 24
                },
                TerminalSize {
                    width: 100,
                    height: 40
                }
            ]
        );
        assert!(d.push(b"nonsense").is_err());
    }
}
