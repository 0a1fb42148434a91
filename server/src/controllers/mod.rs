//! kube-controller-manager's part of `skiff server`: reconcile loops over
//! informer caches, each with requeue and back-off, each talking to the
//! apiserver as `system:kube-controller-manager`.
//!
//! # Layout
//!
//! One module per controller, named as upstream names it; each exposes
//! `run(client, .., shutdown)`.
//!
//! - [`common`]: controller owner references, pod readiness, events.
//! - [`queue`]: informers, per-object error back-off, object keys and
//!   the API-error helpers every controller shares.
//! - [`deployment`]: Deployments' ReplicaSets: rolling updates, Recreate,
//!   revisions, rollback, pause, status.
//! - [`endpoints`]: Endpoints of Services with selectors.
//! - [`endpointslice`]: EndpointSlices of those Services.
//! - [`garbage_collector`]: deletion by ownerReferences (background,
//!   foreground, orphan) across every served kind.
//! - [`job`]: Jobs' pods, completions, back-off and conditions.
//! - [`node_ipam`]: a pod CIDR (/24) per node from the cluster CIDR.
//! - [`node_lifecycle`]: nodes whose Lease stops being renewed turn
//!   NotReady, get tainted, and their pods are evicted.
//! - [`replicaset`]: ReplicaSets' pods: creation and deletion with
//!   expectations, adoption, status.
//! - [`root_ca`]: the `kube-root-ca.crt` ConfigMap in every namespace.
//! - [`serviceaccount`]: a `default` ServiceAccount in every namespace.
//! - [`ttl_after_finished`]: finished Jobs deleted after their TTL.

pub mod common;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod garbage_collector;
pub mod job;
pub mod node_ipam;
pub mod node_lifecycle;
pub(crate) mod queue;
pub mod replicaset;
pub mod root_ca;
pub mod serviceaccount;
pub mod ttl_after_finished;

use tokio_util::sync::CancellationToken;

/// What the controllers need to know of the cluster.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server CA, published as the `kube-root-ca.crt` ConfigMap.
    pub root_ca_pem: String,
    /// The pod CIDR nodes' ranges come from.
    pub cluster_cidr: ipnet::Ipv4Net,
}

/// Runs every controller until `shutdown` is cancelled.
pub async fn run(client: kube::Client, settings: Settings, shutdown: CancellationToken) {
    tokio::join!(
        replicaset::run(client.clone(), shutdown.clone()),
        deployment::run(client.clone(), shutdown.clone()),
        endpoints::run(client.clone(), shutdown.clone()),
        endpointslice::run(client.clone(), shutdown.clone()),
        node_ipam::run(client.clone(), settings.cluster_cidr, shutdown.clone()),
        node_lifecycle::run(client.clone(), shutdown.clone()),
        garbage_collector::run(client.clone(), shutdown.clone()),
        job::run(client.clone(), shutdown.clone()),
        ttl_after_finished::run(client.clone(), shutdown.clone()),
        serviceaccount::run(client.clone(), shutdown.clone()),
        root_ca::run(client.clone(), settings.root_ca_pem, shutdown.clone()),
    );
}
