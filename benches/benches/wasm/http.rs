//! Requests/s to a wasi:http component: one pod runs the `hello-http`
//! component, which the shim serves on port 8080 of every address of the
//! pod's network namespace (a fresh store per request). This process sends
//! it HTTP/1.1 GETs over keep-alive connections, to the pod IP on the
//! benchmark's own pod network, for a fixed time from a fixed number of
//! connections: requests/s and the latency of each request.
//!
//! The client is a few lines over tokio's `TcpStream` (a request written
//! by hand, the response read by Content-Length or chunks), and it runs on
//! the same machine as the server: both share its CPUs.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use k8s_cri::v1 as cri;
use skiff_benches::{Samples, Usage, usage};
use skiff_tests::wasm_http::HELLO_HTTP_BODY;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::guests::Guest;
use super::node::{self, Node};

/// The port the shim serves on when the container declares none.
const PORT: u16 = 8080;
/// Concurrent connections of each load run, one run each.
pub const CONNECTIONS: [usize; 2] = [1, 8];
/// Load before each measured run, not counted.
pub const WARMUP: Duration = Duration::from_secs(1);
/// Measured time of each run.
pub const DURATION: Duration = Duration::from_secs(5);
/// How long the component may take to answer its first request.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Upper bound of a connect plus one request and its response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed request, before the next one on a new connection.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Pause between attempts while waiting for the first answer.
const READY_POLL: Duration = Duration::from_millis(5);

/// Everything measured on the http pod.
#[derive(Debug)]
pub struct HttpFigures {
    /// Where the component was served.
    pub address: SocketAddr,
    /// From the CreateContainer call to the first 200 response (this
    /// component is not in the compile cache yet).
    pub first_response: Duration,
    /// One load run per entry of [`CONNECTIONS`].
    pub runs: Vec<LoadFigures>,
    /// The shim's memory after the load.
    pub shim: Usage,
    /// The guest process's memory after the load (it serves the requests).
    pub guest: Usage,
    /// How many shims and guests were found (one each expected).
    pub processes: (usize, usize),
}

/// One load run.
#[derive(Debug, Default)]
pub struct LoadFigures {
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Latency of every request sent and answered as expected within the
    /// measured [`DURATION`].
    pub latency: Samples,
    /// Requests counted in `latency`.
    pub requests: u64,
    /// Failed requests (connect errors, timeouts, unexpected responses),
    /// warm-up included.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Connections opened (`connections` unless some were lost).
    pub connects: u64,
}

impl LoadFigures {
    /// Requests answered per second of the measured time.
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / DURATION.as_secs_f64()
    }
}

/// Runs the component in a pod, waits until it answers, then one load run
/// per entry of [`CONNECTIONS`]; removes the pod whatever happened.
pub async fn measure(node: &Node, guest: &Guest) -> anyhow::Result<HttpFigures> {
    let config = node::pod_config(&node.logs, "http");
    let pod = node::run_pod(&node.cri, &config).await?;
    let outcome = Box::pin(serve_and_load(node, guest, &pod, &config)).await;
    let removed = node::remove_pod(&node.cri, &pod).await;
    let figures = outcome?;
    removed?;
    Ok(figures)
}

async fn serve_and_load(
    node: &Node,
    guest: &Guest,
    pod: &str,
    config: &cri::PodSandboxConfig,
) -> anyhow::Result<HttpFigures> {
    let address = SocketAddr::new(pod_ip(node, pod).await?, PORT);
    let mut rt = node.cri.runtime.clone();
    let t0 = Instant::now();
    let id = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(node::container_config("server", &guest.image)),
            sandbox_config: Some(config.clone()),
        })
        .await
        .context("CreateContainer server")?
        .into_inner()
        .container_id;
    rt.start_container(cri::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .context("StartContainer server")?;
    if let Err(err) = wait_ready(address).await {
        bail!(
            "{address} did not answer within {READY_DEADLINE:?}: {err}\n  container log: {:?}\n  \
             shim log:\n{}",
            std::fs::read_to_string(node::log_file(config, "server")).unwrap_or_default(),
            node.shim_log_tail(pod, 15)
        );
    }
    let first_response = t0.elapsed();
    let mut runs = Vec::new();
    for connections in CONNECTIONS {
        runs.push(load(address, connections).await?);
    }
    let processes = node.pod_processes();
    Ok(HttpFigures {
        address,
        first_response,
        runs,
        shim: processes.shims.iter().map(|&pid| usage(pid)).sum(),
        guest: processes.guests.iter().map(|&pid| usage(pid)).sum(),
        processes: (processes.shims.len(), processes.guests.len()),
    })
}

/// The pod's IP, as PodSandboxStatus reports it.
async fn pod_ip(node: &Node, pod: &str) -> anyhow::Result<IpAddr> {
    let status = node
        .cri
        .runtime
        .clone()
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.into(),
            verbose: false,
        })
        .await
        .context("PodSandboxStatus http")?
        .into_inner()
        .status
        .context("PodSandboxStatus http: no status")?;
    let ip = status
        .network
        .map(|n| n.ip)
        .context("PodSandboxStatus http: no network status")?;
    ip.parse()
        .with_context(|| format!("PodSandboxStatus http: pod IP {ip:?}"))
}

/// Sends one GET on a new connection at a time until one is answered as
/// expected; the last failure when none is within [`READY_DEADLINE`].
async fn wait_ready(address: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + READY_DEADLINE;
    let request = request(address);
    let mut buffers = Buffers::default();
    loop {
        let attempt = async {
            let mut stream = connect(address).await?;
            exchange(&mut stream, &request, &mut buffers).await
        };
        let error = match tokio::time::timeout(Duration::from_secs(1), attempt).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(err)) => err,
            Err(_) => "no response within 1 s".to_string(),
        };
        if Instant::now() > deadline {
            return Err(error);
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// When a run's requests count.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Requests sent before this are warm-up.
    from: Instant,
    /// No request is sent after this; one answered after it is not counted.
    until: Instant,
}

/// `connections` clients sending requests one after another on their
/// connection, for [`WARMUP`] and then [`DURATION`].
async fn load(address: SocketAddr, connections: usize) -> anyhow::Result<LoadFigures> {
    let from = Instant::now() + WARMUP;
    let window = Window {
        from,
        until: from + DURATION,
    };
    let mut clients = JoinSet::new();
    for _ in 0..connections {
        clients.spawn(client(address, window));
    }
    let mut figures = LoadFigures {
        connections,
        ..Default::default()
    };
    while let Some(tally) = clients.join_next().await {
        let tally = tally.map_err(|err| anyhow!("an HTTP client task failed: {err}"))?;
        for latency in tally.latencies {
            figures.latency.push(latency);
            figures.requests += 1;
        }
        figures.errors += tally.errors;
        figures.connects += tally.connects;
        if figures.first_error.is_none() {
            figures.first_error = tally.first_error;
        }
    }
    Ok(figures)
}

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    connects: u64,
}

/// One keep-alive connection's requests, one after another, until the
/// window ends; a failed request costs the connection.
async fn client(address: SocketAddr, window: Window) -> Tally {
    let request = request(address);
    let mut buffers = Buffers::default();
    let mut tally = Tally::default();
    let mut connection: Option<BufReader<TcpStream>> = None;
    loop {
        let sent = Instant::now();
        if sent >= window.until {
            return tally;
        }
        let attempt = async {
            let stream = match &mut connection {
                Some(stream) => stream,
                None => {
                    tally.connects += 1;
                    connection.insert(connect(address).await?)
                }
            };
            exchange(stream, &request, &mut buffers).await
        };
        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no response within {REQUEST_TIMEOUT:?}")),
        };
        let answered = Instant::now();
        match outcome {
            Ok(keep_alive) => {
                if sent >= window.from && answered <= window.until {
                    tally.latencies.push(answered - sent);
                }
                if !keep_alive {
                    connection = None;
                }
            }
            Err(err) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(err);
                connection = None;
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

/// The GET every request sends (keep-alive is HTTP/1.1's default).
fn request(address: SocketAddr) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {address}\r\nUser-Agent: skiff-bench\r\n\r\n").into_bytes()
}

async fn connect(address: SocketAddr) -> Result<BufReader<TcpStream>, String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|err| format!("connecting to {address}: {err}"))?;
    stream
        .set_nodelay(true)
        .map_err(|err| format!("TCP_NODELAY: {err}"))?;
    Ok(BufReader::new(stream))
}

/// Reused between requests.
#[derive(Debug, Default)]
struct Buffers {
    line: String,
    body: Vec<u8>,
}

/// Sends `request` and reads its response: status 200 and
/// [`HELLO_HTTP_BODY`] expected. Returns whether the connection stays open.
async fn exchange(
    stream: &mut BufReader<TcpStream>,
    request: &[u8],
    buffers: &mut Buffers,
) -> Result<bool, String> {
    stream
        .get_mut()
        .write_all(request)
        .await
        .map_err(|err| format!("sending the request: {err}"))?;
    let head = read_head(stream, &mut buffers.line).await?;
    buffers.body.clear();
    match head.length {
        Length::Chunked => read_chunks(stream, buffers).await?,
        Length::Bytes(n) => {
            buffers.body.resize(n, 0);
            stream
                .read_exact(&mut buffers.body)
                .await
                .map_err(|err| format!("reading a {n}-byte body: {err}"))?;
        }
    }
    if head.status != 200 {
        return Err(format!(
            "status {}: {:?}",
            head.status,
            String::from_utf8_lossy(&buffers.body)
        ));
    }
    if buffers.body != HELLO_HTTP_BODY.as_bytes() {
        return Err(format!(
            "unexpected body {:?}",
            String::from_utf8_lossy(&buffers.body)
        ));
    }
    Ok(!head.close)
}

/// How the body's end is known.
#[derive(Debug)]
enum Length {
    Bytes(usize),
    Chunked,
}

/// A response's status line and headers, as far as the client needs them.
#[derive(Debug)]
struct Head {
    status: u16,
    length: Length,
    /// `Connection: close`.
    close: bool,
}

async fn read_head(stream: &mut BufReader<TcpStream>, line: &mut String) -> Result<Head, String> {
    read_line(stream, line).await?;
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP/1.1 status line: {line:?}"))?;
    let mut head = Head {
        status,
        length: Length::Bytes(0),
        close: false,
    };
    loop {
        read_line(stream, line).await?;
        if line.is_empty() {
            return Ok(head);
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("not a header: {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| format!("Content-Length {value:?}"))?;
            head.length = Length::Bytes(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(format!("Transfer-Encoding {value:?}"));
            }
            head.length = Length::Chunked;
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
}

/// A chunked body into `buffers.body`, trailers skipped.
async fn read_chunks(
    stream: &mut BufReader<TcpStream>,
    buffers: &mut Buffers,
) -> Result<(), String> {
    loop {
        read_line(stream, &mut buffers.line).await?;
        let size = buffers.line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| format!("chunk size {size:?}"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                read_line(stream, &mut buffers.line).await?;
                if buffers.line.is_empty() {
                    return Ok(());
                }
            }
        }
        let start = buffers.body.len();
        buffers.body.resize(start + size + 2, 0);
        stream
            .read_exact(&mut buffers.body[start..])
            .await
            .map_err(|err| format!("reading a {size}-byte chunk: {err}"))?;
        if !buffers.body.ends_with(b"\r\n") {
            return Err("a chunk not followed by CRLF".into());
        }
        buffers.body.truncate(start + size);
    }
}

/// One line into `line`, without its CRLF; the end of the stream is an
/// error.
async fn read_line(stream: &mut BufReader<TcpStream>, line: &mut String) -> Result<(), String> {
    line.clear();
    let n = stream
        .read_line(line)
        .await
        .map_err(|err| format!("reading the response: {err}"))?;
    if n == 0 {
        return Err("the server closed the connection".into());
    }
    let end = line.trim_end_matches(['\r', '\n']).len();
    line.truncate(end);
    Ok(())
}
