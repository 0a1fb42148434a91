//! Status: RuntimeReady and NetworkReady conditions, and with `verbose`
//! the runtime's configuration, as containerd reports it under "config".

use std::collections::HashMap;

use k8s_cri::v1::{
    RuntimeCondition, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus, StatusRequest,
    StatusResponse,
};
use skiff_runtime::Runtime;
use skiff_runtime::manager::{DEFAULT_HANDLERS, WASM_HANDLER};
use tonic::Status;

/// Handles the RPC.
pub(crate) async fn handle(rt: &Runtime, req: StatusRequest) -> Result<StatusResponse, Status> {
    let (network_ready, reason, message) = rt.network_status();
    let conditions = vec![
        RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: true,
            reason: String::new(),
            message: String::new(),
        },
        RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: network_ready,
            reason: if network_ready { String::new() } else { reason },
            message: if network_ready {
                String::new()
            } else {
                message
            },
        },
    ];
    let mut info = HashMap::new();
    if req.verbose {
        let config = rt.config();
        let detail = serde_json::json!({
            "runtimeHandlers": handler_names(),
            "dataDir": config.data_dir,
            "runDir": config.run_dir,
            "network": format!("{:?}", config.network),
            "cgroupDriver": "cgroupfs",
            "cgroupV2": skiff_runtime::cgroups::is_unified(),
            "shim": config.shim_binary,
            "snapshotter": "overlayfs",
            "imageStore": rt.images().root(),
        });
        info.insert("config".to_string(), detail.to_string());
    }
    let runtime_handlers = ["", "runc", WASM_HANDLER]
        .into_iter()
        .map(|name| RuntimeHandler {
            name: name.into(),
            features: Some(RuntimeHandlerFeatures {
                recursive_read_only_mounts: false,
                user_namespaces: false,
            }),
        })
        .collect();
    Ok(StatusResponse {
        status: Some(RuntimeStatus { conditions }),
        info,
        runtime_handlers,
        features: None,
    })
}

/// Every handler RunPodSandbox accepts: the OCI ones and `wasmtime`.
fn handler_names() -> Vec<&'static str> {
    DEFAULT_HANDLERS
        .into_iter()
        .chain(std::iter::once(WASM_HANDLER))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasmtime_is_listed_with_the_default_handlers() {
        assert_eq!(handler_names(), ["", "runc", "skiff", "wasmtime"]);
    }
}
