//! The streaming server's view of the node runtime: exec, attach and
//! port-forward sessions built from the file descriptors the pod's shim
//! hands over (pipes, or a terminal's master side).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::FutureExt;
use futures::future::BoxFuture;
use skiff_runtime::{Runtime, RuntimeError};
use skiff_shims::client::ProcessIo as ShimIo;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::streaming::{
    ProcessInput, ProcessIo, ProcessOutput, Stdio, StreamError, StreamingBackend, TerminalSize,
};

/// [`StreamingBackend`] over the node runtime.
#[derive(Debug, Clone)]
pub struct RuntimeStreams {
    runtime: Runtime,
}

impl RuntimeStreams {
    /// Streams of `runtime`'s containers.
    pub fn new(runtime: Runtime) -> Self {
        Self { runtime }
    }
}

fn stream_error(err: RuntimeError) -> StreamError {
    match err {
        RuntimeError::NotFound {
            what: "container",
            id,
        } => StreamError::ContainerNotFound(id),
        RuntimeError::NotFound {
            what: "pod sandbox",
            id,
        } => StreamError::SandboxNotFound(id),
        other => StreamError::Runtime(crate::status::full_text(&other)),
    }
}

impl StreamingBackend for RuntimeStreams {
    fn exec<'a>(
        &'a self,
        container_id: &'a str,
        cmd: Vec<String>,
        stdio: Stdio,
    ) -> BoxFuture<'a, Result<ProcessIo, StreamError>> {
        async move {
            let mut session = self
                .runtime
                .exec(container_id, cmd, stdio.tty, stdio.stdin)
                .await
                .map_err(stream_error)?;
            // Take the descriptors out: the session must not keep a copy of
            // stdin's write end, or the process never sees end-of-input.
            let io = std::mem::replace(
                &mut session.io,
                ShimIo::Pipes {
                    stdin: None,
                    stdout: None,
                    stderr: None,
                },
            );
            let session = std::sync::Arc::new(session);
            let (stdin, stdout, stderr) = split(io, stdio)?;
            let resize_session = session.clone();
            let resize: crate::streaming::ResizeTerminal = Box::new(move |size: TerminalSize| {
                let session = resize_session.clone();
                async move {
                    session
                        .resize(size.width, size.height)
                        .await
                        .map_err(stream_error)
                }
                .boxed()
            });
            let exit = async move { session.wait().await.map_err(stream_error) }.boxed();
            Ok(ProcessIo {
                stdin,
                stdout,
                stderr,
                resize: stdio.tty.then_some(resize),
                exit,
            })
        }
        .boxed()
    }

    fn attach<'a>(
        &'a self,
        container_id: &'a str,
        stdio: Stdio,
    ) -> BoxFuture<'a, Result<ProcessIo, StreamError>> {
        async move {
            let (io, tty) = self
                .runtime
                .attach(container_id)
                .await
                .map_err(stream_error)?;
            let stdio = Stdio { tty, ..stdio };
            let (stdin, stdout, stderr) = split(io, stdio)?;
            let runtime = self.runtime.clone();
            let id = container_id.to_string();
            let resize: crate::streaming::ResizeTerminal = Box::new(move |size: TerminalSize| {
                let (runtime, id) = (runtime.clone(), id.clone());
                async move {
                    runtime
                        .resize(&id, size.width, size.height)
                        .await
                        .map_err(stream_error)
                }
                .boxed()
            });
            let runtime = self.runtime.clone();
            let id = container_id.to_string();
            let exit =
                async move { runtime.wait_container(&id).await.map_err(stream_error) }.boxed();
            Ok(ProcessIo {
                stdin,
                stdout,
                stderr,
                resize: tty.then_some(resize),
                exit,
            })
        }
        .boxed()
    }

    fn port_forward<'a>(
        &'a self,
        sandbox_id: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<TcpStream, StreamError>> {
        async move {
            self.runtime
                .port_forward(sandbox_id, port)
                .await
                .map_err(stream_error)
        }
        .boxed()
    }
}

type Streams = (
    Option<ProcessInput>,
    Option<ProcessOutput>,
    Option<ProcessOutput>,
);

/// The client's streams from the shim's descriptors, keeping those it asked for.
fn split(io: ShimIo, stdio: Stdio) -> Result<Streams, StreamError> {
    let err = |op: &'static str| {
        move |source: io::Error| StreamError::Io {
            op: op.to_string(),
            source,
        }
    };
    match io {
        ShimIo::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            let stdin = match stdin.filter(|_| stdio.stdin) {
                Some(fd) => Some(Box::new(
                    tokio::net::unix::pipe::Sender::from_owned_fd(fd)
                        .map_err(err("open stdin pipe"))?,
                ) as ProcessInput),
                None => None,
            };
            let reader =
                |fd: Option<OwnedFd>, wanted: bool| -> Result<Option<ProcessOutput>, StreamError> {
                    match fd.filter(|_| wanted) {
                        Some(fd) => Ok(Some(Box::new(
                            tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
                                .map_err(err("open output pipe"))?,
                        ))),
                        None => Ok(None),
                    }
                };
            Ok((
                stdin,
                reader(stdout, stdio.stdout)?,
                reader(stderr, stdio.stderr)?,
            ))
        }
        ShimIo::Terminal(master) => {
            let input = master.try_clone().map_err(err("duplicate terminal"))?;
            let stdin = if stdio.stdin {
                Some(Box::new(Terminal::new(input).map_err(err("open terminal"))?) as ProcessInput)
            } else {
                None
            };
            let stdout = Some(
                Box::new(Terminal::new(master).map_err(err("open terminal"))?) as ProcessOutput,
            );
            Ok((stdin, stdout, None))
        }
    }
}

/// The master side of a pty, as an async byte stream.
#[derive(Debug)]
struct Terminal {
    fd: AsyncFd<OwnedFd>,
}

impl Terminal {
    fn new(fd: OwnedFd) -> io::Result<Self> {
        let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))?;
        // SAFETY: the descriptor is owned by the AsyncFd, so it stays open
        // (and is not reused) for as long as it is registered.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Self { fd })
    }
}

impl AsyncRead for Terminal {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard
                .try_io(|fd| nix::unistd::read(fd.as_raw_fd(), unfilled).map_err(io::Error::from))
            {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EIO on a pty master: the other side closed (the process exited).
                Ok(Err(err)) if err.raw_os_error() == Some(libc::EIO) => {
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Terminal {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
