//! The shim's bookkeeping against a fake engine: states, refusals, exits,
//! exit records and waiters, without root or real containers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::rc::Rc;

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::{Reply, Shim};
use crate::engine::{ChildStdio, CreateSpec, Engine, EngineError, ExecSpec, Spawned};
use crate::protocol::{
    ContainerState, ContainerStatus, EXITS_DIR, ErrorKind, ExecProcess, FdRole, Request, Response,
};

/// What the fake engine was asked, and the child ends of the stdio it got.
#[derive(Debug, Default)]
struct Calls {
    signals: Vec<(i32, i32)>,
    deleted: Vec<String>,
    stdio: HashMap<String, ChildStdio>,
    oom: bool,
}

#[derive(Debug, Clone, Default)]
struct FakeEngine {
    calls: Rc<RefCell<Calls>>,
    next_pid: Rc<RefCell<i32>>,
}

impl FakeEngine {
    fn spawn(&self) -> Pid {
        let mut next = self.next_pid.borrow_mut();
        *next += 1;
        // Far above any real pid: a bug here never signals a real process.
        Pid::from_raw(4_000_000 + *next)
    }
}

impl Engine for FakeEngine {
    fn create(&mut self, spec: CreateSpec<'_>, stdio: ChildStdio) -> Result<Spawned, EngineError> {
        if spec.id == "bad" {
            return Err(EngineError::Invalid("bad bundle".into()));
        }
        self.calls
            .borrow_mut()
            .stdio
            .insert(spec.id.to_owned(), stdio);
        Ok(Spawned {
            pid: self.spawn(),
            pty_master: None,
        })
    }

    fn start(&mut self, _id: &str) -> Result<(), EngineError> {
        Ok(())
    }

    fn exec(&mut self, spec: ExecSpec<'_>, stdio: ChildStdio) -> Result<Spawned, EngineError> {
        self.calls
            .borrow_mut()
            .stdio
            .insert(spec.exec_id.to_owned(), stdio);
        Ok(Spawned {
            pid: self.spawn(),
            pty_master: None,
        })
    }

    fn delete(&mut self, id: &str) -> Result<(), EngineError> {
        self.calls.borrow_mut().deleted.push(id.to_owned());
        Ok(())
    }

    fn update(&mut self, _id: &str, _resources: &LinuxResources) -> Result<(), EngineError> {
        Ok(())
    }

    fn oom_killed(&self, _id: &str) -> bool {
        self.calls.borrow().oom
    }

    fn kill_leftovers(&self, _id: &str) {}

    fn signal(&self, pid: Pid, signal: i32) -> Result<(), EngineError> {
        self.calls.borrow_mut().signals.push((pid.as_raw(), signal));
        Ok(())
    }
}

struct Fixture {
    shim: Shim<FakeEngine>,
    calls: Rc<RefCell<Calls>>,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let engine = FakeEngine::default();
    let calls = engine.calls.clone();
    let shim = Shim::new(engine, dir.path().to_path_buf(), "pod".into(), None);
    Fixture { shim, calls, dir }
}

impl Fixture {
    fn ask(&mut self, request: Request) -> Response {
        match self.shim.handle(1, request) {
            Reply::Now(response, _) => response,
            other => panic!("not answered now: {other:?}"),
        }
    }

    fn create(&mut self, id: &str) -> i32 {
        let response = self.ask(Request::Create {
            id: id.into(),
            bundle: PathBuf::from("/bundles").join(id),
            log_path: Some(self.dir.path().join(format!("{id}.log"))),
            stdin: false,
            stdin_once: false,
            tty: false,
        });
        match response {
            Response::Created { pid } => pid,
            other => panic!("create failed: {other:?}"),
        }
    }

    fn state(&mut self, id: &str) -> ContainerState {
        match self.ask(Request::State {
            id: Some(id.into()),
        }) {
            Response::States { mut containers } => containers.remove(0),
            other => panic!("no state: {other:?}"),
        }
    }

    /// Writes to the container's stdout as its process would.
    fn print(&self, id: &str, text: &str) {
        let calls = self.calls.borrow();
        let fd: &OwnedFd = calls.stdio[id].stdout.as_ref().unwrap();
        std::fs::File::from(fd.try_clone().unwrap())
            .write_all(text.as_bytes())
            .unwrap();
    }
}

fn kind(response: Response) -> Option<ErrorKind> {
    match response {
        Response::Error { kind, .. } => Some(kind),
        _ => None,
    }
}

#[test]
fn lifecycle_states_and_exit_record() {
    let mut f = fixture();
    let pid = f.create("c1");
    assert_eq!(f.state("c1").status, ContainerStatus::Created);
    assert!(matches!(
        f.ask(Request::Start { id: "c1".into() }),
        Response::Started { .. }
    ));
    assert_eq!(f.state("c1").status, ContainerStatus::Running);
    f.print("c1", "hello\nno newline");
    f.shim.on_exit(Pid::from_raw(pid), 3);
    let state = f.state("c1");
    assert_eq!(state.status, ContainerStatus::Exited);
    assert_eq!(state.exit_code, Some(3));
    assert_eq!(state.reason.as_deref(), Some("Error"));
    // Output written before the exit is in the log.
    let log = std::fs::read_to_string(f.dir.path().join("c1.log")).unwrap();
    assert!(log.contains(" stdout F hello\n"), "{log}");
    let record: ContainerState = serde_json::from_slice(
        &std::fs::read(f.dir.path().join(EXITS_DIR).join("c1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record, state);
    assert_eq!(f.ask(Request::Delete { id: "c1".into() }), Response::Ok);
    assert_eq!(f.calls.borrow().deleted, ["c1"]);
    assert!(!f.dir.path().join(EXITS_DIR).join("c1.json").exists());
    assert_eq!(
        kind(f.ask(Request::State {
            id: Some("c1".into())
        })),
        Some(ErrorKind::NotFound)
    );
}

#[test]
fn oom_kills_are_the_reason() {
    let mut f = fixture();
    let pid = f.create("hog");
    f.ask(Request::Start { id: "hog".into() });
    f.calls.borrow_mut().oom = true;
    f.shim.on_exit(Pid::from_raw(pid), 137);
    let state = f.state("hog");
    assert!(state.oom_killed);
    assert_eq!(state.reason.as_deref(), Some("OOMKilled"));
}

#[test]
fn refusals() {
    let mut f = fixture();
    f.create("c");
    assert_eq!(
        kind(f.ask(Request::Create {
            id: "c".into(),
            bundle: "/b".into(),
            log_path: None,
            stdin: false,
            stdin_once: false,
            tty: false,
        })),
        Some(ErrorKind::AlreadyExists)
    );
    assert_eq!(
        kind(f.ask(Request::Create {
            id: "rel".into(),
            bundle: "relative".into(),
            log_path: None,
            stdin: false,
            stdin_once: false,
            tty: false,
        })),
        Some(ErrorKind::InvalidArgument)
    );
    assert_eq!(
        kind(f.ask(Request::Create {
            id: "bad".into(),
            bundle: "/b".into(),
            log_path: None,
            stdin: false,
            stdin_once: false,
            tty: false,
        })),
        Some(ErrorKind::InvalidArgument)
    );
    let exec = Request::Exec {
        id: "c".into(),
        exec_id: "e".into(),
        process: ExecProcess {
            args: vec!["true".into()],
            ..ExecProcess::default()
        },
        stdin: false,
        tty: false,
    };
    // Not running yet.
    assert_eq!(
        kind(f.ask(exec.clone())),
        Some(ErrorKind::FailedPrecondition)
    );
    f.ask(Request::Start { id: "c".into() });
    assert_eq!(
        kind(f.ask(Request::Start { id: "c".into() })),
        Some(ErrorKind::FailedPrecondition)
    );
    assert_eq!(
        kind(f.ask(Request::Delete { id: "c".into() })),
        Some(ErrorKind::FailedPrecondition)
    );
    assert_eq!(
        kind(f.ask(Request::Shutdown)),
        Some(ErrorKind::FailedPrecondition)
    );
    assert_eq!(
        kind(f.ask(Request::Resize {
            id: "c".into(),
            exec_id: None,
            width: 80,
            height: 24
        })),
        Some(ErrorKind::FailedPrecondition)
    );
    assert!(matches!(f.ask(exec.clone()), Response::ExecStarted { .. }));
    assert_eq!(kind(f.ask(exec)), Some(ErrorKind::AlreadyExists));
    assert_eq!(
        kind(f.ask(Request::Signal {
            id: "c".into(),
            exec_id: Some("nope".into()),
            signal: 9
        })),
        Some(ErrorKind::NotFound)
    );
}

#[test]
fn exec_waiters_get_the_exit_code_and_execs_die_with_their_container() {
    let mut f = fixture();
    let pid = f.create("c");
    f.ask(Request::Start { id: "c".into() });
    let response = f.ask(Request::Exec {
        id: "c".into(),
        exec_id: "e".into(),
        process: ExecProcess {
            args: vec!["sleep".into()],
            ..ExecProcess::default()
        },
        stdin: true,
        tty: false,
    });
    let Response::ExecStarted { pid: exec_pid, fds } = response else {
        panic!("{response:?}");
    };
    assert_eq!(fds, [FdRole::Stdin, FdRole::Stdout, FdRole::Stderr]);
    assert!(matches!(
        f.shim.handle(
            7,
            Request::ExecWait {
                exec_id: "e".into()
            }
        ),
        Reply::Later
    ));
    assert_eq!(f.shim.execs["e"].waiters, [7]);
    // The container exits: its exec is killed.
    f.shim.on_exit(Pid::from_raw(pid), 0);
    assert!(f.calls.borrow().signals.contains(&(exec_pid, 9)));
    f.shim.on_exit(Pid::from_raw(exec_pid), 137);
    // The waiter was answered (its connection is gone in this test), the exec forgotten.
    assert!(!f.shim.execs.contains_key("e"));
    // Signalling an exited container is a no-op.
    assert_eq!(
        f.ask(Request::Signal {
            id: "c".into(),
            exec_id: None,
            signal: 9
        }),
        Response::Ok
    );
}

#[test]
fn deleting_a_created_container_ends_its_init() {
    let mut f = fixture();
    let pid = f.create("c");
    // The fake pid has no process: waitpid fails, the exit is recorded as a kill.
    assert_eq!(f.ask(Request::Delete { id: "c".into() }), Response::Ok);
    assert!(f.calls.borrow().signals.contains(&(pid, 9)));
    assert!(f.shim.containers.is_empty());
}

#[test]
fn shutdown_stops_accepting() {
    let mut f = fixture();
    assert_eq!(f.ask(Request::Shutdown), Response::Ok);
    assert!(f.shim.exiting);
    assert_eq!(
        kind(f.ask(Request::Create {
            id: "late".into(),
            bundle: "/b".into(),
            log_path: None,
            stdin: false,
            stdin_once: false,
            tty: false,
        })),
        Some(ErrorKind::FailedPrecondition)
    );
}
