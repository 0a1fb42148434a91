//! A pod for tests: a pod directory with a busybox rootfs, a real shim
//! process (the `skiff-test-shim` binary, which runs `shims::run` as
//! `skiff shim` does), bundles written with oci-spec's builders, and a
//! teardown that checks nothing is left behind.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{
    LinuxBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
    get_default_mounts,
};
use skiff_shims::client::CreateOptions;
use skiff_shims::protocol::{ContainerState, ContainerStatus};
use skiff_shims::{PodNamespace, ShimArgs, ShimClient, spawn_shim};

/// The shim binary under test: `SKIFF_SHIM_BINARY` (e.g. the real `skiff`,
/// or a release build) or this crate's `skiff-test-shim`.
pub fn shim_binary() -> PathBuf {
    std::env::var_os("SKIFF_SHIM_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_skiff-test-shim")))
}

static POD_SEQ: AtomicU32 = AtomicU32::new(0);

/// Busybox applets every test rootfs links.
const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "cat", "id", "hostname", "head", "tr", "dd", "printf", "readlink",
    "stty", "tty", "wc", "yes", "env", "ls", "true", "false", "stat", "seq",
];

/// What a test container runs, and how.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub args: Vec<String>,
    pub tty: bool,
    pub memory_limit: Option<i64>,
    pub oom_score_adj: Option<i32>,
    /// RLIMIT_NOFILE (soft, hard).
    pub nofile: Option<(u64, u64)>,
}

impl Bundle {
    pub fn sh(script: &str) -> Self {
        Bundle {
            args: vec!["sh".into(), "-c".into(), script.into()],
            ..Bundle::default()
        }
    }
}

/// A pod with a running shim.
pub struct Pod {
    pub dir: tempfile::TempDir,
    pub args: ShimArgs,
    pub client: ShimClient,
    pub cgroup_parent: PathBuf,
    pub rootfs: PathBuf,
    torn_down: bool,
}

impl Pod {
    /// A pod with its own network, IPC and UTS namespaces.
    pub async fn start() -> Result<Pod> {
        Pod::start_with(
            &[PodNamespace::Net, PodNamespace::Ipc, PodNamespace::Uts],
            Some("pod-host"),
        )
        .await
    }

    pub async fn start_with(namespaces: &[PodNamespace], hostname: Option<&str>) -> Result<Pod> {
        let mut pod = Pod::prepare(namespaces, hostname)?;
        pod.client = spawn_shim(&shim_binary(), &pod.args).await?;
        Ok(pod)
    }

    /// A pod directory and shim arguments; starting the shim is the caller's.
    pub fn prepare(namespaces: &[PodNamespace], hostname: Option<&str>) -> Result<Pod> {
        let dir = tempfile::Builder::new()
            .prefix("shim-")
            .tempdir_in("/tmp")?;
        let rootfs = dir.path().join("rootfs");
        make_rootfs(&rootfs)?;
        let cgroup_parent = PathBuf::from(format!(
            "/skiff-shim-test-{}-{}",
            std::process::id(),
            POD_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let mut args = ShimArgs::new(dir.path(), format!("sandbox-{}", std::process::id()));
        args.namespaces = namespaces.to_vec();
        args.hostname = hostname.map(str::to_owned);
        args.cgroup_parent = Some(cgroup_parent.clone());
        args.debug = true;
        let client = ShimClient::new(dir.path());
        Ok(Pod {
            dir,
            args,
            client,
            cgroup_parent,
            rootfs,
            torn_down: false,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.path().join(format!("{id}.log"))
    }

    pub fn log(&self, id: &str) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    /// The records of a container's log, without timestamps: `stdout F text`.
    pub fn log_records(&self, id: &str) -> Vec<String> {
        self.log(id)
            .lines()
            .map(|line| line.split_once(' ').map_or("", |(_, rest)| rest).to_owned())
            .collect()
    }

    pub fn shim_pid(&self) -> Result<i32> {
        let text = std::fs::read_to_string(self.path().join("shim.pid"))?;
        Ok(text.trim().parse()?)
    }

    /// Writes `<pod>/containers/<id>/config.json`; returns the bundle.
    pub fn bundle(&self, id: &str, bundle: &Bundle) -> Result<PathBuf> {
        let dir = self.path().join("containers").join(id);
        std::fs::create_dir_all(&dir)?;
        self.spec(id, bundle)?.save(dir.join("config.json"))?;
        Ok(dir)
    }

    fn spec(&self, id: &str, bundle: &Bundle) -> Result<Spec> {
        let process = ProcessBuilder::default()
            .args(bundle.args.clone())
            .env(vec!["PATH=/bin".to_string(), "HOME=/".to_string()])
            .cwd("/")
            .terminal(bundle.tty)
            .user(UserBuilder::default().uid(0u32).gid(0u32).build()?)
            .capabilities(oci_spec::runtime::LinuxCapabilities::default())
            .no_new_privileges(true)
            .build()?;
        let mut process = process;
        process.set_oom_score_adj(bundle.oom_score_adj);
        if let Some((soft, hard)) = bundle.nofile {
            process.set_rlimits(Some(vec![
                oci_spec::runtime::PosixRlimitBuilder::default()
                    .typ(oci_spec::runtime::PosixRlimitType::RlimitNofile)
                    .soft(soft)
                    .hard(hard)
                    .build()?,
            ]));
        }
        let mut namespaces = vec![
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Mount)
                .build()?,
        ];
        let pinned = |kind: PodNamespace, typ: LinuxNamespaceType| -> Result<Option<_>> {
            if !self.args.creates(kind) {
                return Ok(None);
            }
            Ok(Some(
                LinuxNamespaceBuilder::default()
                    .typ(typ)
                    .path(self.path().join("ns").join(kind.name()))
                    .build()?,
            ))
        };
        for (kind, typ) in [
            (PodNamespace::Net, LinuxNamespaceType::Network),
            (PodNamespace::Ipc, LinuxNamespaceType::Ipc),
            (PodNamespace::Uts, LinuxNamespaceType::Uts),
        ] {
            namespaces.extend(pinned(kind, typ)?);
        }
        match pinned(PodNamespace::Pid, LinuxNamespaceType::Pid)? {
            Some(shared) => namespaces.push(shared),
            None => namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::Pid)
                    .build()?,
            ),
        }
        let mut resources = LinuxResourcesBuilder::default();
        if let Some(limit) = bundle.memory_limit {
            resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
        }
        let linux = LinuxBuilder::default()
            .namespaces(namespaces)
            .cgroups_path(self.cgroup_parent.join(id))
            .resources(resources.build()?)
            .build()?;
        let mounts = get_default_mounts()
            .into_iter()
            .filter(|mount| mount.destination() != Path::new("/sys/fs/cgroup"))
            .collect::<Vec<_>>();
        let mut spec = SpecBuilder::default()
            .version("1.0.2")
            .root(
                RootBuilder::default()
                    .path(&self.rootfs)
                    .readonly(false)
                    .build()?,
            )
            .process(process)
            .mounts(mounts)
            .linux(linux)
            .build()?;
        // The pod's UTS namespace has its hostname already.
        spec.set_hostname(None);
        Ok(spec)
    }

    /// Creates and starts a container logging to `<pod>/<id>.log`.
    pub async fn run(&self, id: &str, bundle: &Bundle) -> Result<i32> {
        self.create(id, bundle, &CreateOptions::default()).await?;
        let (pid, _) = self.client.start(id).await?;
        Ok(pid)
    }

    pub async fn create(&self, id: &str, bundle: &Bundle, options: &CreateOptions) -> Result<i32> {
        let path = self.bundle(id, bundle)?;
        let options = CreateOptions {
            log_path: Some(self.log_path(id)),
            tty: bundle.tty,
            ..options.clone()
        };
        Ok(self.client.create(id, &path, &options).await?)
    }

    /// Polls until the container exited.
    pub async fn wait_exit(&self, id: &str) -> Result<ContainerState> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.client.state(id).await?;
            if state.status == ContainerStatus::Exited {
                return Ok(state);
            }
            if Instant::now() > deadline {
                bail!("container {id} still {:?}", state.status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until the log holds a record containing `text`.
    pub async fn wait_log(&self, id: &str, text: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log(id).contains(text) {
            if Instant::now() > deadline {
                bail!(
                    "{text:?} never appeared in the log of {id}: {:?}",
                    self.log(id)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops every container, deletes them, shuts the shim down, unpins the
    /// namespaces and checks nothing is left: mounts, processes, cgroups.
    pub async fn teardown(mut self) -> Result<()> {
        self.torn_down = true;
        let shim_pid = self.shim_pid()?;
        for state in self.client.states().await? {
            if state.status != ContainerStatus::Exited {
                self.client.signal(&state.id, 9).await?;
                self.wait_exit(&state.id).await?;
            }
            self.client.delete(&state.id).await?;
        }
        self.client.shutdown().await?;
        wait_gone(shim_pid).await?;
        skiff_shims::unpin_namespaces(self.path())?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
        let pod = self.path().to_string_lossy().into_owned();
        let leaked: Vec<&str> = mounts.lines().filter(|l| l.contains(&pod)).collect();
        if !leaked.is_empty() {
            bail!("mounts left under the pod: {leaked:?}");
        }
        let procs = cgroup_procs(&self.cgroup_parent);
        if !procs.is_empty() {
            bail!("processes left in the pod cgroup: {procs:?}");
        }
        remove_cgroups(&self.cgroup_parent)?;
        for leftover in ["shim.sock", "shim.pid", "ns"] {
            if self.path().join(leftover).exists() {
                bail!("{leftover} left in the pod directory");
            }
        }
        Ok(())
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        // A failed test: kill whatever is left, best effort.
        for _ in 0..3 {
            for pid in cgroup_procs(&self.cgroup_parent) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(pid) = self.shim_pid() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        let _ = skiff_shims::unpin_namespaces(self.path());
        std::thread::sleep(Duration::from_millis(100));
        let _ = remove_cgroups(&self.cgroup_parent);
    }
}

/// Waits until a process is gone (or a zombie).
pub async fn wait_gone(pid: i32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) {
        if Instant::now() > deadline {
            bail!("process {pid} still alive");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Every process under `parent` in any cgroup hierarchy.
pub fn cgroup_procs(parent: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for root in cgroup_roots() {
        let dir = root.join(parent.strip_prefix("/").unwrap_or(parent));
        collect_procs(&dir, &mut pids);
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn collect_procs(dir: &Path, pids: &mut Vec<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_procs(&entry.path(), pids);
            }
        }
    }
}

fn cgroup_roots() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut roots: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    if Path::new("/sys/fs/cgroup/cgroup.procs").exists() {
        roots.push(PathBuf::from("/sys/fs/cgroup"));
    }
    roots
}

/// Removes the pod's cgroup (and any child) in every hierarchy.
pub fn remove_cgroups(parent: &Path) -> Result<()> {
    for root in cgroup_roots() {
        let dir = root.join(parent.strip_prefix("/").unwrap_or(parent));
        remove_cgroup_tree(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

fn remove_cgroup_tree(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type()?.is_dir() {
            remove_cgroup_tree(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

/// A minimal rootfs: busybox and its applets.
pub fn make_rootfs(rootfs: &Path) -> Result<()> {
    for dir in ["bin", "proc", "dev", "sys", "tmp", "etc", "root"] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).context("copying /bin/busybox")?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
    Ok(())
}

/// Reads a descriptor to its end (off the async threads), with a deadline.
pub async fn read_to_end(fd: OwnedFd) -> Result<String> {
    let reading = tokio::task::spawn_blocking(move || {
        let mut text = Vec::new();
        let mut file = std::fs::File::from(fd);
        loop {
            let mut chunk = [0u8; 4096];
            match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => text.extend_from_slice(&chunk[..n]),
                // EIO: a pty whose other side closed.
                Err(err) if err.raw_os_error() == Some(libc::EIO) => break,
                Err(err) => return Err(err),
            }
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    });
    Ok(tokio::time::timeout(Duration::from_secs(20), reading)
        .await
        .context("reading timed out")???)
}

/// The inode of a namespace file.
pub fn ns_inode(path: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.ino())
}

/// Runs a command on the host, returning its stdout.
#[allow(dead_code)]
pub fn host(command: &str) -> Result<String> {
    let output = Command::new("sh").arg("-c").arg(command).output()?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
