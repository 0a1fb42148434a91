//! A backend that runs commands on the host: pipes, or a pty for `tty`;
//! port-forward connects to 127.0.0.1 on the host. Attach starts a fresh
//! "main process" per attach (a shell script), which is enough to test
//! the wiring.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio as StdStdio;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::streaming::{ProcessIo, Stdio, StreamError, StreamingBackend, TerminalSize};

/// The script "attach" runs, as if it were the container's main process.
pub(super) const ATTACH_SCRIPT: &str = "echo attached; read line; echo \"got $line\"; echo bye >&2";

#[derive(Default)]
pub(super) struct HostBackend {
    /// Every resize applied, in order.
    pub(super) resizes: Arc<Mutex<Vec<TerminalSize>>>,
    /// Notified after each resize.
    pub(super) resized: Arc<tokio::sync::Notify>,
}

impl HostBackend {
    fn spawn(&self, cmd: &[String], stdio: Stdio) -> Result<ProcessIo, StreamError> {
        let (program, args) = cmd
            .split_first()
            .ok_or_else(|| StreamError::Runtime("empty command".into()))?;
        let mut command = Command::new(program);
        command.args(args).kill_on_drop(false);
        if stdio.tty {
            return self.spawn_tty(command, stdio);
        }
        command
            .stdin(piped_or_null(stdio.stdin))
            .stdout(piped_or_null(stdio.stdout))
            .stderr(piped_or_null(stdio.stderr));
        let mut child = command.spawn().map_err(|source| StreamError::Io {
            op: format!("spawn {program}"),
            source,
        })?;
        let stdin = child.stdin.take().map(|w| Box::new(w) as _);
        let stdout = child.stdout.take().map(|r| Box::new(r) as _);
        let stderr = child.stderr.take().map(|r| Box::new(r) as _);
        Ok(ProcessIo {
            stdin,
            stdout,
            stderr,
            resize: None,
            exit: async move { exit_code(child.wait().await) }.boxed(),
        })
    }

    fn spawn_tty(&self, mut command: Command, stdio: Stdio) -> Result<ProcessIo, StreamError> {
        let io_err = |op: &str| {
            let op = op.to_owned();
            move |e: nix::Error| StreamError::Io {
                op,
                source: std::io::Error::from(e),
            }
        };
        let pty = nix::pty::openpty(None, None).map_err(io_err("openpty"))?;
        let slave = pty.slave;
        command
            .stdin(StdStdio::from(slave.try_clone().map_err(|e| io(e, "dup"))?))
            .stdout(StdStdio::from(slave.try_clone().map_err(|e| io(e, "dup"))?))
            .stderr(StdStdio::from(slave));
        // SAFETY: setsid and TIOCSCTTY are async-signal-safe; they make the
        // pty the child's controlling terminal so `stty size` sees it.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid()?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| io(e, "spawn"))?;
        drop(command);
        let master: OwnedFd = pty.master;
        let reader = std::fs::File::from(master.try_clone().map_err(|e| io(e, "dup"))?);
        let writer = std::fs::File::from(master.try_clone().map_err(|e| io(e, "dup"))?);
        let resizes = self.resizes.clone();
        let resized = self.resized.clone();
        let master = Arc::new(master);
        Ok(ProcessIo {
            stdin: stdio
                .stdin
                .then(|| Box::new(tokio::fs::File::from_std(writer)) as _),
            stdout: Some(Box::new(tokio::fs::File::from_std(reader))),
            stderr: None,
            resize: Some(Box::new(move |size: TerminalSize| {
                let master = master.clone();
                let resizes = resizes.clone();
                let resized = resized.clone();
                async move {
                    let ws = nix::libc::winsize {
                        ws_row: size.height,
                        ws_col: size.width,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
                    let rc =
                        unsafe { nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSWINSZ, &ws) };
                    if rc != 0 {
                        return Err(io(std::io::Error::last_os_error(), "TIOCSWINSZ"));
                    }
                    resizes.lock().expect("resizes").push(size);
                    resized.notify_one();
                    Ok(())
                }
                .boxed()
            })),
            exit: async move { exit_code(child.wait().await) }.boxed(),
        })
    }
}

fn io(source: std::io::Error, op: &str) -> StreamError {
    StreamError::Io {
        op: op.to_owned(),
        source,
    }
}

fn piped_or_null(wanted: bool) -> StdStdio {
    if wanted {
        StdStdio::piped()
    } else {
        StdStdio::null()
    }
}

fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> Result<i32, StreamError> {
    use std::os::unix::process::ExitStatusExt;
    let status = status.map_err(|e| io(e, "wait"))?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

impl StreamingBackend for HostBackend {
    fn exec<'a>(
        &'a self,
        container_id: &'a str,
        cmd: Vec<String>,
        stdio: Stdio,
    ) -> BoxFuture<'a, Result<ProcessIo, StreamError>> {
        async move {
            if container_id == "missing" {
                return Err(StreamError::ContainerNotFound(container_id.to_owned()));
            }
            self.spawn(&cmd, stdio)
        }
        .boxed()
    }

    fn attach<'a>(
        &'a self,
        container_id: &'a str,
        stdio: Stdio,
    ) -> BoxFuture<'a, Result<ProcessIo, StreamError>> {
        async move {
            if container_id == "missing" {
                return Err(StreamError::ContainerNotFound(container_id.to_owned()));
            }
            let script = vec!["/bin/sh".into(), "-c".into(), ATTACH_SCRIPT.into()];
            self.spawn(&script, stdio)
        }
        .boxed()
    }

    fn port_forward<'a>(
        &'a self,
        sandbox_id: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<TcpStream, StreamError>> {
        async move {
            if sandbox_id == "missing" {
                return Err(StreamError::SandboxNotFound(sandbox_id.to_owned()));
            }
            TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| io(e, &format!("connect to port {port}")))
        }
        .boxed()
    }
}
