//! Image store benchmarks (issue: workspace and image store):
//!
//! 1. pull + unpack of `bench-a` (3 layers, ~5 MB) from a local registry into
//!    a fresh store, then of `bench-b`, which shares two of those layers
//!    (only its own layer may be fetched: checked in the registry's log);
//! 2. the same through `skiff runtime` over the CRI socket, then ImageStatus
//!    and ListImages latency with 100 images;
//! 3. RSS of `skiff runtime` idle, before and after.
//!
//! Run: `./scripts/bench.sh` (builds `skiff` in release first).

// A benchmark reports on stdout.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_cri::v1 as cri_v1;
use skiff_benches::{Samples, cpu_time, pss_kib, rss_anon_kib, rss_kib};
use skiff_cri::client::CriClient;
use skiff_images::registries::RegistriesConfig;
use skiff_images::{ImageStore, StoreConfig};
use skiff_tests::oci::{Compression, ImageBuilder, LayerBuilder};
use skiff_tests::{Fixture, GuardedChild, TestRegistries, TestRegistry};

const PULL_RUNS: usize = 15;
const IMAGES: usize = 100;

fn main() -> anyhow::Result<()> {
    let regs = TestRegistries::start().context("starting registries")?;
    let work = tempfile::tempdir()?;
    let yaml = work.path().join("registries.yaml");
    regs.write_registries_yaml(&yaml)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(pulls(&regs, &yaml, work.path()))?;
    runtime.block_on(cri(&regs, &yaml, work.path()))?;
    Ok(())
}

async fn pulls(regs: &TestRegistries, yaml: &Path, work: &Path) -> anyhow::Result<()> {
    let a = Fixture::BenchA.reference(&regs.open);
    let b = Fixture::BenchB.reference(&regs.open);
    let a_bytes: u64 = Fixture::BenchA
        .load()?
        .manifest()?
        .layers
        .iter()
        .map(|l| l.size)
        .sum();
    let (mut pull_a, mut pull_b) = (Samples::default(), Samples::default());
    let mut fetched_b = 0;
    let (mut user_a, mut system_a) = (Duration::ZERO, Duration::ZERO);
    for run in 0..PULL_RUNS {
        let root = work.join(format!("store-{run}"));
        let mut config = StoreConfig::new(&root);
        config.registries = RegistriesConfig::load(yaml)?;
        let store = ImageStore::open(config).await?;
        let (started, cpu) = (Instant::now(), cpu_time());
        store.pull(&a, None).await?;
        pull_a.push(started.elapsed());
        let now = cpu_time();
        user_a += now.0 - cpu.0;
        system_a += now.1 - cpu.1;
        let started = Instant::now();
        let outcome = store.pull(&b, None).await?;
        pull_b.push(started.elapsed());
        fetched_b = outcome.layers_fetched;
        drop(store);
        std::fs::remove_dir_all(&root)?;
    }
    println!(
        "{}",
        pull_a.report("pull+unpack bench-a (3 layers, fresh store)")
    );
    println!(
        "  = {:.0} MB/s of compressed layers ({:.2} MB)",
        a_bytes as f64 / 1e6 / pull_a.median().as_secs_f64(),
        a_bytes as f64 / 1e6
    );
    println!(
        "  CPU per pull: {:.1} ms in skiff (HTTP, sha256, decompress, tar), {:.1} ms in the kernel (TCP, ext4, syncfs)",
        user_a.as_secs_f64() * 1e3 / PULL_RUNS as f64,
        system_a.as_secs_f64() * 1e3 / PULL_RUNS as f64
    );
    println!(
        "{}",
        pull_b.report("pull bench-b after bench-a (2 of 3 layers shared)")
    );
    println!("  layers fetched for bench-b: {fetched_b} of 3");
    for layer in Fixture::BenchB.load()?.manifest()?.layers {
        let gets = regs.open.blob_get_count(&layer.digest)?;
        println!(
            "  blob {} fetched {gets} times in {PULL_RUNS} runs",
            &layer.digest.hex()[..12]
        );
    }
    Ok(())
}

async fn cri(regs: &TestRegistries, yaml: &Path, work: &Path) -> anyhow::Result<()> {
    let skiff = skiff_binary()?;
    let socket = work.join("cri.sock");
    let mut command = std::process::Command::new(&skiff);
    command
        .arg("runtime")
        .arg("--data-dir")
        .arg(work.join("data"))
        .arg("--cri-socket")
        .arg(&socket)
        .arg("--private-registry")
        .arg(yaml)
        .env("RUST_LOG", "warn");
    let process = GuardedChild::spawn("skiff runtime", command)?;
    let pid = process.id();
    let mut client = connect(&socket).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "skiff runtime idle RSS, no images: {} KiB (anon {} KiB, PSS {} KiB)",
        kib(rss_kib(pid)),
        kib(rss_anon_kib(pid)),
        kib(pss_kib(pid))
    );

    let names = push_small_images(&regs.open, IMAGES)?;
    let mut pulls = Samples::default();
    for name in &names {
        let started = Instant::now();
        client
            .images
            .pull_image(cri_v1::PullImageRequest {
                image: Some(spec(name)),
                ..Default::default()
            })
            .await?;
        pulls.push(started.elapsed());
    }
    println!(
        "{}",
        pulls.report("CRI PullImage of a small 2-layer image (1 layer shared)")
    );

    let mut status = Samples::default();
    for i in 0..2_000 {
        let name = &names[i % names.len()];
        let started = Instant::now();
        let found = client
            .images
            .image_status(cri_v1::ImageStatusRequest {
                image: Some(spec(name)),
                verbose: false,
            })
            .await?
            .into_inner()
            .image
            .is_some();
        status.push(started.elapsed());
        if !found {
            bail!("ImageStatus did not find {name}");
        }
    }
    println!(
        "{}",
        status.report(&format!("CRI ImageStatus with {IMAGES} images"))
    );
    let mut list = Samples::default();
    for _ in 0..300 {
        let started = Instant::now();
        let count = client
            .images
            .list_images(cri_v1::ListImagesRequest::default())
            .await?
            .into_inner()
            .images
            .len();
        list.push(started.elapsed());
        if count < IMAGES {
            bail!("ListImages returned {count} images");
        }
    }
    println!(
        "{}",
        list.report(&format!("CRI ListImages with {IMAGES} images"))
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    println!(
        "skiff runtime idle RSS, {IMAGES} images: {} KiB (anon {} KiB, PSS {} KiB)",
        kib(rss_kib(pid)),
        kib(rss_anon_kib(pid)),
        kib(pss_kib(pid))
    );
    drop(process);
    Ok(())
}

fn spec(image: &str) -> cri_v1::ImageSpec {
    cri_v1::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

fn kib(v: Option<u64>) -> String {
    v.map_or_else(|| "?".into(), |v| v.to_string())
}

/// Pushes `count` images sharing busybox-free base layer, each with a layer
/// of its own, and returns their references.
fn push_small_images(registry: &TestRegistry, count: usize) -> anyhow::Result<Vec<String>> {
    let base = LayerBuilder::new()
        .file("etc/base", "shared")
        .build(Compression::Gzip);
    let mut names = Vec::with_capacity(count);
    for i in 0..count {
        let own = LayerBuilder::new()
            .file("etc/which", format!("image {i}"))
            .build(Compression::Gzip);
        let image = ImageBuilder::new().layer(base.clone()).layer(own).build();
        let name = format!("bench/small-{i}:v1");
        registry.push(&image, &name)?;
        names.push(format!("{}/{name}", registry.host()));
    }
    Ok(names)
}

async fn connect(socket: &Path) -> anyhow::Result<CriClient> {
    let endpoint = format!("unix://{}", socket.display());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match skiff_cri::client::connect(&endpoint, Duration::from_secs(2)).await {
            Ok(client) => return Ok(client),
            Err(err) if Instant::now() > deadline => {
                return Err(err).context("connecting to skiff runtime");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// `skiff` from the same target directory, release profile.
fn skiff_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n == "release" || n == "debug")
        })
        .context("cannot find the target directory")?;
    let skiff = target.join("skiff");
    if !skiff.is_file() {
        bail!(
            "{} is missing: run `cargo build --release --bin skiff` first",
            skiff.display()
        );
    }
    Ok(skiff)
}
