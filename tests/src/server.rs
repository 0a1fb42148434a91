//! `skiff server` as tests run it: its own data directory and kubeconfig,
//! bound to 127.0.0.1 on a port the kernel picks, with the real `kubectl`
//! pointed at it; the control plane alone (`--disable-agent`), or a whole
//! one-node cluster on a pod network of its own ([`SkiffServer::start_cluster`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::child::GuardedChild;
use crate::error::{HarnessError, Result};
use crate::skiff::skiff_command;

/// How long a server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The built-in agent of a test cluster: its pod network and registries.
#[derive(Debug, Clone)]
pub struct AgentSetup {
    /// The bridge and pod CIDR (the cluster CIDR: one /24, this node's).
    pub network: std::sync::Arc<crate::skiff::NetworkLease>,
    /// A `registries.yaml` for the test registries.
    pub registries: Option<PathBuf>,
    /// The node's name.
    pub node_name: String,
}

/// A running `skiff server`, killed on drop; a restart keeps its data.
#[derive(Debug)]
pub struct SkiffServer {
    process: GuardedChild,
    dir: PathBuf,
    kubeconfig: PathBuf,
    log: PathBuf,
    agent: Option<AgentSetup>,
}

impl SkiffServer {
    /// Starts a server with its data under `dir` and waits until kubectl
    /// gets `ok` from `/readyz`.
    pub fn start(dir: &Path) -> Result<SkiffServer> {
        Self::start_with(dir, None)
    }

    /// Starts a server with its built-in agent and waits until its node is
    /// Ready.
    pub fn start_cluster(dir: &Path, agent: AgentSetup) -> Result<SkiffServer> {
        let server = Self::start_with(dir, Some(agent))?;
        server.wait_node_ready()?;
        Ok(server)
    }

    fn start_with(dir: &Path, agent: Option<AgentSetup>) -> Result<SkiffServer> {
        std::fs::create_dir_all(dir).map_err(crate::error::io_error("create directory", dir))?;
        // An empty config file: the machine's /etc/skiff/config.yaml must not apply.
        let no_config = dir.join("no-config.yaml");
        std::fs::write(&no_config, "").map_err(crate::error::io_error("write", &no_config))?;
        let kubeconfig = dir.join("kubeconfig.yaml");
        let _ = std::fs::remove_file(&kubeconfig);
        let log = dir.join("server.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(crate::error::io_error("open", &log))?;
        let stderr = log_file
            .try_clone()
            .map_err(crate::error::io_error("clone", &log))?;
        let mut command = skiff_command()?;
        command.arg("server");
        match &agent {
            None => {
                command.arg("--disable-agent");
            }
            Some(agent) => {
                command
                    .arg("--node-name")
                    .arg(&agent.node_name)
                    .arg("--cri-socket")
                    .arg(dir.join("cri.sock"))
                    .arg("--run-dir")
                    .arg(dir.join("run"))
                    .arg("--bridge")
                    .arg(agent.network.bridge())
                    .arg("--cluster-cidr")
                    .arg(agent.network.pod_cidr())
                    // The kubelet API the apiserver reaches stays on loopback.
                    .args(["--node-ip", "127.0.0.1"])
                    .args(["--kubelet-port", "0"]);
                if let Some(registries) = &agent.registries {
                    command.arg("--private-registry").arg(registries);
                }
            }
        }
        command
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--bind-address", "127.0.0.1", "--https-listen-port", "0"])
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .arg("--config")
            .arg(&no_config)
            .env("RUST_LOG", "info")
            .stdout(log_file)
            .stderr(stderr);
        let process = GuardedChild::spawn("skiff server", command)?;
        let mut server = SkiffServer {
            process,
            dir: dir.to_owned(),
            kubeconfig,
            log,
            agent,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.process.try_wait()? {
                return Err(HarnessError::InvalidContent(format!(
                    "skiff server exited ({status}) before it was ready:\n{}",
                    self.log_text()
                )));
            }
            if self.kubeconfig.is_file() {
                let out = self.kubectl(&["get", "--raw", "/readyz"])?;
                if out.status.success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(HarnessError::InvalidContent(format!(
                    "skiff server not ready after {READY_TIMEOUT:?}:\n{}",
                    self.log_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_node_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let out = self.kubectl(&[
                "get",
                "nodes",
                "-o",
                "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
            ])?;
            if String::from_utf8_lossy(&out.stdout).trim() == "True" {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(HarnessError::InvalidContent(format!(
                    "the node was not Ready after {READY_TIMEOUT:?}:\n{}",
                    self.log_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The CRI socket of the built-in agent.
    pub fn cri_socket(&self) -> PathBuf {
        self.dir.join("cri.sock")
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The server's directory (data, kubeconfig, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// What the server logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kubectl <args>` against the server.
    pub fn kubectl(&self, args: &[&str]) -> Result<Output> {
        self.kubectl_with(args, None, &[])
    }

    /// `kubectl <args>` with `stdin` piped in and extra environment.
    pub fn kubectl_with(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Output> {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().map_err(|source| HarnessError::Spawn {
            program: "kubectl".into(),
            source,
        })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .map_err(crate::error::io_error("write stdin of", "kubectl"))?;
        }
        child
            .wait_with_output()
            .map_err(crate::error::io_error("wait for", "kubectl"))
    }

    /// Kills the server with SIGKILL (no shutdown at all).
    pub fn kill_9(&mut self) {
        self.process.kill();
    }

    /// Kills the server with SIGKILL and starts it again on the same data.
    pub fn restart_after_kill(&mut self) -> Result<()> {
        self.process.kill();
        let restarted = match self.agent.clone() {
            Some(agent) => SkiffServer::start_cluster(&self.dir, agent)?,
            None => SkiffServer::start(&self.dir)?,
        };
        *self = restarted;
        Ok(())
    }
}
