//! A Deployment's status and conditions (upstream's `calculateStatus`,
//! `syncRolloutStatus` and the condition helpers), with the reasons and
//! messages `kubectl rollout status` and `kubectl describe` show.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::replicas::{
    deployment_replicas, max_unavailable, total_actual, total_available, total_ready, total_spec,
};

/// Condition type: enough pods are available.
pub(crate) const AVAILABLE: &str = "Available";
/// Condition type: the rollout is moving (or stuck).
pub(crate) const PROGRESSING: &str = "Progressing";
/// Condition type: a ReplicaSet cannot create or delete pods.
pub(crate) const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Available: at least `replicas - maxUnavailable` pods are available.
pub(crate) const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Available=False.
pub(crate) const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
/// Progressing: the new ReplicaSet was created.
pub(crate) const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// Progressing: the new ReplicaSet existed already.
pub(crate) const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
/// Progressing: the rollout moved.
pub(crate) const RS_UPDATED: &str = "ReplicaSetUpdated";
/// Progressing: the rollout is complete.
pub(crate) const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing=False: no progress within progressDeadlineSeconds.
pub(crate) const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// Progressing=Unknown: paused.
pub(crate) const PAUSED: &str = "DeploymentPaused";
/// Progressing=Unknown: resumed.
pub(crate) const RESUMED: &str = "DeploymentResumed";
/// Progressing=False: the new ReplicaSet could not be created.
pub(crate) const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";

/// A condition set `now` (both times).
pub(crate) fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of type `type_`.
pub(crate) fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Puts `condition` in place of its type's, unless one with the same
/// status and reason is there (then nothing changes, not even the
/// message); the transition time is kept while the status is the same.
pub(crate) fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

/// Drops the condition of type `type_`.
pub(crate) fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// Whether progress is tracked against a deadline.
pub(crate) fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|s| s != i32::MAX)
}

/// The status with zero counts absent, as the API stores them, so two
/// statuses compare as upstream compares Go values.
pub(crate) fn normalized(status: &DeploymentStatus) -> DeploymentStatus {
    let nonzero = |v: Option<i32>| v.filter(|v| *v != 0);
    DeploymentStatus {
        available_replicas: nonzero(status.available_replicas),
        collision_count: status.collision_count,
        conditions: status.conditions.clone().filter(|c| !c.is_empty()),
        observed_generation: status.observed_generation.filter(|g| *g != 0),
        ready_replicas: nonzero(status.ready_replicas),
        replicas: nonzero(status.replicas),
        terminating_replicas: nonzero(status.terminating_replicas),
        unavailable_replicas: nonzero(status.unavailable_replicas),
        updated_replicas: nonzero(status.updated_replicas),
    }
}

/// The counts and Available condition over all ReplicaSets (upstream's
/// `calculateStatus`); other conditions are carried over.
pub(crate) fn calculate_status(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let available = total_available(all.iter().copied());
    let total = total_spec(all.iter().copied());
    let current = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total_actual(all.iter().copied())),
        updated_replicas: Some(new_rs.map_or(0, |rs| total_actual([rs]))),
        ready_replicas: Some(total_ready(all.iter().copied())),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions,
        terminating_replicas: None,
    };
    let condition = if available >= deployment_replicas(d) - max_unavailable(d) {
        new_condition(
            AVAILABLE,
            "True",
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        new_condition(
            AVAILABLE,
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut status, condition);
    normalized(&status)
}

fn count(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Every replica updated and available, and the spec observed (upstream's
/// `DeploymentComplete`).
pub(crate) fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = deployment_replicas(d);
    count(status.updated_replicas) == replicas
        && count(status.replicas) == replicas
        && count(status.available_replicas) == replicas
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether `status` shows progress over the Deployment's current status:
/// more updated, ready or available replicas, or fewer old ones.
pub(crate) fn deployment_progressing(d: &Deployment, status: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = count(old.replicas) - count(old.updated_replicas);
    let new_old = count(status.replicas) - count(status.updated_replicas);
    count(status.updated_replicas) > count(old.updated_replicas)
        || new_old < old_old
        || count(status.ready_replicas) > count(old.ready_replicas)
        || count(status.available_replicas) > count(old.available_replicas)
}

fn deadline(d: &Deployment) -> SignedDuration {
    let seconds = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    SignedDuration::from_secs(i64::from(seconds))
}

/// Whether the Progressing condition of `status` was last updated longer
/// than progressDeadlineSeconds ago (upstream's `DeploymentTimedOut`).
pub(crate) fn deployment_timed_out(
    d: &Deployment,
    status: &DeploymentStatus,
    now: Timestamp,
) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(condition) = get_condition(status, PROGRESSING) else {
        return false;
    };
    match condition.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => condition
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0 + deadline(d) < now),
    }
}

/// The status a rollout step leaves (upstream's `syncRolloutStatus`):
/// counts, Available, Progressing by progress or deadline, and the
/// ReplicaSets' ReplicaFailure moved up.
pub(crate) fn rollout_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(all, new_rs, d, now);
    if !has_progress_deadline(d) {
        remove_condition(&mut status, PROGRESSING);
    }
    let current = d.status.clone().unwrap_or_default();
    let current_progressing = get_condition(&current, PROGRESSING).cloned();
    let complete_before = count(status.replicas) == count(status.updated_replicas)
        && current_progressing
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    if has_progress_deadline(d) && !complete_before {
        let name = d.metadata.name.as_deref().unwrap_or_default();
        let rs_name = new_rs.and_then(|rs| rs.metadata.name.as_deref());
        if deployment_complete(d, &status) {
            let message = match rs_name {
                Some(rs) => format!("ReplicaSet \"{rs}\" has successfully progressed."),
                None => format!("Deployment \"{name}\" has successfully progressed."),
            };
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, message, now),
            );
        } else if deployment_progressing(d, &status) {
            let message = match rs_name {
                Some(rs) => format!("ReplicaSet \"{rs}\" is progressing."),
                None => format!("Deployment \"{name}\" is progressing."),
            };
            let mut condition = new_condition(PROGRESSING, "True", RS_UPDATED, message, now);
            // Progress moves lastUpdateTime even with the same reason.
            if let Some(current) = current_progressing.as_ref() {
                if current.status == "True" {
                    condition.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, condition);
        } else if deployment_timed_out(d, &status, now) {
            let message = match rs_name {
                Some(rs) => format!("ReplicaSet \"{rs}\" has timed out progressing."),
                None => format!("Deployment \"{name}\" has timed out progressing."),
            };
            set_condition(
                &mut status,
                new_condition(PROGRESSING, "False", TIMED_OUT, message, now),
            );
        }
    }
    match replica_failure(all, new_rs) {
        Some(failure) => set_condition(&mut status, failure),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    status
}

/// The first ReplicaFailure condition of the new ReplicaSet, else of any.
fn replica_failure(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Option<DeploymentCondition> {
    let failure_of = |rs: &ReplicaSet| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
    };
    new_rs
        .and_then(failure_of)
        .or_else(|| all.iter().find_map(|rs| failure_of(rs)))
}

/// When to look at a rollout again to notice it exceeded its deadline
/// (upstream's `requeueStuckDeployment`); None when there is nothing to
/// watch for.
pub(crate) fn stuck_requeue(
    d: &Deployment,
    status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Duration> {
    let current = d.status.clone().unwrap_or_default();
    let condition = get_condition(&current, PROGRESSING)?;
    if !has_progress_deadline(d)
        || deployment_complete(d, status)
        || condition.reason.as_deref() == Some(TIMED_OUT)
    {
        return None;
    }
    let updated = condition.last_update_time.as_ref()?.0;
    let after =
        Duration::try_from((updated + deadline(d)).duration_since(now)).unwrap_or(Duration::ZERO);
    if after < Duration::from_secs(1) {
        return Some(Duration::from_millis(100));
    }
    Some(after + Duration::from_secs(1))
}

/// The Progressing condition pausing or resuming sets, if it must change
/// (upstream's `checkPausedConditions`).
pub(crate) fn paused_condition(d: &Deployment, now: Timestamp) -> Option<DeploymentCondition> {
    if !has_progress_deadline(d) {
        return None;
    }
    let current = d.status.clone().unwrap_or_default();
    let condition = get_condition(&current, PROGRESSING);
    let reason = condition.and_then(|c| c.reason.as_deref());
    if reason == Some(TIMED_OUT) {
        return None;
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    match (paused, reason == Some(PAUSED)) {
        (true, false) => Some(new_condition(
            PROGRESSING,
            "Unknown",
            PAUSED,
            "Deployment is paused".into(),
            now,
        )),
        (false, true) => Some(new_condition(
            PROGRESSING,
            "Unknown",
            RESUMED,
            "Deployment is resumed".into(),
            now,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::replicas::tests::{deployment, rs};

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn named(mut d: Deployment) -> Deployment {
        d.metadata.name = Some("web".into());
        d.metadata.generation = Some(2);
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(600);
        d
    }

    #[test]
    fn counts_and_availability() {
        let d = named(deployment(3, "25%", "25%"));
        let old = rs("web-old", 0, 1, 1);
        let new = rs("web-new", 10, 3, 2);
        let status = calculate_status(&[&old, &new], Some(&new), &d, now());
        assert_eq!(status.replicas, Some(4));
        assert_eq!(status.updated_replicas, Some(3));
        assert_eq!(status.available_replicas, Some(3));
        assert_eq!(status.unavailable_replicas, Some(1));
        assert_eq!(status.observed_generation, Some(2));
        let available = get_condition(&status, AVAILABLE).unwrap();
        assert_eq!(available.status, "True");
        assert_eq!(
            available.reason.as_deref(),
            Some(MINIMUM_REPLICAS_AVAILABLE)
        );
        assert_eq!(
            available.message.as_deref(),
            Some("Deployment has minimum availability.")
        );
        let none = rs("web-new", 10, 3, 0);
        let status = calculate_status(&[&none], Some(&none), &d, now());
        assert_eq!(
            get_condition(&status, AVAILABLE).unwrap().reason.as_deref(),
            Some(MINIMUM_REPLICAS_UNAVAILABLE)
        );
        assert_eq!(status.available_replicas, None);
    }

    #[test]
    fn a_rollout_progresses_then_completes() {
        let mut d = named(deployment(2, "25%", "25%"));
        let new = rs("web-new", 10, 2, 0);
        let mut old_new = new.clone();
        old_new.status.as_mut().unwrap().replicas = 1;
        d.status = Some(calculate_status(&[&old_new], Some(&old_new), &d, now()));
        let status = rollout_status(&d, &[&new], Some(&new), now());
        let progressing = get_condition(&status, PROGRESSING).unwrap();
        assert_eq!(progressing.reason.as_deref(), Some(RS_UPDATED));
        assert_eq!(
            progressing.message.as_deref(),
            Some("ReplicaSet \"web-new\" is progressing.")
        );
        d.status = Some(status);
        let done = rs("web-new", 10, 2, 2);
        let status = rollout_status(&d, &[&done], Some(&done), now());
        let progressing = get_condition(&status, PROGRESSING).unwrap();
        assert_eq!(progressing.reason.as_deref(), Some(NEW_RS_AVAILABLE));
        assert_eq!(
            progressing.message.as_deref(),
            Some("ReplicaSet \"web-new\" has successfully progressed.")
        );
        // A complete rollout is not watched for its deadline.
        assert_eq!(stuck_requeue(&d, &status, now()), None);
        // One still moving is looked at again just after the deadline.
        let moving = rollout_status(&d, &[&new], Some(&new), now());
        assert_eq!(
            stuck_requeue(&d, &moving, now()),
            Some(Duration::from_secs(601))
        );
    }

    #[test]
    fn no_progress_past_the_deadline_times_out() {
        let mut d = named(deployment(2, "25%", "25%"));
        let new = rs("web-new", 10, 2, 0);
        let mut status = calculate_status(&[&new], Some(&new), &d, now());
        set_condition(
            &mut status,
            new_condition(
                PROGRESSING,
                "True",
                RS_UPDATED,
                "x".into(),
                now() - SignedDuration::from_secs(601),
            ),
        );
        d.status = Some(status.clone());
        assert_eq!(
            stuck_requeue(&d, &status, now()),
            Some(Duration::from_millis(100))
        );
        let status = rollout_status(&d, &[&new], Some(&new), now());
        let progressing = get_condition(&status, PROGRESSING).unwrap();
        assert_eq!(progressing.status, "False");
        assert_eq!(progressing.reason.as_deref(), Some(TIMED_OUT));
        assert_eq!(
            progressing.message.as_deref(),
            Some("ReplicaSet \"web-new\" has timed out progressing.")
        );
    }

    #[test]
    fn the_same_reason_keeps_the_condition_as_it_was() {
        let mut status = DeploymentStatus::default();
        let earlier = now() - SignedDuration::from_secs(60);
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "True",
                MINIMUM_REPLICAS_AVAILABLE,
                "a".into(),
                earlier,
            ),
        );
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "True",
                MINIMUM_REPLICAS_AVAILABLE,
                "b".into(),
                now(),
            ),
        );
        let c = get_condition(&status, AVAILABLE).unwrap();
        assert_eq!(c.message.as_deref(), Some("a"));
        set_condition(
            &mut status,
            new_condition(AVAILABLE, "True", "Other", "c".into(), now()),
        );
        let c = get_condition(&status, AVAILABLE).unwrap();
        assert_eq!(c.last_transition_time, Some(Time(earlier)));
        assert_eq!(c.last_update_time, Some(Time(now())));
    }

    #[test]
    fn pausing_and_resuming() {
        let mut d = named(deployment(2, "25%", "25%"));
        d.spec.as_mut().unwrap().paused = Some(true);
        let paused = paused_condition(&d, now()).unwrap();
        assert_eq!(
            (paused.status.as_str(), paused.reason.as_deref()),
            ("Unknown", Some(PAUSED))
        );
        assert_eq!(paused.message.as_deref(), Some("Deployment is paused"));
        let mut status = DeploymentStatus::default();
        set_condition(&mut status, paused);
        d.status = Some(status);
        assert!(paused_condition(&d, now()).is_none());
        d.spec.as_mut().unwrap().paused = Some(false);
        let resumed = paused_condition(&d, now()).unwrap();
        assert_eq!(resumed.reason.as_deref(), Some(RESUMED));
        assert_eq!(resumed.message.as_deref(), Some("Deployment is resumed"));
    }

    #[test]
    fn replica_failures_come_up_from_the_new_replicaset_first() {
        use k8s_openapi::api::apps::v1::ReplicaSetCondition;
        let d = named(deployment(2, "25%", "25%"));
        let failing = |name: &str, message: &str| {
            let mut r = rs(name, 0, 2, 0);
            r.status.as_mut().unwrap().conditions = Some(vec![ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some("FailedCreate".into()),
                message: Some(message.into()),
                last_transition_time: Some(Time(now())),
            }]);
            r
        };
        let old = failing("old", "old failed");
        let new = failing("new", "new failed");
        let status = rollout_status(&d, &[&old, &new], Some(&new), now());
        assert_eq!(
            get_condition(&status, REPLICA_FAILURE)
                .unwrap()
                .message
                .as_deref(),
            Some("new failed")
        );
        let healthy = rs("new", 1, 2, 0);
        let status = rollout_status(&d, &[&old, &healthy], Some(&healthy), now());
        assert_eq!(
            get_condition(&status, REPLICA_FAILURE)
                .unwrap()
                .message
                .as_deref(),
            Some("old failed")
        );
    }
}
