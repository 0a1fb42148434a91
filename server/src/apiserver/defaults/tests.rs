//! Defaulted objects against what kube-apiserver 1.33 returns for them.

use serde_json::{Value, json};

use super::apply_defaults;
use super::pod::pull_policy;

fn defaulted(group: &str, resource: &str, mut obj: Value) -> Value {
    apply_defaults(group, resource, &mut obj);
    let once = obj.clone();
    apply_defaults(group, resource, &mut obj);
    assert_eq!(obj, once, "defaulting {group}/{resource} twice changed it");
    obj
}

/// A container as every pod spec gets it.
fn container(name: &str, image: &str, pull: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "imagePullPolicy": pull,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "resources": {},
    })
}

/// A template's pod spec with one container, as defaulted.
fn template_spec(c: Value, restart: &str) -> Value {
    json!({
        "containers": [c],
        "restartPolicy": restart,
        "dnsPolicy": "ClusterFirst",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
        "schedulerName": "default-scheduler",
    })
}

fn tolerations() -> Value {
    json!([
        { "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 },
        { "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 },
    ])
}

#[test]
fn minimal_pod() {
    let pod = defaulted(
        "",
        "pods",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "p", "namespace": "default", "uid": "u" },
            "spec": { "containers": [{ "name": "c", "image": "busybox" }] },
        }),
    );
    assert_eq!(
        pod["spec"],
        json!({
            "containers": [container("c", "busybox", "Always")],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "enableServiceLinks": true,
            "tolerations": tolerations(),
            "priority": 0,
            "preemptionPolicy": "PreemptLowerPriority",
        })
    );
    assert_eq!(
        pod["metadata"],
        json!({ "name": "p", "namespace": "default", "uid": "u" })
    );
}

#[test]
fn pod_keeps_what_the_client_gave() {
    let spec = json!({
        "containers": [{
            "name": "c", "image": "busybox", "imagePullPolicy": "Never",
            "terminationMessagePath": "/tmp/log", "terminationMessagePolicy": "FallbackToLogsOnError",
            "ports": [{ "containerPort": 53, "protocol": "UDP" }],
            "resources": { "requests": { "cpu": "250m" } },
        }],
        "restartPolicy": "Never",
        "dnsPolicy": "Default",
        "securityContext": { "runAsUser": 1000 },
        "terminationGracePeriodSeconds": 5,
        "schedulerName": "other",
        "serviceAccountName": "builder",
        "enableServiceLinks": false,
        "tolerations": [{ "operator": "Exists" }],
        "priority": 0,
        "preemptionPolicy": "Never",
    });
    let pod = defaulted(
        "",
        "pods",
        json!({ "metadata": { "name": "p" }, "spec": spec.clone() }),
    );
    let mut want = spec;
    want["serviceAccount"] = json!("builder");
    assert_eq!(pod["spec"], want);
}

#[test]
fn pod_service_account_and_priority_admission() {
    let pod = defaulted(
        "",
        "pods",
        json!({ "metadata": { "name": "p" }, "spec": { "serviceAccount": "old", "priorityClassName": "system-node-critical", "containers": [] } }),
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "old");
    assert_eq!(pod["spec"]["serviceAccount"], "old");
    assert_eq!(pod["spec"]["priority"], 2_000_001_000);
    assert_eq!(pod["spec"]["preemptionPolicy"], "PreemptLowerPriority");

    let pod = defaulted(
        "",
        "pods",
        json!({ "metadata": { "name": "p" }, "spec": { "priorityClassName": "high" } }),
    );
    assert!(
        pod["spec"].get("priority").is_none(),
        "a user class is looked up by the caller"
    );

    let mirror = defaulted(
        "",
        "pods",
        json!({ "metadata": { "name": "p", "annotations": { "kubernetes.io/config.mirror": "x" } }, "spec": {} }),
    );
    assert!(mirror["spec"].get("serviceAccountName").is_none());
}

#[test]
fn pod_tolerations_added_only_for_what_is_not_tolerated() {
    let pod = defaulted(
        "",
        "pods",
        json!({ "metadata": { "name": "p" }, "spec": { "tolerations": [
            { "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10 },
            { "key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoSchedule" },
        ] } }),
    );
    assert_eq!(
        pod["spec"]["tolerations"],
        json!([
            { "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10 },
            { "key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoSchedule" },
            { "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 },
        ])
    );
}

#[test]
fn pod_containers_probes_env_volumes() {
    let pod = defaulted(
        "",
        "pods",
        json!({ "metadata": { "name": "p" }, "spec": {
            "hostNetwork": true,
            "initContainers": [{ "name": "init", "image": "busybox:1.36" }],
            "containers": [{
                "name": "web", "image": "nginx:latest",
                "ports": [{ "containerPort": 80 }],
                "env": [{ "name": "POD", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }],
                "resources": { "limits": { "cpu": 1, "memory": "1024Mi" }, "requests": { "cpu": "0.5" } },
                "livenessProbe": { "httpGet": { "port": 80 } },
                "readinessProbe": { "grpc": { "port": 9000 }, "periodSeconds": 5 },
                "startupProbe": { "exec": { "command": ["true"] } },
                "lifecycle": { "preStop": { "httpGet": { "port": 80, "path": "/quit" } } },
            }],
            "volumes": [
                { "name": "scratch" },
                { "name": "cm", "configMap": { "name": "c" } },
                { "name": "s", "secret": { "secretName": "s", "defaultMode": 256 } },
                { "name": "host", "hostPath": { "path": "/data" } },
                { "name": "mem", "emptyDir": { "medium": "Memory", "sizeLimit": "1024Mi" } },
                { "name": "info", "downwardAPI": { "items": [{ "path": "n", "fieldRef": { "fieldPath": "metadata.name" } }] } },
                { "name": "token", "projected": { "sources": [{ "serviceAccountToken": { "path": "t" } }] } },
                { "name": "eph", "ephemeral": { "volumeClaimTemplate": { "spec": { "accessModes": ["ReadWriteOnce"] } } } },
            ],
        } }),
    );
    let spec = &pod["spec"];
    assert_eq!(spec["initContainers"][0]["imagePullPolicy"], "IfNotPresent");
    let web = &spec["containers"][0];
    assert_eq!(web["imagePullPolicy"], "Always");
    assert_eq!(
        web["ports"],
        json!([{ "containerPort": 80, "protocol": "TCP", "hostPort": 80 }])
    );
    assert_eq!(
        web["env"][0]["valueFrom"]["fieldRef"],
        json!({ "fieldPath": "metadata.name", "apiVersion": "v1" })
    );
    assert_eq!(
        web["resources"],
        json!({ "limits": { "cpu": "1", "memory": "1Gi" }, "requests": { "cpu": "500m", "memory": "1Gi" } })
    );
    assert_eq!(
        web["livenessProbe"],
        json!({ "httpGet": { "port": 80, "path": "/", "scheme": "HTTP" },
                "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3 })
    );
    assert_eq!(
        web["readinessProbe"]["grpc"],
        json!({ "port": 9000, "service": "" })
    );
    assert_eq!(web["readinessProbe"]["periodSeconds"], 5);
    assert_eq!(web["startupProbe"]["failureThreshold"], 3);
    assert_eq!(
        web["lifecycle"]["preStop"]["httpGet"],
        json!({ "port": 80, "path": "/quit", "scheme": "HTTP" })
    );
    assert_eq!(
        spec["volumes"],
        json!([
            { "name": "scratch", "emptyDir": {} },
            { "name": "cm", "configMap": { "name": "c", "defaultMode": 420 } },
            { "name": "s", "secret": { "secretName": "s", "defaultMode": 256 } },
            { "name": "host", "hostPath": { "path": "/data", "type": "" } },
            { "name": "mem", "emptyDir": { "medium": "Memory", "sizeLimit": "1Gi" } },
            { "name": "info", "downwardAPI": { "defaultMode": 420,
                "items": [{ "path": "n", "fieldRef": { "fieldPath": "metadata.name", "apiVersion": "v1" } }] } },
            { "name": "token", "projected": { "defaultMode": 420,
                "sources": [{ "serviceAccountToken": { "path": "t", "expirationSeconds": 3600 } }] } },
            { "name": "eph", "ephemeral": { "volumeClaimTemplate": { "spec": {
                "accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem", "resources": {} } } } },
        ])
    );
}

#[test]
fn image_pull_policy_follows_the_tag() {
    for (image, want) in [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("busybox:1.36", "IfNotPresent"),
        (
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "IfNotPresent",
        ),
        (
            "busybox:latest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Always",
        ),
        ("127.0.0.1:5000/skiff/busybox", "Always"),
        ("localhost:5000/busybox:v1", "IfNotPresent"),
        ("registry.example.com/team/app:latest", "Always"),
        ("", "IfNotPresent"),
        ("BusyBox", "IfNotPresent"),
    ] {
        assert_eq!(pull_policy(image), want, "{image}");
    }
}

#[test]
fn minimal_deployment() {
    let deploy = defaulted(
        "apps",
        "deployments",
        json!({ "metadata": { "name": "web" }, "spec": {
            "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } },
                          "spec": { "containers": [{ "name": "nginx", "image": "nginx:1.25" }] } },
        } }),
    );
    assert_eq!(
        deploy["spec"],
        json!({
            "replicas": 1,
            "selector": { "matchLabels": { "app": "web" } },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": "25%", "maxSurge": "25%" } },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": template_spec(container("nginx", "nginx:1.25", "IfNotPresent"), "Always"),
            },
        })
    );
}

#[test]
fn deployment_keeps_client_values() {
    let deploy = defaulted(
        "apps",
        "deployments",
        json!({ "spec": { "replicas": 0, "strategy": { "type": "Recreate" }, "revisionHistoryLimit": 2,
                          "progressDeadlineSeconds": 60, "template": { "spec": { "containers": [] } } } }),
    );
    assert_eq!(deploy["spec"]["replicas"], 0);
    assert_eq!(deploy["spec"]["strategy"], json!({ "type": "Recreate" }));
    assert_eq!(deploy["spec"]["revisionHistoryLimit"], 2);
    assert_eq!(deploy["spec"]["progressDeadlineSeconds"], 60);

    let partial = defaulted(
        "apps",
        "deployments",
        json!({ "spec": { "strategy": { "rollingUpdate": { "maxSurge": 0 } } } }),
    );
    assert_eq!(
        partial["spec"]["strategy"],
        json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 0, "maxUnavailable": "25%" } })
    );
}

#[test]
fn minimal_statefulset() {
    let sts = defaulted(
        "apps",
        "statefulsets",
        json!({ "metadata": { "name": "db" }, "spec": {
            "serviceName": "db",
            "selector": { "matchLabels": { "app": "db" } },
            "template": { "metadata": { "labels": { "app": "db" } },
                          "spec": { "containers": [{ "name": "db", "image": "postgres:16" }] } },
            "volumeClaimTemplates": [{ "metadata": { "name": "data" },
                "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1024Mi" } } } }],
        } }),
    );
    assert_eq!(
        sts["spec"],
        json!({
            "replicas": 1,
            "serviceName": "db",
            "selector": { "matchLabels": { "app": "db" } },
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } },
            "persistentVolumeClaimRetentionPolicy": { "whenDeleted": "Retain", "whenScaled": "Retain" },
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": { "labels": { "app": "db" } },
                "spec": template_spec(container("db", "postgres:16", "IfNotPresent"), "Always"),
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } },
                          "volumeMode": "Filesystem" },
                "status": { "phase": "Pending" },
            }],
        })
    );
    let on_delete = defaulted(
        "apps",
        "statefulsets",
        json!({ "spec": { "updateStrategy": { "type": "OnDelete" } } }),
    );
    assert_eq!(
        on_delete["spec"]["updateStrategy"],
        json!({ "type": "OnDelete" })
    );
}

#[test]
fn minimal_daemonset() {
    let ds = defaulted(
        "apps",
        "daemonsets",
        json!({ "spec": {
            "selector": { "matchLabels": { "app": "agent" } },
            "template": { "metadata": { "labels": { "app": "agent" } },
                          "spec": { "containers": [{ "name": "a", "image": "agent" }] } },
        } }),
    );
    assert_eq!(
        ds["spec"],
        json!({
            "selector": { "matchLabels": { "app": "agent" } },
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } },
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": { "labels": { "app": "agent" } },
                "spec": template_spec(container("a", "agent", "Always"), "Always"),
            },
        })
    );
}

#[test]
fn replicaset_and_replication_controller() {
    let rs = defaulted(
        "apps",
        "replicasets",
        json!({ "spec": { "template": { "spec": { "containers": [] } } } }),
    );
    assert_eq!(rs["spec"]["replicas"], 1);
    let rc = defaulted(
        "",
        "replicationcontrollers",
        json!({ "metadata": { "name": "rc" }, "spec": { "template": {
            "metadata": { "labels": { "app": "x" } }, "spec": { "containers": [] } } } }),
    );
    assert_eq!(rc["spec"]["selector"], json!({ "app": "x" }));
    assert_eq!(rc["metadata"]["labels"], json!({ "app": "x" }));
    assert_eq!(rc["spec"]["replicas"], 1);
    assert_eq!(rc["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    let pt = defaulted(
        "",
        "podtemplates",
        json!({ "template": { "spec": { "containers": [] } } }),
    );
    assert_eq!(pt["template"]["spec"]["restartPolicy"], "Always");
}

#[test]
fn minimal_job() {
    let job = defaulted(
        "batch",
        "jobs",
        json!({ "metadata": { "name": "pi", "uid": "1234" }, "spec": { "template": { "spec": {
            "containers": [{ "name": "pi", "image": "perl:5.34" }], "restartPolicy": "Never" } } } }),
    );
    let labels = json!({
        "batch.kubernetes.io/controller-uid": "1234",
        "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "1234",
        "job-name": "pi",
    });
    assert_eq!(
        job["metadata"],
        json!({ "name": "pi", "uid": "1234", "labels": labels })
    );
    assert_eq!(
        job["spec"],
        json!({
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 6,
            "completionMode": "NonIndexed",
            "suspend": false,
            "podReplacementPolicy": "TerminatingOrFailed",
            "manualSelector": false,
            "selector": { "matchLabels": { "batch.kubernetes.io/controller-uid": "1234" } },
            "template": {
                "metadata": { "labels": labels },
                "spec": template_spec(container("pi", "perl:5.34", "IfNotPresent"), "Never"),
            },
        })
    );
}

#[test]
fn job_rules_for_counts_labels_and_manual_selectors() {
    let parallel = defaulted(
        "batch",
        "jobs",
        json!({ "metadata": { "uid": "u" }, "spec": { "parallelism": 3 } }),
    );
    assert!(parallel["spec"].get("completions").is_none());
    let counted = defaulted(
        "batch",
        "jobs",
        json!({ "metadata": { "uid": "u" }, "spec": { "completions": 5 } }),
    );
    assert_eq!(counted["spec"]["parallelism"], 1);

    let per_index = defaulted(
        "batch",
        "jobs",
        json!({ "spec": { "completionMode": "Indexed", "completions": 2, "backoffLimitPerIndex": 1,
                          "podFailurePolicy": { "rules": [{ "action": "Ignore",
                              "onPodConditions": [{ "type": "DisruptionTarget" }] }] } } }),
    );
    assert_eq!(per_index["spec"]["backoffLimit"], 2_147_483_647);
    assert_eq!(per_index["spec"]["podReplacementPolicy"], "Failed");
    assert_eq!(
        per_index["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
        "True"
    );
    assert!(
        per_index["spec"].get("selector").is_none(),
        "no uid, no selector"
    );

    let own_labels = defaulted(
        "batch",
        "jobs",
        json!({ "metadata": { "name": "j", "uid": "u" },
                "spec": { "template": { "metadata": { "labels": { "app": "x" } } } } }),
    );
    assert_eq!(own_labels["metadata"]["labels"], json!({ "app": "x" }));
    assert_eq!(
        own_labels["spec"]["template"]["metadata"]["labels"]["app"],
        "x"
    );
    assert_eq!(
        own_labels["spec"]["template"]["metadata"]["labels"]["job-name"],
        "j"
    );

    let manual = defaulted(
        "batch",
        "jobs",
        json!({ "metadata": { "name": "j", "uid": "u" }, "spec": {
            "manualSelector": true, "selector": { "matchLabels": { "app": "x" } },
            "template": { "metadata": { "labels": { "app": "x" } } } } }),
    );
    assert_eq!(
        manual["spec"]["selector"],
        json!({ "matchLabels": { "app": "x" } })
    );
    assert_eq!(
        manual["spec"]["template"]["metadata"]["labels"],
        json!({ "app": "x" })
    );
}

#[test]
fn minimal_cronjob() {
    let cj = defaulted(
        "batch",
        "cronjobs",
        json!({ "spec": { "schedule": "*/5 * * * *", "jobTemplate": { "spec": { "template": { "spec": {
            "containers": [{ "name": "c", "image": "busybox" }], "restartPolicy": "OnFailure" } } } } } }),
    );
    assert_eq!(
        cj["spec"],
        json!({
            "schedule": "*/5 * * * *",
            "concurrencyPolicy": "Allow",
            "suspend": false,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": { "spec": { "template": {
                "spec": template_spec(container("c", "busybox", "Always"), "OnFailure"),
            } } },
        })
    );
}

#[test]
fn minimal_service_and_types() {
    let svc = defaulted(
        "",
        "services",
        json!({ "metadata": { "name": "web" }, "spec": { "selector": { "app": "web" },
            "ports": [{ "port": 80 }, { "name": "named", "port": 8080, "targetPort": "http", "protocol": "UDP" }] } }),
    );
    assert_eq!(
        svc["spec"],
        json!({
            "type": "ClusterIP",
            "selector": { "app": "web" },
            "ports": [
                { "port": 80, "protocol": "TCP", "targetPort": 80 },
                { "name": "named", "port": 8080, "targetPort": "http", "protocol": "UDP" },
            ],
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv4"],
        })
    );
    assert_eq!(svc["status"], json!({ "loadBalancer": {} }));

    let node_port = defaulted(
        "",
        "services",
        json!({ "spec": { "type": "NodePort", "externalTrafficPolicy": "Local" } }),
    );
    assert_eq!(node_port["spec"]["externalTrafficPolicy"], "Local");
    let lb = defaulted(
        "",
        "services",
        json!({ "spec": { "type": "LoadBalancer" },
        "status": { "loadBalancer": { "ingress": [{ "ip": "192.0.2.1" }] } } }),
    );
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(lb["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");

    let headless = defaulted("", "services", json!({ "spec": { "clusterIP": "None" } }));
    assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
    assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    let headless_selected = defaulted(
        "",
        "services",
        json!({ "spec": { "clusterIP": "None", "selector": { "a": "b" } } }),
    );
    assert_eq!(headless_selected["spec"]["ipFamilyPolicy"], "SingleStack");

    let external = defaulted(
        "",
        "services",
        json!({ "spec": { "type": "ExternalName", "externalName": "example.com" } }),
    );
    assert_eq!(
        external["spec"],
        json!({ "type": "ExternalName", "externalName": "example.com", "sessionAffinity": "None" })
    );

    let sticky = defaulted(
        "",
        "services",
        json!({ "spec": { "sessionAffinity": "ClientIP" } }),
    );
    assert_eq!(
        sticky["spec"]["sessionAffinityConfig"],
        json!({ "clientIP": { "timeoutSeconds": 10800 } })
    );
    let dropped = defaulted(
        "",
        "services",
        json!({ "spec": { "sessionAffinityConfig": { "clientIP": {} } } }),
    );
    assert!(dropped["spec"].get("sessionAffinityConfig").is_none());
}

#[test]
fn namespace_and_secret() {
    let ns = defaulted(
        "",
        "namespaces",
        json!({ "metadata": { "name": "team", "labels": { "kubernetes.io/metadata.name": "x" } } }),
    );
    assert_eq!(
        ns,
        json!({ "metadata": { "name": "team", "labels": { "kubernetes.io/metadata.name": "team" } },
                "spec": { "finalizers": ["kubernetes"] } })
    );
    let finalizing = defaulted(
        "",
        "namespaces",
        json!({ "metadata": { "name": "team" }, "spec": { "finalizers": [] } }),
    );
    assert_eq!(finalizing["spec"]["finalizers"], json!([]));

    let secret = defaulted(
        "",
        "secrets",
        json!({ "metadata": { "name": "s" }, "data": {} }),
    );
    assert_eq!(
        secret,
        json!({ "metadata": { "name": "s" }, "data": {}, "type": "Opaque" })
    );
    let tls = defaulted("", "secrets", json!({ "type": "kubernetes.io/tls" }));
    assert_eq!(tls["type"], "kubernetes.io/tls");
}

#[test]
fn storage_kinds() {
    let pvc = defaulted(
        "",
        "persistentvolumeclaims",
        json!({ "spec": { "resources": { "requests": { "storage": "1000Mi" } } } }),
    );
    assert_eq!(
        pvc,
        json!({ "spec": { "resources": { "requests": { "storage": "1000Mi" } }, "volumeMode": "Filesystem" },
                "status": { "phase": "Pending" } })
    );
    let pv = defaulted(
        "",
        "persistentvolumes",
        json!({ "spec": { "capacity": { "storage": "5Gi" }, "hostPath": { "path": "/mnt" } } }),
    );
    assert_eq!(
        pv,
        json!({ "spec": { "capacity": { "storage": "5Gi" }, "hostPath": { "path": "/mnt", "type": "" },
                          "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem" },
                "status": { "phase": "Pending" } })
    );
    let sc = defaulted(
        "storage.k8s.io",
        "storageclasses",
        json!({ "provisioner": "rancher.io/local-path" }),
    );
    assert_eq!(sc["reclaimPolicy"], "Delete");
    assert_eq!(sc["volumeBindingMode"], "Immediate");
    let kept = defaulted(
        "storage.k8s.io",
        "storageclasses",
        json!({ "volumeBindingMode": "WaitForFirstConsumer" }),
    );
    assert_eq!(kept["volumeBindingMode"], "WaitForFirstConsumer");
}

#[test]
fn network_kinds() {
    let ep = defaulted(
        "",
        "endpoints",
        json!({ "subsets": [{ "ports": [{ "port": 80 }] }] }),
    );
    assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
    let slice = defaulted(
        "discovery.k8s.io",
        "endpointslices",
        json!({ "ports": [{ "port": 80 }] }),
    );
    assert_eq!(
        slice["ports"],
        json!([{ "port": 80, "name": "", "protocol": "TCP" }])
    );
    let np = defaulted(
        "networking.k8s.io",
        "networkpolicies",
        json!({ "spec": { "podSelector": {}, "egress": [{ "ports": [{ "port": 53, "protocol": "UDP" }, { "port": 443 }] }] } }),
    );
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        np["spec"]["egress"][0]["ports"],
        json!([{ "port": 53, "protocol": "UDP" }, { "port": 443, "protocol": "TCP" }])
    );
    let deny = defaulted(
        "networking.k8s.io",
        "networkpolicies",
        json!({ "spec": { "podSelector": {} } }),
    );
    assert_eq!(deny["spec"]["policyTypes"], json!(["Ingress"]));
    let class = defaulted(
        "networking.k8s.io",
        "ingressclasses",
        json!({ "spec": { "parameters": { "kind": "X", "name": "x" } } }),
    );
    assert_eq!(class["spec"]["parameters"]["scope"], "Cluster");
}

#[test]
fn rbac_crd_priority_hpa_limits() {
    let binding = defaulted(
        "rbac.authorization.k8s.io",
        "rolebindings",
        json!({ "roleRef": { "kind": "Role", "name": "r" }, "subjects": [
            { "kind": "User", "name": "alice" }, { "kind": "Group", "name": "devs" },
            { "kind": "ServiceAccount", "name": "default", "namespace": "x" } ] }),
    );
    assert_eq!(
        binding,
        json!({ "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r" }, "subjects": [
            { "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice" },
            { "apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs" },
            { "kind": "ServiceAccount", "name": "default", "namespace": "x" } ] })
    );

    let crd = defaulted(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        json!({ "spec": { "group": "example.com", "names": { "kind": "Widget", "plural": "widgets" } } }),
    );
    assert_eq!(crd["spec"]["names"]["singular"], "widget");
    assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
    assert_eq!(crd["spec"]["conversion"], json!({ "strategy": "None" }));

    let pc = defaulted(
        "scheduling.k8s.io",
        "priorityclasses",
        json!({ "value": 10 }),
    );
    assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");

    let hpa = defaulted(
        "autoscaling",
        "horizontalpodautoscalers",
        json!({ "apiVersion": "autoscaling/v2", "spec": { "maxReplicas": 5, "behavior": { "scaleDown": { "stabilizationWindowSeconds": 60 } } } }),
    );
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    assert_eq!(
        hpa["spec"]["behavior"]["scaleDown"],
        json!({ "stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                "policies": [{ "type": "Percent", "value": 100, "periodSeconds": 15 }] })
    );
    assert_eq!(
        hpa["spec"]["behavior"]["scaleUp"]["policies"][0],
        json!({ "type": "Pods", "value": 4, "periodSeconds": 15 })
    );

    let lr = defaulted(
        "",
        "limitranges",
        json!({ "spec": { "limits": [{ "type": "Container", "max": { "cpu": "2" }, "min": { "memory": "64Mi" } }] } }),
    );
    assert_eq!(
        lr["spec"]["limits"][0],
        json!({ "type": "Container", "max": { "cpu": "2" }, "min": { "memory": "64Mi" },
                "default": { "cpu": "2" }, "defaultRequest": { "cpu": "2", "memory": "64Mi" } })
    );
}

#[test]
fn other_kinds_and_non_objects_are_untouched() {
    let cm = json!({ "metadata": { "name": "c" }, "data": { "k": "v" } });
    assert_eq!(defaulted("", "configmaps", cm.clone()), cm);
    let lease = json!({ "spec": { "holderIdentity": "x" } });
    assert_eq!(
        defaulted("coordination.k8s.io", "leases", lease.clone()),
        lease
    );
    assert_eq!(
        defaulted("", "pods", json!("not an object")),
        json!("not an object")
    );
    let odd = json!({ "spec": { "containers": "nope", "volumes": [1, null] } });
    let out = defaulted("", "pods", odd);
    assert_eq!(out["spec"]["containers"], "nope");
}
