//! What the runtime benchmark prints: figures as they are measured, then a
//! summary with the ratios skiff/containerd and the targets.

use std::collections::HashMap;
use std::time::Duration;

use skiff_benches::Samples;

use super::pods::{Mode, StartFigures};
use super::{MEMORY_PODS, MemoryFigures, Subject, Subjects, Usage};

/// Picks one latency series out of a runtime's figures.
type PickStart = fn(&StartFigures) -> &Samples;
/// Picks one memory figure, in KiB.
type PickMemory = fn(&MemoryFigures) -> u64;

/// Figures of both runtimes, for the summary.
#[derive(Default)]
pub struct Results {
    /// Skiff's pod starts by mode.
    pub skiff: HashMap<Mode, StartFigures>,
    /// containerd's pod starts by mode.
    pub containerd: HashMap<Mode, StartFigures>,
    /// Skiff's memory.
    pub skiff_memory: Option<MemoryFigures>,
    /// containerd's memory.
    pub containerd_memory: Option<MemoryFigures>,
}

/// Targets from the issue.
const TARGET_START_RATIO: f64 = 0.5;
const TARGET_IDLE_MB: f64 = 15.0;
const TARGET_LOADED_MB: f64 = 45.0;

pub fn header(subjects: &Subjects) {
    println!("== Node runtime benchmark: pods through CRI, image cached ==");
    for subject in subjects.skiff.iter().chain(&subjects.containerd) {
        println!("{:<10} {}", subject.name, subject.version);
    }
    println!(
        "container: busybox `sleep 3600`, own PID namespace, cgroupfs parent; \
         containerd's sandboxes run a busybox pause image and a CNI bridge"
    );
    println!();
}

pub fn starts(runtime: &str, mode: Mode, f: &StartFigures) {
    println!("{runtime}, {}:", mode.describe());
    let lines = [
        (&f.sandbox, "RunPodSandbox"),
        (&f.create, "CreateContainer"),
        (&f.start, "StartContainer"),
        (&f.create_start, "CreateContainer+StartContainer"),
        (&f.whole, "whole pod to running (StartContainer returned)"),
        (&f.running, "whole pod until ContainerStatus says RUNNING"),
        (
            &f.teardown,
            "StopPodSandbox+RemovePodSandbox (not in the above)",
        ),
    ];
    for (samples, name) in lines {
        println!("  {}", samples.report(name));
    }
    if mode == Mode::Parallel {
        println!("  {}", f.rounds.report("wall time of one round"));
    }
    println!();
}

pub fn memory(subject: &Subject, m: &MemoryFigures) {
    let name = subject.name;
    println!("{name}, memory:");
    println!("  runtime idle (image cached, no pods): {}", usage(m.idle));
    println!(
        "  runtime with {MEMORY_PODS} running pods: {}",
        usage(m.loaded)
    );
    println!(
        "  runtime idle again after removing them: {}",
        usage(m.idle_after)
    );
    if m.shims.len() != MEMORY_PODS {
        println!(
            "  note: found {} shims for {MEMORY_PODS} pods",
            m.shims.len()
        );
    }
    let rss: Vec<u64> = m.shims.iter().map(|u| u.rss).collect();
    let pss: Vec<u64> = m.shims.iter().map(|u| u.pss).collect();
    println!(
        "  per shim ({}): RSS median {} KiB (min {}, max {}), PSS median {} KiB (min {}, max {})",
        m.shims.len(),
        median(&rss),
        rss.iter().min().unwrap_or(&0),
        rss.iter().max().unwrap_or(&0),
        median(&pss),
        pss.iter().min().unwrap_or(&0),
        pss.iter().max().unwrap_or(&0),
    );
    let shims = sum(&m.shims);
    println!(
        "  {} shims together: RSS {}, PSS {}",
        m.shims.len(),
        mib(shims.rss),
        mib(shims.pss)
    );
    println!(
        "  runtime + {} pods' shims: RSS {}, PSS {}",
        m.shims.len(),
        mib(m.loaded.rss + shims.rss),
        mib(m.loaded.pss + shims.pss)
    );
    if !m.pauses.is_empty() {
        let pauses = sum(&m.pauses);
        println!(
            "  + {} pause processes: RSS {}, PSS {} → runtime + shims + pauses: RSS {}",
            m.pauses.len(),
            mib(pauses.rss),
            mib(pauses.pss),
            mib(m.loaded.rss + shims.rss + pauses.rss)
        );
    }
    println!();
}

pub fn summary(results: &Results, skipped: Option<&str>) {
    println!(
        "== Summary (ratio = skiff / containerd; below 1 means Skiff is faster or smaller) =="
    );
    println!(
        "{:<58} {:>12} {:>12} {:>7}",
        "", "skiff", "containerd", "ratio"
    );
    for mode in [Mode::Sequential, Mode::Parallel] {
        let (Some(s), c) = (results.skiff.get(&mode), results.containerd.get(&mode)) else {
            continue;
        };
        let label = match mode {
            Mode::Sequential => "sequential",
            Mode::Parallel => "5 in parallel",
        };
        let rows: [(&str, PickStart); 5] = [
            ("RunPodSandbox", |f| &f.sandbox),
            ("CreateContainer", |f| &f.create),
            ("StartContainer", |f| &f.start),
            ("CreateContainer+StartContainer", |f| &f.create_start),
            ("whole pod to running", |f| &f.whole),
        ];
        for (name, pick) in rows {
            for (q, quantile) in [("median", 0.5), ("p95", 0.95)] {
                let skiff = pick(s).quantile(quantile);
                let containerd = c.map(|c| pick(c).quantile(quantile));
                row(
                    &format!("{name}, {label}, {q}"),
                    ms(skiff),
                    containerd.map(ms),
                    containerd.map(|c| ratio(skiff.as_secs_f64(), c.as_secs_f64())),
                );
            }
        }
    }
    let (sm, cm) = (&results.skiff_memory, &results.containerd_memory);
    if let Some(s) = sm {
        let memory_rows: [(&str, PickMemory); 6] = [
            ("runtime RSS idle", |m| m.idle.rss),
            ("runtime RSS with 10 pods", |m| m.loaded.rss),
            ("RSS per shim (median)", |m| {
                median(&m.shims.iter().map(|u| u.rss).collect::<Vec<_>>())
            }),
            ("PSS per shim (median)", |m| {
                median(&m.shims.iter().map(|u| u.pss).collect::<Vec<_>>())
            }),
            ("runtime + 10 pods' shims, RSS", |m| {
                m.loaded.rss + sum(&m.shims).rss
            }),
            ("runtime + 10 pods' shims, PSS", |m| {
                m.loaded.pss + sum(&m.shims).pss
            }),
        ];
        for (name, pick) in memory_rows {
            let containerd = cm.as_ref().map(pick);
            row(
                name,
                mib_short(pick(s)),
                containerd.map(mib_short),
                containerd.map(|c| ratio(pick(s) as f64, c as f64)),
            );
        }
    }
    println!();
    println!("Targets (issue 3):");
    for (mode, label) in [
        (Mode::Sequential, "sequential"),
        (Mode::Parallel, "5 in parallel"),
    ] {
        if let (Some(s), Some(c)) = (results.skiff.get(&mode), results.containerd.get(&mode)) {
            let r = s.whole.median().as_secs_f64() / c.whole.median().as_secs_f64();
            println!(
                "  whole pod start ({label}, median) ≤ {TARGET_START_RATIO} × containerd's: {r:.2} × → {}",
                verdict(r <= TARGET_START_RATIO)
            );
        }
    }
    if let Some(s) = sm {
        let idle = mb(s.idle.rss);
        println!(
            "  runtime idle RSS ≤ {TARGET_IDLE_MB} MB: {idle:.1} MB → {}",
            verdict(idle <= TARGET_IDLE_MB)
        );
        let loaded = mb(s.loaded.rss + sum(&s.shims).rss);
        println!(
            "  runtime + 10 pods' shims RSS ≤ {TARGET_LOADED_MB} MB: {loaded:.1} MB → {}",
            verdict(loaded <= TARGET_LOADED_MB)
        );
    }
    if let Some(reason) = skipped {
        println!("containerd figures incomplete or missing: {reason}");
    }
}

fn row(name: &str, skiff: String, containerd: Option<String>, ratio: Option<String>) {
    println!(
        "{name:<58} {skiff:>12} {:>12} {:>7}",
        containerd.unwrap_or_else(|| "-".into()),
        ratio.unwrap_or_else(|| "-".into())
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn ratio(skiff: f64, containerd: f64) -> String {
    if containerd > 0.0 {
        format!("{:.2}", skiff / containerd)
    } else {
        "-".into()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn median(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

fn sum(usages: &[Usage]) -> Usage {
    usages.iter().fold(Usage::default(), |acc, u| Usage {
        rss: acc.rss + u.rss,
        pss: acc.pss + u.pss,
        anon: acc.anon + u.anon,
    })
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB ({:.1} MB)", kib as f64 / 1024.0, mb(kib))
}

fn mib_short(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn usage(u: Usage) -> String {
    format!(
        "RSS {}, PSS {}, anonymous {}",
        mib(u.rss),
        mib_short(u.pss),
        mib_short(u.anon)
    )
}
