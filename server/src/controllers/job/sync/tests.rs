//! `sync_job` against a recording fake of the API.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::*;

#[derive(Default)]
struct Fake {
    created: Mutex<Vec<Pod>>,
    deleted: Mutex<Vec<String>>,
    unfinalized: Mutex<Vec<String>>,
    statuses: Mutex<Vec<Job>>,
    events: Mutex<Vec<(bool, String, String)>>,
    next: AtomicUsize,
}

impl Fake {
    fn last_status(&self) -> JobStatus {
        let statuses = self.statuses.lock().unwrap();
        statuses.last().unwrap().status.clone().unwrap()
    }

    fn reasons(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, reason, _)| reason.clone())
            .collect()
    }
}

impl JobClient for Fake {
    async fn create_pod(&self, pod: &Pod) -> Result<Pod, kube::Error> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let mut pod = pod.clone();
        let prefix = pod.metadata.generate_name.clone().unwrap_or_default();
        pod.metadata.name = Some(format!("{prefix}{n}"));
        pod.metadata.uid = Some(format!("pod-uid-{n}"));
        self.created.lock().unwrap().push(pod.clone());
        Ok(pod)
    }

    async fn delete_pod(&self, _namespace: &str, name: &str) -> Result<(), kube::Error> {
        self.deleted.lock().unwrap().push(name.to_owned());
        Ok(())
    }

    async fn remove_tracking_finalizer(
        &self,
        _namespace: &str,
        name: &str,
    ) -> Result<(), kube::Error> {
        self.unfinalized.lock().unwrap().push(name.to_owned());
        Ok(())
    }

    async fn update_status(&self, job: &Job) -> Result<Job, kube::Error> {
        self.statuses.lock().unwrap().push(job.clone());
        Ok(job.clone())
    }

    async fn pod_exists(&self, _namespace: &str, name: &str) -> Result<bool, kube::Error> {
        let created = self.created.lock().unwrap();
        Ok(created
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(name)))
    }

    async fn event(&self, _job: &Job, normal: bool, reason: &str, note: String) {
        self.events
            .lock()
            .unwrap()
            .push((normal, reason.to_owned(), note));
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

fn job(spec: JobSpec) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some("pi".into()),
            namespace: Some("default".into()),
            uid: Some("job-uid".into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "c".into(),
                        image: Some("busybox".into()),
                        ..Default::default()
                    }],
                    restart_policy: Some("Never".into()),
                    ..Default::default()
                }),
            },
            ..spec
        }),
        status: None,
    }
}

fn pod(name: &str, phase: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("{name}-uid")),
            creation_timestamp: Some(Time(now())),
            finalizers: Some(vec![pods::TRACKING_FINALIZER.into()]),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: "pi".into(),
                uid: "job-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

fn condition_types(status: &JobStatus) -> Vec<String> {
    status
        .conditions
        .iter()
        .flatten()
        .map(|c| c.type_.clone())
        .collect()
}

#[tokio::test]
async fn a_new_job_makes_pods_up_to_parallelism_and_starts() {
    let state = JobSync::new(Fake::default());
    let job = job(JobSpec {
        parallelism: Some(2),
        completions: Some(3),
        ..Default::default()
    });
    let requeue = sync_job(&state, &job, &[], now()).await.unwrap();
    assert_eq!(requeue, None);
    let created = state.client.created.lock().unwrap().clone();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].metadata.generate_name.as_deref(), Some("pi-"));
    assert!(pods::has_tracking_finalizer(&created[0]));
    assert_eq!(
        state.client.reasons(),
        ["SuccessfulCreate", "SuccessfulCreate"]
    );
    assert_eq!(
        state.client.events.lock().unwrap()[0].2,
        "Created pod: pi-0"
    );
    let status = state.client.last_status();
    assert_eq!(status.active, Some(2));
    assert_eq!(status.ready, Some(0));
    assert_eq!(status.start_time, Some(Time(now())));
    assert_eq!(
        status.uncounted_terminated_pods,
        Some(UncountedTerminatedPods::default())
    );
    // Until the cache shows the new pods, the Job makes no more.
    sync_job(&state, &job, &[], now()).await.unwrap();
    assert_eq!(state.client.created.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_succeeded_pod_is_counted_through_uncounted_pods_then_the_job_completes() {
    let state = JobSync::new(Fake::default());
    let job = job(JobSpec {
        completions: Some(1),
        ..Default::default()
    });
    let done = pod("pi-a", "Succeeded");
    sync_job(&state, &job, &[&done], now()).await.unwrap();
    let statuses = state.client.statuses.lock().unwrap().clone();
    assert_eq!(statuses.len(), 2, "flush, then finish");
    let first = statuses[0].status.clone().unwrap();
    assert_eq!(
        first.uncounted_terminated_pods.clone().unwrap().succeeded,
        Some(vec!["pi-a-uid".to_owned()])
    );
    assert_eq!(condition_types(&first), ["SuccessCriteriaMet"]);
    let last = statuses[1].status.clone().unwrap();
    assert_eq!(last.succeeded, Some(1));
    assert_eq!(
        last.uncounted_terminated_pods,
        Some(UncountedTerminatedPods::default())
    );
    assert_eq!(condition_types(&last), ["SuccessCriteriaMet", "Complete"]);
    assert_eq!(last.completion_time, Some(Time(now())));
    let complete = &last.conditions.unwrap()[1];
    assert_eq!(complete.reason.as_deref(), Some("CompletionsReached"));
    assert_eq!(*state.client.unfinalized.lock().unwrap(), ["pi-a"]);
    assert_eq!(state.client.reasons(), ["Completed"]);
    assert_eq!(state.client.events.lock().unwrap()[0].2, "Job completed");
}

#[tokio::test]
async fn failures_past_the_backoff_limit_fail_the_job() {
    let state = JobSync::new(Fake::default());
    let job = job(JobSpec {
        backoff_limit: Some(0),
        ..Default::default()
    });
    let failed = pod("pi-a", "Failed");
    sync_job(&state, &job, &[&failed], now()).await.unwrap();
    let status = state.client.last_status();
    assert_eq!(status.failed, Some(1));
    assert_eq!(condition_types(&status), ["FailureTarget", "Failed"]);
    let failed_condition = &status.conditions.unwrap()[1];
    assert_eq!(
        failed_condition.reason.as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(
        failed_condition.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    assert_eq!(status.completion_time, None);
    assert_eq!(state.client.reasons(), ["BackoffLimitExceeded"]);
    assert!(state.client.created.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failure_delays_the_replacement_by_the_backoff() {
    let state = JobSync::new(Fake::default());
    let job = job(JobSpec {
        backoff_limit: Some(6),
        ..Default::default()
    });
    let failed = pod("pi-a", "Failed");
    let requeue = sync_job(&state, &job, &[&failed], now()).await.unwrap();
    assert_eq!(requeue, Some(Duration::from_secs(10)));
    assert!(state.client.created.lock().unwrap().is_empty());
    assert_eq!(state.client.last_status().failed, Some(1));
    // Ten seconds later the pod (now counted, finalizer gone) is replaced.
    let mut counted = state
        .client
        .statuses
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    counted.metadata.uid = Some("job-uid".into());
    let mut gone = failed.clone();
    gone.metadata.finalizers = None;
    let later = now() + k8s_openapi::jiff::SignedDuration::from_secs(10);
    sync_job(&state, &counted, &[&gone], later).await.unwrap();
    assert_eq!(state.client.created.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn indexed_jobs_make_one_pod_per_pending_index_and_record_completed_indexes() {
    let state = JobSync::new(Fake::default());
    let job = job(JobSpec {
        completions: Some(3),
        parallelism: Some(3),
        completion_mode: Some("Indexed".into()),
        ..Default::default()
    });
    let mut done = pod("pi-1-x", "Succeeded");
    done.metadata.annotations =
        Some([(pods::COMPLETION_INDEX_ANNOTATION.to_owned(), "1".to_owned())].into());
    sync_job(&state, &job, &[&done], now()).await.unwrap();
    let created: Vec<_> = state
        .client
        .created
        .lock()
        .unwrap()
        .iter()
        .map(|p| pods::completion_index(p).unwrap())
        .collect();
    assert_eq!(created, [0, 2]);
    let status = state.client.last_status();
    assert_eq!(status.completed_indexes.as_deref(), Some("1"));
    assert_eq!(status.succeeded, Some(1));
    assert_eq!(status.active, Some(2));
}

#[tokio::test]
async fn suspending_deletes_active_pods_and_says_so() {
    let state = JobSync::new(Fake::default());
    let job = job(JobSpec {
        suspend: Some(true),
        ..Default::default()
    });
    let running = pod("pi-a", "Running");
    sync_job(&state, &job, &[&running], now()).await.unwrap();
    assert_eq!(*state.client.deleted.lock().unwrap(), ["pi-a"]);
    let status = state.client.last_status();
    assert_eq!(condition_types(&status), ["Suspended"]);
    assert_eq!(status.active, None);
    assert_eq!(status.terminating, Some(1));
    assert_eq!(status.start_time, None);
    assert_eq!(state.client.reasons(), ["SuccessfulDelete", "Suspended"]);
}

#[tokio::test]
async fn a_job_past_its_deadline_fails_after_its_pods_go() {
    let state = JobSync::new(Fake::default());
    let mut job = job(JobSpec {
        active_deadline_seconds: Some(5),
        ..Default::default()
    });
    job.status = Some(JobStatus {
        start_time: Some(Time(now())),
        ..Default::default()
    });
    let running = pod("pi-a", "Running");
    let later = now() + k8s_openapi::jiff::SignedDuration::from_secs(6);
    sync_job(&state, &job, &[&running], later).await.unwrap();
    assert_eq!(*state.client.deleted.lock().unwrap(), ["pi-a"]);
    let status = state.client.last_status();
    // The pod is still terminating: only the interim condition so far.
    assert_eq!(condition_types(&status), ["FailureTarget"]);
    assert_eq!(
        status.conditions.unwrap()[0].reason.as_deref(),
        Some("DeadlineExceeded")
    );
    let requeue = sync_job(&state, &job, &[&running], now()).await.unwrap();
    assert_eq!(requeue, Some(Duration::from_secs(5)));
}
