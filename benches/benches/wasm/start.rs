//! Wasm container start: CreateContainer + StartContainer until the guest's
//! first output line is in its CRI log file, cold (compile cache emptied
//! first) and warm (cache filled), in one pod per guest.
//!
//! "First instruction" is made observable as the guest's first line: a
//! thread polls the log file every [`POLL`] from just before the
//! CreateContainer call and notes when the line is there. The line passes
//! through the guest's stdout pipe and the shim's log writer first, so the
//! figure is an upper bound of the time to the guest's first instruction.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use k8s_cri::v1 as cri;
use skiff_benches::Samples;

use super::SAMPLES;
use super::guests::Guest;
use super::node::{self, Node};

/// How often the log file is read.
const POLL: Duration = Duration::from_micros(200);
/// How long a guest may take to print its first line.
const DEADLINE: Duration = Duration::from_secs(20);
/// How long a guest that printed may take to exit (they exit at once).
pub const EXIT_DEADLINE: Duration = Duration::from_secs(5);
/// Warm starts before the measured ones (the first one compiles).
const WARMUP: usize = 2;
/// Failed samples tolerated per guest (reported), before the run fails.
const MAX_FAILURES: usize = 10;

/// Latencies of one kind of start.
#[derive(Debug, Default)]
pub struct StartFigures {
    /// CreateContainer.
    pub create: Samples,
    /// StartContainer.
    pub start: Samples,
    /// CreateContainer + StartContainer.
    pub create_start: Samples,
    /// From the CreateContainer call to the first line in the log file.
    pub first_line: Samples,
}

/// Cold and warm starts of one guest.
#[derive(Debug, Default)]
pub struct GuestFigures {
    /// Compile cache emptied before each start.
    pub cold: StartFigures,
    /// The guest process's setup steps (from the shim log), medians in ms:
    /// cold (`cache=compiled`) and warm (`cache=hit`) starts.
    pub phases: [Vec<(String, f64)>; 2],
    /// Compile cache filled.
    pub warm: StartFigures,
    /// Compiled files found after the cold starts (one expected each time).
    pub cache_files: Vec<usize>,
    /// Containers whose guest printed its line but which CRI did not report
    /// exited within [`EXIT_DEADLINE`] (then stopped with StopContainer),
    /// with what was seen.
    pub stuck: Vec<String>,
    /// Samples that failed (left out of the figures), with the error.
    pub failed: Vec<String>,
}

/// One measured start.
struct Times {
    create: Duration,
    start: Duration,
    first_line: Duration,
    /// What was seen when CRI did not report the exit in time.
    stuck: Option<String>,
}

impl StartFigures {
    fn record(&mut self, t: &Times) {
        self.create.push(t.create);
        self.start.push(t.start);
        self.create_start.push(t.create + t.start);
        self.first_line.push(t.first_line);
    }
}

/// [`SAMPLES`] cold starts of `guest`, then [`SAMPLES`] warm ones, after
/// [`WARMUP`] warm ones.
pub async fn measure(node: &Node, guest: &Guest) -> anyhow::Result<GuestFigures> {
    let name = format!("start-{}", guest.name.replace('.', "-"));
    let config = node::pod_config(&node.logs, &name);
    let pod = node::run_pod(&node.cri, &config).await?;
    let outcome = samples(node, guest, &pod, &config).await;
    let shim_log = node.shim_log_tail(&pod, usize::MAX);
    node::remove_pod(&node.cri, &pod).await?;
    let mut figures = outcome?;
    figures.phases = [
        phase_medians(&shim_log, "compiled"),
        phase_medians(&shim_log, "hit"),
    ];
    Ok(figures)
}

/// The median of each setup step the shim logged for guests whose code
/// came from the compile cache as `cache` (`phases=process=0.10ms,...` in
/// its "wasm guest ready" lines), in the order logged.
fn phase_medians(shim_log: &str, cache: &str) -> Vec<(String, f64)> {
    let mut steps: Vec<(String, Vec<f64>)> = Vec::new();
    let wanted = format!("cache={cache}");
    for line in shim_log.lines() {
        if !line.contains("wasm guest ready") || !line.split(' ').any(|w| w == wanted) {
            continue;
        }
        let Some(phases) = line.split(' ').find_map(|w| w.strip_prefix("phases=")) else {
            continue;
        };
        for step in phases.split(',') {
            let Some((name, ms)) = step.split_once('=') else {
                continue;
            };
            let Ok(ms) = ms.trim_end_matches("ms").parse::<f64>() else {
                continue;
            };
            match steps.iter_mut().find(|(n, _)| n == name) {
                Some((_, values)) => values.push(ms),
                None => steps.push((name.to_owned(), vec![ms])),
            }
        }
    }
    steps
        .into_iter()
        .map(|(name, mut values)| {
            values.sort_by(f64::total_cmp);
            (name, values[values.len() / 2])
        })
        .collect()
}

async fn samples(
    node: &Node,
    guest: &Guest,
    pod: &str,
    config: &cri::PodSandboxConfig,
) -> anyhow::Result<GuestFigures> {
    let mut figures = GuestFigures::default();
    for i in 0..WARMUP {
        let warmup = Box::pin(sample(node, guest, pod, config, &format!("warmup-{i}"))).await?;
        figures.stuck.extend(warmup.stuck);
    }
    // All cold starts, then all warm ones, each kind under like conditions:
    // right after a cold start (which compiles on every CPU and leaves a
    // container cgroup holding the compile's memory for the kernel to clean
    // up), a warm start's cgroup join measured several ms slower.
    for i in 0..SAMPLES {
        node.clear_cache()?;
        let cold = Box::pin(sample(node, guest, pod, config, &format!("cold-{i}"))).await;
        if let Some(cold) = figures.keep(cold)? {
            figures.cold.record(&cold);
        }
        figures.cache_files.push(node.cached_files().len());
    }
    for i in 0..SAMPLES {
        let warm = Box::pin(sample(node, guest, pod, config, &format!("warm-{i}"))).await;
        if let Some(warm) = figures.keep(warm)? {
            figures.warm.record(&warm);
        }
    }
    Ok(figures)
}

impl GuestFigures {
    /// A sample's times; a failed sample is counted and left out, unless
    /// failures are the rule.
    fn keep(&mut self, outcome: anyhow::Result<Times>) -> anyhow::Result<Option<Times>> {
        match outcome {
            Ok(mut times) => {
                self.stuck.extend(times.stuck.take());
                Ok(Some(times))
            }
            Err(err) if self.failed.len() < MAX_FAILURES => {
                self.failed.push(format!("{err:#}"));
                Ok(None)
            }
            Err(err) => Err(err.context(format!("{MAX_FAILURES} samples had failed already"))),
        }
    }
}

/// Creates and starts container `name`, waits for its first line, then for
/// its exit; removes it whatever happened.
async fn sample(
    node: &Node,
    guest: &Guest,
    pod: &str,
    config: &cri::PodSandboxConfig,
    name: &str,
) -> anyhow::Result<Times> {
    let log = node::log_file(config, name);
    let watcher = LineWatcher::spawn(log.clone(), guest.first_line);
    let mut rt = node.cri.runtime.clone();
    let t0 = Instant::now();
    let created = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(node::container_config(name, &guest.image)),
            sandbox_config: Some(config.clone()),
        })
        .await
        .with_context(|| format!("CreateContainer {name}"));
    let created_at = Instant::now();
    let id = match created {
        Ok(response) => response.into_inner().container_id,
        Err(err) => {
            watcher.cancel();
            return Err(err);
        }
    };
    let run = Run {
        node,
        guest,
        pod,
        name,
        id: &id,
        log: &log,
    };
    let outcome = Box::pin(run.observe(watcher, t0, created_at)).await;
    let removed = run.remove().await;
    let times = outcome?;
    removed?;
    Ok(times)
}

/// One container of a sample, created.
struct Run<'a> {
    node: &'a Node,
    guest: &'a Guest,
    pod: &'a str,
    name: &'a str,
    id: &'a str,
    log: &'a PathBuf,
}

impl Run<'_> {
    /// StartContainer, then the first line and the exit.
    async fn observe(
        &self,
        watcher: LineWatcher,
        t0: Instant,
        created_at: Instant,
    ) -> anyhow::Result<Times> {
        let (name, id, log) = (self.name, self.id, self.log);
        let mut rt = self.node.cri.runtime.clone();
        let started = rt
            .start_container(cri::StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .with_context(|| format!("StartContainer {name}"));
        let started_at = Instant::now();
        if let Err(err) = started {
            watcher.cancel();
            return Err(anyhow!(
                "{err:#}\n  the runtime's log ends:\n{}",
                self.node.log_tail(4)
            ));
        }
        let Some(seen) = watcher.wait().await? else {
            let status = node::container_status(&self.node.cri, id).await;
            bail!(
                "{name}: no {:?} in {} within {DEADLINE:?} of CreateContainer; log: {:?}; status: {status:?}",
                self.guest.first_line,
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        let (status, stuck) = match node::wait_exited(&self.node.cri, id, EXIT_DEADLINE).await {
            Ok(status) => (status, None),
            Err(err) => {
                let seen = format!(
                    "{name}: {err:#}\n  log: {:?}\n  guests: {}\n  shim log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default(),
                    describe_guests(self.node),
                    self.node.shim_log_tail(self.pod, 15)
                );
                rt.stop_container(cri::StopContainerRequest {
                    container_id: id.into(),
                    timeout: 2,
                })
                .await
                .with_context(|| format!("StopContainer {name}"))?;
                let status = node::wait_exited(&self.node.cri, id, DEADLINE).await?;
                (status, Some(seen))
            }
        };
        if stuck.is_none() && status.exit_code != 0 {
            bail!(
                "{name}: exited with {} ({}): {:?}",
                status.exit_code,
                status.reason,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        Ok(Times {
            create: created_at - t0,
            start: started_at - created_at,
            first_line: seen.saturating_duration_since(t0),
            stuck,
        })
    }

    /// StopContainer (when it may still run) and RemoveContainer.
    async fn remove(&self) -> anyhow::Result<()> {
        let mut rt = self.node.cri.runtime.clone();
        let exited = node::container_status(&self.node.cri, self.id)
            .await
            .is_ok_and(|s| s.state == cri::ContainerState::ContainerExited as i32);
        if !exited {
            let _ = rt
                .stop_container(cri::StopContainerRequest {
                    container_id: self.id.into(),
                    timeout: 0,
                })
                .await;
        }
        rt.remove_container(cri::RemoveContainerRequest {
            container_id: self.id.into(),
        })
        .await
        .with_context(|| format!("RemoveContainer {}", self.name))?;
        Ok(())
    }
}

/// Each guest process: pid, state and kernel wait channel.
fn describe_guests(node: &Node) -> String {
    let guests = node.pod_processes().guests;
    if guests.is_empty() {
        return "none".into();
    }
    guests
        .iter()
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let field = |name: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(name))
                    .map(|l| l[name.len()..].trim().to_string())
                    .unwrap_or_default()
            };
            let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
            format!(
                "pid {pid} state {:?} threads {} wchan {wchan:?}",
                field("State:"),
                field("Threads:")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A thread that polls a log file until it holds a line.
struct LineWatcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Option<Instant>>,
}

impl LineWatcher {
    /// Starts polling `path` for `line` (until found, cancelled, or
    /// [`DEADLINE`]).
    fn spawn(path: PathBuf, line: &'static str) -> LineWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + DEADLINE;
            while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok(text) = std::fs::read_to_string(&path)
                    && text.contains(line)
                {
                    return Some(Instant::now());
                }
                std::thread::sleep(POLL);
            }
            None
        });
        LineWatcher { stop, thread }
    }

    fn cancel(self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// When the line was first seen (`None`: not within the deadline).
    async fn wait(self) -> anyhow::Result<Option<Instant>> {
        tokio::task::spawn_blocking(move || self.thread.join())
            .await?
            .map_err(|_| anyhow!("the log watcher thread panicked"))
    }
}
