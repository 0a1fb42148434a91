//! Debian's containerd 1.6 with runc 1.1, run privately for the comparison:
//! its own root, state, socket, runc root and CNI configuration in the work
//! directory, the CRI plugin with the overlayfs snapshotter, a pause image
//! from the local test registry (made plain HTTP by a mirror entry) and a
//! CNI bridge network. `scripts/bench.sh` installs the packages.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_tests::GuardedChild;

use super::sweep::{self, CNI_BRIDGE, CNI_NETWORK};

/// The pod subnet of the CNI bridge: outside Skiff's pods (10.42.0.0/16)
/// and test leases (10.128.0.0/12).
pub const SUBNET: &str = "10.99.77.0/24";
const CNI_BIN_DIR: &str = "/usr/lib/cni";
const SHIM: &str = "containerd-shim-runc-v2";

/// What containerd's configuration names.
pub struct Setup<'a> {
    /// Directory for everything of this containerd.
    pub dir: &'a Path,
    /// `host:port` of the plain-HTTP registry the images come from.
    pub registry: &'a str,
    /// The pause image reference.
    pub sandbox_image: &'a str,
}

/// A running containerd, killed on drop (its shims are not: see
/// [`sweep`]).
pub struct Containerd {
    process: GuardedChild,
    dir: PathBuf,
    log: PathBuf,
}

impl Containerd {
    /// Writes the configuration and starts containerd; returns once its
    /// socket accepts connections. Fails with the reason (missing package,
    /// exit with its log) when it cannot run here.
    pub fn start(setup: &Setup<'_>) -> anyhow::Result<Containerd> {
        let containerd = find_program("containerd")?;
        let runc = find_program("runc")?;
        find_program(SHIM)?;
        for plugin in ["bridge", "host-local", "loopback"] {
            let path = Path::new(CNI_BIN_DIR).join(plugin);
            if !path.is_file() {
                bail!(
                    "CNI plugin {} is missing (Debian's containernetworking-plugins; scripts/bench.sh installs it)",
                    path.display()
                );
            }
        }
        let dir = setup.dir;
        std::fs::create_dir_all(dir.join("cni"))?;
        let config = dir.join("config.toml");
        std::fs::write(&config, config_toml(setup, &runc))?;
        std::fs::write(dir.join("cni/10-cnibench.conflist"), cni_conflist(dir))?;
        let log = dir.join("containerd.log");
        let log_file = std::fs::File::create(&log)?;
        let mut command = Command::new(&containerd);
        command
            .arg("--config")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let process = GuardedChild::spawn("containerd", command)?;
        let mut containerd = Containerd {
            process,
            dir: dir.to_path_buf(),
            log,
        };
        containerd.wait_ready(Duration::from_secs(30))?;
        Ok(containerd)
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.process.try_wait()? {
                bail!(
                    "containerd exited with {status}; its log ends:\n{}",
                    self.log_tail(30)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd's socket not ready after {timeout:?}; its log ends:\n{}",
                    self.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The CRI (and containerd API) socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// containerd's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The last `lines` lines of containerd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Process ids of this containerd's shims (one per pod: runc v2 groups
    /// a pod's containers in its sandbox's shim).
    pub fn shims(&self) -> Vec<u32> {
        let socket = self.socket().display().to_string();
        sweep::processes()
            .into_iter()
            .filter(|p| p.argv[0].ends_with(SHIM) && p.argv.iter().any(|a| a.contains(&socket)))
            .map(|p| p.pid)
            .collect()
    }

    /// Process ids of the pods' pause processes (sandbox containers), which
    /// Skiff does without.
    pub fn pauses(&self) -> Vec<u32> {
        let shims = self.shims();
        sweep::processes()
            .into_iter()
            .filter(|p| shims.contains(&p.ppid) && p.argv.iter().any(|a| a == "infinity"))
            .map(|p| p.pid)
            .collect()
    }

    /// Stops containerd with SIGTERM (SIGKILL after 10 s).
    pub fn stop(mut self) {
        if self.process.signal(libc::SIGTERM).is_ok() {
            let _ = self.process.wait_timeout(Duration::from_secs(10));
        }
        self.process.kill();
    }
}

/// `name` in `$PATH`, `/usr/sbin` or `/usr/bin`.
fn find_program(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{name} is not installed (Debian's containerd, runc and containernetworking-plugins; scripts/bench.sh installs them)"
            )
        })
}

/// containerd's configuration: everything it writes stays under the work
/// directory, except libcni's result cache and the shims' sockets in
/// `/run/containerd/s`, which containerd 1.6 does not let us move.
fn config_toml(setup: &Setup<'_>, runc: &Path) -> String {
    let dir = setup.dir.display();
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    let mut toml = String::new();
    let _ = write!(
        toml,
        r#"version = 2
root = "{dir}/root"
state = "{dir}/state"

[grpc]
  address = "{dir}/containerd.sock"

[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"

[{cri}]
  sandbox_image = "{sandbox_image}"
  # Root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj fails.
  restrict_oom_score_adj = true
  # Pod network namespaces below the state directory, so a sweep finds them.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{runc}"
  Root = "{dir}/runc"
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{dir}/cni"
  max_conf_num = 1

[{cri}.registry.mirrors."{registry}"]
  endpoint = ["http://{registry}"]
"#,
        sandbox_image = setup.sandbox_image,
        runc = runc.display(),
        registry = setup.registry,
    );
    toml
}

/// A bridge with host-local IPAM; containerd's CRI plugin adds loopback
/// itself (from `bin_dir`).
fn cni_conflist(dir: &Path) -> String {
    format!(
        r#"{{
  "cniVersion": "0.4.0",
  "name": "{CNI_NETWORK}",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{CNI_BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{ "subnet": "{SUBNET}" }}]],
        "routes": [{{ "dst": "0.0.0.0/0" }}],
        "dataDir": "{ipam}"
      }}
    }}
  ]
}}
"#,
        ipam = dir.join("ipam").display()
    )
}
