//! The first cluster end to end: `skiff server` with its built-in agent on a
//! pod network of its own, images from the local test registry, driven by
//! the real kubectl 1.32 the way k3s users drive their clusters.
//!
//! Every test starts its own one-node [`Cluster`]; checks poll with
//! deadlines and fail with what kubectl and the server said.
//!
//! # Layout
//!
//! - [`deployments`]: Deployments to Ready pods answering on their IPs,
//!   `get nodes -o wide`, a Service's Endpoints, scale, `set image`,
//!   rollout history, undo, restart, pause and resume, deletion with the
//!   ReplicaSets and pods.
//! - [`events`]: `kubectl get events` and `kubectl describe` tell a pod's story.
//! - [`streams`]: `logs -f`, `exec` (also `-it` through a pseudo-terminal),
//!   `run -i` (attach), `port-forward`, `cp`.
//! - [`failures`]: CrashLoopBackOff with a growing back-off, liveness restarts.
//! - [`config`]: ConfigMaps, Secrets, the downward API and the
//!   ServiceAccount volume inside pods.
//! - [`jobs`]: Jobs run to completion.
//! - [`lifecycle`]: init containers, ErrImagePull/ImagePullBackOff,
//!   OOMKilled, graceful termination with preStop.
//! - [`scheduling`]: Pending pods and kube-scheduler's reasons; retries
//!   when the node changes.
//! - [`restart`]: a server restart leaves the pods running.
//! - [`pty`]: a pseudo-terminal for `kubectl exec -it`.

mod config;
mod deployments;
mod events;
mod failures;
mod jobs;
mod lifecycle;
mod pty;
mod restart;
mod scheduling;
mod streams;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_tests::{AgentSetup, Fixture, NetworkLease, SkiffServer, TestRegistries, clean_node};

/// Time for pods to start: the first pull of an image included.
const POD_TIMEOUT: Duration = Duration::from_secs(90);

/// The web server the Deployments run: busybox httpd serving `/` on 8080
/// (so `/etc/skiff-release` tells the image version), under a shell that
/// exits on SIGTERM (PID 1 would otherwise ignore it and every deletion
/// would wait the whole grace period). It says `started` once per run.
const HTTPD: &str = "echo started; trap 'exit 0' TERM; httpd -f -p 8080 -h / & wait";

/// A shell loop that sleeps until SIGTERM.
const SLEEP_FOREVER: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// A one-node cluster: `skiff server` with its agent, the test registries,
/// the pod network lease. Dropping it kills the server and cleans the node
/// (the pods' shims, mounts and cgroups).
pub struct Cluster {
    /// The server; [`SkiffServer::restart_after_kill`] replaces it in place.
    pub server: SkiffServer,
    /// The registries images come from.
    pub regs: TestRegistries,
    /// The node's bridge and pod CIDR.
    pub lease: Arc<NetworkLease>,
    /// The node's name.
    pub node_name: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a cluster whose node is `node_name` and waits for it Ready.
    pub fn start(node_name: &str) -> Cluster {
        let regs = TestRegistries::start().expect("start the test registries");
        let dir = tempfile::tempdir().expect("temporary directory");
        let registries = dir.path().join("registries.yaml");
        regs.write_registries_yaml(&registries)
            .expect("write registries.yaml");
        let lease = Arc::new(NetworkLease::take().expect("lease a test network"));
        let server_dir = dir.path().join("server");
        let agent = AgentSetup {
            network: lease.clone(),
            registries: Some(registries),
            node_name: node_name.to_string(),
        };
        let server = match SkiffServer::start_cluster(&server_dir, agent) {
            Ok(server) => server,
            Err(err) => {
                clean_node(&server_dir);
                panic!("skiff server did not bring its node up: {err}");
            }
        };
        Cluster {
            server,
            regs,
            lease,
            node_name: node_name.to_string(),
            dir,
        }
    }

    /// The server's directory (its `--run-dir` is `run/` below it).
    pub fn server_dir(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    /// A scratch directory of the test's own.
    pub fn scratch(&self) -> PathBuf {
        let scratch = self.dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).expect("create the scratch directory");
        scratch
    }

    /// A fixture's reference on the open registry.
    pub fn image(&self, fixture: Fixture) -> String {
        fixture.reference(&self.regs.open)
    }

    /// The last lines the server logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.server.log_text();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(80);
        lines[start..].join("\n")
    }

    /// Panics with `what`, the server's last log lines attached.
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- skiff server log (tail) ---\n{}",
            self.log_tail()
        );
    }

    /// `kubectl <args>`, whatever its outcome.
    pub fn run(&self, args: &[&str]) -> Output {
        self.server.kubectl(args).expect("run kubectl")
    }

    /// stdout of `kubectl <args>`, which must succeed.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let output = self.run(args);
        self.succeeded(args, output)
    }

    /// stdout of `kubectl <args>` fed `stdin`, which must succeed.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        let output = self
            .server
            .kubectl_with(args, Some(stdin), &[])
            .expect("run kubectl");
        self.succeeded(args, output)
    }

    fn succeeded(&self, args: &[&str], output: Output) -> String {
        if !output.status.success() {
            self.fail(&format!(
                "kubectl {} failed ({}):\nstdout: {}\nstderr: {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `kubectl apply -f -` of `manifest`.
    pub fn apply(&self, manifest: &str) -> String {
        self.kubectl_stdin(&["apply", "-f", "-"], manifest)
    }

    /// `kubectl <args> -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.kubectl(&all);
        serde_json::from_str(&text).unwrap_or_else(|err| {
            panic!("kubectl {} printed no JSON ({err}):\n{text}", all.join(" "))
        })
    }

    /// Polls `check` every 200 ms until it returns `Ok`; after `timeout`
    /// fails with its last complaint.
    pub fn eventually<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            match check() {
                Ok(value) => return value,
                Err(complaint) if Instant::now() > deadline => {
                    self.fail(&format!("{what}: not so after {timeout:?}: {complaint}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Waits until exactly `count` pods match `selector`, all Running and
    /// Ready and none being deleted; returns them sorted by name.
    pub fn ready_pods(&self, selector: &str, count: usize) -> Vec<Value> {
        self.eventually(
            &format!("{count} Running and Ready pods with {selector}"),
            POD_TIMEOUT,
            || {
                let list = self.json(&["get", "pods", "-l", selector]);
                let pods = items(&list);
                let summary: Vec<String> = pods.iter().map(pod_summary).collect();
                let ready = pods
                    .iter()
                    .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                    .filter(|p| p["status"]["phase"] == "Running" && condition(p, "Ready"))
                    .count();
                if pods.len() == count && ready == count {
                    let mut pods = pods;
                    pods.sort_by_key(|p| name(p).to_string());
                    Ok(pods)
                } else {
                    Err(format!("pods: {summary:?}"))
                }
            },
        )
    }

    /// `kubectl wait --for=condition=Ready pod/<pod>`.
    pub fn wait_pod_ready(&self, pod: &str) {
        let timeout = format!("--timeout={}s", POD_TIMEOUT.as_secs());
        let out = self.run(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            &timeout,
        ]);
        if !out.status.success() {
            let describe = self.run(&["describe", "pod", pod]);
            self.fail(&format!(
                "pod {pod} not Ready: {}\n--- kubectl describe pod {pod} ---\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&describe.stdout)
            ));
        }
    }

    /// `kubectl rollout status deployment/<name>`, which must report the
    /// rollout done.
    pub fn rollout_status(&self, deployment: &str) {
        let timeout = format!("--timeout={}s", POD_TIMEOUT.as_secs());
        let target = format!("deployment/{deployment}");
        let out = self.run(&["rollout", "status", &target, &timeout]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let pods = self.run(&["get", "pods", "-o", "wide"]);
            self.fail(&format!(
                "kubectl rollout status {target} failed: {}{}\n--- pods ---\n{}",
                stdout,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&pods.stdout)
            ));
        }
        assert!(
            stdout.contains(&format!(
                "deployment \"{deployment}\" successfully rolled out"
            )),
            "rollout status said: {stdout}"
        );
    }

    /// Checks the pod IP lies in the node's pod CIDR and returns it.
    pub fn pod_ip(&self, pod: &Value) -> String {
        let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
        let cidr = self.lease.pod_cidr();
        let prefix = cidr.trim_end_matches("0/24");
        assert!(
            ip.starts_with(prefix),
            "pod {} has IP {ip:?}, not in the node's pod CIDR {cidr}",
            name(pod)
        );
        ip.to_string()
    }

    /// Waits until busybox httpd in `pod` serves `path` with status 200;
    /// returns the body.
    pub fn http_from_pod(&self, pod: &Value, path: &str) -> String {
        let ip = self.pod_ip(pod);
        let addr: SocketAddr = format!("{ip}:8080").parse().expect("pod IP");
        self.eventually(
            &format!("pod {} answering HTTP on {addr}", name(pod)),
            Duration::from_secs(20),
            || http_get(addr, path),
        )
    }

    /// `kubectl <args>` in the background with stdout read line by line.
    pub fn background(&self, args: &[&str]) -> Background {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(self.server.kubeconfig())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        with_parent_death_signal(&mut command);
        let mut child = command.spawn().expect("spawn kubectl");
        let lines = read_lines(child.stdout.take().expect("kubectl stdout"));
        Background {
            args: args.join(" "),
            child,
            lines,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The server first, so that nothing restarts what the cleanup stops;
        // then the pods it left (the lease removes the bridge, the TempDir
        // the files).
        let parents = pod_cgroup_parents(&self.server_dir().join("run"));
        self.server.kill_9();
        clean_node(&self.server_dir());
        // The kubelet's pod cgroups (`/kubepods/<qos>/pod<uid>`), which
        // clean_node does not know.
        for parent in parents {
            remove_cgroup_tree(&parent);
        }
    }
}

/// The `--cgroup-parent` of every shim serving a pod under `run_dir`.
fn pod_cgroup_parents(run_dir: &Path) -> Vec<String> {
    let run_dir = run_dir.display().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok())
        .filter_map(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let value = |flag: &str| {
                args.iter()
                    .position(|a| a == flag)
                    .and_then(|i| args.get(i + 1))
            };
            let ours = value("--pod-dir").is_some_and(|dir| dir.starts_with(&run_dir));
            ours.then(|| value("--cgroup-parent").cloned()).flatten()
        })
        .filter(|parent| parent.trim_matches('/').contains('/'))
        .collect()
}

/// Kills every process in the cgroup `parent` and below (in any
/// hierarchy), then removes those cgroups. The pods' containers live
/// there, outside anything clean_node knows.
fn remove_cgroup_tree(parent: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut dirs = Vec::new();
    for hierarchy in hierarchies.filter_map(|e| e.ok()) {
        let root = hierarchy.path().join(parent.trim_start_matches('/'));
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            let Ok(children) = std::fs::read_dir(&dir) else {
                continue;
            };
            dirs.push(dir);
            for child in children.filter_map(|e| e.ok()) {
                if child.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(child.path());
                }
            }
        }
    }
    // Deepest first.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for _ in 0..40 {
        let mut alive = false;
        for dir in &dirs {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                alive = true;
                // SAFETY: kill has no memory effects.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    for dir in &dirs {
        // Killed tasks may take a moment to leave.
        for _ in 0..20 {
            if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// A kubectl running in the background (`logs -f`, `port-forward`),
/// killed on drop.
pub struct Background {
    args: String,
    child: Child,
    lines: Receiver<String>,
}

impl Background {
    /// The next line of stdout within `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Reads lines until one satisfies `matches` (within `timeout`); the
    /// lines read, the last one matching. Panics with kubectl's stderr
    /// otherwise.
    pub fn read_until(&mut self, timeout: Duration, matches: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = matches(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        let stderr = self.stop();
        panic!(
            "kubectl {} did not print the expected line within {timeout:?}; stdout: {seen:?}; stderr: {stderr}",
            self.args
        );
    }

    /// Kills kubectl; returns its stderr.
    pub fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        stderr
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills the child if the test process dies first.
fn with_parent_death_signal(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the
    // parent; this runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn read_lines(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `GET <path>` over HTTP/1.0; the body of a 200 answer.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|err| format!("connect to {addr}: {err}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|err| err.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|err| format!("send to {addr}: {err}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|err| format!("read from {addr}: {err}"))?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer from {addr}: {answer:?}"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("{addr}{path} answered {status:?}"));
    }
    Ok(body.to_string())
}

/// The `items` of a list.
pub fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

/// An object's name.
pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// Whether the pod's condition `kind` is True.
pub fn condition(pod: &Value, kind: &str) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|conds| {
        conds
            .iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

/// The status of the pod's first container.
pub fn container_status(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

/// A pod in a word, for failure messages.
pub fn pod_summary(pod: &Value) -> String {
    let status = container_status(pod);
    format!(
        "{} phase={} ready={} deleting={} restarts={} state={}",
        name(pod),
        pod["status"]["phase"],
        condition(pod, "Ready"),
        !pod["metadata"]["deletionTimestamp"].is_null(),
        status["restartCount"],
        status["state"]
    )
}

/// The rows of a kubectl table, keyed by the header's column names.
/// Columns are cut at the header's offsets (kubectl aligns them), so
/// values with spaces (OS-IMAGE, MESSAGE) stay whole; headers are split on
/// runs of two or more spaces (`LAST SEEN` is one column).
pub fn table(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"));
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let mut columns: Vec<(usize, String)> = Vec::new();
    let mut start = None;
    let mut spaces = 0;
    for (i, ch) in header.char_indices() {
        if ch == ' ' {
            spaces += 1;
            continue;
        }
        if start.is_none() || spaces >= 2 {
            if let Some(s) = start {
                columns.push((s, header[s..i].trim().to_string()));
            }
            start = Some(i);
        }
        spaces = 0;
    }
    if let Some(s) = start {
        columns.push((s, header[s..].trim().to_string()));
    }
    lines
        .map(|line| {
            columns
                .iter()
                .enumerate()
                .map(|(i, (offset, column))| {
                    let end = columns.get(i + 1).map_or(line.len(), |(next, _)| *next);
                    let value = line.get(*offset..end.min(line.len())).unwrap_or_default();
                    (column.clone(), value.trim().to_string())
                })
                .collect()
        })
        .collect()
}

/// The value of `Field:` in `kubectl describe` output (first match).
pub fn described<'a>(text: &'a str, field: &str) -> Option<&'a str> {
    let label = format!("{field}:");
    text.lines()
        .map(str::trim_start)
        .find_map(|line| line.strip_prefix(label.as_str()))
        .map(str::trim)
}

/// The Events table at the end of `kubectl describe` output.
pub fn described_events(text: &str) -> Vec<BTreeMap<String, String>> {
    match text.split_once("\nEvents:") {
        Some((_, events)) => table(events),
        None => Vec::new(),
    }
}

/// Asserts `text` contains `needle`.
#[track_caller]
pub fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

/// The events of the default namespace (core/v1, as kubectl shows them).
pub fn events(cluster: &Cluster) -> Vec<Value> {
    items(&cluster.json(&["get", "events"]))
}

/// Events about `kind`/`object` with `reason`.
pub fn events_for<'a>(
    events: &'a [Value],
    kind: &str,
    object: &str,
    reason: &str,
) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["involvedObject"]["kind"] == kind
                && e["involvedObject"]["name"] == object
                && e["reason"] == reason
        })
        .collect()
}

/// Messages of events, for failure messages.
pub fn event_lines(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}/{} {}: {}",
                e["type"].as_str().unwrap_or_default(),
                e["involvedObject"]["kind"].as_str().unwrap_or_default(),
                e["involvedObject"]["name"].as_str().unwrap_or_default(),
                e["reason"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The host's `PRETTY_NAME` (what a node reports as its OS image).
pub fn host_os_image() -> String {
    let release = std::fs::read_to_string(Path::new("/etc/os-release")).unwrap_or_default();
    release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default()
}
