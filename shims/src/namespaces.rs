//! Pod namespaces without a pause image: a child is cloned into new
//! namespaces, and its `/proc/<pid>/ns/*` files are bind-mounted onto
//! `<pod-dir>/ns/*` (as CRI-O's pinns does), so containers join them by path.
//!
//! Without a PID namespace the child exits once pinned: the bind mounts keep
//! the namespaces alive. With one, the child is the namespace's PID 1 and
//! stays, reaping orphans, until the shim's Shutdown kills it (a PID
//! namespace whose init died accepts no new process).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, pipe2, read, write};

use crate::args::PodNamespace;
use crate::protocol::NS_DIR;

/// A failure pinning or unpinning a pod's namespaces.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// Preparing the pin files failed.
    #[error("preparing namespace pin {path}: {source}")]
    PinFile {
        /// The pin file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A namespace is pinned there already (another shim for this pod?).
    #[error("namespace pin {0} is already mounted")]
    AlreadyPinned(PathBuf),
    /// Creating the namespaces' holder process failed.
    #[error("cloning into new {namespaces} namespaces: {source}")]
    Clone {
        /// The namespaces asked for.
        namespaces: String,
        /// Why.
        source: Errno,
    },
    /// The holder process failed inside its new namespaces.
    #[error("setting up the new namespaces failed (hostname {hostname:?})")]
    Setup {
        /// The hostname it was to set.
        hostname: Option<String>,
    },
    /// A pipe to the holder process failed.
    #[error("talking to the namespace holder: {0}")]
    Pipe(Errno),
    /// Bind-mounting a namespace onto its pin failed.
    #[error("bind-mounting {from} onto {to}: {source}")]
    Bind {
        /// The `/proc` namespace file.
        from: PathBuf,
        /// The pin.
        to: PathBuf,
        /// Why.
        source: Errno,
    },
    /// Moving the pod's PID 1 into the pod cgroup failed.
    #[error("moving the pod's PID 1 into cgroup {cgroup}: {message}")]
    Cgroup {
        /// The cgroup parent.
        cgroup: PathBuf,
        /// libcgroups' error.
        message: String,
    },
    /// Unmounting or removing a pin failed.
    #[error("removing namespace pin {path}: {source}")]
    Unpin {
        /// The pin.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The namespaces a shim pinned for its pod.
#[derive(Debug)]
pub struct PodNamespaces {
    /// The pod's PID 1, when it has its own PID namespace.
    pub pod_init: Option<Pid>,
}

/// What to create for the pod.
#[derive(Debug, Clone, Copy)]
pub struct PinRequest<'a> {
    /// The pod directory.
    pub pod_dir: &'a Path,
    /// The namespaces to create.
    pub namespaces: &'a [PodNamespace],
    /// The UTS namespace's hostname.
    pub hostname: Option<&'a str>,
    /// The pod cgroup, for the PID-1 process.
    pub cgroup_parent: Option<&'a Path>,
}

/// Creates and pins the requested namespaces. Must run while the process has
/// a single thread. On failure nothing stays mounted or running.
pub fn pin_namespaces(request: PinRequest<'_>) -> Result<PodNamespaces, NamespaceError> {
    let kinds: Vec<PodNamespace> = PodNamespace::ALL
        .into_iter()
        .filter(|kind| request.namespaces.contains(kind))
        .collect();
    if kinds.is_empty() {
        return Ok(PodNamespaces { pod_init: None });
    }
    let ns_dir = request.pod_dir.join(NS_DIR);
    fs::create_dir_all(&ns_dir).map_err(|source| NamespaceError::PinFile {
        path: ns_dir.clone(),
        source,
    })?;
    for kind in &kinds {
        prepare_pin_file(&ns_dir.join(kind.name()))?;
    }

    let with_pid = kinds.contains(&PodNamespace::Pid);
    let holder = spawn_holder(&kinds, request.hostname)?;
    let mut pinned: Vec<PathBuf> = Vec::new();
    let result = (|| {
        if with_pid && let Some(cgroup) = request.cgroup_parent {
            join_cgroup(cgroup, holder.pid)?;
        }
        for kind in &kinds {
            let from = PathBuf::from(format!("/proc/{}/ns/{}", holder.pid, kind.name()));
            let to = ns_dir.join(kind.name());
            mount(
                Some(&from),
                &to,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|source| NamespaceError::Bind {
                from: from.clone(),
                to: to.clone(),
                source,
            })?;
            pinned.push(to);
        }
        Ok(())
    })();
    if let Err(err) = result {
        for pin in &pinned {
            let _ = umount2(pin, MntFlags::MNT_DETACH);
        }
        let _ = kill(holder.pid, Signal::SIGKILL);
        let _ = waitpid(holder.pid, None);
        return Err(err);
    }
    if with_pid {
        // The holder stays as PID 1; dropping `release` lets nothing happen to it.
        drop(holder.release);
        Ok(PodNamespaces {
            pod_init: Some(holder.pid),
        })
    } else {
        // Pinned: the holder may go.
        drop(holder.release);
        let _ = waitpid(holder.pid, None);
        Ok(PodNamespaces { pod_init: None })
    }
}

/// Unmounts and removes the pod's namespace pins (the runtime's
/// RemovePodSandbox). Missing pins are fine.
pub fn unpin_namespaces(pod_dir: &Path) -> Result<(), NamespaceError> {
    let ns_dir = pod_dir.join(NS_DIR);
    for kind in PodNamespace::ALL {
        let path = ns_dir.join(kind.name());
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(errno) => {
                return Err(NamespaceError::Unpin {
                    path,
                    source: errno.into(),
                });
            }
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(NamespaceError::Unpin { path, source }),
        }
    }
    match fs::remove_dir(&ns_dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NamespaceError::Unpin {
            path: ns_dir,
            source,
        }),
    }
}

/// Whether `path` is a namespace file (a live pin).
pub fn is_pinned(path: &Path) -> bool {
    use nix::sys::statfs::{FsType, statfs};
    statfs(path).is_ok_and(|stat| stat.filesystem_type() == FsType(0x6e73_6673))
}

fn prepare_pin_file(path: &Path) -> Result<(), NamespaceError> {
    if is_pinned(path) {
        return Err(NamespaceError::AlreadyPinned(path.to_path_buf()));
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(|source| NamespaceError::PinFile {
            path: path.to_path_buf(),
            source,
        })
}

fn join_cgroup(cgroup: &Path, pid: Pid) -> Result<(), NamespaceError> {
    use libcgroups::common::{CgroupConfig, CgroupManager, create_cgroup_manager};
    let error = |message: String| NamespaceError::Cgroup {
        cgroup: cgroup.to_path_buf(),
        message,
    };
    let manager = create_cgroup_manager(CgroupConfig {
        cgroup_path: cgroup.to_path_buf(),
        systemd_cgroup: false,
        container_name: String::new(),
    })
    .map_err(|err| error(err.to_string()))?;
    manager.add_task(pid).map_err(|err| error(err.to_string()))
}

struct Holder {
    pid: Pid,
    /// Closing this lets a holder without a PID namespace exit.
    release: OwnedFd,
}

fn clone_flags(kinds: &[PodNamespace]) -> libc::c_int {
    kinds
        .iter()
        .map(|kind| match kind {
            PodNamespace::Net => libc::CLONE_NEWNET,
            PodNamespace::Ipc => libc::CLONE_NEWIPC,
            PodNamespace::Uts => libc::CLONE_NEWUTS,
            PodNamespace::Pid => libc::CLONE_NEWPID,
        })
        .fold(0, |flags, flag| flags | flag)
}

fn spawn_holder(kinds: &[PodNamespace], hostname: Option<&str>) -> Result<Holder, NamespaceError> {
    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).map_err(NamespaceError::Pipe)?;
    let (release_r, release_w) = pipe2(OFlag::O_CLOEXEC).map_err(NamespaceError::Pipe)?;
    let flags = clone_flags(kinds);
    let names: Vec<&str> = kinds.iter().map(|kind| kind.name()).collect();
    // A fork-like clone (no new stack) straight into the new namespaces: only
    // clone can make the child, not the shim, PID 1 of a new PID namespace.
    // SAFETY: the process is single-threaded here, so the child is a
    // consistent copy; it never returns into the caller's code.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        -1 => Err(NamespaceError::Clone {
            namespaces: names.join(","),
            source: Errno::last(),
        }),
        0 => {
            drop(ready_r);
            drop(release_w);
            holder_main(kinds, hostname, ready_w, release_r)
        }
        pid => {
            drop(ready_w);
            drop(release_r);
            let pid = Pid::from_raw(pid as i32);
            let mut byte = [0u8; 1];
            match read(ready_r.as_raw_fd(), &mut byte) {
                Ok(1) if byte[0] == b'1' => Ok(Holder {
                    pid,
                    release: release_w,
                }),
                Ok(_) => {
                    let _ = waitpid(pid, None);
                    Err(NamespaceError::Setup {
                        hostname: hostname.map(str::to_owned),
                    })
                }
                Err(errno) => {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    Err(NamespaceError::Pipe(errno))
                }
            }
        }
    }
}

/// The holder child: sets the hostname, reports, then either waits to be
/// released (no PID namespace) or becomes the pod's PID 1.
fn holder_main(
    kinds: &[PodNamespace],
    hostname: Option<&str>,
    ready: OwnedFd,
    release: OwnedFd,
) -> ! {
    if kinds.contains(&PodNamespace::Uts)
        && let Some(name) = hostname
        && nix::unistd::sethostname(name).is_err()
    {
        // SAFETY: _exit is always safe; skipping destructors is the point in a forked child.
        unsafe { libc::_exit(1) };
    }
    let _ = write(&ready, b"1");
    drop(ready);
    if !kinds.contains(&PodNamespace::Pid) {
        let mut byte = [0u8; 1];
        let _ = read(release.as_raw_fd(), &mut byte);
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    drop(release);
    pod_init_loop()
}

/// PID 1 of the pod: reaps whatever is reparented to it, forever. All
/// signals stay blocked, so only SIGKILL (from the shim) ends it.
fn pod_init_loop() -> ! {
    let _ = nix::sys::prctl::set_name(c"skiff-pod-init");
    let _ = nix::unistd::chdir("/");
    // Nothing the shim had open belongs to the pod's PID 1.
    // SAFETY: closing descriptors this process owns; nothing else uses them.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let all = SigSet::all();
    let _ = all.thread_block();
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    loop {
        let _ = chld.wait();
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_flags_cover_each_kind() {
        assert_eq!(clone_flags(&[]), 0);
        assert_eq!(
            clone_flags(&[PodNamespace::Net, PodNamespace::Pid]),
            libc::CLONE_NEWNET | libc::CLONE_NEWPID
        );
    }

    #[test]
    fn unpinning_nothing_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        unpin_namespaces(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join(NS_DIR)).unwrap();
        std::fs::write(dir.path().join(NS_DIR).join("net"), "").unwrap();
        unpin_namespaces(dir.path()).unwrap();
        assert!(!dir.path().join(NS_DIR).exists());
    }
}
