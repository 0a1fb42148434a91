//! The compile cache: `<cache-dir>/<key>.cwasm`, the key a SHA-256 of the
//! image ID, the module's path, the function and wasmtime's compatibility
//! hash (its version, target and settings), so a second start of an image
//! compiles nothing and an upgraded wasmtime never loads stale code.
//!
//! Files are written once, atomically (temporary file, then rename), and
//! loaded with `deserialize_file`, which maps them: every container of an
//! image shares the code pages, so a file must never change in place (a
//! mapped file that shrinks kills its users with SIGBUS): it is only ever
//! replaced by a rename. A file wasmtime refuses (corrupt, from another
//! version) is recompiled and replaced, never fatal.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module, Precompiled};

/// A compiled module or component.
pub enum Compiled {
    /// A core module (WASI preview 1).
    Module(Module),
    /// A component (WASI preview 2).
    Component(Component),
}

/// How the code was obtained, reported to the shim for its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache: nothing compiled.
    Hit,
    /// Compiled and written to the cache.
    Compiled,
    /// The cached file was unusable: compiled again and replaced.
    Replaced,
    /// Compiled without a cache (none configured, or it could not be written).
    Uncached,
}

impl CacheOutcome {
    /// The word the child reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Compiled => "compiled",
            CacheOutcome::Replaced => "replaced",
            CacheOutcome::Uncached => "uncached",
        }
    }
}

/// What identifies a compilation.
#[derive(Debug, Clone, Copy)]
pub struct CacheKey<'a> {
    /// The image ID (or a digest of the module when there is none).
    pub image: &'a str,
    /// The module's path inside the rootfs.
    pub module: &'a str,
    /// The function called.
    pub function: Option<&'a str>,
}

impl CacheKey<'_> {
    /// The file name's stem: hex SHA-256 of the fields and the engine's
    /// compatibility hash.
    pub fn digest(&self, engine: &Engine) -> String {
        let mut hasher = Sha256Hasher(Sha256::new());
        for field in [self.image, self.module, self.function.unwrap_or("")] {
            hasher.write_usize(field.len());
            hasher.write(field.as_bytes());
        }
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hex::encode(hasher.0.finalize())
    }
}

/// Feeds `Hash` output into SHA-256 (stable, unlike `DefaultHasher`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// The cache in `dir` (created 0700 when missing).
    pub fn new(dir: &Path) -> Self {
        CompileCache {
            dir: dir.to_path_buf(),
        }
    }

    /// The file of a key.
    pub fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm"))
    }

    /// The cached code of `digest`; `Err` when a file exists but wasmtime
    /// refuses it, `Ok(None)` when there is none.
    pub fn load(&self, engine: &Engine, digest: &str) -> Result<Option<Compiled>, String> {
        let path = self.path(digest);
        if !path.exists() {
            return Ok(None);
        }
        let kind = Engine::detect_precompiled_file(&path).map_err(|err| format!("{err:#}"))?;
        let compiled = match kind {
            // SAFETY: files in the cache directory (0700, the runtime's) are
            // only written by `store`, whole, from wasmtime's own
            // serialization; wasmtime checks the header (version, target,
            // settings) before using one.
            Some(Precompiled::Module) => {
                unsafe { Module::deserialize_file(engine, &path) }.map(Compiled::Module)
            }
            // SAFETY: as above.
            Some(Precompiled::Component) => {
                unsafe { Component::deserialize_file(engine, &path) }.map(Compiled::Component)
            }
            None => return Err("not a precompiled wasmtime artifact".into()),
        };
        compiled.map(Some).map_err(|err| format!("{err:#}"))
    }

    /// Writes `serialized` as the file of `digest`, atomically.
    pub fn store(&self, digest: &str, serialized: &[u8]) -> std::io::Result<PathBuf> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let path = self.path(digest);
        let tmp = self
            .dir
            .join(format!(".{digest}.{}.tmp", std::process::id()));
        let written = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| {
                file.write_all(serialized)?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|()| path)
    }
}

/// Whether `bytes` are a component (rather than a core module), from the
/// binary header: `\0asm`, then version 1 for modules, layer 1 for components.
pub fn is_component(bytes: &[u8]) -> Result<bool, String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Ok(false),
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(true),
        _ => Err("not a WebAssembly binary (bad magic or version)".into()),
    }
}

/// Compiles `wasm` to wasmtime's serialized form.
pub fn precompile(engine: &Engine, wasm: &[u8]) -> Result<Vec<u8>, String> {
    let compiled = if is_component(wasm)? {
        engine.precompile_component(wasm)
    } else {
        engine.precompile_module(wasm)
    };
    compiled.map_err(|err| format!("compiling: {err:#}"))
}

/// Loads serialized code from memory (when the cache could not be written).
pub fn deserialize(engine: &Engine, wasm: &[u8], serialized: &[u8]) -> Result<Compiled, String> {
    // SAFETY: `serialized` came from `precompile` with this engine just now.
    let compiled = if is_component(wasm)? {
        unsafe { Component::deserialize(engine, serialized) }.map(Compiled::Component)
    } else {
        unsafe { Module::deserialize(engine, serialized) }.map(Compiled::Module)
    };
    compiled.map_err(|err| format!("loading compiled code: {err:#}"))
}

/// Code ready to instantiate, and how it was obtained.
pub struct Loaded {
    /// The code.
    pub compiled: Compiled,
    /// Cache hit or not.
    pub outcome: CacheOutcome,
    /// Why the cache was not used as it should be, for the shim's log.
    pub note: Option<String>,
}

/// The code for `digest`: from the cache, or compiled from `read_wasm()`
/// (and cached when there is a cache).
pub fn load_or_compile(
    engine: &Engine,
    cache: Option<&CompileCache>,
    digest: &str,
    read_wasm: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<Loaded, String> {
    let mut outcome = CacheOutcome::Compiled;
    let mut note = None;
    if let Some(cache) = cache {
        match cache.load(engine, digest) {
            Ok(Some(compiled)) => {
                return Ok(Loaded {
                    compiled,
                    outcome: CacheOutcome::Hit,
                    note,
                });
            }
            Ok(None) => {}
            Err(err) => {
                note = Some(format!("{}: {err}", cache.path(digest).display()));
                outcome = CacheOutcome::Replaced;
            }
        }
    }
    let wasm = read_wasm()?;
    let serialized = precompile(engine, &wasm)?;
    if let Some(cache) = cache {
        match cache.store(digest, &serialized) {
            Ok(path) => match cache.load(engine, digest) {
                Ok(Some(compiled)) => {
                    return Ok(Loaded {
                        compiled,
                        outcome,
                        note,
                    });
                }
                Ok(None) => note = Some(format!("{} vanished", path.display())),
                Err(err) => {
                    note = Some(format!("{}: {err}", path.display()));
                    let _ = fs::remove_file(path);
                }
            },
            Err(err) => note = Some(format!("writing {}: {err}", cache.path(digest).display())),
        }
    }
    Ok(Loaded {
        compiled: deserialize(engine, &wasm, &serialized)?,
        outcome: CacheOutcome::Uncached,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> Vec<u8> {
        wat::parse_str(r#"(module (func (export "_start")))"#).unwrap()
    }

    #[test]
    fn keys_differ_by_every_field() {
        let engine = Engine::default();
        let key = |image, module, function| {
            CacheKey {
                image,
                module,
                function,
            }
            .digest(&engine)
        };
        let base = key("sha256:a", "/m.wasm", None);
        assert_eq!(base.len(), 64);
        assert_eq!(base, key("sha256:a", "/m.wasm", None));
        assert_ne!(base, key("sha256:b", "/m.wasm", None));
        assert_ne!(base, key("sha256:a", "/n.wasm", None));
        assert_ne!(base, key("sha256:a", "/m.wasm", Some("f")));
        // Fields are length-prefixed: moving bytes between them changes the key.
        assert_ne!(key("ab", "c", None), key("a", "bc", None));
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        let other_key = CacheKey {
            image: "sha256:a",
            module: "/m.wasm",
            function: None,
        }
        .digest(&other);
        assert_ne!(base, other_key);
    }

    #[test]
    fn tells_modules_from_components() {
        assert!(!is_component(&module()).unwrap());
        let component = wat::parse_str("(component)").unwrap();
        assert!(is_component(&component).unwrap());
        assert!(is_component(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn compiles_once_then_hits_and_replaces_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(&dir.path().join("cache"));
        let engine = Engine::default();
        let wasm = module();
        let reads = std::cell::Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            Ok(wasm.clone())
        };
        let outcome = |cache| load_or_compile(&engine, cache, "k", read).unwrap().outcome;
        assert_eq!(outcome(Some(&cache)), CacheOutcome::Compiled);
        let loaded = load_or_compile(&engine, Some(&cache), "k", read).unwrap();
        assert_eq!(loaded.outcome, CacheOutcome::Hit);
        assert!(matches!(loaded.compiled, Compiled::Module(_)));
        assert_eq!(reads.get(), 1);

        // Replaced, not truncated: the loaded code maps the old file.
        let garbage = dir.path().join("garbage");
        fs::write(&garbage, b"garbage").unwrap();
        fs::rename(&garbage, cache.path("k")).unwrap();
        assert_eq!(outcome(Some(&cache)), CacheOutcome::Replaced);
        assert_eq!(outcome(Some(&cache)), CacheOutcome::Hit);
        assert_eq!(reads.get(), 2);
        assert_eq!(outcome(None), CacheOutcome::Uncached);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["k.cwasm"]);
    }

    #[test]
    fn components_are_cached_too() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path());
        let engine = Engine::default();
        let component = wat::parse_str("(component)").unwrap();
        let read = || Ok(component.clone());
        load_or_compile(&engine, Some(&cache), "c", read).unwrap();
        let loaded = load_or_compile(&engine, Some(&cache), "c", read).unwrap();
        assert_eq!(loaded.outcome, CacheOutcome::Hit);
        assert!(matches!(loaded.compiled, Compiled::Component(_)));
    }
}
