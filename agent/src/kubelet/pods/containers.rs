//! The ContainerConfig kubelet asks the runtime for: metadata and restart
//! count, the pulled image, command and args with `$(VAR)` expanded,
//! environment, mounts (volumes and the termination-message file), the
//! log path `<name>/<restartCount>.log`, kubelet's labels and annotations
//! (from which a restarted kubelet rebuilds its state), resources and the
//! security context.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::cri::{CONTAINER_NAME_LABEL, POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL};
use super::expand::expand_all;
use super::resources::linux_resources;
use super::security::container_security;

/// Annotation: hash of the container spec it was created from.
pub const HASH_ANNOTATION: &str = "io.kubernetes.container.hash";
/// Annotation: its restart count.
pub const RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";
/// Annotation: where it writes its termination message.
pub const TERMINATION_MESSAGE_PATH_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePath";
/// Annotation: `File` or `FallbackToLogsOnError`.
pub const TERMINATION_MESSAGE_POLICY_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePolicy";
/// Annotation: the pod's termination grace period.
pub const GRACE_PERIOD_ANNOTATION: &str = "io.kubernetes.pod.terminationGracePeriod";
/// Annotation: the preStop handler, JSON.
pub const PRE_STOP_ANNOTATION: &str = "io.kubernetes.container.preStopHandler";
/// Annotation: the container's ports, JSON.
pub const PORTS_ANNOTATION: &str = "io.kubernetes.container.ports";

/// The default `terminationMessagePath`.
const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// A stable hash of the container spec (resources left out, as kubelet
/// leaves them out), hex: a changed spec (a new image) restarts it.
pub fn container_hash(container: &Container) -> String {
    let mut copy = container.clone();
    copy.resources = None;
    let json = serde_json::to_vec(&copy).unwrap_or_default();
    // FNV-1a, 64 bits: stable across processes and versions.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in json {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:x}")
}

/// `<name>/<restartCount>.log`, relative to the sandbox's log directory.
pub fn log_path(name: &str, restart_count: i32) -> String {
    format!("{name}/{restart_count}.log")
}

/// The labels of a container: its name and its pod's.
pub fn container_labels(pod: &Pod, container: &Container) -> HashMap<String, String> {
    let meta = &pod.metadata;
    HashMap::from([
        (CONTAINER_NAME_LABEL.to_owned(), container.name.clone()),
        (
            POD_NAME_LABEL.to_owned(),
            meta.name.clone().unwrap_or_default(),
        ),
        (
            POD_NAMESPACE_LABEL.to_owned(),
            meta.namespace.clone().unwrap_or_default(),
        ),
        (
            POD_UID_LABEL.to_owned(),
            meta.uid.clone().unwrap_or_default(),
        ),
    ])
}

/// The annotations of a container.
pub fn container_annotations(
    pod: &Pod,
    container: &Container,
    restart_count: i32,
) -> HashMap<String, String> {
    let mut annotations = HashMap::from([
        (HASH_ANNOTATION.to_owned(), container_hash(container)),
        (
            RESTART_COUNT_ANNOTATION.to_owned(),
            restart_count.to_string(),
        ),
        (
            TERMINATION_MESSAGE_PATH_ANNOTATION.to_owned(),
            termination_message_path(container).to_owned(),
        ),
        (
            TERMINATION_MESSAGE_POLICY_ANNOTATION.to_owned(),
            container
                .termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".into()),
        ),
    ]);
    if let Some(grace) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    {
        annotations.insert(GRACE_PERIOD_ANNOTATION.to_owned(), grace.to_string());
    }
    if let Some(pre_stop) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        && let Ok(json) = serde_json::to_string(pre_stop)
    {
        annotations.insert(PRE_STOP_ANNOTATION.to_owned(), json);
    }
    if let Some(ports) = container.ports.as_ref().filter(|p| !p.is_empty())
        && let Ok(json) = serde_json::to_string(ports)
    {
        annotations.insert(PORTS_ANNOTATION.to_owned(), json);
    }
    annotations
}

fn termination_message_path(container: &Container) -> &str {
    container
        .termination_message_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH)
}

fn random_hex() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:08x}", hasher.finish() as u32)
}

/// Creates the file the container's termination message is mounted from:
/// `<pod_dir>/containers/<name>/<random>`, mode 0666.
pub fn termination_message_file(pod_dir: &Path, container: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = pod_dir.join("containers").join(container);
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(random_hex());
    std::fs::File::create(&file)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))?;
    Ok(file)
}

/// What a container config is made from.
#[derive(Debug)]
pub struct ContainerInputs<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The container's spec.
    pub container: &'a Container,
    /// Its restart count (the attempt).
    pub restart_count: i32,
    /// The pulled image (its ID).
    pub image_ref: &'a str,
    /// Its environment.
    pub env: &'a [(String, String)],
    /// Its volume mounts.
    pub mounts: Vec<cri::Mount>,
    /// The termination-message file, if one was made.
    pub termination_file: Option<&'a Path>,
    /// The pod's QoS class.
    pub qos: &'a str,
    /// The node's memory, bytes (OOM score).
    pub memory_capacity: i64,
    /// kubelet's root directory (seccomp profiles).
    pub root_dir: &'a Path,
}

/// The container config.
pub fn container_config(inputs: ContainerInputs<'_>) -> cri::ContainerConfig {
    let ContainerInputs {
        pod,
        container,
        restart_count,
        image_ref,
        env,
        mut mounts,
        termination_file,
        qos,
        memory_capacity,
        root_dir,
    } = inputs;
    if let Some(file) = termination_file {
        mounts.push(cri::Mount {
            container_path: termination_message_path(container).to_owned(),
            host_path: file.display().to_string(),
            ..Default::default()
        });
    }
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: container.name.clone(),
            attempt: u32::try_from(restart_count).unwrap_or(0),
        }),
        image: Some(cri::ImageSpec {
            image: image_ref.to_owned(),
            user_specified_image: container.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: expand_all(container.command.as_deref().unwrap_or_default(), env),
        args: expand_all(container.args.as_deref().unwrap_or_default(), env),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: env
            .iter()
            .map(|(key, value)| cri::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts,
        labels: container_labels(pod, container),
        annotations: container_annotations(pod, container, restart_count),
        log_path: log_path(&container.name, restart_count),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(linux_resources(container, qos, memory_capacity)),
            security_context: Some(container_security(
                pod,
                container,
                &root_dir.display().to_string(),
            )),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn container() -> Container {
        Container {
            name: "web".into(),
            image: Some("busybox:1.36".into()),
            command: Some(vec!["sh".into(), "-c".into()]),
            args: Some(vec!["echo $(GREETING) $$(HOME)".into()]),
            working_dir: Some("/srv".into()),
            tty: Some(true),
            ..Default::default()
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![container()],
                termination_grace_period_seconds: Some(30),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn configs_carry_what_kubelet_puts_in_them() {
        let env = [("GREETING".to_string(), "hi".to_string())];
        let c = container();
        let p = pod();
        let config = container_config(ContainerInputs {
            pod: &p,
            container: &c,
            restart_count: 3,
            image_ref: "sha256:abc",
            env: &env,
            mounts: Vec::new(),
            termination_file: Some(Path::new("/k/pods/u/containers/web/1234")),
            qos: "BestEffort",
            memory_capacity: 1 << 30,
            root_dir: Path::new("/k"),
        });
        assert_eq!(config.metadata.as_ref().unwrap().attempt, 3);
        assert_eq!(config.image.as_ref().unwrap().image, "sha256:abc");
        assert_eq!(
            config.image.as_ref().unwrap().user_specified_image,
            "busybox:1.36"
        );
        assert_eq!(config.args, ["echo hi $(HOME)"]);
        assert_eq!(config.log_path, "web/3.log");
        assert_eq!(config.labels["io.kubernetes.container.name"], "web");
        assert_eq!(config.labels["io.kubernetes.pod.uid"], "u");
        assert_eq!(config.annotations[RESTART_COUNT_ANNOTATION], "3");
        assert_eq!(config.annotations[GRACE_PERIOD_ANNOTATION], "30");
        assert_eq!(
            config.annotations[TERMINATION_MESSAGE_PATH_ANNOTATION],
            "/dev/termination-log"
        );
        assert_eq!(config.mounts[0].container_path, "/dev/termination-log");
        assert!(config.tty);
        assert_eq!(config.envs[0].key, "GREETING");
    }

    #[test]
    fn hashes_change_with_the_image_only() {
        let a = container();
        let mut b = container();
        b.resources = Some(Default::default());
        assert_eq!(container_hash(&a), container_hash(&b));
        b.image = Some("busybox:1.37".into());
        assert_ne!(container_hash(&a), container_hash(&b));
    }
}
