use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::discovery::ApiResource;

use super::*;

fn config_maps() -> Arc<Resource> {
    Arc::new(Resource {
        api: ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
        },
        namespaced: true,
    })
}

fn meta(name: &str, owners: &[(&str, bool)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        uid: Some(format!("{name}-uid")),
        owner_references: (!owners.is_empty()).then(|| {
            owners
                .iter()
                .map(|(owner, block)| OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: (*owner).into(),
                    uid: format!("{owner}-uid"),
                    controller: None,
                    block_owner_deletion: Some(*block),
                })
                .collect()
        }),
        ..Default::default()
    }
}

fn deleted_with(mut meta: ObjectMeta, finalizer: &str) -> ObjectMeta {
    meta.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    meta.finalizers = Some(vec![finalizer.into()]);
    meta
}

fn delete(uid: &str) -> Work {
    Work::Delete(format!("{uid}-uid"))
}

#[test]
fn an_unseen_owner_becomes_a_virtual_node_to_verify() {
    let cm = config_maps();
    let mut graph = Graph::default();
    let work = graph.observe(&cm, &meta("child", &[("parent", true)]));
    assert_eq!(work, [delete("parent")]);
    let parent = graph.node("parent-uid").unwrap();
    assert!(!parent.observed());
    assert_eq!(parent.identity.namespace.as_deref(), Some("default"));
    // Seen for real: no more work, and the edge stays.
    assert!(graph.observe(&cm, &meta("parent", &[])).is_empty());
    assert!(graph.node("parent-uid").unwrap().observed());
    assert_eq!(graph.dependents("parent-uid").len(), 1);
}

#[test]
fn a_deleted_owner_sends_its_dependents_to_be_verified() {
    let cm = config_maps();
    let mut graph = Graph::default();
    graph.observe(&cm, &meta("parent", &[]));
    graph.observe(&cm, &meta("child", &[("parent", false)]));
    assert_eq!(graph.remove("parent-uid"), [delete("child")]);
    assert!(graph.node("parent-uid").is_none());
}

#[test]
fn foreground_deletion_sends_dependents_and_the_owner() {
    let cm = config_maps();
    let mut graph = Graph::default();
    graph.observe(&cm, &meta("parent", &[]));
    graph.observe(&cm, &meta("child", &[("parent", true)]));
    let work = graph.observe(
        &cm,
        &deleted_with(meta("parent", &[]), FOREGROUND_FINALIZER),
    );
    assert_eq!(work, [delete("child"), delete("parent")]);
    assert!(graph.node("parent-uid").unwrap().deleting_dependents);
    assert_eq!(graph.blocking_dependents("parent-uid").len(), 1);
    // Seen again in the same state: nothing new.
    assert!(
        graph
            .observe(
                &cm,
                &deleted_with(meta("parent", &[]), FOREGROUND_FINALIZER)
            )
            .is_empty()
    );
    // The child going wakes the waiting owner.
    assert_eq!(graph.remove("child-uid"), [delete("parent")]);
    assert!(graph.blocking_dependents("parent-uid").is_empty());
}

#[test]
fn a_dependent_dropping_its_blocking_reference_wakes_a_waiting_owner() {
    let cm = config_maps();
    let mut graph = Graph::default();
    graph.observe(
        &cm,
        &deleted_with(meta("parent", &[]), FOREGROUND_FINALIZER),
    );
    graph.observe(&cm, &meta("child", &[("parent", true)]));
    assert_eq!(graph.observe(&cm, &meta("child", &[])), [delete("parent")]);
}

#[test]
fn the_orphan_finalizer_asks_for_orphaning_once() {
    let cm = config_maps();
    let mut graph = Graph::default();
    graph.observe(&cm, &meta("parent", &[]));
    let orphaning = deleted_with(meta("parent", &[]), ORPHAN_FINALIZER);
    assert_eq!(
        graph.observe(&cm, &orphaning),
        [Work::Orphan("parent-uid".into())]
    );
    assert!(graph.observe(&cm, &orphaning).is_empty());
}

#[test]
fn a_relist_removes_what_it_no_longer_shows() {
    let cm = config_maps();
    let mut graph = Graph::default();
    graph.observe(&cm, &meta("parent", &[]));
    graph.observe(&cm, &meta("child", &[("parent", false)]));
    let seen = HashSet::from(["child-uid".to_owned()]);
    assert_eq!(graph.relisted(&cm, &seen), [delete("child")]);
    assert!(graph.node("parent-uid").is_none());
    assert!(graph.node("child-uid").is_some());
}

#[test]
fn a_virtual_owner_verified_absent_goes_and_its_dependents_are_checked() {
    let cm = config_maps();
    let mut graph = Graph::default();
    graph.observe(&cm, &meta("child", &[("parent", false)]));
    let identity = graph.node("parent-uid").unwrap().identity.clone();
    assert_eq!(graph.absent(&identity), [delete("child")]);
    assert!(graph.node("parent-uid").is_none());
}

#[test]
fn a_reference_to_an_owner_in_another_namespace_is_suspicious() {
    let cm = config_maps();
    let mut graph = Graph::default();
    graph.observe(&cm, &meta("parent", &[]));
    let mut child = meta("child", &[("parent", false)]);
    child.namespace = Some("other".into());
    assert_eq!(graph.observe(&cm, &child), [delete("child")]);
}

#[test]
fn virtual_nodes_nobody_references_are_dropped() {
    let cm = config_maps();
    let mut graph = Graph::default();
    graph.observe(&cm, &meta("child", &[("parent", false)]));
    assert_eq!(graph.node_count(), 2);
    graph.observe(&cm, &meta("child", &[]));
    assert_eq!(graph.node_count(), 1);
}
