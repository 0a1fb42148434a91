//! `skiff killall`, as k3s's `k3s-killall.sh`: stops this node's Skiff
//! processes (`skiff server`, `skiff agent`, `skiff runtime` with the same
//! data directory), removes every pod through the node runtime (containers
//! killed, rootfs unmounted, addresses released, shims stopped, cgroups
//! removed), kills shims left behind, unmounts what is left under the run
//! directory and the kubelet's pod volumes, and removes the pod network
//! (the bridge and Skiff's nftables table). Images and the cluster's state
//! stay: the next `skiff server` starts the pods again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use skiff_cri::node::{NodeConfig, NodeError, bridge_network, open_image_store, open_runtime};
use skiff_runtime::RuntimeError;

use crate::kubelet::pods::volumes::mounts::unmount_below;

/// How long stopped Skiff processes get to exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long SIGKILLed processes get to be gone.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The data directory a Skiff process uses when it names none.
const DEFAULT_DATA_DIR: &str = "/var/lib/skiff";

/// What `skiff killall` did.
#[derive(Debug, Default)]
pub struct Report {
    /// Skiff processes stopped: pid and command line.
    pub stopped: Vec<(i32, String)>,
    /// Pods removed through the node runtime.
    pub pods_removed: usize,
    /// Pods that could not be removed, with why.
    pub pod_failures: Vec<(String, String)>,
    /// Shim processes left behind and killed.
    pub shims_killed: usize,
}

/// Stops everything of the node whose runtime `config` describes.
pub async fn killall(config: &NodeConfig) -> Result<Report, NodeError> {
    let mut report = Report {
        stopped: stop_skiff_processes(&config.data_dir).await,
        ..Report::default()
    };
    let store = open_image_store(config).await?;
    let runtime = open_runtime(config, store).await?;
    for sandbox in runtime.list_pod_sandboxes(None) {
        match runtime.remove_pod_sandbox(&sandbox.id).await {
            Ok(()) => report.pods_removed += 1,
            Err(err) => report.pod_failures.push((sandbox.id, err.to_string())),
        }
    }
    runtime.close();
    report.shims_killed = kill_leftover_shims(&config.run_dir.join("pods"));
    for dir in [
        config.run_dir.clone(),
        config.data_dir.join("agent/kubelet/pods"),
    ] {
        if let Err(err) = unmount_below(&dir) {
            tracing::warn!(dir = %dir.display(), %err, "unmounting what is left");
        }
    }
    // The network's kernel calls block (and run their own netlink I/O).
    let network = bridge_network(config)?;
    tokio::task::spawn_blocking(move || network.remove())
        .await
        .map_err(|err| RuntimeError::Internal(format!("removing the pod network: {err}")))??;
    Ok(report)
}

/// A process's command line, split.
fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then_some(args)
}

/// Every process but this one, with its command line.
fn processes() -> Vec<(i32, Vec<String>)> {
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| u32::try_from(*pid).ok() != Some(own))
        .filter_map(|pid| Some((pid, cmdline(pid)?)))
        .collect()
}

/// The role of a Skiff command line (`server`, `agent`, `runtime`, `shim`).
fn skiff_role(args: &[String]) -> Option<&str> {
    let program = Path::new(args.first()?).file_name()?.to_str()?;
    if !program.starts_with("skiff") {
        return None;
    }
    args.get(1).map(String::as_str)
}

/// The data directory a `skiff server|agent|runtime` command line names
/// (`-d`, `--data-dir`), else its `SKIFF_DATA_DIR`, else the default.
fn data_dir_of(args: &[String], env: &HashMap<String, String>) -> PathBuf {
    let mut words = args.iter().skip(2);
    while let Some(word) = words.next() {
        if word == "-d" || word == "--data-dir" {
            if let Some(dir) = words.next() {
                return PathBuf::from(dir);
            }
        } else if let Some(dir) = word.strip_prefix("--data-dir=") {
            return PathBuf::from(dir);
        } else if let Some(dir) = word.strip_prefix("-d").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
    }
    env.get("SKIFF_DATA_DIR")
        .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from)
}

fn environment(pid: i32) -> HashMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    canonical(a) == canonical(b)
}

/// SIGTERMs the `skiff server|agent|runtime` processes of `data_dir`, then
/// SIGKILLs those still there after [`STOP_GRACE`].
async fn stop_skiff_processes(data_dir: &Path) -> Vec<(i32, String)> {
    let ours: Vec<(i32, String)> = processes()
        .into_iter()
        .filter(|(pid, args)| {
            matches!(skiff_role(args), Some("server" | "agent" | "runtime"))
                && same_dir(&data_dir_of(args, &environment(*pid)), data_dir)
        })
        .map(|(pid, args)| (pid, args.join(" ")))
        .collect();
    for (pid, line) in &ours {
        tracing::info!(pid, command = %line, "stopping");
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    let alive = |pid: i32| Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
    while ours.iter().any(|(pid, _)| alive(*pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (pid, line) in ours.iter().filter(|(pid, _)| alive(*pid)) {
        tracing::warn!(pid, command = %line, "still running after {STOP_GRACE:?}; killing");
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    // SIGKILL is delivered asynchronously; their locks go when they die.
    let deadline = Instant::now() + KILL_WAIT;
    while ours.iter().any(|(pid, _)| alive(*pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ours
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state == 'Z')
        })
        .unwrap_or(false)
}

/// SIGKILLs `skiff shim` processes whose pod directory is under `pods_dir`
/// (the runtime lost track of them); returns how many.
fn kill_leftover_shims(pods_dir: &Path) -> usize {
    let mut killed = 0;
    for (pid, args) in processes() {
        if skiff_role(&args) != Some("shim") {
            continue;
        }
        let pod_dir = args
            .iter()
            .position(|a| a == "--pod-dir")
            .and_then(|i| args.get(i + 1));
        if pod_dir.is_some_and(|dir| Path::new(dir).starts_with(pods_dir)) {
            tracing::warn!(pid, command = %args.join(" "), "killing a shim left behind");
            if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn roles_come_from_skiff_command_lines_only() {
        assert_eq!(
            skiff_role(&words("/usr/local/bin/skiff server -d /x")),
            Some("server")
        );
        assert_eq!(
            skiff_role(&words("skiff shim --pod-dir /run/skiff/pods/a")),
            Some("shim")
        );
        assert_eq!(skiff_role(&words("/usr/bin/k3s server")), None);
    }

    #[test]
    fn the_data_dir_is_read_as_the_command_line_spells_it() {
        let none = HashMap::new();
        let dir = |line: &str| data_dir_of(&words(line), &none);
        assert_eq!(dir("skiff server -d /a"), PathBuf::from("/a"));
        assert_eq!(
            dir("skiff runtime --data-dir /b --bridge x"),
            PathBuf::from("/b")
        );
        assert_eq!(dir("skiff agent --data-dir=/c"), PathBuf::from("/c"));
        assert_eq!(dir("skiff server -d/e"), PathBuf::from("/e"));
        assert_eq!(dir("skiff server --debug"), PathBuf::from(DEFAULT_DATA_DIR));
        let env = HashMap::from([("SKIFF_DATA_DIR".to_owned(), "/f".to_owned())]);
        assert_eq!(
            data_dir_of(&words("skiff server"), &env),
            PathBuf::from("/f")
        );
    }
}
