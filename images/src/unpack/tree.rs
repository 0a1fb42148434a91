//! The destination directory, reached only through file descriptors.
//!
//! Every entry is created with an `*at` call on the descriptor of its parent
//! directory, and parents are opened with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS` (or, where `openat2` is missing, one component at a
//! time with `O_NOFOLLOW | O_DIRECTORY`). No call ever follows a symlink that
//! the layer created, so a tar cannot reach outside the destination.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::UnpackError;
use super::entry::Timestamp;

/// Bytes and inodes written into a layer directory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

impl Usage {
    pub fn remove(&mut self, freed: Usage) {
        self.bytes = self.bytes.saturating_sub(freed.bytes);
        self.inodes = self.inodes.saturating_sub(freed.inodes);
    }
}

/// What to do about a missing directory on the way to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Missing {
    /// Create it (mode 0755, as containerd and Docker do for implied parents).
    Create,
    /// Fail: the path must name something an earlier entry made.
    Fail,
}

/// The layer's destination directory, with the parent of the previous entry
/// kept open because tars list siblings together.
#[derive(Debug)]
pub(super) struct Tree {
    root: OwnedFd,
    cached: Option<(PathBuf, OwnedFd)>,
    use_openat2: bool,
}

impl Tree {
    pub fn new(root: OwnedFd) -> Self {
        Self {
            root,
            cached: None,
            use_openat2: true,
        }
    }

    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The directory `rel` (relative to the root), cached until the next call.
    ///
    /// After this call the cache holds `rel` or nothing, so an entry that
    /// replaces `rel/<name>` (even a whole directory tree) never leaves a
    /// descriptor of a deleted directory in the cache.
    pub fn dir(
        &mut self,
        rel: &Path,
        missing: Missing,
        usage: &mut Usage,
        entry: &str,
    ) -> Result<BorrowedFd<'_>, UnpackError> {
        if rel.as_os_str().is_empty() {
            self.cached = None;
            return Ok(self.root.as_fd());
        }
        if !matches!(&self.cached, Some((cached, _)) if cached == rel) {
            self.cached = None;
            let fd = self.open_dir(rel, missing, usage, entry)?;
            self.cached = Some((rel.to_path_buf(), fd));
        }
        Ok(self
            .cached
            .as_ref()
            .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd()))
    }

    /// Opens the directory `rel` without following any symlink.
    pub fn open_dir(
        &mut self,
        rel: &Path,
        missing: Missing,
        usage: &mut Usage,
        entry: &str,
    ) -> Result<OwnedFd, UnpackError> {
        if rel.as_os_str().is_empty() {
            return self
                .root
                .try_clone()
                .map_err(|e| io_err(entry, "duplicate root fd", e));
        }
        if self.use_openat2 {
            match openat2_beneath(self.root.as_fd(), rel) {
                Ok(fd) => return Ok(fd),
                // Old kernels or seccomp filters: walk by hand from now on.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                    self.use_openat2 = false;
                }
                // Missing parents, symlinks, non-directories: the walk
                // creates what is missing or names the offending component.
                Err(_) => {}
            }
        }
        self.walk(rel, missing, usage, entry)
    }

    fn walk(
        &self,
        rel: &Path,
        missing: Missing,
        usage: &mut Usage,
        entry: &str,
    ) -> Result<OwnedFd, UnpackError> {
        let mut current: Option<OwnedFd> = None;
        let mut walked = PathBuf::new();
        for component in rel.components() {
            let name = c_name(component.as_os_str()).map_err(|e| io_err(entry, "resolve", e))?;
            walked.push(component);
            let parent = current.as_ref().map_or(self.root.as_fd(), |fd| fd.as_fd());
            let next = match open_subdir(parent, &name) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && missing == Missing::Create => {
                    make_dir(parent, &name, usage)
                        .map_err(|e| io_err(entry, "create parent", e).at(&walked))?
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    let st = lstatat(parent, &name).map_err(|e| io_err(entry, "stat", e))?;
                    if is_symlink(&st) {
                        return Err(UnpackError::Unsafe {
                            entry: entry.into(),
                            reason: format!("its path goes through symlink {:?}", walked),
                        });
                    }
                    if is_whiteout(&st) && missing == Missing::Create {
                        // A directory added where this layer also deleted one:
                        // it must hide the lower layers' content, so opaque.
                        usage.remove(
                            remove_at(parent, &name).map_err(|e| io_err(entry, "remove", e))?,
                        );
                        let fd = make_dir(parent, &name, usage)
                            .map_err(|e| io_err(entry, "create parent", e).at(&walked))?;
                        set_opaque(fd.as_fd()).map_err(|e| io_err(entry, "mark opaque", e))?;
                        fd
                    } else {
                        return Err(io_err(entry, "open parent", e).at(&walked));
                    }
                }
                Err(e) => return Err(io_err(entry, "open parent", e).at(&walked)),
            };
            current = Some(next);
        }
        match current {
            Some(fd) => Ok(fd),
            None => self
                .root
                .try_clone()
                .map_err(|e| io_err(entry, "duplicate root fd", e)),
        }
    }
}

/// An [`UnpackError::Io`] for `entry`.
pub(super) fn io_err(entry: &str, op: &'static str, source: io::Error) -> UnpackError {
    UnpackError::Io {
        entry: entry.into(),
        op,
        path: None,
        source,
    }
}

impl UnpackError {
    /// Names the path the failed operation was on, when not the entry itself.
    fn at(self, path: &Path) -> Self {
        match self {
            UnpackError::Io {
                entry, op, source, ..
            } => UnpackError::Io {
                entry,
                op,
                path: Some(path.to_path_buf()),
                source,
            },
            other => other,
        }
    }
}

/// `trusted.overlay.opaque=y`: overlayfs hides lower layers' content of this dir.
pub(super) fn set_opaque(dir: BorrowedFd<'_>) -> io::Result<()> {
    fsetxattr(dir, c"trusted.overlay.opaque", b"y")
}

fn make_dir(parent: BorrowedFd<'_>, name: &CStr, usage: &mut Usage) -> io::Result<OwnedFd> {
    mkdirat(parent, name, 0o755)?;
    usage.inodes += 1;
    let fd = open_subdir(parent, name)?;
    // The process umask must not decide implied directories' mode.
    fchmod(fd.as_fd(), 0o755)?;
    Ok(fd)
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `name` as a C string (tar names cannot hold NUL; PAX ones are checked).
pub(super) fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; the returned fd is fresh and owned.
    let fd = cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) })?;
    // SAFETY: `fd` was just returned by openat and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory `name` in `dir`, failing on symlinks (`ELOOP`).
pub(super) fn open_subdir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
}

/// Creates the regular file `name`; fails with `EEXIST` on anything there.
pub(super) fn create_file(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    openat(dir, name, flags, 0o600).map(File::from)
}

fn openat2_beneath(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let path = c_name(rel.as_os_str())?;
    let mut how: libc::open_how = zeroed_open_how();
    how.flags = (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `how` is a valid open_how of the size passed; `path` is NUL-terminated.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(ret).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn zeroed_open_how() -> libc::open_how {
    // SAFETY: open_how is plain integers; all-zero is its documented default.
    unsafe { std::mem::zeroed() }
}

pub(super) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated; mkdirat never follows a final symlink.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

pub(super) fn mknodat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    mode: libc::mode_t,
    dev: libc::dev_t,
) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated; mknodat fails with EEXIST on symlinks.
    cvt(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) }).map(drop)
}

pub(super) fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// Hard-links `old` (the object itself, even a symlink) as `new`.
pub(super) fn linkat(
    old_dir: BorrowedFd<'_>,
    old: &CStr,
    new_dir: BorrowedFd<'_>,
    new: &CStr,
) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated; flags 0 means no symlink following.
    cvt(unsafe {
        libc::linkat(
            old_dir.as_raw_fd(),
            old.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// `fstatat(AT_SYMLINK_NOFOLLOW)`.
pub(super) fn lstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer; `name` is NUL-terminated.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: fstatat succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

pub(super) fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

pub(super) fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// An overlayfs whiteout: a character device 0:0.
pub(super) fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

/// `fchownat(AT_SYMLINK_NOFOLLOW)`.
pub(super) fn lchownat(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `fchmodat`; only for names this unpack just created as non-symlinks.
pub(super) fn chmodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode, 0) }).map(drop)
}

/// `utimensat(AT_SYMLINK_NOFOLLOW)`.
pub(super) fn utimesat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    atime: Timestamp,
    mtime: Timestamp,
) -> io::Result<()> {
    let times = [atime.to_timespec(), mtime.to_timespec()];
    // SAFETY: `times` holds two timespecs; `name` is NUL-terminated.
    cvt(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

pub(super) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

pub(super) fn futimens(fd: BorrowedFd<'_>, atime: Timestamp, mtime: Timestamp) -> io::Result<()> {
    let times = [atime.to_timespec(), mtime.to_timespec()];
    // SAFETY: `times` holds two timespecs.
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) }).map(drop)
}

pub(super) fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and `value` valid for its length.
    cvt(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

/// Sets an xattr on `name` in `dir` itself, never a symlink's target.
///
/// Symlinks, devices and fifos cannot be opened for `fsetxattr`; the path
/// goes through this thread's magic link to `dir` (a directory already
/// resolved safely) and `lsetxattr` does not follow the final `name`.
pub(super) fn lsetxattrat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    xattr: &CStr,
    value: &[u8],
) -> io::Result<()> {
    let mut path = format!("/proc/thread-self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.to_bytes());
    let path = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both strings are NUL-terminated and `value` valid for its length.
    cvt(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            xattr.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

/// Removes whatever `name` is (a directory with all its content), returning
/// what that freed.
pub(super) fn remove_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Usage> {
    let st = lstatat(dir, name)?;
    let mut freed = Usage::default();
    if is_dir(&st) {
        let sub = open_subdir(dir, name)?;
        freed = empty_dir(sub.as_fd())?;
        // SAFETY: `name` is NUL-terminated.
        cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })?;
        freed.inodes += 1;
    } else {
        // SAFETY: `name` is NUL-terminated; unlinkat removes links, never targets.
        cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })?;
        // Other names keep a multiply-linked inode (and its bytes) alive.
        if st.st_nlink <= 1 {
            freed.inodes += 1;
            if st.st_mode & libc::S_IFMT == libc::S_IFREG {
                freed.bytes += u64::try_from(st.st_size).unwrap_or(0);
            }
        }
    }
    Ok(freed)
}

fn empty_dir(dir: BorrowedFd<'_>) -> io::Result<Usage> {
    let mut freed = Usage::default();
    for name in list_dir(dir)? {
        let more = remove_at(dir, &name)?;
        freed.bytes += more.bytes;
        freed.inodes += more.inodes;
    }
    Ok(freed)
}

/// Whether the directory `dir` has no entries.
pub(super) fn is_empty_dir(dir: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(list_dir(dir)?.is_empty())
}

/// The names in directory `dir`, without `.` and `..`.
fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let fd = dir.try_clone_to_owned()?.into_raw_fd();
    // SAFETY: `fd` is an owned directory fd; fdopendir takes it over.
    let stream = unsafe { libc::fdopendir(fd) };
    if stream.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `fd` is still ours to close.
        unsafe { libc::close(fd) };
        return Err(err);
    }
    // The duplicate shares its offset with `dir`: start from the beginning.
    // SAFETY: `stream` is a valid DIR*.
    unsafe { libc::rewinddir(stream) };
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; readdir reports errors only through it.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is a valid DIR*.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let err = io::Error::last_os_error();
            break if err.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(err)
            };
        }
        // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        if !matches!(name.to_bytes(), b"." | b"..") {
            names.push(name.to_owned());
        }
    };
    // SAFETY: `stream` is valid and closed exactly once; this closes `fd`.
    unsafe { libc::closedir(stream) };
    result.map(|()| names)
}
