//! Making and deleting a Job's pods (upstream's `manageJob` and the pod
//! control's events).

use k8s_openapi::api::core::v1::Pod;

use super::{
    Ctx, JobSync, MAX_POD_CREATE_DELETE_PER_SYNC, SLOW_START_INITIAL_BATCH, name_of, uid_of,
};
use crate::controllers::common;
use crate::controllers::job::client::JobClient;
use crate::controllers::job::{indexes, pods};
use crate::controllers::queue::{api_message, namespace_terminating};

/// Deletes pods of the Job; returns how many went, how many of them were
/// ready, and the first error.
pub(super) async fn delete_pods<C: JobClient>(
    state: &JobSync<C>,
    ctx: &mut Ctx<'_>,
    pods: &[&Pod],
) -> (i32, i32, Result<(), kube::Error>) {
    let namespace = ctx.job.metadata.namespace.clone().unwrap_or_default();
    let results = futures::future::join_all(
        pods.iter()
            .map(|pod| state.client.delete_pod(&namespace, name_of(pod))),
    )
    .await;
    let (mut deleted, mut ready, mut first_error) = (0, 0, Ok(()));
    for (pod, result) in pods.iter().zip(results) {
        match result {
            Ok(()) => {
                deleted += 1;
                if common::pod_is_ready(pod) {
                    ready += 1;
                }
                state.expectations.deleted(&ctx.uid, &uid_of(pod));
                state
                    .client
                    .event(
                        &ctx.job,
                        true,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", name_of(pod)),
                    )
                    .await;
            }
            Err(err) => {
                state
                    .client
                    .event(
                        &ctx.job,
                        false,
                        "FailedDelete",
                        format!("Error deleting: {}", api_message(&err)),
                    )
                    .await;
                if first_error.is_ok() {
                    first_error = Err(err);
                }
            }
        }
    }
    (deleted, ready, first_error)
}

/// Makes or deletes pods toward the wanted number of active ones
/// (upstream's `manageJob`).
pub(super) async fn manage_job<C: JobClient>(
    state: &JobSync<C>,
    ctx: &mut Ctx<'_>,
    spec: &k8s_openapi::api::batch::v1::JobSpec,
) -> Result<(), kube::Error> {
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let indexed_completions = ctx.indexed.then(|| ctx.completions.unwrap_or(0));
    if spec.suspend == Some(true) {
        let remove =
            pods::for_removal(&ctx.active_pods, ctx.active_pods.len(), indexed_completions);
        let (deleted, ready, result) = delete_pods(state, ctx, &remove).await;
        ctx.active -= deleted;
        ctx.terminating += deleted;
        ctx.ready -= ready;
        return result;
    }
    let want_active = match ctx.completions {
        None if ctx.succeeded > 0 => ctx.active,
        None => parallelism,
        Some(completions) => (completions - ctx.succeeded).min(parallelism).max(0),
    };
    let remove_at_least = (ctx.active - want_active).max(0) as usize;
    let mut remove = pods::for_removal(&ctx.active_pods, remove_at_least, indexed_completions);
    remove.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
    if !remove.is_empty() {
        let (deleted, ready, result) = delete_pods(state, ctx, &remove).await;
        ctx.active -= deleted;
        ctx.terminating += deleted;
        ctx.ready -= ready;
        return result;
    }
    let terminating = if pods::only_replace_failed_pods(&ctx.job) {
        ctx.terminating
    } else {
        0
    };
    let diff = want_active - terminating - ctx.active;
    if diff <= 0 {
        return Ok(());
    }
    let wait = ctx.new_backoff.remaining(ctx.now);
    if !wait.is_zero() {
        ctx.requeue_after(wait);
        return Ok(());
    }
    let mut diff = (diff as usize).min(MAX_POD_CREATE_DELETE_PER_SYNC);
    let mut indexes: Vec<Option<i32>> = match indexed_completions {
        Some(completions) => {
            let active: Vec<i32> = ctx
                .active_pods
                .iter()
                .filter_map(|p| pods::completion_index(p))
                .collect();
            let pending =
                indexes::first_pending(&ctx.succeeded_indexes, &active, diff, completions);
            diff = pending.len();
            pending.into_iter().map(Some).collect()
        }
        None => vec![None; diff],
    };
    let Some(owner) = common::controller_ref(&ctx.job) else {
        return Ok(());
    };
    let mut batch = diff.min(SLOW_START_INITIAL_BATCH);
    let mut first_error = Ok(());
    while diff > 0 {
        let wave: Vec<Pod> = indexes
            .drain(..batch)
            .map(|ix| pods::from_template(&ctx.job, owner.clone(), ix))
            .collect();
        let results =
            futures::future::join_all(wave.iter().map(|pod| state.client.create_pod(pod))).await;
        let mut failed = false;
        for result in results {
            match result {
                Ok(pod) => {
                    ctx.active += 1;
                    state.expectations.created(&ctx.uid, name_of(&pod));
                    state
                        .client
                        .event(
                            &ctx.job,
                            true,
                            "SuccessfulCreate",
                            format!("Created pod: {}", name_of(&pod)),
                        )
                        .await;
                }
                Err(err) => {
                    failed = true;
                    if !namespace_terminating(&err) {
                        state
                            .client
                            .event(
                                &ctx.job,
                                false,
                                "FailedCreate",
                                format!("Error creating: {}", api_message(&err)),
                            )
                            .await;
                        if first_error.is_ok() {
                            first_error = Err(err);
                        }
                    }
                }
            }
        }
        if failed {
            // Slow start: a failure skips the rest of this round.
            break;
        }
        diff -= batch;
        batch = (batch * 2).min(diff);
    }
    first_error
}
