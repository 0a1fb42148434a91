//! A container's stdio in the shim: its output goes to the CRI log and to
//! every attached client (tee); attached clients' input goes to its stdin.
//! Every descriptor the shim reads or writes here is non-blocking; a client
//! too slow to keep up is detached rather than allowed to stall the logs.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::{read, write};

use crate::crilog::{CriLogFile, LineSplitter, LogStream};
use crate::protocol::FdRole;
use crate::unix::set_nonblocking;

/// Most output buffered for one slow attached client before it is detached.
const MAX_ATTACH_BACKLOG: usize = 1 << 20;

/// One stream the container writes: a pipe's read end, or its pty master.
#[derive(Debug)]
pub(crate) struct Output {
    fd: OwnedFd,
    stream: LogStream,
    splitter: LineSplitter,
    pub open: bool,
}

/// Where input for the container goes: its stdin pipe or its pty master.
#[derive(Debug)]
pub(crate) struct StdinSink {
    fd: OwnedFd,
    pending: Vec<u8>,
}

/// A client attached to the container.
#[derive(Debug)]
pub(crate) struct Attacher {
    pub id: u64,
    outputs: Vec<AttachOutput>,
    input: Option<OwnedFd>,
}

#[derive(Debug)]
struct AttachOutput {
    stream: LogStream,
    fd: OwnedFd,
    pending: Vec<u8>,
    /// The container's stream ended: close once `pending` is out.
    closing: bool,
}

/// What the poll loop should watch for a container, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IoKey {
    Output(usize),
    Stdin,
    AttachIn(u64),
    AttachOut(u64, usize),
}

/// A container's stdio.
#[derive(Debug)]
pub(crate) struct ContainerIo {
    pub log: Option<CriLogFile>,
    pub outputs: Vec<Output>,
    pub stdin: Option<StdinSink>,
    pub stdin_once: bool,
    pub attachers: Vec<Attacher>,
    /// The pty master, for resizing.
    pub pty: Option<OwnedFd>,
}

impl ContainerIo {
    /// Stdio over pipes: the shim's ends (made non-blocking here).
    pub fn pipes(
        log: Option<CriLogFile>,
        stdout: OwnedFd,
        stderr: OwnedFd,
        stdin: Option<OwnedFd>,
        stdin_once: bool,
    ) -> std::io::Result<Self> {
        let mut outputs = Vec::new();
        for (fd, stream) in [(stdout, LogStream::Stdout), (stderr, LogStream::Stderr)] {
            set_nonblocking(fd.as_fd())?;
            outputs.push(Output::new(fd, stream));
        }
        let stdin = match stdin {
            Some(fd) => {
                set_nonblocking(fd.as_fd())?;
                Some(StdinSink::new(fd))
            }
            None => None,
        };
        Ok(ContainerIo {
            log,
            outputs,
            stdin,
            stdin_once,
            attachers: Vec::new(),
            pty: None,
        })
    }

    /// Stdio over a pty: output is the master's, logged as stdout.
    pub fn terminal(
        log: Option<CriLogFile>,
        master: OwnedFd,
        with_stdin: bool,
    ) -> std::io::Result<Self> {
        set_nonblocking(master.as_fd())?;
        let output = Output::new(master.try_clone()?, LogStream::Stdout);
        let stdin = if with_stdin {
            Some(StdinSink::new(master.try_clone()?))
        } else {
            None
        };
        Ok(ContainerIo {
            log,
            outputs: vec![output],
            stdin,
            // Closing stdin of a pty cannot signal EOF (the master carries output too).
            stdin_once: false,
            attachers: Vec::new(),
            pty: Some(master),
        })
    }

    /// Whether the container was created with a pty.
    pub fn is_tty(&self) -> bool {
        self.pty.is_some()
    }

    /// Appends what to poll, keyed for [`ContainerIo::ready`].
    pub fn interests<'a>(&'a self, out: &mut Vec<(IoKey, BorrowedFd<'a>, PollFlags)>) {
        for (index, output) in self.outputs.iter().enumerate() {
            if output.open {
                out.push((IoKey::Output(index), output.fd.as_fd(), PollFlags::POLLIN));
            }
        }
        let stdin_busy = match &self.stdin {
            Some(sink) if !sink.pending.is_empty() => {
                out.push((IoKey::Stdin, sink.fd.as_fd(), PollFlags::POLLOUT));
                true
            }
            Some(_) => false,
            None => true,
        };
        for attacher in &self.attachers {
            // Input waits while the container's stdin is full: backpressure.
            if let Some(input) = &attacher.input
                && !stdin_busy
            {
                out.push((
                    IoKey::AttachIn(attacher.id),
                    input.as_fd(),
                    PollFlags::POLLIN,
                ));
            }
            for (index, output) in attacher.outputs.iter().enumerate() {
                if !output.pending.is_empty() {
                    out.push((
                        IoKey::AttachOut(attacher.id, index),
                        output.fd.as_fd(),
                        PollFlags::POLLOUT,
                    ));
                }
            }
        }
    }

    /// Handles readiness of one of this container's descriptors.
    pub fn ready(&mut self, key: IoKey, buf: &mut [u8]) {
        match key {
            IoKey::Output(index) => self.read_output(index, buf),
            IoKey::Stdin => self.flush_stdin(),
            IoKey::AttachIn(id) => self.read_attacher_input(id, buf),
            IoKey::AttachOut(id, index) => self.flush_attacher(id, index),
        }
    }

    /// Reads everything the container has written so far (at its exit).
    pub fn drain(&mut self, buf: &mut [u8]) {
        for index in 0..self.outputs.len() {
            // Bounded: a process left behind could write forever.
            for _ in 0..64 {
                if !self.outputs[index].open || !self.read_output_once(index, buf) {
                    break;
                }
            }
        }
    }

    /// Whether every output stream reached its end.
    #[cfg(test)]
    pub fn outputs_closed(&self) -> bool {
        self.outputs.iter().all(|output| !output.open)
    }

    /// Stops taking input (the container exited): attached writers see EPIPE.
    pub fn close_input(&mut self) {
        self.stdin = None;
        for attacher in &mut self.attachers {
            attacher.input = None;
        }
    }

    /// Attaches a client: returns the descriptors to hand over and their roles.
    pub fn attach(&mut self, id: u64) -> std::io::Result<(Vec<OwnedFd>, Vec<FdRole>)> {
        let mut give = Vec::new();
        let mut roles = Vec::new();
        let mut outputs = Vec::new();
        let mut input = None;
        if self.is_tty() {
            let (ours, theirs) = socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )?;
            set_nonblocking(ours.as_fd())?;
            if self.stdin.is_some() {
                input = Some(ours.try_clone()?);
            }
            outputs.push(AttachOutput::new(
                LogStream::Stdout,
                ours,
                !self.outputs[0].open,
            ));
            give.push(theirs);
            roles.push(FdRole::Terminal);
        } else {
            if self.stdin.is_some() {
                let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                set_nonblocking(read_end.as_fd())?;
                input = Some(read_end);
                give.push(write_end);
                roles.push(FdRole::Stdin);
            }
            for (output, role) in self.outputs.iter().zip([FdRole::Stdout, FdRole::Stderr]) {
                let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                set_nonblocking(write_end.as_fd())?;
                outputs.push(AttachOutput::new(output.stream, write_end, !output.open));
                give.push(read_end);
                roles.push(role);
            }
        }
        let mut attacher = Attacher { id, outputs, input };
        attacher.outputs.retain(|output| !output.closing);
        self.attachers.push(attacher);
        Ok((give, roles))
    }

    fn read_output(&mut self, index: usize, buf: &mut [u8]) {
        // A few reads per wakeup keep a chatty container from starving others.
        for _ in 0..4 {
            if !self.read_output_once(index, buf) {
                break;
            }
        }
    }

    /// One read; true when it got data (more may follow).
    fn read_output_once(&mut self, index: usize, buf: &mut [u8]) -> bool {
        let Some(output) = self.outputs.get_mut(index) else {
            return false;
        };
        let n = match read(output.fd.as_raw_fd(), buf) {
            Ok(n) => n,
            Err(Errno::EAGAIN) => return false,
            Err(Errno::EINTR) => return true,
            // EIO: every slave of the pty closed.
            Err(_) => 0,
        };
        let stream = output.stream;
        let now = SystemTime::now();
        let log = &mut self.log;
        let mut emit = |tag, content: &[u8]| {
            if let Some(log) = log.as_mut()
                && let Err(err) = log.write_record(now, stream, tag, content)
            {
                tracing::warn!(path = %log.path().display(), %err, "writing the container log");
            }
        };
        if n == 0 {
            output.open = false;
            output.splitter.finish(&mut emit);
            for attacher in &mut self.attachers {
                for out in &mut attacher.outputs {
                    if out.stream == stream {
                        out.closing = true;
                    }
                }
            }
            self.prune_attachers();
            return false;
        }
        output.splitter.push(&buf[..n], &mut emit);
        for attacher in &mut self.attachers {
            for out in &mut attacher.outputs {
                if out.stream == stream {
                    out.send(&buf[..n]);
                }
            }
        }
        self.prune_attachers();
        true
    }

    fn flush_stdin(&mut self) {
        if let Some(sink) = &mut self.stdin
            && sink.flush().is_err()
        {
            // The container closed its stdin.
            self.stdin = None;
        }
    }

    fn read_attacher_input(&mut self, id: u64, buf: &mut [u8]) {
        let Some(attacher) = self.attachers.iter_mut().find(|a| a.id == id) else {
            return;
        };
        let Some(input) = &attacher.input else {
            return;
        };
        let n = match read(input.as_raw_fd(), buf) {
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => return,
            Err(_) => 0,
        };
        if n == 0 {
            attacher.input = None;
            if self.stdin_once {
                // The first attach session ended: the container sees EOF.
                self.stdin = None;
            }
            self.prune_attachers();
            return;
        }
        if let Some(sink) = &mut self.stdin {
            sink.pending.extend_from_slice(&buf[..n]);
            if sink.flush().is_err() {
                self.stdin = None;
            }
        }
    }

    fn flush_attacher(&mut self, id: u64, index: usize) {
        if let Some(attacher) = self.attachers.iter_mut().find(|a| a.id == id)
            && let Some(output) = attacher.outputs.get_mut(index)
        {
            output.flush();
        }
        self.prune_attachers();
    }

    /// Drops finished outputs, and attachers with nothing left.
    fn prune_attachers(&mut self) {
        for attacher in &mut self.attachers {
            attacher
                .outputs
                .retain(|output| !(output.closing && output.pending.is_empty()));
        }
        self.attachers
            .retain(|attacher| !attacher.outputs.is_empty() || attacher.input.is_some());
    }
}

impl Output {
    fn new(fd: OwnedFd, stream: LogStream) -> Self {
        Output {
            fd,
            stream,
            splitter: LineSplitter::default(),
            open: true,
        }
    }
}

impl StdinSink {
    fn new(fd: OwnedFd) -> Self {
        StdinSink {
            fd,
            pending: Vec::new(),
        }
    }

    /// Writes what it can; an error means the reader is gone.
    fn flush(&mut self) -> Result<(), Errno> {
        while !self.pending.is_empty() {
            match write(&self.fd, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(errno),
            }
        }
        Ok(())
    }
}

impl AttachOutput {
    fn new(stream: LogStream, fd: OwnedFd, closing: bool) -> Self {
        AttachOutput {
            stream,
            fd,
            pending: Vec::new(),
            closing,
        }
    }

    fn send(&mut self, data: &[u8]) {
        if self.pending.is_empty() {
            let written = loop {
                match write(&self.fd, data) {
                    Ok(n) => break n,
                    Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) => break 0,
                    Err(_) => {
                        self.mark_broken();
                        return;
                    }
                }
            };
            self.pending.extend_from_slice(&data[written..]);
        } else {
            self.pending.extend_from_slice(data);
        }
        if self.pending.len() > MAX_ATTACH_BACKLOG {
            tracing::warn!("an attached client fell too far behind: detaching it");
            self.mark_broken();
        }
    }

    fn flush(&mut self) {
        while !self.pending.is_empty() {
            match write(&self.fd, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.mark_broken();
                    return;
                }
            }
        }
    }

    /// The client is gone or too slow: closing with nothing pending is pruned next.
    fn mark_broken(&mut self) {
        self.pending = Vec::new();
        self.closing = true;
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
    }

    #[test]
    fn output_is_logged_and_teed_to_attachers() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("c.log");
        let (out_r, out_w) = pipe();
        let (err_r, err_w) = pipe();
        let (in_r, in_w) = pipe();
        let log = CriLogFile::open(&log_path).unwrap();
        let mut io = ContainerIo::pipes(Some(log), out_r, err_r, Some(in_w), true).unwrap();
        let (fds, roles) = io.attach(1).unwrap();
        assert_eq!(roles, [FdRole::Stdin, FdRole::Stdout, FdRole::Stderr]);
        let mut fds = fds.into_iter();
        let mut attach_in = std::fs::File::from(fds.next().unwrap());
        let mut attach_out = std::fs::File::from(fds.next().unwrap());
        let mut attach_err = std::fs::File::from(fds.next().unwrap());

        let mut buf = vec![0u8; 4096];
        let mut out_w = std::fs::File::from(out_w);
        out_w.write_all(b"line one\nhalf").unwrap();
        io.ready(IoKey::Output(0), &mut buf);
        drop(out_w);
        io.ready(IoKey::Output(0), &mut buf);
        drop(err_w);
        io.ready(IoKey::Output(1), &mut buf);
        assert!(io.outputs_closed());

        let mut got = String::new();
        attach_out.read_to_string(&mut got).unwrap();
        assert_eq!(got, "line one\nhalf");
        got.clear();
        attach_err.read_to_string(&mut got).unwrap();
        assert_eq!(got, "");

        let log = std::fs::read_to_string(&log_path).unwrap();
        let records: Vec<&str> = log
            .lines()
            .map(|line| line.split_once(' ').unwrap().1)
            .collect();
        assert_eq!(records, ["stdout F line one", "stdout F half"]);

        // Input flows to stdin; with stdin_once, the end of the session closes it.
        attach_in.write_all(b"hi\n").unwrap();
        drop(attach_in);
        io.ready(IoKey::AttachIn(1), &mut buf);
        io.ready(IoKey::AttachIn(1), &mut buf);
        assert!(io.stdin.is_none());
        let mut got = String::new();
        std::fs::File::from(in_r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "hi\n");
        assert!(io.attachers.is_empty());
    }

    #[test]
    fn a_gone_attacher_is_dropped() {
        let (out_r, out_w) = pipe();
        let (err_r, _err_w) = pipe();
        let mut io = ContainerIo::pipes(None, out_r, err_r, None, false).unwrap();
        let (fds, _) = io.attach(7).unwrap();
        drop(fds);
        let mut buf = vec![0u8; 64];
        std::fs::File::from(out_w).write_all(b"x\n").unwrap();
        io.ready(IoKey::Output(0), &mut buf);
        assert!(io.attachers.iter().all(|a| a.outputs.len() < 2));
    }
}
