//! Mounting container root filesystems: overlayfs over the layer snapshot
//! directories, behind the [`Mounter`] seam so that code above it is
//! unit-testable with [`RecordingMounter`].

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use nix::mount::{MntFlags, MsFlags};

/// What to mount: lower dirs top-most first, plus an optional writable
/// upper dir and its work dir (same filesystem, both or neither).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlaySpec {
    /// Read-only layers, top-most first.
    pub lower: Vec<PathBuf>,
    /// Where writes land; `None` for a read-only view.
    pub upper: Option<PathBuf>,
    /// overlayfs's scratch dir, on the upper dir's filesystem.
    pub work: Option<PathBuf>,
}

/// Why a mount or unmount failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The spec cannot be mounted as given.
    #[error("invalid overlay for {}: {reason}", target.display())]
    InvalidSpec {
        /// Where it was to be mounted.
        target: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The kernel refused the mount.
    #[error("cannot mount {kind} of {layers} layer(s) at {}: {source}{}", target.display(), kernel_said(.detail))]
    Mount {
        /// `overlay` or `read-only bind`/`bind`.
        kind: &'static str,
        /// How many lower dirs.
        layers: usize,
        /// Where it was to be mounted.
        target: PathBuf,
        /// overlayfs's own explanation, when the new mount API gave one.
        detail: Option<String>,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The kernel refused the unmount.
    #[error("cannot unmount {}: {source}", target.display())]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
}

fn kernel_said(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

impl MountError {
    fn mount(kind: &'static str, layers: usize, target: &Path, source: io::Error) -> Self {
        Self::Mount {
            kind,
            layers,
            target: target.into(),
            detail: None,
            source,
        }
    }

    fn invalid(target: &Path, reason: String) -> Self {
        Self::InvalidSpec {
            target: target.into(),
            reason,
        }
    }

    /// Whether the mount point is busy (open files, a process inside): the
    /// caller may retry later.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Unmount { source, .. } | Self::Mount { source, .. }
            if source.raw_os_error() == Some(libc::EBUSY))
    }
}

/// The OS seam for mounts, so the snapshotter is unit-testable with a fake.
pub trait Mounter: Send + Sync + std::fmt::Debug {
    /// Mounts `spec` at the existing directory `target`.
    fn mount_overlay(&self, spec: &OverlaySpec, target: &Path) -> Result<(), MountError>;
    /// Unmounts `target` (not lazily: a busy mount is an error). A target
    /// that is not mounted, or does not exist, is already unmounted: `Ok`.
    fn unmount(&self, target: &Path) -> Result<(), MountError>;
}

/// The real [`Mounter`]: mount(2), or the new mount API for many layers.
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelMounter;

impl Mounter for KernelMounter {
    fn mount_overlay(&self, spec: &OverlaySpec, target: &Path) -> Result<(), MountError> {
        spec.validate(target)?;
        match (spec.lower.as_slice(), &spec.upper) {
            // overlayfs wants two lowers when there is no upper; one layer
            // read-only is exactly a read-only bind mount.
            ([single], None) => bind(single, target, true, 1),
            // A container of an image without layers writes straight to its
            // upper dir.
            ([], Some(upper)) => bind(upper, target, false, 0),
            _ => mount_overlayfs(spec, target),
        }
    }

    fn unmount(&self, target: &Path) -> Result<(), MountError> {
        match nix::mount::umount2(target, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => Ok(()),
            // EINVAL: not a mount point.
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {
                tracing::debug!(target = %target.display(), "not mounted; nothing to unmount");
                Ok(())
            }
            Err(errno) => Err(MountError::Unmount {
                target: target.into(),
                source: errno.into(),
            }),
        }
    }
}

impl OverlaySpec {
    /// A read-only view of `lower` (top-most first).
    pub fn read_only(lower: Vec<PathBuf>) -> Self {
        Self {
            lower,
            upper: None,
            work: None,
        }
    }

    fn validate(&self, target: &Path) -> Result<(), MountError> {
        let invalid = |reason| MountError::invalid(target, reason);
        if self.upper.is_some() != self.work.is_some() {
            return Err(invalid("upper and work dirs go together".into()));
        }
        if self.lower.is_empty() && self.upper.is_none() {
            return Err(invalid(
                "nothing to mount: no lower and no upper dir".into(),
            ));
        }
        let all = self.lower.iter().chain(&self.upper).chain(&self.work);
        // overlayfs resolves relative paths against the caller's cwd.
        if let Some(path) = all
            .chain([&target.to_path_buf()])
            .find(|p| !p.is_absolute())
        {
            return Err(invalid(format!("{} is not absolute", path.display())));
        }
        Ok(())
    }

    /// The mount(2) data string, with lower dirs relative to `base` if given.
    ///
    /// `index=off`: with the index on, overlayfs records the lower dirs' file
    /// handles in the upper dir and verifies them at every later mount, so an
    /// upper outlives no change to its lowers and layers shared by many
    /// overlays at once can make mounts fail (EBUSY/ESTALE). Docker and
    /// containerd pass `index=off` for the same reason. Everything else stays
    /// at the kernel default: `redirect_dir` and `metacopy` are off by
    /// default, which is what untrusted lower layers want, and `userxattr` is
    /// only for mounts inside a user namespace (Skiff mounts as real root).
    fn options(&self, base: Option<&Path>) -> Result<String, String> {
        let mut lowers = Vec::with_capacity(self.lower.len());
        for lower in &self.lower {
            let lower = match base {
                Some(base) => lower.strip_prefix(base).unwrap_or(lower),
                None => lower,
            };
            let lower = if lower.as_os_str().is_empty() {
                Path::new(".")
            } else {
                lower
            };
            lowers.push(option_path(lower)?);
        }
        let mut options = format!("lowerdir={}", lowers.join(":"));
        if let (Some(upper), Some(work)) = (&self.upper, &self.work) {
            options.push_str(&format!(
                ",upperdir={},workdir={}",
                option_path(upper)?,
                option_path(work)?
            ));
        }
        options.push_str(",index=off");
        Ok(options)
    }
}

/// `path` as it can appear in the options string, where `,` and `:` separate.
fn option_path(path: &Path) -> Result<&str, String> {
    match path.to_str() {
        Some(s) if !s.contains([',', ':', '\\']) => Ok(s),
        _ => Err(format!(
            "{} cannot be passed in mount options",
            path.display()
        )),
    }
}

/// The mount(2) data limit: the kernel copies one page.
fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

fn bind(source: &Path, target: &Path, read_only: bool, layers: usize) -> Result<(), MountError> {
    let kind = if read_only { "read-only bind" } else { "bind" };
    let err = |errno: nix::errno::Errno| MountError::mount(kind, layers, target, errno.into());
    let none: Option<&str> = None;
    nix::mount::mount(Some(source), target, none, MsFlags::MS_BIND, none).map_err(err)?;
    if read_only {
        // A bind mount ignores MS_RDONLY until it is remounted.
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(errno) = nix::mount::mount(none, target, none, flags, none) {
            let _ = nix::mount::umount2(target, MntFlags::MNT_DETACH);
            return Err(err(errno));
        }
    }
    Ok(())
}

fn mount_overlayfs(spec: &OverlaySpec, target: &Path) -> Result<(), MountError> {
    let layers = spec.lower.len();
    let invalid = |reason| MountError::invalid(target, reason);
    let options = spec.options(None);
    if let Ok(options) = &options
        && options.len() < page_size()
    {
        return mount_with_options(options, target, layers);
    }
    // Too long for one page (or paths with separators): the new mount API
    // takes one lower dir per call.
    match mount_with_fsconfig(spec, target) {
        Ok(()) => Ok(()),
        Err(FsconfigError::Unsupported(why)) => {
            tracing::debug!(target = %target.display(), layers, %why, "no lowerdir+; mounting with relative lower dirs");
            let base = common_parent(&spec.lower);
            let options = spec.options(Some(&base)).map_err(invalid)?;
            if options.len() >= page_size() {
                return Err(invalid(format!(
                    "{layers} lower dirs do not fit the mount options even relative to {}",
                    base.display()
                )));
            }
            mount_relative(&options, &base, target, layers)
        }
        Err(FsconfigError::Failed(err)) => Err(err),
    }
}

fn mount_with_options(options: &str, target: &Path, layers: usize) -> Result<(), MountError> {
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options),
    )
    .map_err(|errno| MountError::mount("overlay", layers, target, errno.into()))
}

/// Mounts with lower dirs relative to `base`, resolved against the cwd of a
/// thread of its own: cwd is process-wide unless a thread unshares it.
fn mount_relative(
    options: &str,
    base: &Path,
    target: &Path,
    layers: usize,
) -> Result<(), MountError> {
    let err = |source| MountError::mount("overlay", layers, target, source);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS).map_err(|e| err(e.into()))?;
                nix::unistd::chdir(base).map_err(|e| err(e.into()))?;
                mount_with_options(options, target, layers)
            })
            .join()
            .unwrap_or_else(|_| Err(err(io::Error::other("mount thread panicked"))))
    })
}

/// The deepest directory that contains every path in `paths`.
fn common_parent(paths: &[PathBuf]) -> PathBuf {
    let mut common: Vec<Component<'_>> = match paths.first() {
        Some(first) => first.parent().unwrap_or(first).components().collect(),
        None => return PathBuf::from("/"),
    };
    for path in &paths[1..] {
        let shared = common
            .iter()
            .zip(path.components())
            .take_while(|(a, b)| *a == b)
            .count();
        common.truncate(shared);
    }
    common.iter().collect()
}

enum FsconfigError {
    /// The kernel lacks the new mount API or overlayfs's `lowerdir+` (< 6.8).
    Unsupported(String),
    Failed(MountError),
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// fsopen/fsconfig/fsmount/move_mount, one `lowerdir+` per layer.
fn mount_with_fsconfig(spec: &OverlaySpec, target: &Path) -> Result<(), FsconfigError> {
    let layers = spec.lower.len();
    let failed = |detail: Option<String>, source: io::Error| {
        FsconfigError::Failed(MountError::Mount {
            kind: "overlay",
            layers,
            target: target.into(),
            detail,
            source,
        })
    };
    // SAFETY: the string is NUL-terminated; the result is checked.
    let fs =
        syscall_fd(unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) })
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOSYS) => FsconfigError::Unsupported("no fsopen".into()),
                _ => failed(None, e),
            })?;
    // What failed, plus what overlayfs logged about it, if anything.
    let explain = |what: String| {
        Some(match context_log(&fs) {
            Some(log) => format!("{what}: {log}"),
            None => what,
        })
    };
    let set = |key: &CStr, value: &Path| {
        fsconfig_string(&fs, key, value.as_os_str().as_bytes()).map_err(|e| {
            failed(
                explain(format!("{} {}", key.to_string_lossy(), value.display())),
                e,
            )
        })
    };
    for (i, lower) in spec.lower.iter().enumerate() {
        match set(c"lowerdir+", lower) {
            Ok(()) => {}
            Err(FsconfigError::Failed(MountError::Mount { source, detail, .. }))
                if i == 0 && source.raw_os_error() == Some(libc::EINVAL) =>
            {
                return Err(FsconfigError::Unsupported(detail.unwrap_or_default()));
            }
            Err(err) => return Err(err),
        }
    }
    if let (Some(upper), Some(work)) = (&spec.upper, &spec.work) {
        set(c"upperdir", upper)?;
        set(c"workdir", work)?;
    }
    set(c"index", Path::new("off"))?;
    if let Err(err) = fsconfig(&fs, FSCONFIG_CMD_CREATE, None, None) {
        return Err(failed(explain("creating the overlay".into()), err));
    }
    // SAFETY: plain syscall on a valid fd; the result is checked.
    let mnt =
        syscall_fd(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) })
            .map_err(|e| failed(explain("fsmount".into()), e))?;
    let target_c = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| failed(None, io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: both strings are NUL-terminated; flags make "" mean `mnt` itself.
    let moved = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target_c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if moved < 0 {
        return Err(failed(None, io::Error::last_os_error()));
    }
    Ok(())
}

fn fsconfig_string(fs: &OwnedFd, key: &CStr, value: &[u8]) -> io::Result<()> {
    let value = CString::new(value).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    fsconfig(fs, FSCONFIG_SET_STRING, Some(key), Some(&value))
}

fn fsconfig(
    fs: &OwnedFd,
    cmd: libc::c_uint,
    key: Option<&CStr>,
    value: Option<&CStr>,
) -> io::Result<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: key and value are NUL-terminated or null as `cmd` requires.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            ptr(key),
            ptr(value),
            0,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn syscall_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(ret).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The messages overlayfs left in the filesystem context ("e overlay: ...").
fn context_log(fs: &OwnedFd) -> Option<String> {
    let mut messages = Vec::new();
    let mut buf = [0u8; 1024];
    // Each read returns one message; ENODATA once there are no more.
    for _ in 0..16 {
        // SAFETY: `buf` is valid for its length.
        let n = unsafe { libc::read(fs.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let Ok(n) = usize::try_from(n) else { break };
        if n == 0 {
            break;
        }
        messages.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string());
    }
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// One call a [`RecordingMounter`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountCall {
    /// `mount_overlay(spec, target)`.
    Mount {
        /// What was to be mounted.
        spec: OverlaySpec,
        /// Where.
        target: PathBuf,
    },
    /// `unmount(target)`.
    Unmount {
        /// The mount point.
        target: PathBuf,
    },
}

/// A [`Mounter`] that records calls and tracks what is mounted instead of
/// mounting, for unit tests of the code above it. Specs are checked as the
/// kernel mounter checks them.
#[derive(Debug, Default)]
pub struct RecordingMounter {
    state: Mutex<RecordingState>,
}

#[derive(Debug, Default)]
struct RecordingState {
    calls: Vec<MountCall>,
    mounted: Vec<PathBuf>,
    fail_next: Option<i32>,
}

impl RecordingMounter {
    /// A mounter with nothing mounted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<MountCall> {
        self.state().calls.clone()
    }

    /// What is mounted now, in mount order.
    pub fn mounted(&self) -> Vec<PathBuf> {
        self.state().mounted.clone()
    }

    /// Makes the next mount or unmount fail with `errno` (e.g. `libc::EBUSY`).
    pub fn fail_next(&self, errno: i32) {
        self.state().fail_next = Some(errno);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RecordingState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Mounter for RecordingMounter {
    fn mount_overlay(&self, spec: &OverlaySpec, target: &Path) -> Result<(), MountError> {
        spec.validate(target)?;
        let mut state = self.state();
        state.calls.push(MountCall::Mount {
            spec: spec.clone(),
            target: target.into(),
        });
        if let Some(errno) = state.fail_next.take() {
            let source = io::Error::from_raw_os_error(errno);
            return Err(MountError::mount(
                "overlay",
                spec.lower.len(),
                target,
                source,
            ));
        }
        state.mounted.push(target.into());
        Ok(())
    }

    fn unmount(&self, target: &Path) -> Result<(), MountError> {
        let mut state = self.state();
        state.calls.push(MountCall::Unmount {
            target: target.into(),
        });
        if let Some(errno) = state.fail_next.take() {
            let source = io::Error::from_raw_os_error(errno);
            return Err(MountError::Unmount {
                target: target.into(),
                source,
            });
        }
        // The most recent mount at `target` is the one unmounted.
        if let Some(i) = state.mounted.iter().rposition(|m| m == target) {
            state.mounted.remove(i);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
