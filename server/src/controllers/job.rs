//! The Job controller (kube-controller-manager's `job-controller`, 1.32):
//! runs a Job's pods to its completions with its parallelism, counts
//! finished pods through the `batch.kubernetes.io/job-tracking` finalizer
//! and `status.uncountedTerminatedPods`, backs off after failures, and
//! finishes the Job Complete or Failed (BackoffLimitExceeded,
//! DeadlineExceeded), after the interim SuccessCriteriaMet / FailureTarget.
//!
//! Jobs and pods come from two reflectors whose stores the reconciler
//! reads; a Job is reconciled when it or one of its pods changes.
//! Pods still holding the finalizer after their Job is gone or finished
//! (orphans) are released by a small worker beside the reconcile loop.
//!
//! # Layout
//!
//! - `sync`: one sync of one Job (upstream's `syncJob`), with
//!   `sync::manage` (pods made and deleted) and `sync::tracking` (finished
//!   pods counted, the Job finished).
//! - `client`: the API writes, behind a trait (a fake in unit tests).
//! - `pods`: pod predicates, removal order, pods from the template.
//! - `conditions`, `indexes`, `backoff`, `expectations`: the pieces of
//!   state a sync reads and writes.

mod backoff;
mod client;
mod conditions;
mod expectations;
mod indexes;
mod pods;
mod sync;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::runtime::controller::{Action, trigger_self, trigger_with};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, applier};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::controllers::common;
use client::{JobClient, KubeJobClient};
use sync::{JobSync, SyncError};

pub(crate) use conditions::finished_at;

/// How many Jobs sync at once (kube-controller-manager's `--concurrent-job-syncs`).
const CONCURRENT_SYNCS: u16 = 5;
/// First retry after a failed sync (upstream's `DefaultJobApiBackOff`).
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between retries (upstream's `MaxJobApiBackOff`).
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Retry delay of an orphan pod whose finalizer could not be removed.
const ORPHAN_RETRY: Duration = Duration::from_secs(5);

struct Context {
    sync: JobSync<KubeJobClient>,
    pods: Store<Pod>,
    failures: Mutex<HashMap<String, u32>>,
}

/// Runs the Job controller until `shutdown` is cancelled.
pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let (job_store, job_writer) = reflector::store::<Job>();
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let context = Arc::new(Context {
        sync: JobSync::new(KubeJobClient::new(client.clone())),
        pods: pod_store.clone(),
        failures: Mutex::new(HashMap::new()),
    });
    let (orphans, orphan_queue) = mpsc::unbounded_channel::<ObjectRef<Pod>>();

    let forget = {
        let context = context.clone();
        let orphans = orphans.clone();
        move |event: &Event<Job>| {
            if let Event::Delete(job) = event {
                forget_job(&context, job, &orphans);
            }
        }
    };
    let jobs = watcher::watcher(Api::<Job>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(job_writer)
        .inspect_ok(forget)
        .touched_objects();
    let track_orphans = {
        let orphans = orphans.clone();
        move |pod: &Pod| {
            if pods::has_tracking_finalizer(pod) {
                let _ = orphans.send(ObjectRef::from_obj(pod));
            }
        }
    };
    let pod_changes = watcher::watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .modify(slim)
        .default_backoff()
        .reflect(pod_writer)
        .touched_objects()
        .inspect_ok(track_orphans);
    let queue = stream::select(
        trigger_self(jobs, ()).boxed(),
        trigger_with(pod_changes, owning_job).boxed(),
    )
    .take_until(shutdown.clone().cancelled_owned());

    let orphan_worker = release_orphans(
        KubeJobClient::new(client.clone()),
        client,
        job_store.clone(),
        pod_store,
        orphans,
        orphan_queue,
    );
    let controller = applier(
        |job, context: Arc<Context>| Box::pin(reconcile(job, context)),
        error_policy,
        context,
        job_store,
        queue,
        kube::runtime::Config::default().concurrency(CONCURRENT_SYNCS),
    )
    .for_each(|result| async move {
        if let Err(err) = result {
            tracing::debug!(%err, "job controller");
        }
    });
    tokio::select! {
        () = controller => {}
        () = orphan_worker => {}
        () = shutdown.cancelled() => {}
    }
}

/// Keeps what the controller reads of a pod (metadata, status, node).
fn slim(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    let node_name = pod.spec.as_mut().and_then(|s| s.node_name.take());
    pod.spec = Some(PodSpec {
        node_name,
        ..PodSpec::default()
    });
}

/// The Job controlling a pod, if one does.
fn owning_job(pod: Pod) -> Option<ObjectRef<Job>> {
    let owner = common::controller_of(&pod.metadata)?;
    if owner.kind != "Job" || owner.api_version != "batch/v1" {
        return None;
    }
    let namespace = pod.metadata.namespace.as_deref()?;
    Some(ObjectRef::new(&owner.name).within(namespace))
}

fn is_owned_by(pod: &Pod, job: &Job) -> bool {
    pod.metadata.namespace == job.metadata.namespace
        && common::controller_of(&pod.metadata).is_some_and(|owner| {
            Some(&owner.uid) == job.metadata.uid.as_ref() && owner.kind == "Job"
        })
}

fn forget_job(context: &Context, job: &Job, orphans: &mpsc::UnboundedSender<ObjectRef<Pod>>) {
    context.sync.backoff.remove(&sync::key(job));
    if let Some(uid) = &job.metadata.uid {
        context.sync.expectations.remove(uid);
    }
    lock(&context.failures).remove(&sync::key(job));
    for pod in context
        .pods
        .state_filter(|p| is_owned_by(p, job) && pods::has_tracking_finalizer(p))
    {
        let _ = orphans.send(ObjectRef::from_obj(pod.as_ref()));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn reconcile(job: Arc<Job>, context: Arc<Context>) -> Result<Action, SyncError> {
    let owned: Vec<Arc<Pod>> = context.pods.state_filter(|p| is_owned_by(p, &job));
    let refs: Vec<&Pod> = owned.iter().map(AsRef::as_ref).collect();
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    let requeue = Box::pin(sync::sync_job(&context.sync, &job, &refs, now)).await?;
    lock(&context.failures).remove(&sync::key(&job));
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

fn error_policy(job: Arc<Job>, err: &SyncError, context: Arc<Context>) -> Action {
    let mut failures = lock(&context.failures);
    let count = failures.entry(sync::key(&job)).or_insert(0);
    *count = count.saturating_add(1);
    let delay = RETRY_FIRST
        .saturating_mul(1 << (*count - 1).min(6))
        .min(RETRY_MAX);
    let conflict = matches!(err,
        SyncError::Status { source: kube::Error::Api(status), .. } if status.code == 409);
    if conflict {
        tracing::debug!(%err, "job sync: stale cache, retrying");
    } else {
        tracing::warn!(%err, ?delay, "job sync failed");
    }
    Action::requeue(delay)
}

/// Removes the tracking finalizer from pods whose Job is gone or finished,
/// or that no Job controls.
async fn release_orphans(
    writer: KubeJobClient,
    client: kube::Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    requeue: mpsc::UnboundedSender<ObjectRef<Pod>>,
    mut queue: mpsc::UnboundedReceiver<ObjectRef<Pod>>,
) {
    if jobs.wait_until_ready().await.is_err() || pods.wait_until_ready().await.is_err() {
        return;
    }
    while let Some(pod_ref) = queue.recv().await {
        let Some(pod) = pods.get(&pod_ref) else {
            continue;
        };
        if !pods::has_tracking_finalizer(&pod) || !is_orphan(&client, &jobs, &pod).await {
            continue;
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        if let Err(err) = writer.remove_tracking_finalizer(namespace, name).await {
            tracing::warn!(%err, pod = name, "removing the job tracking finalizer of an orphan pod");
            let requeue = requeue.clone();
            tokio::spawn(async move {
                tokio::time::sleep(ORPHAN_RETRY).await;
                let _ = requeue.send(pod_ref);
            });
        }
    }
}

/// Whether no live, unfinished Job controls the pod (the cache's answer,
/// confirmed with the API before a finalizer is dropped).
async fn is_orphan(client: &kube::Client, jobs: &Store<Job>, pod: &Pod) -> bool {
    let Some(owner) = common::controller_of(&pod.metadata) else {
        return true;
    };
    if owner.kind != "Job" || owner.api_version != "batch/v1" {
        return false;
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    let cached = jobs.get(&ObjectRef::new(&owner.name).within(namespace));
    if let Some(job) = &cached
        && job.metadata.uid.as_ref() == Some(&owner.uid)
    {
        return conditions::is_finished(job);
    }
    match Api::<Job>::namespaced(client.clone(), namespace)
        .get_opt(&owner.name)
        .await
    {
        Ok(Some(job)) if job.metadata.uid.as_ref() == Some(&owner.uid) => {
            conditions::is_finished(&job)
        }
        Ok(_) => true,
        Err(err) => {
            tracing::debug!(%err, "checking the job of an orphan pod");
            false
        }
    }
}
