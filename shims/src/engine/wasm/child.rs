//! The forked child that becomes a Wasm container: it sets itself up as the
//! container's process (stdio, signals, namespaces, cgroup, user), loads
//! the guest, reports on its ready pipe, waits on its start pipe, and runs
//! the guest to an exit code. It never returns into the shim's code.
//!
//! The child starts as a copy of the single-threaded shim. Descriptors the
//! shim owns are not closed but pointed at /dev/null: objects of the shim
//! still in the child's memory (its `shim.log` writer, say) then write
//! nowhere, instead of into whatever file would reuse a closed number.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use libcgroups::common::{CgroupConfig, CgroupManager, ControllerOpt, create_cgroup_manager};
use nix::fcntl::{FcntlArg, OFlag, OpenHow, ResolveFlag, fcntl, openat2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::unistd::{Gid, Pid, Uid, dup2, setgid, setgroups, setsid, setuid};
use oci_spec::runtime::LinuxNamespaceType;
use sha2::{Digest, Sha256};

use super::bundle::{GuestUser, Namespace, WasmBundle};
use super::cache::{CacheKey, CompileCache, Loaded, load_or_compile};
use super::guest::{self, GuestSpec, Outcome};
use super::interrupt;
use super::limits::OomMarker;
use super::report::Report;
use crate::engine::{ChildStdio, open_fds};

/// The descriptors that become the guest's 0, 1 and 2.
#[derive(Debug)]
pub enum ChildIo {
    /// Pipes to the shim (a missing end reads or writes /dev/null).
    Pipes(ChildStdio),
    /// A pty's slave, also the controlling terminal.
    Pty(OwnedFd),
}

/// Everything the child works from.
#[derive(Debug)]
pub struct ChildPlan<'a> {
    /// The container id.
    pub id: &'a str,
    /// The bundle, read by the shim.
    pub bundle: &'a WasmBundle,
    /// stdio.
    pub io: ChildIo,
    /// The container's state directory (for the OOM marker).
    pub state_dir: &'a Path,
    /// The write end of the ready pipe.
    pub ready: OwnedFd,
    /// The read end of the start pipe.
    pub start: OwnedFd,
}

/// A failed setup step.
struct SetupError {
    invalid: bool,
    message: String,
}

fn internal(message: String) -> SetupError {
    SetupError {
        invalid: false,
        message,
    }
}

fn invalid(message: String) -> SetupError {
    SetupError {
        invalid: true,
        message,
    }
}

/// Whether the ready report was sent (the pipe is closed after it).
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Runs the child to its end. Call right after `fork`, in the child.
pub fn run(plan: ChildPlan<'_>) -> ! {
    // A panic must not unwind into the shim's code (the poll loop of a
    // process that is not the shim): report it and exit.
    let _ = std::panic::take_hook();
    let ready = plan.ready.as_raw_fd();
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_inner(plan))) {
        Ok(code) => code,
        Err(_) => {
            if !REPORTED.load(Ordering::SeqCst) {
                send(ready, &failure(internal("the Wasm child panicked".into())));
            }
            guest::TRAP_EXIT_CODE
        }
    };
    exit_now(code)
}

fn failure(err: SetupError) -> Report {
    Report::Failed {
        invalid: err.invalid,
        message: err.message,
    }
}

fn run_inner(plan: ChildPlan<'_>) -> i32 {
    let ready = plan.ready.as_raw_fd();
    let start = plan.start.as_raw_fd();
    let (prepared, marker, report) = match set_up(&plan, &[ready, start]) {
        Ok(prepared) => prepared,
        Err(err) => {
            send(ready, &failure(err));
            return 1;
        }
    };
    send(ready, &report);
    REPORTED.store(true, Ordering::SeqCst);
    // EOF on the pipe: the shim's create returns.
    drop(plan.ready);
    // Loading touched code (the compiler, the shim's) a waiting or idle
    // guest does not need: like the shim, shed those clean file pages.
    crate::memory::trim();

    let mut byte = [0u8; 1];
    let mut start_pipe = File::from(plan.start);
    match start_pipe.read(&mut byte) {
        Ok(1) => {}
        // The shim went away or deleted the container: never start.
        _ => return 0,
    }
    drop(start_pipe);
    interrupt::set_running();
    let outcome = prepared.run();
    if let Some(signal) = interrupt::requested() {
        return 128 + signal;
    }
    if let Outcome::OutOfMemory(_) = outcome {
        let _ = marker.record();
    }
    guest::report(&outcome);
    outcome.exit_code()
}

type Ready = (guest::Prepared, OomMarker, Report);

/// Every step up to a guest waiting for start.
fn set_up(plan: &ChildPlan<'_>, keep: &[RawFd]) -> Result<Ready, SetupError> {
    let bundle = plan.bundle;
    let mut phases = Phases::new();
    reset_signals().map_err(|errno| internal(format!("resetting signals: {errno}")))?;
    arrange_stdio(&plan.io, keep)?;
    if let Some(adj) = bundle.oom_score_adj {
        // Best effort: without CAP_SYS_RESOURCE a lower value is refused.
        let _ = std::fs::write("/proc/self/oom_score_adj", adj.to_string());
    }
    lean_threads();
    enter_namespaces(&bundle.namespaces)?;
    phases.mark("process");
    // Joining a cgroup waits for the kernel (an RCU grace period, often
    // milliseconds): it runs beside loading the code, and is done before
    // anything of the guest's runs or the process drops its privileges.
    let (engine, loaded) = std::thread::scope(|scope| {
        let joining = bundle.cgroup.as_ref().map(|cgroup| {
            std::thread::Builder::new()
                .name("cgroup-join".into())
                .stack_size(256 << 10)
                .spawn_scoped(scope, move || join_cgroup(plan.id, cgroup, bundle))
        });
        let loading = load_code(bundle);
        phases.mark("load");
        let joined = match joining {
            None => Ok(()),
            Some(Ok(thread)) => thread
                .join()
                .unwrap_or_else(|_| Err(internal("joining the cgroup panicked".into()))),
            Some(Err(err)) => Err(internal(format!("starting the cgroup thread: {err}"))),
        };
        phases.mark("cgroup-wait");
        joined.and(loading)
    })?;
    let marker = OomMarker::open(plan.state_dir)
        .map_err(|err| internal(format!("opening {}: {err}", plan.state_dir.display())))?;
    drop_privileges(&bundle.user)?;
    let spec = GuestSpec {
        args: bundle.args.clone(),
        env: bundle.env.clone(),
        cwd: bundle.cwd.clone(),
        preopens: bundle.preopens.clone(),
        memory_limit: bundle.memory_limit,
        function: bundle.function.clone(),
        http_port: bundle.http_port,
    };
    let prepared = guest::prepare(&engine, loaded.compiled, &spec).map_err(invalid)?;
    if !matches!(prepared, guest::Prepared::Http(_)) {
        // WASI's host calls run on a tokio runtime made on first use: make
        // it now, so that starting the guest does not wait for it.
        wasmtime_wasi::runtime::with_ambient_tokio_runtime(|| ());
    }
    phases.mark("prepare");
    let report = Report::Ready {
        cache: loaded.outcome.as_str().to_owned(),
        phases: phases.text,
        note: loaded.note,
    };
    Ok((prepared, marker, report))
}

/// The engine (with its interrupt watcher) and the guest's code.
fn load_code(bundle: &WasmBundle) -> Result<(wasmtime::Engine, Loaded), SetupError> {
    let engine = guest::engine().map_err(internal)?;
    interrupt::watch(engine.clone())
        .map_err(|err| internal(format!("starting the interrupt thread: {err}")))?;
    let loaded = load(&engine, bundle)?;
    Ok((engine, loaded))
}

/// How long each setup step took, for the shim's log.
struct Phases {
    last: Instant,
    text: String,
}

impl Phases {
    fn new() -> Self {
        Phases {
            last: Instant::now(),
            text: String::new(),
        }
    }

    /// Notes the time since the previous mark as step `name`.
    fn mark(&mut self, name: &str) {
        let now = Instant::now();
        let ms = now.duration_since(self.last).as_secs_f64() * 1000.0;
        if !self.text.is_empty() {
            self.text.push(',');
        }
        let _ = write!(self.text, "{name}={ms:.2}ms");
        self.last = now;
    }
}

/// Keeps the guest's helper threads few and their memory shared: one tokio
/// worker for WASI's host calls (a guest is one thread of work; a
/// `wasi:http` server sizes its own runtime), and one malloc arena for all
/// threads instead of one per thread. Call while the process has one thread.
fn lean_threads() {
    // SAFETY: the child has a single thread here, so nothing reads the
    // environment concurrently; the variable is the process's, never the
    // guest's (WASI gets the bundle's environment).
    unsafe { std::env::set_var("TOKIO_WORKER_THREADS", "1") };
    // SAFETY: mallopt only tunes the allocator.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

/// Writes a report on the ready pipe.
fn send(ready: RawFd, report: &Report) {
    // SAFETY: borrows the ready pipe for one write; it stays open.
    let mut pipe = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(ready) });
    let _ = pipe.write_all(report.encode().as_bytes());
}

/// Default dispositions for every signal (the shim's handlers are not the
/// guest's), SIGTERM and SIGINT blocked for the interrupt thread.
fn reset_signals() -> nix::Result<()> {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installs the default disposition, no handler.
        unsafe { sigaction(signal, &default) }?;
    }
    interrupt::block()
}

/// Puts the container's stdio on 0, 1 and 2, starts a new session (with the
/// pty as its terminal), and points every other inherited descriptor but
/// `keep` at /dev/null.
fn arrange_stdio(io: &ChildIo, keep: &[RawFd]) -> Result<(), SetupError> {
    let inherited = open_fds();
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/null")
        .map_err(|err| internal(format!("opening /dev/null: {err}")))?;
    let null_fd = null.as_raw_fd();
    let sources = match io {
        ChildIo::Pipes(stdio) => [&stdio.stdin, &stdio.stdout, &stdio.stderr]
            .map(|fd| fd.as_ref().map_or(null_fd, AsRawFd::as_raw_fd)),
        ChildIo::Pty(slave) => [slave.as_raw_fd(); 3],
    };
    setsid().map_err(|errno| internal(format!("setsid: {errno}")))?;
    if let ChildIo::Pty(slave) = io {
        // SAFETY: TIOCSCTTY on a pty slave descriptor this process holds.
        let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
        if rc < 0 {
            return Err(internal(format!(
                "making the pty the controlling terminal: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    // Fresh copies first, so that a source already on 0-2 is not clobbered.
    let mut copies = Vec::with_capacity(3);
    for source in sources {
        let copy = fcntl(source, FcntlArg::F_DUPFD_CLOEXEC(3))
            .map_err(|errno| internal(format!("duplicating stdio: {errno}")))?;
        // SAFETY: a descriptor just created, owned here.
        copies.push(unsafe { OwnedFd::from_raw_fd(copy) });
    }
    for (target, copy) in copies.iter().enumerate() {
        dup2(copy.as_raw_fd(), target as RawFd)
            .map_err(|errno| internal(format!("installing stdio {target}: {errno}")))?;
    }
    for fd in inherited {
        if fd > 2 && !keep.contains(&fd) {
            let _ = dup2(null_fd, fd);
        }
    }
    Ok(())
}

/// Joins the pod's network, IPC and UTS namespaces (or new ones).
fn enter_namespaces(namespaces: &[Namespace]) -> Result<(), SetupError> {
    for namespace in namespaces {
        let flag = match namespace.kind {
            LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
            LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
            LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
            _ => continue,
        };
        match &namespace.path {
            Some(path) => {
                let file = File::open(path)
                    .map_err(|err| internal(format!("opening {}: {err}", path.display())))?;
                setns(&file, flag)
                    .map_err(|errno| internal(format!("joining {}: {errno}", path.display())))?;
            }
            None => unshare(flag).map_err(|errno| {
                internal(format!(
                    "creating a {:?} namespace: {errno}",
                    namespace.kind
                ))
            })?,
        }
    }
    Ok(())
}

/// Creates and joins the container's cgroup and applies its resources.
fn join_cgroup(id: &str, cgroup: &Path, bundle: &WasmBundle) -> Result<(), SetupError> {
    let error = |message: String| internal(format!("cgroup {}: {message}", cgroup.display()));
    let manager = create_cgroup_manager(CgroupConfig {
        cgroup_path: cgroup.to_path_buf(),
        systemd_cgroup: false,
        container_name: id.to_owned(),
    })
    .map_err(|err| error(err.to_string()))?;
    manager
        .add_task(Pid::this())
        .map_err(|err| error(format!("joining: {err}")))?;
    if let Some(resources) = &bundle.resources {
        manager
            .apply(&ControllerOpt {
                resources,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|err| error(format!("applying resources: {err}")))?;
    }
    Ok(())
}

/// The guest's code, from the compile cache or compiled now.
fn load(engine: &wasmtime::Engine, bundle: &WasmBundle) -> Result<Loaded, SetupError> {
    let read = || read_in_root(&bundle.rootfs, &bundle.module);
    // Without an image ID the module's content is the key.
    let (image, mut wasm) = match &bundle.image {
        Some(image) => (image.clone(), None),
        None => {
            let wasm = read().map_err(invalid)?;
            let digest = hex::encode(Sha256::digest(&wasm));
            (format!("content:{digest}"), Some(wasm))
        }
    };
    let key = CacheKey {
        image: &image,
        module: &bundle.module,
        function: bundle.function.as_deref(),
    };
    let digest = key.digest(engine);
    let cache = bundle.cache_dir.as_deref().map(CompileCache::new);
    load_or_compile(engine, cache.as_ref(), &digest, || match wasm.take() {
        Some(wasm) => Ok(wasm),
        None => read(),
    })
    .map_err(invalid)
}

/// Reads `path` inside `rootfs`, symlinks resolved within it.
fn read_in_root(rootfs: &Path, path: &str) -> Result<Vec<u8>, String> {
    let error = |what: String| format!("reading {path} in the container's rootfs: {what}");
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(rootfs)
        .map_err(|err| error(format!("{}: {err}", rootfs.display())))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(root.as_raw_fd(), path.trim_start_matches('/'), how)
        .map_err(|errno| error(errno.to_string()))?;
    // SAFETY: a descriptor just opened, owned here.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut wasm = Vec::new();
    file.read_to_end(&mut wasm)
        .map_err(|err| error(err.to_string()))?;
    Ok(wasm)
}

/// Becomes `process.user`, for good.
fn drop_privileges(user: &GuestUser) -> Result<(), SetupError> {
    let groups: Vec<Gid> = user
        .additional_gids
        .iter()
        .copied()
        .map(Gid::from_raw)
        .collect();
    setgroups(&groups).map_err(|errno| internal(format!("setgroups: {errno}")))?;
    setgid(Gid::from_raw(user.gid))
        .map_err(|errno| internal(format!("setgid {}: {errno}", user.gid)))?;
    setuid(Uid::from_raw(user.uid))
        .map_err(|errno| internal(format!("setuid {}: {errno}", user.uid)))?;
    nix::sys::prctl::set_no_new_privs()
        .map_err(|errno| internal(format!("setting no_new_privs: {errno}")))
}

/// Flushes the guest's buffered output and ends the process without
/// running the shim's exit code.
fn exit_now(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: ends the process; nothing of the shim's runs.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(root.join("app/m.wasm"), b"inside").unwrap();
        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink("/app/m.wasm", root.join("abs.wasm")).unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("app/up.wasm")).unwrap();
        assert_eq!(read_in_root(&root, "/app/m.wasm").unwrap(), b"inside");
        // An absolute link resolves inside the rootfs.
        assert_eq!(read_in_root(&root, "/abs.wasm").unwrap(), b"inside");
        // `..` stops at the rootfs: /secret inside it does not exist.
        let err = read_in_root(&root, "/app/up.wasm").unwrap_err();
        assert!(err.contains("ENOENT"), "{err}");
        assert!(read_in_root(&root, "/missing.wasm").is_err());
    }
}
