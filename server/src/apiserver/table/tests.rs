//! Row-by-row checks against what upstream's printers produce for the same objects.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::format::parse_time;
use super::*;

const NOW: &str = "2026-12-03T17:00:00Z";
const FIVE_MIN_AGO: &str = "2026-12-03T16:55:00Z";

fn now() -> OffsetDateTime {
    parse_time(NOW).unwrap()
}

fn built_in(group: &str, resource: &str, object: Value) -> Value {
    table(group, resource, &[object], now(), &TableOptions::default())
}

fn cells(group: &str, resource: &str, object: Value) -> Vec<Value> {
    let t = built_in(group, resource, object);
    t["rows"][0]["cells"].as_array().unwrap().clone()
}

fn strings(cells: &[Value]) -> Vec<String> {
    cells
        .iter()
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn column_names(t: &Value) -> Vec<(String, i64)> {
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["priority"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn pod(status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": FIVE_MIN_AGO, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}], "nodeName": "node-a"},
        "status": status
    })
}

#[test]
fn pod_columns_and_wide_priorities() {
    let t = built_in("", "pods", pod(json!({"phase": "Pending"})));
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        column_names(&t),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    let name = &t["columnDefinitions"][0];
    assert_eq!(name["format"], "name");
    assert!(
        name["description"]
            .as_str()
            .unwrap()
            .starts_with("Name must be unique within a namespace.")
    );
    assert_eq!(t["columnDefinitions"][3]["type"], "string");
    assert_eq!(
        t["columnDefinitions"][5]["description"],
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."
    );
}

#[test]
fn pod_running_and_pending() {
    let running = pod(json!({
        "phase": "Running",
        "podIP": "10.42.0.7", "podIPs": [{"ip": "10.42.0.7"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": FIVE_MIN_AGO}}}]
    }));
    assert_eq!(
        strings(&cells("", "pods", running)),
        [
            "web-0",
            "1/1",
            "Running",
            "0",
            "5m",
            "10.42.0.7",
            "node-a",
            "<none>",
            "<none>"
        ]
    );
    let mut pending = pod(json!({"phase": "Pending"}));
    pending["spec"].as_object_mut().unwrap().remove("nodeName");
    assert_eq!(
        strings(&cells("", "pods", pending)),
        [
            "web-0", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"
        ]
    );
    let creating = pod(json!({
        "phase": "Pending",
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]
    }));
    assert_eq!(
        strings(&cells("", "pods", creating))[2],
        "ContainerCreating"
    );
    let gated = pod(
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
    );
    assert_eq!(strings(&cells("", "pods", gated))[2], "SchedulingGated");
}

#[test]
fn pod_crash_loop_with_recent_restart() {
    let crashing = pod(json!({
        "phase": "Running",
        "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": FIVE_MIN_AGO}}
        }]
    }));
    let c = strings(&cells("", "pods", crashing));
    assert_eq!(c[1..4], ["0/1", "CrashLoopBackOff", "3 (5m ago)"]);
}

#[test]
fn pod_completed_failed_and_signals() {
    let done = pod(json!({
        "phase": "Succeeded",
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]
    }));
    let t = built_in("", "pods", done);
    assert_eq!(
        strings(t["rows"][0]["cells"].as_array().unwrap())[1..3],
        ["0/1", "Completed"]
    );
    assert_eq!(
        t["rows"][0]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
    );
    let killed = pod(json!({
        "phase": "Failed",
        "containerStatuses": [{"name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}}]
    }));
    let t = built_in("", "pods", killed);
    assert_eq!(t["rows"][0]["cells"][2], "Signal:9");
    assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Failed");
    let exit = pod(
        json!({"phase": "Failed", "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 2}}}]}),
    );
    assert_eq!(cells("", "pods", exit)[2], "ExitCode:2");
    let evicted = pod(json!({"phase": "Failed", "reason": "Evicted"}));
    assert_eq!(cells("", "pods", evicted)[2], "Evicted");
    // A sidecar still running after the main container completed.
    let mut two = pod(json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {"name": "app", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "side", "ready": true, "state": {"running": {}}}
        ]
    }));
    two["spec"]["containers"] = json!([{"name": "app"}, {"name": "side"}]);
    assert_eq!(strings(&cells("", "pods", two))[1..3], ["1/2", "NotReady"]);
}

#[test]
fn pod_terminating() {
    let mut p = pod(json!({
        "phase": "Running",
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]
    }));
    p["metadata"]["deletionTimestamp"] = json!(NOW);
    assert_eq!(
        strings(&cells("", "pods", p.clone()))[1..3],
        ["1/1", "Terminating"]
    );
    p["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells("", "pods", p.clone())[2], "Unknown");
    p["status"] = json!({"phase": "Succeeded"});
    assert_eq!(cells("", "pods", p)[2], "Succeeded");
}

#[test]
fn pod_init_containers() {
    let mut p = pod(json!({
        "phase": "Pending",
        "initContainerStatuses": [{"name": "init", "restartCount": 0, "state": {"running": {}}}],
        "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]
    }));
    p["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
    assert_eq!(
        strings(&cells("", "pods", p.clone()))[1..4],
        ["0/1", "Init:0/1", "0"]
    );

    p["status"]["initContainerStatuses"] = json!([{
        "name": "init", "restartCount": 2,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-12-03T16:59:30Z"}}
    }]);
    assert_eq!(
        strings(&cells("", "pods", p.clone()))[2..4],
        ["Init:CrashLoopBackOff", "2 (30s ago)"]
    );

    p["status"]["initContainerStatuses"] =
        json!([{"name": "init", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]);
    assert_eq!(cells("", "pods", p.clone())[2], "Init:Error");

    // A restartable (sidecar) init container counts towards READY and its total.
    p["spec"]["initContainers"] = json!([{"name": "init", "restartPolicy": "Always"}]);
    p["status"] = json!({
        "phase": "Running",
        "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
        "initContainerStatuses": [{"name": "init", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}}}],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]
    });
    assert_eq!(
        strings(&cells("", "pods", p))[1..4],
        ["2/2", "Running", "1"]
    );
}

#[test]
fn pod_readiness_gates() {
    let mut p = pod(
        json!({"phase": "Running", "conditions": [{"type": "example.com/ready", "status": "True"}]}),
    );
    p["spec"]["readinessGates"] =
        json!([{"conditionType": "example.com/ready"}, {"conditionType": "example.com/other"}]);
    assert_eq!(cells("", "pods", p)[8], "1/2");
}

#[test]
fn deployment_row() {
    let d = json!({
        "metadata": {"name": "web", "creationTimestamp": "2026-12-01T14:00:00Z"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]}}
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    });
    let t = built_in("apps", "deployments", d);
    assert_eq!(
        column_names(&t),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Up-to-date", 0),
            ("Available", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "web",
            "2/3",
            3,
            2,
            "2d3h",
            "app,log",
            "nginx:1,busybox",
            "app=web"
        ])
    );
}

#[test]
fn workload_rows() {
    let template = json!({"spec": {"containers": [{"name": "app", "image": "img"}]}});
    let rs = json!({
        "metadata": {"name": "web-5d4", "creationTimestamp": FIVE_MIN_AGO},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4"}}, "template": template},
        "status": {"replicas": 2, "readyReplicas": 1}
    });
    assert_eq!(
        cells("apps", "replicasets", rs),
        json!([
            "web-5d4",
            2,
            2,
            1,
            "5m",
            "app",
            "img",
            "app=web,pod-template-hash=5d4"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let sts = json!({"metadata": {"name": "db", "creationTimestamp": FIVE_MIN_AGO}, "spec": {"template": template}, "status": {"readyReplicas": 1}});
    assert_eq!(
        strings(&cells("apps", "statefulsets", sts)),
        ["db", "1/1", "5m", "app", "img"]
    );
    let ds = json!({
        "metadata": {"name": "agent", "creationTimestamp": FIVE_MIN_AGO},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "a", "image": "i"}]}}},
        "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}
    });
    assert_eq!(
        cells("apps", "daemonsets", ds),
        json!([
            "agent",
            2,
            2,
            2,
            2,
            2,
            "kubernetes.io/os=linux",
            "5m",
            "a",
            "i",
            "app=agent"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let rc = json!({"metadata": {"name": "rc", "creationTimestamp": FIVE_MIN_AGO}, "spec": {"selector": {"app": "rc"}}, "status": {"replicas": 1}});
    assert_eq!(
        cells("", "replicationcontrollers", rc),
        json!(["rc", 1, 1, 0, "5m", "", "", "app=rc"])
            .as_array()
            .unwrap()
            .clone()
    );
}

#[test]
fn job_and_cronjob_rows() {
    let job = json!({
        "metadata": {"name": "pi", "creationTimestamp": FIVE_MIN_AGO},
        "spec": {"completions": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}}, "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
        "status": {"succeeded": 1, "startTime": FIVE_MIN_AGO, "completionTime": "2026-12-03T16:55:42Z",
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}
    });
    assert_eq!(
        strings(&cells("batch", "jobs", job)),
        [
            "pi",
            "Complete",
            "1/1",
            "42s",
            "5m",
            "pi",
            "perl",
            "batch.kubernetes.io/controller-uid=u"
        ]
    );
    let running = json!({"metadata": {"name": "w"}, "spec": {"parallelism": 3}, "status": {"startTime": "2026-12-03T16:58:00Z"}});
    assert_eq!(
        strings(&cells("batch", "jobs", running))[1..5],
        ["Running", "0/1 of 3", "2m", "<unknown>"]
    );
    let cron = json!({
        "metadata": {"name": "hello", "creationTimestamp": FIVE_MIN_AGO},
        "spec": {"schedule": "*/1 * * * *", "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
        "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2026-12-03T16:59:00Z"}
    });
    assert_eq!(
        cells("batch", "cronjobs", cron),
        json!([
            "hello",
            "*/1 * * * *",
            "<none>",
            "False",
            1,
            "60s",
            "5m",
            "c",
            "busybox",
            "<none>"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
}

#[test]
fn service_rows() {
    let svc = |spec: Value, status: Value| json!({"metadata": {"name": "web", "creationTimestamp": FIVE_MIN_AGO}, "spec": spec, "status": status});
    let node_port = svc(
        json!({"type": "NodePort", "clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"], "selector": {"app": "web"},
               "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]}),
        json!({}),
    );
    let t = built_in("", "services", node_port);
    assert_eq!(
        column_names(&t),
        [
            ("Name", 0),
            ("Type", 0),
            ("Cluster-IP", 0),
            ("External-IP", 0),
            ("Port(s)", 0),
            ("Age", 0),
            ("Selector", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    assert_eq!(
        strings(t["rows"][0]["cells"].as_array().unwrap()),
        [
            "web",
            "NodePort",
            "10.43.0.20",
            "<none>",
            "80:30080/TCP,53:30053/UDP",
            "5m",
            "app=web"
        ]
    );
    let cluster_ip = svc(
        json!({"clusterIP": "10.43.0.1", "ports": [{"port": 443}]}),
        json!({}),
    );
    assert_eq!(
        strings(&cells("", "services", cluster_ip))[1..5],
        ["ClusterIP", "10.43.0.1", "<none>", "443/TCP"]
    );
    let headless = svc(
        json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}),
        json!({}),
    );
    assert_eq!(
        strings(&cells("", "services", headless))[2..5],
        ["None", "<none>", "<none>"]
    );
    let lb = svc(
        json!({"type": "LoadBalancer", "clusterIP": "10.43.0.5", "ports": [{"port": 80, "nodePort": 31000}]}),
        json!({}),
    );
    assert_eq!(cells("", "services", lb)[3], "<pending>");
    let lb = svc(
        json!({"type": "LoadBalancer", "clusterIP": "10.43.0.5", "externalIPs": ["1.2.3.4"]}),
        json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}, {"hostname": "lb.example.com"}]}}),
    );
    assert_eq!(
        cells("", "services", lb)[3],
        "192.168.1.10,lb.example.com,1.2.3.4"
    );
    let external = svc(
        json!({"type": "ExternalName", "externalName": "db.example.com"}),
        json!({}),
    );
    assert_eq!(
        strings(&cells("", "services", external))[1..5],
        ["ExternalName", "<none>", "db.example.com", "<none>"]
    );
}

#[test]
fn node_row() {
    let n = json!({
        "metadata": {"name": "node-a", "creationTimestamp": "2026-11-20T17:00:00Z",
                     "labels": {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true", "kubernetes.io/hostname": "node-a"}},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.122.10"}, {"type": "Hostname", "address": "node-a"}],
            "nodeInfo": {"kubeletVersion": "v1.33.1+skiff1", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0-26-amd64", "containerRuntimeVersion": "skiff://0.1.0"}
        }
    });
    let t = built_in("", "nodes", n);
    assert_eq!(
        column_names(&t)
            .iter()
            .map(|(n, p)| format!("{n}:{p}"))
            .collect::<Vec<_>>(),
        [
            "Name:0",
            "Status:0",
            "Roles:0",
            "Age:0",
            "Version:0",
            "Internal-IP:1",
            "External-IP:1",
            "OS-Image:1",
            "Kernel-Version:1",
            "Container-Runtime:1"
        ]
    );
    assert_eq!(
        strings(t["rows"][0]["cells"].as_array().unwrap()),
        [
            "node-a",
            "Ready,SchedulingDisabled",
            "control-plane,master",
            "13d",
            "v1.33.1+skiff1",
            "192.168.122.10",
            "<none>",
            "Debian GNU/Linux 12 (bookworm)",
            "6.1.0-26-amd64",
            "skiff://0.1.0"
        ]
    );
    let bare = json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    assert_eq!(
        strings(&cells("", "nodes", bare)),
        [
            "n2",
            "NotReady",
            "<none>",
            "<unknown>",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>"
        ]
    );
    let fresh = json!({"metadata": {"name": "n3"}});
    assert_eq!(cells("", "nodes", fresh)[1], "Unknown");
}

#[test]
fn event_rows_both_apis() {
    let core = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web-0.17f", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled", "message": "Successfully pulled image \"busybox\"\n", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": "2026-12-03T16:50:00Z", "lastTimestamp": FIVE_MIN_AGO, "count": 2
    });
    let t = built_in("", "events", core);
    assert_eq!(
        column_names(&t)
            .iter()
            .map(|(n, p)| format!("{n}:{p}"))
            .collect::<Vec<_>>(),
        [
            "Last Seen:0",
            "Type:0",
            "Reason:0",
            "Object:0",
            "Subobject:1",
            "Source:1",
            "Message:0",
            "First Seen:1",
            "Count:1",
            "Name:1"
        ]
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "5m",
            "Normal",
            "Pulled",
            "pod/web-0",
            "spec.containers{app}",
            "kubelet, node-a",
            "Successfully pulled image \"busybox\"",
            "10m",
            2,
            "web-0.17f"
        ])
    );
    let new = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e2", "namespace": "default"},
        "eventTime": "2026-12-03T16:59:00.000000Z",
        "regarding": {"kind": "Deployment", "name": "web"},
        "reason": "ScalingReplicaSet", "note": "Scaled up replica set web-5d4 to 3", "type": "Normal",
        "reportingController": "deployment-controller", "reportingInstance": ""
    });
    assert_eq!(
        cells("events.k8s.io", "events", new),
        json!([
            "60s",
            "Normal",
            "ScalingReplicaSet",
            "deployment/web",
            "",
            "deployment-controller",
            "Scaled up replica set web-5d4 to 3",
            "60s",
            1,
            "e2"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let series = json!({
        "metadata": {"name": "e3"}, "involvedObject": {"kind": "Node"},
        "eventTime": "2026-12-03T16:00:00.000000Z", "series": {"count": 7, "lastObservedTime": "2026-12-03T16:59:50.000000Z"},
        "reportingComponent": "kubelet", "reportingInstance": "node-a"
    });
    let c = cells("", "events", series);
    assert_eq!(strings(&c)[..4], ["10s", "", "", "node"]);
    assert_eq!(c[5], "kubelet, node-a");
    assert_eq!(c[7..9], [json!("60m"), json!(7)]);
}

#[test]
fn config_and_cluster_rows() {
    let age = json!(FIVE_MIN_AGO);
    let cm = json!({"metadata": {"name": "cfg", "creationTimestamp": age}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        cells("", "configmaps", cm),
        json!(["cfg", 3, "5m"]).as_array().unwrap().clone()
    );
    let secret = json!({"metadata": {"name": "tls", "creationTimestamp": age}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        cells("", "secrets", secret),
        json!(["tls", "kubernetes.io/tls", 2, "5m"])
            .as_array()
            .unwrap()
            .clone()
    );
    let ns = json!({"metadata": {"name": "default", "creationTimestamp": age}, "status": {"phase": "Active"}});
    assert_eq!(
        strings(&cells("", "namespaces", ns)),
        ["default", "Active", "5m"]
    );
    let sa = json!({"metadata": {"name": "default", "creationTimestamp": age}});
    assert_eq!(
        cells("", "serviceaccounts", sa),
        json!(["default", 0, "5m"]).as_array().unwrap().clone()
    );
    let ep = json!({"metadata": {"name": "web", "creationTimestamp": age}, "subsets": [
        {"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}], "ports": [{"port": 8080}, {"port": 9090}]}]});
    assert_eq!(
        strings(&cells("", "endpoints", ep)),
        [
            "web",
            "10.42.0.5:8080,10.42.0.6:8080,10.42.0.5:9090 + 1 more...",
            "5m"
        ]
    );
    let none = json!({"metadata": {"name": "empty"}});
    assert_eq!(cells("", "endpoints", none)[1], "<none>");
    let slice = json!({"metadata": {"name": "web-abc", "creationTimestamp": age}, "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}], "endpoints": [{"addresses": ["10.42.0.5"]}, {"addresses": ["10.42.0.6"]}]});
    assert_eq!(
        strings(&cells("discovery.k8s.io", "endpointslices", slice)),
        ["web-abc", "IPv4", "8080", "10.42.0.5,10.42.0.6", "5m"]
    );
    let empty_slice = json!({"metadata": {"name": "s"}, "addressType": "IPv4"});
    assert_eq!(
        strings(&cells("discovery.k8s.io", "endpointslices", empty_slice))[2..4],
        ["<unset>", "<unset>"]
    );
    let lease = json!({"metadata": {"name": "node-a", "creationTimestamp": age}, "spec": {"holderIdentity": "node-a"}});
    assert_eq!(
        strings(&cells("coordination.k8s.io", "leases", lease)),
        ["node-a", "node-a", "5m"]
    );
    let rq = json!({"metadata": {"name": "q", "creationTimestamp": age}, "status": {
        "hard": {"pods": "10", "limits.cpu": "2", "requests.memory": "1Gi"}, "used": {"pods": "3", "limits.cpu": "500m"}}});
    assert_eq!(
        strings(&cells("", "resourcequotas", rq)),
        [
            "q",
            "pods: 3/10, requests.memory: 0/1Gi",
            "limits.cpu: 500m/2",
            "5m"
        ]
    );
}

#[test]
fn storage_rows() {
    let age = json!(FIVE_MIN_AGO);
    let sc = json!({"metadata": {"name": "local-path", "creationTimestamp": age,
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
    assert_eq!(
        cells("storage.k8s.io", "storageclasses", sc),
        json!([
            "local-path (default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            false,
            "5m"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let pvc = json!({"metadata": {"name": "data", "creationTimestamp": age},
        "spec": {"volumeName": "pv-1", "storageClassName": "local-path", "volumeMode": "Filesystem"},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
    assert_eq!(
        strings(&cells("", "persistentvolumeclaims", pvc)),
        [
            "data",
            "Bound",
            "pv-1",
            "1Gi",
            "RWO",
            "local-path",
            "<unset>",
            "5m",
            "Filesystem"
        ]
    );
    let pending = json!({"metadata": {"name": "p"}, "spec": {"storageClassName": "x"}, "status": {"phase": "Pending"}});
    assert_eq!(
        strings(&cells("", "persistentvolumeclaims", pending))[1..5],
        ["Pending", "", "", ""]
    );
    let pv = json!({"metadata": {"name": "pv-1", "creationTimestamp": age},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
                 "claimRef": {"namespace": "default", "name": "data"}, "storageClassName": "local-path"},
        "status": {"phase": "Bound"}});
    assert_eq!(
        strings(&cells("", "persistentvolumes", pv)),
        [
            "pv-1",
            "1Gi",
            "RWO,RWX",
            "Retain",
            "Bound",
            "default/data",
            "local-path",
            "<unset>",
            "",
            "5m",
            "<unset>"
        ]
    );
}

#[test]
fn networking_policy_and_rbac_rows() {
    let age = json!(FIVE_MIN_AGO);
    let ing = json!({"metadata": {"name": "web", "creationTimestamp": age},
        "spec": {"ingressClassName": "traefik", "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}], "tls": [{"hosts": ["a.example.com"]}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}}});
    assert_eq!(
        strings(&cells("networking.k8s.io", "ingresses", ing)),
        [
            "web",
            "traefik",
            "a.example.com,b.example.com",
            "192.168.1.10",
            "80, 443",
            "5m"
        ]
    );
    let catch_all = json!({"metadata": {"name": "all"}, "spec": {"rules": [{}]}});
    assert_eq!(
        strings(&cells("networking.k8s.io", "ingresses", catch_all))[1..5],
        ["<none>", "*", "", "80"]
    );
    let class = json!({"metadata": {"name": "traefik", "creationTimestamp": age}, "spec": {"controller": "traefik.io/ingress-controller",
        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}});
    assert_eq!(
        strings(&cells("networking.k8s.io", "ingressclasses", class))[1..3],
        [
            "traefik.io/ingress-controller",
            "IngressParameters.k8s.example.com/p"
        ]
    );
    let np = json!({"metadata": {"name": "deny", "creationTimestamp": age}, "spec": {"podSelector": {}}});
    assert_eq!(
        strings(&cells("networking.k8s.io", "networkpolicies", np)),
        ["deny", "<none>", "5m"]
    );
    let pdb = json!({"metadata": {"name": "web", "creationTimestamp": age}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        cells("policy", "poddisruptionbudgets", pdb),
        json!(["web", "50%", "N/A", 1, "5m"])
            .as_array()
            .unwrap()
            .clone()
    );
    let rc =
        json!({"metadata": {"name": "wasmtime", "creationTimestamp": age}, "handler": "wasmtime"});
    assert_eq!(
        strings(&cells("node.k8s.io", "runtimeclasses", rc)),
        ["wasmtime", "wasmtime", "5m"]
    );
    let pc = json!({"metadata": {"name": "system-node-critical", "creationTimestamp": age}, "value": 2000001000, "preemptionPolicy": "PreemptLowerPriority"});
    assert_eq!(
        cells("scheduling.k8s.io", "priorityclasses", pc),
        json!([
            "system-node-critical",
            2000001000,
            false,
            "5m",
            "PreemptLowerPriority"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
    let rb = json!({"metadata": {"name": "admins", "creationTimestamp": age}, "roleRef": {"kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "ops"}, {"kind": "ServiceAccount", "namespace": "ci", "name": "bot"}, {"kind": "User", "name": "bob"}]});
    assert_eq!(
        strings(&cells(
            "rbac.authorization.k8s.io",
            "rolebindings",
            rb.clone()
        )),
        [
            "admins",
            "ClusterRole/admin",
            "5m",
            "alice, bob",
            "ops",
            "ci/bot"
        ]
    );
    let t = built_in("rbac.authorization.k8s.io", "clusterrolebindings", rb);
    assert_eq!(
        t["columnDefinitions"][3]["description"],
        "Users in the clusterRoleBinding"
    );
}

#[test]
fn kinds_without_a_printer_use_the_default_table() {
    for (group, resource) in [
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("", "limitranges"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    ] {
        let t = built_in(
            group,
            resource,
            json!({"metadata": {"name": "x", "creationTimestamp": "2026-12-03T18:00:00+01:00"}}),
        );
        assert_eq!(
            column_names(&t),
            [("Name".to_string(), 0), ("Created At".to_string(), 0)]
        );
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        assert_eq!(t["rows"][0]["cells"], json!(["x", "2026-12-03T17:00:00Z"]));
    }
}

fn widget(replicas: Value, ready: &str) -> Value {
    json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "default", "creationTimestamp": FIVE_MIN_AGO},
        "spec": {"replicas": replicas, "enabled": true, "tags": ["a", "b"]},
        "status": {"conditions": [{"type": "Synced", "status": "True"}, {"type": "Ready", "status": ready}]}
    })
}

#[test]
fn custom_resource_printer_columns() {
    let crd = json!({"spec": {"versions": [{"name": "v1", "additionalPrinterColumns": [
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "description": "Ready condition"},
        {"name": "Enabled", "type": "boolean", "jsonPath": ".spec.enabled", "priority": 1},
        {"name": "Tags", "type": "string", "jsonPath": ".spec.tags", "priority": 1},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]}]}});
    let columns = PrinterColumn::for_crd(&crd, "v1");
    assert_eq!(columns.len(), 6);
    let options = TableOptions {
        printer_columns: Some(columns),
        ..TableOptions::default()
    };
    let t = table(
        "example.com",
        "widgets",
        &[widget(json!(3), "True"), widget(json!(1.0), "False")],
        now(),
        &options,
    );
    assert_eq!(
        column_names(&t)
            .iter()
            .map(|(n, p)| format!("{n}:{p}"))
            .collect::<Vec<_>>(),
        [
            "Name:0",
            "Replicas:0",
            "Ready:0",
            "Enabled:1",
            "Tags:1",
            "Missing:1",
            "Age:0"
        ]
    );
    assert_eq!(
        t["columnDefinitions"][1]["description"],
        "Custom resource definition column (in JSONPath format): .spec.replicas"
    );
    assert_eq!(t["columnDefinitions"][2]["description"], "Ready condition");
    assert_eq!(
        t["rows"][0]["cells"],
        json!(["w1", 3, "True", true, "[\"a\",\"b\"]", null, "5m"])
    );
    assert_eq!(
        t["rows"][1]["cells"],
        json!(["w1", 1, "False", true, "[\"a\",\"b\"]", null, "5m"])
    );
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[test]
fn custom_resource_without_columns_gets_age() {
    let options = TableOptions {
        printer_columns: Some(Vec::new()),
        ..TableOptions::default()
    };
    let t = table(
        "example.com",
        "widgets",
        &[widget(json!(1), "True")],
        now(),
        &options,
    );
    assert_eq!(
        column_names(&t),
        [("Name".to_string(), 0), ("Age".to_string(), 0)]
    );
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
    assert_eq!(t["rows"][0]["cells"], json!(["w1", "5m"]));
    let bad_date = PrinterColumn {
        name: "When".into(),
        kind: "date".into(),
        json_path: ".spec.enabled".into(),
        ..Default::default()
    };
    let stamp = PrinterColumn {
        name: "Stamp".into(),
        kind: "date".into(),
        json_path: ".metadata.name".into(),
        ..Default::default()
    };
    let options = TableOptions {
        printer_columns: Some(vec![bad_date, stamp]),
        ..TableOptions::default()
    };
    let t = table(
        "example.com",
        "widgets",
        &[widget(json!(1), "True")],
        now(),
        &options,
    );
    assert_eq!(t["rows"][0]["cells"], json!(["w1", null, "<invalid>"]));
}

#[test]
fn include_object_and_headers() {
    assert_eq!(IncludeObject::parse(None), Ok(IncludeObject::Metadata));
    assert_eq!(
        IncludeObject::parse(Some("Object")),
        Ok(IncludeObject::Object)
    );
    assert_eq!(IncludeObject::parse(Some("None")), Ok(IncludeObject::None));
    assert_eq!(
        IncludeObject::parse(Some("All")),
        Err("unrecognized includeObject value: \"All\"".to_string())
    );

    let p = pod(json!({"phase": "Pending"}));
    let meta = built_in("", "pods", p.clone());
    assert_eq!(
        meta["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": p["metadata"]})
    );
    assert_eq!(meta["metadata"], json!({}));
    let whole = table(
        "",
        "pods",
        std::slice::from_ref(&p),
        now(),
        &TableOptions {
            include_object: IncludeObject::Object,
            ..Default::default()
        },
    );
    assert_eq!(whole["rows"][0]["object"], p);
    let watch_event = table(
        "",
        "pods",
        &[p],
        now(),
        &TableOptions {
            include_object: IncludeObject::None,
            no_headers: true,
            ..Default::default()
        },
    );
    assert_eq!(watch_event["columnDefinitions"], Value::Null);
    assert_eq!(watch_event["rows"][0]["object"], Value::Null);
    assert_eq!(watch_event["rows"][0]["cells"].as_array().unwrap().len(), 9);

    let empty = table("", "pods", &[], now(), &TableOptions::default());
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(empty["columnDefinitions"].as_array().unwrap().len(), 9);
}

#[test]
fn every_printer_fills_every_column() {
    let kinds = [
        ("", "pods"),
        ("", "podtemplates"),
        ("", "replicationcontrollers"),
        ("", "services"),
        ("", "endpoints"),
        ("", "nodes"),
        ("", "events"),
        ("events.k8s.io", "events"),
        ("", "namespaces"),
        ("", "secrets"),
        ("", "serviceaccounts"),
        ("", "persistentvolumes"),
        ("", "persistentvolumeclaims"),
        ("", "componentstatuses"),
        ("", "configmaps"),
        ("", "resourcequotas"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("apps", "controllerrevisions"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "ingressclasses"),
        ("networking.k8s.io", "networkpolicies"),
        ("discovery.k8s.io", "endpointslices"),
        ("coordination.k8s.io", "leases"),
        ("storage.k8s.io", "storageclasses"),
        ("storage.k8s.io", "csinodes"),
        ("storage.k8s.io", "csidrivers"),
        ("storage.k8s.io", "volumeattachments"),
        ("storage.k8s.io", "csistoragecapacities"),
        ("policy", "poddisruptionbudgets"),
        ("node.k8s.io", "runtimeclasses"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("scheduling.k8s.io", "priorityclasses"),
        ("certificates.k8s.io", "certificatesigningrequests"),
    ];
    for (group, resource) in kinds {
        let t = built_in(group, resource, json!({"metadata": {"name": "x"}}));
        let columns = t["columnDefinitions"].as_array().unwrap().len();
        let cells = t["rows"][0]["cells"].as_array().unwrap().len();
        assert_eq!(columns, cells, "{group}/{resource}");
        assert!(columns > 2, "{group}/{resource} has its own printer");
    }
}

#[test]
fn misc_rows() {
    let age = json!(FIVE_MIN_AGO);
    let rev = json!({"metadata": {"name": "web-7c5", "creationTimestamp": age,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]}, "revision": 2});
    assert_eq!(
        cells("apps", "controllerrevisions", rev),
        json!(["web-7c5", "statefulset.apps/web", 2, "5m"])
            .as_array()
            .unwrap()
            .clone()
    );
    let csr = json!({"metadata": {"name": "csr-1", "creationTimestamp": age},
        "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "system:admin", "expirationSeconds": 86400},
        "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}});
    assert_eq!(
        strings(&cells(
            "certificates.k8s.io",
            "certificatesigningrequests",
            csr
        )),
        [
            "csr-1",
            "5m",
            "kubernetes.io/kube-apiserver-client",
            "system:admin",
            "24h",
            "Approved,Issued"
        ]
    );
    let tpl = json!({"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}});
    assert_eq!(
        strings(&cells("", "podtemplates", tpl)),
        ["t", "c", "i", "a=b"]
    );
    let driver = json!({"metadata": {"name": "d", "creationTimestamp": age}, "spec": {"volumeLifecycleModes": ["Persistent"]}});
    assert_eq!(
        cells("storage.k8s.io", "csidrivers", driver),
        json!([
            "d",
            true,
            false,
            false,
            "<unset>",
            false,
            "Persistent",
            "5m"
        ])
        .as_array()
        .unwrap()
        .clone()
    );
}
