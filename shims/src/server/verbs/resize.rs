//! `Resize`: the window size of a container's or an exec's pty.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::engine::Engine;
use crate::protocol::ErrorKind;
use crate::server::{Reply, Shim};

impl<E: Engine> Shim<E> {
    pub(crate) fn resize(
        &mut self,
        id: &str,
        exec_id: Option<&str>,
        width: u16,
        height: u16,
    ) -> Reply {
        let record = match self.record(id) {
            Ok(record) => record,
            Err(reply) => return reply,
        };
        let pty: Option<&OwnedFd> = match exec_id {
            Some(exec_id) => match self.execs.get(exec_id) {
                Some(exec) if exec.container == id => exec.pty.as_ref(),
                _ => {
                    return Reply::error(
                        ErrorKind::NotFound,
                        format!("exec {exec_id:?} of container {id:?} not found"),
                    );
                }
            },
            None => record.io.pty.as_ref(),
        };
        let Some(pty) = pty else {
            return Reply::error(
                ErrorKind::FailedPrecondition,
                format!("container {id:?} (exec {exec_id:?}) has no running tty"),
            );
        };
        let size = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer we pass.
        if unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &size) } != 0 {
            let err = std::io::Error::last_os_error();
            return Reply::error(
                ErrorKind::Internal,
                format!("resizing the tty of {id:?}: {err}"),
            );
        }
        Reply::ok()
    }
}
