//! Stopping a guest: SIGTERM (or SIGINT) becomes an epoch interruption.
//!
//! The child blocks both signals in its first thread, so every thread it
//! starts later (compilation, WASI's tokio runtime) inherits the mask and
//! only a watcher thread, waiting in `sigwait`, receives them. Before the
//! guest runs the watcher exits at once (as the default action would);
//! while it runs the watcher bumps the engine's epoch, which traps the guest
//! at its next loop header or function entry, and the child exits with
//! 128 + signal. A guest blocked in a host call never reaches such a check:
//! after [`GRACE`] the watcher ends the process itself, with the same code.
//! A guest that is a server (see `http`) also registers a hook, so that it
//! stops accepting instead of starting fresh, uninterruptible stores.
//!
//! The watcher also keeps an idle guest small: [`TRIMS`] after the guest
//! started it sheds the code pages loading and starting touched (see
//! `crate::memory`); what the guest still runs maps back in.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use wasmtime::Engine;

/// How long a guest may take to notice the interruption.
pub const GRACE: Duration = Duration::from_millis(200);

/// When, after the guest started, its process trims its memory.
pub const TRIMS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(60),
];

/// Whether the guest is running (after start).
static RUNNING: AtomicBool = AtomicBool::new(false);
/// When the guest started.
static STARTED: OnceLock<Instant> = OnceLock::new();
/// The termination signal received, 0 for none.
static REQUESTED: AtomicI32 = AtomicI32::new(0);
/// What else an interruption of a running guest does.
static HOOK: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

fn termination_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

/// Blocks SIGTERM and SIGINT in the calling thread, and nothing else.
/// Call while the process has one thread.
pub fn block() -> nix::Result<()> {
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&termination_signals()), None)
}

/// Starts the watcher thread for `engine`.
pub fn watch(engine: Engine) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("wasm-interrupt".into())
        .stack_size(64 << 10)
        .spawn(move || {
            let set = termination_signals();
            let mut trims = TRIMS.iter().peekable();
            let signal = loop {
                // Wake up every second while trims are due.
                let timeout = trims.peek().map(|_| Duration::from_secs(1));
                if let Some(signal) = wait(&set, timeout) {
                    break signal;
                }
                if let (Some(started), Some(after)) = (STARTED.get(), trims.peek())
                    && started.elapsed() >= **after
                {
                    crate::memory::trim();
                    trims.next();
                }
            };
            REQUESTED.store(signal, Ordering::SeqCst);
            if RUNNING.load(Ordering::SeqCst) {
                engine.increment_epoch();
                if let Some(hook) = HOOK.get() {
                    hook();
                }
                std::thread::sleep(GRACE);
            }
            // SAFETY: ends the process without running anything of the
            // main thread's (which may hold locks, e.g. stdout's).
            unsafe { libc::_exit(128 + signal) }
        })
        .map(drop)
}

/// Waits for one of `set` (blocked in this thread) for at most `timeout`
/// (`None`: for ever); `None` when the time is up or the wait was
/// interrupted.
fn wait(set: &SigSet, timeout: Option<Duration>) -> Option<i32> {
    match timeout {
        None => set.wait().ok().map(|signal| signal as i32),
        Some(timeout) => {
            let timeout = libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            // SAFETY: a valid signal set and timespec; no siginfo wanted.
            let rc = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &timeout) };
            (rc > 0).then_some(rc)
        }
    }
}

/// Marks the guest as running: from now on a signal interrupts it.
pub fn set_running() {
    let _ = STARTED.set(Instant::now());
    RUNNING.store(true, Ordering::SeqCst);
}

/// Registers `hook`, run by the watcher right after it interrupts a
/// running guest (once: a later hook is ignored). A signal may come before
/// the hook is registered: check [`requested`] after registering.
pub fn on_interrupt(hook: impl Fn() + Send + Sync + 'static) {
    let _ = HOOK.set(Box::new(hook));
}

/// The termination signal received, if any.
pub fn requested() -> Option<i32> {
    match REQUESTED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}
