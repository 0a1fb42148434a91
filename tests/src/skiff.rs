//! The real `skiff` binary as tests run it: [`SkiffRuntime`] starts
//! `skiff runtime` on a private data directory and socket, and
//! [`skiff_command`] runs any other subcommand (e.g. `skiff crictl`).
//!
//! The binary is the one next to the test executable in the cargo target
//! directory (`target/<profile>/skiff`), or `$SKIFF_BIN`; build it first
//! (`cargo build --bin skiff`, which `scripts/test.sh` does).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::child::GuardedChild;
use crate::error::{HarnessError, Result};

/// Environment variable naming the `skiff` binary to test.
pub const SKIFF_BIN_ENV: &str = "SKIFF_BIN";

/// The `skiff` binary under test.
pub fn skiff_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(SKIFF_BIN_ENV) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|source| HarnessError::Spawn {
        program: "current_exe".into(),
        source,
    })?;
    // target/<profile>/deps/<test> → target/<profile>/skiff
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("skiff"))
        .filter(|p| p.is_file());
    candidate.ok_or_else(|| {
        HarnessError::InvalidContent(format!(
            "no skiff binary next to {}: run `cargo build --bin skiff` first or set {SKIFF_BIN_ENV}",
            exe.display()
        ))
    })
}

/// `skiff <args>` ready to run, with stdin closed.
pub fn skiff_command() -> Result<Command> {
    let mut command = Command::new(skiff_binary()?);
    command.stdin(Stdio::null());
    Ok(command)
}

/// How to start a [`SkiffRuntime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// A `registries.yaml` to pass as `--private-registry`.
    pub registries: Option<PathBuf>,
    /// Extra arguments after `skiff runtime`.
    pub args: Vec<String>,
}

/// A running `skiff runtime`, killed on drop. Its data directory and socket
/// live in a directory the caller owns, so a restart finds the same state.
#[derive(Debug)]
pub struct SkiffRuntime {
    process: GuardedChild,
    dir: PathBuf,
    log: PathBuf,
}

impl SkiffRuntime {
    /// Starts `skiff runtime` with its data under `dir` and waits until its
    /// socket accepts connections.
    pub fn start(dir: &Path, options: &RuntimeOptions) -> Result<SkiffRuntime> {
        std::fs::create_dir_all(dir).map_err(crate::error::io_error("create directory", dir))?;
        let log = unique(dir.join("runtime.log"));
        let log_file =
            std::fs::File::create(&log).map_err(crate::error::io_error("create", &log))?;
        let stderr = log_file
            .try_clone()
            .map_err(crate::error::io_error("clone", &log))?;
        let mut command = skiff_command()?;
        command
            .arg("runtime")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--cri-socket")
            .arg(dir.join("cri.sock"))
            .arg("--config")
            .arg(dir.join("no-config.yaml"))
            .args(&options.args)
            .env("RUST_LOG", "info")
            .stdout(log_file)
            .stderr(stderr);
        if let Some(registries) = &options.registries {
            command.arg("--private-registry").arg(registries);
        }
        // An empty config file: tests never read the machine's /etc/skiff.
        std::fs::write(dir.join("no-config.yaml"), "")
            .map_err(crate::error::io_error("write", dir))?;
        let process = GuardedChild::spawn("skiff runtime", command)?;
        let mut runtime = SkiffRuntime {
            process,
            dir: dir.to_path_buf(),
            log,
        };
        runtime.wait_ready(Duration::from_secs(60))?;
        Ok(runtime)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.process.try_wait()? {
                return Err(self.failed(format!("exited with {status}")));
            }
            if Instant::now() > deadline {
                return Err(self.failed(format!("socket not ready after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn failed(&self, reason: String) -> HarnessError {
        HarnessError::InvalidContent(format!(
            "skiff runtime {reason}\n--- log ---\n{}",
            self.log_text()
        ))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The CRI socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("cri.sock")
    }

    /// The endpoint as crictl spells it.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The data directory (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Everything the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `skiff crictl --runtime-endpoint <socket> <args>`.
    pub fn crictl(&self, args: &[&str]) -> Result<Output> {
        let mut command = skiff_command()?;
        command
            .arg("crictl")
            .arg("--runtime-endpoint")
            .arg(self.endpoint())
            .args(args);
        command.output().map_err(|source| HarnessError::Spawn {
            program: "skiff crictl".into(),
            source,
        })
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(mut self) -> Result<ExitStatus> {
        self.process.signal(libc::SIGTERM)?;
        self.process
            .wait_timeout(Duration::from_secs(30))?
            .ok_or_else(|| self.failed("did not stop within 30s of SIGTERM".into()))
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        self.process.kill();
    }
}

fn unique(path: PathBuf) -> PathBuf {
    let mut candidate = path.clone();
    let mut n = 0;
    while candidate.exists() {
        n += 1;
        candidate = path.with_extension(format!("{n}.log"));
    }
    candidate
}
