//! The kubelet API against a real node runtime: who may call it, container
//! logs read from the runtime's CRI log files, and exec, attach and
//! port-forward proxied to the runtime's streaming server over WebSocket
//! and SPDY. Pods are made through the agent's CRI socket with the labels
//! kubelet puts on them; calls go through a plain-TCP relay to the TLS
//! port, as the apiserver's proxy stands between kubectl and a kubelet.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use skiff_cri::streaming::client::{self, SessionIo, Transport};
use skiff_tests::cri::Cri;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{
    APISERVER_CLIENT, Agent, AgentOptions, BUSYBOX, Cluster, assign_pod_cidr_and_wait_ready, get,
    get_streaming, kubelet_port, registered, relay, tls_client, wait_for,
};

const RUNNING: i32 = cri::ContainerState::ContainerRunning as i32;
const EXITED: i32 = cri::ContainerState::ContainerExited as i32;

/// A pod made as kubelet makes it.
struct TestPod {
    id: String,
    config: cri::PodSandboxConfig,
}

async fn run_pod(cri: &Cri, agent: &Agent, name: &str) -> TestPod {
    let uid = format!("uid-{name}");
    let labels = HashMap::from([
        ("io.kubernetes.pod.name".to_owned(), name.to_owned()),
        (
            "io.kubernetes.pod.namespace".to_owned(),
            "default".to_owned(),
        ),
        ("io.kubernetes.pod.uid".to_owned(), uid.clone()),
    ]);
    let config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: uid.clone(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: agent
            .dir
            .join("logs")
            .join(format!("default_{name}_{uid}"))
            .display()
            .to_string(),
        labels,
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: format!("/{}/{name}", agent.lease.bridge()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = cri
        .runtime
        .clone()
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    TestPod { id, config }
}

async fn run_container(cri: &Cri, pod: &TestPod, name: &str, attempt: u32, script: &str) -> String {
    let meta = pod.config.metadata.clone().unwrap();
    let labels = HashMap::from([
        ("io.kubernetes.container.name".to_owned(), name.to_owned()),
        ("io.kubernetes.pod.name".to_owned(), meta.name.clone()),
        (
            "io.kubernetes.pod.namespace".to_owned(),
            meta.namespace.clone(),
        ),
        ("io.kubernetes.pod.uid".to_owned(), meta.uid.clone()),
    ]);
    let config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt,
        }),
        image: Some(cri::ImageSpec {
            image: BUSYBOX.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}/{attempt}.log"),
        labels,
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    };
    let mut runtime = cri.runtime.clone();
    let id = runtime
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .container_id;
    runtime
        .start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    id
}

async fn wait_state(cri: &Cri, id: &str, state: i32) {
    wait_for("a container state", Duration::from_secs(20), || {
        let mut runtime = cri.runtime.clone();
        let id = id.to_owned();
        async move {
            let status = runtime
                .container_status(cri::ContainerStatusRequest {
                    container_id: id,
                    verbose: false,
                })
                .await
                .ok()?
                .into_inner()
                .status?;
            (status.state == state).then_some(())
        }
    })
    .await;
}

/// Stops and removes every pod, so no mount or process outlives the test.
async fn remove_pods(cri: &Cri) {
    let mut runtime = cri.runtime.clone();
    let pods = runtime
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    for pod in pods {
        runtime
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: pod.id.clone(),
            })
            .await
            .unwrap();
        runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: pod.id,
            })
            .await
            .unwrap();
    }
}

/// A node with the busybox image, Ready, and its CRI socket.
async fn ready_node(cluster: &Cluster, name: &str) -> (Agent, Cri, u16) {
    let client = cluster.admin().await;
    let options = AgentOptions {
        busybox: true,
        ..AgentOptions::default()
    };
    let agent = Agent::start(cluster, name, options).await;
    let node = assign_pod_cidr_and_wait_ready(&client, &agent).await;
    let cri = Cri::connect(&agent.cri_socket()).await.unwrap();
    (agent, cri, kubelet_port(&node))
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_apiserver_and_masters_may_call_the_kubelet() {
    let cluster = Cluster::start().await;
    let client = cluster.admin().await;
    let agent = Agent::start(&cluster, "gate", AgentOptions::default()).await;
    let port = kubelet_port(&registered(&client, "gate").await);

    let anonymous = tls_client(&cluster, None);
    assert_eq!(
        get(&anonymous, port, "/healthz").await,
        (401, "Unauthorized\n".into())
    );
    let node_cert = cluster.client_cert("system:node:gate", Some("system:nodes"));
    let node = tls_client(&cluster, Some(&node_cert));
    assert_eq!(
        get(&node, port, "/containerLogs/default/p/c").await,
        (
            403,
            "Forbidden (user=system:node:gate, verb=get, resource=nodes, subresource=proxy)\n"
                .into()
        )
    );
    let apiserver = tls_client(&cluster, Some(&cluster.client_cert(APISERVER_CLIENT, None)));
    assert_eq!(get(&apiserver, port, "/healthz").await, (200, "ok".into()));
    let admin = tls_client(
        &cluster,
        Some(&cluster.client_cert("system:admin", Some("system:masters"))),
    );
    assert_eq!(get(&admin, port, "/healthz").await, (200, "ok".into()));
    assert_eq!(
        get(&apiserver, port, "/runningpods/").await,
        (404, "404 page not found\n".into())
    );

    // Logs of what the runtime does not have: kubelet's answers.
    assert_eq!(
        get(&apiserver, port, "/containerLogs/default/ghost/c").await,
        (404, "pod \"ghost\" does not exist\n".into())
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let account =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}})).unwrap();
    let _ = accounts.create(&PostParams::default(), &account).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pending"},
        "spec": {"nodeName": "gate", "containers": [{"name": "app", "image": "busybox"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(
        get(&apiserver, port, "/containerLogs/default/pending/app").await,
        (
            400,
            "container \"app\" in pod \"pending\" is waiting to start: ContainerCreating\n".into()
        )
    );
    assert_eq!(
        get(&apiserver, port, "/containerLogs/default/pending/other").await,
        (
            404,
            "container \"other\" not found in pod \"pending\"\n".into()
        )
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn container_logs_tail_limit_timestamps_previous_and_follow() {
    let cluster = Cluster::start().await;
    let (agent, cri, port) = ready_node(&cluster, "logs").await;
    let api = tls_client(&cluster, Some(&cluster.client_cert(APISERVER_CLIENT, None)));
    let pod = run_pod(&cri, &agent, "logger").await;
    let first = run_container(&cri, &pod, "app", 0, "echo first; echo oops >&2").await;
    wait_state(&cri, &first, EXITED).await;
    let second = run_container(&cri, &pod, "app", 1, "echo second; exec sleep 3600").await;
    wait_state(&cri, &second, RUNNING).await;
    let base = "/containerLogs/default/logger/app";
    let current = wait_for("the current log", Duration::from_secs(10), || {
        let api = api.clone();
        async move {
            let (status, body) = get(&api, port, base).await;
            (status == 200 && !body.is_empty()).then_some(body)
        }
    })
    .await;
    assert_eq!(current, "second\n");
    assert_eq!(
        get(&api, port, &format!("{base}?previous=true")).await,
        (200, "first\noops\n".into())
    );
    assert_eq!(
        get(&api, port, &format!("{base}?previous=true&tailLines=1")).await,
        (200, "oops\n".into())
    );
    assert_eq!(
        get(&api, port, &format!("{base}?previous=true&limitBytes=3")).await,
        (200, "fir".into())
    );
    let (status, stamped) = get(&api, port, &format!("{base}?previous=true&timestamps=true")).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 2, "{stamped}");
    for (line, text) in lines.iter().zip(["first", "oops"]) {
        let (time, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, text);
        assert!(
            time.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
            "{line}"
        );
        assert!(time.ends_with('Z'), "{line}");
    }
    assert_eq!(
        get(
            &api,
            port,
            &format!("{base}?sinceTime=2999-01-01T00:00:00Z")
        )
        .await,
        (200, String::new())
    );
    assert_eq!(
        get(&api, port, &format!("{base}?follow=maybe")).await.0,
        400
    );

    // follow: lines as they come, and the end once the container exits.
    let counter = run_container(
        &cri,
        &pod,
        "counter",
        0,
        "for i in 1 2 3 4 5; do echo n $i; sleep 0.3; done",
    )
    .await;
    wait_state(&cri, &counter, RUNNING).await;
    let (status, mut body) = get_streaming(
        &api,
        port,
        "/containerLogs/default/logger/counter?follow=true",
    )
    .await;
    assert_eq!(status, 200);
    let mut seen = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(piece) = body.recv().await {
            seen.extend_from_slice(&piece);
        }
    })
    .await;
    assert!(ended.is_ok(), "the followed log did not end: {seen:?}");
    assert_eq!(String::from_utf8_lossy(&seen), "n 1\nn 2\nn 3\nn 4\nn 5\n");
    remove_pods(&cri).await;
    agent.stop().await;
}

/// Collects what a session writes.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<u8>>>);

impl Collected {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl AsyncWrite for Collected {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

async fn exec(
    url: &str,
    stdin: Option<&'static [u8]>,
    transport: Transport,
) -> (i32, String, String) {
    let (out, err) = (Collected::default(), Collected::default());
    let io = SessionIo {
        stdin: stdin.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        stdout: Some(Box::new(out.clone())),
        stderr: Some(Box::new(err.clone())),
        tty: false,
        resize: None,
    };
    let code = tokio::time::timeout(Duration::from_secs(30), client::exec(url, io, transport))
        .await
        .expect("the session ends")
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    (code, out.text(), err.text())
}

async fn fetch_through_port_forward(url: &str, transport: Transport) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let url = url.to_owned();
    let stopping = stop.clone();
    let session = tokio::spawn(async move {
        client::port_forward(&url, vec![(listener, 8080)], transport, stopping).await
    });
    let mut answer = String::new();
    let mut stream = tokio::net::TcpStream::connect(local).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_string(&mut answer))
        .await
        .expect("an answer through the port-forward")
        .unwrap();
    stop.cancel();
    session.await.unwrap().unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_attach_and_port_forward_reach_the_container() {
    let cluster = Cluster::start().await;
    let (agent, cri, port) = ready_node(&cluster, "streams").await;
    let api = tls_client(&cluster, Some(&cluster.client_cert(APISERVER_CLIENT, None)));
    let relay = relay(api, port).await;
    let pod = run_pod(&cri, &agent, "web").await;
    let server = run_container(
        &cri,
        &pod,
        "srv",
        0,
        "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 8080 -h /www",
    )
    .await;
    wait_state(&cri, &server, RUNNING).await;

    let base = format!("http://{relay}");
    // The script writes the page after the container starts.
    let cat = format!(
        "{base}/exec/default/web/srv?command=cat&command=/www/index.html&stdout=1&stderr=1"
    );
    let page = wait_for("the page", Duration::from_secs(10), || {
        let cat = cat.clone();
        async move {
            let (code, out, _) = exec(&cat, None, Transport::WebSocket).await;
            (code == 0).then_some(out)
        }
    })
    .await;
    assert_eq!(page, "hello from web\n");
    let failing = format!(
        "{base}/exec/default/web/srv?command=sh&command=-c&command=echo+bad+%3E%262%3B+exit+3&stdout=1&stderr=1"
    );
    assert_eq!(
        exec(&failing, None, Transport::Spdy).await,
        (3, String::new(), "bad\n".into())
    );
    let echo = format!("{base}/exec/default/web/uid-web/srv?command=cat&stdin=true&stdout=true");
    let (code, out, _) = exec(&echo, Some(b"ping"), Transport::WebSocket).await;
    assert_eq!((code, out.as_str()), (0, "ping"));
    let missing = format!("{base}/exec/default/web/nothing?command=true&stdout=1");
    let io = SessionIo {
        stdout: Some(Box::new(Collected::default())),
        ..SessionIo::default()
    };
    let err = client::exec(&missing, io, Transport::WebSocket)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");

    // The upgrade itself, as a SPDY client sends it: the streaming
    // server's answer comes back as it wrote it.
    let mut raw = tokio::net::TcpStream::connect(relay).await.unwrap();
    raw.write_all(
        b"POST /exec/default/web/srv?command=true&stdout=1 HTTP/1.1\r\nHost: x\r\n\
          Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
          X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
          X-Stream-Protocol-Version: channel.k8s.io\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        raw.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 101 switching protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("upgrade: spdy/3.1\r\n"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: v4.channel.k8s.io\r\n"),
        "{head}"
    );
    assert!(!head.contains("transfer-encoding"), "{head}");
    drop(raw);

    // attach: the container's output from now on, until it exits (an
    // attach session ends in success, as kubelet's does).
    let brief = run_container(&cri, &pod, "brief", 0, "sleep 3; echo from attach; exit 4").await;
    wait_state(&cri, &brief, RUNNING).await;
    let attach = format!("{base}/attach/default/web/brief?stdout=1&stderr=1");
    assert_eq!(
        exec(&attach, None, Transport::WebSocket).await,
        (0, "from attach\n".into(), String::new())
    );

    // port-forward, as kubectl 1.32 (SPDY in WebSocket) and older (SPDY).
    let forward = format!("{base}/portForward/default/web");
    for transport in [Transport::WebSocket, Transport::Spdy] {
        let answer = fetch_through_port_forward(&forward, transport).await;
        assert!(
            answer.starts_with("HTTP/1.1 200 OK"),
            "{transport:?}: {answer}"
        );
        assert!(
            answer.ends_with("hello from web\n"),
            "{transport:?}: {answer}"
        );
    }
    remove_pods(&cri).await;
    agent.stop().await;
}
