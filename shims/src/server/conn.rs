//! One client connection: a request line in, a response line (with
//! descriptors) out; or an open event stream.

use std::io::{ErrorKind as IoErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;

use crate::fdpass::send_with_fds;
use crate::protocol::{MAX_LINE, Response};

/// Most event bytes queued for a subscriber that does not read.
const MAX_EVENT_BACKLOG: usize = 4 << 20;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// Waiting for the request line.
    Reading,
    /// The answer waits for an event (an exec's exit).
    Waiting,
    /// Streaming events.
    Subscribed,
    /// Writing the answer, then closing.
    Replying,
}

/// What reading gave.
#[derive(Debug)]
pub(crate) enum Received {
    /// A complete request line.
    Line(Vec<u8>),
    /// Nothing complete yet.
    Pending,
    /// The peer closed or failed.
    Closed,
    /// The request line is longer than the protocol allows.
    TooLong,
}

/// A client connection.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: UnixStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_fds: Vec<OwnedFd>,
    pub state: ConnState,
}

impl Conn {
    /// Wraps an accepted (non-blocking) stream.
    pub fn new(stream: UnixStream) -> Self {
        Conn {
            stream,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_fds: Vec::new(),
            state: ConnState::Reading,
        }
    }

    /// The socket, for polling.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Whether there is output to write.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Reads what is available.
    pub fn receive(&mut self, buf: &mut [u8]) -> Received {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Received::Closed,
                Ok(n) => {
                    if self.state != ConnState::Reading {
                        // Nothing more is expected: ignore it.
                        continue;
                    }
                    let start = self.inbuf.len();
                    self.inbuf.extend_from_slice(&buf[..n]);
                    if let Some(at) = self.inbuf[start..].iter().position(|&b| b == b'\n') {
                        let mut line = std::mem::take(&mut self.inbuf);
                        line.truncate(start + at);
                        return Received::Line(line);
                    }
                    if self.inbuf.len() > MAX_LINE {
                        return Received::TooLong;
                    }
                }
                Err(err) if err.kind() == IoErrorKind::WouldBlock => return Received::Pending,
                Err(err) if err.kind() == IoErrorKind::Interrupted => {}
                Err(_) => return Received::Closed,
            }
        }
    }

    /// Queues the answer (and its descriptors), to be written before closing.
    pub fn reply(&mut self, response: &Response, fds: Vec<OwnedFd>) {
        self.queue_line(response);
        self.out_fds = fds;
        self.state = ConnState::Replying;
    }

    /// Queues one event line; false when the subscriber fell too far behind.
    pub fn push_event(&mut self, line: &[u8]) -> bool {
        if self.out.len() + line.len() > MAX_EVENT_BACKLOG {
            return false;
        }
        self.out.extend_from_slice(line);
        true
    }

    fn queue_line(&mut self, response: &Response) {
        let mut line = serde_json::to_vec(response).unwrap_or_else(|err| {
            serde_json::to_vec(&Response::error(
                crate::protocol::ErrorKind::Internal,
                format!("encoding the answer: {err}"),
            ))
            .unwrap_or_default()
        });
        line.push(b'\n');
        self.out.extend_from_slice(&line);
    }

    /// Writes what it can; `Err` when the peer is gone.
    pub fn flush(&mut self) -> Result<(), Errno> {
        while !self.out.is_empty() {
            let fds: Vec<RawFd> = self.out_fds.iter().map(|fd| fd.as_raw_fd()).collect();
            match send_with_fds(self.stream.as_fd(), &self.out, &fds) {
                Ok(n) => {
                    // Descriptors travel with the first byte sent; ours close now.
                    self.out_fds.clear();
                    self.out.drain(..n);
                }
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(errno),
            }
        }
        Ok(())
    }

    /// Whether a reply was fully written (the connection can close).
    pub fn done(&self) -> bool {
        self.state == ConnState::Replying && self.out.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};

    use super::*;
    use crate::protocol::Request;

    #[test]
    fn reads_a_line_and_answers() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut conn = Conn::new(ours);
        let mut buf = [0u8; 8];
        assert!(matches!(conn.receive(&mut buf), Received::Pending));
        theirs.write_all(b"{\"type\":").unwrap();
        assert!(matches!(conn.receive(&mut buf), Received::Pending));
        theirs.write_all(b"\"Hello\"}\n").unwrap();
        let Received::Line(line) = conn.receive(&mut buf) else {
            panic!("no line");
        };
        assert_eq!(
            serde_json::from_slice::<Request>(&line).unwrap(),
            Request::Hello
        );
        conn.reply(&Response::Ok, Vec::new());
        conn.flush().unwrap();
        assert!(conn.done());
        let mut answer = String::new();
        BufReader::new(theirs).read_line(&mut answer).unwrap();
        assert_eq!(answer, "{\"type\":\"Ok\"}\n");
    }

    #[test]
    fn a_gone_peer_is_reported() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        drop(theirs);
        let mut conn = Conn::new(ours);
        assert!(matches!(conn.receive(&mut [0u8; 8]), Received::Closed));
        conn.reply(&Response::Ok, Vec::new());
        assert!(conn.flush().is_err());
    }
}
