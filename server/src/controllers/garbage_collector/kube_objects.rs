//! [`Objects`] through a kube client: metadata-only reads, deletions with
//! a UID precondition, JSON merge patches, events as
//! `garbage-collector-controller`.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{
    DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use serde_json::Value;

use super::collector::{Objects, Target};
use super::graph::Identity;
use crate::controllers::common::Events;

/// The field manager of the collector's patches.
const FIELD_MANAGER: &str = "kube-controller-manager";

/// The API as the collector uses it.
#[derive(Clone)]
pub struct KubeObjects {
    client: kube::Client,
    events: Events,
}

impl std::fmt::Debug for KubeObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeObjects").finish_non_exhaustive()
    }
}

impl KubeObjects {
    /// Through `client`.
    pub fn new(client: kube::Client) -> Self {
        let events = Events::new(client.clone(), "garbage-collector-controller");
        Self { client, events }
    }

    fn api(&self, target: &Target) -> Api<DynamicObject> {
        match &target.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &target.resource.api),
            None => Api::all_with(self.client.clone(), &target.resource.api),
        }
    }
}

impl Objects for KubeObjects {
    async fn get(&self, target: &Target) -> Result<Option<ObjectMeta>, kube::Error> {
        Ok(self
            .api(target)
            .get_metadata_opt(&target.name)
            .await?
            .map(|partial| partial.metadata))
    }

    async fn delete(
        &self,
        target: &Target,
        uid: &str,
        policy: PropagationPolicy,
    ) -> Result<(), kube::Error> {
        let params = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        self.api(target).delete(&target.name, &params).await?;
        Ok(())
    }

    async fn patch(&self, target: &Target, patch: Value) -> Result<(), kube::Error> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        self.api(target)
            .patch_metadata(&target.name, &params, &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    async fn warn(&self, object: &Identity, reason: &str, message: String) {
        let reference = ObjectReference {
            api_version: Some(object.api_version.clone()),
            kind: Some(object.kind.clone()),
            namespace: object.namespace.clone(),
            name: Some(object.name.clone()),
            uid: Some(object.uid.clone()),
            ..ObjectReference::default()
        };
        self.events.warning(&reference, reason, message).await;
    }
}
