//! Namespaces for the root tests: a fresh "node" namespace per test (the
//! test body runs on a thread that unshared it, and every thread or process
//! it starts inherits it), pod namespaces pinned on files as the runtime pins
//! them, and TCP servers and clients inside them.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::network::{BridgeConfig, BridgeNetwork, PodAttachment, PortMapping};

/// The node's address on its uplink to the `outside` namespace.
pub const NODE_IP: &str = "192.168.77.1";
/// The address of a host outside the node.
pub const OUTSIDE_IP: &str = "192.168.77.2";

/// Runs `body` on a thread inside a new network namespace with `lo` up.
pub fn in_node_netns<T: Send>(body: impl FnOnce(&Node) -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET).expect("unshare the node netns");
                run("ip", &["link", "set", "lo", "up"]);
                let node = Node {
                    dir: tempfile::tempdir().expect("tempdir"),
                };
                body(&node)
            })
            .join()
            .expect("the test body panicked")
    })
}

/// The current test's node: a scratch directory for pins and IPAM state.
pub struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    /// The directory pins and state live in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A bridge network config for this node with the given pod CIDR.
    pub fn config(&self, cidr: &str) -> BridgeConfig {
        BridgeConfig {
            pod_cidr: Some(cidr.parse().expect("cidr")),
            ..BridgeConfig::new(self.dir().join("ipam"))
        }
    }

    /// A bridge network for this node.
    pub fn network(&self, cidr: &str) -> BridgeNetwork {
        BridgeNetwork::new(self.config(cidr)).expect("bridge network")
    }

    /// A pod namespace pinned on a file of this node's directory.
    pub fn pod(&self, name: &str, port_mappings: Vec<PortMapping>) -> Pod {
        let pin = NetnsPin::new(&self.dir().join(format!("{name}.netns")));
        Pod {
            attachment: PodAttachment {
                sandbox_id: format!("sandbox-{name}"),
                netns: pin.path.clone(),
                name: name.to_owned(),
                namespace: "default".into(),
                port_mappings,
            },
            pin,
        }
    }

    /// Adds an `outside` namespace linked to the node by a veth pair:
    /// [`NODE_IP`] on the node side, [`OUTSIDE_IP`] outside.
    pub fn outside(&self) -> NetnsPin {
        let pin = NetnsPin::new(&self.dir().join("outside.netns"));
        let path = pin.path.to_str().expect("utf-8 path");
        run(
            "ip",
            &[
                "link", "add", "uplink", "type", "veth", "peer", "name", "up1", "netns", path,
            ],
        );
        run(
            "ip",
            &["addr", "add", &format!("{NODE_IP}/24"), "dev", "uplink"],
        );
        run("ip", &["link", "set", "uplink", "up"]);
        for args in [
            vec![
                "ip",
                "addr",
                "add",
                &format!("{OUTSIDE_IP}/24"),
                "dev",
                "up1",
            ],
            vec!["ip", "link", "set", "up1", "up"],
            vec!["ip", "link", "set", "lo", "up"],
        ] {
            pin.run(&args);
        }
        pin
    }
}

/// A pod namespace and how the network sees it.
pub struct Pod {
    /// What `setup` and `teardown` take.
    pub attachment: PodAttachment,
    /// Its namespace.
    pub pin: NetnsPin,
}

/// A network namespace kept alive by a bind mount on a file.
pub struct NetnsPin {
    /// The file.
    pub path: PathBuf,
}

impl NetnsPin {
    /// Creates a namespace and pins it on `path`.
    pub fn new(path: &Path) -> Self {
        File::create(path).expect("create the pin file");
        let target = path.to_owned();
        std::thread::spawn(move || {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).expect("unshare a pod netns");
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .expect("bind-mount the netns");
        })
        .join()
        .expect("pin thread");
        NetnsPin {
            path: path.to_owned(),
        }
    }

    /// Runs a command inside the namespace; panics unless it succeeds.
    pub fn run(&self, args: &[&str]) -> String {
        let net = format!("--net={}", self.path.display());
        let mut full = vec![net.as_str()];
        full.extend_from_slice(args);
        run("nsenter", &full)
    }

    /// Whether a command inside the namespace succeeds.
    pub fn succeeds(&self, args: &[&str]) -> bool {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .args(args)
            .output()
            .expect("run nsenter")
            .status
            .success()
    }

    /// Runs `body` on a thread inside the namespace.
    pub fn enter<T: Send>(&self, body: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = File::open(&self.path).expect("open the pin");
                    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
                    body()
                })
                .join()
                .expect("thread in the netns panicked")
        })
    }

    /// Starts a TCP server inside the namespace that answers each
    /// connection with `<name> saw <peer address>`.
    pub fn serve(&self, name: &str, port: u16) -> Server {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let path = self.path.clone();
        let name = name.to_owned();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let file = File::open(&path).expect("open the pin");
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
            listener.set_nonblocking(true).expect("nonblocking");
            ready_tx.send(()).expect("ready");
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, peer)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = write!(stream, "{name} saw {}", peer.ip());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ready_rx.recv().expect("server ready");
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for NetnsPin {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A TCP server started by [`NetnsPin::serve`]; stops when dropped.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects from the calling thread's namespace and returns what the server
/// said, or the connection error.
pub fn fetch(addr: &str) -> Result<String, std::io::Error> {
    let addr: SocketAddr = addr.parse().expect("socket address");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Runs a command (in the calling thread's namespace); panics unless it
/// succeeds; returns its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whether an interface exists in the calling thread's namespace.
pub fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .expect("run ip")
        .status
        .success()
}

/// `nft -j list table inet skiff` as JSON.
pub fn skiff_table() -> serde_json::Value {
    serde_json::from_str(&run("nft", &["-j", "list", "table", "inet", "skiff"])).expect("nft json")
}

/// The rules of one chain of the skiff table, as JSON objects.
pub fn rules_of(table: &serde_json::Value, chain: &str) -> Vec<serde_json::Value> {
    table["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .filter_map(|object| object.get("rule"))
        .filter(|rule| rule["chain"] == chain)
        .cloned()
        .collect()
}

/// The IPAM allocation files (named after addresses) in a state directory.
pub fn allocated(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ips: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.parse::<std::net::Ipv4Addr>().is_ok())
        .collect();
    ips.sort();
    ips
}
