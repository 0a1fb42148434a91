//! CRI calls the node benchmarks share.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_cri::v1 as cri;
use skiff_tests::cri::Cri;

/// Upper bound for each call while removing a pod.
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(30);

/// StopPodSandbox + RemovePodSandbox; returns how long they took.
pub async fn remove_pod(cri: &Cri, id: &str) -> anyhow::Result<Duration> {
    let mut rt = cri.runtime.clone();
    let started = Instant::now();
    tokio::time::timeout(
        REMOVE_TIMEOUT,
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        }),
    )
    .await
    .with_context(|| format!("StopPodSandbox {id} timed out"))?
    .with_context(|| format!("StopPodSandbox {id}"))?;
    tokio::time::timeout(
        REMOVE_TIMEOUT,
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        }),
    )
    .await
    .with_context(|| format!("RemovePodSandbox {id} timed out"))?
    .with_context(|| format!("RemovePodSandbox {id}"))?;
    Ok(started.elapsed())
}
