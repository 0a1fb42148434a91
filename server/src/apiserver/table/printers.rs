//! Per-kind columns and cells of built-in resources, as upstream's printers
//! (`pkg/printers/internalversion/printers.go`, v1.33) produce them. The server always
//! prints the wide form; kubectl hides `priority: 1` columns unless `-o wide`.

#[path = "printers/cluster.rs"]
mod cluster;
#[path = "printers/network.rs"]
mod network;
#[path = "printers/pods.rs"]
mod pods;
#[path = "printers/policy.rs"]
mod policy;
#[path = "printers/storage.rs"]
mod storage;
#[path = "printers/workloads.rs"]
mod workloads;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::descriptions as d;
use super::format::{arr_at, str_at};

/// One column definition (`metav1.TableColumnDefinition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Column {
    pub(super) name: &'static str,
    pub(super) kind: &'static str,
    pub(super) format: &'static str,
    pub(super) description: &'static str,
    pub(super) priority: i32,
}

/// A built-in kind's printer: its columns and the function filling a row's cells.
#[derive(Debug, Clone, Copy)]
pub(super) struct Printer {
    pub(super) columns: &'static [Column],
    pub(super) cells: fn(&Value, OffsetDateTime) -> Vec<Value>,
}

pub(super) const fn col(
    name: &'static str,
    kind: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 0,
    }
}

pub(super) const fn wide(
    name: &'static str,
    kind: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 1,
    }
}

pub(super) const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: d::META_NAME,
    priority: 0,
};
pub(super) const AGE: Column = col("Age", "string", d::META_CREATION_TIMESTAMP);
pub(super) const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
pub(super) const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

/// The printer of a built-in resource, or `None` for kinds upstream prints with its
/// default `NAME`/`CREATED AT` table (roles, limitranges, CRDs, ...).
pub(super) fn printer(group: &str, resource: &str) -> Option<Printer> {
    let p = |columns: &'static [Column], cells: fn(&Value, OffsetDateTime) -> Vec<Value>| {
        Some(Printer { columns, cells })
    };
    match (group, resource) {
        ("", "pods") => p(pods::POD, pods::pod),
        ("", "podtemplates") => p(pods::POD_TEMPLATE, pods::pod_template),
        ("", "replicationcontrollers") => p(
            workloads::REPLICATION_CONTROLLER,
            workloads::replication_controller,
        ),
        ("", "services") => p(network::SERVICE, network::service),
        ("", "endpoints") => p(network::ENDPOINTS, network::endpoints),
        ("", "nodes") => p(cluster::NODE, cluster::node),
        ("", "events") | ("events.k8s.io", "events") => p(cluster::EVENT, cluster::event),
        ("", "namespaces") => p(cluster::NAMESPACE, cluster::namespace),
        ("", "secrets") => p(cluster::SECRET, cluster::secret),
        ("", "serviceaccounts") => p(cluster::SERVICE_ACCOUNT, cluster::service_account),
        ("", "persistentvolumes") => p(storage::PERSISTENT_VOLUME, storage::persistent_volume),
        ("", "persistentvolumeclaims") => p(
            storage::PERSISTENT_VOLUME_CLAIM,
            storage::persistent_volume_claim,
        ),
        ("", "componentstatuses") => p(cluster::COMPONENT_STATUS, cluster::component_status),
        ("", "configmaps") => p(cluster::CONFIG_MAP, cluster::config_map),
        ("", "resourcequotas") => p(cluster::RESOURCE_QUOTA, cluster::resource_quota),
        ("apps", "deployments") => p(workloads::DEPLOYMENT, workloads::deployment),
        ("apps", "replicasets") => p(workloads::REPLICA_SET, workloads::replica_set),
        ("apps", "statefulsets") => p(workloads::STATEFUL_SET, workloads::stateful_set),
        ("apps", "daemonsets") => p(workloads::DAEMON_SET, workloads::daemon_set),
        ("apps", "controllerrevisions") => p(
            workloads::CONTROLLER_REVISION,
            workloads::controller_revision,
        ),
        ("batch", "jobs") => p(workloads::JOB, workloads::job),
        ("batch", "cronjobs") => p(workloads::CRON_JOB, workloads::cron_job),
        ("networking.k8s.io", "ingresses") => p(network::INGRESS, network::ingress),
        ("networking.k8s.io", "ingressclasses") => {
            p(network::INGRESS_CLASS, network::ingress_class)
        }
        ("networking.k8s.io", "networkpolicies") => {
            p(network::NETWORK_POLICY, network::network_policy)
        }
        ("discovery.k8s.io", "endpointslices") => {
            p(network::ENDPOINT_SLICE, network::endpoint_slice)
        }
        ("coordination.k8s.io", "leases") => p(policy::LEASE, policy::lease),
        ("storage.k8s.io", "storageclasses") => p(storage::STORAGE_CLASS, storage::storage_class),
        ("storage.k8s.io", "csinodes") => p(storage::CSI_NODE, storage::csi_node),
        ("storage.k8s.io", "csidrivers") => p(storage::CSI_DRIVER, storage::csi_driver),
        ("storage.k8s.io", "volumeattachments") => {
            p(storage::VOLUME_ATTACHMENT, storage::volume_attachment)
        }
        ("storage.k8s.io", "csistoragecapacities") => {
            p(storage::CSI_STORAGE_CAPACITY, storage::csi_storage_capacity)
        }
        ("policy", "poddisruptionbudgets") => {
            p(policy::POD_DISRUPTION_BUDGET, policy::pod_disruption_budget)
        }
        ("node.k8s.io", "runtimeclasses") => p(policy::RUNTIME_CLASS, policy::runtime_class),
        ("rbac.authorization.k8s.io", "rolebindings") => {
            p(policy::ROLE_BINDING, policy::role_binding)
        }
        ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            p(policy::CLUSTER_ROLE_BINDING, policy::role_binding)
        }
        ("scheduling.k8s.io", "priorityclasses") => {
            p(policy::PRIORITY_CLASS, policy::priority_class)
        }
        ("certificates.k8s.io", "certificatesigningrequests") => {
            p(policy::CSR, policy::certificate_signing_request)
        }
        _ => None,
    }
}

/// A pod row's `conditions` (`Completed` for Succeeded and Failed pods), as upstream sets them.
pub(super) fn row_conditions(group: &str, resource: &str, object: &Value) -> Option<Value> {
    if (group, resource) != ("", "pods") {
        return None;
    }
    let (reason, message) = match str_at(object, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

pub(super) fn name(o: &Value) -> Value {
    Value::from(str_at(o, "/metadata/name"))
}

pub(super) fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

pub(super) fn has_condition(o: &Value, pointer: &str, kind: &str) -> bool {
    arr_at(o, pointer)
        .iter()
        .find(|c| str_at(c, "/type") == kind)
        .is_some_and(|c| str_at(c, "/status") == "True")
}
