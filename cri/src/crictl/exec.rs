//! `crictl exec`, `attach` and `port-forward`. `exec -s` is one ExecSync
//! call; the rest ask the runtime for a streaming URL (Exec, Attach,
//! PortForward) and hand it to [`crate::streaming::client`], over SPDY by
//! default as crictl does, or WebSocket with `--transport websocket`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;

use bytes::Bytes;
use k8s_cri::v1::{AttachRequest, ExecRequest, ExecSyncRequest, PortForwardRequest};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::{AsyncRead, AsyncReadExt, DuplexStream};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::console::{Level, rpc_error};
use super::lookup::{Deadline, resolve_container, resolve_pod, subcommand_help};
use super::ps::{ContainerQuery, list_containers};
use super::{CrictlError, Session};
use crate::client::CriClient;
use crate::streaming::client::{self as streaming, SessionIo, Transport};

/// Where a URL without a host points, as crictl assumes (kubelet's port).
const DEFAULT_STREAMING_HOST: &str = "http://127.0.0.1:10250";

/// `crictl exec` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// Run the command synchronously
    #[arg(short, long)]
    sync: bool,
    /// Timeout in seconds
    #[arg(long, default_value_t = 0)]
    timeout: i64,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Keep STDIN open
    #[arg(short, long)]
    interactive: bool,
    /// Transport protocol to use, one of: spdy|websocket
    #[arg(short = 'r', long, default_value = "spdy")]
    transport: String,
    /// Exec command for all containers matching this name filter regular expression pattern
    #[arg(long)]
    name: Option<String>,
    /// Exec command for all containers matching this pod ID filter
    #[arg(short, long)]
    pod: Option<String>,
    /// Exec command for all containers matching this container image filter
    #[arg(long)]
    image: Option<String>,
    /// Exec command for all containers matching this container state filter
    #[arg(long)]
    state: Option<String>,
    /// Exec command for all containers matching this key=value label filter
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Exec command for the most recently created container
    #[arg(short, long)]
    latest: bool,
    /// Exec command for all last n containers, set to 0 for unlimited
    #[arg(short = 'n', long)]
    last: Option<usize>,
    /// Do not print the container ID if multiple containers are selected
    #[arg(short, long)]
    quiet: bool,
    /// Ignore errors during command execution
    #[arg(short = 'e', long)]
    ignore_errors: bool,
    /// Run the command in parallel if multiple containers are selected (skiff runs them in turn)
    #[arg(short = 'x', long)]
    parallel: bool,
    /// [CONTAINER-ID] COMMAND [ARG...]
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<String>,
}

impl ExecArgs {
    fn filtered(&self) -> bool {
        self.name.is_some()
            || self.pod.is_some()
            || self.image.is_some()
            || self.state.is_some()
            || !self.label.is_empty()
            || self.latest
            || self.last.is_some()
    }
}

/// `crictl attach` options.
#[derive(Debug, Clone, clap::Args)]
pub struct AttachArgs {
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Keep STDIN open
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Transport protocol to use, one of: spdy|websocket
    #[arg(short = 'r', long, default_value = "spdy")]
    transport: String,
    /// The container
    #[arg(value_name = "CONTAINER-ID")]
    id: Option<String>,
}

/// `crictl port-forward` options.
#[derive(Debug, Clone, clap::Args)]
pub struct PortForwardArgs {
    /// Transport protocol to use, one of: spdy|websocket
    #[arg(short = 'r', long, default_value = "spdy")]
    transport: String,
    /// The pod
    #[arg(value_name = "POD-ID")]
    pod: String,
    /// Ports to forward
    #[arg(value_name = "[LOCAL_PORT:]REMOTE_PORT", required = true)]
    ports: Vec<String>,
}

fn transport(name: &str) -> Result<Transport, CrictlError> {
    match name {
        "spdy" => Ok(Transport::Spdy),
        "websocket" => Ok(Transport::WebSocket),
        other => Err(CrictlError::Failed(format!(
            "get executor: unknown transport {other:?}, one of: spdy|websocket"
        ))),
    }
}

/// A URL as crictl completes it: a bare path goes to kubelet's port.
fn full_url(url: &str) -> String {
    if url.starts_with('/') {
        format!("{DEFAULT_STREAMING_HOST}{url}")
    } else {
        url.to_owned()
    }
}

pub(super) async fn exec(
    args: &ExecArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    if args.args.is_empty() {
        session.console.print(&subcommand_help("exec"))?;
        return Ok(());
    }
    let transport = transport(&args.transport)?;
    let mut client = session.runtime_client().await?;
    if args.ignore_errors && !args.quiet {
        session.console.log(
            Level::Warn,
            "The `--ignore-errors` option has been set all errors returned by the command will be ignored.",
        );
    }
    let (ids, cmd, show_ids) = if args.filtered() {
        let query = ContainerQuery {
            name: args.name.as_deref(),
            pod: args.pod.as_deref(),
            image: args.image.as_deref(),
            state: args.state.as_deref(),
            labels: &args.label,
            latest: args.latest,
            last: args.last.unwrap_or(0),
            ..ContainerQuery::default()
        };
        let containers = list_containers(session, &mut client, &query)
            .await
            .map_err(|e| CrictlError::Failed(format!("listing containers: {e}")))?;
        if containers.is_empty() {
            session
                .console
                .log(Level::Error, "No containers found per filter flags");
            session.console.print(&subcommand_help("exec"))?;
            return Ok(());
        }
        let ids: Vec<String> = containers.into_iter().map(|c| c.id).collect();
        (ids, args.args.clone(), !args.quiet && !args.parallel)
    } else if args.args.len() < 2 {
        session.console.print(&subcommand_help("exec"))?;
        return Ok(());
    } else {
        (vec![args.args[0].clone()], args.args[1..].to_vec(), false)
    };
    let mut failure = None;
    for given in &ids {
        if show_ids {
            session.console.print(&format!("{given}:\n"))?;
        }
        let id = resolve_container(session, &mut client, given).await?;
        let result = if args.sync {
            exec_sync(session, &mut client, &id, &cmd, args.timeout).await
        } else {
            exec_stream(session, &mut client, &id, &cmd, args, transport).await
        };
        if let Err(e) = result {
            if args.ignore_errors {
                session.debug(format!("Ignoring errors: {e}"));
            } else if failure.is_none() {
                failure = Some(e);
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// ExecSync: prints the command's stdout and stderr (each with a newline,
/// both on stdout, as crictl prints them) and fails with its exit code.
async fn exec_sync(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    id: &str,
    cmd: &[String],
    timeout: i64,
) -> Result<(), CrictlError> {
    let request = ExecSyncRequest {
        container_id: id.to_owned(),
        cmd: cmd.to_vec(),
        timeout,
    };
    session.debug(format!("ExecSyncRequest: {request:?}"));
    let deadline = match u64::try_from(timeout) {
        Ok(0) | Err(_) => Deadline::None,
        Ok(seconds) => Deadline::Plus(std::time::Duration::from_secs(seconds)),
    };
    let response = session
        .call(deadline, client.runtime.exec_sync(request))
        .await
        .map_err(|s| {
            CrictlError::Failed(format!(
                "execing command in container {id} synchronously: {}",
                rpc_error(&s)
            ))
        })?;
    let out = &mut session.console.out;
    out.write_all(&response.stdout)?;
    out.write_all(b"\n")?;
    out.write_all(&response.stderr)?;
    out.write_all(b"\n")?;
    out.flush()?;
    if response.exit_code != 0 {
        return Err(CrictlError::Exit {
            message: "non-zero exit code".to_owned(),
            code: response.exit_code,
        });
    }
    Ok(())
}

async fn exec_stream(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    id: &str,
    cmd: &[String],
    args: &ExecArgs,
    transport: Transport,
) -> Result<(), CrictlError> {
    let failed = |e: String| CrictlError::Failed(format!("execing command in container {id}: {e}"));
    let request = ExecRequest {
        container_id: id.to_owned(),
        cmd: cmd.to_vec(),
        tty: args.tty,
        stdin: args.interactive,
        stdout: true,
        stderr: !args.tty,
    };
    session.debug(format!("ExecRequest: {request:?}"));
    let response = session
        .call(Deadline::Default, client.runtime.exec(request))
        .await
        .map_err(|s| failed(rpc_error(&s)))?;
    let url = full_url(&response.url);
    session.debug(format!("Exec URL: {url}"));
    let code = stream(session, &url, args.interactive, args.tty, transport)
        .await
        .map_err(failed)?;
    exit_status(code)
}

/// A session's end as kubectl reports it: `command terminated with exit
/// code N`, exiting with N.
fn exit_status(code: i32) -> Result<(), CrictlError> {
    if code == 0 {
        return Ok(());
    }
    Err(CrictlError::Exit {
        message: format!("command terminated with exit code {code}"),
        code,
    })
}

pub(super) async fn attach(
    args: &AttachArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    let given = args.id.clone().unwrap_or_default();
    if given.is_empty() {
        return Err(CrictlError::Failed("ID cannot be empty".to_owned()));
    }
    let transport = transport(&args.transport)?;
    let failed =
        |e: String| CrictlError::Failed(format!("attaching running container failed: {e}"));
    let mut client = session.runtime_client().await?;
    let id = resolve_container(session, &mut client, &given).await?;
    let request = AttachRequest {
        container_id: id,
        stdin: args.stdin,
        tty: args.tty,
        stdout: true,
        stderr: !args.tty,
    };
    session.debug(format!("AttachRequest: {request:?}"));
    let response = session
        .call(Deadline::Default, client.runtime.attach(request))
        .await
        .map_err(|s| failed(rpc_error(&s)))?;
    let url = full_url(&response.url);
    session.debug(format!("Attach URL: {url}"));
    let code = stream(session, &url, args.stdin, args.tty, transport)
        .await
        .map_err(failed)?;
    exit_status(code)
}

/// Restores the terminal's settings when dropped.
struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Puts stdin's terminal in raw mode.
    fn enter() -> Result<Self, String> {
        let stdin = io::stdin();
        let saved = tcgetattr(stdin.as_fd()).map_err(|_| "input is not a terminal".to_owned())?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
            .map_err(|e| format!("set the terminal to raw mode: {e}"))?;
        Ok(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = tcsetattr(io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The process's stdin as an async reader. A plain thread reads it: a
/// read blocked on a terminal must not keep the runtime from shutting down.
fn stdin_reader() -> Box<dyn AsyncRead + Send + Unpin> {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    std::thread::spawn(move || {
        use std::io::Read as _;
        let mut stdin = io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Box::new(tokio_util::io::StreamReader::new(stream))
}

/// Runs an exec or attach session, copying its output to the console;
/// the exit code.
async fn stream(
    session: &mut Session<'_, '_>,
    url: &str,
    stdin: bool,
    tty: bool,
    transport: Transport,
) -> Result<i32, String> {
    let mut raw = None;
    let mut resize = None;
    if tty {
        if !stdin {
            return Err("tty=true must be specified with interactive=true".to_owned());
        }
        raw = Some(RawTerminal::enter()?);
        resize = streaming::watch_terminal_size(io::stdout().as_fd()).ok();
    }
    let (out_writer, mut out_reader) = tokio::io::duplex(64 * 1024);
    let (err_writer, mut err_reader): (Option<DuplexStream>, Option<DuplexStream>) = if tty {
        (None, None)
    } else {
        let (w, r) = tokio::io::duplex(64 * 1024);
        (Some(w), Some(r))
    };
    let io = SessionIo {
        stdin: stdin.then(stdin_reader),
        stdout: Some(Box::new(out_writer)),
        stderr: err_writer.map(|w| Box::new(w) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>),
        tty,
        resize,
    };
    let session_future = streaming::exec(url, io, transport);
    tokio::pin!(session_future);
    let mut result = None;
    let mut out_buf = vec![0u8; 32 * 1024];
    let mut err_buf = vec![0u8; 32 * 1024];
    let mut out_open = true;
    let mut err_open = err_reader.is_some();
    while result.is_none() || out_open || err_open {
        tokio::select! {
            r = &mut session_future, if result.is_none() => result = Some(r),
            n = out_reader.read(&mut out_buf), if out_open => match n {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => {
                    let out = &mut session.console.out;
                    out.write_all(&out_buf[..n]).map_err(|e| format!("write stdout: {e}"))?;
                    out.flush().map_err(|e| format!("write stdout: {e}"))?;
                }
            },
            n = async { err_reader.as_mut()?.read(&mut err_buf).await.ok() }, if err_open => match n {
                Some(0) | None => err_open = false,
                Some(n) => session.console.write_err(&err_buf[..n]),
            },
        }
    }
    drop(raw);
    match result {
        Some(Ok(code)) => Ok(code),
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(0),
    }
}

/// One `[LOCAL:]REMOTE` port pair; local 0 picks a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PortPair {
    local: u16,
    remote: u16,
}

/// Parses port specs as kubectl and crictl do: `8080:80`, `80`, `:80`.
fn parse_ports(specs: &[String]) -> Result<Vec<PortPair>, String> {
    specs
        .iter()
        .map(|spec| {
            let (local, remote) = match spec.split(':').collect::<Vec<_>>().as_slice() {
                [port] => (*port, *port),
                [local, remote] => (*local, *remote),
                _ => return Err(format!("invalid port format '{spec}'")),
            };
            let local = if local.is_empty() {
                0
            } else {
                parse_port(local).map_err(|e| format!("error parsing local port '{local}': {e}"))?
            };
            let remote = parse_port(remote)
                .map_err(|e| format!("error parsing remote port '{remote}': {e}"))?;
            if remote == 0 {
                return Err("remote port must be > 0".to_owned());
            }
            Ok(PortPair { local, remote })
        })
        .collect()
}

/// A port as Go's `strconv.ParseUint(s, 10, 16)` reads it, with its errors.
fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {text:?}: invalid syntax"
        ));
    }
    text.parse::<u16>()
        .map_err(|_| format!("strconv.ParseUint: parsing {text:?}: value out of range"))
}

pub(super) async fn port_forward(
    args: &PortForwardArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    let failed = |e: String| CrictlError::Failed(format!("port forward: {e}"));
    let transport = transport(&args.transport)?;
    let pairs = parse_ports(&args.ports).map_err(failed)?;
    if args.pod.is_empty() {
        return Err(failed("ID cannot be empty".to_owned()));
    }
    let mut client = session.runtime_client().await?;
    let pod = resolve_pod(session, &mut client, &args.pod).await?;
    let request = PortForwardRequest {
        pod_sandbox_id: pod,
        port: pairs.iter().map(|p| i32::from(p.remote)).collect(),
    };
    session.debug(format!("PortForwardRequest: {request:?}"));
    let response = session
        .call(Deadline::Default, client.runtime.port_forward(request))
        .await
        .map_err(|s| failed(rpc_error(&s)))?;
    let url = full_url(&response.url);
    session.debug(format!("PortForward URL: {url}"));
    let mut listeners = Vec::new();
    for pair in &pairs {
        let bound = listen(pair, session).await?;
        if bound.is_empty() {
            return Err(failed(format!(
                "unable to listen on any of the requested ports: [{} {}]",
                pair.local, pair.remote
            )));
        }
        listeners.extend(bound.into_iter().map(|l| (l, pair.remote)));
    }
    let shutdown = CancellationToken::new();
    let interrupted = shutdown.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            interrupted.cancel();
        }
    });
    let result = streaming::port_forward(&url, listeners, transport, shutdown).await;
    watcher.abort();
    result.map_err(|e| failed(e.to_string()))
}

/// Listens on 127.0.0.1 and ::1 for one pair, printing `Forwarding from
/// …` for each address as kubectl does; the ones that could be bound.
async fn listen(
    pair: &PortPair,
    session: &mut Session<'_, '_>,
) -> Result<Vec<TcpListener>, CrictlError> {
    let mut bound = Vec::new();
    let mut port = pair.local;
    let addresses = [
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
    ];
    for mut address in addresses {
        address.set_port(port);
        match TcpListener::bind(address).await {
            Ok(listener) => {
                let local = listener.local_addr()?;
                port = local.port();
                session
                    .console
                    .print(&format!("Forwarding from {local} -> {}\n", pair.remote))?;
                bound.push(listener);
            }
            Err(e) => {
                let message = format!("Unable to listen on port {port}: {e}");
                session.debug(message);
            }
        }
    }
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_parse_as_kubectl_parses_them() {
        let specs: Vec<String> = ["8080:80", "443", ":53"].map(String::from).to_vec();
        assert_eq!(
            parse_ports(&specs).unwrap(),
            [
                PortPair {
                    local: 8080,
                    remote: 80
                },
                PortPair {
                    local: 443,
                    remote: 443
                },
                PortPair {
                    local: 0,
                    remote: 53
                },
            ]
        );
        for bad in ["a:80", "80:b", "1:2:3", "80:0", "70000"] {
            assert!(parse_ports(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_without_a_host_go_to_kubelets_port() {
        assert_eq!(full_url("/exec/abc"), "http://127.0.0.1:10250/exec/abc");
        assert_eq!(
            full_url("http://10.0.0.1:1234/exec/abc"),
            "http://10.0.0.1:1234/exec/abc"
        );
    }

    #[test]
    fn exec_arguments_keep_the_commands_flags() {
        use clap::Parser as _;
        let args = crate::crictl::CrictlArgs::try_parse_from([
            "crictl", "exec", "-it", "abc", "sh", "-c", "echo hi",
        ])
        .unwrap();
        let Some(crate::crictl::CrictlCommand::Exec(exec)) = args.command else {
            panic!("not exec");
        };
        assert!(exec.interactive && exec.tty && !exec.sync);
        assert_eq!(exec.args, ["abc", "sh", "-c", "echo hi"]);
        assert!(!exec.filtered());
    }
}
