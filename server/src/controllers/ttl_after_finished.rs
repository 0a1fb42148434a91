//! The TTL-after-finished controller (kube-controller-manager's
//! `ttl-after-finished-controller`): deletes a finished Job
//! `ttlSecondsAfterFinished` seconds after it completed or failed, in the
//! foreground so that its pods go first.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use crate::controllers::job::finished_at;

/// First retry after a failed deletion.
const RETRY: Duration = Duration::from_secs(5);

/// A Job the controller could not check or delete.
#[derive(Debug, thiserror::Error)]
#[error("cleaning up finished job {job}: {source}")]
pub struct TtlError {
    /// `namespace/name`.
    job: String,
    /// The API error.
    source: kube::Error,
}

/// When a finished Job with a TTL expires, if it is finished and has one.
pub fn expires_at(job: &Job) -> Option<Timestamp> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let finished = finished_at(job)?;
    finished
        .checked_add(SignedDuration::from_secs(i64::from(ttl)))
        .ok()
}

/// How long until `job` expires at `now`: None when it never does (no TTL,
/// not finished, being deleted), zero when it already did.
pub fn time_left(job: &Job, now: Timestamp) -> Option<Duration> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let expires = expires_at(job)?;
    Some(
        expires
            .duration_since(now)
            .try_into()
            .unwrap_or(Duration::ZERO),
    )
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let jobs: Api<Job> = Api::all(client.clone());
    Controller::new(jobs, watcher::Config::default())
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(%err, "ttl-after-finished controller");
            }
        })
        .await;
}

fn key(job: &Job) -> String {
    format!(
        "{}/{}",
        job.metadata.namespace.as_deref().unwrap_or(""),
        job.metadata.name.as_deref().unwrap_or("")
    )
}

async fn reconcile(job: Arc<Job>, client: Arc<kube::Client>) -> Result<Action, TtlError> {
    match time_left(&job, Timestamp::now()) {
        None => return Ok(Action::await_change()),
        Some(left) if !left.is_zero() => return Ok(Action::requeue(left)),
        Some(_) => {}
    }
    let namespace = job.metadata.namespace.as_deref().unwrap_or("default");
    let name = job.metadata.name.as_deref().unwrap_or("");
    let api: Api<Job> = Api::namespaced(client.as_ref().clone(), namespace);
    let error = |source| TtlError {
        job: key(&job),
        source,
    };
    // The cache may be stale: check the Job as stored before deleting it.
    let Some(fresh) = api.get_opt(name).await.map_err(error)? else {
        return Ok(Action::await_change());
    };
    if fresh.metadata.uid != job.metadata.uid {
        return Ok(Action::await_change());
    }
    match time_left(&fresh, Timestamp::now()) {
        None => return Ok(Action::await_change()),
        Some(left) if !left.is_zero() => return Ok(Action::requeue(left)),
        Some(_) => {}
    }
    tracing::info!(job = %key(&job), "cleaning up a finished job whose TTL expired");
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: fresh.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Action::await_change()),
        Err(source) => Err(error(source)),
    }
}

fn error_policy(_job: Arc<Job>, err: &TtlError, _client: Arc<kube::Client>) -> Action {
    tracing::warn!(%err, "ttl-after-finished");
    Action::requeue(RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn finished_job(ttl: Option<i32>, finished: Option<i64>) -> Job {
        Job {
            spec: Some(JobSpec {
                ttl_seconds_after_finished: ttl,
                ..Default::default()
            }),
            status: Some(JobStatus {
                conditions: finished.map(|at| {
                    vec![JobCondition {
                        type_: "Complete".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(Timestamp::from_second(at).unwrap())),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_finished_job_expires_its_ttl_after_finishing() {
        let now = Timestamp::from_second(1000).unwrap();
        assert_eq!(
            time_left(&finished_job(Some(30), Some(990)), now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            time_left(&finished_job(Some(5), Some(900)), now),
            Some(Duration::ZERO)
        );
        assert_eq!(time_left(&finished_job(None, Some(900)), now), None);
        assert_eq!(time_left(&finished_job(Some(5), None), now), None);
    }
}
