//! Status: RuntimeReady and NetworkReady conditions, and with `verbose`
//! the runtime's configuration, as containerd reports it under "config".

use std::collections::HashMap;

use k8s_cri::v1::{
    RuntimeCondition, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus, StatusRequest,
    StatusResponse,
};
use skiff_runtime::Runtime;
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
            "runtimeHandlers": skiff_runtime::manager::DEFAULT_HANDLERS,
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
    let runtime_handlers = ["", "runc"]
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
