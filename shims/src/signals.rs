//! Signals into the poll loop through a self-pipe.
//!
//! Handlers (not a blocked mask with signalfd) because a blocked mask is
//! inherited by every container process libcontainer forks from the shim,
//! while handlers are reset by exec. `SA_RESTART` keeps libcontainer's
//! blocking calls from failing with EINTR.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::unistd::{pipe2, read};

/// The wake pipe's write end, for the handler.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// The shim's pid: the handlers are inherited by the processes libcontainer
/// forks (until they exec), where they must act as if they were not there.
static SHIM_PID: AtomicI32 = AtomicI32::new(-1);

/// In a forked child, acts as the default action would: a created
/// container's init dies of SIGTERM. (Not by re-raising: as PID 1 of its
/// PID namespace the init would ignore a default-action signal.)
fn default_action_if_not_the_shim(signal: libc::c_int) -> bool {
    // SAFETY: getpid, signal and _exit are async-signal-safe.
    unsafe {
        if libc::getpid() == SHIM_PID.load(Ordering::Relaxed) {
            return false;
        }
        if signal == libc::SIGCHLD {
            libc::signal(signal, libc::SIG_DFL);
        } else {
            libc::_exit(128 + signal);
        }
    }
    true
}

extern "C" fn on_signal(signal: libc::c_int) {
    if default_action_if_not_the_shim(signal) {
        return;
    }
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    // SAFETY: only async-signal-safe calls; errno is saved and restored so
    // the interrupted code never sees ours.
    unsafe {
        let errno = *libc::__errno_location();
        let byte = signal as u8;
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *libc::__errno_location() = errno;
    }
}

extern "C" fn ignore_signal(signal: libc::c_int) {
    default_action_if_not_the_shim(signal);
}

/// Installs the handlers; returns the pipe's read end, readable when a
/// signal arrived (one byte per signal: its number).
pub fn install() -> Result<OwnedFd, Errno> {
    SHIM_PID.store(std::process::id() as i32, Ordering::Relaxed);
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    // The write end lives as long as the process.
    WAKE_FD.store(write_end.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(write_end);
    let wake = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
        SigSet::empty(),
    );
    for signal in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only writes to a pipe.
        unsafe { sigaction(signal, &wake) }?;
    }
    // Not SIG_IGN: that would be inherited by the containers' processes.
    let ignore = SigAction::new(
        SigHandler::Handler(ignore_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGPIPE, Signal::SIGHUP] {
        // SAFETY: the handler does nothing.
        unsafe { sigaction(signal, &ignore) }?;
    }
    Ok(read_end)
}

/// The signals that arrived since the last call.
pub fn drain_wake_pipe(wake: &OwnedFd) -> Vec<i32> {
    let mut signals = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match read(wake.as_fd().as_raw_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => signals.extend(buf[..n].iter().map(|&b| i32::from(b))),
        }
    }
    signals.sort_unstable();
    signals.dedup();
    signals
}
