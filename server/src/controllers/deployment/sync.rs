//! One sync of a Deployment: its working copy, its ReplicaSets as this
//! sync changes them, and the writes upstream's `sync.go` makes — scaling
//! with the ScalingReplicaSet events, proportional scaling, revision
//! history cleanup and the status (the new ReplicaSet is in
//! `new_replicaset`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use super::replicas::{
    by_revision, deployment_replicas, find_active_or_latest, is_active, is_rolling_update,
    is_saturated, max_surge, proportional_sizes, spec_replicas,
};
use super::status;
use super::{Context, Error, key_of, revision};

/// The Deployment being synced and its ReplicaSets as this sync leaves them.
pub(super) struct Rollout<'a> {
    pub(super) ctx: &'a Context,
    /// The working copy: status and revision as written so far.
    pub(super) d: Deployment,
    pub(super) replicasets: Vec<ReplicaSet>,
    /// When to look again, if nothing else triggers first.
    pub(super) requeue: Option<Duration>,
    pub(super) now: Timestamp,
}

impl<'a> Rollout<'a> {
    /// A sync of `d`.
    pub(super) fn new(ctx: &'a Context, d: Deployment) -> Self {
        let now = Timestamp::from_second(Timestamp::now().as_second())
            .unwrap_or_else(|_| Timestamp::now());
        Rollout {
            ctx,
            d,
            replicasets: Vec::new(),
            requeue: None,
            now,
        }
    }

    /// The ReplicaSets the Deployment owns.
    pub(super) fn set_replicasets(&mut self, replicasets: Vec<ReplicaSet>) {
        self.replicasets = replicasets;
    }

    /// What the controller does next with this Deployment.
    pub(super) fn action(&self) -> Action {
        self.requeue
            .map_or_else(Action::await_change, Action::requeue)
    }

    /// Asks for another look within `after`.
    pub(super) fn requeue_within(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |current| current.min(after)));
    }

    /// The client the sync writes with.
    pub(super) fn ctx_client(&self) -> kube::Client {
        self.ctx.client.clone()
    }

    pub(super) fn namespace(&self) -> &str {
        self.d.metadata.namespace.as_deref().unwrap_or_default()
    }

    pub(super) fn name(&self) -> String {
        self.d.name_any()
    }

    pub(super) fn rs_api(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.ctx.client.clone(), self.namespace())
    }

    pub(super) fn deployment_api(&self) -> Api<Deployment> {
        Api::namespaced(self.ctx.client.clone(), self.namespace())
    }

    /// The current copy of the ReplicaSet with `uid`.
    fn current(&self, uid: Option<&str>) -> Option<ReplicaSet> {
        let uid = uid?;
        self.replicasets
            .iter()
            .find(|rs| rs.metadata.uid.as_deref() == Some(uid))
            .cloned()
    }

    /// Keeps `rs` as the current copy of its ReplicaSet.
    pub(super) fn remember(&mut self, rs: ReplicaSet) {
        match self
            .replicasets
            .iter_mut()
            .find(|known| known.metadata.uid == rs.metadata.uid)
        {
            Some(known) => *known = rs,
            None => self.replicasets.push(rs),
        }
    }

    /// The new ReplicaSet (`new_uid`) and all others, as they are now.
    pub(super) fn split(&self, new_uid: Option<&str>) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
        let new = self.current(new_uid);
        let old = self
            .replicasets
            .iter()
            .filter(|rs| new_uid.is_none() || rs.metadata.uid.as_deref() != new_uid)
            .cloned()
            .collect();
        (new, old)
    }

    pub(super) fn records(&self, warning: bool, reason: &'static str, note: String) {
        let events = self.ctx.events.clone();
        let reference = self.d.object_ref(&());
        tokio::spawn(async move {
            if warning {
                events.warning(&reference, reason, note).await;
            } else {
                events.normal(&reference, reason, note).await;
            }
        });
    }

    /// A Deployment whose selector selects every pod is refused (upstream
    /// warns and only observes the generation).
    pub(super) async fn selecting_everything(&mut self) -> Result<(), Error> {
        self.records(
            true,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        );
        let status = self.d.status.clone().unwrap_or_default();
        if status.observed_generation.unwrap_or(0) < self.d.metadata.generation.unwrap_or(0) {
            let mut status = status;
            status.observed_generation = self.d.metadata.generation;
            self.write_status(status).await?;
        }
        Ok(())
    }

    /// Only the status (for a Deployment being deleted).
    pub(super) async fn sync_status_only(&mut self) -> Result<(), Error> {
        let (new_rs, old) = Box::pin(self.get_all_and_sync_revision(false)).await?;
        self.sync_deployment_status(new_rs.as_ref(), &old).await
    }

    /// Records pausing or resuming in the Progressing condition.
    pub(super) async fn check_paused_conditions(&mut self) -> Result<(), Error> {
        let Some(condition) = status::paused_condition(&self.d, self.now) else {
            return Ok(());
        };
        let mut current = self.d.status.clone().unwrap_or_default();
        status::set_condition(&mut current, condition);
        self.write_status(current).await
    }

    /// Whether `spec.replicas` differs from what an active ReplicaSet was
    /// last scaled for (upstream's `isScalingEvent`).
    pub(super) async fn is_scaling_event(&mut self) -> Result<bool, Error> {
        let (new_rs, old) = Box::pin(self.get_all_and_sync_revision(false)).await?;
        let replicas = deployment_replicas(&self.d);
        Ok(old
            .iter()
            .chain(new_rs.iter())
            .filter(|rs| is_active(rs))
            .filter_map(revision::desired_replicas)
            .any(|desired| desired != replicas))
    }

    /// Scaling or a paused Deployment: sizes follow `spec.replicas`, no
    /// rollout progress (upstream's `sync`).
    pub(super) async fn sync(&mut self) -> Result<(), Error> {
        let (new_rs, old) = Box::pin(self.get_all_and_sync_revision(false)).await?;
        Box::pin(self.scale(new_rs.as_ref(), &old)).await?;
        let new_uid = new_rs.as_ref().and_then(|rs| rs.metadata.uid.clone());
        let (new_rs, old) = self.split(new_uid.as_deref());
        if self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
            self.cleanup(&old).await?;
        }
        self.sync_deployment_status(new_rs.as_ref(), &old).await
    }

    /// Scales `rs` to `new_scale`, recording the event; whether the size
    /// changed, and the ReplicaSet as it is now.
    pub(super) async fn scale_and_record(
        &mut self,
        rs: &ReplicaSet,
        new_scale: i32,
    ) -> Result<(bool, ReplicaSet), Error> {
        let current = spec_replicas(rs);
        if current == new_scale {
            return Ok((false, rs.clone()));
        }
        let operation = if current < new_scale { "up" } else { "down" };
        self.scale_replicaset(rs, new_scale, operation).await
    }

    /// Scales `rs` and refreshes its replica annotations (upstream's
    /// `scaleReplicaSet`).
    async fn scale_replicaset(
        &mut self,
        rs: &ReplicaSet,
        new_scale: i32,
        operation: &str,
    ) -> Result<(bool, ReplicaSet), Error> {
        let old_scale = spec_replicas(rs);
        let size_changes = old_scale != new_scale;
        let desired = deployment_replicas(&self.d);
        let max = desired + max_surge(&self.d);
        if !size_changes && !revision::replicas_annotations_need_update(rs, desired, max) {
            return Ok((false, rs.clone()));
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": rs.metadata.resource_version,
                "annotations": {
                    revision::DESIRED_REPLICAS: desired.to_string(),
                    revision::MAX_REPLICAS: max.to_string(),
                },
            },
            "spec": { "replicas": new_scale },
        });
        let api = self.rs_api();
        let updated = Box::pin(api.patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        ))
        .await
        .map_err(|source| Error::Api {
            action: "scaling replicaset",
            target: key_of(rs),
            source,
        })?;
        if size_changes {
            self.records(
                false,
                "ScalingReplicaSet",
                format!(
                    "Scaled {operation} replica set {} from {old_scale} to {new_scale}",
                    rs.name_any()
                ),
            );
        }
        self.remember(updated.clone());
        Ok((size_changes, updated))
    }

    /// Sizes follow `spec.replicas`: the one active ReplicaSet takes it
    /// all; a saturated new one empties the old; otherwise a rolling
    /// Deployment's change is spread in proportion (upstream's `scale`).
    async fn scale(
        &mut self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<(), Error> {
        let replicas = deployment_replicas(&self.d);
        let old_refs: Vec<&ReplicaSet> = old.iter().collect();
        if let Some(target) = find_active_or_latest(new_rs, &old_refs) {
            if spec_replicas(target) != replicas {
                let target = target.clone();
                self.scale_and_record(&target, replicas).await?;
            }
            return Ok(());
        }
        if is_saturated(&self.d, new_rs) {
            for rs in old.iter().filter(|rs| is_active(rs)) {
                self.scale_and_record(rs, 0).await?;
            }
            return Ok(());
        }
        if is_rolling_update(&self.d) {
            let active: Vec<&ReplicaSet> = old
                .iter()
                .chain(new_rs)
                .filter(|rs| is_active(rs))
                .collect();
            let (sizes, up) = proportional_sizes(&self.d, &active);
            let operation = match up {
                Some(true) => "up",
                Some(false) => "down",
                None => "",
            };
            let sizes: Vec<(ReplicaSet, i32)> =
                sizes.into_iter().map(|(rs, n)| (rs.clone(), n)).collect();
            for (rs, size) in sizes {
                self.scale_replicaset(&rs, size, operation).await?;
            }
        }
        Ok(())
    }

    /// Deletes the oldest empty ReplicaSets beyond revisionHistoryLimit
    /// (upstream's `cleanupDeployment`).
    pub(super) async fn cleanup(&mut self, old: &[ReplicaSet]) -> Result<(), Error> {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = i64::try_from(cleanable.len()).unwrap_or(i64::MAX) - i64::from(limit);
        if excess <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| by_revision(a, b));
        let api = self.rs_api();
        for rs in cleanable
            .into_iter()
            .take(usize::try_from(excess).unwrap_or(0))
        {
            let status = rs.status.as_ref();
            let busy = status.is_some_and(|s| s.replicas != 0)
                || spec_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0)
                    > status.and_then(|s| s.observed_generation).unwrap_or(0);
            if busy {
                continue;
            }
            match Box::pin(api.delete(&rs.name_any(), &DeleteParams::default())).await {
                Ok(_) => {}
                Err(err) if super::is_not_found(&err) => {}
                Err(source) => {
                    return Err(Error::Api {
                        action: "deleting old replicaset",
                        target: key_of(rs),
                        source,
                    });
                }
            }
            self.replicasets
                .retain(|known| known.metadata.uid != rs.metadata.uid);
        }
        Ok(())
    }

    /// Writes the counts and Available condition if they changed
    /// (upstream's `syncDeploymentStatus`).
    pub(super) async fn sync_deployment_status(
        &mut self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<(), Error> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs).collect();
        let new_status = status::calculate_status(&all, new_rs, &self.d, self.now);
        if status::normalized(&self.d.status.clone().unwrap_or_default()) == new_status {
            return Ok(());
        }
        self.write_status(new_status).await
    }

    /// Writes the rollout's status, or when nothing changed asks to be
    /// looked at again at the progress deadline (upstream's
    /// `syncRolloutStatus`).
    pub(super) async fn sync_rollout_status(
        &mut self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<(), Error> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs).collect();
        let new_status = status::rollout_status(&self.d, &all, new_rs, self.now);
        if status::normalized(&self.d.status.clone().unwrap_or_default())
            == status::normalized(&new_status)
        {
            if let Some(after) = status::stuck_requeue(&self.d, &new_status, self.now) {
                self.requeue_within(after);
            }
            return Ok(());
        }
        self.write_status(new_status).await
    }

    /// Writes `status` whole (a merge patch naming every field, absent ones
    /// as null) and keeps it as the working copy's. The working copy's
    /// resourceVersion is a precondition, as upstream's UpdateStatus has:
    /// a status computed from a stale copy must not overwrite a newer one
    /// (progress is judged against the status before).
    pub(super) async fn write_status(&mut self, status: DeploymentStatus) -> Result<(), Error> {
        let status = status::normalized(&status);
        let mut value = serde_json::to_value(&status).unwrap_or_else(|_| json!({}));
        if let Some(map) = value.as_object_mut() {
            for key in [
                "observedGeneration",
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
                "unavailableReplicas",
                "collisionCount",
                "conditions",
            ] {
                map.entry(key).or_insert(Value::Null);
            }
        }
        let patch = json!({
            "metadata": { "resourceVersion": self.d.metadata.resource_version },
            "status": value,
        });
        let api = self.deployment_api();
        let written =
            Box::pin(api.patch_status(&self.name(), &PatchParams::default(), &Patch::Merge(patch)))
                .await
                .map_err(|source| Error::Api {
                    action: "updating the status of deployment",
                    target: key_of(&self.d),
                    source,
                })?;
        self.d.metadata.resource_version = written.metadata.resource_version;
        self.d.status = Some(status);
        Ok(())
    }

    /// Sets the Deployment's revision annotation. kube-apiserver keeps
    /// annotations a status update changes; here it is a metadata patch.
    pub(super) async fn write_revision(&mut self, value: &str) -> Result<(), Error> {
        if !revision::set_deployment_revision(&mut self.d, value) {
            return Ok(());
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": self.d.metadata.resource_version,
                "annotations": { revision::REVISION: value },
            }
        });
        let api = self.deployment_api();
        let written =
            Box::pin(api.patch(&self.name(), &PatchParams::default(), &Patch::Merge(patch)))
                .await
                .map_err(|source| Error::Api {
                    action: "recording the revision of deployment",
                    target: key_of(&self.d),
                    source,
                })?;
        self.d.metadata.resource_version = written.metadata.resource_version;
        Ok(())
    }
}
