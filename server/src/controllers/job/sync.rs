//! One sync of one Job, as kube-controller-manager 1.32's `syncJob`: count
//! newly finished pods through `status.uncountedTerminatedPods` and the
//! tracking finalizer, decide whether the Job failed or met its
//! completions, make or delete pods toward parallelism (after the failure
//! back-off), and write the status.

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::backoff::{self, Record};
use super::client::JobClient;
use super::conditions::{self, FAILURE_TARGET, SUCCESS_CRITERIA_MET};
use super::expectations::Expectations;
use super::indexes::Intervals;
use super::pods;
use crate::controllers::common;
use manage::{delete_pods, manage_job};
use tracking::track_status_and_remove_finalizers;

mod manage;
mod tracking;

/// Most pods created or deleted in one sync.
const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;
/// Most pods in `uncountedTerminatedPods` at once.
const MAX_UNCOUNTED_PODS: usize = 500;
/// The first batch of a slow-start pod creation.
const SLOW_START_INITIAL_BATCH: usize = 1;
/// `spec.managedBy` of Jobs this controller manages.
const JOB_CONTROLLER_NAME: &str = "kubernetes.io/job-controller";

/// The state the Job controller keeps between syncs.
#[derive(Debug)]
pub struct JobSync<C> {
    /// The API writes.
    pub client: C,
    /// Failure back-off records.
    pub backoff: backoff::Store,
    /// Writes the cache does not show yet.
    pub expectations: Expectations,
}

impl<C: JobClient> JobSync<C> {
    /// State around `client`.
    pub fn new(client: C) -> Self {
        Self {
            client,
            backoff: backoff::Store::default(),
            expectations: Expectations::default(),
        }
    }
}

/// A sync that could not finish; the Job is synced again after a back-off.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Writing the Job's status failed.
    #[error("updating the status of job {job}: {source}")]
    Status {
        /// `namespace/name`.
        job: String,
        /// The API error.
        source: kube::Error,
    },
    /// Creating, deleting or patching pods failed.
    #[error("managing the pods of job {job}: {source}")]
    Pods {
        /// `namespace/name`.
        job: String,
        /// The first API error.
        source: kube::Error,
    },
}

/// `namespace/name` of a Job.
pub fn key(job: &Job) -> String {
    format!(
        "{}/{}",
        job.metadata.namespace.as_deref().unwrap_or(""),
        job.metadata.name.as_deref().unwrap_or("")
    )
}

/// What one sync found and decided.
struct Ctx<'a> {
    job: Job,
    key: String,
    uid: String,
    pods: Vec<&'a Pod>,
    active_pods: Vec<&'a Pod>,
    indexed: bool,
    completions: Option<i32>,
    active: i32,
    ready: i32,
    terminating: i32,
    succeeded: i32,
    uncounted_succeeded: HashSet<String>,
    uncounted_failed: HashSet<String>,
    expected_rm_finalizers: HashSet<String>,
    prev_succeeded_indexes: Intervals,
    succeeded_indexes: Intervals,
    new_backoff: Record,
    finished: Option<JobCondition>,
    requeue: Option<Duration>,
    now: Timestamp,
}

impl Ctx<'_> {
    fn requeue_after(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    fn status(&mut self) -> &mut JobStatus {
        self.job.status.get_or_insert_with(JobStatus::default)
    }

    fn uncounted(&mut self) -> &mut UncountedTerminatedPods {
        self.status()
            .uncounted_terminated_pods
            .get_or_insert_with(UncountedTerminatedPods::default)
    }

    fn valid_index(&self, pod: &Pod) -> bool {
        !self.indexed
            || pods::completion_index(pod).is_some_and(|ix| ix < self.completions.unwrap_or(0))
    }

    /// A pod with the finalizer that the status does not count yet.
    fn countable(&self, pod: &Pod) -> bool {
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        pods::has_tracking_finalizer(pod)
            && !self.uncounted_succeeded.contains(uid)
            && !self.uncounted_failed.contains(uid)
            && !self.expected_rm_finalizers.contains(uid)
            && self.valid_index(pod)
    }
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn name_of(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

/// Syncs `job` given the pods it controls (from the cache) at `now`;
/// returns when to sync it again, if at a set time.
pub async fn sync_job<C: JobClient>(
    state: &JobSync<C>,
    job: &Job,
    owned: &[&Pod],
    now: Timestamp,
) -> Result<Option<Duration>, SyncError> {
    let key = key(job);
    let uid = job.metadata.uid.clone().unwrap_or_default();
    if conditions::is_finished(job) {
        state.backoff.remove(&key);
        state.expectations.remove(&uid);
        return Ok(None);
    }
    let Some(spec) = &job.spec else {
        return Ok(None);
    };
    if spec
        .managed_by
        .as_deref()
        .is_some_and(|m| m != JOB_CONTROLLER_NAME)
    {
        return Ok(None);
    }
    let indexed = match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => false,
        Some("Indexed") => true,
        Some(_) => {
            state
                .client
                .event(
                    job,
                    false,
                    "UnknownCompletionMode",
                    "Skipped Job sync because completion mode is unknown".into(),
                )
                .await;
            return Ok(None);
        }
    };
    let namespace = job.metadata.namespace.clone().unwrap_or_default();

    let settled = state.expectations.settle(&uid, owned);
    let mut satisfied = settled.deletes_done;
    for name in &settled.missing_creates {
        match state.client.pod_exists(&namespace, name).await {
            Ok(false) => state.expectations.forget_created(&uid, name),
            Ok(true) => satisfied = false,
            Err(source) => return Err(SyncError::Pods { job: key, source }),
        }
    }

    let mut job = job.clone();
    let status = job.status.get_or_insert_with(JobStatus::default);
    let uncounted = status
        .uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default)
        .clone();
    let active_pods: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| common::pod_is_active(p))
        .collect();
    let mut ctx = Ctx {
        key,
        uid,
        pods: owned.to_vec(),
        indexed,
        completions: spec.completions,
        active: active_pods.len() as i32,
        ready: active_pods
            .iter()
            .filter(|p| common::pod_is_ready(p))
            .count() as i32,
        terminating: owned.iter().filter(|p| pods::is_terminating(p)).count() as i32,
        active_pods,
        succeeded: 0,
        uncounted_succeeded: uncounted
            .succeeded
            .unwrap_or_default()
            .into_iter()
            .collect(),
        uncounted_failed: uncounted.failed.unwrap_or_default().into_iter().collect(),
        expected_rm_finalizers: settled.finalizer_removals,
        prev_succeeded_indexes: Intervals::default(),
        succeeded_indexes: Intervals::default(),
        new_backoff: Record::default(),
        finished: None,
        requeue: None,
        now,
        job,
    };
    let spec = spec.clone();

    let new_succeeded: Vec<&Pod> = ctx
        .pods
        .iter()
        .copied()
        .filter(|p| ctx.countable(p) && pods::phase(p) == "Succeeded")
        .collect();
    let new_failed: Vec<&Pod> = ctx
        .pods
        .iter()
        .copied()
        .filter(|p| ctx.countable(p) && pods::is_failed(p, &ctx.job))
        .collect();
    let status = ctx.status().clone();
    ctx.succeeded = status.succeeded.unwrap_or(0)
        + new_succeeded.len() as i32
        + ctx.uncounted_succeeded.len() as i32;
    let failed =
        status.failed.unwrap_or(0) + new_failed.len() as i32 + ctx.uncounted_failed.len() as i32;
    let suspended = spec.suspend == Some(true);
    if status.start_time.is_none() && !suspended {
        ctx.status().start_time = Some(Time(now));
    }
    ctx.new_backoff = state
        .backoff
        .get(&ctx.key)
        .with_finished(&new_succeeded, &new_failed);

    ctx.finished = conditions::true_condition(&ctx.job, SUCCESS_CRITERIA_MET).cloned();
    if ctx.finished.is_none()
        && let Some(target) = conditions::true_condition(&ctx.job, FAILURE_TARGET)
    {
        ctx.finished = Some(conditions::final_for(target, now));
    }
    if ctx.finished.is_none() {
        let backoff_limit = spec.backoff_limit.unwrap_or(6);
        if failed > backoff_limit || past_backoff_limit_on_failure(&ctx.job, &ctx.pods) {
            ctx.finished = Some(conditions::failure_target(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                now,
            ));
        } else if let Some(left) = active_deadline_left(&ctx.job, now) {
            if left.is_zero() {
                ctx.finished = Some(conditions::failure_target(
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                    now,
                ));
            } else {
                ctx.requeue_after(left);
            }
        }
    }
    if indexed {
        let completions = ctx.completions.unwrap_or(0);
        ctx.prev_succeeded_indexes = Intervals::parse(
            status.completed_indexes.as_deref().unwrap_or(""),
            completions,
        );
        let newly: Vec<i32> = ctx
            .pods
            .iter()
            .filter(|p| pods::phase(p) == "Succeeded" && pods::has_tracking_finalizer(p))
            .filter_map(|p| pods::completion_index(p))
            .filter(|ix| *ix < completions)
            .collect();
        ctx.succeeded_indexes = ctx.prev_succeeded_indexes.with_indexes(newly);
        ctx.succeeded = ctx.succeeded_indexes.total();
    }

    let mut suspend_changed = false;
    let manage_result;
    if ctx.finished.is_some() {
        let active = ctx.active_pods.clone();
        let (deleted, deleted_ready, result) = delete_pods(state, &mut ctx, &active).await;
        if deleted != ctx.active || !satisfied {
            // Pods may still be on their way in or out of the cache.
            ctx.finished = None;
        }
        ctx.active -= deleted;
        ctx.terminating += deleted;
        ctx.ready -= deleted_ready;
        manage_result = result;
    } else {
        let mut managed = false;
        manage_result = if satisfied && ctx.job.metadata.deletion_timestamp.is_none() {
            managed = true;
            manage_job(state, &mut ctx, &spec).await
        } else {
            Ok(())
        };
        let complete = match ctx.completions {
            None => ctx.succeeded > 0 && ctx.active == 0,
            Some(completions) => ctx.succeeded >= completions && ctx.active == 0,
        };
        if complete {
            ctx.finished = Some(conditions::success_criteria_met(now));
        } else if managed {
            let conditions = ctx.status().conditions.get_or_insert_with(Vec::new);
            if suspended {
                if conditions::ensure(
                    conditions,
                    conditions::SUSPENDED,
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    now,
                ) {
                    suspend_changed = true;
                    let job = ctx.job.clone();
                    state
                        .client
                        .event(&job, true, "Suspended", "Job suspended".into())
                        .await;
                }
            } else if conditions::ensure(
                conditions,
                conditions::SUSPENDED,
                "False",
                "JobResumed",
                "Job resumed",
                now,
            ) {
                suspend_changed = true;
                // A resumed Job's active deadline counts from now.
                ctx.status().start_time = Some(Time(now));
                let job = ctx.job.clone();
                state
                    .client
                    .event(&job, true, "Resumed", "Job resumed".into())
                    .await;
            }
            if ctx
                .status()
                .conditions
                .as_ref()
                .is_some_and(|c| c.is_empty())
            {
                ctx.status().conditions = None;
            }
        }
    }

    let (active, ready, terminating) = (ctx.active, ctx.ready, ctx.terminating);
    let status = ctx.status();
    let needs_update = suspend_changed
        || active != status.active.unwrap_or(0)
        || Some(ready) != status.ready
        || Some(terminating) != status.terminating;
    status.active = (active != 0).then_some(active);
    status.ready = Some(ready);
    status.terminating = Some(terminating);
    track_status_and_remove_finalizers(state, &mut ctx, needs_update).await?;
    manage_result.map_err(|source| SyncError::Pods {
        job: ctx.key.clone(),
        source,
    })?;
    Ok(ctx.requeue)
}

/// For restartPolicy OnFailure: whether the restarts of the Job's running
/// and pending pods reached the back-off limit.
fn past_backoff_limit_on_failure(job: &Job, pods: &[&Pod]) -> bool {
    let Some(spec) = &job.spec else { return false };
    let restart_policy = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref());
    if restart_policy != Some("OnFailure") {
        return false;
    }
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(pods::phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    let limit = spec.backoff_limit.unwrap_or(6);
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// Time left before activeDeadlineSeconds, if the Job has one and runs.
fn active_deadline_left(job: &Job, now: Timestamp) -> Option<Duration> {
    let spec = job.spec.as_ref()?;
    let deadline = spec.active_deadline_seconds?;
    if spec.suspend == Some(true) {
        return None;
    }
    let started = job.status.as_ref()?.start_time.as_ref()?.0;
    let elapsed: Duration = now.duration_since(started).try_into().unwrap_or_default();
    Some(Duration::from_secs(deadline.max(0) as u64).saturating_sub(elapsed))
}

#[cfg(test)]
mod tests;
