//! What a Wasm container is made from: the bundle's config.json read into
//! [`WasmBundle`], with the annotations the runtime writes (see
//! `ARCHITECTURE.md`, "Wasm containers").

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Mount, Spec};

use crate::engine::EngineError;

/// `"wasm"` selects the Wasm engine; absent or `"oci"` selects libcontainer.
pub const ENGINE_ANNOTATION: &str = "io.skiff.engine";
/// The module's absolute path inside the container's rootfs.
pub const MODULE_ANNOTATION: &str = "io.skiff.wasm.module";
/// The export to call (`file.wasm#function`).
pub const FUNCTION_ANNOTATION: &str = "io.skiff.wasm.function";
/// The image ID: with the module path, the compile-cache key.
pub const IMAGE_ANNOTATION: &str = "io.skiff.wasm.image";
/// Where compiled code is cached.
pub const CACHE_DIR_ANNOTATION: &str = "io.skiff.wasm.cache-dir";
/// The TCP port a `wasi:http` component is served on.
pub const PORT_ANNOTATION: &str = "io.skiff.wasm.port";
/// The port without the annotation (the runtime's default too).
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// Whether a bundle's annotations ask for the Wasm engine.
pub fn wants_wasm(annotations: Option<&HashMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(ENGINE_ANNOTATION))
        .is_some_and(|engine| engine == "wasm")
}

/// A directory the guest sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

/// A namespace of the pod to join (`path`) or a new one (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Network, IPC or UTS: the others mean nothing to a Wasm guest.
    pub kind: LinuxNamespaceType,
    /// The pinned namespace file.
    pub path: Option<PathBuf>,
}

/// The user the guest runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestUser {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
}

/// Everything the Wasm engine needs from a bundle.
#[derive(Debug, Clone)]
pub struct WasmBundle {
    /// The rootfs on the host (`root.path`).
    pub rootfs: PathBuf,
    /// The module's path inside the rootfs (absolute).
    pub module: String,
    /// The export to call, if not the default.
    pub function: Option<String>,
    /// The image ID, the compile-cache key.
    pub image: Option<String>,
    /// The compile cache's directory.
    pub cache_dir: Option<PathBuf>,
    /// argv.
    pub args: Vec<String>,
    /// Environment, `KEY=value`.
    pub env: Vec<(String, String)>,
    /// The guest's initial working directory.
    pub cwd: String,
    /// Whether the process has a terminal.
    pub terminal: bool,
    /// Who runs the guest.
    pub user: GuestUser,
    /// `process.oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
    /// Directories the guest sees: the rootfs at `/`, then bind mounts.
    pub preopens: Vec<Preopen>,
    /// Namespaces to enter.
    pub namespaces: Vec<Namespace>,
    /// `linux.cgroupsPath`.
    pub cgroup: Option<PathBuf>,
    /// `linux.resources`.
    pub resources: Option<LinuxResources>,
    /// The guest's memory limit in bytes (`linux.resources.memory.limit`).
    pub memory_limit: Option<u64>,
    /// Where a `wasi:http` component is served.
    pub http_port: u16,
}

impl WasmBundle {
    /// Reads `<bundle>/config.json`.
    pub fn load(bundle: &Path) -> Result<Self, EngineError> {
        let config = bundle.join("config.json");
        let spec = Spec::load(&config).map_err(|err| EngineError::Bundle {
            path: config.display().to_string(),
            message: err.to_string(),
        })?;
        WasmBundle::from_spec(&spec, bundle).map_err(|message| EngineError::Bundle {
            path: config.display().to_string(),
            message,
        })
    }

    /// The Wasm view of a spec; relative paths are relative to `bundle`.
    pub fn from_spec(spec: &Spec, bundle: &Path) -> Result<Self, String> {
        let annotations = spec.annotations().clone().unwrap_or_default();
        let process = spec.process().as_ref().ok_or("no process")?;
        let mut args = process.args().clone().unwrap_or_default();
        let (module, function) = module_and_function(&annotations, &args, process.cwd())?;
        // argv[0] names the module as given, without runwasi's `#function`.
        if let Some(first) = args.first_mut()
            && let Some((path, _)) = first.split_once(".wasm#")
        {
            *first = format!("{path}.wasm");
        }
        let root = spec.root().as_ref().ok_or("no root")?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            bundle.join(root.path())
        };
        let mut preopens = vec![Preopen {
            host: rootfs.clone(),
            guest: "/".into(),
            read_only: root.readonly().unwrap_or(false),
        }];
        preopens.extend(
            spec.mounts()
                .iter()
                .flatten()
                .filter_map(directory_bind_mount),
        );
        let env = process
            .env()
            .iter()
            .flatten()
            .map(|entry| match entry.split_once('=') {
                Some((key, value)) => (key.to_owned(), value.to_owned()),
                None => (entry.clone(), String::new()),
            })
            .collect();
        let user = process.user();
        let linux = spec.linux().as_ref();
        let namespaces = linux
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
            .filter(|ns| {
                matches!(
                    ns.typ(),
                    LinuxNamespaceType::Network | LinuxNamespaceType::Ipc | LinuxNamespaceType::Uts
                )
            })
            .map(|ns| Namespace {
                kind: ns.typ(),
                path: ns.path().clone(),
            })
            .collect();
        let resources = linux.and_then(|l| l.resources().clone());
        let memory_limit = resources
            .as_ref()
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .and_then(|limit| u64::try_from(limit).ok())
            .filter(|limit| *limit > 0);
        let http_port = match annotations.get(PORT_ANNOTATION) {
            None => DEFAULT_HTTP_PORT,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| format!("{PORT_ANNOTATION}: {port:?} is not a TCP port"))?,
        };
        Ok(WasmBundle {
            rootfs,
            module,
            function,
            image: annotations.get(IMAGE_ANNOTATION).cloned(),
            cache_dir: annotations.get(CACHE_DIR_ANNOTATION).map(PathBuf::from),
            args,
            env,
            cwd: process.cwd().display().to_string(),
            terminal: process.terminal().unwrap_or(false),
            user: GuestUser {
                uid: user.uid(),
                gid: user.gid(),
                additional_gids: user.additional_gids().clone().unwrap_or_default(),
            },
            oom_score_adj: process.oom_score_adj(),
            preopens,
            namespaces,
            cgroup: linux.and_then(|l| l.cgroups_path().clone()),
            resources,
            memory_limit,
            http_port,
        })
    }
}

/// The module (absolute, inside the rootfs) and function: from the
/// annotations, else from argv[0] (`/app.wasm` or `/app.wasm#function`).
fn module_and_function(
    annotations: &HashMap<String, String>,
    args: &[String],
    cwd: &Path,
) -> Result<(String, Option<String>), String> {
    let mut function = annotations
        .get(FUNCTION_ANNOTATION)
        .filter(|f| !f.is_empty())
        .cloned();
    let module = match annotations.get(MODULE_ANNOTATION) {
        Some(module) => module.clone(),
        None => {
            let first = args.first().ok_or("no io.skiff.wasm.module and no args")?;
            match first.split_once(".wasm#") {
                Some((path, name)) => {
                    if function.is_none() && !name.is_empty() {
                        function = Some(name.to_owned());
                    }
                    format!("{path}.wasm")
                }
                None => first.clone(),
            }
        }
    };
    let module = if module.starts_with('/') {
        module
    } else {
        cwd.join(&module).display().to_string()
    };
    Ok((module, function))
}

/// A bind mount of a directory, as a preopen at its destination.
fn directory_bind_mount(mount: &Mount) -> Option<Preopen> {
    let options = mount.options().as_deref().unwrap_or_default();
    let bind = mount.typ().as_deref() == Some("bind")
        || options.iter().any(|o| o == "bind" || o == "rbind");
    let source = mount.source().as_ref()?;
    if !bind || !source.is_dir() {
        return None;
    }
    Some(Preopen {
        host: source.clone(),
        guest: mount.destination().display().to_string(),
        read_only: options.iter().any(|o| o == "ro"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn reads_annotations_process_and_mounts() {
        let volume = tempfile::tempdir().unwrap();
        let spec = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs", "readonly": true},
            "process": {
                "args": ["/hello.wasm", "a b"],
                "env": ["A=1", "B=x=y", "EMPTY"],
                "cwd": "/work",
                "user": {"uid": 1000, "gid": 100, "additionalGids": [5]},
                "oomScoreAdj": 500
            },
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "type": "bind", "source": volume.path(),
                 "options": ["rbind", "ro"]},
                {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts",
                 "options": ["rbind"]}
            ],
            "linux": {
                "cgroupsPath": "/pod/c1",
                "resources": {"memory": {"limit": 67108864}},
                "namespaces": [
                    {"type": "network", "path": "/run/ns/net"},
                    {"type": "mount"},
                    {"type": "uts"}
                ]
            },
            "annotations": {
                "io.skiff.engine": "wasm",
                "io.skiff.wasm.module": "/hello.wasm",
                "io.skiff.wasm.image": "sha256:abc",
                "io.skiff.wasm.cache-dir": "/var/lib/skiff/wasm-cache",
                "io.skiff.wasm.port": "3000"
            }
        }));
        assert!(wants_wasm(spec.annotations().as_ref()));
        let bundle = WasmBundle::from_spec(&spec, Path::new("/b")).unwrap();
        assert_eq!(bundle.rootfs, Path::new("/b/rootfs"));
        assert_eq!(bundle.module, "/hello.wasm");
        assert_eq!(bundle.function, None);
        assert_eq!(bundle.image.as_deref(), Some("sha256:abc"));
        assert_eq!(bundle.args, ["/hello.wasm", "a b"]);
        assert_eq!(
            bundle.env,
            [
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "x=y".to_owned()),
                ("EMPTY".to_owned(), String::new())
            ]
        );
        assert_eq!(bundle.cwd, "/work");
        assert_eq!(
            bundle.user,
            GuestUser {
                uid: 1000,
                gid: 100,
                additional_gids: vec![5]
            }
        );
        assert_eq!(bundle.oom_score_adj, Some(500));
        assert_eq!(
            bundle.preopens,
            [
                Preopen {
                    host: "/b/rootfs".into(),
                    guest: "/".into(),
                    read_only: true
                },
                Preopen {
                    host: volume.path().to_path_buf(),
                    guest: "/data".into(),
                    read_only: true
                }
            ]
        );
        assert_eq!(
            bundle.namespaces,
            [
                Namespace {
                    kind: LinuxNamespaceType::Network,
                    path: Some("/run/ns/net".into())
                },
                Namespace {
                    kind: LinuxNamespaceType::Uts,
                    path: None
                }
            ]
        );
        assert_eq!(bundle.cgroup.as_deref(), Some(Path::new("/pod/c1")));
        assert_eq!(bundle.memory_limit, Some(64 << 20));
        assert_eq!(bundle.http_port, 3000);
    }

    #[test]
    fn module_and_function_from_argv0() {
        let spec = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "/r"},
            "process": {"args": ["app/main.wasm#serve", "x"], "cwd": "/srv", "user": {"uid": 0, "gid": 0}},
        }));
        assert!(!wants_wasm(spec.annotations().as_ref()));
        let bundle = WasmBundle::from_spec(&spec, Path::new("/b")).unwrap();
        assert_eq!(bundle.module, "/srv/app/main.wasm");
        assert_eq!(bundle.function.as_deref(), Some("serve"));
        assert_eq!(bundle.args, ["app/main.wasm", "x"]);
        assert_eq!(bundle.memory_limit, None);
        assert_eq!(bundle.http_port, DEFAULT_HTTP_PORT);
        assert!(!bundle.preopens[0].read_only);
    }

    #[test]
    fn a_bad_port_is_refused() {
        for port in ["0", "65536", "http"] {
            let spec = spec(serde_json::json!({
                "ociVersion": "1.0.2",
                "root": {"path": "/r"},
                "process": {"args": ["/m.wasm"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                "annotations": {"io.skiff.wasm.port": port}
            }));
            let err = WasmBundle::from_spec(&spec, Path::new("/b")).unwrap_err();
            assert!(err.contains("is not a TCP port"), "{err}");
        }
    }

    #[test]
    fn the_function_annotation_wins() {
        let annotations = HashMap::from([
            (MODULE_ANNOTATION.to_owned(), "/m.wasm".to_owned()),
            (FUNCTION_ANNOTATION.to_owned(), "go".to_owned()),
        ]);
        assert_eq!(
            module_and_function(&annotations, &["x.wasm#other".into()], Path::new("/")).unwrap(),
            ("/m.wasm".to_owned(), Some("go".to_owned()))
        );
        assert!(module_and_function(&HashMap::new(), &[], Path::new("/")).is_err());
    }
}
