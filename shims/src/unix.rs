//! Small unix-socket and descriptor helpers.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// Longest path `bind` takes directly (`sun_path` is 108 bytes with its NUL).
const MAX_SUN_PATH: usize = 100;

/// Binds a listening socket at `path`, even past `sun_path`'s length limit
/// (by binding the file name from inside its directory). Changes the working
/// directory briefly: call only while the process has one thread.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    if path.as_os_str().len() <= MAX_SUN_PATH {
        return UnixListener::bind(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path {} has no directory", path.display()),
        ));
    };
    let cwd = std::env::current_dir()?;
    std::env::set_current_dir(dir)?;
    let bound = UnixListener::bind(name);
    std::env::set_current_dir(cwd)?;
    bound
}

/// Makes a descriptor non-blocking.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Waits until `fd` is readable, up to `timeout_ms`; false on timeout.
pub fn wait_readable(fd: impl AsFd, timeout_ms: u16) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, PollTimeout::from(timeout_ms)) {
            Ok(n) => return Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_long_paths() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let path = deep.join("x.sock");
        let cwd = std::env::current_dir().unwrap();
        let listener = bind_unix(&path).unwrap();
        assert_eq!(std::env::current_dir().unwrap(), cwd);
        assert!(path.exists());
        drop(listener);
    }
}
