//! [`IDLE_PODS`] idle Wasm pods at once: each one pod with one sleeping
//! guest, started [`CONCURRENCY`] at a time; then the memory of the runtime,
//! the shims and the guests, and everything removed again.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_cri::v1 as cri;
use skiff_benches::{Samples, Usage, usage};
use skiff_tests::cri::Cri;
use tokio::task::JoinSet;

use super::guests::Guest;
use super::node::{self, Node};
use super::{IDLE_PODS, IDLE_SETTLE, SETTLE};

/// Pods started (and removed) at once.
pub const CONCURRENCY: usize = 8;
/// Time allowed for starting all pods and seeing every guest's line.
const START_DEADLINE: Duration = Duration::from_secs(90);
/// Time allowed for the processes to go after the pods are removed.
const GONE_DEADLINE: Duration = Duration::from_secs(20);

/// Memory and timings of the idle pods.
#[derive(Debug, Default)]
pub struct IdleFigures {
    /// Pods running at once.
    pub pods: usize,
    /// RunPodSandbox + CreateContainer + StartContainer of each pod,
    /// [`CONCURRENCY`] at a time.
    pub pod_start: Samples,
    /// Wall time to start them all.
    pub start_wall: Duration,
    /// Wall time from the first RunPodSandbox until every guest's line was
    /// in its log.
    pub all_running: Duration,
    /// The runtime before the pods.
    pub runtime_idle: Usage,
    /// The runtime with the pods.
    pub runtime: Usage,
    /// Each shim.
    pub shims: Vec<Usage>,
    /// Each guest process.
    pub guests: Vec<Usage>,
    /// Processes in the pods' cgroups (guests, from `cgroup.procs`).
    pub cgroup_procs: usize,
    /// Memory charged to the pods' cgroups, in KiB (`None`: unreadable).
    pub cgroup_charge: Option<u64>,
    /// Wall time to remove them all.
    pub teardown_wall: Duration,
    /// Shims and guests still there [`GONE_DEADLINE`] after removal.
    pub leftovers: usize,
    /// The runtime after the pods are gone.
    pub runtime_after: Usage,
}

impl IdleFigures {
    /// Runtime + shims + guests.
    pub fn total(&self) -> Usage {
        self.runtime + self.shims.iter().copied().sum() + self.guests.iter().copied().sum()
    }
}

/// Starts [`IDLE_PODS`] pods of `sleeper`, measures, removes them.
pub async fn measure(node: &Node, sleeper: &Guest, idle: Usage) -> anyhow::Result<IdleFigures> {
    let mut figures = IdleFigures {
        pods: IDLE_PODS,
        runtime_idle: idle,
        ..Default::default()
    };
    let outcome = tokio::time::timeout(START_DEADLINE, start_all(node, sleeper, &mut figures))
        .await
        .map_err(|_| anyhow::anyhow!("{IDLE_PODS} pods not running within {START_DEADLINE:?}"))
        .and_then(|r| r);
    if outcome.is_ok() {
        tokio::time::sleep(IDLE_SETTLE).await;
        read_memory(node, &mut figures);
    }
    let removed = remove_all(node, &mut figures).await;
    outcome?;
    removed?;
    Ok(figures)
}

async fn start_all(node: &Node, sleeper: &Guest, figures: &mut IdleFigures) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let mut next = 0;
    let mut logs = Vec::new();
    while next < IDLE_PODS || !tasks.is_empty() {
        while next < IDLE_PODS && tasks.len() < CONCURRENCY {
            let name = format!("idle-{next:03}");
            let config = node::pod_config(&node.logs, &name);
            logs.push(node::log_file(&config, "sleeper"));
            tasks.spawn(start_pod(node.cri.clone(), config, sleeper.image.clone()));
            next += 1;
        }
        if let Some(joined) = tasks.join_next().await {
            figures.pod_start.push(joined.context("pod start task")??);
        }
    }
    figures.start_wall = started.elapsed();
    // Every guest ran: its line is in its log.
    loop {
        let waiting = logs
            .iter()
            .filter(|log| {
                !std::fs::read_to_string(log).is_ok_and(|text| text.contains(sleeper.first_line))
            })
            .count();
        if waiting == 0 {
            break;
        }
        if started.elapsed() > START_DEADLINE {
            bail!("{waiting} of {IDLE_PODS} guests have not logged their first line");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    figures.all_running = started.elapsed();
    let running = running_containers(&node.cri).await?;
    if running != IDLE_PODS {
        bail!("{running} containers RUNNING, {IDLE_PODS} expected");
    }
    Ok(())
}

/// One pod with one sleeper; returns how long the three calls took.
async fn start_pod(
    cri: Cri,
    config: cri::PodSandboxConfig,
    image: String,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let pod = node::run_pod(&cri, &config).await?;
    let mut rt = cri.runtime.clone();
    let id = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod,
            config: Some(node::container_config("sleeper", &image)),
            sandbox_config: Some(config),
        })
        .await
        .context("CreateContainer sleeper")?
        .into_inner()
        .container_id;
    rt.start_container(cri::StartContainerRequest { container_id: id })
        .await
        .context("StartContainer sleeper")?;
    Ok(t0.elapsed())
}

async fn running_containers(cri: &Cri) -> anyhow::Result<usize> {
    Ok(cri
        .runtime
        .clone()
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                state: Some(cri::ContainerStateValue {
                    state: cri::ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            }),
        })
        .await
        .context("ListContainers")?
        .into_inner()
        .containers
        .len())
}

fn read_memory(node: &Node, figures: &mut IdleFigures) {
    let processes = node.pod_processes();
    figures.runtime = usage(node.pid);
    figures.shims = processes.shims.iter().map(|&pid| usage(pid)).collect();
    figures.guests = processes.guests.iter().map(|&pid| usage(pid)).collect();
    figures.cgroup_procs = cgroup_procs();
    figures.cgroup_charge = cgroup_charge();
    // For finding where the memory goes: SKIFF_BENCH_SMAPS=<dir> keeps the
    // smaps of the last shim and guest found there.
    if let Some(dir) = std::env::var_os("SKIFF_BENCH_SMAPS") {
        let dir = std::path::PathBuf::from(dir);
        let sampled = [
            ("shim", processes.shims.last()),
            ("guest", processes.guests.last()),
        ];
        for (name, pid) in sampled {
            if let Some(pid) = pid
                && let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps"))
            {
                let _ = std::fs::write(dir.join(format!("{name}.smaps")), text);
                let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|task| {
                        let read = |file: &str| {
                            std::fs::read_to_string(task.path().join(file)).unwrap_or_default()
                        };
                        format!("{} {}", read("comm").trim(), read("syscall").trim())
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let _ = std::fs::write(dir.join(format!("{name}.tasks")), tasks);
            }
        }
    }
}

/// Memory charged to the benchmark's cgroup root: the v1 memory
/// controller's `memory.usage_in_bytes`, or v2's `memory.current`.
fn cgroup_charge() -> Option<u64> {
    let root = super::CGROUP_ROOT;
    [
        format!("/sys/fs/cgroup/memory/{root}/memory.usage_in_bytes"),
        format!("/sys/fs/cgroup/unified/{root}/memory.current"),
        format!("/sys/fs/cgroup/{root}/memory.current"),
    ]
    .iter()
    .find_map(|file| {
        std::fs::read_to_string(file)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    })
    .map(|bytes| bytes / 1024)
}

/// Processes listed in the `cgroup.procs` files below the benchmark's
/// cgroup root, in the hierarchy that lists the most (v2, or a v1
/// controller's).
fn cgroup_procs() -> usize {
    ["", "unified", "memory", "pids", "cpu"]
        .iter()
        .map(|h| {
            std::path::Path::new("/sys/fs/cgroup")
                .join(h)
                .join(super::CGROUP_ROOT)
        })
        .map(|root| procs_below(&root))
        .max()
        .unwrap_or(0)
}

fn procs_below(root: &std::path::Path) -> usize {
    let mut pids = std::collections::HashSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(children) = std::fs::read_dir(&dir) {
            dirs.extend(
                children
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    pids.len()
}

/// Removes every pod, [`CONCURRENCY`] at a time, and waits for their
/// processes to go.
async fn remove_all(node: &Node, figures: &mut IdleFigures) -> anyhow::Result<()> {
    let started = Instant::now();
    let pods = node
        .cri
        .runtime
        .clone()
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .context("ListPodSandbox")?
        .into_inner()
        .items;
    let mut tasks = JoinSet::new();
    let mut failure = None;
    for pod in pods {
        if tasks.len() >= CONCURRENCY
            && let Some(joined) = tasks.join_next().await
            && let Err(err) = joined?
        {
            failure = Some(err);
        }
        let cri = node.cri.clone();
        tasks.spawn(async move { node::remove_pod(&cri, &pod.id).await });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(err) = joined? {
            failure = Some(err);
        }
    }
    figures.teardown_wall = started.elapsed();
    if let Some(err) = failure {
        return Err(err);
    }
    let deadline = Instant::now() + GONE_DEADLINE;
    loop {
        let left = node.pod_processes();
        figures.leftovers = left.shims.len() + left.guests.len();
        if figures.leftovers == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(SETTLE).await;
    figures.runtime_after = usage(node.pid);
    Ok(())
}
