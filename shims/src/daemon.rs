//! `skiff shim`: daemonize, pin the pod's namespaces, serve.
//!
//! The process the runtime starts forks, the child starts a new session and
//! forks again: the grandchild is the shim, outside the runtime's process
//! group and session, so a `kill -9` of the runtime (or of its group) never
//! touches it. The first process waits on a pipe until the shim is ready
//! (socket bound, namespaces pinned) or failed, and exits 0 or 1 with the
//! failure on stderr.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, dup2, fork, pipe2, setsid};

use crate::args::ShimArgs;
use crate::engine::Dispatch;
use crate::logger::FileLogger;
use crate::namespaces::{PinRequest, pin_namespaces, unpin_namespaces};
use crate::protocol::{EXITS_DIR, LOG_FILE, PID_FILE, SOCKET_NAME, STATE_DIR, WASM_STATE_DIR};
use crate::server::Shim;
use crate::unix::bind_unix;

/// Variables meant for the runtime's own process (systemd socket activation
/// and readiness). libcontainer's init reads `LISTEN_FDS` from the shim's
/// environment and would pass that many descriptors into every container.
const RUNTIME_ONLY_ENV: [&str; 4] = [
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
];

/// Runs `skiff shim`: returns once the shim is ready (it lives on, detached),
/// with a failure described on stderr. Call before any other thread exists.
pub fn run(args: ShimArgs) -> ExitCode {
    if let Err(message) = check(&args) {
        report(&message);
        return ExitCode::from(2);
    }
    let (ready_r, ready_w) = match pipe2(OFlag::O_CLOEXEC) {
        Ok(pipe) => pipe,
        Err(errno) => {
            report(&format!("creating a pipe: {errno}"));
            return ExitCode::FAILURE;
        }
    };
    // SAFETY: the process has one thread (the caller's contract).
    match unsafe { fork() } {
        Err(errno) => {
            report(&format!("forking: {errno}"));
            ExitCode::FAILURE
        }
        Ok(ForkResult::Parent { child }) => {
            drop(ready_w);
            let _ = waitpid(child, None);
            let mut answer = String::new();
            let _ = File::from(ready_r).read_to_string(&mut answer);
            if answer.starts_with("ok") {
                ExitCode::SUCCESS
            } else if answer.is_empty() {
                report("the shim died before it was ready (see shim.log)");
                ExitCode::FAILURE
            } else {
                report(answer.trim_end());
                ExitCode::FAILURE
            }
        }
        Ok(ForkResult::Child) => {
            drop(ready_r);
            let _ = setsid();
            // SAFETY: still one thread.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    let code = daemon(&args, ready_w);
                    std::process::exit(code)
                }
                // SAFETY: _exit skips destructors, which belong to the shim now.
                _ => unsafe { libc::_exit(0) },
            }
        }
    }
}

fn check(args: &ShimArgs) -> Result<(), String> {
    if !args.pod_dir.is_absolute() || !args.pod_dir.is_dir() {
        return Err(format!(
            "--pod-dir {} must be an existing absolute directory",
            args.pod_dir.display()
        ));
    }
    if args.sandbox_id.is_empty() {
        return Err("--sandbox-id must not be empty".into());
    }
    Ok(())
}

// The foreground process's stderr is how the runtime learns why a shim failed.
fn report(message: &str) {
    let _ = writeln!(std::io::stderr(), "skiff shim: {message}");
}

/// The shim itself; returns its exit code.
fn daemon(args: &ShimArgs, ready: OwnedFd) -> i32 {
    detach_stdio();
    for name in RUNTIME_ONLY_ENV {
        // SAFETY: the process has one thread; nothing reads the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    let pod_dir = args.pod_dir.as_path();
    // Relative socket names stay short whatever the pod directory's length.
    if let Err(err) = std::env::set_current_dir(pod_dir) {
        return fail(
            ready,
            &format!("entering {}: {err}", pod_dir.display()),
            None,
        );
    }
    if let Ok(log) = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(pod_dir.join(LOG_FILE))
    {
        FileLogger::new(log, args.debug).install();
    }
    std::panic::set_hook(Box::new(|info| tracing::error!(%info, "panic")));
    if let Err(errno) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(%errno, "cannot become the containers' subreaper");
    }
    let socket = pod_dir.join(SOCKET_NAME);
    if UnixStream::connect(&socket).is_ok() {
        return fail(ready, "another shim already serves this pod", None);
    }
    let _ = fs::remove_file(&socket);

    let pinned = match pin_namespaces(PinRequest {
        pod_dir,
        namespaces: &args.namespaces,
        hostname: args.hostname.as_deref(),
        cgroup_parent: args.cgroup_parent.as_deref(),
    }) {
        Ok(pinned) => pinned,
        Err(err) => return fail(ready, &err.to_string(), None),
    };
    let undo = Some((pod_dir, pinned.pod_init));
    let wake = match crate::signals::install() {
        Ok(wake) => wake,
        Err(errno) => return fail(ready, &format!("installing signal handlers: {errno}"), undo),
    };
    let engine = match Dispatch::new(&pod_dir.join(STATE_DIR), &pod_dir.join(WASM_STATE_DIR)) {
        Ok(engine) => engine,
        Err(err) => return fail(ready, &err.to_string(), undo),
    };
    if let Err(err) = fs::create_dir_all(pod_dir.join(EXITS_DIR)) {
        return fail(ready, &format!("creating {EXITS_DIR}/: {err}"), undo);
    }
    let listener = match bind_unix(&socket).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
        Ok(listener) => listener,
        Err(err) => return fail(ready, &format!("binding {}: {err}", socket.display()), undo),
    };
    // Only root talks to a shim: it runs anything in the pod's containers.
    if let Err(err) = fs::set_permissions(&socket, fs::Permissions::from_mode(0o600)) {
        return fail(
            ready,
            &format!("restricting {}: {err}", socket.display()),
            undo,
        );
    }
    if let Err(err) = write_pid_file(pod_dir) {
        let _ = fs::remove_file(&socket);
        return fail(ready, &format!("writing {PID_FILE}: {err}"), undo);
    }
    tracing::info!(
        sandbox_id = %args.sandbox_id,
        pid = std::process::id(),
        namespaces = ?args.namespaces,
        "shim ready"
    );
    let _ = nix::unistd::write(&ready, b"ok\n");
    drop(ready);

    let mut shim = Shim::new(
        engine,
        pod_dir.to_path_buf(),
        args.sandbox_id.clone(),
        pinned.pod_init,
    );
    shim.serve(&listener, &wake);
    drop(listener);
    let _ = fs::remove_file(&socket);
    let _ = fs::remove_file(pod_dir.join(PID_FILE));
    tracing::info!("shim exiting");
    0
}

/// Fails startup: undoes the namespaces, tells the waiting parent.
fn fail(ready: OwnedFd, message: &str, undo: Option<(&Path, Option<nix::unistd::Pid>)>) -> i32 {
    tracing::error!(message, "shim failed to start");
    if let Some((pod_dir, pod_init)) = undo {
        if let Some(pid) = pod_init {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        let _ = unpin_namespaces(pod_dir);
    }
    let _ = nix::unistd::write(&ready, message.as_bytes());
    1
}

/// Points stdin, stdout and stderr at /dev/null: containers without their
/// own stdin inherit the shim's (libcontainer reopens /dev/null inside).
fn detach_stdio() {
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            let _ = dup2(null.as_raw_fd(), fd);
        }
    }
}

fn write_pid_file(pod_dir: &Path) -> std::io::Result<()> {
    let tmp = pod_dir.join(format!(".{PID_FILE}.tmp"));
    fs::write(&tmp, format!("{}\n", std::process::id()))?;
    fs::rename(&tmp, pod_dir.join(PID_FILE))
}
