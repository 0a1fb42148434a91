//! A valid, defaulted object of each kind has no causes, on create and on
//! an unchanged update.

use serde_json::{Value, json};

use super::fixtures::*;
use super::{check, check_update};

fn assert_valid(group: &str, resource: &str, obj: Value) {
    assert_eq!(
        check(group, resource, &obj),
        Vec::<String>::new(),
        "{group}/{resource} create"
    );
    assert_eq!(
        check_update(group, resource, &obj, &obj),
        Vec::<String>::new(),
        "{group}/{resource} update"
    );
}

#[test]
fn workloads_are_valid() {
    assert_valid("", "pods", pod());
    assert_valid("apps", "deployments", deployment());
    assert_valid("apps", "replicasets", replica_set());
    assert_valid("apps", "statefulsets", stateful_set());
    assert_valid("apps", "daemonsets", daemon_set());
    assert_valid("", "replicationcontrollers", replication_controller());
    assert_valid("batch", "jobs", job());
    assert_valid("batch", "cronjobs", cron_job());
    assert_valid(
        "",
        "podtemplates",
        json!({ "metadata": { "name": "t", "namespace": "default" }, "template": template(json!({ "a": "b" }), "Always") }),
    );
}

#[test]
fn network_kinds_are_valid() {
    assert_valid("", "services", service());
    assert_valid(
        "",
        "services",
        json!({ "metadata": { "name": "db", "namespace": "default" },
                "spec": { "clusterIP": "None", "clusterIPs": ["None"], "type": "ClusterIP", "sessionAffinity": "None", "selector": { "app": "db" } } }),
    );
    assert_valid(
        "",
        "services",
        json!({ "metadata": { "name": "ext", "namespace": "default" },
                "spec": { "type": "ExternalName", "externalName": "db.example.com.", "sessionAffinity": "None" } }),
    );
    assert_valid(
        "",
        "endpoints",
        json!({ "metadata": { "name": "web", "namespace": "default" },
                "subsets": [{ "addresses": [{ "ip": "10.42.0.5", "nodeName": "n1" }], "ports": [{ "name": "http", "port": 80, "protocol": "TCP" }] }] }),
    );
    assert_valid(
        "discovery.k8s.io",
        "endpointslices",
        json!({ "metadata": { "name": "web-abc12", "namespace": "default", "labels": { "kubernetes.io/service-name": "web" } },
                "addressType": "IPv4",
                "endpoints": [{ "addresses": ["10.42.0.5"], "conditions": { "ready": true } }],
                "ports": [{ "name": "http", "port": 80, "protocol": "TCP" }] }),
    );
    assert_valid(
        "networking.k8s.io",
        "ingresses",
        json!({ "metadata": { "name": "web", "namespace": "default" },
                "spec": { "ingressClassName": "traefik",
                          "tls": [{ "hosts": ["*.example.com"], "secretName": "web-tls" }],
                          "rules": [{ "host": "web.example.com", "http": { "paths": [
                              { "path": "/", "pathType": "Prefix", "backend": { "service": { "name": "web", "port": { "number": 80 } } } },
                              { "path": "/api", "pathType": "Exact", "backend": { "service": { "name": "api", "port": { "name": "http" } } } }
                          ] } }] } }),
    );
    assert_valid(
        "networking.k8s.io",
        "networkpolicies",
        json!({ "metadata": { "name": "deny", "namespace": "default" }, "spec": { "podSelector": {}, "policyTypes": ["Ingress"] } }),
    );
}

#[test]
fn config_and_storage_kinds_are_valid() {
    assert_valid("", "configmaps", config_map());
    assert_valid("", "secrets", secret());
    assert_valid(
        "",
        "secrets",
        json!({ "metadata": { "name": "s", "namespace": "default" }, "type": "Opaque", "stringData": { "password": "x" } }),
    );
    assert_valid("", "persistentvolumeclaims", pvc());
    assert_valid("", "persistentvolumes", pv());
    assert_valid(
        "storage.k8s.io",
        "storageclasses",
        json!({ "metadata": { "name": "local-path" }, "provisioner": "rancher.io/local-path",
                "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer" }),
    );
}

#[test]
fn cluster_kinds_are_valid() {
    assert_valid(
        "",
        "namespaces",
        json!({ "metadata": { "name": "team-a" }, "spec": { "finalizers": ["kubernetes"] } }),
    );
    assert_valid(
        "",
        "nodes",
        json!({ "metadata": { "name": "node-1.example", "labels": { "kubernetes.io/hostname": "node-1" } },
                "spec": { "podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"], "providerID": "skiff://node-1",
                          "taints": [{ "key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule" }] } }),
    );
    assert_valid(
        "",
        "serviceaccounts",
        json!({ "metadata": { "name": "default", "namespace": "default" } }),
    );
    assert_valid(
        "coordination.k8s.io",
        "leases",
        json!({ "metadata": { "name": "node-1", "namespace": "kube-node-lease" },
                "spec": { "holderIdentity": "node-1", "leaseDurationSeconds": 40, "renewTime": "2026-12-03T17:00:00.000000Z" } }),
    );
    assert_valid(
        "node.k8s.io",
        "runtimeclasses",
        json!({ "metadata": { "name": "wasmtime" }, "handler": "wasmtime" }),
    );
    assert_valid(
        "policy",
        "poddisruptionbudgets",
        json!({ "metadata": { "name": "web", "namespace": "default" },
                "spec": { "minAvailable": "50%", "selector": { "matchLabels": { "app": "web" } } } }),
    );
    assert_valid(
        "",
        "events",
        json!({ "metadata": { "name": "web.17a8", "namespace": "default" },
                "involvedObject": { "kind": "Pod", "namespace": "default", "name": "web" },
                "reason": "Scheduled", "message": "assigned", "type": "Normal", "count": 1,
                "source": { "component": "default-scheduler" } }),
    );
    assert_valid(
        "events.k8s.io",
        "events",
        json!({ "metadata": { "name": "web.17a9", "namespace": "default" },
                "eventTime": "2026-12-03T17:00:00.000000Z", "regarding": { "kind": "Pod", "namespace": "default", "name": "web" },
                "reason": "Pulled", "action": "Pulling", "note": "ok", "type": "Normal",
                "reportingController": "skiff.io/kubelet", "reportingInstance": "node-1" }),
    );
    assert_valid(
        "scheduling.k8s.io",
        "priorityclasses",
        json!({ "metadata": { "name": "high" }, "value": 1000, "preemptionPolicy": "Never" }),
    );
    assert_valid(
        "scheduling.k8s.io",
        "priorityclasses",
        json!({ "metadata": { "name": "system-node-critical" }, "value": 2000001000 }),
    );
    assert_valid(
        "",
        "limitranges",
        json!({ "metadata": { "name": "lr", "namespace": "default" },
                "spec": { "limits": [{ "type": "Container", "default": { "cpu": "500m" }, "defaultRequest": { "cpu": "100m" } }] } }),
    );
    assert_valid(
        "",
        "resourcequotas",
        json!({ "metadata": { "name": "rq", "namespace": "default" }, "spec": { "hard": { "pods": "10", "requests.cpu": "4" } } }),
    );
}

#[test]
fn rbac_and_crd_kinds_are_valid() {
    let rule = json!({ "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"] });
    assert_valid(
        "rbac.authorization.k8s.io",
        "roles",
        json!({ "metadata": { "name": "pod-reader", "namespace": "default" }, "rules": [rule] }),
    );
    assert_valid(
        "rbac.authorization.k8s.io",
        "clusterroles",
        json!({ "metadata": { "name": "system:reader" },
                "rules": [rule, { "nonResourceURLs": ["/healthz"], "verbs": ["get"] }],
                "aggregationRule": { "clusterRoleSelectors": [{ "matchLabels": { "rbac.example.com/aggregate": "true" } }] } }),
    );
    assert_valid(
        "rbac.authorization.k8s.io",
        "rolebindings",
        json!({ "metadata": { "name": "read-pods", "namespace": "default" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader" },
                "subjects": [{ "kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io" },
                             { "kind": "ServiceAccount", "name": "default", "namespace": "default" }] }),
    );
    assert_valid(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        json!({ "metadata": { "name": "system:node-reader" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:reader" },
                "subjects": [{ "kind": "Group", "name": "system:nodes" }] }),
    );
    assert_valid("apiextensions.k8s.io", "customresourcedefinitions", crd());
}

#[test]
fn unknown_kinds_get_metadata_checks_only() {
    assert_valid(
        "example.com",
        "widgets",
        json!({ "metadata": { "name": "w", "namespace": "default" }, "spec": { "anything": 1 } }),
    );
}
