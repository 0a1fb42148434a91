//! Replica arithmetic of a rollout (upstream's `deploymentutil`):
//! maxSurge and maxUnavailable resolved against `spec.replicas` (percent
//! rounded up for surge, down for unavailability, never both zero), the
//! new ReplicaSet's next size, sums over ReplicaSets, their orderings and
//! the proportional share of a scaling.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::revision;

/// `spec.replicas` of the Deployment.
pub(crate) fn deployment_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet.
pub(crate) fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `status.replicas` of a ReplicaSet.
pub(crate) fn actual_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

/// `status.readyReplicas` of a ReplicaSet.
pub(crate) fn ready_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// `status.availableReplicas` of a ReplicaSet.
pub(crate) fn available_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// Sum of `spec.replicas`.
pub(crate) fn total_spec<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sets.into_iter().map(spec_replicas).sum()
}

/// Sum of `status.replicas`.
pub(crate) fn total_actual<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sets.into_iter().map(actual_replicas).sum()
}

/// Sum of `status.readyReplicas`.
pub(crate) fn total_ready<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sets.into_iter().map(ready_replicas).sum()
}

/// Sum of `status.availableReplicas`.
pub(crate) fn total_available<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sets.into_iter().map(available_replicas).sum()
}

/// Whether the Deployment rolls (the default) rather than recreates.
pub(crate) fn is_rolling_update(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// An int, or a percent of `total` rounded up or down (apimachinery's
/// `GetScaledValueFromIntOrPercent`).
pub(crate) fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let Some(percent) = s.strip_suffix('%') else {
                return Err(
                    "invalid value for IntOrString: invalid type: string is not a percentage"
                        .to_owned(),
                );
            };
            let percent: i64 = percent
                .parse()
                .map_err(|_| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let product = percent * i64::from(total);
            let scaled = if round_up {
                product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(scaled)
                .map_err(|_| format!("invalid value for IntOrString: {s:?} is too large"))
        }
    }
}

/// maxSurge and maxUnavailable for `desired` replicas; when both come to
/// zero, one pod may be unavailable (upstream's `ResolveFenceposts`).
pub(crate) fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    // Validation refuses values that do not resolve.
    resolve_fenceposts(
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        deployment_replicas(d),
    )
    .unwrap_or((0, 0))
}

/// Pods the rollout may run above `spec.replicas` (0 for Recreate).
pub(crate) fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    fenceposts(d).0
}

/// Pods the rollout may have unavailable (0 for Recreate), never more than
/// `spec.replicas`.
pub(crate) fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = deployment_replicas(d);
    if !is_rolling_update(d) || replicas == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas)
}

/// The size the new ReplicaSet may grow to now (upstream's
/// `NewRSNewReplicas`): for a rolling update as far as maxSurge allows
/// over all ReplicaSets, never past `spec.replicas`; for Recreate all at once.
pub(crate) fn new_rs_new_replicas(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: &ReplicaSet,
) -> Result<i32, String> {
    let replicas = deployment_replicas(d);
    if !is_rolling_update(d) {
        return Ok(replicas);
    }
    let surge_value = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_surge.clone())
        .unwrap_or(IntOrString::Int(0));
    let surge = scaled_value(&surge_value, replicas, true)?;
    let current = total_spec(all.iter().copied());
    let max_total = replicas + surge;
    if current >= max_total {
        return Ok(spec_replicas(new_rs));
    }
    let scale_up = (max_total - current).min(replicas - spec_replicas(new_rs));
    Ok(spec_replicas(new_rs) + scale_up)
}

/// Older first; equal times by name (upstream's `ReplicaSetsByCreationTimestamp`).
pub(crate) fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let time = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    time(a)
        .cmp(&time(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Larger first; equal sizes newer first (scaling up).
pub(crate) fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    spec_replicas(b)
        .cmp(&spec_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// Larger first; equal sizes older first (scaling down).
pub(crate) fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    spec_replicas(b)
        .cmp(&spec_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// Lower revision first; equal revisions older first (upstream's `ReplicaSetsByRevision`).
pub(crate) fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let rev = |rs: &ReplicaSet| revision::revision(rs).unwrap_or(0);
    rev(a).cmp(&rev(b)).then_with(|| by_creation(a, b))
}

/// Whether the ReplicaSet has replicas to run.
pub(crate) fn is_active(rs: &ReplicaSet) -> bool {
    spec_replicas(rs) > 0
}

/// The one ReplicaSet to scale with the Deployment when at most one is
/// active: the active one, or the newest when none is (upstream's
/// `FindActiveOrLatest`); None when several are active.
pub(crate) fn find_active_or_latest<'a>(
    new_rs: Option<&'a ReplicaSet>,
    old: &[&'a ReplicaSet],
) -> Option<&'a ReplicaSet> {
    if new_rs.is_none() && old.is_empty() {
        return None;
    }
    let mut old_sorted: Vec<&ReplicaSet> = old.to_vec();
    old_sorted.sort_by(|a, b| by_creation(b, a));
    let active: Vec<&ReplicaSet> = old_sorted
        .iter()
        .copied()
        .chain(new_rs)
        .filter(|rs| is_active(rs))
        .collect();
    match active.len() {
        0 => new_rs.or_else(|| old_sorted.first().copied()),
        1 => Some(active[0]),
        _ => None,
    }
}

/// Whether the new ReplicaSet has all the Deployment's replicas, scaled
/// for this size and available (upstream's `IsSaturated`).
pub(crate) fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else {
        return false;
    };
    let replicas = deployment_replicas(d);
    revision::desired_replicas(rs) == Some(replicas)
        && spec_replicas(rs) == replicas
        && available_replicas(rs) == replicas
}

/// How many of `to_add` (negative: to remove) replicas go to `rs`, given
/// `added` so far (upstream's `GetReplicaSetProportion`).
pub(crate) fn replicaset_proportion(
    d: &Deployment,
    rs: &ReplicaSet,
    to_add: i32,
    added: i32,
) -> i32 {
    if spec_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replicaset_fraction(d, rs);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// The change of `rs`'s size that keeps its share of the Deployment's
/// maximum size (`spec.replicas + maxSurge`) as it was when last scaled.
fn replicaset_fraction(d: &Deployment, rs: &ReplicaSet) -> i32 {
    let replicas = deployment_replicas(d);
    if replicas == 0 {
        return -spec_replicas(rs);
    }
    let max_now = replicas + max_surge(d);
    let max_before = match revision::max_replicas(rs) {
        Some(before) if before != 0 => before,
        _ => d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
    };
    if max_before == 0 {
        return 0;
    }
    let size = f64::from(spec_replicas(rs)) * f64::from(max_now) / f64::from(max_before);
    // Round half away from zero, as Go's math.Round; sizes fit in i32.
    #[allow(clippy::cast_possible_truncation)]
    let rounded = size.round() as i32;
    rounded - spec_replicas(rs)
}

/// The sizes a proportional scaling gives the active ReplicaSets `sets`
/// (upstream's `scale` for a rolling Deployment whose replicas changed
/// mid-rollout): the Deployment's maximum size minus what they have now is
/// spread in proportion to their sizes, largest first, leftovers to the
/// first. Returns the sets in scaling order with their new sizes, and
/// whether it is a scale up.
pub(crate) fn proportional_sizes<'a>(
    d: &Deployment,
    sets: &[&'a ReplicaSet],
) -> (Vec<(&'a ReplicaSet, i32)>, Option<bool>) {
    let replicas = deployment_replicas(d);
    let current = total_spec(sets.iter().copied());
    let allowed = if replicas > 0 {
        replicas + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - current;
    let mut ordered: Vec<&ReplicaSet> = sets.to_vec();
    let direction = match to_add.cmp(&0) {
        Ordering::Greater => {
            ordered.sort_by(|a, b| by_size_newer(a, b));
            Some(true)
        }
        Ordering::Less => {
            ordered.sort_by(|a, b| by_size_older(a, b));
            Some(false)
        }
        Ordering::Equal => None,
    };
    let mut added = 0;
    let mut sizes: Vec<(&ReplicaSet, i32)> = ordered
        .iter()
        .map(|rs| {
            if to_add == 0 {
                return (*rs, spec_replicas(rs));
            }
            let share = replicaset_proportion(d, rs, to_add, added);
            added += share;
            (*rs, spec_replicas(rs) + share)
        })
        .collect();
    if to_add != 0
        && let Some(first) = sizes.first_mut()
    {
        first.1 = (first.1 + to_add - added).max(0);
    }
    (sizes, direction)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStatus, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn ios(s: &str) -> IntOrString {
        match s.parse() {
            Ok(n) => IntOrString::Int(n),
            Err(_) => IntOrString::String(s.into()),
        }
    }

    pub(crate) fn deployment(replicas: i32, surge: &str, unavailable: &str) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(ios(surge)),
                        max_unavailable: Some(ios(unavailable)),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub(crate) fn rs(name: &str, created: i64, replicas: i32, available: i32) -> ReplicaSet {
        let mut rs = ReplicaSet {
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                available_replicas: Some(available),
                ready_replicas: Some(available),
                ..Default::default()
            }),
            ..Default::default()
        };
        rs.metadata.name = Some(name.into());
        rs.metadata.creation_timestamp = Some(Time(
            Timestamp::from_second(1_700_000_000 + created).unwrap(),
        ));
        rs
    }

    #[test]
    fn percents_round_up_for_surge_and_down_for_unavailable() {
        assert_eq!(scaled_value(&ios("25%"), 10, true), Ok(3));
        assert_eq!(scaled_value(&ios("25%"), 10, false), Ok(2));
        assert_eq!(scaled_value(&ios("25%"), 1, true), Ok(1));
        assert_eq!(scaled_value(&ios("25%"), 1, false), Ok(0));
        assert_eq!(scaled_value(&ios("3"), 10, false), Ok(3));
        assert!(scaled_value(&IntOrString::String("3".into()), 10, false).is_err());
    }

    #[test]
    fn fenceposts_never_both_zero() {
        assert_eq!(
            resolve_fenceposts(Some(&ios("25%")), Some(&ios("25%")), 1),
            Ok((1, 0))
        );
        assert_eq!(
            resolve_fenceposts(Some(&ios("0")), Some(&ios("25%")), 2),
            Ok((0, 1))
        );
        assert_eq!(
            resolve_fenceposts(Some(&ios("0%")), Some(&ios("0%")), 10),
            Ok((0, 1))
        );
        let d = deployment(2, "0", "5");
        assert_eq!(max_unavailable(&d), 2);
        let mut recreate = deployment(3, "1", "1");
        recreate.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
    }

    #[test]
    fn the_new_replicaset_grows_within_max_surge() {
        let d = deployment(4, "1", "1");
        let old = rs("old", 0, 4, 4);
        let new = rs("new", 10, 0, 0);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(1));
        let new = rs("new", 10, 1, 0);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(1));
        let old = rs("old", 0, 2, 2);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(3));
        let old = rs("old", 0, 0, 0);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(4));
    }

    #[test]
    fn active_or_latest() {
        let a = rs("a", 0, 0, 0);
        let b = rs("b", 5, 0, 0);
        let c = rs("c", 9, 2, 2);
        assert_eq!(
            find_active_or_latest(None, &[&a, &b])
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            find_active_or_latest(Some(&c), &[&a, &b])
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("c")
        );
        let d = rs("d", 1, 1, 1);
        assert!(find_active_or_latest(Some(&c), &[&a, &d]).is_none());
        assert!(find_active_or_latest(None, &[]).is_none());
    }

    #[test]
    fn orderings() {
        let a = rs("a", 0, 3, 0);
        let b = rs("b", 5, 3, 0);
        let c = rs("c", 1, 5, 0);
        let mut sets = [&a, &b, &c];
        sets.sort_by(|x, y| by_size_newer(x, y));
        let names: Vec<_> = sets
            .iter()
            .map(|r| r.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["c", "b", "a"]);
        sets.sort_by(|x, y| by_size_older(x, y));
        let names: Vec<_> = sets
            .iter()
            .map(|r| r.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["c", "a", "b"]);
    }

    #[test]
    fn proportional_scaling_keeps_shares() {
        // A rollout of 10 (surge 3) half-way: old 8, new 5; scaled to 20
        // (max 20 + 5 = 25, before 13).
        let mut d = deployment(20, "25%", "25%");
        d.status = Some(DeploymentStatus::default());
        let mut old = rs("old", 0, 8, 8);
        let mut new = rs("new", 10, 5, 0);
        revision::set_replicas_annotations(&mut old, 10, 13);
        revision::set_replicas_annotations(&mut new, 10, 13);
        let (sizes, up) = proportional_sizes(&d, &[&old, &new]);
        assert_eq!(up, Some(true));
        let sizes: Vec<_> = sizes
            .iter()
            .map(|(r, n)| (r.metadata.name.clone().unwrap(), *n))
            .collect();
        // 8*25/13 = 15.4 -> 15, 5*25/13 = 9.6 -> 10: 25 in all.
        assert_eq!(sizes, [("old".to_owned(), 15), ("new".to_owned(), 10)]);
    }

    #[test]
    fn proportional_scaling_down_to_zero_empties_everything() {
        let d = deployment(0, "25%", "25%");
        let old = rs("old", 0, 3, 3);
        let new = rs("new", 10, 2, 0);
        let (sizes, up) = proportional_sizes(&d, &[&old, &new]);
        assert_eq!(up, Some(false));
        assert!(sizes.iter().all(|(_, n)| *n == 0), "{sizes:?}");
    }

    #[test]
    fn saturation_needs_size_annotation_and_availability() {
        let d = deployment(3, "1", "1");
        let mut new = rs("new", 0, 3, 3);
        assert!(!is_saturated(&d, Some(&new)));
        revision::set_replicas_annotations(&mut new, 3, 4);
        assert!(is_saturated(&d, Some(&new)));
        assert!(!is_saturated(&d, None));
    }
}
