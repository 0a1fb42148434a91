//! Which objects a controller owns, as upstream's `ControllerRefManager`
//! decides: it keeps what it controls and its selector matches, adopts
//! orphans its selector matches, and releases what it controls but no
//! longer selects. Adoption and release are strategic merge patches of
//! `metadata.ownerReferences`, merged by uid.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::controllers::common::controller_of;

/// What the controller does with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// It controls the object and selects it: the object is its own.
    Owned,
    /// An orphan it selects: adopt it.
    Adopt,
    /// It controls the object but no longer selects it: release it.
    Release,
    /// Someone else's, or nothing to do with it.
    Ignore,
}

/// Decides the fate of the object with metadata `meta` for the controller
/// whose uid is `owner_uid`, being deleted when `owner_deleting`.
pub(crate) fn classify(
    owner_uid: &str,
    owner_deleting: bool,
    selector: &Selector,
    meta: &ObjectMeta,
) -> Claim {
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    match controller_of(meta) {
        Some(controller) if controller.uid != owner_uid => Claim::Ignore,
        Some(_) if selector.matches(labels) => Claim::Owned,
        // A controller being deleted lets the garbage collector see its
        // dependents as they are.
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if owner_deleting || meta.deletion_timestamp.is_some() => Claim::Ignore,
        None if selector.matches(labels) => Claim::Adopt,
        None => Claim::Ignore,
    }
}

/// Makes `owner` the controller of `obj`.
pub(crate) async fn adopt<K>(api: &Api<K>, obj: &K, owner: &OwnerReference) -> kube::Result<K>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let meta = obj.meta();
    let patch = json!({
        "metadata": {
            "ownerReferences": [owner],
            "uid": meta.uid,
        }
    });
    Box::pin(api.patch(
        meta.name.as_deref().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Strategic(patch),
    ))
    .await
}

/// Removes the owner reference with `owner_uid` from `obj`.
pub(crate) async fn release<K>(api: &Api<K>, obj: &K, owner_uid: &str) -> kube::Result<K>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let meta = obj.meta();
    let patch = json!({
        "metadata": {
            "ownerReferences": [{ "$patch": "delete", "uid": owner_uid }],
            "uid": meta.uid,
        }
    });
    Box::pin(api.patch(
        meta.name.as_deref().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Strategic(patch),
    ))
    .await
}

/// Whether `err` is the apiserver's 404.
pub(crate) fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn selector() -> Selector {
        [("app", "web")].into_iter().collect()
    }

    fn meta(labels: &[(&str, &str)], controller_uid: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            owner_references: controller_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "x".into(),
                    uid: uid.into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn owned_adopted_released_or_ignored() {
        let s = selector();
        assert_eq!(
            classify("u1", false, &s, &meta(&[("app", "web")], Some("u1"))),
            Claim::Owned
        );
        assert_eq!(
            classify("u1", false, &s, &meta(&[("app", "db")], Some("u1"))),
            Claim::Release
        );
        assert_eq!(
            classify("u1", true, &s, &meta(&[("app", "db")], Some("u1"))),
            Claim::Ignore
        );
        assert_eq!(
            classify("u1", false, &s, &meta(&[("app", "web")], Some("u2"))),
            Claim::Ignore
        );
        assert_eq!(
            classify("u1", false, &s, &meta(&[("app", "web")], None)),
            Claim::Adopt
        );
        assert_eq!(
            classify("u1", true, &s, &meta(&[("app", "web")], None)),
            Claim::Ignore
        );
        assert_eq!(
            classify("u1", false, &s, &meta(&[("app", "db")], None)),
            Claim::Ignore
        );
    }

    #[test]
    fn an_orphan_being_deleted_is_not_adopted() {
        let mut m = meta(&[("app", "web")], None);
        m.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(classify("u1", false, &selector(), &m), Claim::Ignore);
    }
}
