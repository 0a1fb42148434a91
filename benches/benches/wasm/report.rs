//! What the Wasm benchmark prints: figures as they are measured, then a
//! summary with the targets.

use std::time::Duration;

use skiff_benches::{Samples, Usage};

use super::guests::{Guest, Guests};
use super::http::{self, HttpFigures, LoadFigures};
use super::idle::{CONCURRENCY, IdleFigures};
use super::node::{HANDLER, Node};
use super::start::{EXIT_DEADLINE, GuestFigures, StartFigures};
use super::{IDLE_PODS, SAMPLES};

/// Picks one latency series out of a guest's figures.
type PickStart = fn(&StartFigures) -> &Samples;

/// Targets from the issue.
const TARGET_WARM_START_MS: f64 = 10.0;
const TARGET_IDLE_PODS_MB: f64 = 300.0;

/// Everything measured, for the summary.
#[derive(Debug, Default)]
pub struct Results {
    /// Start latencies per guest.
    pub starts: Vec<(Guest, GuestFigures)>,
    /// The wasi:http component under load.
    pub http: Option<HttpFigures>,
    /// The idle pods.
    pub idle: Option<IdleFigures>,
}

pub fn header(node: &Node, guests: &Guests, idle: Usage) {
    println!("== Wasm benchmark: Wasm containers through CRI, images cached ==");
    println!("runtime    {}", node.version);
    println!("pods       runtime handler {HANDLER:?}, own PID namespace, cgroupfs parent");
    for guest in [&guests.hello, &guests.echo, &guests.sleeper, &guests.http] {
        println!(
            "{:<10} {} bytes: {}",
            guest.name, guest.module_bytes, guest.what
        );
    }
    println!("runtime idle (images pulled, no pods): {}", usage(idle));
    println!("{}", load_average());
    println!();
}

pub fn starts(guest: &Guest, f: &GuestFigures) {
    for (kind, figures) in [("cold", &f.cold), ("warm", &f.warm)] {
        println!(
            "{}, {kind} start ({}), {SAMPLES} containers one after another in one pod:",
            guest.name,
            match kind {
                "cold" => "compile cache emptied before each",
                _ => "compile cache filled",
            }
        );
        let lines: [(&Samples, &str); 4] = [
            (&figures.create, "CreateContainer"),
            (&figures.start, "StartContainer"),
            (&figures.create_start, "CreateContainer+StartContainer"),
            (
                &figures.first_line,
                "CreateContainer call → first line in the CRI log",
            ),
        ];
        for (samples, name) in lines {
            println!("  {}", samples.report(name));
        }
        let phases = &f.phases[usize::from(kind == "warm")];
        if !phases.is_empty() {
            let steps: Vec<String> = phases
                .iter()
                .map(|(name, ms)| format!("{name} {ms:.2} ms"))
                .collect();
            println!(
                "  in the guest process before it reports ready (medians, from the shim log): {}",
                steps.join(", ")
            );
        }
    }
    if !f.failed.is_empty() {
        println!(
            "  note: {} samples failed and are left out; the first: {}",
            f.failed.len(),
            f.failed[0]
        );
    }
    if !f.stuck.is_empty() {
        println!(
            "  note: {} containers printed their line but CRI did not report them exited \
             within {EXIT_DEADLINE:?} (then stopped with StopContainer; the shim log \
             tells whether the guest had exited); the first:\n{}",
            f.stuck.len(),
            f.stuck[0]
        );
    }
    if f.cache_files.iter().any(|&n| n != 1) {
        println!(
            "  note: compiled files in the cache after each cold start: {:?} (1 expected)",
            f.cache_files
        );
    }
    println!();
}

pub fn http(guest: &Guest, f: &HttpFigures) {
    println!(
        "{} (wasi:http), one pod: HTTP/1.1 GETs with keep-alive to {} from this process, \
         {} s warm-up + {} s measured per run:",
        guest.name,
        f.address,
        http::WARMUP.as_secs_f64(),
        http::DURATION.as_secs_f64()
    );
    println!(
        "  CreateContainer call → first 200 response (compile cache cold): {}",
        ms(f.first_response)
    );
    for run in &f.runs {
        println!("  {}", load_line(run));
        if let Some(err) = &run.first_error {
            println!("    first error: {err}");
        }
        if run.connects > run.connections as u64 {
            println!(
                "    note: {} connections opened for {} clients (lost ones reopened)",
                run.connects, run.connections
            );
        }
    }
    println!(
        "  after the load: shim RSS {} / PSS {:.1} MiB, guest (serving) RSS {} / PSS {:.1} MiB",
        mib(f.shim.rss),
        f.shim.pss as f64 / 1024.0,
        mib(f.guest.rss),
        f.guest.pss as f64 / 1024.0
    );
    if f.processes != (1, 1) {
        println!(
            "  note: found {} shims and {} guests (1 each expected)",
            f.processes.0, f.processes.1
        );
    }
    println!(
        "  (client and server share this machine's {} CPUs; every request also writes \
         a line to the container's CRI log)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
}

/// `C connections: N requests/s, latency median X, p95 Y (n requests), E errors`.
fn load_line(run: &LoadFigures) -> String {
    format!(
        "{} connection{}: {:.0} requests/s, per request median {}, p95 {} ({} requests), \
         {} errors",
        run.connections,
        if run.connections == 1 { "" } else { "s" },
        run.per_second(),
        latency(run.latency.median()),
        latency(run.latency.p95()),
        run.requests,
        run.errors
    )
}

pub fn idle(f: &IdleFigures) {
    println!("{IDLE_PODS} idle Wasm pods (one sleeping guest each):");
    println!(
        "  {}",
        f.pod_start.report(&format!(
            "RunPodSandbox+CreateContainer+StartContainer, {CONCURRENCY} at a time"
        ))
    );
    println!(
        "  all started in {}, every guest's first line logged after {}",
        ms(f.start_wall),
        ms(f.all_running)
    );
    println!("  runtime before the pods: {}", usage(f.runtime_idle));
    println!(
        "  runtime with the pods ({:.0} s after the last started): {}",
        super::IDLE_SETTLE.as_secs_f64(),
        usage(f.runtime)
    );
    if f.shims.len() != f.pods || f.guests.len() != f.pods {
        println!(
            "  note: found {} shims and {} guests for {} pods",
            f.shims.len(),
            f.guests.len(),
            f.pods
        );
    }
    println!(
        "  processes in the pods' cgroups (cgroup.procs): {}",
        f.cgroup_procs
    );
    if let Some(charge) = f.cgroup_charge {
        println!(
            "  memory charged to the pods' cgroups (the guests, page cache included): {}",
            mib(charge)
        );
    }
    per_process("shim", &f.shims);
    per_process("guest", &f.guests);
    let shims: Usage = f.shims.iter().copied().sum();
    let guests: Usage = f.guests.iter().copied().sum();
    println!(
        "  {} shims together: RSS {}, PSS {}",
        f.shims.len(),
        mib(shims.rss),
        mib(shims.pss)
    );
    println!(
        "  {} guests together: RSS {}, PSS {}",
        f.guests.len(),
        mib(guests.rss),
        mib(guests.pss)
    );
    let total = f.total();
    println!(
        "  runtime + shims + guests: RSS {}, PSS {}",
        mib(total.rss),
        mib(total.pss)
    );
    let pods = f.pods.max(1) as u64;
    println!(
        "  per pod (shim + guest, runtime's growth spread): RSS {} KiB, PSS {} KiB",
        (shims.rss + guests.rss + f.runtime.rss.saturating_sub(f.runtime_idle.rss)) / pods,
        (shims.pss + guests.pss + f.runtime.pss.saturating_sub(f.runtime_idle.pss)) / pods,
    );
    println!(
        "  removing them ({CONCURRENCY} at a time): {}; processes left afterwards: {}",
        ms(f.teardown_wall),
        f.leftovers
    );
    println!(
        "  runtime after the pods are gone: {}",
        usage(f.runtime_after)
    );
    println!();
}

pub fn summary(results: &Results) {
    println!("== Summary ==");
    println!(
        "{:<62} {:>10} {:>10}",
        "Wasm container start", "median", "p95"
    );
    for (guest, f) in &results.starts {
        for (kind, figures) in [("cold", &f.cold), ("warm", &f.warm)] {
            let rows: [(&str, PickStart); 2] = [
                ("CreateContainer call → first log line", |s| &s.first_line),
                ("CreateContainer+StartContainer RPCs", |s| &s.create_start),
            ];
            for (what, pick) in rows {
                let samples = pick(figures);
                println!(
                    "{:<62} {:>10} {:>10}",
                    format!("{}, {kind}, {what}", guest.name),
                    ms(samples.median()),
                    ms(samples.p95())
                );
            }
        }
    }
    if let Some(f) = &results.idle {
        let total = f.total();
        let pods = f.pods.max(1) as u64;
        println!(
            "{IDLE_PODS} idle Wasm pods, runtime + shims + guests: RSS {:.1} MB, PSS {:.1} MB \
             (per pod: shim RSS {} KiB / PSS {} KiB, guest RSS {} KiB / PSS {} KiB, medians)",
            mb(total.rss),
            mb(total.pss),
            median(f.shims.iter().map(|u| u.rss)),
            median(f.shims.iter().map(|u| u.pss)),
            median(f.guests.iter().map(|u| u.rss)),
            median(f.guests.iter().map(|u| u.pss)),
        );
        println!(
            "  i.e. {:.2} MB RSS / {:.2} MB PSS per pod, runtime included",
            mb(total.rss) / pods as f64,
            mb(total.pss) / pods as f64
        );
    }
    match &results.http {
        Some(f) => {
            println!(
                "requests/s to a wasi:http component (keep-alive, {} s per run):",
                http::DURATION.as_secs_f64()
            );
            for run in &f.runs {
                println!("  {}", load_line(run));
            }
        }
        None => println!("requests/s to a wasi:http component: not measured (the run ended first)"),
    }
    println!();
    println!("{}", load_average());
    println!();
    println!("Targets (issue 4):");
    for (guest, f) in &results.starts {
        let warm = f.warm.first_line.median().as_secs_f64() * 1e3;
        println!(
            "  warm start median ≤ {TARGET_WARM_START_MS} ms ({}, CreateContainer call → first line): \
             {warm:.2} ms → {}",
            guest.name,
            verdict(warm <= TARGET_WARM_START_MS)
        );
    }
    if let Some(f) = &results.idle {
        let total = f.total();
        let complete = f.shims.len() == f.pods && f.guests.len() == f.pods;
        println!(
            "  {IDLE_PODS} idle Wasm pods < {TARGET_IDLE_PODS_MB} MB RSS in total (runtime + shims + guests): \
             {:.1} MB → {}{}",
            mb(total.rss),
            verdict(mb(total.rss) < TARGET_IDLE_PODS_MB),
            if complete {
                ""
            } else {
                " (not every shim or guest was found: see above)"
            }
        );
        println!(
            "    (summed RSS counts pages shared by the shims and guests once per process; \
             their PSS sum, each page counted once, is {:.1} MB)",
            mb(total.pss)
        );
    }
    if let Some(f) = &results.http {
        let rates: Vec<String> = f
            .runs
            .iter()
            .map(|run| {
                format!(
                    "{:.0}/s with {} connection{}",
                    run.per_second(),
                    run.connections,
                    if run.connections == 1 { "" } else { "s" }
                )
            })
            .collect();
        let errors: u64 = f.runs.iter().map(|run| run.errors).sum();
        println!(
            "  requests/s to a wasi:http component (no target in the issue): {}; {errors} errors",
            rates.join(", ")
        );
    }
}

fn per_process(what: &str, usages: &[Usage]) {
    let rss = || usages.iter().map(|u| u.rss);
    let pss = || usages.iter().map(|u| u.pss);
    println!(
        "  per {what} ({}): RSS median {} KiB (min {}, max {}), PSS median {} KiB (min {}, max {}), \
         anonymous median {} KiB",
        usages.len(),
        median(rss()),
        rss().min().unwrap_or(0),
        rss().max().unwrap_or(0),
        median(pss()),
        pss().min().unwrap_or(0),
        pss().max().unwrap_or(0),
        median(usages.iter().map(|u| u.anon)),
    );
}

/// The machine's load, to judge how noisy the figures are (other work on
/// this VM's two cores shows in the latencies).
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("load average (1, 5, 15 min): {}", fields.join(", "))
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// µs below a millisecond, else ms.
fn latency(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    } else {
        ms(d)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn median(values: impl Iterator<Item = u64>) -> u64 {
    let mut sorted: Vec<u64> = values.collect();
    sorted.sort_unstable();
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB ({:.1} MB)", kib as f64 / 1024.0, mb(kib))
}

fn usage(u: Usage) -> String {
    format!(
        "RSS {}, PSS {:.1} MiB, anonymous {:.1} MiB",
        mib(u.rss),
        u.pss as f64 / 1024.0,
        u.anon as f64 / 1024.0
    )
}
