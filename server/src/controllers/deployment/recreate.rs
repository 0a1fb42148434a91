//! The Recreate strategy (upstream's `recreate.go`): scale every old
//! ReplicaSet to zero, wait until none of their pods runs, then create or
//! scale up the new one.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::core::Selector;
use kube::{Api, ResourceExt};

use super::replicas::{deployment_replicas, is_active, total_actual};
use super::status::deployment_complete;
use super::sync::Rollout;
use super::{Error, key_of};
use crate::controllers::common::controller_of;

/// How often a Recreate rollout checks whether the old pods are gone
/// (there is no pod watch in this controller).
const OLD_PODS_POLL: Duration = Duration::from_secs(1);

impl Rollout<'_> {
    /// One step of a Recreate rollout.
    pub(super) async fn rollout_recreate(&mut self, selector: &Selector) -> Result<(), Error> {
        // No new ReplicaSet yet: nothing may run beside the old pods.
        let (new_rs, old) = Box::pin(self.get_all_and_sync_revision(false)).await?;
        let new_uid = new_rs.as_ref().and_then(|rs| rs.metadata.uid.clone());
        let mut scaled_down = false;
        for rs in old.iter().filter(|rs| is_active(rs)) {
            scaled_down |= self.scale_and_record(rs, 0).await?.0;
        }
        if scaled_down {
            let (new_rs, old) = self.split(new_uid.as_deref());
            return self.sync_rollout_status(new_rs.as_ref(), &old).await;
        }
        if self
            .old_pods_running(new_rs.as_ref(), &old, selector)
            .await?
        {
            self.requeue_within(OLD_PODS_POLL);
            return self.sync_rollout_status(new_rs.as_ref(), &old).await;
        }
        let new_rs = match new_rs {
            Some(rs) => rs,
            None => match Box::pin(self.get_all_and_sync_revision(true)).await?.0 {
                Some(rs) => rs,
                None => return Err(Error::Invalid(key_of(&self.d), "no new replicaset".into())),
            },
        };
        let new_uid = new_rs.metadata.uid.clone();
        let replicas = deployment_replicas(&self.d);
        self.scale_and_record(&new_rs, replicas).await?;
        let (new_rs, old) = self.split(new_uid.as_deref());
        if deployment_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup(&old).await?;
        }
        let (new_rs_now, old) = self.split(new_uid.as_deref());
        self.sync_rollout_status(new_rs_now.as_ref().or(new_rs.as_ref()), &old)
            .await
    }

    /// Whether any pod of an old ReplicaSet may still run: counted ones,
    /// or pods not yet Succeeded or Failed, terminating ones included
    /// (upstream's `oldPodsRunning`).
    async fn old_pods_running(
        &self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
        selector: &Selector,
    ) -> Result<bool, Error> {
        if total_actual(old) > 0 {
            return Ok(true);
        }
        let old_uids: Vec<&str> = old
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        if old_uids.is_empty() {
            return Ok(false);
        }
        let namespace = self.d.metadata.namespace.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.ctx_client(), namespace);
        let pods = Box::pin(api.list(&ListParams::default().labels(&selector.to_string())))
            .await
            .map_err(|source| Error::Api {
                action: "listing the pods of deployment",
                target: key_of(&self.d),
                source,
            })?;
        let new_uid = new_rs.and_then(|rs| rs.metadata.uid.as_deref());
        Ok(pods.items.iter().any(|pod| {
            let Some(owner) = controller_of(&pod.metadata) else {
                return false;
            };
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            Some(owner.uid.as_str()) != new_uid
                && old_uids.contains(&owner.uid.as_str())
                && !matches!(phase, Some("Succeeded" | "Failed"))
                && !pod.name_any().is_empty()
        }))
    }
}
