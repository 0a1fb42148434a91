//! The pods bound to this node, synced through the in-process CRI service
//! as kubelet 1.32 syncs them over containerd: one worker (a tokio task)
//! per pod creates its sandbox, pulls images, runs init containers in
//! order and then the containers, restarts them with CrashLoopBackOff
//! back-off, probes them, terminates them gracefully, and reports the pod's
//! status. A restarted kubelet re-adopts running pods from the runtime
//! (their containers carry the pod UID label and restart-count
//! annotations) without restarting them; sandboxes of pods the API no
//! longer has are stopped and removed.
//!
//! Not yet: Service environment variables (they come with Services),
//! pod-level cgroup limits, ephemeral containers, in-place resize, gRPC
//! and HTTPS probes, fsGroup ownership of volumes, image volumes,
//! clusterTrustBundle projections, hostAliases.
//!
//! # Layout
//!
//! - [`manager`]: the watch of this node's pods, one worker per pod,
//!   runtime events routed to workers; [`orphans`]: clean-up of pods the
//!   API no longer has.
//! - [`context`]: what all workers share.
//! - [`worker`]: a pod's task and its state: when to sync.
//! - [`sync`]: one sync pass: sandbox, init containers, containers;
//!   [`start`]: starting one container.
//! - [`terminate`]: graceful termination (preStop, stop, sandbox removal,
//!   the final delete).
//! - [`snapshot`]: the runtime's view of one pod (sandboxes, containers).
//! - [`sandbox`], [`dns`]: the PodSandboxConfig kubelet builds.
//! - [`containers`], [`security`], [`resources`]: the ContainerConfig.
//! - [`env`], [`service_env`], [`expand`], [`fieldpath`]: environment
//!   variables (Service variables among them), `$(VAR)`
//!   expansion, downward API fields.
//! - [`pull`], [`credentials`]: image pulls with pull policy, pull secrets
//!   and back-off.
//! - [`backoff`]: kubelet's exponential back-off.
//! - [`probes`]: readiness, liveness and startup probes, lifecycle hooks.
//! - [`volumes`]: emptyDir, hostPath, configMap, secret, downwardAPI,
//!   projected (service account tokens).
//! - [`status`]: the pod status computed from the runtime (pure);
//!   [`status_writer`]: patches it when it changed.
//! - [`events`]: Events as kubelet records them.
//! - [`cri`]: the CRI calls, in-process.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::Kubelet;

mod backoff;
mod containers;
mod context;
mod credentials;
mod cri;
mod dns;
mod env;
mod events;
mod expand;
mod fieldpath;
mod manager;
mod orphans;
mod probes;
mod pull;
mod resources;
mod sandbox;
mod security;
mod service_env;
mod snapshot;
mod start;
mod status;
mod status_writer;
mod sync;
mod terminate;
pub(crate) mod volumes;
mod worker;

/// Where pods' container logs go (kubelet's `/var/log/pods`).
pub const POD_LOGS_DIR: &str = "/var/log/pods";

/// Settings of the pod sync that kubelet takes as flags.
#[derive(Debug, Clone)]
pub struct PodOptions {
    /// kubelet's `--cgroup-root`: pods live under `<root>/kubepods/...`.
    pub cgroup_root: String,
    /// Where container logs go: `<dir>/<ns>_<name>_<uid>/<container>/<n>.log`.
    pub pod_logs_dir: PathBuf,
}

impl Default for PodOptions {
    fn default() -> Self {
        Self {
            cgroup_root: "/".into(),
            pod_logs_dir: PathBuf::from(POD_LOGS_DIR),
        }
    }
}

/// Syncs the pods bound to this node until `shutdown` is cancelled.
/// Containers keep running after it returns.
pub async fn run(kubelet: Kubelet, shutdown: CancellationToken) {
    run_with(kubelet, PodOptions::default(), shutdown).await;
}

/// [`run`] with explicit options (tests put pods under their own cgroup
/// root and log directory).
pub async fn run_with(kubelet: Kubelet, options: PodOptions, shutdown: CancellationToken) {
    manager::run(kubelet, options, shutdown).await;
}
