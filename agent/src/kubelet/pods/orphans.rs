//! kubelet's housekeeping: sandboxes of pods the API no longer has (they
//! were deleted while the kubelet was down) are stopped and removed, and
//! pod directories nobody owns are unmounted and removed.

use std::collections::HashSet;

use super::context::NodeContext;
use super::cri::{POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL};
use super::terminate::remove_pod_cgroup;
use super::volumes;

/// Removes sandboxes and pod directories of pods not in `known` (UIDs).
pub async fn clean_up(ctx: &NodeContext, known: &HashSet<String>) {
    let sandboxes = match ctx.cri.list_pod_sandboxes(None).await {
        Ok(list) => list,
        Err(status) => {
            tracing::warn!(error = %status, "listing sandboxes for housekeeping");
            return;
        }
    };
    let mut removed = HashSet::new();
    for sandbox in sandboxes {
        let Some(uid) = sandbox.labels.get(POD_UID_LABEL) else {
            continue;
        };
        if known.contains(uid) {
            continue;
        }
        let label = |key: &str| sandbox.labels.get(key).cloned().unwrap_or_default();
        tracing::info!(
            pod = %format!("{}/{}", label(POD_NAMESPACE_LABEL), label(POD_NAME_LABEL)),
            uid = %uid,
            sandbox = %sandbox.id,
            "removing the sandbox of a pod that no longer exists"
        );
        if let Err(status) = ctx.cri.stop_pod_sandbox(&sandbox.id).await {
            tracing::warn!(sandbox = %sandbox.id, error = %status, "stopping an orphaned sandbox");
            continue;
        }
        if let Err(status) = ctx.cri.remove_pod_sandbox(&sandbox.id).await {
            tracing::warn!(sandbox = %sandbox.id, error = %status, "removing an orphaned sandbox");
            continue;
        }
        let logs = ctx.options.pod_logs_dir.join(format!(
            "{}_{}_{uid}",
            label(POD_NAMESPACE_LABEL),
            label(POD_NAME_LABEL)
        ));
        let _ = std::fs::remove_dir_all(logs);
        for class in ["Guaranteed", "Burstable", "BestEffort"] {
            let path = super::resources::cgroup_parent(&ctx.options.cgroup_root, class, uid);
            remove_pod_cgroup(&path);
        }
        removed.insert(uid.clone());
    }
    let pods_dir = ctx.root_dir().join("pods");
    let Ok(entries) = std::fs::read_dir(&pods_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let uid = entry.file_name().to_string_lossy().into_owned();
        if known.contains(&uid) {
            continue;
        }
        if let Err(message) = volumes::teardown(&entry.path()) {
            tracing::warn!(pod = %uid, %message, "removing an orphaned pod directory");
        } else if !removed.contains(&uid) {
            tracing::info!(pod = %uid, "removed an orphaned pod directory");
        }
    }
}
