//! One engine per container: [`Dispatch`] reads a bundle's annotations at
//! create (`io.skiff.engine: wasm` → the Wasm engine, anything else →
//! libcontainer) and sends every later call about that container to the
//! engine that made it.

use std::collections::HashMap;
use std::path::Path;

use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use super::wasm::bundle::wants_wasm;
use super::{ChildStdio, CreateSpec, Engine, EngineError, ExecSpec, Libcontainer, Spawned, Wasm};

/// Which engine owns a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Oci,
    Wasm,
}

/// Routes each container to the OCI engine or the Wasm engine.
#[derive(Debug)]
pub struct Dispatch<O = Libcontainer, W = Wasm> {
    oci: O,
    wasm: W,
    owners: HashMap<String, Owner>,
}

impl Dispatch {
    /// libcontainer with its state in `oci_state`, the Wasm engine with its
    /// state in `wasm_state`.
    pub fn new(oci_state: &Path, wasm_state: &Path) -> Result<Self, EngineError> {
        Ok(Dispatch::with_engines(
            Libcontainer::new(oci_state)?,
            Wasm::new(wasm_state)?,
        ))
    }
}

impl<O: Engine, W: Engine> Dispatch<O, W> {
    /// Dispatches between these two engines.
    pub fn with_engines(oci: O, wasm: W) -> Self {
        Dispatch {
            oci,
            wasm,
            owners: HashMap::new(),
        }
    }

    fn owner(&self, id: &str) -> Option<Owner> {
        self.owners.get(id).copied()
    }

    fn engine(&mut self, id: &str) -> Result<&mut dyn Engine, EngineError> {
        match self.owner(id) {
            Some(Owner::Oci) => Ok(&mut self.oci),
            Some(Owner::Wasm) => Ok(&mut self.wasm),
            None => Err(EngineError::NotFound(id.to_owned())),
        }
    }
}

/// The engine a bundle asks for.
fn requested_owner(bundle: &Path) -> Result<Owner, EngineError> {
    let config = bundle.join("config.json");
    let spec = Spec::load(&config).map_err(|err| EngineError::Bundle {
        path: config.display().to_string(),
        message: err.to_string(),
    })?;
    Ok(if wants_wasm(spec.annotations().as_ref()) {
        Owner::Wasm
    } else {
        Owner::Oci
    })
}

impl<O: Engine, W: Engine> Engine for Dispatch<O, W> {
    fn create(&mut self, spec: CreateSpec<'_>, stdio: ChildStdio) -> Result<Spawned, EngineError> {
        let owner = requested_owner(spec.bundle)?;
        let spawned = match owner {
            Owner::Oci => self.oci.create(spec, stdio)?,
            Owner::Wasm => self.wasm.create(spec, stdio)?,
        };
        self.owners.insert(spec.id.to_owned(), owner);
        Ok(spawned)
    }

    fn start(&mut self, id: &str) -> Result<(), EngineError> {
        self.engine(id)?.start(id)
    }

    fn exec(&mut self, spec: ExecSpec<'_>, stdio: ChildStdio) -> Result<Spawned, EngineError> {
        self.engine(spec.id)?.exec(spec, stdio)
    }

    fn delete(&mut self, id: &str) -> Result<(), EngineError> {
        let Ok(engine) = self.engine(id) else {
            return Ok(());
        };
        engine.delete(id)?;
        self.owners.remove(id);
        Ok(())
    }

    fn update(&mut self, id: &str, resources: &LinuxResources) -> Result<(), EngineError> {
        self.engine(id)?.update(id, resources)
    }

    fn oom_killed(&self, id: &str) -> bool {
        match self.owner(id) {
            Some(Owner::Oci) => self.oci.oom_killed(id),
            Some(Owner::Wasm) => self.wasm.oom_killed(id),
            None => false,
        }
    }

    fn kill_leftovers(&self, id: &str) {
        match self.owner(id) {
            Some(Owner::Oci) => self.oci.kill_leftovers(id),
            Some(Owner::Wasm) => self.wasm.kill_leftovers(id),
            None => {}
        }
    }

    fn signal(&self, pid: Pid, signal: i32) -> Result<(), EngineError> {
        // Both engines signal a pid the same way (the shim is its parent).
        self.oci.signal(pid, signal)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::protocol::ExecProcess;

    /// Records the calls it gets, tagged with its name.
    #[derive(Debug, Clone)]
    struct Recorder {
        name: &'static str,
        calls: Rc<RefCell<Vec<String>>>,
    }

    impl Recorder {
        fn log(&self, call: &str, id: &str) {
            self.calls
                .borrow_mut()
                .push(format!("{} {call} {id}", self.name));
        }
    }

    impl Engine for Recorder {
        fn create(&mut self, spec: CreateSpec<'_>, _: ChildStdio) -> Result<Spawned, EngineError> {
            self.log("create", spec.id);
            Ok(Spawned {
                pid: Pid::from_raw(4_000_000),
                pty_master: None,
            })
        }
        fn start(&mut self, id: &str) -> Result<(), EngineError> {
            self.log("start", id);
            Ok(())
        }
        fn exec(&mut self, spec: ExecSpec<'_>, _: ChildStdio) -> Result<Spawned, EngineError> {
            self.log("exec", spec.id);
            Err(EngineError::Invalid("no".into()))
        }
        fn delete(&mut self, id: &str) -> Result<(), EngineError> {
            self.log("delete", id);
            Ok(())
        }
        fn update(&mut self, id: &str, _: &LinuxResources) -> Result<(), EngineError> {
            self.log("update", id);
            Ok(())
        }
        fn oom_killed(&self, id: &str) -> bool {
            self.log("oom_killed", id);
            self.name == "wasm"
        }
        fn kill_leftovers(&self, id: &str) {
            self.log("kill_leftovers", id);
        }
        fn signal(&self, _: Pid, _: i32) -> Result<(), EngineError> {
            Ok(())
        }
    }

    fn bundle(dir: &Path, name: &str, annotations: serde_json::Value) -> std::path::PathBuf {
        let bundle = dir.join(name);
        std::fs::create_dir_all(&bundle).unwrap();
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["x"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "annotations": annotations,
        });
        std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
        bundle
    }

    /// A dispatch between two recorders, "oci" and "wasm", and their log.
    fn recording_dispatch() -> (Dispatch<Recorder, Recorder>, Rc<RefCell<Vec<String>>>) {
        let calls = Rc::new(RefCell::new(Vec::new()));
        let recorder = |name| Recorder {
            name,
            calls: calls.clone(),
        };
        (
            Dispatch::with_engines(recorder("oci"), recorder("wasm")),
            calls,
        )
    }

    #[test]
    fn routes_by_the_engine_annotation() {
        let dir = tempfile::tempdir().unwrap();
        let (mut dispatch, calls) = recording_dispatch();
        let plain = bundle(dir.path(), "plain", serde_json::json!({}));
        let oci = bundle(
            dir.path(),
            "oci",
            serde_json::json!({"io.skiff.engine": "oci"}),
        );
        let wasm = bundle(
            dir.path(),
            "wasm",
            serde_json::json!({"io.skiff.engine": "wasm"}),
        );
        for (id, path) in [("a", &plain), ("b", &oci), ("c", &wasm)] {
            let spec = CreateSpec {
                id,
                bundle: path,
                tty: false,
            };
            dispatch.create(spec, ChildStdio::default()).unwrap();
        }
        dispatch.start("c").unwrap();
        dispatch.start("a").unwrap();
        let process = ExecProcess::default();
        let exec = ExecSpec {
            id: "c",
            exec_id: "e",
            process: &process,
            tty: false,
        };
        assert!(dispatch.exec(exec, ChildStdio::default()).is_err());
        assert!(dispatch.oom_killed("c"));
        assert!(!dispatch.oom_killed("b"));
        dispatch.update("b", &LinuxResources::default()).unwrap();
        dispatch.kill_leftovers("c");
        dispatch.delete("c").unwrap();
        // Forgotten after delete.
        assert!(matches!(dispatch.start("c"), Err(EngineError::NotFound(_))));
        dispatch.delete("c").unwrap();
        assert!(!dispatch.oom_killed("c"));
        assert_eq!(
            *calls.borrow(),
            [
                "oci create a",
                "oci create b",
                "wasm create c",
                "wasm start c",
                "oci start a",
                "wasm exec c",
                "wasm oom_killed c",
                "oci oom_killed b",
                "oci update b",
                "wasm kill_leftovers c",
                "wasm delete c",
            ]
        );
    }

    #[test]
    fn a_bad_bundle_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut dispatch, calls) = recording_dispatch();
        let spec = CreateSpec {
            id: "x",
            bundle: dir.path(),
            tty: false,
        };
        assert!(matches!(
            dispatch.create(spec, ChildStdio::default()),
            Err(EngineError::Bundle { .. })
        ));
        assert!(calls.borrow().is_empty());
    }
}
