//! The runtime's view of one pod: its sandboxes and containers (any
//! attempt), newest first, read through CRI by the pod UID label. Every
//! sync starts from here, which is also how a restarted kubelet re-adopts
//! running pods: restart counts and spec hashes come back from the
//! containers' annotations.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, SystemTime};

use k8s_cri::v1 as cri;
use tonic::Status;

use super::containers::{
    HASH_ANNOTATION, RESTART_COUNT_ANNOTATION, TERMINATION_MESSAGE_PATH_ANNOTATION,
    TERMINATION_MESSAGE_POLICY_ANNOTATION,
};
use super::cri::{CONTAINER_NAME_LABEL, Cri};

/// The most of a termination message kubelet reads (4 KiB).
const MAX_TERMINATION_MESSAGE: u64 = 4096;
/// The most of the log tail `FallbackToLogsOnError` takes.
const MAX_LOG_TAIL_BYTES: u64 = 2048;
/// The most log lines `FallbackToLogsOnError` takes.
const MAX_LOG_TAIL_LINES: usize = 80;

/// A sandbox of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    /// Its ID.
    pub id: String,
    /// Its attempt (0 for the first).
    pub attempt: u32,
    /// Whether it is ready.
    pub ready: bool,
    /// Creation, ns since the epoch.
    pub created_at: i64,
    /// Its IP, once the network is set up.
    pub ip: Option<String>,
}

/// One container instance of the pod.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    /// What ContainerStatus says.
    pub status: cri::ContainerStatus,
    /// Its sandbox.
    pub sandbox_id: String,
    /// The container's name in the pod spec.
    pub name: String,
    /// The restart count it was created with.
    pub restart_count: i32,
    /// The spec hash it was created with.
    pub hash: String,
    /// The termination message, once exited.
    pub termination_message: String,
}

/// ns since the epoch as a time.
pub fn from_nanos(ns: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

impl ContainerInfo {
    /// Its ID.
    pub fn id(&self) -> &str {
        &self.status.id
    }

    fn state(&self) -> i32 {
        self.status.state
    }

    /// Whether its process runs.
    pub fn running(&self) -> bool {
        self.state() == cri::ContainerState::ContainerRunning as i32
    }

    /// Whether it ran and exited.
    pub fn exited(&self) -> bool {
        self.state() == cri::ContainerState::ContainerExited as i32
    }

    /// Its exit code (meaningful once exited).
    pub fn exit_code(&self) -> i32 {
        self.status.exit_code
    }

    /// When it exited.
    pub fn finished_at(&self) -> SystemTime {
        from_nanos(self.status.finished_at)
    }

    /// When it started.
    pub fn started_at(&self) -> SystemTime {
        from_nanos(self.status.started_at)
    }
}

/// The pod as the runtime has it.
#[derive(Debug, Clone, Default)]
pub struct PodSnapshot {
    /// Its sandboxes, newest first.
    pub sandboxes: Vec<SandboxInfo>,
    /// Its containers in every sandbox, newest first.
    pub containers: Vec<ContainerInfo>,
}

impl PodSnapshot {
    /// Reads the pod with `uid` from the runtime.
    pub async fn read(cri: &Cri, uid: &str) -> Result<PodSnapshot, Status> {
        let mut sandboxes = Vec::new();
        for sandbox in cri.list_pod_sandboxes(Some(uid)).await? {
            let ready = sandbox.state == cri::PodSandboxState::SandboxReady as i32;
            let ip = if ready {
                match cri.pod_sandbox_status(&sandbox.id).await {
                    Ok(status) => status.network.map(|n| n.ip).filter(|ip| !ip.is_empty()),
                    Err(status) if status.code() == tonic::Code::NotFound => continue,
                    Err(status) => return Err(status),
                }
            } else {
                None
            };
            sandboxes.push(SandboxInfo {
                attempt: sandbox.metadata.as_ref().map_or(0, |m| m.attempt),
                id: sandbox.id,
                ready,
                created_at: sandbox.created_at,
                ip,
            });
        }
        sandboxes.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.attempt)));
        let mut containers = Vec::new();
        for container in cri.list_containers(uid).await? {
            let status = match cri.container_status(&container.id).await {
                Ok(status) => status,
                Err(status) if status.code() == tonic::Code::NotFound => continue,
                Err(status) => return Err(status),
            };
            containers.push(container_info(container, status));
        }
        containers.sort_by(|a, b| {
            (b.status.created_at, b.restart_count).cmp(&(a.status.created_at, a.restart_count))
        });
        Ok(PodSnapshot {
            sandboxes,
            containers,
        })
    }

    /// The newest sandbox.
    pub fn sandbox(&self) -> Option<&SandboxInfo> {
        self.sandboxes.first()
    }

    /// The instances of container `name`, newest first.
    pub fn instances<'s>(
        &'s self,
        name: &str,
    ) -> impl Iterator<Item = &'s ContainerInfo> + use<'s> {
        let name = name.to_owned();
        self.containers.iter().filter(move |c| c.name == name)
    }

    /// The newest instance of `name`.
    pub fn current(&self, name: &str) -> Option<&ContainerInfo> {
        self.instances(name).next()
    }

    /// The instance before the newest.
    pub fn previous(&self, name: &str) -> Option<&ContainerInfo> {
        self.instances(name).nth(1)
    }

    /// The newest instance of `name` in sandbox `sandbox_id`.
    pub fn in_sandbox(&self, name: &str, sandbox_id: &str) -> Option<&ContainerInfo> {
        self.instances(name).find(|c| c.sandbox_id == sandbox_id)
    }

    /// The pod's IP (its newest ready sandbox's).
    pub fn pod_ip(&self) -> Option<&str> {
        self.sandbox()
            .filter(|s| s.ready)
            .and_then(|s| s.ip.as_deref())
    }
}

fn container_info(container: cri::Container, status: cri::ContainerStatus) -> ContainerInfo {
    let annotation = |key: &str| status.annotations.get(key).cloned().unwrap_or_default();
    let name = status
        .labels
        .get(CONTAINER_NAME_LABEL)
        .cloned()
        .or_else(|| status.metadata.as_ref().map(|m| m.name.clone()))
        .unwrap_or_default();
    let restart_count = annotation(RESTART_COUNT_ANNOTATION)
        .parse()
        .ok()
        .or_else(|| {
            status
                .metadata
                .as_ref()
                .and_then(|m| i32::try_from(m.attempt).ok())
        })
        .unwrap_or(0);
    let exited = status.state == cri::ContainerState::ContainerExited as i32;
    let termination_message = if exited {
        termination_message(&status)
    } else {
        String::new()
    };
    ContainerInfo {
        sandbox_id: container.pod_sandbox_id,
        name,
        restart_count,
        hash: annotation(HASH_ANNOTATION),
        termination_message,
        status,
    }
}

/// The message the container left at its `terminationMessagePath`, or
/// (`FallbackToLogsOnError`, failed, nothing written) its log's tail.
fn termination_message(status: &cri::ContainerStatus) -> String {
    let path = status
        .annotations
        .get(TERMINATION_MESSAGE_PATH_ANNOTATION)
        .map(String::as_str)
        .unwrap_or_default();
    let mut message = String::new();
    if !path.is_empty()
        && let Some(mount) = status.mounts.iter().find(|m| m.container_path == path)
    {
        message = read_head(Path::new(&mount.host_path), MAX_TERMINATION_MESSAGE);
    }
    let fallback = status
        .annotations
        .get(TERMINATION_MESSAGE_POLICY_ANNOTATION)
        .is_some_and(|p| p == "FallbackToLogsOnError");
    if message.is_empty() && fallback && status.exit_code != 0 && !status.log_path.is_empty() {
        message = log_tail(Path::new(&status.log_path));
    }
    message
}

fn read_head(path: &Path, max: u64) -> String {
    let mut bytes = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(max).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The last lines of a CRI log file, without their timestamp, stream and
/// tag fields.
fn log_tail(path: &Path) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    // Lines carry ~40 bytes of prefix: read generously, then trim.
    let start = len.saturating_sub(MAX_LOG_TAIL_BYTES * 4);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let mut out = String::new();
    for line in lines.iter().rev().take(MAX_LOG_TAIL_LINES).rev() {
        let mut fields = line.splitn(4, ' ');
        let (_ts, _stream, tag, msg) = (fields.next(), fields.next(), fields.next(), fields.next());
        out.push_str(msg.unwrap_or_default());
        if tag != Some("P") {
            out.push('\n');
        }
    }
    let bytes = out.as_bytes();
    let cut = bytes.len().saturating_sub(MAX_LOG_TAIL_BYTES as usize);
    String::from_utf8_lossy(&bytes[cut..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tails_drop_the_cri_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(
            &log,
            "2024-01-01T00:00:00.1Z stdout F hello\n2024-01-01T00:00:00.2Z stderr P par\n2024-01-01T00:00:00.3Z stderr F tial\n",
        )
        .unwrap();
        assert_eq!(log_tail(&log), "hello\npartial\n");
    }

    #[test]
    fn termination_messages_come_from_the_mounted_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("msg");
        std::fs::write(&file, "bye").unwrap();
        let status = cri::ContainerStatus {
            state: cri::ContainerState::ContainerExited as i32,
            exit_code: 1,
            annotations: [(
                TERMINATION_MESSAGE_PATH_ANNOTATION.to_owned(),
                "/dev/termination-log".to_owned(),
            )]
            .into(),
            mounts: vec![cri::Mount {
                container_path: "/dev/termination-log".into(),
                host_path: file.display().to_string(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(termination_message(&status), "bye");
    }
}
