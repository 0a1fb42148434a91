//! Apiserver benchmark (issue 5): `skiff server --disable-agent` (release)
//! driven over HTTPS with the admin client certificate, as kubectl and
//! controllers drive it — create, get, update (PUT with resourceVersion),
//! list and watch over 10,000 ConfigMaps with 1, 4 and 8 concurrent
//! clients (p50/p99 and throughput); the delay of one write to 50
//! watchers; server RSS idle and with 10,000 objects; start-to-ready time
//! on an existing datastore.
//!
//! Run: `./scripts/bench.sh --bench apiserver`.

// A benchmark reports on stdout.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use serde_json::{Value, json};
use skiff_benches::{Samples, fmt, rss_kib};
use skiff_tests::server::SkiffServer;

/// Objects per run.
const OBJECTS: usize = 10_000;
/// Watchers in the fan-out run.
const WATCHERS: usize = 50;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

/// A client of the server: URL and an HTTPS client with the admin identity.
#[derive(Clone)]
struct Api {
    url: String,
    http: reqwest::Client,
}

impl Api {
    fn from_kubeconfig(path: &std::path::Path) -> anyhow::Result<Api> {
        let text = std::fs::read_to_string(path)?;
        let field = |name: &str| -> anyhow::Result<String> {
            text.lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix(&format!("{name}: "))
                        .map(str::to_owned)
                })
                .with_context(|| format!("{name} in the kubeconfig"))
        };
        let decode = |name: &str| -> anyhow::Result<Vec<u8>> {
            Ok(base64::engine::general_purpose::STANDARD.decode(field(name)?)?)
        };
        let ca = decode("certificate-authority-data")?;
        let cert = decode("client-certificate-data")?;
        let key = decode("client-key-data")?;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(c?)?;
        }
        let chain = rustls::pki_types::CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Api {
            url: field("server")?,
            http,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        anyhow::ensure!(
            status.is_success(),
            "{path}: {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        Ok(serde_json::from_slice(&bytes)?)
    }
}

fn configmap(i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": format!("cm-{i:05}"), "labels": { "bench": "yes", "shard": (i % 8).to_string() } },
        "data": { "payload": "x".repeat(900) },
    })
}

const BASE: &str = "/api/v1/namespaces/default/configmaps";

/// Runs `op` over the objects with `clients` concurrent clients.
async fn run_clients<F, Fut>(name: &str, clients: usize, op: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            for i in (c..OBJECTS).step_by(clients) {
                let t0 = Instant::now();
                op(i).await?;
                samples.push(t0.elapsed());
            }
            anyhow::Ok(samples)
        }));
    }
    let mut all = Samples::default();
    for task in tasks {
        for d in task.await??.durations() {
            all.push(*d);
        }
    }
    let wall = started.elapsed();
    println!(
        "  {name:<7} {clients} clients: {:>7.0}/s  p50 {}  p99 {}",
        OBJECTS as f64 / wall.as_secs_f64(),
        fmt(all.median()),
        fmt(all.quantile(0.99))
    );
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let mut server = SkiffServer::start(&dir.path().join("server"))?;
    println!(
        "apiserver: skiff server --disable-agent, SQLite datastore; {OBJECTS} ConfigMaps of ~1 KiB"
    );
    println!("  ready on a new datastore: {}", fmt(started.elapsed()));
    let api = Api::from_kubeconfig(server.kubeconfig())?;
    api.call(reqwest::Method::GET, "/api/v1/namespaces/default", None)
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "  RSS idle: {:.1} MiB",
        rss_kib(server.pid()).unwrap_or(0) as f64 / 1024.0
    );

    for clients in [1, 4, 8] {
        println!(" {clients} client(s):");
        let a = api.clone();
        run_clients("create", clients, move |i| {
            let a = a.clone();
            async move {
                a.call(reqwest::Method::POST, BASE, Some(&configmap(i)))
                    .await?;
                Ok(())
            }
        })
        .await?;
        let a = api.clone();
        run_clients("get", clients, move |i| {
            let a = a.clone();
            async move {
                a.call(reqwest::Method::GET, &format!("{BASE}/cm-{i:05}"), None)
                    .await?;
                Ok(())
            }
        })
        .await?;
        let a = api.clone();
        run_clients("update", clients, move |i| {
            let a = a.clone();
            async move {
                let path = format!("{BASE}/cm-{i:05}");
                let mut obj = a.call(reqwest::Method::GET, &path, None).await?;
                obj["data"]["payload"] = json!("y".repeat(900));
                a.call(reqwest::Method::PUT, &path, Some(&obj)).await?;
                Ok(())
            }
        })
        .await?;
        let t0 = Instant::now();
        let mut count = 0;
        let mut next: Option<String> = None;
        loop {
            let path = match &next {
                Some(token) => format!("{BASE}?limit=500&continue={token}"),
                None => format!("{BASE}?limit=500"),
            };
            let page = api.call(reqwest::Method::GET, &path, None).await?;
            count += page["items"].as_array().map_or(0, Vec::len);
            match page["metadata"]["continue"].as_str() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => break,
            }
        }
        println!("  list    {count} in pages of 500: {}", fmt(t0.elapsed()));
        let t0 = Instant::now();
        let all = api.call(reqwest::Method::GET, BASE, None).await?;
        println!(
            "  list    {} at once: {}",
            all["items"].as_array().map_or(0, Vec::len),
            fmt(t0.elapsed())
        );
        if clients == 8 {
            println!(
                "  RSS with {OBJECTS} objects: {:.1} MiB",
                rss_kib(server.pid()).unwrap_or(0) as f64 / 1024.0
            );
        }
        let a = api.clone();
        run_clients("delete", clients, move |i| {
            let a = a.clone();
            async move {
                a.call(reqwest::Method::DELETE, &format!("{BASE}/cm-{i:05}"), None)
                    .await?;
                Ok(())
            }
        })
        .await?;
    }

    watch_fan_out(&api).await?;

    // Ready time on an existing datastore holding 10,000 objects.
    let a = api.clone();
    run_clients("refill", 8, move |i| {
        let a = a.clone();
        async move {
            a.call(reqwest::Method::POST, BASE, Some(&configmap(i)))
                .await?;
            Ok(())
        }
    })
    .await?;
    let t0 = Instant::now();
    server.restart_after_kill()?;
    println!(
        "  ready after kill -9 on a datastore with {OBJECTS} objects: {} (includes kubectl's own start)",
        fmt(t0.elapsed())
    );
    let ready_line = server
        .log_text()
        .lines()
        .rev()
        .find(|l| l.contains("apiserver ready"))
        .map(str::to_owned)
        .unwrap_or_default();
    if let Some(ms) = ready_line.split("ready_ms=").nth(1) {
        println!(
            "  server's own start-to-ready: {} ms",
            ms.split_whitespace().next().unwrap_or("?")
        );
    }
    let api = Api::from_kubeconfig(server.kubeconfig())?;
    api.call(reqwest::Method::GET, BASE, None).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "  RSS after restart with {OBJECTS} objects, one list served: {:.1} MiB",
        rss_kib(server.pid()).unwrap_or(0) as f64 / 1024.0
    );
    Ok(())
}

/// 50 watchers on ConfigMaps; 200 updates; the delay from each update's
/// answer to its event at every watcher.
async fn watch_fan_out(api: &Api) -> anyhow::Result<()> {
    const WRITES: usize = 200;
    let created = api
        .call(reqwest::Method::POST, BASE, Some(&configmap(99_999)))
        .await?;
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_owned();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    for _ in 0..WATCHERS {
        let response = api
            .http
            .get(format!("{}{BASE}?watch=true&resourceVersion={rv}", api.url))
            .send()
            .await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut response = response;
            let mut buffer = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.extend_from_slice(&chunk);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    if let Ok(event) = serde_json::from_slice::<Value>(&line) {
                        let rv = event["object"]["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned();
                        let _ = tx.send((rv, Instant::now()));
                    }
                }
            }
        });
    }
    drop(tx);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = format!("{BASE}/cm-99999");
    let mut sent = Vec::new();
    let t0 = Instant::now();
    for i in 0..WRITES {
        let mut obj = api.call(reqwest::Method::GET, &path, None).await?;
        obj["data"]["payload"] = json!(format!("{i}"));
        let written = api.call(reqwest::Method::PUT, &path, Some(&obj)).await?;
        sent.push((
            written["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            Instant::now(),
        ));
    }
    let mut delays = Samples::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut received = 0;
    while received < WRITES * WATCHERS && Instant::now() < deadline {
        let Ok(Some((rv, at))) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await
        else {
            break;
        };
        if let Some((_, acked)) = sent.iter().find(|(s, _)| *s == rv) {
            delays.push(at.saturating_duration_since(*acked));
            received += 1;
        }
    }
    println!(
        "  watch   {WATCHERS} watchers x {WRITES} updates: {received} events delivered in {}; delay after the write's answer p50 {} p99 {}",
        fmt(t0.elapsed()),
        fmt(delays.median()),
        fmt(delays.quantile(0.99))
    );
    api.call(reqwest::Method::DELETE, &path, None).await?;
    Ok(())
}
