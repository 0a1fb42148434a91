//! First-cluster benchmark (issue 6): `skiff server` (release) with its
//! built-in agent on a pod network of its own, images from the local test
//! registry, driven by the real kubectl.
//!
//! - `kubectl apply` of a 1-replica Deployment to its pod Ready, the image
//!   already cached: median and p95 over several Deployments;
//! - 30 pods from one apply (`replicas: 30`) to all Running;
//! - RSS of the `skiff server` process (apiserver, scheduler,
//!   controller-manager, kubelet, node runtime) idle with no workload and
//!   with 30 pods, and the summed RSS of the pods' shims beside it.
//!
//! Run: `./scripts/bench.sh --bench cluster`.

// A benchmark reports on stdout.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_benches::{Samples, fmt, rss_kib};
use skiff_tests::{AgentSetup, Fixture, NetworkLease, SkiffServer, TestRegistries, clean_node};

/// Deployments applied one after another for the apply→Ready figure.
const ROUNDS: usize = 15;
/// Pods in the burst.
const BURST: usize = 30;

fn main() -> anyhow::Result<()> {
    let regs = TestRegistries::start()?;
    let dir = tempfile::tempdir()?;
    let registries = dir.path().join("registries.yaml");
    regs.write_registries_yaml(&registries)?;
    let image = Fixture::Busybox.reference(&regs.open);
    let node_dir = dir.path().join("server");
    let lease = Arc::new(NetworkLease::take()?);
    let server = SkiffServer::start_cluster(
        &node_dir,
        AgentSetup {
            network: lease.clone(),
            registries: Some(registries),
            node_name: "bench".into(),
        },
    )?;
    let result = run(&server, &image);
    drop(server);
    clean_node(&node_dir);
    drop(lease);
    result
}

fn run(server: &SkiffServer, image: &str) -> anyhow::Result<()> {
    std::thread::sleep(Duration::from_secs(5));
    let idle = rss_kib(server.pid()).unwrap_or(0) as f64 / 1024.0;
    println!("skiff server RSS idle, no workload: {idle:.1} MiB");

    // Warm the image cache: the first pod pulls.
    apply_and_wait(server, "warm", image, 1)?;
    delete(server, "warm")?;

    let mut ready = Samples::default();
    for round in 0..ROUNDS {
        let name = format!("one-{round}");
        ready.push(apply_and_wait(server, &name, image, 1)?);
        delete(server, &name)?;
    }
    println!("{}", ready.report("apply 1-replica Deployment → pod Ready"));

    let burst = apply_and_wait(server, "burst", image, BURST)?;
    println!(
        "{BURST} pods from one apply to all Running and Ready: {}",
        fmt(burst)
    );
    std::thread::sleep(Duration::from_secs(5));
    let loaded = rss_kib(server.pid()).unwrap_or(0) as f64 / 1024.0;
    println!("skiff server RSS with {BURST} pods: {loaded:.1} MiB");
    println!(
        "shims' summed RSS with {BURST} pods: {:.1} MiB",
        shims_rss_kib() as f64 / 1024.0
    );
    delete(server, "burst")?;
    Ok(())
}

/// Applies a Deployment of `replicas` pods running httpd and waits until
/// that many of its pods are Ready; the time from starting `kubectl apply`.
fn apply_and_wait(
    server: &SkiffServer,
    name: &str,
    image: &str,
    replicas: usize,
) -> anyhow::Result<Duration> {
    let manifest = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {image}
        imagePullPolicy: IfNotPresent
        command: [httpd, -f, -p, '8080']
        readinessProbe:
          tcpSocket: {{port: 8080}}
          periodSeconds: 1
"
    );
    let started = Instant::now();
    let out = server.kubectl_with(&["apply", "-f", "-"], Some(&manifest), &[])?;
    if !out.status.success() {
        bail!("kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
    }
    let deadline = started + Duration::from_secs(120);
    loop {
        let out = server.kubectl(&[
            "get",
            "pods",
            "-l",
            &format!("app={name}"),
            "-o",
            "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
        ])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.split_whitespace().filter(|s| *s == "True").count() >= replicas {
            return Ok(started.elapsed());
        }
        if Instant::now() > deadline {
            bail!("{name}: {replicas} pods not Ready after 120 s ({text})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn delete(server: &SkiffServer, name: &str) -> anyhow::Result<()> {
    let out = server.kubectl(&["delete", "deployment", name, "--wait=false"])?;
    if !out.status.success() {
        bail!("kubectl delete: {}", String::from_utf8_lossy(&out.stderr));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = server.kubectl(&["get", "pods", "-l", &format!("app={name}"), "-o", "name"])?;
        if out.stdout.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!("pods of {name} still there after 60 s"))
                .context("deleting a Deployment");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Summed RSS of every `skiff shim` process.
fn shims_rss_kib() -> u64 {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(" shim ").then(|| rss_kib(pid)).flatten()
        })
        .sum()
}
