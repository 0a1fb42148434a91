//! Version: who answers on this socket.

use k8s_cri::v1::{VersionRequest, VersionResponse};

/// The runtime name crictl and kubelet show.
pub const RUNTIME_NAME: &str = "skiff";

/// The CRI API version served.
pub const RUNTIME_API_VERSION: &str = "v1";

/// The kubelet runtime API version this service speaks (crictl prints it
/// as `Version:`), whatever version the caller sent.
const KUBELET_API_VERSION: &str = "0.1.0";

/// The answer to a Version request.
pub fn version_response(request: &VersionRequest) -> VersionResponse {
    tracing::debug!(client_version = %request.version, "version requested");
    VersionResponse {
        version: KUBELET_API_VERSION.to_owned(),
        runtime_name: RUNTIME_NAME.to_owned(),
        runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        runtime_api_version: RUNTIME_API_VERSION.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_skiff_and_cri_v1() {
        let response = version_response(&VersionRequest {
            version: "v1".into(),
        });
        assert_eq!(response.version, "0.1.0");
        assert_eq!(response.runtime_name, "skiff");
        assert_eq!(response.runtime_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(response.runtime_api_version, "v1");
    }
}
