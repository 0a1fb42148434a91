//! Datastore benchmark (issue 5, first figures): the SQLite revision log
//! that will hold the API objects, measured below the apiserver — create,
//! get, update and list of 10,000 ConfigMap-sized values with 1, 4 and 8
//! threads; p50 and p99 per operation and throughput; a watcher's delay;
//! the database size after steady churn and a compaction.
//!
//! Run: `./scripts/bench.sh --bench datastore`.

// A benchmark reports on stdout.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_benches::Samples;
use skiff_server::datastore::{ListOptions, RevisionLog, SqliteLog, Watch};

/// Keys written.
const KEYS: usize = 10_000;
/// A ConfigMap-sized value.
const VALUE_BYTES: usize = 1024;

fn main() -> anyhow::Result<()> {
    let began = Instant::now();
    let dir = tempfile::tempdir()?;
    println!(
        "datastore: SQLite (WAL, synchronous=FULL) in {}; {KEYS} keys of {VALUE_BYTES} bytes",
        dir.path().display()
    );
    for threads in [1, 4, 8] {
        let log = Arc::new(SqliteLog::open(
            &dir.path().join(format!("t{threads}/state.db")),
        )?);
        let value = vec![b'x'; VALUE_BYTES];
        let keys: Vec<String> = (0..KEYS)
            .map(|i| format!("/registry/configmaps/default/cm-{i:05}"))
            .collect();
        let run = |op: &'static str, f: &(dyn Fn(&str) -> anyhow::Result<()> + Sync)| {
            let started = Instant::now();
            let per_thread: Vec<Samples> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let keys = &keys;
                        scope.spawn(move || {
                            let mut samples = Samples::default();
                            for key in keys.iter().skip(t).step_by(threads) {
                                let t0 = Instant::now();
                                f(key).expect(op);
                                samples.push(t0.elapsed());
                            }
                            samples
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect(op)).collect()
            });
            let wall = started.elapsed();
            let mut all = Samples::default();
            for samples in per_thread {
                for q in samples.durations() {
                    all.push(*q);
                }
            }
            println!(
                "  {threads} thread(s), {op:<6}: {:>7.0}/s, p50 {:>9}, p99 {:>9}",
                KEYS as f64 / wall.as_secs_f64(),
                skiff_benches::fmt(all.median()),
                skiff_benches::fmt(all.quantile(0.99)),
            );
        };
        run("create", &|key| {
            log.create(key, &value, 0)?;
            Ok(())
        });
        run("get", &|key| {
            log.get(key, 0)?;
            Ok(())
        });
        run("update", &|key| {
            let kv = log.get(key, 0)?.expect("written");
            log.update(key, &value, kv.mod_revision, 0)?;
            Ok(())
        });
        let t0 = Instant::now();
        let mut pages = 0;
        let mut after = None;
        loop {
            let page = log.list(&ListOptions {
                prefix: "/registry/configmaps/".into(),
                start_after: after.clone(),
                limit: 500,
                ..Default::default()
            })?;
            pages += 1;
            after = page.kvs.last().map(|kv| kv.key.clone());
            if !page.more {
                break;
            }
        }
        println!(
            "  {threads} thread(s), list of {KEYS} in pages of 500: {} ({pages} pages)",
            skiff_benches::fmt(t0.elapsed())
        );
    }

    // A watcher's delay: from a write's return to the event.
    let log = Arc::new(SqliteLog::open(&dir.path().join("watch/state.db"))?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let delays = runtime.block_on(async {
        let mut watch = Watch::start(log.clone(), "/w/", 0)?;
        let mut delays = Samples::default();
        for i in 0..1000 {
            let t0 = Instant::now();
            log.create(&format!("/w/{i}"), b"v", 0)?;
            tokio::time::timeout(Duration::from_secs(5), watch.next()).await??;
            delays.push(t0.elapsed());
        }
        anyhow::Ok(delays)
    })?;
    println!("  {}", delays.report("write → watch event (1 watcher)"));

    // Churn and compaction: the file stays bounded.
    let path = dir.path().join("churn/state.db");
    let log = SqliteLog::open(&path)?;
    let value = vec![b'y'; VALUE_BYTES];
    for i in 0..200 {
        log.create(&format!("/lease/{i}"), &value, 0)?;
    }
    for round in 0..50 {
        for i in 0..200 {
            let key = format!("/lease/{i}");
            let kv = log.get(&key, 0)?.expect("written");
            log.update(&key, &value, kv.mod_revision, 0)?;
        }
        if round % 10 == 9 {
            let t0 = Instant::now();
            let removed = log.compact(log.current_revision()?)?;
            println!(
                "  churn round {}: compaction removed {removed} rows in {}",
                round + 1,
                skiff_benches::fmt(t0.elapsed())
            );
        }
    }
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    println!(
        "  after 10,000 updates of 200 keys with compactions: database {} KiB, WAL {} KiB",
        size(&path) / 1024,
        size(&path.with_extension("db-wal")) / 1024
    );
    println!(
        "(the benchmark ran for {:.0} s)",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}
