//! The shim's single-threaded poll loop: client connections, container
//! stdio, and child exits (SIGCHLD through a self-pipe).
//!
//! Requests run to completion one at a time (creating a container forks,
//! which is only safe with one thread); meanwhile container output waits in
//! its pipes.

mod conn;
mod exits;
mod io;
#[cfg(test)]
mod tests;
mod verbs;

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::Pid;

use self::conn::{Conn, ConnState, Received};
use self::io::{ContainerIo, IoKey};
use crate::engine::Engine;
use crate::protocol::{ContainerState, ContainerStatus, ErrorKind, Event, Request, Response};
use crate::signals::drain_wake_pipe;

/// A container the shim owns.
#[derive(Debug)]
pub(crate) struct ContainerRecord {
    pub state: ContainerState,
    pub io: ContainerIo,
}

/// An exec process the shim started.
#[derive(Debug)]
pub(crate) struct ExecRecord {
    pub container: String,
    pub pid: Pid,
    pub exit_code: Option<i32>,
    /// The pty master, kept for resizing.
    pub pty: Option<OwnedFd>,
    /// Connections waiting for its exit.
    pub waiters: Vec<u64>,
}

/// How a request is answered.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Now, with these descriptors.
    Now(Response, Vec<OwnedFd>),
    /// Later (the connection was registered as a waiter).
    Later,
    /// By streaming events on the connection.
    Subscribe,
}

impl Reply {
    fn ok() -> Self {
        Reply::Now(Response::Ok, Vec::new())
    }

    fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Reply::Now(Response::error(kind, message), Vec::new())
    }
}

/// The shim's state.
#[derive(Debug)]
pub(crate) struct Shim<E: Engine> {
    pub engine: E,
    pub pod_dir: PathBuf,
    pub sandbox_id: String,
    pub containers: BTreeMap<String, ContainerRecord>,
    pub execs: HashMap<String, ExecRecord>,
    pub pod_init: Option<Pid>,
    conns: BTreeMap<u64, Conn>,
    next_token: u64,
    buf: Vec<u8>,
    /// Shutdown was accepted: exit once its answer is out.
    pub exiting: bool,
    /// Something happened since the memory was last trimmed.
    active: bool,
}

/// How long the shim waits idle after some work before trimming its memory.
const IDLE_TRIM_MS: u16 = 1000;

/// What the poll loop watches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Listener,
    Wake,
    Conn(u64),
    Container(String, IoKey),
}

/// Nanoseconds since the epoch.
pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl<E: Engine> Shim<E> {
    pub fn new(engine: E, pod_dir: PathBuf, sandbox_id: String, pod_init: Option<Pid>) -> Self {
        Shim {
            engine,
            pod_dir,
            sandbox_id,
            containers: BTreeMap::new(),
            execs: HashMap::new(),
            pod_init,
            conns: BTreeMap::new(),
            next_token: 1,
            buf: vec![0u8; 32 * 1024],
            exiting: false,
            active: true,
        }
    }

    /// Serves until a Shutdown is answered.
    pub fn serve(&mut self, listener: &UnixListener, wake: &OwnedFd) {
        while !(self.exiting && self.conns.values().all(|c| c.state != ConnState::Replying)) {
            let ready = match self.wait(listener, wake) {
                Ok(ready) if ready.is_empty() => {
                    // Idle for a while after some work: shed what it touched.
                    if self.active {
                        crate::memory::trim();
                        self.active = false;
                    }
                    continue;
                }
                Ok(ready) => {
                    self.active = true;
                    ready
                }
                Err(errno) => {
                    tracing::error!(%errno, "poll failed");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
            };
            for (key, flags) in ready {
                match key {
                    Key::Listener => self.accept(listener),
                    Key::Wake => {
                        for signal in drain_wake_pipe(wake) {
                            self.on_signal(signal);
                        }
                    }
                    Key::Conn(token) => self.conn_ready(token, flags),
                    Key::Container(id, io_key) => {
                        if let Some(record) = self.containers.get_mut(&id) {
                            record.io.ready(io_key, &mut self.buf);
                        }
                    }
                }
            }
        }
    }

    /// Polls everything, returning what is ready.
    fn wait(
        &self,
        listener: &UnixListener,
        wake: &OwnedFd,
    ) -> Result<Vec<(Key, PollFlags)>, Errno> {
        let mut interests: Vec<(Key, BorrowedFd<'_>, PollFlags)> =
            vec![(Key::Wake, wake.as_fd(), PollFlags::POLLIN)];
        if !self.exiting {
            interests.push((Key::Listener, listener.as_fd(), PollFlags::POLLIN));
        }
        for (token, conn) in &self.conns {
            let mut flags = PollFlags::empty();
            if conn.state != ConnState::Replying {
                flags |= PollFlags::POLLIN;
            }
            if conn.wants_write() {
                flags |= PollFlags::POLLOUT;
            }
            interests.push((Key::Conn(*token), conn.fd(), flags));
        }
        let mut io_interests = Vec::new();
        for (id, record) in &self.containers {
            io_interests.clear();
            record.io.interests(&mut io_interests);
            for (io_key, fd, flags) in io_interests.drain(..) {
                interests.push((Key::Container(id.clone(), io_key), fd, flags));
            }
        }
        let mut fds: Vec<PollFd<'_>> = interests
            .iter()
            .map(|(_, fd, flags)| PollFd::new(*fd, *flags))
            .collect();
        let timeout = if self.active {
            PollTimeout::from(IDLE_TRIM_MS)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok(Vec::new()),
            Err(errno) => return Err(errno),
        }
        Ok(interests
            .into_iter()
            .zip(fds.iter())
            .filter_map(|((key, _, _), fd)| {
                let revents = fd.revents().unwrap_or(PollFlags::empty());
                (!revents.is_empty()).then_some((key, revents))
            })
            .collect())
    }

    fn accept(&mut self, listener: &UnixListener) {
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    if let Err(err) = stream.set_nonblocking(true) {
                        tracing::warn!(%err, "a new connection failed");
                        continue;
                    }
                    let token = self.next_token;
                    self.next_token += 1;
                    self.conns.insert(token, Conn::new(stream));
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    tracing::warn!(%err, "accepting a connection failed");
                    return;
                }
            }
        }
    }

    fn conn_ready(&mut self, token: u64, flags: PollFlags) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if flags.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match conn.receive(&mut self.buf) {
                Received::Pending => {}
                Received::Closed => {
                    // A runtime that went away mid-request: nothing to answer.
                    self.drop_conn(token);
                    return;
                }
                Received::TooLong => {
                    conn.reply(
                        &Response::error(ErrorKind::InvalidArgument, "request line too long"),
                        Vec::new(),
                    );
                }
                Received::Line(line) => {
                    let reply = match serde_json::from_slice::<Request>(&line) {
                        Ok(request) => self.handle_guarded(token, request),
                        Err(err) => Reply::error(
                            ErrorKind::InvalidArgument,
                            format!("malformed request: {err}"),
                        ),
                    };
                    self.apply_reply(token, reply);
                }
            }
        }
        self.flush_conn(token);
    }

    /// Handles a request; a panic inside (libcontainer's) answers Internal
    /// instead of taking the pod's containers' shim down.
    fn handle_guarded(&mut self, token: u64, request: Request) -> Reply {
        let verb = verbs::name(&request);
        match catch_unwind(AssertUnwindSafe(|| self.handle(token, request))) {
            Ok(reply) => reply,
            Err(_) => {
                tracing::error!(verb, "handling a request panicked");
                Reply::error(
                    ErrorKind::Internal,
                    format!("the shim failed handling {verb}"),
                )
            }
        }
    }

    fn apply_reply(&mut self, token: u64, reply: Reply) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        match reply {
            Reply::Now(response, fds) => conn.reply(&response, fds),
            Reply::Later => conn.state = ConnState::Waiting,
            Reply::Subscribe => conn.state = ConnState::Subscribed,
        }
    }

    fn flush_conn(&mut self, token: u64) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.flush().is_err() || conn.done() {
            self.drop_conn(token);
        }
    }

    fn drop_conn(&mut self, token: u64) {
        self.conns.remove(&token);
        for exec in self.execs.values_mut() {
            exec.waiters.retain(|waiter| *waiter != token);
        }
    }

    /// Answers a waiting connection.
    pub(crate) fn answer(&mut self, token: u64, response: Response) {
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.reply(&response, Vec::new());
        }
        self.flush_conn(token);
    }

    /// Sends an event to every subscriber.
    pub(crate) fn publish(&mut self, event: Event) {
        let Ok(mut line) = serde_json::to_vec(&event) else {
            return;
        };
        line.push(b'\n');
        let subscribers: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, conn)| conn.state == ConnState::Subscribed)
            .map(|(token, _)| *token)
            .collect();
        for token in subscribers {
            let keep = self
                .conns
                .get_mut(&token)
                .is_some_and(|conn| conn.push_event(&line));
            if keep {
                self.flush_conn(token);
            } else {
                tracing::warn!("an event subscriber fell too far behind: dropping it");
                self.drop_conn(token);
            }
        }
    }

    fn on_signal(&mut self, signal: i32) {
        match signal {
            libc::SIGCHLD => self.reap(),
            libc::SIGTERM | libc::SIGINT => {
                let live = self.live_containers();
                if live.is_empty() {
                    tracing::info!(signal, "no container runs: shutting down");
                    self.stop_pod_init();
                    self.exiting = true;
                } else {
                    tracing::warn!(signal, ?live, "ignoring the signal while containers run");
                }
            }
            _ => {}
        }
    }

    /// Containers with a live init process.
    pub(crate) fn live_containers(&self) -> Vec<String> {
        self.containers
            .iter()
            .filter(|(_, record)| record.state.status != ContainerStatus::Exited)
            .map(|(id, _)| id.clone())
            .collect()
    }
}
