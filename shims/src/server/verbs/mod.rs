//! One file per request verb, each an `impl Shim` block.

mod attach;
mod create;
mod delete;
mod exec;
mod reopen_log;
mod resize;
mod shutdown;
mod signal;
mod start;
mod state;
mod update;

use super::{ContainerRecord, Reply, Shim};
use crate::engine::Engine;
use crate::protocol::{ContainerStatus, ErrorKind, PROTOCOL_VERSION, Request, Response};

/// The verb of a request, for logs.
pub(crate) fn name(request: &Request) -> &'static str {
    match request {
        Request::Hello => "Hello",
        Request::Create { .. } => "Create",
        Request::Start { .. } => "Start",
        Request::Signal { .. } => "Signal",
        Request::State { .. } => "State",
        Request::Delete { .. } => "Delete",
        Request::Exec { .. } => "Exec",
        Request::ExecWait { .. } => "ExecWait",
        Request::Attach { .. } => "Attach",
        Request::Resize { .. } => "Resize",
        Request::ReopenLog { .. } => "ReopenLog",
        Request::Update { .. } => "Update",
        Request::Events => "Events",
        Request::Shutdown => "Shutdown",
    }
}

impl<E: Engine> Shim<E> {
    /// Handles one request from connection `token`.
    pub(crate) fn handle(&mut self, token: u64, request: Request) -> Reply {
        match request {
            Request::Hello => Reply::Now(
                Response::Hello {
                    pid: std::process::id(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    protocol: PROTOCOL_VERSION,
                    sandbox_id: self.sandbox_id.clone(),
                },
                Vec::new(),
            ),
            Request::Create {
                id,
                bundle,
                log_path,
                stdin,
                stdin_once,
                tty,
            } => self.create(create::CreateRequest {
                id,
                bundle,
                log_path,
                stdin,
                stdin_once,
                tty,
            }),
            Request::Start { id } => self.start(&id),
            Request::Signal {
                id,
                exec_id,
                signal,
            } => self.signal(&id, exec_id.as_deref(), signal),
            Request::State { id } => self.state(id.as_deref()),
            Request::Delete { id } => self.delete(&id),
            Request::Exec {
                id,
                exec_id,
                process,
                stdin,
                tty,
            } => self.exec(&id, exec_id, &process, stdin, tty),
            Request::ExecWait { exec_id } => self.exec_wait(token, &exec_id),
            Request::Attach { id } => self.attach(&id),
            Request::Resize {
                id,
                exec_id,
                width,
                height,
            } => self.resize(&id, exec_id.as_deref(), width, height),
            Request::ReopenLog { id } => self.reopen_log(&id),
            Request::Update { id, resources } => self.update(&id, &resources),
            Request::Events => Reply::Subscribe,
            Request::Shutdown => self.shutdown(),
        }
    }

    /// The container, or a NotFound answer.
    fn record(&self, id: &str) -> Result<&ContainerRecord, Reply> {
        self.containers
            .get(id)
            .ok_or_else(|| Reply::error(ErrorKind::NotFound, format!("container {id:?} not found")))
    }

    /// The container if its init process lives (created or running).
    fn live_record(&self, id: &str, verb: &str) -> Result<&ContainerRecord, Reply> {
        let record = self.record(id)?;
        if record.state.status == ContainerStatus::Exited {
            return Err(Reply::error(
                ErrorKind::FailedPrecondition,
                format!("cannot {verb} container {id:?}: it has exited"),
            ));
        }
        Ok(record)
    }
}
