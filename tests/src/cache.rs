//! The cache directory shared by every test process of a run.
//!
//! nextest runs each test in its own process, many at once, so expensive
//! things (fixture images, the seeded registry storage) are built by the
//! first process that needs them, under an exclusive file lock, into a
//! temporary directory that is renamed into place only when complete: a
//! builder killed half-way never leaves a half cache behind.

use std::env;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Result, io_error};

/// Environment variable overriding the cache directory.
pub const CACHE_ENV: &str = "SKIFF_TEST_CACHE";

/// The cache root: `$SKIFF_TEST_CACHE`, else `<cargo target dir>/skiff-test-cache`
/// (found from the running test binary), else `<tmp>/skiff-test-cache`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    target_dir()
        .map(|t| t.join("skiff-test-cache"))
        .unwrap_or_else(|| env::temp_dir().join("skiff-test-cache"))
}

/// The cargo target directory holding the current executable: the nearest
/// ancestor with cargo's `CACHEDIR.TAG`, else `<exe>/../..` for
/// `<target>/<profile>/deps/<test binary>`.
fn target_dir() -> Option<PathBuf> {
    let exe = env::current_exe().ok()?;
    if let Some(dir) = exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()) {
        return Some(dir.to_path_buf());
    }
    let deps = exe.parent()?;
    if deps.file_name()? == "deps" {
        return deps.parent()?.parent().map(Path::to_path_buf);
    }
    None
}

/// Entries of the same kind unused for this long are deleted when a new
/// one is built (the cache lives in the target dir and would grow with
/// every change to the fixture code otherwise).
const PRUNE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// Touched by every process that uses an entry.
const LAST_USED: &str = ".last-used";

/// Returns `<cache root>/<kind>-<key>`, first building it with `build`
/// (given an empty directory to fill) unless some process already did.
pub(crate) fn build_once(
    kind: &str,
    key: &str,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let name = format!("{kind}-{key}");
    let root = cache_root();
    let done = root.join(&name);
    if done.is_dir() {
        touch(&done);
        return Ok(done);
    }
    fs::create_dir_all(&root).map_err(io_error("create cache directory", &root))?;
    let lock_path = root.join(format!(".{name}.lock"));
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error("open lock file", &lock_path))?;
    // Blocks while another process builds; the kernel drops the lock if
    // that process dies.
    lock.lock().map_err(io_error("lock", &lock_path))?;
    if done.is_dir() {
        touch(&done);
        return Ok(done);
    }
    // Only the lock holder touches the temp dir, so anything there is the
    // remains of a builder that was killed.
    let tmp = root.join(format!(".{name}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_error("remove stale cache build", &tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io_error("create directory", &tmp))?;
    let started = Instant::now();
    build(&tmp)?;
    fs::rename(&tmp, &done).map_err(io_error("move into place", &done))?;
    touch(&done);
    tracing::info!(
        cache = %done.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "built test cache entry"
    );
    prune(&root, kind, &name);
    Ok(done)
}

/// Marks an entry as used now.
fn touch(entry: &Path) {
    let marker = entry.join(LAST_USED);
    let result = File::create(&marker).and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(error) = result {
        tracing::debug!(%error, marker = %marker.display(), "cannot mark cache entry as used");
    }
}

/// Deletes other `<kind>-*` entries nobody used for [`PRUNE_AFTER`].
fn prune(root: &Path, kind: &str, keep: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let prefix = format!("{kind}-");
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&prefix) || name == keep {
            continue;
        }
        let path = entry.path();
        let last_used = fs::metadata(path.join(LAST_USED))
            .or_else(|_| fs::metadata(&path))
            .and_then(|m| m.modified());
        let stale = last_used
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > PRUNE_AFTER);
        if stale {
            tracing::info!(entry = %path.display(), "pruning unused test cache entry");
            let _ = fs::remove_dir_all(&path);
            let _ = fs::remove_file(root.join(format!(".{name}.lock")));
        }
    }
}
