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

/// A pod network of its own for one test runtime: a bridge name and a /24
/// no other test process holds at the same time (leased through a file in
/// `/run/skiff-tests`, reclaimed when its owner process is gone).
#[derive(Debug)]
pub struct NetworkLease {
    index: u32,
    file: PathBuf,
}

impl NetworkLease {
    const DIR: &'static str = "/run/skiff-tests/networks";
    const SLOTS: u32 = 4096;

    /// Takes a free slot.
    pub fn take() -> Result<NetworkLease> {
        let dir = Path::new(Self::DIR);
        std::fs::create_dir_all(dir).map_err(crate::error::io_error("create directory", dir))?;
        let start = std::process::id() % Self::SLOTS;
        for offset in 0..Self::SLOTS {
            let index = (start + offset) % Self::SLOTS;
            let file = dir.join(index.to_string());
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&file)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(NetworkLease { index, file });
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner: Option<u32> = std::fs::read_to_string(&file)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    let alive =
                        owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                    if !alive {
                        // A test process that died without cleaning up
                        // (e.g. killed on timeout): remove what it left.
                        let stale = NetworkLease {
                            index,
                            file: file.clone(),
                        };
                        drop(stale);
                    }
                }
                Err(err) => return Err(crate::error::io_error("create", &file)(err)),
            }
        }
        Err(HarnessError::InvalidContent(
            "no free test network slot".into(),
        ))
    }

    /// The bridge name (`skt<n>`).
    pub fn bridge(&self) -> String {
        format!("skt{}", self.index)
    }

    /// The nftables table the runtime uses for this bridge.
    pub fn nft_table(&self) -> String {
        format!("skiff_skt{}", self.index)
    }

    /// The pod CIDR: a /24 inside 10.128.0.0/12.
    pub fn pod_cidr(&self) -> String {
        format!("10.{}.{}.0/24", 128 + self.index / 256, self.index % 256)
    }
}

impl Drop for NetworkLease {
    fn drop(&mut self) {
        // Pods of this network live in cgroups under `/<bridge>/`; their
        // shims name it as their cgroup parent. Kill what is left of them.
        let marker = format!("/{}/", self.bridge());
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for entry in procs.filter_map(|e| e.ok()) {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let cgroup =
                    std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                if cgroup.contains(&marker)
                    || cmdline.contains(&format!("--cgroup-parent {marker}"))
                {
                    // SAFETY: kill has no memory effects.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.nft_table()])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// How to start a [`SkiffRuntime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// A `registries.yaml` to pass as `--private-registry`.
    pub registries: Option<PathBuf>,
    /// The pod network (bridge and CIDR) to use, when the test runs pods.
    pub network: Option<std::sync::Arc<NetworkLease>>,
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
            .arg("--run-dir")
            .arg(dir.join("run"))
            .arg("--config")
            .arg(dir.join("no-config.yaml"))
            .args(&options.args)
            .env("RUST_LOG", "info")
            .stdout(log_file)
            .stderr(stderr);
        if let Some(registries) = &options.registries {
            command.arg("--private-registry").arg(registries);
        }
        if let Some(network) = &options.network {
            command
                .arg("--bridge")
                .arg(network.bridge())
                .arg("--pod-cidr")
                .arg(network.pod_cidr());
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

    /// The volatile state directory (`--run-dir`).
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
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

/// Kills and unmounts whatever pods of a test runtime left behind (shims,
/// container processes, mounts, cgroups), so a failed test does not leak
/// into the next. `node_dir` is the directory given to [`SkiffRuntime::start`].
pub fn clean_node(node_dir: &Path) {
    let run_dir = node_dir.join("run");
    let pods: Vec<String> = std::fs::read_dir(run_dir.join("pods"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let node = node_dir.display().to_string();
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for entry in procs.filter_map(|e| e.ok()) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(&node)
                || pods.iter().any(|pod| cgroup.contains(pod.as_str()));
            if ours && pid != std::process::id() as i32 {
                // SAFETY: kill has no memory effects.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut ours: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(node.as_str()))
        .collect();
    ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in ours {
        let target = std::ffi::CString::new(mount).unwrap_or_default();
        // SAFETY: a valid C string; umount2 has no memory effects.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
    for pod in &pods {
        remove_cgroups_named(pod);
    }
}

/// Removes every (empty) cgroup directory whose path contains `name`.
fn remove_cgroups_named(name: &str) {
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for controller in controllers.filter_map(|e| e.ok()) {
        let mut stack = vec![controller.path()];
        let mut found = Vec::new();
        while let Some(dir) = stack.pop() {
            let Ok(children) = std::fs::read_dir(&dir) else {
                continue;
            };
            for child in children.filter_map(|e| e.ok()) {
                if child.file_type().is_ok_and(|t| t.is_dir()) {
                    if child.path().to_string_lossy().contains(name) {
                        found.push(child.path());
                    }
                    stack.push(child.path());
                }
            }
        }
        found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for dir in found {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
