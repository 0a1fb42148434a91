//! Child processes that never outlive the test.
//!
//! [`GuardedChild`] kills its process on drop (also while a test panics).
//! If the test process itself dies (SIGKILL from a nextest timeout), the
//! kernel kills the child through `PR_SET_PDEATHSIG`. That signal fires
//! when the *thread* that forked exits, not the process, so all children
//! are forked from one spawner thread that lives as long as the process —
//! never from a test thread or a tokio blocking thread that may end early.

use std::io;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// A child process killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct GuardedChild {
    name: String,
    child: Child,
}

impl GuardedChild {
    /// Spawns `command` with `PR_SET_PDEATHSIG(SIGKILL)`; `name` is used in
    /// errors and logs.
    pub fn spawn(name: &str, mut command: Command) -> Result<GuardedChild> {
        // SAFETY: prctl is async-signal-safe and touches no memory of the
        // parent; this runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = spawn_from_spawner_thread(command).map_err(|source| HarnessError::Spawn {
            program: name.to_string(),
            source,
        })?;
        tracing::debug!(name, pid = child.id(), "spawned child process");
        Ok(GuardedChild {
            name: name.to_string(),
            child,
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Some(status)` if the process has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child.try_wait().map_err(|source| HarnessError::Spawn {
            program: self.name.clone(),
            source,
        })
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) without waiting.
    pub fn signal(&self, signal: i32) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap_or(libc::pid_t::MAX);
        // SAFETY: plain syscall on a pid we own and have not reaped yet.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(HarnessError::Spawn {
                program: self.name.clone(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills (SIGKILL) and reaps the process now.
    pub fn kill(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GuardedChild {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_from_spawner_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: Mutex<Option<Sender<SpawnRequest>>> = Mutex::new(None);
    let mut guard = SPAWNER.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("skiff-test-spawner".to_string())
            .spawn(move || {
                // `rx` lives in a static sender's peer: this loop only ends
                // when the process does.
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })?;
        *guard = Some(tx);
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    guard
        .as_ref()
        .ok_or_else(|| io::Error::other("spawner thread missing"))?
        .send((command, reply_tx))
        .map_err(|_| io::Error::other("spawner thread stopped"))?;
    drop(guard);
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread stopped"))?
}
