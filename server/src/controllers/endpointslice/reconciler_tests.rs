use super::*;
use serde_json::json;

fn service() -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"app": "web"}},
        "spec": {
            "selector": {"app": "web"}, "clusterIP": "10.43.0.9", "ipFamilies": ["IPv4"],
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }))
    .unwrap()
}

fn pod(name: &str, ip: &str, ready: bool) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c"}]},
            "status": {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            },
        }))
        .unwrap(),
    )
}

fn pods(n: usize) -> Vec<Arc<Pod>> {
    (0..n)
        .map(|i| {
            pod(
                &format!("p{i:03}"),
                &format!("10.42.{}.{}", i / 200, i % 200 + 1),
                true,
            )
        })
        .collect()
}

fn nodes(name: &str) -> Option<Arc<Node>> {
    match name {
        "node-a" => Some(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "zone-1"}},
            }))
            .unwrap(),
        )),
        _ => None,
    }
}

/// Stores the plan's creates as the apiserver would (a name, a resourceVersion).
fn stored(plan: &Plan) -> Vec<Arc<EndpointSlice>> {
    let mut all = Vec::new();
    for (i, slice) in plan.create.iter().enumerate() {
        let mut slice = slice.clone();
        slice.metadata.name = Some(format!("web-{i}"));
        slice.metadata.resource_version = Some("1".into());
        all.push(Arc::new(slice));
    }
    all.extend(plan.update.iter().cloned().map(Arc::new));
    all
}

fn addresses(slice: &EndpointSlice) -> Vec<&str> {
    slice
        .endpoints
        .iter()
        .map(|e| e.addresses[0].as_str())
        .collect()
}

#[test]
fn a_new_service_gets_one_slice_with_its_endpoints() {
    let svc = service();
    let plan = plan(&svc, &pods(3), &nodes, &[], MAX_ENDPOINTS_PER_SLICE);
    assert!(plan.update.is_empty() && plan.delete.is_empty() && plan.skipped.is_empty());
    assert_eq!(plan.create.len(), 1);
    let slice = &plan.create[0];
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.as_ref().unwrap();
    assert_eq!(
        labels.get(SERVICE_NAME_LABEL).map(String::as_str),
        Some("web")
    );
    assert_eq!(
        labels.get(MANAGED_BY_LABEL).map(String::as_str),
        Some(CONTROLLER_NAME)
    );
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    assert!(!labels.contains_key(HEADLESS_LABEL));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Service", "svc-uid", Some(true))
    );
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("http"), Some(8080), Some("TCP"))
    );
    assert_eq!(slice.endpoints.len(), 3);
    let endpoint = &slice.endpoints[0];
    assert_eq!(endpoint.node_name.as_deref(), Some("node-a"));
    assert_eq!(endpoint.zone.as_deref(), Some("zone-1"));
    let conditions = endpoint.conditions.as_ref().unwrap();
    assert_eq!(
        (conditions.ready, conditions.serving, conditions.terminating),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(
        endpoint.target_ref.as_ref().unwrap().name.as_deref(),
        Some("p000")
    );
}

#[test]
fn slices_hold_at_most_max_endpoints() {
    let plan = plan(&service(), &pods(250), &nodes, &[], MAX_ENDPOINTS_PER_SLICE);
    let mut sizes: Vec<usize> = plan.create.iter().map(|s| s.endpoints.len()).collect();
    sizes.sort();
    assert_eq!(sizes, vec![50, 100, 100]);
}

#[test]
fn changes_update_the_existing_slice_in_place() {
    let svc = service();
    let first = plan(
        &svc,
        &[pod("a", "10.42.0.1", true), pod("b", "10.42.0.2", true)],
        &nodes,
        &[],
        100,
    );
    let existing = stored(&first);
    let now = [
        pod("a", "10.42.0.1", true),
        pod("b", "10.42.0.2", false),
        pod("c", "10.42.0.3", true),
    ];
    let second = plan(&svc, &now, &nodes, &existing, 100);
    assert!(second.create.is_empty() && second.delete.is_empty());
    assert_eq!(second.update.len(), 1);
    let slice = &second.update[0];
    assert_eq!(slice.metadata.name.as_deref(), Some("web-0"));
    assert_eq!(slice.metadata.resource_version.as_deref(), Some("1"));
    assert_eq!(
        addresses(slice),
        vec!["10.42.0.1", "10.42.0.2", "10.42.0.3"]
    );
    let b = slice.endpoints[1].conditions.as_ref().unwrap();
    assert_eq!((b.ready, b.serving), (Some(false), Some(false)));
    // Nothing changed: nothing to write.
    let third = plan(&svc, &now, &nodes, &stored(&second), 100);
    assert!(third.create.is_empty() && third.update.is_empty() && third.delete.is_empty());
}

#[test]
fn a_service_without_endpoints_keeps_one_placeholder() {
    let svc = service();
    let empty = plan(&svc, &[], &nodes, &[], 100);
    assert_eq!(empty.create.len(), 1);
    assert!(empty.create[0].endpoints.is_empty());
    assert_eq!(empty.create[0].ports, Some(Vec::new()));
    let again = plan(&svc, &[], &nodes, &stored(&empty), 100);
    assert!(again.create.is_empty() && again.update.is_empty() && again.delete.is_empty());
    // Pods arrive: the placeholder becomes their slice.
    let filled = plan(&svc, &pods(2), &nodes, &stored(&empty), 100);
    assert!(filled.create.is_empty() && filled.delete.is_empty());
    assert_eq!(filled.update.len(), 1);
    assert_eq!(filled.update[0].metadata.name.as_deref(), Some("web-0"));
    assert_eq!(filled.update[0].endpoints.len(), 2);
    // And back to empty: the slice is reused as the placeholder again.
    let emptied = plan(&svc, &[], &nodes, &stored(&filled), 100);
    assert!(emptied.create.is_empty() && emptied.delete.is_empty());
    assert_eq!(emptied.update[0].metadata.name.as_deref(), Some("web-0"));
    assert!(emptied.update[0].endpoints.is_empty());
}

#[test]
fn pods_on_unknown_nodes_are_skipped_and_reported() {
    let mut lost = (*pod("lost", "10.42.0.9", true)).clone();
    lost.spec.as_mut().unwrap().node_name = Some("node-gone".into());
    let plan = plan(
        &service(),
        &[pod("a", "10.42.0.1", true), Arc::new(lost)],
        &nodes,
        &[],
        100,
    );
    assert_eq!(plan.create[0].endpoints.len(), 1);
    assert_eq!(
        plan.skipped,
        vec!["skipping Pod lost for Service default/web: Node node-gone Not Found".to_owned()]
    );
}

#[test]
fn terminating_pods_are_listed_as_terminating_and_not_ready() {
    let mut dying = (*pod("a", "10.42.0.1", true)).clone();
    dying.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    let plan = plan(&service(), &[Arc::new(dying)], &nodes, &[], 100);
    let c = plan.create[0].endpoints[0].conditions.clone().unwrap();
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(false), Some(true), Some(true))
    );
}

#[test]
fn a_port_change_moves_endpoints_into_a_reused_slice() {
    let svc = service();
    let first = plan(&svc, &pods(2), &nodes, &[], 100);
    let mut changed = svc.clone();
    changed.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].target_port =
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9090));
    let second = plan(&changed, &pods(2), &nodes, &stored(&first), 100);
    assert!(second.create.is_empty() && second.delete.is_empty());
    assert_eq!(second.update[0].metadata.name.as_deref(), Some("web-0"));
    assert_eq!(second.update[0].ports.as_ref().unwrap()[0].port, Some(9090));
    assert_eq!(second.update[0].endpoints.len(), 2);
}

#[test]
fn new_endpoints_fill_an_unchanged_slice_they_fit() {
    let svc = service();
    let first = plan(&svc, &pods(150), &nodes, &[], 100);
    let existing = stored(&first);
    let more = pods(151);
    let second = plan(&svc, &more, &nodes, &existing, 100);
    assert!(second.create.is_empty() && second.delete.is_empty());
    assert_eq!(second.update.len(), 1);
    assert_eq!(second.update[0].endpoints.len(), 51);
}

#[test]
fn slices_of_another_service_with_the_same_name_are_deleted() {
    let svc = service();
    let first = plan(&svc, &pods(1), &nodes, &[], 100);
    let mut foreign = (*stored(&first)[0]).clone();
    foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "old-uid".into();
    let second = plan(&svc, &pods(1), &nodes, &[Arc::new(foreign)], 100);
    assert_eq!(second.delete.len(), 1);
    assert_eq!(second.create.len(), 1);
}

#[test]
fn headless_services_are_labelled() {
    let mut svc = service();
    svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    let plan = plan(&svc, &pods(1), &nodes, &[], 100);
    let labels = plan.create[0].metadata.labels.as_ref().unwrap();
    assert_eq!(labels.get(HEADLESS_LABEL).map(String::as_str), Some(""));
}

#[test]
fn service_label_changes_update_the_slice() {
    let svc = service();
    let first = plan(&svc, &pods(1), &nodes, &[], 100);
    let mut relabelled = svc.clone();
    relabelled.metadata.labels = Some([("app".to_owned(), "web2".to_owned())].into());
    let second = plan(&relabelled, &pods(1), &nodes, &stored(&first), 100);
    assert_eq!(second.update.len(), 1);
    let labels = second.update[0].metadata.labels.as_ref().unwrap();
    assert_eq!(labels.get("app").map(String::as_str), Some("web2"));
}
