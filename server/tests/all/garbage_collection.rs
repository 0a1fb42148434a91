//! The garbage collector against a real apiserver: dependents go after
//! their owner (background), before it (foreground, with the real
//! kubectl's `--cascade=foreground`, blockOwnerDeletion holding the owner),
//! or stay without the reference (`--cascade=orphan`); owners are verified
//! by UID and looked up in the dependent's namespace or at cluster scope.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use skiff_server::controllers::garbage_collector;

use crate::support::{Controllers, controllers_cluster, eventually};

/// A finalizer no controller removes: the test holds an object with it.
const HOLD: &str = "example.com/hold";

controllers_cluster!();

/// The apiserver with the garbage collector.
async fn cluster() -> Cluster {
    Cluster(
        Controllers::start(|client, stop| {
            tokio::spawn(garbage_collector::run(client.clone(), stop.clone()));
        })
        .await,
    )
}

/// An owner reference to `owner` (controller, blocking or not).
fn reference<K: Resource<DynamicType = ()>>(owner: &K, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap(),
        uid: owner.meta().uid.clone().unwrap(),
        controller: Some(true),
        block_owner_deletion: Some(block),
    }
}

impl Cluster {
    fn config_maps(&self, namespace: &str) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
        owners: Vec<OwnerReference>,
        finalizers: &[&str],
    ) -> ConfigMap {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                owner_references: (!owners.is_empty()).then_some(owners),
                finalizers: (!finalizers.is_empty())
                    .then(|| finalizers.iter().map(|f| (*f).to_owned()).collect()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
            ..ConfigMap::default()
        };
        self.config_maps(namespace)
            .create(&PostParams::default(), &cm)
            .await
            .unwrap()
    }

    async fn get(&self, name: &str) -> Option<ConfigMap> {
        self.config_maps("default").get_opt(name).await.unwrap()
    }

    async fn wait_gone(&self, names: &[&str]) {
        for name in names {
            eventually(&format!("configmap {name} to go"), || async {
                self.get(name).await.is_none().then_some(())
            })
            .await;
        }
    }

    async fn wait_deleting(&self, name: &str) -> ConfigMap {
        eventually(&format!("configmap {name} to be deleting"), || async {
            self.get(name)
                .await
                .filter(|cm| cm.metadata.deletion_timestamp.is_some())
        })
        .await
    }

    async fn release(&self, name: &str) {
        self.config_maps("default")
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_owner_deletes_its_dependents_in_the_background() {
    let c = cluster().await;
    let owner = c.config_map("default", "owner", vec![], &[]).await;
    c.config_map("default", "dependent", vec![reference(&owner, true)], &[])
        .await;
    c.config_maps("default")
        .delete("owner", &Default::default())
        .await
        .unwrap();
    c.wait_gone(&["dependent"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_of_an_owner_deleted_before_it_was_made_goes_too() {
    let c = cluster().await;
    let owner = c.config_map("default", "owner", vec![], &[]).await;
    c.config_maps("default")
        .delete("owner", &Default::default())
        .await
        .unwrap();
    c.config_map("default", "late", vec![reference(&owner, false)], &[])
        .await;
    c.wait_gone(&["late"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_with_another_uid_counts_as_gone_and_live_owners_keep_dependents() {
    let c = cluster().await;
    let owner = c.config_map("default", "owner", vec![], &[]).await;
    let mut stale = reference(&owner, false);
    stale.uid = "00000000-0000-0000-0000-000000000000".into();
    c.config_map("default", "stale", vec![stale.clone()], &[])
        .await;
    c.config_map(
        "default",
        "shared",
        vec![reference(&owner, false), {
            let mut gone = stale.clone();
            gone.name = "gone".into();
            gone.controller = Some(false);
            gone
        }],
        &[],
    )
    .await;
    c.wait_gone(&["stale"]).await;
    // The shared dependent keeps its live owner and loses only the dead one.
    let shared = eventually("the dangling reference to go", || async {
        let cm = c.get("shared").await?;
        (cm.owner_references().len() == 1).then_some(cm)
    })
    .await;
    assert_eq!(shared.owner_references()[0].name, "owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_cascade_foreground_waits_for_blocking_dependents() {
    let c = cluster().await;
    let owner = c.config_map("default", "owner", vec![], &[]).await;
    c.config_map("default", "quick", vec![reference(&owner, true)], &[])
        .await;
    c.config_map("default", "held", vec![reference(&owner, true)], &[HOLD])
        .await;
    c.kubectl(&[
        "delete",
        "configmap",
        "owner",
        "--cascade=foreground",
        "--wait=false",
    ])
    .await;
    let owner = c.wait_deleting("owner").await;
    assert!(owner.finalizers().iter().any(|f| f == "foregroundDeletion"));
    c.wait_gone(&["quick"]).await;
    c.wait_deleting("held").await;
    // The held dependent blocks its owner.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(c.get("owner").await.is_some());
    c.release("held").await;
    c.wait_gone(&["held", "owner"]).await;

    // And kubectl's own wait returns once the owner is gone.
    let owner = c.config_map("default", "owner2", vec![], &[]).await;
    c.config_map("default", "child2", vec![reference(&owner, true)], &[])
        .await;
    c.kubectl(&["delete", "configmap", "owner2", "--cascade=foreground"])
        .await;
    assert!(c.get("owner2").await.is_none());
    assert!(c.get("child2").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_cascade_orphan_keeps_dependents_without_the_reference() {
    let c = cluster().await;
    let owner = c.config_map("default", "owner", vec![], &[]).await;
    let other = c.config_map("default", "other", vec![], &[]).await;
    let mut second = reference(&other, false);
    second.controller = Some(false);
    c.config_map(
        "default",
        "orphan",
        vec![reference(&owner, true), second],
        &[],
    )
    .await;
    c.kubectl(&["delete", "configmap", "owner", "--cascade=orphan"])
        .await;
    assert!(c.get("owner").await.is_none());
    let orphan = c.get("orphan").await.expect("the dependent stays");
    let owners: Vec<_> = orphan
        .owner_references()
        .iter()
        .map(|o| o.name.clone())
        .collect();
    assert_eq!(owners, ["other"]);
    // It stays for good: nothing collects it afterwards.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(c.get("orphan").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_like_chain_goes_in_the_background_and_in_the_foreground() {
    let c = cluster().await;
    // deployment → replicaset → two pods, as plain ConfigMaps.
    let deploy = c.config_map("default", "deploy", vec![], &[]).await;
    let rs = c
        .config_map("default", "rs", vec![reference(&deploy, true)], &[])
        .await;
    for pod in ["pod-a", "pod-b"] {
        c.config_map("default", pod, vec![reference(&rs, true)], &[])
            .await;
    }
    c.kubectl(&["delete", "configmap", "deploy"]).await;
    c.wait_gone(&["rs", "pod-a", "pod-b"]).await;

    let deploy = c.config_map("default", "deploy2", vec![], &[]).await;
    let rs = c
        .config_map("default", "rs2", vec![reference(&deploy, true)], &[])
        .await;
    c.config_map("default", "pod-c", vec![reference(&rs, true)], &[])
        .await;
    c.config_map("default", "pod-d", vec![reference(&rs, true)], &[HOLD])
        .await;
    c.kubectl(&[
        "delete",
        "configmap",
        "deploy2",
        "--cascade=foreground",
        "--wait=false",
    ])
    .await;
    // The replica set has dependents: it is deleted in the foreground too.
    let rs = c.wait_deleting("rs2").await;
    assert!(
        rs.finalizers().iter().any(|f| f == "foregroundDeletion"),
        "{:?}",
        rs.finalizers()
    );
    c.wait_gone(&["pod-c"]).await;
    c.wait_deleting("pod-d").await;
    assert!(c.get("deploy2").await.is_some());
    assert!(c.get("rs2").await.is_some());
    c.release("pod-d").await;
    c.wait_gone(&["pod-d", "rs2", "deploy2"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_are_found_at_cluster_scope_or_in_the_dependents_namespace() {
    let c = cluster().await;
    let roles: Api<ClusterRole> = Api::all(c.client.clone());
    let role: ClusterRole = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": { "name": "owner-role" },
    }))
    .unwrap();
    let role = roles.create(&PostParams::default(), &role).await.unwrap();
    c.config_map("default", "of-role", vec![reference(&role, false)], &[])
        .await;

    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    let other: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": "elsewhere" } })).unwrap();
    namespaces
        .create(&PostParams::default(), &other)
        .await
        .unwrap();
    let foreign_owner = c.config_map("elsewhere", "owner", vec![], &[]).await;
    // Same name, other namespace: not its owner.
    c.config_map("default", "owner", vec![], &[]).await;
    c.config_map(
        "default",
        "misplaced",
        vec![reference(&foreign_owner, false)],
        &[],
    )
    .await;
    c.wait_gone(&["misplaced"]).await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        c.get("of-role").await.is_some(),
        "its cluster-scoped owner lives"
    );
    roles
        .delete("owner-role", &Default::default())
        .await
        .unwrap();
    c.wait_gone(&["of-role"]).await;
    assert!(
        c.config_maps("elsewhere")
            .get_opt("owner")
            .await
            .unwrap()
            .is_some()
    );
}
