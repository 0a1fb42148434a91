//! `crictl version`.

use k8s_cri::v1::VersionRequest;

use super::console::rpc_error;
use super::{CrictlError, Session};

pub(super) async fn run(session: &mut Session<'_, '_>) -> Result<(), CrictlError> {
    let mut client = session.runtime_client().await?;
    let request = VersionRequest {
        version: "v1".to_owned(),
    };
    session.debug(format!("VersionRequest: {request:?}"));
    let response = session
        .unary(client.runtime.version(request))
        .await
        .map_err(|s| {
            CrictlError::failed(format!("getting the runtime version: {}", rpc_error(&s)))
        })?;
    session.debug(format!("VersionResponse: {response:?}"));
    // fmt.Println("Version: ", v) separates its operands with a space: two in all.
    session.console.print(&format!(
        "Version:  {}\nRuntimeName:  {}\nRuntimeVersion:  {}\nRuntimeApiVersion:  {}\n",
        response.version,
        response.runtime_name,
        response.runtime_version,
        response.runtime_api_version
    ))?;
    Ok(())
}
