//! The annotations a Deployment keeps on its ReplicaSets (upstream's
//! `deploymentutil`): the revision, the revisions a rolled-back
//! ReplicaSet had before, the replica counts it was last scaled for, and
//! the Deployment's own annotations copied over.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

/// A ReplicaSet's (and its Deployment's) revision.
pub(crate) const REVISION: &str = "deployment.kubernetes.io/revision";
/// The earlier revisions of a ReplicaSet a rollback brought back.
pub(crate) const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when it last scaled the ReplicaSet.
pub(crate) const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` of the Deployment when it last scaled the ReplicaSet.
pub(crate) const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The annotation of the deprecated rollback API.
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// kubectl's record of the applied configuration.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The longest `revision-history` kept (upstream's `maxRevHistoryLengthInChars`).
pub(crate) const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Annotations of a Deployment that are not copied to its ReplicaSets.
fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

fn annotation<'a>(annotations: Option<&'a BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    annotations?.get(key).map(String::as_str)
}

/// The revision of `rs` (0 without one), or None when it is not a number.
pub(crate) fn revision(rs: &ReplicaSet) -> Option<i64> {
    match annotation(rs.metadata.annotations.as_ref(), REVISION) {
        None => Some(0),
        Some(value) => value.parse().ok(),
    }
}

/// The highest revision among `replicasets`.
pub(crate) fn max_revision<'a>(replicasets: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    replicasets
        .into_iter()
        .filter_map(revision)
        .max()
        .unwrap_or(0)
        .max(0)
}

/// Gives the (new) ReplicaSet `rs` the Deployment's annotations and the
/// revision `new_revision` when it is higher than its own, moving the old
/// revision into the history; a ReplicaSet about to be created also gets
/// the replica annotations. Returns whether anything changed (upstream's
/// `SetNewReplicaSetAnnotations`).
pub(crate) fn set_new_replicaset_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    max_surge: i32,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = annotations.get(REVISION).cloned();
    let old_revision = match old.as_deref() {
        None | Some("") => 0,
        Some(value) => match value.parse::<i64>() {
            Ok(value) => value,
            Err(_) => return false,
        },
    };
    if old_revision < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = annotations
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            if let Some(history) = extend_history(&history, &old, MAX_REVISION_HISTORY_CHARS) {
                annotations.insert(REVISION_HISTORY.into(), history);
            }
        }
    }
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if !exists && set_replicas_annotations(rs, replicas, replicas + max_surge) {
        changed = true;
    }
    changed
}

/// `history` with `revision` appended, dropping the oldest entries to stay
/// within `limit` characters; None when even that cannot fit.
fn extend_history(history: &str, revision: &str, limit: usize) -> Option<String> {
    if history.is_empty() {
        return Some(revision.to_owned());
    }
    let entries: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + revision.len() + 1;
    let mut start = 0;
    while total > limit && start < entries.len() {
        total -= entries[start].len() + 1;
        start += 1;
    }
    if total > limit {
        return None;
    }
    let mut kept: Vec<&str> = entries[start..].to_vec();
    kept.push(revision);
    Some(kept.join(","))
}

/// Copies the Deployment's annotations (but kubectl's and the
/// controller's own) onto `rs`; whether anything changed.
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let Some(source) = d.metadata.annotations.as_ref() else {
        return false;
    };
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in source {
        if skip_copy(key) || target.get(key) == Some(value) {
            continue;
        }
        target.insert(key.clone(), value.clone());
        changed = true;
    }
    changed
}

/// Records on `rs` the Deployment size it was scaled for; whether anything changed.
pub(crate) fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.into(), value);
            changed = true;
        }
    }
    changed
}

/// Whether `rs` lacks the replica annotations for this Deployment size.
pub(crate) fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.as_ref();
    annotation(annotations, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(annotations, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// The `desired-replicas` annotation of `rs`.
pub(crate) fn desired_replicas(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs.metadata.annotations.as_ref(), DESIRED_REPLICAS)?
        .parse()
        .ok()
}

/// The `max-replicas` annotation of `rs`.
pub(crate) fn max_replicas(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs.metadata.annotations.as_ref(), MAX_REPLICAS)?
        .parse()
        .ok()
}

/// Sets the Deployment's revision annotation; whether it changed.
pub(crate) fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION.into(), revision.to_owned());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;

    fn deployment(annotations: &[(&str, &str)]) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        d.spec = Some(DeploymentSpec {
            replicas: Some(3),
            ..Default::default()
        });
        d
    }

    fn rs(revision: Option<&str>) -> ReplicaSet {
        let mut rs = ReplicaSet::default();
        if let Some(revision) = revision {
            rs.metadata.annotations = Some([(REVISION.to_owned(), revision.to_owned())].into());
        }
        rs
    }

    #[test]
    fn a_new_replicaset_gets_revision_annotations_and_sizes() {
        let d = deployment(&[
            ("kubernetes.io/change-cause", "kubectl set image"),
            (LAST_APPLIED, "{}"),
            (REVISION, "4"),
        ]);
        let mut new = rs(None);
        assert!(set_new_replicaset_annotations(&d, &mut new, 5, false, 1));
        let a = new.metadata.annotations.unwrap();
        assert_eq!(a[REVISION], "5");
        assert_eq!(a["kubernetes.io/change-cause"], "kubectl set image");
        assert_eq!(a[DESIRED_REPLICAS], "3");
        assert_eq!(a[MAX_REPLICAS], "4");
        assert!(!a.contains_key(LAST_APPLIED));
        assert!(!a.contains_key(REVISION_HISTORY));
    }

    #[test]
    fn a_rolled_back_replicaset_keeps_its_old_revisions() {
        let d = deployment(&[]);
        let mut old = rs(Some("1"));
        assert!(set_new_replicaset_annotations(&d, &mut old, 3, true, 1));
        assert!(set_new_replicaset_annotations(&d, &mut old, 5, true, 1));
        let a = old.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[REVISION], "5");
        assert_eq!(a[REVISION_HISTORY], "1,3");
        assert!(!a.contains_key(DESIRED_REPLICAS));
        // Nothing to do a second time.
        assert!(!set_new_replicaset_annotations(&d, &mut old, 5, true, 1));
        // A lower revision never replaces a higher one.
        assert!(!set_new_replicaset_annotations(&d, &mut old, 2, true, 1));
    }

    #[test]
    fn history_is_trimmed_from_the_oldest() {
        assert_eq!(extend_history("", "1", 10).as_deref(), Some("1"));
        assert_eq!(extend_history("1,2", "3", 10).as_deref(), Some("1,2,3"));
        assert_eq!(
            extend_history("10,11,12", "13", 8).as_deref(),
            Some("11,12,13")
        );
        assert_eq!(
            extend_history("10,11,12", "13", 6).as_deref(),
            Some("12,13")
        );
        assert_eq!(extend_history("1", "123456789", 5), None);
    }

    #[test]
    fn revisions_parse_and_compare() {
        let sets = [rs(Some("2")), rs(Some("10")), rs(None), rs(Some("x"))];
        assert_eq!(max_revision(&sets), 10);
        assert_eq!(revision(&sets[2]), Some(0));
        assert_eq!(revision(&sets[3]), None);
    }

    #[test]
    fn replica_annotations_round_trip() {
        let mut r = rs(None);
        assert!(replicas_annotations_need_update(&r, 2, 3));
        assert!(set_replicas_annotations(&mut r, 2, 3));
        assert!(!replicas_annotations_need_update(&r, 2, 3));
        assert_eq!((desired_replicas(&r), max_replicas(&r)), (Some(2), Some(3)));
        assert!(!set_replicas_annotations(&mut r, 2, 3));
    }

    #[test]
    fn deployment_revision_is_set_once() {
        let mut d = deployment(&[]);
        assert!(set_deployment_revision(&mut d, "2"));
        assert!(!set_deployment_revision(&mut d, "2"));
    }
}
