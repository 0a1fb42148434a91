//! ExecSync: run a command, return its output and exit code (with a timeout in seconds).

use k8s_cri::v1::{ExecSyncRequest, ExecSyncResponse};
use skiff_runtime::Runtime;
use tonic::Status;

use crate::status::runtime_error_status;

/// Handles the RPC.
pub(crate) async fn handle(rt: &Runtime, req: ExecSyncRequest) -> Result<ExecSyncResponse, Status> {
    let timeout = std::time::Duration::from_secs(req.timeout.max(0) as u64);
    let output = rt
        .exec_sync(&req.container_id, req.cmd, timeout)
        .await
        .map_err(runtime_error_status)?;
    Ok(ExecSyncResponse {
        stdout: output.stdout,
        stderr: output.stderr,
        exit_code: output.exit_code,
    })
}
