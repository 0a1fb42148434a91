//! Pod and container config files, as crictl loads them: JSON or YAML
//! holding a `PodSandboxConfig` or `ContainerConfig` (snake_case keys as
//! in crictl's examples, or the camelCase protojson writes), checked as
//! crictl checks them. A pod without a UID gets a random one.

use std::io::{self, Read};
use std::path::Path;

use k8s_cri::v1::{ContainerConfig, PodSandboxConfig};
use serde::de::DeserializeOwned;

use super::config_decode::{Decoded, decode};
use super::console::go_quote;

/// A loaded config and the warnings to show about it.
#[derive(Debug)]
pub(super) struct Loaded<T> {
    pub config: T,
    pub warnings: Vec<String>,
}

/// Reads a pod config (`runp`, `create`, `run`).
pub(super) fn load_pod_config(path: &Path) -> Result<Loaded<PodSandboxConfig>, String> {
    let Loaded {
        mut config,
        mut warnings,
    } = load::<PodSandboxConfig>(path)?;
    let Some(metadata) = config.metadata.as_mut() else {
        return Err("metadata is not set".to_owned());
    };
    if metadata.uid.is_empty() {
        metadata.uid = random_uuid();
    }
    if metadata.name.is_empty() || metadata.namespace.is_empty() {
        let text = format!(
            "name:{} uid:{} namespace:{} attempt:{}",
            go_quote(&metadata.name),
            go_quote(&metadata.uid),
            go_quote(&metadata.namespace),
            metadata.attempt
        );
        return Err(format!(
            "name or namespace is not in metadata {}",
            go_quote(&text)
        ));
    }
    if config
        .linux
        .as_ref()
        .is_some_and(|linux| linux.cgroup_parent.is_empty())
    {
        warnings.push(
            "cgroup_parent is not set. Use `runtime-config` to get the runtime cgroup driver"
                .to_owned(),
        );
    }
    Ok(Loaded { config, warnings })
}

/// Reads a container config (`create`, `run`).
pub(super) fn load_container_config(path: &Path) -> Result<Loaded<ContainerConfig>, String> {
    let loaded = load::<ContainerConfig>(path)?;
    let config = &loaded.config;
    let Some(metadata) = &config.metadata else {
        return Err("metadata is not set".to_owned());
    };
    if metadata.name.is_empty() {
        let text = format!("attempt:{}", metadata.attempt);
        return Err(format!("name is not in metadata {}", go_quote(&text)));
    }
    let Some(image) = &config.image else {
        return Err("image is not set".to_owned());
    };
    if image.image.is_empty() {
        return Err(format!("image field is not set in image {}", go_quote("")));
    }
    Ok(loaded)
}

fn load<T: DeserializeOwned>(path: &Path) -> Result<Loaded<T>, String> {
    let text = read(path)?;
    let value = parse(&text)?;
    let Decoded {
        message,
        unknown_keys,
    } = decode::<T>(&value)
        .map_err(|e| format!("error unmarshaling JSON: while decoding JSON: {e}"))?;
    let warnings = unknown_keys
        .into_iter()
        .map(|key| format!("ignoring unknown field {key:?} in {}", path.display()))
        .collect();
    Ok(Loaded {
        config: message,
        warnings,
    })
}

fn read(path: &Path) -> Result<String, String> {
    let mut text = String::new();
    let opened = if path == Path::new("-") {
        io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text).map(|_| ()))
    };
    match opened {
        Ok(()) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(format!("config at {} not found", path.display()))
        }
        Err(e) => Err(format!(
            "open {}: {}",
            path.display(),
            super::go_errno_text(&e)
        )),
    }
}

/// JSON, or else YAML (of which JSON is a subset, as sigs.k8s.io/yaml reads it).
fn parse(text: &str) -> Result<serde_json::Value, String> {
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let value: serde_json::Value = serde_yaml_ng::from_str(text)
        .map_err(|e| format!("error converting YAML to JSON: yaml: {e}"))?;
    Ok(value)
}

/// A random (version 4) UUID, as crictl gives a pod without one.
fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Unique enough on one machine: the UID only tells pods apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes[..8].copy_from_slice(&(nanos as u64).to_le_bytes());
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn crictl_example_configs_load() {
        let dir = tempfile::tempdir().unwrap();
        let pod = write(
            &dir,
            "pod.json",
            r#"{"metadata": {"name": "nginx-sandbox", "namespace": "default", "attempt": 1, "uid": "hdishd83djaidwnduwk28bcsb"},
                "log_directory": "/tmp", "linux": {}}"#,
        );
        let loaded = load_pod_config(&pod).unwrap();
        assert_eq!(loaded.config.log_directory, "/tmp");
        assert_eq!(
            loaded.warnings,
            ["cgroup_parent is not set. Use `runtime-config` to get the runtime cgroup driver"]
        );

        let container = write(
            &dir,
            "container.yaml",
            "metadata:\n  name: busybox\nimage:\n  image: busybox\ncommand:\n- top\nlog_path: busybox.0.log\nlinux: {}\n",
        );
        let loaded = load_container_config(&container).unwrap();
        assert_eq!(loaded.config.command, ["top"]);
        assert_eq!(loaded.config.log_path, "busybox.0.log");
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn a_pod_without_uid_gets_one_and_without_name_fails() {
        let dir = tempfile::tempdir().unwrap();
        let pod = write(&dir, "pod.yaml", "metadata:\n  name: a\n  namespace: b\n");
        let uid = load_pod_config(&pod).unwrap().config.metadata.unwrap().uid;
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");

        let pod = write(
            &dir,
            "nameless.json",
            r#"{"metadata": {"namespace": "b", "uid": "u"}}"#,
        );
        let err = load_pod_config(&pod).unwrap_err();
        assert!(
            err.starts_with("name or namespace is not in metadata \""),
            "{err}"
        );
        let pod = write(&dir, "empty.json", "{}");
        assert_eq!(load_pod_config(&pod).unwrap_err(), "metadata is not set");
    }

    #[test]
    fn container_configs_need_a_name_and_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "c.json", r#"{"metadata": {"name": "x"}}"#);
        assert_eq!(
            load_container_config(&path).unwrap_err(),
            "image is not set"
        );
        let path = write(
            &dir,
            "c2.json",
            r#"{"metadata": {"name": "x"}, "image": {}}"#,
        );
        assert_eq!(
            load_container_config(&path).unwrap_err(),
            "image field is not set in image \"\""
        );
        let path = write(&dir, "c3.json", r#"{"image": {"image": "x"}}"#);
        assert_eq!(
            load_container_config(&path).unwrap_err(),
            "metadata is not set"
        );
    }

    #[test]
    fn missing_and_malformed_files_fail_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.json");
        assert_eq!(
            load_pod_config(&missing).unwrap_err(),
            format!("config at {} not found", missing.display())
        );
        let bad = write(&dir, "bad.yaml", "metadata: [\n");
        let err = load_pod_config(&bad).unwrap_err();
        assert!(
            err.starts_with("error converting YAML to JSON: yaml: "),
            "{err}"
        );
        let wrong = write(&dir, "wrong.json", r#"{"metadata": {"name": 5}}"#);
        let err = load_pod_config(&wrong).unwrap_err();
        assert_eq!(
            err,
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal number into Go struct field metadata.name of type string"
        );
        let typo = write(
            &dir,
            "typo.json",
            r#"{"metadata": {"name": "a", "namespace": "b", "uid": "c"}, "log_dir": "/x"}"#,
        );
        let warnings = load_pod_config(&typo).unwrap().warnings;
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("\"log_dir\""), "{warnings:?}");
    }
}
