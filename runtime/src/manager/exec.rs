//! Running commands in containers (ExecSync and streaming Exec), attaching
//! to them, and port-forwarding into a pod's network namespace.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use skiff_shims::ShimClient;
use skiff_shims::client::ProcessIo;
use skiff_shims::protocol::ExecProcess;
use tokio::io::AsyncReadExt;

use super::Runtime;
use crate::error::RuntimeError;
use crate::ids::new_id;
use crate::records::ContainerState;

/// ExecSync keeps at most this much of each output stream (kubelet's cap).
const MAX_EXEC_OUTPUT: u64 = 16 << 20;

/// What ExecSync returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
    /// Its exit code.
    pub exit_code: i32,
}

/// A streaming exec: the process's stdio, its exit code, its terminal size.
#[derive(Debug)]
pub struct ExecSession {
    /// The exec's ID within its shim.
    pub exec_id: String,
    /// The container it runs in.
    pub container_id: String,
    /// Its stdio (pipes, or one terminal).
    pub io: ProcessIo,
    shim: ShimClient,
}

impl ExecSession {
    /// Waits for the process to exit; returns its exit code.
    pub async fn wait(&self) -> Result<i32, RuntimeError> {
        Ok(self.shim.exec_wait(&self.exec_id).await?)
    }

    /// Resizes its terminal.
    pub async fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        Ok(self
            .shim
            .resize(&self.container_id, Some(&self.exec_id), width, height)
            .await?)
    }

    /// Kills it (when its client went away).
    pub async fn kill(&self) -> Result<(), RuntimeError> {
        Ok(self
            .shim
            .signal_exec(&self.container_id, &self.exec_id, libc::SIGKILL)
            .await?)
    }
}

impl Runtime {
    fn running_container_shim(&self, id: &str) -> Result<(String, ShimClient), RuntimeError> {
        let id = self.resolve_container(id)?;
        let record = self.container(&id)?;
        if record.state != ContainerState::Running {
            return Err(RuntimeError::FailedPrecondition(format!(
                "container {id} is not running (it is {:?})",
                record.state
            )));
        }
        Ok((id, self.shim(&record.sandbox_id)?))
    }

    /// Starts `cmd` in a running container, for a streaming Exec.
    pub async fn exec(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        tty: bool,
        stdin: bool,
    ) -> Result<ExecSession, RuntimeError> {
        if cmd.is_empty() {
            return Err(RuntimeError::InvalidArgument(
                "exec: cmd must not be empty".into(),
            ));
        }
        let (container_id, shim) = self.running_container_shim(container_id)?;
        let exec_id = new_id();
        let process = ExecProcess {
            args: cmd,
            ..Default::default()
        };
        let started = shim
            .exec(&container_id, &exec_id, &process, stdin, tty)
            .await?;
        Ok(ExecSession {
            exec_id,
            container_id,
            io: started.io,
            shim,
        })
    }

    /// ExecSync: runs `cmd`, collects its output and exit code; past
    /// `timeout` (zero: none) the process is killed and the call fails.
    pub async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let ExecSession {
            exec_id,
            container_id,
            io,
            shim,
        } = self.exec(container_id, cmd.clone(), false, false).await?;
        let (stdout, stderr) = match io {
            ProcessIo::Pipes { stdout, stderr, .. } => (stdout, stderr),
            ProcessIo::Terminal(fd) => {
                return Err(RuntimeError::Internal(format!(
                    "exec without tty got a terminal (fd {fd:?})"
                )));
            }
        };
        let collect = async {
            let (stdout, stderr) = tokio::join!(read_all(stdout), read_all(stderr));
            let exit_code = shim.exec_wait(&exec_id).await?;
            Ok::<_, RuntimeError>(ExecOutput {
                stdout: stdout?,
                stderr: stderr?,
                exit_code,
            })
        };
        if timeout.is_zero() {
            return collect.await;
        }
        match tokio::time::timeout(timeout, collect).await {
            Ok(result) => result,
            Err(_) => {
                let _ = shim
                    .signal_exec(&container_id, &exec_id, libc::SIGKILL)
                    .await;
                Err(RuntimeError::DeadlineExceeded(format!(
                    "command {cmd:?} timed out after {timeout:?}"
                )))
            }
        }
    }

    /// Attaches to a running container's main process.
    pub async fn attach(&self, container_id: &str) -> Result<(ProcessIo, bool), RuntimeError> {
        let (container_id, shim) = self.running_container_shim(container_id)?;
        let tty = self.container(&container_id)?.config.tty;
        Ok((shim.attach(&container_id).await?, tty))
    }

    /// Resizes a container's terminal (for attach).
    pub async fn resize(
        &self,
        container_id: &str,
        width: u16,
        height: u16,
    ) -> Result<(), RuntimeError> {
        let (container_id, shim) = self.running_container_shim(container_id)?;
        Ok(shim.resize(&container_id, None, width, height).await?)
    }

    /// A TCP connection to `port` on the pod's loopback, made from inside
    /// the pod's network namespace (the host's for host-network pods).
    pub async fn port_forward(
        &self,
        sandbox_id: &str,
        port: u16,
    ) -> Result<tokio::net::TcpStream, RuntimeError> {
        let sandbox_id = self.resolve_sandbox(sandbox_id)?;
        let sandbox = self.sandbox(&sandbox_id)?;
        let netns = sandbox.namespaces.net.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A thread of its own: setns changes only this thread, which then ends.
        std::thread::Builder::new()
            .name("skiff-portfwd".into())
            .spawn(move || {
                let _ = tx.send(connect_in(netns, port));
            })
            .map_err(|e| {
                RuntimeError::Internal(format!("spawning the port-forward thread: {e}"))
            })?;
        let stream = rx
            .await
            .map_err(|e| RuntimeError::Internal(e.to_string()))??;
        stream.set_nonblocking(true).map_err(RuntimeError::io(
            "configure socket for",
            format!("port {port}"),
        ))?;
        tokio::net::TcpStream::from_std(stream).map_err(RuntimeError::io(
            "register socket for",
            format!("port {port}"),
        ))
    }
}

fn connect_in(netns: Option<PathBuf>, port: u16) -> Result<std::net::TcpStream, RuntimeError> {
    if let Some(netns) = &netns {
        let file = std::fs::File::open(netns)
            .map_err(RuntimeError::io("open network namespace", netns))?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| RuntimeError::io("enter network namespace", netns)(e.into()))?;
    }
    std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| {
        RuntimeError::FailedPrecondition(format!(
            "port-forward: connecting to port {port} in the pod: {e}"
        ))
    })
}

async fn read_all(fd: Option<OwnedFd>) -> Result<Vec<u8>, RuntimeError> {
    let Some(fd) = fd else { return Ok(Vec::new()) };
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
        .map_err(RuntimeError::io("read exec output from", "pipe"))?;
    let mut out = Vec::new();
    pipe.take(MAX_EXEC_OUTPUT)
        .read_to_end(&mut out)
        .await
        .map_err(RuntimeError::io("read exec output from", "pipe"))?;
    Ok(out)
}
