//! Node runtime benchmark (issue 3, "Performance"): Skiff's CRI runtime and
//! Debian's containerd 1.6 + runc 1.1 doing the same things through CRI in
//! the same run, with the image cached:
//!
//! 1. RunPodSandbox, CreateContainer+StartContainer and a whole pod to a
//!    running container (StartContainer returned; also until ContainerStatus
//!    says RUNNING): 20 pods one after another, then 5 rounds of 5 pods
//!    started in parallel; median and p95;
//! 2. memory: each runtime's RSS idle and with 10 running pods (one `sleep`
//!    container each), RSS and PSS per shim, and "runtime + 10 pods' shims".
//!
//! It prints the figures, the ratios skiff/containerd and the issue's
//! targets. containerd runs privately (see `runtime/containerd.rs`); when it
//! cannot run here, Skiff's figures are still reported with the reason.
//! Nothing is left behind, even after an interrupted run (`runtime/sweep.rs`).
//!
//! Run: `./scripts/bench.sh --bench runtime` (installs containerd, runc and
//! the CNI plugins, builds `skiff` in release first).

// A benchmark reports on stdout.
#![allow(clippy::print_stdout, clippy::print_stderr)]

// A bench target's root resolves modules beside it, not in `runtime/`.
#[path = "runtime/containerd.rs"]
mod containerd;
#[path = "runtime/pods.rs"]
mod pods;
#[path = "runtime/report.rs"]
mod report;
#[path = "runtime/sweep.rs"]
mod sweep;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use k8s_cri::v1 as cri;
use skiff_benches::cleanup::Signals;
use skiff_benches::{Usage, usage};
use skiff_tests::cri::Cri;
use skiff_tests::fixtures::Busybox;
use skiff_tests::oci::{Compression, ImageBuilder, LayerBuilder};
use skiff_tests::{Fixture, NetworkLease, RuntimeOptions, SkiffRuntime, TestRegistries};

use containerd::{Containerd, Setup};
use pods::{Mode, PodTemplate, remove_pod, start_pod, starts};

/// Pods started one after another.
const SEQUENTIAL: usize = 20;
/// Pods started at once in each parallel round.
const PARALLEL: usize = 5;
/// Parallel rounds.
const ROUNDS: usize = 5;
/// Pods started and removed before measuring (first-use costs).
const WARMUP: usize = 2;
/// Running pods for the memory figures.
const MEMORY_PODS: usize = 10;
/// Time for processes to settle before reading their memory.
const SETTLE: Duration = Duration::from_secs(3);
/// Upper bound for any one CRI call while cleaning up.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause image containerd's sandboxes run.
const PAUSE_IMAGE: &str = "skiff-bench/pause:3.9";

fn main() -> anyhow::Result<()> {
    let _lock = sweep::lock()?;
    let stale = sweep::stale_work_dirs();
    let killed = sweep::sweep(&stale);
    if !stale.is_empty() || killed > 0 {
        println!(
            "removed what an interrupted run left: {} directories, {killed} processes",
            stale.len()
        );
    }
    let work = tempfile::Builder::new()
        .prefix(sweep::WORK_PREFIX)
        .tempdir()?;
    // Declared after `work` so that it runs first, also when a panic unwinds.
    let _sweep = SweepOnDrop(work.path().to_path_buf());
    let regs = TestRegistries::start().context("starting registries")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(&regs, work.path()))
}

/// Sweeps the work directory at the end of the run, however it ends.
struct SweepOnDrop(PathBuf);

impl Drop for SweepOnDrop {
    fn drop(&mut self) {
        let killed = sweep::sweep(std::slice::from_ref(&self.0));
        if killed > 0 {
            eprintln!("cleanup: the final sweep had to kill {killed} leftover processes");
        }
    }
}

/// Runs the benchmark until it ends or a signal interrupts it, then removes
/// every pod through CRI and stops both runtimes.
async fn run(regs: &TestRegistries, work: &Path) -> anyhow::Result<()> {
    let mut signals = Signals::new()?;
    let mut subjects = Subjects::default();
    let outcome = tokio::select! {
        outcome = bench(regs, work, &mut subjects) => outcome,
        name = signals.recv() => Err(anyhow!("interrupted by {name}")),
    };
    subjects.shutdown().await;
    outcome
}

async fn bench(regs: &TestRegistries, work: &Path, subjects: &mut Subjects) -> anyhow::Result<()> {
    let busybox = Fixture::Busybox.reference(&regs.open);
    let pause = push_pause_image(regs)?;
    let skiff = subjects.skiff.insert(
        start_skiff(regs, work, &busybox)
            .await
            .context("starting skiff runtime")?,
    );
    tokio::time::sleep(SETTLE).await;
    skiff.idle = usage(skiff.pid);
    match start_containerd(regs, work, &busybox, &pause).await {
        Ok(mut containerd) => {
            tokio::time::sleep(SETTLE).await;
            containerd.idle = usage(containerd.pid);
            subjects.containerd = Some(containerd);
        }
        Err(err) => subjects.skip(format!("{err:#}")),
    }
    report::header(subjects);

    let mut results = report::Results::default();
    for mode in [Mode::Sequential, Mode::Parallel] {
        if let Some(skiff) = &subjects.skiff {
            let figures = starts(skiff, mode).await?;
            report::starts(skiff.name, mode, &figures);
            results.skiff.insert(mode, figures);
        }
        if let Some(containerd) = &subjects.containerd {
            let outcome = starts(containerd, mode).await;
            if let Some(figures) = subjects.keep(mode.describe(), outcome) {
                report::starts("containerd", mode, &figures);
                results.containerd.insert(mode, figures);
            }
        }
    }
    if let Some(skiff) = &subjects.skiff {
        let figures = Box::pin(memory(skiff)).await?;
        report::memory(skiff, &figures);
        results.skiff_memory = Some(figures);
    }
    if let Some(containerd) = &subjects.containerd {
        let outcome = Box::pin(memory(containerd)).await;
        if let Ok(figures) = &outcome {
            report::memory(containerd, figures);
        }
        results.containerd_memory = subjects.keep("memory with 10 pods", outcome);
    }
    report::summary(&results, subjects.skipped.as_deref());
    Ok(())
}

/// The runtimes under test; containerd may be missing (with the reason).
#[derive(Default)]
struct Subjects {
    skiff: Option<Subject>,
    containerd: Option<Subject>,
    /// Why containerd is not (or no longer) measured.
    skipped: Option<String>,
    /// containerd after a failed phase, kept for the cleanup.
    retired: Vec<Subject>,
}

impl Subjects {
    fn skip(&mut self, reason: String) {
        println!("containerd part skipped: {reason}");
        self.skipped = Some(reason);
    }

    /// containerd's result of `phase`; on failure, stops measuring
    /// containerd (Skiff's figures still matter) and says why.
    fn keep<T>(&mut self, phase: &str, outcome: anyhow::Result<T>) -> Option<T> {
        match outcome {
            Ok(value) => Some(value),
            Err(err) => {
                let mut reason = format!("{phase} failed: {err:#}");
                if let Some(subject) = self.containerd.take() {
                    if let Engine::Containerd(c) = &subject.engine {
                        reason.push_str(&format!("\ncontainerd's log ends:\n{}", c.log_tail(20)));
                    }
                    self.retired.push(subject);
                }
                self.skip(reason);
                None
            }
        }
    }

    async fn shutdown(&mut self) {
        let all = self
            .skiff
            .take()
            .into_iter()
            .chain(self.containerd.take())
            .chain(self.retired.drain(..));
        for subject in all {
            subject.shutdown().await;
        }
    }
}

/// One runtime, driven through its CRI socket.
struct Subject {
    name: &'static str,
    cri: Cri,
    pid: u32,
    version: String,
    template: PodTemplate,
    engine: Engine,
    /// Memory after start and image pulls, before any pod.
    idle: Usage,
}

enum Engine {
    Skiff {
        runtime: SkiffRuntime,
        node_dir: PathBuf,
        lease: Arc<NetworkLease>,
    },
    Containerd(Containerd),
}

impl Subject {
    /// Process ids of the runtime's shims.
    fn shims(&self) -> Vec<u32> {
        match &self.engine {
            Engine::Skiff { node_dir, .. } => {
                let node = node_dir.display().to_string();
                sweep::processes()
                    .into_iter()
                    .filter(|p| p.argv.get(1).is_some_and(|a| a == "shim"))
                    .filter(|p| p.command_line().contains(&node))
                    .map(|p| p.pid)
                    .collect()
            }
            Engine::Containerd(c) => c.shims(),
        }
    }

    /// Process ids of per-pod processes other than shims and containers.
    fn pauses(&self) -> Vec<u32> {
        match &self.engine {
            Engine::Skiff { .. } => Vec::new(),
            Engine::Containerd(c) => c.pauses(),
        }
    }

    async fn pull(&self, image: &str) -> anyhow::Result<()> {
        self.cri
            .images
            .clone()
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .with_context(|| format!("{}: PullImage {image}", self.name))?;
        Ok(())
    }

    /// Removes every pod through CRI, then stops the runtime.
    async fn shutdown(self) {
        let mut rt = self.cri.runtime.clone();
        let pods = tokio::time::timeout(
            CLEANUP_TIMEOUT,
            rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()),
        )
        .await;
        if let Ok(Ok(pods)) = pods {
            for pod in pods.into_inner().items {
                if let Err(err) = remove_pod(&self.cri, &pod.id).await {
                    println!("cleanup: {}: removing pod {}: {err:#}", self.name, pod.id);
                }
            }
        }
        match self.engine {
            Engine::Skiff {
                runtime,
                node_dir,
                lease,
            } => {
                if let Err(err) = runtime.stop() {
                    println!("cleanup: skiff runtime: {err}");
                }
                skiff_tests::clean_node(&node_dir);
                drop(lease);
            }
            Engine::Containerd(containerd) => containerd.stop(),
        }
    }
}

/// The pause image: busybox with `sleep infinity` as its entrypoint.
fn push_pause_image(regs: &TestRegistries) -> anyhow::Result<String> {
    let busybox = Busybox::load()?;
    let layer = busybox
        .base_entries()
        .into_iter()
        .fold(LayerBuilder::new(), LayerBuilder::entry)
        .build(Compression::Gzip);
    let image = ImageBuilder::new()
        .layer(layer)
        .without_cmd()
        .entrypoint(&["/bin/sleep", "infinity"])
        .build();
    regs.open.push(&image, PAUSE_IMAGE)?;
    Ok(regs.open.reference(PAUSE_IMAGE))
}

async fn start_skiff(regs: &TestRegistries, work: &Path, busybox: &str) -> anyhow::Result<Subject> {
    let yaml = work.join("registries.yaml");
    regs.write_registries_yaml(&yaml)?;
    let lease = Arc::new(NetworkLease::take()?);
    let node_dir = work.join("skiff");
    let options = RuntimeOptions {
        registries: Some(yaml),
        network: Some(lease.clone()),
        ..Default::default()
    };
    let runtime = SkiffRuntime::start(&node_dir, &options)?;
    let cri = Cri::connect(&runtime.socket()).await?;
    let subject = Subject {
        name: "skiff",
        pid: runtime.pid(),
        version: runtime_version(&cri).await?,
        template: PodTemplate {
            runtime: "skiff",
            image: busybox.into(),
            logs: work.join("logs/skiff"),
        },
        cri,
        engine: Engine::Skiff {
            runtime,
            node_dir,
            lease,
        },
        idle: Usage::default(),
    };
    subject.pull(busybox).await?;
    Ok(subject)
}

async fn start_containerd(
    regs: &TestRegistries,
    work: &Path,
    busybox: &str,
    pause: &str,
) -> anyhow::Result<Subject> {
    let containerd = Containerd::start(&Setup {
        dir: &work.join("containerd"),
        registry: &regs.open.host(),
        sandbox_image: pause,
    })?;
    let cri = Cri::connect(&containerd.socket()).await?;
    let version = runtime_version(&cri).await?;
    let runc = std::process::Command::new("runc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_default();
    wait_network_ready(&cri, &containerd).await?;
    let subject = Subject {
        name: "containerd",
        pid: containerd.pid(),
        version: format!("{version}, {runc}"),
        template: PodTemplate {
            runtime: "containerd",
            image: busybox.into(),
            logs: work.join("logs/containerd"),
        },
        cri,
        engine: Engine::Containerd(containerd),
        idle: Usage::default(),
    };
    subject.pull(pause).await?;
    subject.pull(busybox).await?;
    Ok(subject)
}

async fn runtime_version(cri: &Cri) -> anyhow::Result<String> {
    let version = cri
        .runtime
        .clone()
        .version(cri::VersionRequest {
            version: "v1".into(),
        })
        .await
        .context("CRI Version")?
        .into_inner();
    Ok(format!(
        "{} {} (CRI {})",
        version.runtime_name, version.runtime_version, version.runtime_api_version
    ))
}

/// containerd loads its CNI configuration in the background; pods fail
/// until it has.
async fn wait_network_ready(cri: &Cri, containerd: &Containerd) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = cri
            .runtime
            .clone()
            .status(cri::StatusRequest { verbose: false })
            .await
            .context("CRI Status")?
            .into_inner()
            .status
            .unwrap_or_default();
        let ready = |kind: &str| {
            status
                .conditions
                .iter()
                .any(|c| c.r#type == kind && c.status)
        };
        if ready("RuntimeReady") && ready("NetworkReady") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "containerd not ready after 20 s: {:?}; its log ends:\n{}",
                status.conditions,
                containerd.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Memory with [`MEMORY_PODS`] running pods.
struct MemoryFigures {
    idle: Usage,
    loaded: Usage,
    shims: Vec<Usage>,
    /// containerd's pause processes (none for Skiff).
    pauses: Vec<Usage>,
    /// After the pods are gone again.
    idle_after: Usage,
}

async fn memory(subject: &Subject) -> anyhow::Result<MemoryFigures> {
    let mut ids = Vec::new();
    for i in 0..MEMORY_PODS {
        let (id, _) = Box::pin(start_pod(
            subject.cri.clone(),
            subject.template.clone(),
            format!("mem-{i}"),
        ))
        .await?;
        ids.push(id);
    }
    tokio::time::sleep(SETTLE).await;
    let loaded = usage(subject.pid);
    let shims: Vec<Usage> = subject.shims().into_iter().map(usage).collect();
    let pauses: Vec<Usage> = subject.pauses().into_iter().map(usage).collect();
    for id in ids {
        remove_pod(&subject.cri, &id).await?;
    }
    tokio::time::sleep(SETTLE).await;
    Ok(MemoryFigures {
        idle: subject.idle,
        loaded,
        shims,
        pauses,
        idle_after: usage(subject.pid),
    })
}
