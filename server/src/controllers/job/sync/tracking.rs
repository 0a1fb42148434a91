//! Counting finished pods through `uncountedTerminatedPods` and the
//! tracking finalizer, and finishing the Job (upstream's
//! `trackJobStatusAndRemoveFinalizers`).

use std::collections::HashSet;

use k8s_openapi::api::batch::v1::JobStatus;
use k8s_openapi::api::core::v1::Pod;

use super::{Ctx, JobSync, MAX_UNCOUNTED_PODS, SyncError, name_of, uid_of};
use crate::controllers::job::client::JobClient;
use crate::controllers::job::conditions::{self, FAILURE_TARGET, SUCCESS_CRITERIA_MET};
use crate::controllers::job::pods;

/// Moves the UIDs of pods that no longer hold the finalizer from
/// `uncountedTerminatedPods` to the counters; returns whether it did.
fn clean_uncounted(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let Some(uncounted) = status.uncounted_terminated_pods.as_mut() else {
        return false;
    };
    let mut changed = false;
    let mut counted_succeeded = 0;
    let mut counted_failed = 0;
    if let Some(list) = uncounted.succeeded.as_mut() {
        let before = list.len();
        list.retain(|uid| with_finalizer.contains(uid));
        counted_succeeded = (before - list.len()) as i32;
        if list.is_empty() {
            uncounted.succeeded = None;
        }
    }
    if let Some(list) = uncounted.failed.as_mut() {
        let before = list.len();
        list.retain(|uid| with_finalizer.contains(uid));
        counted_failed = (before - list.len()) as i32;
        if list.is_empty() {
            uncounted.failed = None;
        }
    }
    if counted_succeeded > 0 {
        status.succeeded = Some(status.succeeded.unwrap_or(0) + counted_succeeded);
        changed = true;
    }
    if counted_failed > 0 {
        status.failed = Some(status.failed.unwrap_or(0) + counted_failed);
        changed = true;
    }
    changed
}

fn can_remove_finalizer(ctx: &Ctx<'_>, pod: &Pod, considered_failed: bool) -> bool {
    ctx.job.metadata.deletion_timestamp.is_some()
        || ctx.finished.is_some()
        || pods::phase(pod) == "Succeeded"
        || considered_failed
}

/// Records finished pods in `uncountedTerminatedPods`, removes their
/// finalizers, counts them, and finishes the Job once nothing is left
/// uncounted or terminating (upstream's `trackJobStatusAndRemoveFinalizers`).
pub(super) async fn track_status_and_remove_finalizers<C: JobClient>(
    state: &JobSync<C>,
    ctx: &mut Ctx<'_>,
    mut needs_flush: bool,
) -> Result<(), SyncError> {
    let mut pods = ctx.pods.clone();
    if ctx.indexed {
        pods.sort_by_key(|p| pods::completion_index(p).unwrap_or(i32::MAX));
    }
    let mut with_finalizer: HashSet<String> = pods
        .iter()
        .filter(|p| pods::has_tracking_finalizer(p))
        .map(|p| uid_of(p))
        .filter(|uid| !ctx.expected_rm_finalizers.contains(uid))
        .collect();
    if clean_uncounted(ctx.status(), &with_finalizer) {
        needs_flush = true;
    }
    let finished_failing = ctx
        .finished
        .as_ref()
        .is_some_and(|c| c.type_ != SUCCESS_CRITERIA_MET);
    let mut to_remove: Vec<&Pod> = Vec::new();
    let mut new_succeeded_indexes = Vec::new();
    let mut reached_max = false;
    for pod in pods {
        let uid = uid_of(pod);
        if !pods::has_tracking_finalizer(pod) || ctx.expected_rm_finalizers.contains(&uid) {
            continue;
        }
        let considered_failed = pods::is_failed(pod, &ctx.job);
        if !can_remove_finalizer(ctx, pod, considered_failed) {
            continue;
        }
        to_remove.push(pod);
        let index = pods::completion_index(pod);
        let valid_index = ctx.valid_index(pod);
        if pods::phase(pod) == "Succeeded" && !ctx.uncounted_failed.contains(&uid) {
            if ctx.indexed {
                if let Some(ix) = index
                    && valid_index
                    && !ctx.prev_succeeded_indexes.has(ix)
                {
                    new_succeeded_indexes.push(ix);
                }
            } else if !ctx.uncounted_succeeded.contains(&uid) {
                needs_flush = true;
                ctx.uncounted()
                    .succeeded
                    .get_or_insert_with(Vec::new)
                    .push(uid.clone());
            }
        } else if (considered_failed || finished_failing)
            && !ctx.uncounted_failed.contains(&uid)
            && valid_index
        {
            needs_flush = true;
            ctx.uncounted()
                .failed
                .get_or_insert_with(Vec::new)
                .push(uid.clone());
        }
        let uncounted = ctx.uncounted();
        let in_flight = uncounted.succeeded.as_ref().map_or(0, Vec::len)
            + uncounted.failed.as_ref().map_or(0, Vec::len)
            + new_succeeded_indexes.len();
        if in_flight >= MAX_UNCOUNTED_PODS {
            reached_max = true;
            break;
        }
    }
    if ctx.indexed {
        let succeeded = ctx.succeeded_indexes.with_indexes(new_succeeded_indexes);
        let text = succeeded.to_string();
        let status = ctx.status();
        if status.completed_indexes.as_deref().unwrap_or("") != text {
            needs_flush = true;
        }
        status.succeeded = Some(succeeded.total()).filter(|n| *n != 0);
        status.completed_indexes = (!text.is_empty()).then_some(text);
    }
    if let Some(finished) = ctx.finished.clone() {
        if finished.type_ == FAILURE_TARGET {
            // The interim condition goes in before the finalizers come off.
            ctx.status()
                .conditions
                .get_or_insert_with(Vec::new)
                .push(finished.clone());
            needs_flush = true;
            ctx.finished = Some(conditions::final_for(&finished, ctx.now));
        } else if finished.type_ == SUCCESS_CRITERIA_MET {
            if conditions::true_condition(&ctx.job, SUCCESS_CRITERIA_MET).is_none() {
                ctx.status()
                    .conditions
                    .get_or_insert_with(Vec::new)
                    .push(finished.clone());
                needs_flush = true;
            }
            ctx.finished = Some(conditions::final_for(&finished, ctx.now));
        }
    }

    // Flush what is about to be counted, then remove the finalizers.
    if needs_flush {
        write_status(state, ctx).await?;
        state.backoff.set(&ctx.key, ctx.new_backoff);
        needs_flush = false;
    }
    let namespace = ctx.job.metadata.namespace.clone().unwrap_or_default();
    let results = futures::future::join_all(to_remove.iter().map(|pod| {
        state
            .client
            .remove_tracking_finalizer(&namespace, name_of(pod))
    }))
    .await;
    let mut remove_error = None;
    for (pod, result) in to_remove.iter().zip(results) {
        match result {
            Ok(()) => {
                let uid = uid_of(pod);
                state.expectations.finalizer_removed(&ctx.uid, &uid);
                with_finalizer.remove(&uid);
            }
            Err(err) => {
                remove_error.get_or_insert(err);
            }
        }
    }
    if clean_uncounted(ctx.status(), &with_finalizer) {
        needs_flush = true;
    }
    if let Some(source) = remove_error {
        if needs_flush {
            write_status(state, ctx).await?;
        }
        return Err(SyncError::Pods {
            job: ctx.key.clone(),
            source,
        });
    }
    let finished = !reached_max && enact_finished(ctx);
    if finished {
        needs_flush = true;
    }
    if needs_flush {
        write_status(state, ctx).await?;
        if finished {
            record_finished(state, ctx).await;
        }
    }
    Ok(())
}

async fn write_status<C: JobClient>(
    state: &JobSync<C>,
    ctx: &mut Ctx<'_>,
) -> Result<(), SyncError> {
    match state.client.update_status(&ctx.job).await {
        Ok(written) => {
            ctx.job = written;
            Ok(())
        }
        Err(source) => Err(SyncError::Status {
            job: ctx.key.clone(),
            source,
        }),
    }
}

/// Adds the final condition once no pod is uncounted or terminating.
fn enact_finished(ctx: &mut Ctx<'_>) -> bool {
    let Some(finished) = ctx.finished.clone() else {
        return false;
    };
    let (terminating, now) = (ctx.terminating, ctx.now);
    let status = ctx.status();
    let uncounted = status.uncounted_terminated_pods.as_ref().map_or(0, |u| {
        u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len)
    });
    if uncounted > 0 || terminating > 0 {
        return false;
    }
    let list = status.conditions.get_or_insert_with(Vec::new);
    conditions::ensure(
        list,
        &finished.type_,
        &finished.status,
        finished.reason.as_deref().unwrap_or(""),
        finished.message.as_deref().unwrap_or(""),
        now,
    );
    if finished.type_ == conditions::COMPLETE {
        status.completion_time = list
            .iter()
            .find(|c| c.type_ == conditions::COMPLETE)
            .and_then(|c| c.last_transition_time.clone());
    }
    true
}

async fn record_finished<C: JobClient>(state: &JobSync<C>, ctx: &Ctx<'_>) {
    let Some(finished) = &ctx.finished else {
        return;
    };
    if finished.type_ == conditions::COMPLETE {
        let succeeded = ctx
            .job
            .status
            .as_ref()
            .and_then(|s| s.succeeded)
            .unwrap_or(0);
        if ctx.completions.is_some_and(|c| succeeded > c) {
            state
                .client
                .event(
                    &ctx.job,
                    false,
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached".into(),
                )
                .await;
        }
        state
            .client
            .event(&ctx.job, true, "Completed", "Job completed".into())
            .await;
    } else {
        state
            .client
            .event(
                &ctx.job,
                false,
                finished.reason.as_deref().unwrap_or(""),
                finished.message.clone().unwrap_or_default(),
            )
            .await;
    }
}
