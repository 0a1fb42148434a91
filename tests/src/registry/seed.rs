//! The seed storage: a registry storage directory with every fixture
//! pushed, built once per cache through a real registry, then copied for
//! each test.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::client::RegistryClient;
use super::process::{RegistryAuth, RegistryConfig, spawn};
use crate::cache::build_once;
use crate::error::{Result, io_error};
use crate::fixtures::{self, Fixture};

/// The seeded storage root (built on first use).
pub(crate) fn seed_storage() -> Result<PathBuf> {
    static SEED: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut guard = SEED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = guard.as_ref() {
        return Ok(path.clone());
    }
    let key = fixtures::cache_key()?;
    let dir = build_once("registry-seed", &key, build_seed)?;
    let storage = dir.join("storage");
    *guard = Some(storage.clone());
    Ok(storage)
}

/// Pushes every fixture through an open registry writing into `dir/storage`.
fn build_seed(dir: &Path) -> Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("skiff-seed-")
        .tempdir()
        .map_err(io_error("create temp dir", std::env::temp_dir()))?;
    let process = spawn(RegistryConfig {
        kind: "seed".to_string(),
        dir: scratch.path().to_path_buf(),
        storage: dir.join("storage"),
        tls: None,
        auth: RegistryAuth::None,
    })?
    .wait_ready()?;
    let client = RegistryClient::new(&format!("http://{}", process.addr), None, None);
    for fixture in Fixture::ALL {
        let image = fixture.load()?;
        client.push(&image, fixture.repository(), Some(fixture.tag()))?;
    }
    drop(process);
    Ok(())
}

/// Copies a directory tree (regular files and directories only).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(io_error("create directory", to))?;
    for entry in fs::read_dir(from).map_err(io_error("read directory", from))? {
        let entry = entry.map_err(io_error("read directory", from))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let file_type = entry.file_type().map_err(io_error("stat", &source))?;
        if file_type.is_dir() {
            copy_tree(&source, &target)?;
        } else if file_type.is_file() {
            fs::copy(&source, &target).map_err(io_error("copy", &source))?;
        }
    }
    Ok(())
}
