//! Node IPAM (kube-controller-manager's `node-ipam-controller` with the
//! range allocator, `--allocate-node-cidrs`): every node gets
//! `spec.podCIDR`/`spec.podCIDRs`, a /24 of the cluster CIDR (10.42.0.0/16),
//! for its pod network.
//!
//! Assignments are stable: the allocation map is rebuilt from the nodes'
//! own CIDRs before anything is allocated (and after every re-list), a
//! node keeps its CIDR for life (the apiserver refuses changes), and a
//! deleted node's CIDR is freed. When none is left, the node gets a
//! `CIDRNotAvailable` event and is retried with back-off.
//!
//! # Layout
//! - this file: the informer and the reconcile of one node.
//! - `cidr_set`: the subnets, taken and free.

#[path = "node_ipam/cidr_set.rs"]
mod cidr_set;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::applier;
use kube::runtime::controller::{
    Action, Config as ControllerConfig, ReconcileRequest, trigger_with,
};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use cidr_set::{CidrSet, CidrSetError};

use super::common::Events;
use super::queue::{ErrorBackoff, informer};

/// The node subnet size (`--node-cidr-mask-size-ipv4`).
pub const NODE_CIDR_MASK_SIZE: u8 = 24;

/// What failed while giving a node its pod CIDR.
#[derive(Debug, thiserror::Error)]
pub enum NodeIpamError {
    /// No subnet was free.
    #[error("failed to allocate cidr from cluster cidr at idx:0: {0}")]
    Allocate(#[source] CidrSetError),
    /// Writing the node failed.
    #[error("updating the pod CIDR of node {node}: {source}")]
    Update {
        /// The node's name.
        node: String,
        /// The client's error.
        source: kube::Error,
    },
}

/// The allocation map: which subnets are taken and which node (by UID)
/// was given which.
#[derive(Debug)]
struct Allocations {
    set: CidrSet,
    empty: CidrSet,
    /// Node UID → (node name, CIDR) for the CIDRs known to belong to nodes,
    /// including ones given and not yet seen in the cache.
    assigned: HashMap<String, (String, Ipv4Net)>,
    rebuilt: bool,
}

impl Allocations {
    /// Rebuilds the map from the nodes' own CIDRs, keeping assignments not
    /// yet visible on nodes that still exist.
    fn rebuild(&mut self, nodes: &[Arc<Node>]) {
        let mut set = self.empty.clone();
        let mut assigned = HashMap::new();
        for node in nodes {
            let uid = node.metadata.uid.clone().unwrap_or_default();
            let name = node.metadata.name.clone().unwrap_or_default();
            let cidrs = pod_cidrs(node);
            if cidrs.is_empty() {
                if let Some(pending) = self.assigned.get(&uid)
                    && set.occupy(pending.1).is_ok()
                {
                    assigned.insert(uid, pending.clone());
                }
                continue;
            }
            for cidr in cidrs {
                match set.occupy(cidr) {
                    Ok(()) => {
                        assigned.insert(uid.clone(), (name.clone(), cidr));
                    }
                    Err(err) => {
                        tracing::warn!(node = %name, %cidr, %err, "node has a pod CIDR outside the cluster CIDR")
                    }
                }
            }
        }
        self.set = set;
        self.assigned = assigned;
        self.rebuilt = true;
    }

    /// Frees the CIDRs of a deleted node.
    fn release(&mut self, node: &Node) {
        let uid = node.metadata.uid.clone().unwrap_or_default();
        let mut cidrs = pod_cidrs(node);
        if let Some((_, cidr)) = self.assigned.remove(&uid) {
            cidrs.push(cidr);
        }
        for cidr in cidrs {
            if let Err(err) = self.set.release(cidr) {
                tracing::debug!(%cidr, %err, "releasing a pod CIDR");
            }
        }
    }
}

/// The controller's cache and helpers.
struct Context {
    client: kube::Client,
    nodes: Store<Node>,
    allocations: Mutex<Allocations>,
    backoff: ErrorBackoff,
    events: Events,
}

impl Context {
    fn lock(&self) -> MutexGuard<'_, Allocations> {
        self.allocations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs node IPAM, handing out /24s of `cluster_cidr`, until `shutdown`
/// is cancelled.
pub async fn run(client: kube::Client, cluster_cidr: Ipv4Net, shutdown: CancellationToken) {
    if let Err(err) = run_with(client, cluster_cidr, NODE_CIDR_MASK_SIZE, shutdown).await {
        tracing::error!(%cluster_cidr, %err, "node IPAM cannot run");
    }
}

/// Runs node IPAM with node subnets of prefix `node_mask_size`; fails at
/// once if the cluster CIDR cannot be cut so.
pub async fn run_with(
    client: kube::Client,
    cluster_cidr: Ipv4Net,
    node_mask_size: u8,
    shutdown: CancellationToken,
) -> Result<(), CidrSetError> {
    let set = CidrSet::new(cluster_cidr, node_mask_size)?;
    let (nodes, node_events) =
        informer(Api::<Node>::all(client.clone()), watcher::Config::default());
    let ctx = Arc::new(Context {
        client: client.clone(),
        nodes: nodes.clone(),
        allocations: Mutex::new(Allocations {
            empty: set.clone(),
            set,
            assigned: HashMap::new(),
            rebuilt: false,
        }),
        backoff: ErrorBackoff::default(),
        events: Events::new(client, "cidrAllocator"),
    });
    let triggers = {
        let ctx = ctx.clone();
        trigger_with(
            node_events,
            move |event| -> Option<ReconcileRequest<Node>> {
                match event {
                    Event::Apply(node) | Event::InitApply(node) => {
                        Some(ObjectRef::from_obj(&node).into())
                    }
                    Event::Delete(node) => {
                        ctx.lock().release(&node);
                        None
                    }
                    Event::InitDone => {
                        let nodes = ctx.nodes.state();
                        ctx.lock().rebuild(&nodes);
                        None
                    }
                    Event::Init => None,
                }
            },
        )
    };
    applier(
        |node, ctx| Box::pin(reconcile(node, ctx)),
        error_policy,
        ctx,
        nodes,
        triggers.take_until(shutdown.cancelled_owned()),
        ControllerConfig::default(),
    )
    .for_each(|result| async move {
        match result {
            Ok(_) | Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
            Err(err) => tracing::debug!(%err, "node IPAM"),
        }
    })
    .await;
    Ok(())
}

fn error_policy(node: Arc<Node>, err: &NodeIpamError, ctx: Arc<Context>) -> Action {
    let name = node.metadata.name.clone().unwrap_or_default();
    tracing::warn!(node = %name, %err, "allocating a pod CIDR");
    Action::requeue(ctx.backoff.next_delay(&name))
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, NodeIpamError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let uid = node.metadata.uid.clone().unwrap_or_default();
    let cidrs = pod_cidrs(&node);
    let allocated = {
        let mut allocations = ctx.lock();
        if !allocations.rebuilt {
            allocations.rebuild(&ctx.nodes.state());
        }
        if !cidrs.is_empty() {
            for cidr in cidrs {
                match allocations.set.occupy(cidr) {
                    Ok(()) => {
                        allocations
                            .assigned
                            .insert(uid.clone(), (name.clone(), cidr));
                    }
                    Err(err) => {
                        tracing::warn!(node = %name, %cidr, %err, "node has a pod CIDR outside the cluster CIDR")
                    }
                }
            }
            None
        } else if allocations.assigned.contains_key(&uid) {
            // Given already; the cache has not caught up.
            None
        } else {
            match allocations.set.allocate_next() {
                Ok(cidr) => {
                    allocations
                        .assigned
                        .insert(uid.clone(), (name.clone(), cidr));
                    Some(Ok(cidr))
                }
                Err(err) => Some(Err(err)),
            }
        }
    };
    let cidr = match allocated {
        None => {
            ctx.backoff.reset(&name);
            return Ok(Action::await_change());
        }
        Some(Ok(cidr)) => cidr,
        Some(Err(err)) => {
            status_change(&ctx, &name, "CIDRNotAvailable").await;
            return Err(NodeIpamError::Allocate(err));
        }
    };
    let patch = json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
    let api: Api<Node> = Api::all(ctx.client.clone());
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(node = %name, %cidr, "pod CIDR allocated");
            ctx.backoff.reset(&name);
            Ok(Action::await_change())
        }
        Err(err) => {
            {
                let mut allocations = ctx.lock();
                allocations.assigned.remove(&uid);
                if let Err(release) = allocations.set.release(cidr) {
                    tracing::debug!(%cidr, %release, "releasing a pod CIDR");
                }
            }
            if !matches!(&err, kube::Error::Api(status) if status.code == 404) {
                status_change(&ctx, &name, "CIDRAssignmentFailed").await;
            }
            Err(NodeIpamError::Update {
                node: name,
                source: err,
            })
        }
    }
}

/// Upstream's `RecordNodeStatusChange`: "Node x status is now: <status>".
async fn status_change(ctx: &Context, node: &str, status: &str) {
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.to_owned()),
        uid: Some(node.to_owned()),
        ..Default::default()
    };
    let note = format!("Node {node} status is now: {status}");
    ctx.events.normal(&reference, status, note).await;
}

/// The node's IPv4 pod CIDRs (`podCIDRs`, or `podCIDR` alone).
fn pod_cidrs(node: &Node) -> Vec<Ipv4Net> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    let listed: Vec<&String> = match spec.pod_cidrs.as_deref() {
        Some(list) if !list.is_empty() => list.iter().collect(),
        _ => spec.pod_cidr.iter().collect(),
    };
    listed.into_iter().filter_map(|c| c.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, uid: &str, cidr: Option<&str>) -> Arc<Node> {
        let spec = match cidr {
            Some(c) => json!({"podCIDR": c, "podCIDRs": [c]}),
            None => json!({}),
        };
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "uid": uid}, "spec": spec}))
                .unwrap(),
        )
    }

    fn allocations() -> Allocations {
        let set = CidrSet::new("10.42.0.0/16".parse().unwrap(), 24).unwrap();
        Allocations {
            empty: set.clone(),
            set,
            assigned: HashMap::new(),
            rebuilt: false,
        }
    }

    #[test]
    fn rebuilding_from_nodes_keeps_their_cidrs_taken() {
        let mut a = allocations();
        a.rebuild(&[
            node("a", "1", Some("10.42.0.0/24")),
            node("b", "2", Some("10.42.2.0/24")),
        ]);
        assert_eq!(a.set.allocate_next(), Ok("10.42.1.0/24".parse().unwrap()));
        assert_eq!(a.set.allocate_next(), Ok("10.42.3.0/24".parse().unwrap()));
    }

    #[test]
    fn rebuilding_keeps_pending_assignments_of_existing_nodes_only() {
        let mut a = allocations();
        a.assigned
            .insert("1".into(), ("a".into(), "10.42.5.0/24".parse().unwrap()));
        a.assigned
            .insert("9".into(), ("gone".into(), "10.42.6.0/24".parse().unwrap()));
        a.rebuild(&[node("a", "1", None)]);
        assert!(a.assigned.contains_key("1"));
        assert!(!a.assigned.contains_key("9"));
        let mut taken = Vec::new();
        for _ in 0..7 {
            taken.push(a.set.allocate_next().unwrap().to_string());
        }
        assert!(!taken.contains(&"10.42.5.0/24".to_owned()));
        assert!(taken.contains(&"10.42.6.0/24".to_owned()));
    }

    #[test]
    fn a_deleted_node_frees_its_cidr() {
        let mut a = allocations();
        let n = node("a", "1", Some("10.42.0.0/24"));
        a.rebuild(std::slice::from_ref(&n));
        a.release(&n);
        assert_eq!(a.set.allocate_next(), Ok("10.42.0.0/24".parse().unwrap()));
    }

    #[test]
    fn pod_cidr_alone_counts() {
        let n: Node = serde_json::from_value(
            json!({"metadata": {"name": "a"}, "spec": {"podCIDR": "10.42.7.0/24"}}),
        )
        .unwrap();
        assert_eq!(
            pod_cidrs(&n),
            vec!["10.42.7.0/24".parse::<Ipv4Net>().unwrap()]
        );
    }
}
