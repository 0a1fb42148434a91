//! The collector's decisions against an in-memory fake of the API.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};

use super::*;

#[derive(Default)]
struct Fake {
    objects: Mutex<BTreeMap<String, ObjectMeta>>,
    log: Mutex<Vec<String>>,
}

fn key(target: &Target) -> String {
    format!(
        "{}/{}/{}",
        target.resource.api.kind,
        target.namespace.as_deref().unwrap_or(""),
        target.name
    )
}

impl Fake {
    fn put(&self, kind: &str, meta: ObjectMeta) {
        let key = format!(
            "{kind}/{}/{}",
            meta.namespace.as_deref().unwrap_or(""),
            meta.name.as_deref().unwrap_or("")
        );
        lock(&self.objects).insert(key, meta);
    }

    fn meta(&self, key: &str) -> Option<ObjectMeta> {
        lock(&self.objects).get(key).cloned()
    }

    fn log(&self) -> Vec<String> {
        lock(&self.log).clone()
    }
}

impl Objects for Fake {
    async fn get(&self, target: &Target) -> Result<Option<ObjectMeta>, kube::Error> {
        Ok(self.meta(&key(target)))
    }

    async fn delete(
        &self,
        target: &Target,
        uid: &str,
        policy: PropagationPolicy,
    ) -> Result<(), kube::Error> {
        let key = key(target);
        lock(&self.log).push(format!("delete {key} {policy:?}"));
        let mut objects = lock(&self.objects);
        let Some(meta) = objects.get_mut(&key) else {
            return Ok(());
        };
        assert_eq!(meta.uid.as_deref(), Some(uid));
        let finalizer = match policy {
            PropagationPolicy::Foreground => Some(FOREGROUND_FINALIZER),
            PropagationPolicy::Orphan => Some(ORPHAN_FINALIZER),
            _ => None,
        };
        if let Some(f) = finalizer {
            meta.finalizers.get_or_insert_with(Vec::new).push(f.into());
        }
        if meta.finalizers.as_ref().is_some_and(|f| !f.is_empty()) {
            meta.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        } else {
            objects.remove(&key);
        }
        Ok(())
    }

    async fn patch(&self, target: &Target, patch: Value) -> Result<(), kube::Error> {
        let key = key(target);
        lock(&self.log).push(format!("patch {key} {}", patch["metadata"]));
        let mut objects = lock(&self.objects);
        let meta = objects.get_mut(&key).expect("patching a missing object");
        let fields = &patch["metadata"];
        assert_eq!(fields["resourceVersion"], json!(meta.resource_version));
        if let Some(refs) = fields.get("ownerReferences") {
            meta.owner_references = serde_json::from_value(refs.clone()).unwrap();
        }
        if let Some(finalizers) = fields.get("finalizers") {
            meta.finalizers = serde_json::from_value(finalizers.clone()).unwrap();
        }
        Ok(())
    }

    async fn warn(&self, object: &Identity, reason: &str, message: String) {
        lock(&self.log).push(format!("event {} {reason}: {message}", object.name));
    }
}

fn resource(kind: &str, plural: &str, scope: Scope) -> (ApiResource, ApiCapabilities) {
    (
        ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        },
        ApiCapabilities {
            scope,
            subresources: Vec::new(),
            operations: vec!["list".into(), "watch".into(), "delete".into()],
        },
    )
}

fn collector() -> (Collector<Fake>, Arc<Resource>) {
    let collector = Collector::new(Fake::default());
    let resources = Resources::from_groups(vec![vec![vec![
        resource("ConfigMap", "configmaps", Scope::Namespaced),
        resource("Namespace", "namespaces", Scope::Cluster),
    ]]]);
    let config_maps = resources.resolve("v1", "ConfigMap").unwrap();
    collector.set_resources(resources);
    (collector, config_maps)
}

fn cm(name: &str, owners: &[(&str, bool)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        uid: Some(format!("{name}-uid")),
        resource_version: Some("7".into()),
        owner_references: (!owners.is_empty()).then(|| {
            owners
                .iter()
                .map(|(owner, block)| OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: (*owner).into(),
                    uid: format!("{owner}-uid"),
                    controller: Some(true),
                    block_owner_deletion: Some(*block),
                })
                .collect()
        }),
        ..Default::default()
    }
}

/// Puts the object in the fake API and shows it to the graph.
fn seen(collector: &Collector<Fake>, resource: &Arc<Resource>, meta: ObjectMeta) {
    collector.objects.put("ConfigMap", meta.clone());
    let work = collector.graph().observe(resource, &meta);
    collector.enqueue(work);
}

fn foreground(mut meta: ObjectMeta) -> ObjectMeta {
    meta.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    meta.finalizers = Some(vec![FOREGROUND_FINALIZER.into()]);
    meta
}

#[tokio::test]
async fn a_dependent_whose_owner_is_gone_is_deleted_in_the_background() {
    let (collector, cms) = collector();
    seen(&collector, &cms, cm("child", &[("parent", true)]));
    // The owner was never there: its virtual node is verified absent first.
    assert_eq!(
        collector.attempt_to_delete("parent-uid").await.unwrap(),
        Outcome::Done
    );
    assert!(collector.graph().node("parent-uid").is_none());
    assert_eq!(
        collector.attempt_to_delete("child-uid").await.unwrap(),
        Outcome::Done
    );
    assert_eq!(
        collector.objects.log(),
        ["delete ConfigMap/default/child Background"]
    );
    assert!(collector.objects.meta("ConfigMap/default/child").is_none());
}

#[tokio::test]
async fn an_owner_with_another_uid_counts_as_gone() {
    let (collector, cms) = collector();
    let mut impostor = cm("parent", &[]);
    impostor.uid = Some("new-uid".into());
    collector.objects.put("ConfigMap", impostor);
    seen(&collector, &cms, cm("child", &[("parent", false)]));
    collector.attempt_to_delete("child-uid").await.unwrap();
    assert_eq!(
        collector.objects.log(),
        ["delete ConfigMap/default/child Background"]
    );
}

#[tokio::test]
async fn a_live_owner_keeps_a_dependent_that_loses_only_its_dangling_reference() {
    let (collector, cms) = collector();
    seen(&collector, &cms, cm("alive", &[]));
    seen(
        &collector,
        &cms,
        cm("child", &[("alive", true), ("gone", true)]),
    );
    collector.attempt_to_delete("child-uid").await.unwrap();
    let child = collector.objects.meta("ConfigMap/default/child").unwrap();
    let owners: Vec<_> = child
        .owner_references
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(owners, ["alive"]);
}

#[tokio::test]
async fn dependents_of_a_foreground_deletion_go_and_then_the_owner_is_released() {
    let (collector, cms) = collector();
    seen(&collector, &cms, cm("parent", &[]));
    seen(&collector, &cms, cm("child", &[("parent", true)]));
    seen(&collector, &cms, cm("grandchild", &[("child", true)]));
    seen(&collector, &cms, foreground(cm("parent", &[])));
    // The child has dependents of its own: it goes in the foreground too.
    collector.attempt_to_delete("child-uid").await.unwrap();
    let child = collector.objects.meta("ConfigMap/default/child").unwrap();
    assert!(child.deletion_timestamp.is_some());
    seen(&collector, &cms, child);
    collector.attempt_to_delete("grandchild-uid").await.unwrap();
    assert!(
        collector
            .objects
            .meta("ConfigMap/default/grandchild")
            .is_none()
    );
    // The parent still waits for its blocking child.
    collector.attempt_to_delete("parent-uid").await.unwrap();
    assert!(has_finalizer(
        &collector.objects.meta("ConfigMap/default/parent").unwrap(),
        FOREGROUND_FINALIZER
    ));
    collector.graph().remove("grandchild-uid");
    collector.attempt_to_delete("child-uid").await.unwrap();
    let child = collector.objects.meta("ConfigMap/default/child").unwrap();
    assert_eq!(
        child.finalizers, None,
        "the child's foreground finalizer is removed"
    );
    collector.graph().remove("child-uid");
    collector.attempt_to_delete("parent-uid").await.unwrap();
    assert_eq!(
        collector
            .objects
            .meta("ConfigMap/default/parent")
            .unwrap()
            .finalizers,
        None
    );
    assert_eq!(
        collector.objects.log(),
        [
            "delete ConfigMap/default/child Foreground",
            "delete ConfigMap/default/grandchild Background",
            "patch ConfigMap/default/child {\"finalizers\":null,\"resourceVersion\":\"7\"}",
            "patch ConfigMap/default/parent {\"finalizers\":null,\"resourceVersion\":\"7\"}",
        ]
    );
}

#[tokio::test]
async fn orphaning_removes_the_references_then_the_finalizer() {
    let (collector, cms) = collector();
    seen(&collector, &cms, cm("parent", &[]));
    seen(
        &collector,
        &cms,
        cm("child", &[("parent", true), ("other", false)]),
    );
    let mut orphaning = cm("parent", &[]);
    orphaning.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    orphaning.finalizers = Some(vec![ORPHAN_FINALIZER.into(), "example.com/keep".into()]);
    seen(&collector, &cms, orphaning);
    assert_eq!(collector.orphans.len(), 1);
    collector.attempt_to_orphan("parent-uid").await.unwrap();
    let child = collector.objects.meta("ConfigMap/default/child").unwrap();
    let owners: Vec<_> = child
        .owner_references
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(owners, ["other"]);
    let parent = collector.objects.meta("ConfigMap/default/parent").unwrap();
    assert_eq!(parent.finalizers, Some(vec!["example.com/keep".to_owned()]));
}

#[tokio::test]
async fn a_cluster_scoped_object_cannot_be_owned_by_a_namespaced_one() {
    let (collector, _) = collector();
    let namespaces = collector.resolve("v1", "Namespace").unwrap();
    let mut ns = cm("team", &[("parent", true)]);
    ns.namespace = None;
    collector.objects.put("Namespace", ns.clone());
    collector.graph().observe(&namespaces, &ns);
    assert_eq!(
        collector.attempt_to_delete("team-uid").await.unwrap(),
        Outcome::Done
    );
    let log = collector.objects.log();
    assert_eq!(log.len(), 1);
    assert!(
        log[0].starts_with("event team OwnerRefInvalidNamespace: ownerRef [v1/ConfigMap"),
        "{log:?}"
    );
}

#[tokio::test]
async fn an_existing_virtual_owner_is_checked_again_until_a_monitor_sees_it() {
    let (collector, cms) = collector();
    collector.objects.put("ConfigMap", cm("parent", &[]));
    seen(&collector, &cms, cm("child", &[("parent", true)]));
    assert_eq!(
        collector.attempt_to_delete("parent-uid").await.unwrap(),
        Outcome::Requeue
    );
    seen(&collector, &cms, cm("parent", &[]));
    assert_eq!(
        collector.attempt_to_delete("parent-uid").await.unwrap(),
        Outcome::Done
    );
    assert!(collector.objects.log().is_empty());
}
