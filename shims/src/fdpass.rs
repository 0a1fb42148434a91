//! Bytes with file descriptors over unix stream sockets (`SCM_RIGHTS`).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// Most descriptors one message carries (stdin, stdout, stderr, spare).
pub const MAX_FDS: usize = 4;

/// Sends `data`, with `fds` attached to its first byte. Never raises SIGPIPE.
pub fn send_with_fds(socket: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> nix::Result<usize> {
    let iov = [IoSlice::new(data)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        cmsgs,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        None,
    )
}

/// Receives into `buf`, appending any passed descriptors (close-on-exec) to `fds`.
pub fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> nix::Result<usize> {
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )?;
    let bytes = msg.bytes;
    // Take ownership of every received descriptor before reporting truncation,
    // so none leaks.
    for message in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = message {
            for fd in received {
                // SAFETY: the kernel just installed this descriptor for us; nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn descriptors_travel_with_the_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let (pipe_r, pipe_w) = nix::unistd::pipe().unwrap();
        send_with_fds(a.as_fd(), b"hello\n", &[pipe_w.as_raw_fd()]).unwrap();
        drop(pipe_w);
        let mut buf = [0u8; 16];
        let mut fds = Vec::new();
        let n = recv_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"hello\n");
        assert_eq!(fds.len(), 1);
        let mut writer = std::fs::File::from(fds.pop().unwrap());
        writer.write_all(b"through").unwrap();
        drop(writer);
        let mut got = String::new();
        std::fs::File::from(pipe_r)
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "through");
    }
}
