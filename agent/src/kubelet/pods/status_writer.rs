//! Writing a pod's status: a merge patch of the status subresource, only
//! when it differs from what was written (or read) last; the patch
//! carries the pod's UID so it cannot land on a namesake pod.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// The status last written for one pod.
#[derive(Debug, Default)]
pub struct StatusWriter {
    last: Option<PodStatus>,
}

impl StatusWriter {
    /// Starts from the status the API has.
    pub fn new(pod: &Pod) -> Self {
        Self {
            last: pod.status.clone(),
        }
    }

    /// The status last written.
    pub fn last(&self) -> Option<&PodStatus> {
        self.last.as_ref()
    }

    /// Writes `status` unless it is what was written last. True when it
    /// wrote.
    pub async fn write(
        &mut self,
        client: &kube::Client,
        pod: &Pod,
        status: PodStatus,
    ) -> Result<bool, kube::Error> {
        if self.last.as_ref() == Some(&status) {
            return Ok(false);
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let patch = json!({
            "metadata": {"uid": pod.metadata.uid},
            "status": status,
        });
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::debug!(pod = %format!("{namespace}/{name}"), phase = ?status.phase, "pod status written");
        self.last = Some(status);
        Ok(true)
    }
}
