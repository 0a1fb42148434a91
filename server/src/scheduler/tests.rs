use serde_json::{Value, json};

use super::*;

fn node(name: &str, cpu: &str, memory: &str, pods: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "10Gi"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

fn pod(name: &str, cpu: &str, memory: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"containers": [{
            "name": "c",
            "image": "busybox",
            "resources": {"requests": {"cpu": cpu, "memory": memory}},
        }]},
        "status": {"phase": "Pending"},
    })
}

fn bound(mut pod: Value, node: &str) -> Value {
    pod["spec"]["nodeName"] = json!(node);
    pod["status"]["phase"] = json!("Running");
    pod
}

fn placed(pod: &Value, nodes: &[Value], bound: &[Value]) -> String {
    match schedule(pod, nodes, bound) {
        Ok(p) => p.node,
        Err(e) => panic!("unschedulable: {}", e.message),
    }
}

fn message(pod: &Value, nodes: &[Value], bound: &[Value]) -> String {
    match schedule(pod, nodes, bound) {
        Ok(p) => panic!("placed on {}", p.node),
        Err(e) => e.message,
    }
}

#[test]
fn fits_on_the_only_ready_node() {
    let nodes = [node("n1", "2", "4Gi", "110")];
    assert_eq!(placed(&pod("p", "500m", "128Mi"), &nodes, &[]), "n1");
}

#[test]
fn insufficient_cpu_has_kube_schedulers_message() {
    let nodes = [node("n1", "2", "4Gi", "110")];
    let others = [bound(pod("big", "1500m", "1Gi"), "n1")];
    let err = schedule(&pod("p", "600m", "128Mi"), &nodes, &others).unwrap_err();
    assert_eq!(
        err.message,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
         1 No preemption victims found for incoming pod."
    );
    assert_eq!(
        err.reasons,
        BTreeMap::from([("Insufficient cpu".to_string(), 1)])
    );
    // Terminated pods no longer hold their requests.
    let mut done = others[0].clone();
    done["status"]["phase"] = json!("Succeeded");
    assert_eq!(placed(&pod("p", "600m", "128Mi"), &nodes, &[done]), "n1");
}

#[test]
fn reasons_sort_as_strings_and_preemption_splits_resolvable() {
    let mut nodes: Vec<Value> = (0..10)
        .map(|i| node(&format!("small-{i}"), "100m", "4Gi", "110"))
        .collect();
    let mut tainted = node("tainted", "8", "8Gi", "110");
    tainted["spec"]["taints"] =
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
    nodes.push(tainted.clone());
    nodes.push(tainted);
    let mut cordoned = node("cordoned", "8", "8Gi", "110");
    cordoned["spec"]["unschedulable"] = json!(true);
    nodes.push(cordoned);
    assert_eq!(
        message(&pod("p", "1", "1Gi"), &nodes, &[]),
        "0/13 nodes are available: 1 node(s) were unschedulable, 10 Insufficient cpu, \
         2 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/13 nodes are available: \
         10 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling."
    );
    let mut never = pod("p", "1", "1Gi");
    never["spec"]["preemptionPolicy"] = json!("Never");
    assert!(
        message(&never, &nodes, &[])
            .ends_with("{dedicated: gpu}. preemption: not eligible due to preemptionPolicy=Never.")
    );
}

#[test]
fn insufficient_memory_and_cpu_both_counted() {
    let nodes = [node("n1", "1", "1Gi", "110"), node("n2", "1", "8Gi", "110")];
    let err = schedule(&pod("p", "2", "2Gi"), &nodes, &[]).unwrap_err();
    assert!(err.message.starts_with(
        "0/2 nodes are available: 1 Insufficient memory, 2 Insufficient cpu. preemption: 0/2"
    ));
}

#[test]
fn no_nodes() {
    let err = schedule(&pod("p", "1", "1Gi"), &[], &[]).unwrap_err();
    assert_eq!(err.message, "no nodes available to schedule pods");
}

#[test]
fn not_ready_node_is_tainted() {
    let mut n = node("n1", "2", "4Gi", "110");
    n["status"]["conditions"][0]["status"] = json!("False");
    let mut unknown = node("n2", "2", "4Gi", "110");
    unknown["status"]["conditions"] = json!([{"type": "Ready", "status": "Unknown"}]);
    let nodes = [n, unknown];
    assert_eq!(
        message(&pod("p", "1", "1Gi"), &nodes, &[]),
        "0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
         1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. preemption: 0/2 nodes \
         are available: 2 Preemption is not helpful for scheduling."
    );
}

#[test]
fn taints_and_tolerations() {
    let mut gpu = node("gpu", "8", "8Gi", "110");
    gpu["spec"]["taints"] = json!([
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": "maintenance", "effect": "NoExecute"},
    ]);
    let nodes = [gpu];
    let mut p = pod("p", "1", "1Gi");
    assert_eq!(
        schedule(&p, &nodes, &[]).unwrap_err().reasons,
        BTreeMap::from([(
            "node(s) had untolerated taint {dedicated: gpu}".to_string(),
            1
        )])
    );
    p["spec"]["tolerations"] =
        json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]);
    assert!(message(&p, &nodes, &[]).contains("{maintenance: }"));
    // Wrong value does not tolerate; Exists ignores the value.
    p["spec"]["tolerations"] = json!([
        {"key": "dedicated", "value": "cpu"},
        {"key": "maintenance", "operator": "Exists"},
    ]);
    assert!(message(&p, &nodes, &[]).contains("{dedicated: gpu}"));
    p["spec"]["tolerations"][0] =
        json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"});
    assert_eq!(placed(&p, &nodes, &[]), "gpu");
    // An empty key with Exists tolerates everything.
    p["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
    assert_eq!(placed(&p, &nodes, &[]), "gpu");
}

#[test]
fn prefer_no_schedule_taint_steers_scoring() {
    let mut a = node("a", "4", "8Gi", "110");
    a["spec"]["taints"] = json!([{"key": "spot", "value": "true", "effect": "PreferNoSchedule"}]);
    let nodes = [a, node("b", "4", "8Gi", "110")];
    let mut p = pod("p", "100m", "64Mi");
    assert_eq!(placed(&p, &nodes, &[]), "b");
    p["spec"]["tolerations"] =
        json!([{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}]);
    // Tolerated: a tie, broken by name.
    assert_eq!(placed(&p, &nodes, &[]), "a");
}

#[test]
fn node_selector_and_affinity() {
    let mut ssd = node("ssd", "4", "8Gi", "110");
    ssd["metadata"]["labels"] = json!({"disk": "ssd", "gen": "5", "kubernetes.io/hostname": "ssd"});
    let mut hdd = node("hdd", "4", "8Gi", "110");
    hdd["metadata"]["labels"] = json!({"disk": "hdd", "gen": "3", "kubernetes.io/hostname": "hdd"});
    let nodes = [hdd, ssd];
    let mut p = pod("p", "100m", "64Mi");
    p["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    assert_eq!(placed(&p, &nodes, &[]), "ssd");
    p["spec"]["nodeSelector"] = json!({"disk": "nvme"});
    assert_eq!(
        message(&p, &nodes, &[]),
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: \
         0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );

    let required = |expressions: Value| {
        let mut p = pod("p", "100m", "64Mi");
        p["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": expressions}],
        }}});
        p
    };
    let cases = [
        (
            json!([{"key": "disk", "operator": "In", "values": ["ssd", "nvme"]}]),
            Some("ssd"),
        ),
        (
            json!([{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]),
            Some("hdd"),
        ),
        (
            json!([{"key": "gen", "operator": "Gt", "values": ["4"]}]),
            Some("ssd"),
        ),
        (
            json!([{"key": "gen", "operator": "Lt", "values": ["4"]}]),
            Some("hdd"),
        ),
        (
            json!([{"key": "gen", "operator": "Gt", "values": ["x"]}]),
            None,
        ),
        (json!([{"key": "gpu", "operator": "Exists"}]), None),
        (
            json!([{"key": "gpu", "operator": "DoesNotExist"}, {"key": "disk", "operator": "In", "values": ["hdd"]}]),
            Some("hdd"),
        ),
    ];
    for (expressions, want) in cases {
        let p = required(expressions.clone());
        match (schedule(&p, &nodes, &[]), want) {
            (Ok(got), Some(want)) => assert_eq!(got.node, want, "{expressions}"),
            (Err(_), None) => {}
            (got, want) => panic!("{expressions}: got {got:?}, want {want:?}"),
        }
    }

    // Terms are ORed; matchFields selects by name.
    let mut p = pod("p", "100m", "64Mi");
    p["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["hdd"]}]},
        ],
    }}});
    assert_eq!(placed(&p, &nodes, &[]), "hdd");

    // Preferred terms steer among feasible nodes.
    let mut p = pod("p", "100m", "64Mi");
    p["spec"]["affinity"] = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}},
        {"weight": 80, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
    ]}});
    assert_eq!(placed(&p, &nodes, &[]), "ssd");
}

#[test]
fn host_port_conflict() {
    let with_port = |name: &str, port: i64, ip: Option<&str>, protocol: Option<&str>| {
        let mut p = pod(name, "100m", "64Mi");
        let mut spec = json!({"containerPort": 80, "hostPort": port});
        if let Some(ip) = ip {
            spec["hostIP"] = json!(ip);
        }
        if let Some(protocol) = protocol {
            spec["protocol"] = json!(protocol);
        }
        p["spec"]["containers"][0]["ports"] = json!([spec]);
        p
    };
    let nodes = [node("n1", "4", "8Gi", "110")];
    let others = [bound(with_port("web", 8080, None, None), "n1")];
    assert_eq!(
        message(
            &with_port("p", 8080, Some("10.0.0.1"), None),
            &nodes,
            &others
        ),
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. \
         preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
    assert_eq!(
        placed(&with_port("p", 8081, None, None), &nodes, &others),
        "n1"
    );
    assert_eq!(
        placed(&with_port("p", 8080, None, Some("UDP")), &nodes, &others),
        "n1"
    );
    let specific = [bound(with_port("web", 8080, Some("10.0.0.1"), None), "n1")];
    assert_eq!(
        placed(
            &with_port("p", 8080, Some("10.0.0.2"), None),
            &nodes,
            &specific
        ),
        "n1"
    );
    assert!(schedule(&with_port("p", 8080, None, None), &nodes, &specific).is_err());
}

#[test]
fn spreads_replicas_of_one_replicaset() {
    let replica = |name: &str| {
        let mut p = pod(name, "0", "0");
        p["spec"]["containers"][0]["resources"] = json!({});
        p["metadata"]["labels"] = json!({"app": "web"});
        p["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs-uid", "controller": true,
        }]);
        p
    };
    let nodes = [node("a", "4", "8Gi", "110"), node("b", "4", "8Gi", "110")];
    // An unrelated pod makes b the busier node, so only spreading favours it.
    let mut bound_pods = vec![bound(pod("other", "200m", "256Mi"), "b")];
    let first = placed(&replica("web-1-x"), &nodes, &bound_pods);
    assert_eq!(first, "a");
    bound_pods.push(bound(replica("web-1-x"), &first));
    assert_eq!(placed(&replica("web-1-y"), &nodes, &bound_pods), "b");
}

#[test]
fn least_allocated_prefers_the_emptier_node() {
    let nodes = [node("a", "4", "8Gi", "110"), node("b", "4", "8Gi", "110")];
    let busy = [bound(pod("busy", "2", "4Gi"), "a")];
    assert_eq!(placed(&pod("p", "100m", "64Mi"), &nodes, &busy), "b");
}

#[test]
fn unschedulable_node() {
    let mut n = node("n1", "4", "8Gi", "110");
    n["spec"]["unschedulable"] = json!(true);
    let nodes = [n];
    let mut p = pod("p", "100m", "64Mi");
    assert_eq!(
        message(&p, &nodes, &[]),
        "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are \
         available: 1 Preemption is not helpful for scheduling."
    );
    p["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]);
    assert_eq!(placed(&p, &nodes, &[]), "n1");
}

#[test]
fn pods_count_limit() {
    let nodes = [node("n1", "4", "8Gi", "2")];
    let mut others = vec![bound(pod("a", "0", "0"), "n1")];
    assert_eq!(placed(&pod("p", "100m", "64Mi"), &nodes, &others), "n1");
    others.push(bound(pod("b", "0", "0"), "n1"));
    assert_eq!(
        message(&pod("p", "100m", "64Mi"), &nodes, &others),
        "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 No \
         preemption victims found for incoming pod."
    );
}

#[test]
fn node_name_preset() {
    let nodes = [node("a", "4", "8Gi", "110"), node("b", "4", "8Gi", "110")];
    let mut p = pod("p", "100m", "64Mi");
    p["spec"]["nodeName"] = json!("b");
    assert_eq!(placed(&p, &nodes, &[]), "b");
    p["spec"]["nodeName"] = json!("c");
    assert!(
        message(&p, &nodes, &[]).starts_with(
            "0/2 nodes are available: 2 node(s) didn't match the requested node name."
        )
    );
}

#[test]
fn ephemeral_storage_and_init_containers() {
    let nodes = [node("n1", "4", "8Gi", "110")];
    let mut p = pod("p", "100m", "64Mi");
    p["spec"]["containers"][0]["resources"]["requests"]["ephemeral-storage"] = json!("11Gi");
    assert!(message(&p, &nodes, &[]).contains("1 Insufficient ephemeral-storage."));
    let mut p = pod("p", "100m", "64Mi");
    p["spec"]["initContainers"] =
        json!([{"name": "init", "resources": {"requests": {"cpu": "5"}}}]);
    assert!(message(&p, &nodes, &[]).contains("1 Insufficient cpu."));
}
