//! Logs, exec, attach, port-forward and node proxies through the apiserver
//! to a fake kubelet: a TLS server with a serving certificate from the
//! server CA that demands a client certificate from the client CA, as
//! Skiff's kubelet API does. Logs must stream, upgrades must pass bytes
//! through untouched, and failures must read as kube-apiserver's.

use std::convert::Infallible;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use skiff_server::tls::ClusterTls;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::support::TestServer;

/// A request the fake kubelet received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path_and_query: String,
    /// The client certificate's common name.
    client: String,
    headers: HeaderMap,
}

/// A kubelet API that streams logs, echoes upgraded streams and answers
/// `/stats/summary`.
struct FakeKubelet {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Lets the log stream send its second line.
    release: Arc<Notify>,
}

type FakeBody = BoxBody<Bytes, Infallible>;

impl FakeKubelet {
    async fn start(tls: &ClusterTls) -> FakeKubelet {
        let pair = tls
            .serving_for("fake-kubelet", &["127.0.0.1".to_owned()])
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(tls.client_ca.cert_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .unwrap();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let (seen_, release_) = (seen.clone(), release.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, seen, release) = (acceptor.clone(), seen_.clone(), release_.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .map(|cert| common_name(cert.as_ref()))
                        .unwrap_or_default();
                    let service = service_fn(move |request| {
                        handle(request, client.clone(), seen.clone(), release.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        FakeKubelet {
            port,
            seen,
            release,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn common_name(der: &[u8]) -> String {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn handle(
    mut request: Request<Incoming>,
    client: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    release: Arc<Notify>,
) -> Result<Response<FakeBody>, Infallible> {
    let path = request.uri().path().to_owned();
    seen.lock().unwrap().push(Seen {
        method: request.method().to_string(),
        path_and_query: request
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        client,
        headers: request.headers().clone(),
    });
    if path.starts_with("/containerLogs/") {
        let frames = futures::stream::unfold(0, move |step| {
            let release = release.clone();
            async move {
                match step {
                    0 => Some((Ok(Frame::data(Bytes::from("line 1\n"))), 1)),
                    1 => {
                        release.notified().await;
                        Some((Ok(Frame::data(Bytes::from("line 2\n"))), 2))
                    }
                    _ => None,
                }
            }
        });
        let mut response = Response::new(StreamBody::new(frames).boxed());
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        return Ok(response);
    }
    if ["/exec/", "/attach/", "/portForward/"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        let websocket = request
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"));
        let protocol = request
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|p| p.to_str().ok())
            .and_then(|p| p.split(',').next())
            .unwrap_or("")
            .trim()
            .to_owned();
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else {
                return;
            };
            let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
        });
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade");
        response = if websocket {
            response
                .header(header::UPGRADE, "websocket")
                .header("Sec-WebSocket-Accept", "fake-accept")
                .header("Sec-WebSocket-Protocol", protocol)
        } else {
            response
                .header(header::UPGRADE, "SPDY/3.1")
                .header("X-Stream-Protocol-Version", "v4.channel.k8s.io")
        };
        return Ok(response.body(Empty::new().boxed()).unwrap());
    }
    if path == "/stats/summary" {
        return Ok(Response::new(
            Full::new(Bytes::from(r#"{"node":{"nodeName":"n1"}}"#)).boxed(),
        ));
    }
    let mut response = Response::new(Full::new(Bytes::from("not found")).boxed());
    *response.status_mut() = StatusCode::NOT_FOUND;
    Ok(response)
}

async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new("kubectl");
    command.arg("--kubeconfig").arg(kubeconfig).args(args);
    command.output().await.expect("kubectl on PATH")
}

fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "kubectl succeeded");
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

async fn apply(server: &TestServer, name: &str, object: &Value) {
    let path = server.dir.path().join(format!("{name}.json"));
    std::fs::write(&path, object.to_string()).unwrap();
    succeeded(
        &kubectl(
            &server.kubeconfig,
            &["create", "-f", path.to_str().unwrap()],
        )
        .await,
    );
}

/// A node whose kubelet listens on 127.0.0.1:`port`.
async fn node(server: &TestServer, name: &str, port: u16) {
    apply(
        server,
        name,
        &json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": name } }),
    )
    .await;
    let status = json!({ "status": {
        "addresses": [{ "type": "InternalIP", "address": "127.0.0.1" }, { "type": "Hostname", "address": name }],
        "daemonEndpoints": { "kubeletEndpoint": { "Port": port } },
    } });
    succeeded(
        &kubectl(
            &server.kubeconfig,
            &[
                "patch",
                "node",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ],
        )
        .await,
    );
}

/// A pod on `node` ("" for none) with `containers`.
async fn pod(server: &TestServer, name: &str, node: &str, containers: &[&str]) {
    let containers: Vec<Value> = containers
        .iter()
        .map(|c| json!({ "name": c, "image": "busybox" }))
        .collect();
    let mut spec = json!({ "containers": containers });
    if !node.is_empty() {
        spec["nodeName"] = json!(node);
    }
    apply(
        server,
        name,
        &json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name }, "spec": spec }),
    )
    .await;
}

/// A server with node `n1` served by a fake kubelet and pod `web` on it.
async fn cluster() -> (TestServer, ClusterTls, FakeKubelet) {
    let server = TestServer::apiserver_only().await;
    let tls = ClusterTls::load_or_create(&server.dir.path().join("data/server/tls"), &[]).unwrap();
    let kubelet = FakeKubelet::start(&tls).await;
    node(&server, "n1", kubelet.port).await;
    pod(&server, "web", "n1", &["web"]).await;
    (server, tls, kubelet)
}

/// Sends `head` (a request without body) to the apiserver as the admin,
/// over TLS, and reads the response head; the connection stays open.
async fn raw_request(
    server: &TestServer,
    tls: &ClusterTls,
    head: &str,
) -> (String, tokio_rustls::client::TlsStream<TcpStream>) {
    let text = std::fs::read_to_string(&server.kubeconfig).unwrap();
    let kubeconfig: Value = serde_yaml_ng::from_str(&text).unwrap();
    let url = kubeconfig["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap();
    let address = url.trim_start_matches("https://").to_owned();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(tls.server_ca.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.admin.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(tls.admin.key_pem.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let tcp = TcpStream::connect(&address).await.unwrap();
    let mut stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    stream
        .write_all(format!("{head}Host: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("a response in 10 s")
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed in the response head: {}",
            String::from_utf8_lossy(&response)
        );
        response.push(byte[0]);
    }
    (String::from_utf8(response).unwrap(), stream)
}

/// Writes `bytes` and reads as many back.
async fn echo(stream: &mut tokio_rustls::client::TlsStream<TcpStream>, bytes: &[u8]) -> Vec<u8> {
    stream.write_all(bytes).await.unwrap();
    let mut back = vec![0u8; bytes.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
        .await
        .expect("the echo in 10 s")
        .unwrap();
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_follow_streams_from_the_kubelet_as_lines_come() {
    let (server, _tls, kubelet) = cluster().await;
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .args(["logs", "-f", "web", "--tail=5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the first line while the kubelet holds the stream open")
        .unwrap();
    assert_eq!(first.as_deref(), Some("line 1"));
    kubelet.release.notify_one();
    let second = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.as_deref(), Some("line 2"));
    assert_eq!(lines.next_line().await.unwrap(), None);
    assert!(child.wait().await.unwrap().success());

    let seen = kubelet.seen();
    let logs = seen
        .iter()
        .find(|s| s.path_and_query.starts_with("/containerLogs/"))
        .unwrap();
    assert_eq!(logs.method, "GET");
    assert_eq!(
        logs.path_and_query,
        "/containerLogs/default/web/web?follow=true&tailLines=5"
    );
    assert_eq!(logs.client, "kube-apiserver-kubelet-client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_port_forward_upgrades_pass_through_byte_for_byte() {
    let (server, tls, kubelet) = cluster().await;
    // SPDY, as kubectl's fallback sends it: a POST asking to switch.
    let (head, mut stream) = raw_request(
        &server,
        &tls,
        "POST /api/v1/namespaces/default/pods/web/exec?command=sh&command=-c&command=echo%20hi&stdin=true&stdout=true&tty=true HTTP/1.1\r\n\
         Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
         Authorization: Bearer not-for-the-kubelet\r\nContent-Length: 0\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: spdy/3.1"), "{head}");
    assert!(
        lower.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    let frame: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    assert_eq!(echo(&mut stream, &frame).await, frame);
    assert_eq!(
        echo(&mut stream, b"\x80\x03\x00\x01").await,
        b"\x80\x03\x00\x01"
    );
    drop(stream);

    // WebSocket, as kubectl 1.32 tries first; port-forward tunnels SPDY in it.
    let (head, mut stream) = raw_request(
        &server,
        &tls,
        "GET /api/v1/namespaces/default/pods/web/portforward HTTP/1.1\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: spdy/3.1+portforward.k8s.io"),
        "{head}"
    );
    assert_eq!(echo(&mut stream, b"\x82\x05hello").await, b"\x82\x05hello");
    drop(stream);

    let (head, mut stream) = raw_request(
        &server,
        &tls,
        "GET /api/v1/namespaces/default/pods/web/attach?stdout=true&stderr=true HTTP/1.1\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io\r\n",
    )
    .await;
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: v5.channel.k8s.io"),
        "{head}"
    );
    assert_eq!(echo(&mut stream, b"attached").await, b"attached");

    let seen = kubelet.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path_and_query.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/exec/default/web/web?command=sh&command=-c&command=echo+hi&input=1&output=1&tty=1",
            "/portForward/default/web",
            "/attach/default/web/web?error=1&output=1",
        ]
    );
    assert_eq!(seen[0].method, "POST");
    assert!(
        seen.iter()
            .all(|s| s.client == "kube-apiserver-kubelet-client")
    );
    assert!(!seen[0].headers.contains_key(header::AUTHORIZATION));
    assert_eq!(
        seen[0].headers["x-stream-protocol-version"],
        "v4.channel.k8s.io"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_proxy_reaches_the_kubelet() {
    let (server, _tls, kubelet) = cluster().await;
    let out = kubectl(
        &server.kubeconfig,
        &["get", "--raw", "/api/v1/nodes/n1/proxy/stats/summary"],
    )
    .await;
    let summary: Value = serde_json::from_str(&succeeded(&out)).unwrap();
    assert_eq!(summary["node"]["nodeName"], "n1");
    assert_eq!(kubelet.seen()[0].path_and_query, "/stats/summary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_read_as_kube_apiservers() {
    let (server, _tls, _kubelet) = cluster().await;
    let config = &server.kubeconfig;
    // A pod not scheduled yet: empty logs, no exec.
    pod(&server, "pending", "", &["web"]).await;
    assert_eq!(succeeded(&kubectl(config, &["logs", "pending"]).await), "");
    let out = kubectl(
        config,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/pending/exec?command=ls",
        ],
    )
    .await;
    assert_eq!(
        failed(&out),
        "Error from server (BadRequest): pod pending does not have a host assigned"
    );
    // Exec needs an upgrade.
    let out = kubectl(
        config,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/web/exec?command=ls",
        ],
    )
    .await;
    assert_eq!(
        failed(&out),
        "Error from server (BadRequest): Upgrade request required"
    );
    // Several containers: one must be named.
    pod(&server, "multi", "n1", &["a", "b"]).await;
    let out = kubectl(
        config,
        &["get", "--raw", "/api/v1/namespaces/default/pods/multi/log"],
    )
    .await;
    assert_eq!(
        failed(&out),
        "Error from server (BadRequest): a container name must be specified for pod multi, choose one of: [a b]"
    );
    let out = kubectl(
        config,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/multi/log?container=c",
        ],
    )
    .await;
    assert_eq!(
        failed(&out),
        "Error from server (BadRequest): container c is not valid for pod multi"
    );
    // A kubelet that is not there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    node(&server, "down", port).await;
    pod(&server, "stranded", "down", &["web"]).await;
    let out = kubectl(config, &["logs", "stranded"]).await;
    assert_eq!(
        failed(&out),
        format!(
            "Error from server: Get \"https://127.0.0.1:{port}/containerLogs/default/stranded/web\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
    let out = kubectl(
        config,
        &["get", "--raw", "/api/v1/nodes/down/proxy/metrics"],
    )
    .await;
    assert_eq!(
        failed(&out),
        format!(
            "Error from server (ServiceUnavailable): error trying to reach service: dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
    let out = kubectl(
        config,
        &["get", "--raw", "/api/v1/namespaces/default/pods/nosuch/log"],
    )
    .await;
    assert_eq!(
        failed(&out),
        "Error from server (NotFound): pods \"nosuch\" not found"
    );
}
