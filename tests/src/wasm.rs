//! Wasm test fixtures, built at test time: core modules from WAT text, C
//! programs compiled with Debian's `clang`, `lld` and `wasi-libc`
//! (`--target=wasm32-wasi`, WASI preview 1), preview 2 components made from
//! preview 1 modules with `wit-component` and the WASI adapter, and the OCI
//! images that carry them.
//!
//! Two image shapes exist in the wild, and Skiff runs both:
//! [`artifact_image`] (platform `wasi/wasm`, the module itself as a layer
//! with a Wasm media type) and [`rootfs_image`] (an ordinary image whose
//! entrypoint is a `.wasm` file, as runwasi accepts).

use std::path::Path;
use std::process::Command;

use crate::error::{HarnessError, Result};
use crate::oci::{Compression, Image, ImageBuilder, Layer, LayerBuilder, Platform};

/// `tests/wasm/echo.c`: prints its args, `$GREETING`, `$READ_FILE`; writes
/// `$WRITE_FILE`; exits with `$EXIT_CODE`.
pub const ECHO_C: &str = include_str!("../wasm/echo.c");
/// `tests/wasm/hog.c`: allocates and touches memory 1 MiB at a time.
pub const HOG_C: &str = include_str!("../wasm/hog.c");

/// Writes "hello from wasm" to stdout and returns from `_start` (exit 0).
pub const HELLO_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wasm\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"#;

/// Prints "spinning" and then loops forever: only an interruption stops it.
pub const SPIN_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "spinning\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 9))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop $forever (br $forever))))
"#;

/// Exits through `proc_exit` with the code 42.
pub const EXIT42_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $proc_exit (i32.const 42))))
"#;

/// Compiles WAT text to a Wasm binary.
pub fn wat(text: &str) -> Result<Vec<u8>> {
    wat::parse_str(text).map_err(|err| HarnessError::Wasm {
        what: "WAT module".into(),
        reason: err.to_string(),
    })
}

/// Compiles a C program for WASI preview 1 with Debian's clang and
/// wasi-libc (`scripts/setup.sh` installs them).
pub fn c_program(name: &str, source: &str) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir().map_err(|source| HarnessError::Io {
        action: "create",
        path: std::env::temp_dir(),
        source,
    })?;
    let c = dir.path().join(format!("{name}.c"));
    let wasm = dir.path().join(format!("{name}.wasm"));
    write(&c, source.as_bytes())?;
    let output = Command::new("clang")
        .args(["--target=wasm32-wasi", "-O2", "-Wl,--strip-all", "-o"])
        .arg(&wasm)
        .arg(&c)
        .output()
        .map_err(|source| HarnessError::Spawn {
            program: "clang (Debian's clang, lld and wasi-libc; scripts/setup.sh installs them)"
                .into(),
            source,
        })?;
    if !output.status.success() {
        return Err(HarnessError::Wasm {
            what: format!("{name}.c"),
            reason: format!(
                "clang --target=wasm32-wasi failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    std::fs::read(&wasm).map_err(|source| HarnessError::Io {
        action: "read",
        path: wasm,
        source,
    })
}

/// Turns a WASI preview 1 command module into a preview 2 component
/// (`wasi:cli/command`) with the preview 1 adapter, as `wasm-tools
/// component new --adapt` does.
pub fn component(module: &[u8]) -> Result<Vec<u8>> {
    let error = |reason: String| HarnessError::Wasm {
        what: "component".into(),
        reason,
    };
    wit_component::ComponentEncoder::default()
        .module(module)
        .map_err(|err| error(format!("{err:#}")))?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
        )
        .map_err(|err| error(format!("{err:#}")))?
        .validate(true)
        .encode()
        .map_err(|err| error(format!("{err:#}")))
}

/// A Wasm OCI artifact: platform `wasi/wasm`, one layer that is the module
/// itself under `media_type`, no entrypoint.
pub fn artifact_image(module: &[u8], media_type: &str) -> Image {
    ImageBuilder::new()
        .platform(Platform::wasi())
        .layer(Layer::wasm(module, media_type))
        .without_cmd()
        .build()
}

/// An ordinary image holding the module at `path` (absolute), with `path`
/// as its entrypoint.
pub fn rootfs_image(module: &[u8], path: &str) -> Image {
    // Tar entries are relative to the root; the entrypoint is absolute.
    let relative = path.trim_start_matches('/');
    let mut layer = LayerBuilder::new().dir("data");
    if let Some((parent, _)) = relative.rsplit_once('/') {
        layer = layer.dir(parent);
    }
    let layer = layer
        .file(relative, module.to_vec())
        .file("data/message.txt", "a file from the image\n")
        .build(Compression::Gzip);
    ImageBuilder::new()
        .layer(layer)
        .without_cmd()
        .entrypoint(&[path])
        .build()
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| HarnessError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_core_module(bytes: &[u8]) -> bool {
        bytes.starts_with(b"\0asm\x01\0\0\0")
    }

    fn is_component(bytes: &[u8]) -> bool {
        bytes.starts_with(b"\0asm\x0d\0\x01\0")
    }

    #[test]
    fn wat_fixtures_compile() {
        for text in [HELLO_WAT, SPIN_WAT, EXIT42_WAT] {
            assert!(is_core_module(&wat(text).unwrap()));
        }
        let err = wat("(module (func (i32.bogus)))").unwrap_err();
        assert!(err.to_string().contains("WAT module"), "{err}");
    }

    #[test]
    fn c_programs_compile_for_wasi() {
        for (name, source) in [("echo", ECHO_C), ("hog", HOG_C)] {
            let module = c_program(name, source).unwrap();
            assert!(is_core_module(&module), "{name}");
        }
        let err = c_program("broken", "int main( {").unwrap_err();
        assert!(err.to_string().contains("broken.c"), "{err}");
    }

    #[test]
    fn preview1_modules_become_command_components() {
        let module = c_program("echo", ECHO_C).unwrap();
        assert!(is_component(&component(&module).unwrap()));
    }

    #[test]
    fn artifact_images_are_wasi_wasm_with_a_raw_layer() {
        let module = wat(HELLO_WAT).unwrap();
        let image = artifact_image(&module, crate::oci::media_type::WASM_LAYER);
        let config = image.config_json().unwrap();
        assert_eq!(config["os"], "wasi");
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(image.layers[0].blob.bytes, module);
        assert_eq!(image.layers[0].diff_id, crate::oci::Digest::of(&module));
    }
}
