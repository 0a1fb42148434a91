//! What the Job controller reads from its pods and how it makes them:
//! the tracking finalizer, completion indexes, failure and finish times,
//! the order in which surplus pods go, and pods from the Job's template.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSpec, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

use crate::controllers::common;

/// The finalizer that keeps a finished pod until its Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The annotation (and label) carrying an Indexed Job pod's index.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable an Indexed Job's containers read their index from.
const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Longest generated-name prefix the apiserver accepts (63 minus the 5 random characters).
const MAX_GENERATED_NAME_LENGTH: usize = 58;

/// Whether the pod still carries the Job tracking finalizer.
pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

/// The pod's phase, "" when unset.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether the pod reached Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Whether the pod is being deleted but has not finished (upstream's
/// `CountTerminatingPods`).
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some() && !is_terminal(pod)
}

/// The pod's completion index, if it carries a valid one.
pub fn completion_index(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX_ANNOTATION)?
        .parse::<i32>()
        .ok()
        .filter(|i| *i >= 0)
}

/// Whether the Job replaces a pod only once it failed (podReplacementPolicy
/// Failed, or a pod failure policy).
pub fn only_replace_failed_pods(job: &Job) -> bool {
    job.spec.as_ref().is_some_and(|spec| {
        spec.pod_replacement_policy.as_deref() == Some("Failed")
            || spec.pod_failure_policy.is_some()
    })
}

/// Whether the Job counts the pod as failed: phase Failed or, unless the
/// Job replaces only failed pods, deleted before it succeeded.
pub fn is_failed(pod: &Pod, job: &Job) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    !only_replace_failed_pods(job)
        && pod.metadata.deletion_timestamp.is_some()
        && phase(pod) != "Succeeded"
}

/// When the pod finished: its last container's end, else when it stopped
/// being ready, else its deletion (less the grace period), else its creation.
pub fn finished_at(pod: &Pod) -> Timestamp {
    let status = pod.status.as_ref();
    let from_containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    if let Some(at) = from_containers {
        return at;
    }
    let ready_false = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "False")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    if let Some(at) = ready_false {
        return at;
    }
    if let Some(deleted) = &pod.metadata.deletion_timestamp {
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return deleted
            .0
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(grace))
            .unwrap_or(deleted.0);
    }
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

fn restarts(pod: &Pod) -> i32 {
    let Some(status) = &pod.status else { return 0 };
    status
        .init_container_statuses
        .iter()
        .chain(status.container_statuses.iter())
        .flatten()
        .map(|c| c.restart_count)
        .sum()
}

/// Upstream's `ActivePods` order: the pod to delete first sorts first
/// (unscheduled, pending, not ready, ready for less time, more restarts,
/// newer).
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let assigned = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase_rank = |p: &Pod| match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| common::pod_is_ready(a).cmp(&common::pod_is_ready(b)))
        .then_with(|| {
            // Ready for less time goes first: a later transition sorts first.
            match (common::pod_ready_since(a), common::pod_ready_since(b)) {
                (Some(x), Some(y)) => y.cmp(&x),
                _ => Ordering::Equal,
            }
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            match (created(a), created(b)) {
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => y.cmp(&x),
                (None, None) => Ordering::Equal,
            }
        })
}

/// Which active pods to delete to go down by at least `at_least`: for an
/// Indexed Job first those with an invalid or repeated index, then by
/// [`deletion_order`].
pub fn for_removal<'a>(
    active: &[&'a Pod],
    at_least: usize,
    indexed_completions: Option<i32>,
) -> Vec<&'a Pod> {
    let mut remove: Vec<&Pod> = Vec::new();
    let mut keep: Vec<&Pod> = Vec::new();
    match indexed_completions {
        Some(completions) => {
            let mut by_index: BTreeMap<i32, Vec<&Pod>> = BTreeMap::new();
            for pod in active {
                match completion_index(pod) {
                    Some(ix) if ix < completions => by_index.entry(ix).or_default().push(pod),
                    _ => remove.push(pod),
                }
            }
            for (_, mut same) in by_index {
                same.sort_by(|a, b| deletion_order(a, b));
                if let Some(best) = same.pop() {
                    keep.push(best);
                }
                remove.extend(same);
            }
        }
        None => keep.extend(active.iter().copied()),
    }
    if remove.len() < at_least {
        keep.sort_by(|a, b| deletion_order(a, b));
        let more = (at_least - remove.len()).min(keep.len());
        remove.extend(keep.into_iter().take(more));
    }
    remove
}

/// The generateName of a Job's pod: `<job>-`, or `<job>-<index>-` for an
/// Indexed Job, shortened to fit.
pub fn generate_name(job_name: &str, index: Option<i32>) -> String {
    match index {
        None => format!("{job_name}-"),
        Some(index) => {
            let suffix = format!("-{index}-");
            let room = MAX_GENERATED_NAME_LENGTH.saturating_sub(suffix.len());
            let prefix: String = job_name.chars().take(room).collect();
            format!("{prefix}{suffix}")
        }
    }
}

/// A new pod for `job` from its template, owned by it, with the tracking
/// finalizer (and, for `index`, the completion index annotation, label,
/// environment variable and hostname).
pub fn from_template(job: &Job, owner: OwnerReference, index: Option<i32>) -> Pod {
    let name = job.metadata.name.clone().unwrap_or_default();
    let template: PodTemplateSpec = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let mut finalizers = template_meta.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.to_owned());
    }
    let mut labels = template_meta.labels.unwrap_or_default();
    let mut annotations = template_meta.annotations.unwrap_or_default();
    let mut spec: PodSpec = template.spec.unwrap_or_default();
    if let Some(index) = index {
        add_index_env(&mut spec);
        annotations.insert(COMPLETION_INDEX_ANNOTATION.to_owned(), index.to_string());
        labels.insert(COMPLETION_INDEX_ANNOTATION.to_owned(), index.to_string());
        spec.hostname = Some(format!("{name}-{index}"));
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name(&name, index)),
            namespace: job.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn add_index_env(spec: &mut PodSpec) {
    let env = EnvVar {
        name: COMPLETION_INDEX_ENV.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: format!("metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"),
            }),
            ..Default::default()
        }),
    };
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for container in containers {
        let vars = container.env.get_or_insert_with(Vec::new);
        if !vars.iter().any(|v| v.name == COMPLETION_INDEX_ENV) {
            vars.push(env.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{Container, PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn deleted_unfinished_pods_count_as_failed_unless_only_failed_pods_are_replaced() {
        let mut job = Job::default();
        let mut deleted = pod("a", "Running");
        deleted.metadata.deletion_timestamp = Some(at(100));
        assert!(is_failed(&deleted, &job));
        assert!(is_terminating(&deleted));
        assert!(!is_failed(&pod("b", "Succeeded"), &job));
        assert!(is_failed(&pod("c", "Failed"), &job));
        job.spec = Some(JobSpec {
            pod_replacement_policy: Some("Failed".into()),
            ..Default::default()
        });
        assert!(!is_failed(&deleted, &job));
    }

    #[test]
    fn finish_time_prefers_containers_then_readiness_then_deletion() {
        let mut p = pod("a", "Failed");
        p.metadata.creation_timestamp = Some(at(10));
        assert_eq!(finished_at(&p).as_second(), 10);
        p.metadata.deletion_timestamp = Some(at(100));
        p.metadata.deletion_grace_period_seconds = Some(30);
        assert_eq!(finished_at(&p).as_second(), 70);
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            last_transition_time: Some(at(50)),
            ..Default::default()
        }]);
        assert_eq!(finished_at(&p).as_second(), 50);
    }

    #[test]
    fn surplus_pods_go_pending_first_and_newest_first() {
        let mut old = pod("old", "Running");
        old.metadata.creation_timestamp = Some(at(1));
        let mut new = pod("new", "Running");
        new.metadata.creation_timestamp = Some(at(2));
        let pending = pod("pending", "Pending");
        let active = [&old, &new, &pending];
        let names: Vec<_> = for_removal(&active, 2, None)
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["pending", "new"]);
    }

    #[test]
    fn indexed_jobs_remove_repeated_and_out_of_range_indexes_first() {
        let with_index = |name: &str, ix: &str| {
            let mut p = pod(name, "Running");
            p.metadata.annotations = Some([(COMPLETION_INDEX_ANNOTATION.into(), ix.into())].into());
            p
        };
        let a = with_index("a", "0");
        let b = with_index("b", "0");
        let c = with_index("c", "7");
        let d = with_index("d", "1");
        let active = [&a, &b, &c, &d];
        let removed = for_removal(&active, 0, Some(3));
        assert_eq!(removed.len(), 2);
        assert!(
            removed
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some("c"))
        );
    }

    #[test]
    fn generate_names_fit_the_name_limit() {
        assert_eq!(generate_name("pi", None), "pi-");
        assert_eq!(generate_name("pi", Some(3)), "pi-3-");
        let long = "x".repeat(70);
        let name = generate_name(&long, Some(12));
        assert_eq!(name.len(), MAX_GENERATED_NAME_LENGTH);
        assert!(name.ends_with("-12-"));
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let job = Job {
            metadata: ObjectMeta {
                name: Some("work".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("job-name".into(), "work".into())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        };
        let owner = OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: "work".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let p = from_template(&job, owner, Some(2));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("work-2-"));
        assert_eq!(completion_index(&p), Some(2));
        assert!(has_tracking_finalizer(&p));
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["job-name"], "work");
        assert_eq!(labels[COMPLETION_INDEX_ANNOTATION], "2");
        let spec = p.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("work-2"));
        let env = spec.containers[0].env.as_ref().unwrap();
        assert_eq!(env[0].name, "JOB_COMPLETION_INDEX");
    }
}
