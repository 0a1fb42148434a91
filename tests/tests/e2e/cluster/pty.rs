//! A pseudo-terminal for `kubectl exec -it`: kubectl gets the slave side
//! as its controlling terminal on stdin, stdout and stderr (so it puts it
//! in raw mode and forwards window sizes, as in a user's shell); the test
//! types on the master side and reads what the screen would show.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A process running on a pseudo-terminal, killed on drop.
pub struct Terminal {
    master: File,
    screen: Arc<Mutex<Vec<u8>>>,
    child: Child,
}

impl Terminal {
    /// Runs `command` on a new terminal of `rows` x `cols`.
    pub fn spawn(mut command: Command, rows: u16, cols: u16) -> Terminal {
        let mut master = -1;
        let mut slave = -1;
        let size = winsize(rows, cols);
        // SAFETY: valid pointers to two ints and a winsize that outlive the
        // call; a null name and termios are allowed.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty just returned these two descriptors; nothing else
        // owns them.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        command
            .stdin(Stdio::from(slave.try_clone().expect("dup the pty")))
            .stdout(Stdio::from(slave.try_clone().expect("dup the pty")))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid, ioctl and prctl are async-signal-safe and touch no
        // memory of the parent; this runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn on the pty");
        // Our copies of the slave side go with the command, so that reads
        // on the master end when the child is gone.
        drop(command);
        let master = File::from(master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup the pty master");
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the slave side is closed everywhere.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            master,
            screen,
            child,
        }
    }

    /// Everything shown so far.
    pub fn screen(&self) -> String {
        let screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&screen).into_owned()
    }

    /// How much has been shown so far (a mark for [`Terminal::shows_after`]).
    pub fn mark(&self) -> usize {
        self.screen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether `text` showed after `mark`.
    pub fn shows_after(&self, mark: usize, text: &str) -> bool {
        let screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(screen.get(mark..).unwrap_or_default()).contains(text)
    }

    /// Waits up to `timeout` for `text` to show after `mark`.
    pub fn wait_for(&self, mark: usize, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.shows_after(mark, text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.shows_after(mark, text)
    }

    /// Types `keys`.
    pub fn type_keys(&mut self, keys: &str) {
        self.master
            .write_all(keys.as_bytes())
            .expect("write to the pty");
    }

    /// Changes the window size (the kernel sends SIGWINCH to kubectl).
    pub fn resize(&self, rows: u16, cols: u16) {
        let size = winsize(rows, cols);
        // SAFETY: a valid winsize for the duration of the call on a
        // descriptor we own.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn winsize(rows: u16, cols: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}
