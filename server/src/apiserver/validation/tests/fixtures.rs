//! Valid objects of each kind, defaulted by hand as the server would.

use serde_json::{Value, json};

pub(super) fn container(name: &str) -> Value {
    json!({
        "name": name, "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
        "terminationMessagePolicy": "File", "terminationMessagePath": "/dev/termination-log",
        "ports": [{ "name": "http", "containerPort": 80, "protocol": "TCP" }],
        "resources": { "requests": { "cpu": "100m", "memory": "64Mi" }, "limits": { "cpu": "1", "memory": "128Mi" } },
        "volumeMounts": [{ "name": "data", "mountPath": "/data" }],
        "livenessProbe": {
            "httpGet": { "path": "/", "port": 80, "scheme": "HTTP" },
            "initialDelaySeconds": 1, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3
        }
    })
}

pub(super) fn pod_spec(restart: &str) -> Value {
    json!({
        "containers": [container("web")],
        "initContainers": [{ "name": "init", "image": "busybox", "command": ["true"], "imagePullPolicy": "Always",
                             "terminationMessagePolicy": "File" }],
        "volumes": [
            { "name": "data", "emptyDir": {} },
            { "name": "config", "configMap": { "name": "web-config", "defaultMode": 420 } }
        ],
        "restartPolicy": restart, "dnsPolicy": "ClusterFirst", "terminationGracePeriodSeconds": 30,
        "schedulerName": "default-scheduler", "securityContext": {}, "serviceAccountName": "default",
        "tolerations": [
            { "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 }
        ],
        "nodeSelector": { "kubernetes.io/os": "linux" },
        "enableServiceLinks": true, "priority": 0, "preemptionPolicy": "PreemptLowerPriority"
    })
}

pub(super) fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "web", "namespace": "default", "labels": { "app": "web" },
            "annotations": { "example.com/owner": "team-a" }, "uid": "0b1c", "resourceVersion": "7",
            "creationTimestamp": "2026-12-03T17:00:00Z"
        },
        "spec": pod_spec("Always"),
        "status": { "phase": "Pending", "qosClass": "Burstable" }
    })
}

pub(super) fn template(labels: Value, restart: &str) -> Value {
    json!({ "metadata": { "labels": labels }, "spec": pod_spec(restart) })
}

pub(super) fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web", "namespace": "default", "generation": 1 },
        "spec": {
            "replicas": 3, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "selector": { "matchLabels": { "app": "web" } },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": "25%", "maxSurge": "25%" } },
            "template": template(json!({ "app": "web", "tier": "frontend" }), "Always")
        }
    })
}

pub(super) fn replica_set() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": { "name": "web-5d8f", "namespace": "default" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "web" }, "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["frontend"] }] },
            "template": template(json!({ "app": "web", "tier": "frontend" }), "Always")
        }
    })
}

pub(super) fn stateful_set() -> Value {
    let mut t = template(json!({ "app": "db" }), "Always");
    t["spec"]["containers"][0]["volumeMounts"] =
        json!([{ "name": "pgdata", "mountPath": "/var/lib/postgresql" }]);
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": { "name": "db", "namespace": "default" },
        "spec": {
            "replicas": 1, "serviceName": "db", "podManagementPolicy": "OrderedReady", "revisionHistoryLimit": 10,
            "selector": { "matchLabels": { "app": "db" } },
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } },
            "persistentVolumeClaimRetentionPolicy": { "whenDeleted": "Retain", "whenScaled": "Retain" },
            "template": t,
            "volumeClaimTemplates": [{
                "metadata": { "name": "pgdata" },
                "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } }
            }]
        }
    })
}

pub(super) fn daemon_set() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": { "name": "agent", "namespace": "kube-system" },
        "spec": {
            "selector": { "matchLabels": { "app": "agent" } },
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } },
            "revisionHistoryLimit": 10,
            "template": template(json!({ "app": "agent" }), "Always")
        }
    })
}

pub(super) fn replication_controller() -> Value {
    json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": { "name": "legacy", "namespace": "default" },
        "spec": { "replicas": 2, "selector": { "app": "legacy" }, "template": template(json!({ "app": "legacy" }), "Always") }
    })
}

pub(super) fn job() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": "pi", "namespace": "default", "uid": "a1b2" },
        "spec": {
            "parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": false,
            "manualSelector": false,
            "selector": { "matchLabels": { "batch.kubernetes.io/controller-uid": "a1b2" } },
            "template": template(json!({ "batch.kubernetes.io/controller-uid": "a1b2", "batch.kubernetes.io/job-name": "pi",
                                         "controller-uid": "a1b2", "job-name": "pi" }), "Never")
        }
    })
}

pub(super) fn cron_job() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": { "name": "nightly", "namespace": "default" },
        "spec": {
            "schedule": "*/5 1-3,22 * JAN-dec mon-FRI", "concurrencyPolicy": "Allow", "suspend": false,
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1, "timeZone": "Europe/Berlin",
            "jobTemplate": { "spec": { "backoffLimit": 6, "template": template(json!({}), "OnFailure") } }
        }
    })
}

pub(super) fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "web", "namespace": "default" },
        "spec": {
            "type": "NodePort", "selector": { "app": "web" }, "sessionAffinity": "None",
            "clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster", "externalTrafficPolicy": "Cluster",
            "ports": [
                { "name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30080 },
                { "name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP", "nodePort": 30090, "appProtocol": "http" }
            ]
        }
    })
}

pub(super) fn config_map() -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "web-config", "namespace": "default" },
        "data": { "nginx.conf": "events {}", "KEY_NAME": "x", ".hidden": "y" }, "binaryData": { "blob": "AAEC" }
    })
}

pub(super) fn secret() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "web-tls", "namespace": "default" },
        "type": "kubernetes.io/tls", "data": { "tls.crt": "Y2VydA==", "tls.key": "a2V5" }
    })
}

pub(super) fn pvc() -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": { "name": "data", "namespace": "default" },
        "spec": {
            "accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem", "storageClassName": "local-path",
            "resources": { "requests": { "storage": "1Gi" } }
        },
        "status": { "phase": "Pending" }
    })
}

pub(super) fn pv() -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": { "name": "pv-1" },
        "spec": {
            "capacity": { "storage": "10Gi" }, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
            "volumeMode": "Filesystem", "storageClassName": "manual", "hostPath": { "path": "/srv/pv-1", "type": "" }
        }
    })
}

pub(super) fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.example.com" },
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList", "shortNames": ["wd"] },
            "versions": [
                { "name": "v1", "served": true, "storage": true,
                  "schema": { "openAPIV3Schema": { "type": "object", "properties": { "spec": { "type": "object" } } } },
                  "additionalPrinterColumns": [{ "name": "Size", "type": "integer", "jsonPath": ".spec.size" }] },
                { "name": "v1beta1", "served": true, "storage": false,
                  "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }
            ]
        }
    })
}
