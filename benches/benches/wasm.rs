//! Wasm benchmark (issue 4, "Performance"): Wasm containers run by
//! wasmtime in the pod shims of `skiff runtime`, driven through its CRI
//! socket, images pulled from a local registry beforehand:
//!
//! 1. Wasm container start, cold (compile cache emptied before each sample)
//!    and warm (cache filled), for a WAT module and a C program (wasi-libc):
//!    from the CreateContainer call until the guest's first output line is
//!    in the container's CRI log file, and the CreateContainer +
//!    StartContainer RPCs alone; median and p95 of 20 samples each;
//! 2. 100 idle Wasm pods at once (a guest sleeping in `poll_oneoff`): RSS
//!    and PSS of the runtime, the shims and the guest processes (forked
//!    children of the shims), in total and per pod;
//! 3. requests/s to a wasi:http component: one pod serving a
//!    `wasi:http/proxy` component on its pod IP, driven over HTTP/1.1
//!    keep-alive connections (1 and 8 at once) for a fixed time after a
//!    warm-up: requests/s, median and p95 latency per request, errors.
//!
//! It prints the figures and the targets. Nothing is left behind,
//! even after an interrupted run (`skiff_benches::cleanup`).
//!
//! Run: `./scripts/bench.sh --bench wasm` (builds `skiff` in release first).

// A benchmark reports on stdout.
#![allow(clippy::print_stdout, clippy::print_stderr)]

// A bench target's root resolves modules beside it, not in `wasm/`.
#[path = "wasm/guests.rs"]
mod guests;
#[path = "wasm/http.rs"]
mod http;
#[path = "wasm/idle.rs"]
mod idle;
#[path = "wasm/node.rs"]
mod node;
#[path = "wasm/report.rs"]
mod report;
#[path = "wasm/start.rs"]
mod start;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use skiff_benches::cleanup::{self, BenchLock, Signals};
use skiff_benches::usage;
use skiff_tests::TestRegistries;

use node::Node;

/// Prefix of the work directory under `$TMPDIR`.
const WORK_PREFIX: &str = "skiff-bench-wasm-";
/// The cgroup (in every hierarchy) all benchmark pods live under.
const CGROUP_ROOT: &str = "skiff-bench-wasm";
/// Start samples per guest, cold and warm each.
const SAMPLES: usize = 20;
/// Idle Wasm pods running at once.
const IDLE_PODS: usize = 100;
/// Time for processes to settle before reading their memory.
const SETTLE: Duration = Duration::from_secs(3);
/// Time the idle pods get before their memory is read: an idle pod's
/// steady state comes after its start's transients, i.e. once WASI's tokio
/// blocking threads (10 s keep-alive) have ended and the guests' trims
/// (1 s and 10 s after start) have run.
const IDLE_SETTLE: Duration = Duration::from_secs(12);
/// Upper bound for any one CRI call while cleaning up.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    let _lock = BenchLock::acquire(Path::new(cleanup::NODE_BENCH_LOCK))?;
    let stale = cleanup::stale_work_dirs(WORK_PREFIX);
    let killed = cleanup::sweep(&stale, CGROUP_ROOT);
    if !stale.is_empty() || killed > 0 {
        println!(
            "removed what an interrupted run left: {} directories, {killed} processes",
            stale.len()
        );
    }
    let work = tempfile::Builder::new().prefix(WORK_PREFIX).tempdir()?;
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
        let killed = cleanup::sweep(std::slice::from_ref(&self.0), CGROUP_ROOT);
        if killed > 0 {
            eprintln!("cleanup: the final sweep had to kill {killed} leftover processes");
        }
    }
}

/// Runs the benchmark until it ends or a signal interrupts it, then removes
/// every pod through CRI and stops the runtime.
async fn run(regs: &TestRegistries, work: &Path) -> anyhow::Result<()> {
    let mut signals = Signals::new()?;
    let mut node = None;
    let outcome = tokio::select! {
        outcome = bench(regs, work, &mut node) => outcome,
        name = signals.recv() => Err(anyhow!("interrupted by {name}")),
    };
    if let Some(node) = node {
        node.shutdown().await;
    }
    outcome
}

async fn bench(regs: &TestRegistries, work: &Path, slot: &mut Option<Node>) -> anyhow::Result<()> {
    let began = std::time::Instant::now();
    let guests = guests::push(regs).context("building and pushing the Wasm images")?;
    let node = slot.insert(
        Node::start(regs, work)
            .await
            .context("starting skiff runtime")?,
    );
    for image in guests.images() {
        node.pull(image).await?;
    }
    tokio::time::sleep(SETTLE).await;
    let idle = usage(node.pid);
    report::header(node, &guests, idle);

    let mut results = report::Results::default();
    for guest in [&guests.hello, &guests.echo] {
        let figures = start::measure(node, guest).await?;
        report::starts(guest, &figures);
        results.starts.push((guest.clone(), figures));
    }
    let figures = Box::pin(http::measure(node, &guests.http)).await?;
    report::http(&guests.http, &figures);
    results.http = Some(figures);
    let figures = Box::pin(idle::measure(node, &guests.sleeper, idle)).await?;
    report::idle(&figures);
    results.idle = Some(figures);
    report::summary(&results);
    println!(
        "(the benchmark ran for {:.0} s)",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}
