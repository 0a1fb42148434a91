//! Wasm guests on the pod's network, in a real shim: a `wasi:http`
//! component served over HTTP on the container's port, and a command
//! component listening through `wasi:sockets`. The pod's network namespace
//! gets a veth to a peer namespace (10.250.0.2 in the pod, 10.250.0.1 in
//! the peer); clients connect from threads that joined one of the two.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, setns};
use oci_spec::runtime::{
    LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, ProcessBuilder, RootBuilder,
    SpecBuilder, UserBuilder,
};
use skiff_shims::PodNamespace;
use skiff_shims::client::CreateOptions;
use skiff_tests::wasm_http::{
    HELLO_HTTP_BODY, HELLO_HTTP_LOG_LINE, SOCKET_GREETING, SOCKET_READY_LINE, hello_http_component,
    socket_server_component,
};

use crate::harness::Pod;

/// The pod's address on the veth.
const POD_IP: &str = "10.250.0.2";
/// The peer namespace's address.
const PEER_IP: &str = "10.250.0.1";

/// A peer network namespace joined to the pod's by a veth; deleted on drop
/// (with the veth).
struct PeerNetwork {
    name: String,
}

impl PeerNetwork {
    fn connect(pod: &Pod) -> Result<Self> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "skiff-wh-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name])?;
        let peer = PeerNetwork { name };
        let pod_ns = format!("--net={}", pod_net(pod).display());
        let in_pod = |args: &[&str]| {
            let mut all = vec![pod_ns.as_str(), "ip"];
            all.extend_from_slice(args);
            run("nsenter", &all)
        };
        in_pod(&["link", "set", "lo", "up"])?;
        in_pod(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "peer0", "netns", &peer.name,
        ])?;
        in_pod(&["addr", "add", &format!("{POD_IP}/24"), "dev", "eth0"])?;
        in_pod(&["link", "set", "eth0", "up"])?;
        let in_peer = |args: &[&str]| {
            let mut all = vec!["-n", peer.name.as_str()];
            all.extend_from_slice(args);
            run("ip", &all)
        };
        in_peer(&["addr", "add", &format!("{PEER_IP}/24"), "dev", "peer0"])?;
        in_peer(&["link", "set", "peer0", "up"])?;
        in_peer(&["link", "set", "lo", "up"])?;
        Ok(peer)
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for PeerNetwork {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {args:?}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn pod_net(pod: &Pod) -> PathBuf {
    pod.path().join("ns").join(PodNamespace::Net.name())
}

/// Runs `work` on a thread inside the network namespace at `netns`.
async fn in_netns<T: Send + 'static>(
    netns: &Path,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let netns = netns.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || {
            let file = File::open(&netns)?;
            setns(&file, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("joining {}", netns.display()))?;
            work()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the client thread panicked"))?
    })
    .await?
}

/// Everything a TCP server at `address` sends after `request`.
fn exchange(address: SocketAddr, request: &[u8]) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// `GET /` at `address` on a connection of its own: the whole response.
fn http_get(address: SocketAddr) -> Result<String> {
    let host = address.to_string();
    let request = format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    exchange(address, request.as_bytes())
}

/// Writes a Wasm container's rootfs (the module as `/app.wasm`) and bundle,
/// with the annotations the runtime writes.
fn write_bundle(pod: &Pod, id: &str, wasm: &[u8], port: Option<u16>, uid: u32) -> Result<PathBuf> {
    let bundle = pod.path().join("containers").join(id);
    let rootfs = pod.path().join("wasm-rootfs").join(id);
    std::fs::create_dir_all(&bundle)?;
    std::fs::create_dir_all(&rootfs)?;
    for dir in [
        pod.path().to_path_buf(),
        pod.path().join("wasm-rootfs"),
        rootfs.clone(),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::write(rootfs.join("app.wasm"), wasm)?;
    let mut namespaces = Vec::new();
    for (kind, typ) in [
        (PodNamespace::Net, LinuxNamespaceType::Network),
        (PodNamespace::Ipc, LinuxNamespaceType::Ipc),
        (PodNamespace::Uts, LinuxNamespaceType::Uts),
    ] {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .path(pod.path().join("ns").join(kind.name()))
                .build()?,
        );
    }
    let mut annotations: std::collections::HashMap<String, String> = [
        ("io.skiff.engine", "wasm".to_owned()),
        ("io.skiff.wasm.module", "/app.wasm".to_owned()),
        (
            "io.skiff.wasm.cache-dir",
            pod.path().join("wasm-cache").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(port) = port {
        annotations.insert("io.skiff.wasm.port".into(), port.to_string());
    }
    SpecBuilder::default()
        .version("1.0.2")
        .root(RootBuilder::default().path(&rootfs).build()?)
        .process(
            ProcessBuilder::default()
                .args(vec!["/app.wasm".to_string()])
                .env(vec!["PATH=/".to_string()])
                .cwd("/")
                .user(UserBuilder::default().uid(uid).gid(uid).build()?)
                .build()?,
        )
        .linux(
            LinuxBuilder::default()
                .namespaces(namespaces)
                .cgroups_path(pod.cgroup_parent.join(id))
                .build()?,
        )
        .annotations(annotations)
        .build()?
        .save(bundle.join("config.json"))?;
    Ok(bundle)
}

async fn start(pod: &Pod, id: &str, wasm: &[u8], port: Option<u16>, uid: u32) -> Result<()> {
    let bundle = write_bundle(pod, id, wasm, port, uid)?;
    let options = CreateOptions {
        log_path: Some(pod.log_path(id)),
        ..CreateOptions::default()
    };
    pod.client.create(id, &bundle, &options).await?;
    pod.client.start(id).await?;
    Ok(())
}

#[tokio::test]
async fn a_wasi_http_component_serves_on_the_pod_network() -> Result<()> {
    let pod = Pod::start().await?;
    let peer = PeerNetwork::connect(&pod)?;
    // Not root: the guest binds its (unprivileged) port after dropping to
    // the container's user. No port annotation: the default, 8080.
    start(&pod, "web", &hello_http_component()?, None, 1000).await?;
    pod.wait_log("web", "Serving HTTP on").await?;

    let on_loopback: SocketAddr = "127.0.0.1:8080".parse()?;
    let on_pod_ip: SocketAddr = format!("{POD_IP}:8080").parse()?;
    let from_pod = in_netns(&pod_net(&pod), move || {
        (0..3)
            .map(|_| http_get(on_loopback))
            .collect::<Result<Vec<_>>>()
    })
    .await?;
    let from_peer = in_netns(&peer.path(), move || {
        (0..2)
            .map(|_| http_get(on_pod_ip))
            .collect::<Result<Vec<_>>>()
    })
    .await?;
    for response in from_pod.iter().chain(&from_peer) {
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains(HELLO_HTTP_BODY), "{response}");
    }
    // Each request's stdout is in the container's log.
    let handled = format!("stdout F {HELLO_HTTP_LOG_LINE}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pod
        .log_records("web")
        .iter()
        .filter(|r| **r == handled)
        .count()
        < 5
    {
        if std::time::Instant::now() > deadline {
            bail!("five requests not logged: {:?}", pod.log_records("web"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    pod.client.signal("web", libc::SIGTERM).await?;
    let state = pod.wait_exit("web").await?;
    assert_eq!(state.exit_code, Some(143), "{}", pod.log("web"));
    assert!(!state.oom_killed);
    let after = in_netns(&pod_net(&pod), move || Ok(http_get(on_loopback).is_err())).await?;
    assert!(after, "still serving after SIGTERM");
    drop(peer);
    pod.teardown().await
}

#[tokio::test]
async fn the_port_annotation_moves_the_server() -> Result<()> {
    let pod = Pod::start().await?;
    let pod_ns = format!("--net={}", pod_net(&pod).display());
    run("nsenter", &[&pod_ns, "ip", "link", "set", "lo", "up"])?;
    start(&pod, "web", &hello_http_component()?, Some(9000), 0).await?;
    pod.wait_log("web", "Serving HTTP on").await?;
    let address: SocketAddr = "127.0.0.1:9000".parse()?;
    let response = in_netns(&pod_net(&pod), move || http_get(address)).await?;
    assert!(response.contains(HELLO_HTTP_BODY), "{response}");
    pod.client.signal("web", libc::SIGTERM).await?;
    assert_eq!(pod.wait_exit("web").await?.exit_code, Some(143));
    pod.teardown().await
}

#[tokio::test]
async fn a_guest_listens_through_wasi_sockets() -> Result<()> {
    let pod = Pod::start().await?;
    let peer = PeerNetwork::connect(&pod)?;
    start(&pod, "sockets", &socket_server_component(9090)?, None, 1000).await?;
    pod.wait_log("sockets", SOCKET_READY_LINE).await?;

    let address: SocketAddr = format!("{POD_IP}:9090").parse()?;
    let greetings = in_netns(&peer.path(), move || {
        (0..2)
            .map(|_| exchange(address, b""))
            .collect::<Result<Vec<_>>>()
    })
    .await?;
    assert_eq!(greetings, [SOCKET_GREETING, SOCKET_GREETING]);
    // The UDP socket is bound in the pod's namespace: port 9090 is 2382.
    let udp = in_netns(&pod_net(&pod), || {
        Ok(std::fs::read_to_string("/proc/thread-self/net/udp")?)
    })
    .await?;
    assert!(udp.contains("00000000:2382"), "{udp}");

    pod.client.signal("sockets", libc::SIGTERM).await?;
    let state = pod.wait_exit("sockets").await?;
    assert_eq!(state.exit_code, Some(143), "{}", pod.log("sockets"));
    drop(peer);
    pod.teardown().await
}
