//! kube-apiserver's validation of the built-in kinds, as pure functions
//! over JSON objects: [`validate`] lists the problems (`Cause`s, worded as
//! apimachinery's `field.Error`) and [`invalid_message`] joins them into the
//! `Status` message of a 422 `Invalid` answer.
//!
//! The object has been defaulted (`defaults`) and admitted before it gets
//! here; fields upstream defaults are checked only when present, so a gap
//! in defaulting never turns into a spurious "Required value".
//!
//! # Layout
//!
//! - `cause`: building causes, field paths, Go's rendering of bad values.
//! - `names`: name, key and port formats with upstream's messages.
//! - `meta`: object metadata and label selectors.
//! - `quantity`: resource quantities.
//! - `volumes`, `containers`, `pods`: pods and pod templates.
//! - `workloads`: Deployments, ReplicaSets, StatefulSets, DaemonSets, RCs.
//! - `batch`, `cron`: Jobs and CronJobs, cron schedules.
//! - `network`: Services, Endpoints, EndpointSlices, Ingresses, NetworkPolicies.
//! - `config`: ConfigMaps and Secrets.
//! - `storage`: PersistentVolumes, claims, StorageClasses.
//! - `rbac`, `crd`: RBAC kinds, CustomResourceDefinitions.
//! - `cluster`: Namespaces, Nodes, Leases, RuntimeClasses, PDBs, Events,
//!   PriorityClasses, LimitRanges, ResourceQuotas.

mod batch;
pub(super) mod cause;
mod cluster;
mod config;
mod containers;
mod crd;
mod cron;
mod meta;
pub(super) mod names;
mod network;
mod pods;
mod quantity;
mod rbac;
mod storage;
mod volumes;
mod workloads;

#[cfg(test)]
mod tests;

use serde_json::Value;

use cause::Errs;
use meta::MetaRules;
use names::NameRule;

/// Why a field is invalid: upstream's `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseReason {
    /// A required field is missing.
    Required,
    /// A value is malformed or out of range.
    Invalid,
    /// A value is not one of the supported ones.
    NotSupported,
    /// A value that must be unique is repeated.
    Duplicate,
    /// A valid value that is not allowed here.
    Forbidden,
    /// A value is too long.
    TooLong,
    /// A list has too many items.
    TooMany,
    /// A value has the wrong type.
    TypeInvalid,
    /// A reference names something that does not exist.
    NotFound,
}

impl CauseReason {
    /// The `StatusCause.reason` string.
    pub fn as_str(&self) -> &'static str {
        match self {
            CauseReason::Required => "FieldValueRequired",
            CauseReason::Invalid => "FieldValueInvalid",
            CauseReason::NotSupported => "FieldValueNotSupported",
            CauseReason::Duplicate => "FieldValueDuplicate",
            CauseReason::Forbidden => "FieldValueForbidden",
            CauseReason::TooLong => "FieldValueTooLong",
            CauseReason::TooMany => "FieldValueTooMany",
            CauseReason::TypeInvalid => "FieldValueTypeInvalid",
            CauseReason::NotFound => "FieldValueNotFound",
        }
    }
}

/// One problem with an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The kind of problem.
    pub reason: CauseReason,
    /// The field path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
    /// The text after `<field>: `, e.g. `Required value`.
    pub message: String,
}

/// Validates `obj` of `(group, resource)` (group "" for core, resource the
/// lowercase plural); `old` is the stored object on update.
pub fn validate(group: &str, resource: &str, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut errs = Errs::new();
    let rules = meta_rules(group, resource);
    meta::object_meta(obj, rules, &mut errs);
    if let Some(old) = old {
        meta::object_meta_update(obj, old, &mut errs);
    }
    kind(group, resource, obj, old, &mut errs);
    errs
}

/// The kind-specific rules.
fn kind(group: &str, resource: &str, obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    use workloads::AppsKind;
    match (group, resource) {
        ("", "pods") => pods::pod(obj, old, errs),
        ("", "podtemplates") => pods::pod_template_object(obj, errs),
        ("", "replicationcontrollers") => workloads::replication_controller(obj, errs),
        ("", "services") => network::service(obj, old, errs),
        ("", "endpoints") => network::endpoints(obj, errs),
        ("", "configmaps") => config::config_map(obj, old, errs),
        ("", "secrets") => config::secret(obj, old, errs),
        ("", "namespaces") => cluster::namespace(obj, errs),
        ("", "nodes") => cluster::node(obj, old, errs),
        ("", "persistentvolumeclaims") => storage::persistent_volume_claim(obj, old, errs),
        ("", "persistentvolumes") => storage::persistent_volume(obj, old, errs),
        ("", "events") => cluster::event(obj, false, errs),
        ("", "limitranges") => cluster::limit_range(obj, errs),
        ("", "resourcequotas") => cluster::resource_quota(obj, errs),
        ("apps", "deployments") => workloads::apps(AppsKind::Deployment, obj, old, errs),
        ("apps", "replicasets") => workloads::apps(AppsKind::ReplicaSet, obj, old, errs),
        ("apps", "statefulsets") => workloads::apps(AppsKind::StatefulSet, obj, old, errs),
        ("apps", "daemonsets") => workloads::apps(AppsKind::DaemonSet, obj, old, errs),
        ("batch", "jobs") => batch::job(obj, old, errs),
        ("batch", "cronjobs") => batch::cron_job(obj, old, errs),
        ("networking.k8s.io", "ingresses") => network::ingress(obj, errs),
        ("networking.k8s.io", "networkpolicies") => network::network_policy(obj, errs),
        ("discovery.k8s.io", "endpointslices") => network::endpoint_slice(obj, errs),
        ("coordination.k8s.io", "leases") => cluster::lease(obj, errs),
        ("storage.k8s.io", "storageclasses") => storage::storage_class(obj, old, errs),
        ("policy", "poddisruptionbudgets") => cluster::pod_disruption_budget(obj, errs),
        ("node.k8s.io", "runtimeclasses") => cluster::runtime_class(obj, old, errs),
        ("events.k8s.io", "events") => cluster::event(obj, true, errs),
        ("scheduling.k8s.io", "priorityclasses") => cluster::priority_class(obj, old, errs),
        ("rbac.authorization.k8s.io", "roles") => rbac::role(obj, true, errs),
        ("rbac.authorization.k8s.io", "clusterroles") => rbac::role(obj, false, errs),
        ("rbac.authorization.k8s.io", "rolebindings") => rbac::binding(obj, old, true, errs),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            rbac::binding(obj, old, false, errs)
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            crd::custom_resource_definition(obj, old, errs)
        }
        _ => {}
    }
}

/// The `Status` message: `<Kind> "<name>" is invalid: <causes>` with one
/// cause alone and several as `[a, b]`, repeated messages once.
pub fn invalid_message(qualified_kind: &str, name: &str, causes: &[Cause]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for c in causes {
        let text = format!("{}: {}", c.field, c.message);
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    let head = format!("{qualified_kind} {} is invalid", cause::go_quote(name));
    match seen.as_slice() {
        [] => head,
        [one] => format!("{head}: {one}"),
        many => format!("{head}: [{}]", many.join(", ")),
    }
}

/// Scope and name format of each built-in kind.
fn meta_rules(group: &str, resource: &str) -> MetaRules {
    let cluster_scoped = matches!(
        (group, resource),
        (
            "",
            "namespaces" | "nodes" | "persistentvolumes" | "componentstatuses"
        ) | (
            "rbac.authorization.k8s.io",
            "clusterroles" | "clusterrolebindings"
        ) | ("apiextensions.k8s.io", "customresourcedefinitions")
            | (
                "storage.k8s.io",
                "storageclasses" | "csidrivers" | "csinodes" | "volumeattachments"
            )
            | ("node.k8s.io", "runtimeclasses")
            | ("scheduling.k8s.io", "priorityclasses")
            | (
                "networking.k8s.io",
                "ingressclasses" | "ipaddresses" | "servicecidrs"
            )
            | ("admissionregistration.k8s.io", _)
            | ("apiregistration.k8s.io", "apiservices")
            | (
                "certificates.k8s.io",
                "certificatesigningrequests" | "clustertrustbundles"
            )
            | ("flowcontrol.apiserver.k8s.io", _)
    );
    let known_namespaced = matches!(
        group,
        "" | "apps"
            | "batch"
            | "policy"
            | "discovery.k8s.io"
            | "coordination.k8s.io"
            | "events.k8s.io"
    ) || matches!(
        (group, resource),
        ("rbac.authorization.k8s.io", "roles" | "rolebindings")
            | ("networking.k8s.io", "ingresses" | "networkpolicies")
            | ("autoscaling", _)
            | ("storage.k8s.io", "csistoragecapacities")
    );
    let namespaced = if cluster_scoped {
        Some(false)
    } else if known_namespaced {
        Some(true)
    } else {
        None
    };
    let name = match (group, resource) {
        ("", "namespaces") => NameRule::Label,
        ("", "services") => NameRule::Dns1035,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    };
    MetaRules {
        namespaced,
        name,
        kube_finalizers: group != "apiextensions.k8s.io",
    }
}
