//! A ReplicaSet's status from the pods it owns, as upstream's
//! `calculateStatus`: replicas, fullyLabeledReplicas, readyReplicas,
//! availableReplicas (ready for minReadySeconds) and the ReplicaFailure
//! condition while creating or deleting pods fails.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::controllers::common::pod_is_ready;

/// The condition type a failing create or delete sets.
pub(crate) const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Whether `pod` has been ready for at least `min_ready_seconds` at `now`
/// (upstream's `IsPodAvailable`).
pub(crate) fn pod_is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !pod_is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref());
    since.is_some_and(|since| {
        since.0 + SignedDuration::from_secs(i64::from(min_ready_seconds)) < now
    })
}

/// The status of `rs` owning `pods` (its active pods) after a sync whose
/// create or delete failed with `manage_error` (the API's message).
pub(crate) fn calculate_status(
    rs: &ReplicaSet,
    pods: &[&Pod],
    manage_error: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let empty = BTreeMap::new();
    let mut status = rs.status.clone().unwrap_or_default();
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in pods {
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            fully_labeled += 1;
        }
        if pod_is_ready(pod) {
            ready += 1;
            if pod_is_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let failing = status
        .conditions
        .as_ref()
        .is_some_and(|c| c.iter().any(|c| c.type_ == REPLICA_FAILURE));
    match manage_error {
        Some(message) if !failing => {
            let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
            let reason = match count(pods.len()).cmp(&desired) {
                std::cmp::Ordering::Less => "FailedCreate",
                std::cmp::Ordering::Greater => "FailedDelete",
                std::cmp::Ordering::Equal => "",
            };
            let condition = ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_transition_time: Some(Time(now)),
            };
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(condition);
        }
        None if failing => {
            if let Some(conditions) = status.conditions.as_mut() {
                conditions.retain(|c| c.type_ != REPLICA_FAILURE);
            }
        }
        _ => {}
    }
    if status.conditions.as_ref().is_some_and(Vec::is_empty) {
        status.conditions = None;
    }
    status.replicas = count(pods.len());
    status.fully_labeled_replicas = Some(fully_labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status
}

/// Whether writing `new` would change nothing (upstream skips the update
/// when the counts and conditions are the same and the generation was
/// already observed).
pub(crate) fn status_is_current(rs: &ReplicaSet, new: &ReplicaSetStatus) -> bool {
    let Some(old) = rs.status.as_ref() else {
        return false;
    };
    let zero = |v: Option<i32>| v.unwrap_or(0);
    old.replicas == new.replicas
        && zero(old.fully_labeled_replicas) == zero(new.fully_labeled_replicas)
        && zero(old.ready_replicas) == zero(new.ready_replicas)
        && zero(old.available_replicas) == zero(new.available_replicas)
        && rs.metadata.generation.unwrap_or(0) == old.observed_generation.unwrap_or(0)
        && old.conditions.as_deref().unwrap_or(&[]) == new.conditions.as_deref().unwrap_or(&[])
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: Some(min_ready),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(
                            [("app".into(), "web".into()), ("tier".into(), "fe".into())].into(),
                        ),
                        ..Default::default()
                    }),
                    spec: None,
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(labels: &[(&str, &str)], ready_secs_ago: Option<i64>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        pod.status = Some(PodStatus {
            conditions: ready_secs_ago.map(|ago| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(now() - SignedDuration::from_secs(ago))),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
        pod
    }

    #[test]
    fn counts_labeled_ready_and_available_pods() {
        let full = [("app", "web"), ("tier", "fe")];
        let pods = [
            pod(&full, Some(60)),
            pod(&full, Some(2)),
            pod(&[("app", "web")], None),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let status = calculate_status(&rs(3, 10), &refs, None, now());
        assert_eq!(status.replicas, 3);
        assert_eq!(status.fully_labeled_replicas, Some(2));
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(1));
        assert_eq!(status.conditions, None);
    }

    #[test]
    fn a_failed_create_sets_replica_failure_until_a_sync_succeeds() {
        let rs_failing = {
            let mut rs = rs(2, 0);
            rs.status = Some(calculate_status(
                &rs,
                &[],
                Some("pods \"web-\" is forbidden: exceeded quota"),
                now(),
            ));
            rs
        };
        let conditions = rs_failing
            .status
            .as_ref()
            .unwrap()
            .conditions
            .clone()
            .unwrap();
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason.as_deref(), Some("FailedCreate"));
        assert_eq!(
            conditions[0].message.as_deref(),
            Some("pods \"web-\" is forbidden: exceeded quota")
        );
        // A second failure keeps the first condition as it was.
        let again = calculate_status(&rs_failing, &[], Some("other"), now());
        assert_eq!(again.conditions.unwrap()[0].message, conditions[0].message);
        let healed = calculate_status(&rs_failing, &[], None, now());
        assert_eq!(healed.conditions, None);
    }

    #[test]
    fn status_is_current_needs_the_generation_observed() {
        let mut rs = rs(0, 0);
        let mut status = calculate_status(&rs, &[], None, now());
        rs.status = Some(status.clone());
        assert!(!status_is_current(&rs, &status));
        status.observed_generation = Some(3);
        rs.status = Some(status.clone());
        assert!(status_is_current(&rs, &status));
    }
}
