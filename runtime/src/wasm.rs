//! Which containers run as Wasm, and how the bundle tells the shim.
//!
//! The runtime decides at CreateContainer, from the image alone and the
//! container's command line — never from the pod's runtime handler (a Linux
//! binary in a `wasmtime` pod is an ordinary OCI container, as with
//! runwasi). A container is Wasm when
//! 1. its image config's platform is Wasm (os `wasi`, arch `wasm`/`wasm32`), or
//! 2. an image layer is a raw Wasm module (a Wasm media type), or
//! 3. its argv[0] ends in `.wasm` or contains `.wasm#` (`file.wasm#function`).
//!
//! The decision travels in `config.json` annotations ([`annotations`]), read
//! by the shim's Wasm engine; the rest of the spec is the normal one.

use std::path::{Component, Path, PathBuf};

use k8s_cri::v1 as cri;
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::Spec;
use skiff_images::metadata::LayerRef;
use skiff_images::wasm as image_wasm;

use crate::error::RuntimeError;

/// The bundle annotations of a Wasm container (the runtime–shim contract).
pub mod annotations {
    /// Which engine runs the container: `wasm`; absent (or `oci`) is libcontainer.
    pub const ENGINE: &str = "io.skiff.engine";
    /// Absolute path of the module inside the container's root filesystem.
    pub const MODULE: &str = "io.skiff.wasm.module";
    /// The export to call (from `file.wasm#function`); absent: the default.
    pub const FUNCTION: &str = "io.skiff.wasm.function";
    /// The image ID (config digest): part of the compile-cache key.
    pub const IMAGE: &str = "io.skiff.wasm.image";
    /// Where compiled code is cached (`<data-dir>/agent/wasm-cache`).
    pub const CACHE_DIR: &str = "io.skiff.wasm.cache-dir";
    /// The TCP port a `wasi:http` component is served on.
    pub const PORT: &str = "io.skiff.wasm.port";
}

/// The [`annotations::ENGINE`] value of a Wasm container.
pub const ENGINE_WASM: &str = "wasm";

/// The port `wasi:http` components are served on when the container declares none.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// The annotation kubelet puts on a container with its declared ports (JSON).
const KUBELET_PORTS_ANNOTATION: &str = "io.kubernetes.container.ports";

/// Why a container was found to be Wasm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmReason {
    /// The image config's platform is wasi/wasm.
    Platform,
    /// An image layer is a raw Wasm module.
    WasmLayer,
    /// argv[0] names a `.wasm` file.
    Argv,
}

/// How a Wasm container runs: its module, export and argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmEntry {
    /// The module as argv[0] names it (maybe relative to the working
    /// directory), or the top-most Wasm layer's file (`/<hex>.wasm`).
    pub module: String,
    /// The export to call, from `file.wasm#function`.
    pub function: Option<String>,
    /// The guest's argv: the module path first (without `#function`).
    pub args: Vec<String>,
    /// What made the container Wasm (the first rule that matched).
    pub reason: WasmReason,
}

/// Why a container that must be Wasm cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WasmError {
    /// The image is Wasm by its platform but names no module to run.
    #[error(
        "image {image} is a Wasm image but names no module: set an entrypoint ending in .wasm or ship a Wasm layer"
    )]
    NoModule {
        /// The image as the container names it.
        image: String,
    },
}

impl From<WasmError> for RuntimeError {
    fn from(err: WasmError) -> Self {
        match err {
            WasmError::NoModule { .. } => RuntimeError::InvalidArgument(err.to_string()),
        }
    }
}

/// An argv[0] naming a module: `(path, function)` for `x.wasm` or
/// `x.wasm#function` (an empty function is no function).
fn module_argument(arg0: &str) -> Option<(&str, Option<&str>)> {
    if let Some(at) = arg0.find(".wasm#") {
        let (path, function) = arg0.split_at(at + ".wasm".len());
        let function = &function[1..];
        return Some((path, (!function.is_empty()).then_some(function)));
    }
    arg0.ends_with(".wasm").then_some((arg0, None))
}

/// Decides whether a container is Wasm, from its image's config and layers
/// and its merged command line (request over image, see
/// [`crate::spec::merged_command`]). `None`: an ordinary OCI container.
///
/// The module is argv[0] when it names a `.wasm` file, else the top-most
/// Wasm layer's file, with argv[0] the module path and the whole command
/// line as its arguments (an argv[0] of just `#function` picks the export).
pub fn detect(
    image_name: &str,
    image: &ImageConfiguration,
    layers: &[LayerRef],
    argv: &[String],
) -> Result<Option<WasmEntry>, WasmError> {
    let platform =
        image_wasm::is_wasm_platform(&image.os().to_string(), &image.architecture().to_string());
    let layer_module = image_wasm::top_module(layers);
    let named = argv.first().and_then(|a| module_argument(a));
    let reason = if platform {
        WasmReason::Platform
    } else if layer_module.is_some() {
        WasmReason::WasmLayer
    } else if named.is_some() {
        WasmReason::Argv
    } else {
        return Ok(None);
    };
    if let Some((path, function)) = named {
        let mut args = vec![path.to_string()];
        args.extend(argv[1..].iter().cloned());
        return Ok(Some(WasmEntry {
            module: path.to_string(),
            function: function.map(str::to_string),
            args,
            reason,
        }));
    }
    let Some(module) = layer_module else {
        return Err(WasmError::NoModule {
            image: image_name.to_string(),
        });
    };
    let (function, rest) = match argv.split_first() {
        Some((first, rest)) if first.starts_with('#') => {
            let function = &first[1..];
            ((!function.is_empty()).then(|| function.to_string()), rest)
        }
        _ => (None, argv),
    };
    let mut args = vec![module.clone()];
    args.extend(rest.iter().cloned());
    Ok(Some(WasmEntry {
        module,
        function,
        args,
        reason,
    }))
}

impl WasmEntry {
    /// The module's absolute path inside the root filesystem: a relative
    /// one is taken from `cwd`; `.` and `..` are resolved lexically and
    /// never climb above `/`.
    pub fn module_in_rootfs(&self, cwd: &str) -> String {
        let joined = Path::new("/").join(cwd).join(&self.module);
        let mut clean = PathBuf::from("/");
        for component in joined.components() {
            match component {
                Component::Normal(part) => clean.push(part),
                Component::ParentDir => {
                    clean.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        clean.display().to_string()
    }
}

/// The TCP port a `wasi:http` component serves: the container's first
/// declared TCP port (kubelet's `io.kubernetes.container.ports`
/// annotation), else the pod's first TCP port mapping, else 8080.
pub fn http_port(config: &cri::ContainerConfig, sandbox: &cri::PodSandboxConfig) -> u16 {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct DeclaredPort {
        container_port: i64,
        #[serde(default)]
        protocol: String,
    }
    let tcp = |protocol: &str| protocol.is_empty() || protocol.eq_ignore_ascii_case("TCP");
    let as_port = |port: i64| u16::try_from(port).ok().filter(|p| *p != 0);
    let declared = config
        .annotations
        .get(KUBELET_PORTS_ANNOTATION)
        .and_then(|json| serde_json::from_str::<Vec<DeclaredPort>>(json).ok())
        .and_then(|ports| {
            ports
                .into_iter()
                .filter(|p| tcp(&p.protocol))
                .find_map(|p| as_port(p.container_port))
        });
    let mapped = || {
        sandbox
            .port_mappings
            .iter()
            .filter(|m| m.protocol == cri::Protocol::Tcp as i32)
            .find_map(|m| as_port(i64::from(m.container_port)))
    };
    declared.or_else(mapped).unwrap_or(DEFAULT_HTTP_PORT)
}

/// What the shim needs beyond the container's [`WasmEntry`].
#[derive(Debug, Clone, Copy)]
pub struct WasmBundle<'a> {
    /// The image ID (`sha256:…`).
    pub image_id: &'a str,
    /// The compile cache directory.
    pub cache_dir: &'a Path,
    /// The `wasi:http` port.
    pub port: u16,
}

/// Writes the Wasm annotations into `spec` (whose `process.cwd` resolves
/// a relative module path).
pub fn annotate(spec: &mut Spec, entry: &WasmEntry, bundle: &WasmBundle<'_>) {
    let cwd = spec
        .process()
        .as_ref()
        .map(|p| p.cwd().display().to_string())
        .unwrap_or_else(|| "/".to_string());
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    let mut set = |key: &str, value: String| {
        annotations.insert(key.to_string(), value);
    };
    set(annotations::ENGINE, ENGINE_WASM.to_string());
    set(annotations::MODULE, entry.module_in_rootfs(&cwd));
    if let Some(function) = &entry.function {
        set(annotations::FUNCTION, function.clone());
    }
    set(annotations::IMAGE, bundle.image_id.to_string());
    set(
        annotations::CACHE_DIR,
        bundle.cache_dir.display().to_string(),
    );
    set(annotations::PORT, bundle.port.to_string());
    spec.set_annotations(Some(annotations));
}

/// Creates the compile cache directory (mode 0700, as compiled code is
/// executable content only the runtime and shims may write).
pub fn ensure_cache_dir(dir: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(RuntimeError::io("create directory", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(RuntimeError::io("chmod", dir))
}

#[cfg(test)]
mod tests;
