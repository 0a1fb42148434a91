//! The RollingUpdate strategy (upstream's `rolling.go`): grow the new
//! ReplicaSet as far as maxSurge allows, then shrink the old ones as far
//! as maxUnavailable allows — unhealthy old pods first, since removing
//! them costs no availability — and clean up history once complete.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::Error;
use super::key_of;
use super::replicas::{
    available_replicas, by_creation, deployment_replicas, is_active, max_unavailable,
    new_rs_new_replicas, spec_replicas, total_available, total_spec,
};
use super::status::deployment_complete;
use super::sync::Rollout;

impl Rollout<'_> {
    /// One step of a rolling update.
    pub(super) async fn rollout_rolling(&mut self) -> Result<(), Error> {
        let (new_rs, old) = Box::pin(self.get_all_and_sync_revision(true)).await?;
        let Some(new_rs) = new_rs else {
            return Err(Error::Invalid(key_of(&self.d), "no new replicaset".into()));
        };
        let new_uid = new_rs.metadata.uid.clone();
        if Box::pin(self.reconcile_new_replicaset(&new_rs, &old)).await? {
            let (new_rs, old) = self.split(new_uid.as_deref());
            return self.sync_rollout_status(new_rs.as_ref(), &old).await;
        }
        // Nothing was written: `new_rs` and `old` are current.
        if Box::pin(self.reconcile_old_replicasets(&new_rs, &old)).await? {
            let (new_rs, old) = self.split(new_uid.as_deref());
            return self.sync_rollout_status(new_rs.as_ref(), &old).await;
        }
        if deployment_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup(&old).await?;
        }
        let (new_now, old) = self.split(new_uid.as_deref());
        self.sync_rollout_status(new_now.as_ref().or(Some(&new_rs)), &old)
            .await
    }

    /// Scales the new ReplicaSet toward `spec.replicas` within maxSurge;
    /// whether it scaled.
    async fn reconcile_new_replicaset(
        &mut self,
        new_rs: &ReplicaSet,
        old: &[ReplicaSet],
    ) -> Result<bool, Error> {
        let replicas = deployment_replicas(&self.d);
        let current = spec_replicas(new_rs);
        if current == replicas {
            return Ok(false);
        }
        if current > replicas {
            return Ok(self.scale_and_record(new_rs, replicas).await?.0);
        }
        let all: Vec<&ReplicaSet> = old.iter().chain([new_rs]).collect();
        let target = new_rs_new_replicas(&self.d, &all, new_rs)
            .map_err(|err| Error::Invalid(key_of(&self.d), err))?;
        Ok(self.scale_and_record(new_rs, target).await?.0)
    }

    /// Scales old ReplicaSets down as far as availability allows; whether
    /// any scaled.
    async fn reconcile_old_replicasets(
        &mut self,
        new_rs: &ReplicaSet,
        old: &[ReplicaSet],
    ) -> Result<bool, Error> {
        let mut active: Vec<ReplicaSet> = old.iter().filter(|rs| is_active(rs)).cloned().collect();
        if total_spec(&active) == 0 {
            return Ok(false);
        }
        let all: Vec<&ReplicaSet> = old.iter().chain([new_rs]).collect();
        let allowance = max_scale_down(&self.d, &all, new_rs);
        if allowance <= 0 {
            return Ok(false);
        }
        active.sort_by(by_creation);
        let mut cleaned = 0;
        let refs: Vec<&ReplicaSet> = active.iter().collect();
        for (index, size) in unhealthy_cleanup(&refs, allowance) {
            cleaned += spec_replicas(&active[index]) - size;
            let (_, updated) = self.scale_and_record(&active[index].clone(), size).await?;
            active[index] = updated;
        }
        let all: Vec<&ReplicaSet> = active.iter().chain([new_rs]).collect();
        let refs: Vec<&ReplicaSet> = active.iter().collect();
        let plan = rolling_scale_down(&self.d, &all, &refs);
        let mut scaled = 0;
        for (index, size) in plan {
            scaled += spec_replicas(&active[index]) - size;
            self.scale_and_record(&active[index].clone(), size).await?;
        }
        Ok(cleaned + scaled > 0)
    }
}

/// How many old pods may go now: every pod but the minimum available and
/// the new ReplicaSet's unavailable ones.
pub(super) fn max_scale_down(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let min_available = deployment_replicas(d) - max_unavailable(d);
    let new_unavailable = spec_replicas(new_rs) - available_replicas(new_rs);
    total_spec(all.iter().copied()) - min_available - new_unavailable
}

/// New sizes `(index, size)` of the old ReplicaSets (oldest first) that
/// drop their unavailable pods, at most `allowance` in all (upstream's
/// `cleanupUnhealthyReplicas`).
pub(super) fn unhealthy_cleanup(
    old_oldest_first: &[&ReplicaSet],
    allowance: i32,
) -> Vec<(usize, i32)> {
    let mut plan = Vec::new();
    let mut total = 0;
    for (index, rs) in old_oldest_first.iter().enumerate() {
        if total >= allowance {
            break;
        }
        let replicas = spec_replicas(rs);
        let unhealthy = replicas - available_replicas(rs);
        if replicas == 0 || unhealthy <= 0 {
            continue;
        }
        let down = (allowance - total).min(unhealthy);
        plan.push((index, replicas - down));
        total += down;
    }
    plan
}

/// New sizes `(index, size)` of the old ReplicaSets (oldest first) that
/// keep `spec.replicas - maxUnavailable` pods available (upstream's
/// `scaleDownOldReplicaSetsForRollingUpdate`).
pub(super) fn rolling_scale_down(
    d: &Deployment,
    all: &[&ReplicaSet],
    old_oldest_first: &[&ReplicaSet],
) -> Vec<(usize, i32)> {
    let min_available = deployment_replicas(d) - max_unavailable(d);
    let available = total_available(all.iter().copied());
    if available <= min_available {
        return Vec::new();
    }
    let budget = available - min_available;
    let mut plan = Vec::new();
    let mut total = 0;
    for (index, rs) in old_oldest_first.iter().enumerate() {
        if total >= budget {
            break;
        }
        let replicas = spec_replicas(rs);
        if replicas == 0 {
            continue;
        }
        let down = replicas.min(budget - total);
        plan.push((index, replicas - down));
        total += down;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::replicas::tests::{deployment, rs};

    #[test]
    fn a_rollout_of_three_with_one_surge_and_none_unavailable() {
        let d = deployment(3, "1", "0");
        // Start: old 3 available, new just scaled to 1 (not available).
        let old = rs("old", 0, 3, 3);
        let new = rs("new", 10, 1, 0);
        let all = [&old, &new];
        // 4 pods, 3 must stay available, 1 new unavailable: nothing goes.
        assert_eq!(max_scale_down(&d, &all, &new), 0);
        // The new pod becomes available: one old pod may go.
        let new = rs("new", 10, 1, 1);
        let all = [&old, &new];
        assert_eq!(max_scale_down(&d, &all, &new), 1);
        assert!(unhealthy_cleanup(&[&old], 1).is_empty());
        assert_eq!(rolling_scale_down(&d, &all, &[&old]), [(0, 2)]);
    }

    #[test]
    fn unavailable_old_pods_go_first_within_the_allowance() {
        let a = rs("a", 0, 3, 1);
        let b = rs("b", 1, 2, 0);
        assert_eq!(unhealthy_cleanup(&[&a, &b], 3), [(0, 1), (1, 1)]);
        assert_eq!(unhealthy_cleanup(&[&a, &b], 1), [(0, 2)]);
        let healthy = rs("c", 0, 2, 2);
        assert!(unhealthy_cleanup(&[&healthy], 5).is_empty());
    }

    #[test]
    fn scale_down_keeps_the_minimum_available() {
        let d = deployment(4, "1", "1");
        let old1 = rs("old1", 0, 2, 2);
        let old2 = rs("old2", 1, 2, 2);
        let new = rs("new", 5, 1, 0);
        // 4 available, 3 must remain: one pod, from the oldest.
        assert_eq!(
            rolling_scale_down(&d, &[&old1, &old2, &new], &[&old1, &old2]),
            [(0, 1)]
        );
        let new = rs("new", 5, 1, 1);
        assert_eq!(
            rolling_scale_down(&d, &[&old1, &old2, &new], &[&old1, &old2]),
            [(0, 0)]
        );
    }
}
