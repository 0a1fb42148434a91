//! The Job and TTL-after-finished controllers against a real apiserver, as
//! kube-controller-manager 1.32 behaves: pods from the template with the
//! Job's labels and the tracking finalizer, completions and parallelism,
//! the failure back-off and backoffLimit, activeDeadlineSeconds, Indexed
//! completion, suspend, `uncountedTerminatedPods`, the interim conditions,
//! events, `kubectl get jobs`, and TTL clean-up. There is no kubelet: the
//! tests set the pods' phase themselves.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use skiff_server::controllers::{garbage_collector, job, ttl_after_finished};

use crate::support::{Controllers, controllers_cluster, eventually};

const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

controllers_cluster!();

/// The apiserver with the Job, TTL and garbage collection controllers.
async fn cluster() -> Cluster {
    Cluster(
        Controllers::start(|client, stop| {
            tokio::spawn(job::run(client.clone(), stop.clone()));
            tokio::spawn(ttl_after_finished::run(client.clone(), stop.clone()));
            tokio::spawn(garbage_collector::run(client.clone(), stop.clone()));
        })
        .await,
    )
}

impl Cluster {
    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    async fn create_job(&self, name: &str, spec: Value) -> Job {
        let mut spec = spec;
        spec["template"] = json!({
            "spec": {
                "restartPolicy": "Never",
                "containers": [{ "name": "work", "image": "busybox" }],
            }
        });
        let job: Job = serde_json::from_value(json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": { "name": name },
            "spec": spec,
        }))
        .unwrap();
        self.jobs()
            .create(&PostParams::default(), &job)
            .await
            .unwrap()
    }

    async fn job(&self, name: &str) -> Job {
        self.jobs().get(name).await.unwrap()
    }

    /// The Job's pods (by its name label), oldest first.
    async fn job_pods(&self, name: &str) -> Vec<Pod> {
        let params = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}"));
        let mut pods = self.pods().list(&params).await.unwrap().items;
        pods.sort_by_key(|p| (p.metadata.creation_timestamp.clone(), p.name_any()));
        pods
    }

    async fn wait_for_pods(&self, name: &str, count: usize) -> Vec<Pod> {
        eventually(&format!("{count} pods of job {name}"), || async {
            let pods: Vec<Pod> = self
                .job_pods(name)
                .await
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            (pods.len() == count).then_some(pods)
        })
        .await
    }

    async fn set_phase(&self, pod: &str, phase: &str) {
        let mut status = json!({ "phase": phase });
        if phase == "Running" {
            status["conditions"] = json!([{ "type": "Ready", "status": "True" }]);
        }
        self.pods()
            .patch_status(
                pod,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .unwrap();
    }

    async fn wait_for_condition(&self, name: &str, type_: &str) -> Job {
        eventually(&format!("job {name} {type_}"), || async {
            let job = self.job(name).await;
            has_condition(&job, type_).then_some(job)
        })
        .await
    }

    /// Events about `object`, as (reason, message).
    async fn events(&self, object: &str) -> Vec<(String, String)> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(object))
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    async fn wait_for_event(&self, object: &str, reason: &str) -> String {
        eventually(&format!("a {reason} event on {object}"), || async {
            self.events(object)
                .await
                .into_iter()
                .find(|(r, _)| r == reason)
                .map(|(_, message)| message)
        })
        .await
    }
}

fn has_condition(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

fn condition<'a>(job: &'a Job, type_: &str) -> &'a k8s_openapi::api::batch::v1::JobCondition {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_its_completions_with_its_parallelism_and_completes() {
    let c = cluster().await;
    let created = c
        .create_job("pi", json!({ "completions": 3, "parallelism": 2 }))
        .await;
    let uid = created.uid().unwrap();
    let pods = c.wait_for_pods("pi", 2).await;
    for pod in &pods {
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-"));
        assert!(pod.name_any().starts_with("pi-"));
        let labels = pod.labels();
        assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
        assert_eq!(labels["controller-uid"], uid);
        assert!(has_tracking_finalizer(pod), "{:?}", pod.finalizers());
        let owner = &pod.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Job", "pi"));
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
    }
    let created_message = c.wait_for_event("pi", "SuccessfulCreate").await;
    assert!(
        created_message.starts_with("Created pod: pi-"),
        "{created_message}"
    );

    // A running, ready pod shows in active and ready.
    c.set_phase(&pods[0].name_any(), "Running").await;
    let job = eventually("the job to count a ready pod", || async {
        let job = c.job("pi").await;
        (job.status.as_ref()?.ready == Some(1)).then_some(job)
    })
    .await;
    let status = job.status.unwrap();
    assert_eq!(status.active, Some(2));
    assert!(status.start_time.is_some());

    // Two succeed: the last completion gets a pod of its own.
    for pod in &pods {
        c.set_phase(&pod.name_any(), "Succeeded").await;
    }
    let third = eventually("a third pod", || async {
        let pods = c.job_pods("pi").await;
        (pods.len() == 3).then(|| {
            pods.into_iter()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Succeeded"))
        })?
    })
    .await;
    let job = eventually("two counted successes", || async {
        let job = c.job("pi").await;
        (job.status.as_ref()?.succeeded == Some(2)).then_some(job)
    })
    .await;
    assert!(!has_condition(&job, "Complete"));
    c.set_phase(&third.name_any(), "Succeeded").await;

    let job = c.wait_for_condition("pi", "Complete").await;
    let status = job.status.clone().unwrap();
    assert_eq!(status.succeeded, Some(3));
    assert_eq!(status.active, None);
    assert!(status.failed.unwrap_or(0) == 0);
    assert!(has_condition(&job, "SuccessCriteriaMet"));
    let complete = condition(&job, "Complete");
    assert_eq!(complete.reason.as_deref(), Some("CompletionsReached"));
    assert_eq!(
        complete.message.as_deref(),
        Some("Reached expected number of succeeded pods")
    );
    assert_eq!(status.completion_time, complete.last_transition_time);
    let uncounted = status.uncounted_terminated_pods.unwrap_or_default();
    assert!(uncounted.succeeded.unwrap_or_default().is_empty());
    // Counted pods lose the finalizer and stay (Completed) until the Job goes.
    let pods = c.job_pods("pi").await;
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| !has_tracking_finalizer(p)));
    assert_eq!(c.wait_for_event("pi", "Completed").await, "Job completed");

    let row = c.kubectl(&["get", "job", "pi", "--no-headers"]).await;
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&columns[..3], ["pi", "Complete", "3/3"], "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pods_are_replaced_after_a_back_off_until_the_backoff_limit() {
    let c = cluster().await;
    c.create_job("flaky", json!({ "backoffLimit": 1 })).await;
    let first = c.wait_for_pods("flaky", 1).await.remove(0);
    c.set_phase(&first.name_any(), "Failed").await;
    eventually("the failure to be counted", || async {
        let job = c.job("flaky").await;
        (job.status.as_ref()?.failed == Some(1)).then_some(())
    })
    .await;
    // The replacement waits for the back-off (10 s): not there yet.
    assert_eq!(c.job_pods("flaky").await.len(), 1);
    let second = eventually("a replacement pod", || async {
        let pods = c.job_pods("flaky").await;
        pods.into_iter().find(|p| p.name_any() != first.name_any())
    })
    .await;
    c.set_phase(&second.name_any(), "Failed").await;

    let job = c.wait_for_condition("flaky", "Failed").await;
    let status = job.status.clone().unwrap();
    assert_eq!(status.failed, Some(2));
    assert!(has_condition(&job, "FailureTarget"));
    let failed = condition(&job, "Failed");
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    assert_eq!(status.completion_time, None);
    assert_eq!(
        c.wait_for_event("flaky", "BackoffLimitExceeded").await,
        "Job has reached the specified backoff limit"
    );
    let row = c.kubectl(&["get", "job", "flaky", "--no-headers"]).await;
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&columns[..3], ["flaky", "Failed", "0/1"], "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_active_deadline_fails_and_its_pods_go() {
    let c = cluster().await;
    c.create_job(
        "slow",
        json!({ "activeDeadlineSeconds": 1, "parallelism": 2 }),
    )
    .await;
    let job = c.wait_for_condition("slow", "Failed").await;
    let failed = condition(&job, "Failed");
    assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job was active longer than specified deadline")
    );
    assert_eq!(job.status.as_ref().unwrap().failed, Some(2));
    eventually("the pods to go", || async {
        c.job_pods("slow").await.is_empty().then_some(())
    })
    .await;
    c.wait_for_event("slow", "SuccessfulDelete").await;
    c.wait_for_event("slow", "DeadlineExceeded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_jobs_give_each_pod_its_index() {
    let c = cluster().await;
    c.create_job(
        "shards",
        json!({ "completions": 2, "parallelism": 2, "completionMode": "Indexed" }),
    )
    .await;
    let pods = c.wait_for_pods("shards", 2).await;
    let mut indexes = Vec::new();
    for pod in &pods {
        let index = pod.annotations()["batch.kubernetes.io/job-completion-index"].clone();
        assert_eq!(
            pod.labels()["batch.kubernetes.io/job-completion-index"],
            index
        );
        assert_eq!(
            pod.metadata.generate_name.as_deref(),
            Some(format!("shards-{index}-").as_str())
        );
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(
            spec.hostname.as_deref(),
            Some(format!("shards-{index}").as_str())
        );
        let env = spec.containers[0].env.as_ref().unwrap();
        assert!(env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
        indexes.push(index);
    }
    indexes.sort();
    assert_eq!(indexes, ["0", "1"]);
    for pod in &pods {
        c.set_phase(&pod.name_any(), "Succeeded").await;
    }
    let job = c.wait_for_condition("shards", "Complete").await;
    let status = job.status.unwrap();
    assert_eq!(status.completed_indexes.as_deref(), Some("0,1"));
    assert_eq!(status.succeeded, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_job_makes_no_pods_until_resumed() {
    let c = cluster().await;
    c.create_job("later", json!({ "suspend": true })).await;
    let job = c.wait_for_condition("later", "Suspended").await;
    let suspended = condition(&job, "Suspended");
    assert_eq!(suspended.reason.as_deref(), Some("JobSuspended"));
    assert!(job.status.as_ref().unwrap().start_time.is_none());
    assert!(c.job_pods("later").await.is_empty());
    assert_eq!(
        c.wait_for_event("later", "Suspended").await,
        "Job suspended"
    );

    c.jobs()
        .patch(
            "later",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "suspend": false } })),
        )
        .await
        .unwrap();
    c.wait_for_pods("later", 1).await;
    let job = eventually("the job to resume", || async {
        let job = c.job("later").await;
        (condition(&job, "Suspended").status == "False").then_some(job)
    })
    .await;
    assert_eq!(
        condition(&job, "Suspended").reason.as_deref(),
        Some("JobResumed")
    );
    assert!(job.status.unwrap().start_time.is_some());
    assert_eq!(c.wait_for_event("later", "Resumed").await, "Job resumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_goes_with_its_pods_after_its_ttl() {
    let c = cluster().await;
    c.create_job("brief", json!({ "ttlSecondsAfterFinished": 1 }))
        .await;
    let pod = c.wait_for_pods("brief", 1).await.remove(0);
    c.set_phase(&pod.name_any(), "Succeeded").await;
    // Only a finished Job is collected; with a 1 s TTL it may be gone
    // before a test sees its Complete condition.
    eventually("the job and its pod to go", || async {
        let job_gone = c.jobs().get_opt("brief").await.unwrap().is_none();
        (job_gone && c.job_pods("brief").await.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_job_with_kubectl_removes_its_pods() {
    let c = cluster().await;
    c.create_job("doomed", json!({ "parallelism": 2, "completions": 4 }))
        .await;
    let pods = c.wait_for_pods("doomed", 2).await;
    c.set_phase(&pods[0].name_any(), "Running").await;
    c.kubectl(&["delete", "job", "doomed"]).await;
    eventually("the job's pods to go", || async {
        c.job_pods("doomed").await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_deleted_through_the_api_without_a_policy_orphans_its_pods_and_warns() {
    let c = cluster().await;
    c.create_job("plain", json!({})).await;
    let pod = c.wait_for_pods("plain", 1).await.remove(0);
    // kubectl sends propagationPolicy=Background; a bare API DELETE does not.
    let (ok, stdout, stderr) = c
        .kubectl_result(&[
            "delete",
            "--raw",
            "/apis/batch/v1/namespaces/default/jobs/plain",
        ])
        .await;
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stderr.contains("Warning: child pods are preserved by default when jobs are deleted"),
        "{stderr}"
    );
    let pod = eventually("the pod to be released", || async {
        let pod = c.pods().get(&pod.name_any()).await.unwrap();
        pod.owner_references().is_empty().then_some(pod)
    })
    .await;
    assert!(pod.metadata.deletion_timestamp.is_none());
    eventually("the job to go", || async {
        c.jobs()
            .get_opt("plain")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_pods_lose_the_tracking_finalizer() {
    let c = cluster().await;
    c.create_job("left", json!({})).await;
    let pod = c.wait_for_pods("left", 1).await.remove(0);
    let params = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    c.jobs().delete("left", &params).await.unwrap();
    let pod = eventually("the pod to be released", || async {
        let pod = c.pods().get(&pod.name_any()).await.unwrap();
        (pod.owner_references().is_empty() && !has_tracking_finalizer(&pod)).then_some(pod)
    })
    .await;
    assert!(pod.metadata.deletion_timestamp.is_none());
}
