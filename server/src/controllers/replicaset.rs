//! The ReplicaSet controller (kube-controller-manager's
//! `replicaset-controller`): keeps `spec.replicas` pods of each
//! ReplicaSet, adopting orphans its selector matches and releasing pods it
//! no longer selects, and reports their counts in its status.
//!
//! A pod informer feeds both the pod cache the reconcile reads and the
//! triggers (the pod's controller, or for an orphan every ReplicaSet
//! selecting it). Expectations keep a sync from creating or deleting
//! again before the cache has seen the pods it made or removed.
//!
//! # Layout
//!
//! - `expectations`: creations and deletions awaited in the cache.
//! - `pods`: the pod a template makes; slow-start batches.
//! - `ranking`: which pods go first when there are too many.
//! - `status`: the status from the owned pods.
//! - `informer`, `claim`: a watch feeding a store and handlers; adoption
//!   and release by controller references — shared with the Deployment
//!   controller.

pub(crate) mod claim;
mod expectations;
pub(crate) mod informer;
mod pods;
mod ranking;
mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, ReconcileRequest, trigger_self};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, applier, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use self::claim::{Claim, is_not_found};
use self::expectations::Expectations;
use self::informer::Change;
use crate::controllers::common::{
    Events, cached_controller, cached_selecting, controller_of, controller_ref, pod_is_active,
    pod_ready_since,
};
use crate::controllers::queue::{ErrorBackoff, api_message, key_of, namespace_terminating};

/// The most pods one sync creates or deletes (upstream's `BurstReplicas`).
const BURST_REPLICAS: usize = 500;

/// The name events are recorded under.
const CONTROLLER_NAME: &str = "replicaset-controller";

/// What failed while syncing a ReplicaSet.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// An API call failed.
    #[error("{action} {target}: {source}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// To what.
        target: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// Deleting a pod failed (upstream's wording, used in ReplicaFailure).
    #[error("unable to delete pods: {0}")]
    Delete(String),
    /// The template cannot make pods.
    #[error("{0}")]
    Template(#[from] pods::TemplateError),
}

impl Error {
    /// The message a ReplicaFailure condition carries: the apiserver's for
    /// a refused create, as upstream's error string is.
    fn condition_message(&self) -> String {
        match self {
            Error::Api { source, .. } => api_message(source),
            other => other.to_string(),
        }
    }
}

impl Error {
    /// Whether a write lost an optimistic-concurrency race.
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Api { source: kube::Error::Api(status), .. } if status.code == 409)
    }
}

/// What the reconcile and the pod handlers share.
struct Context {
    client: Client,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    expectations: Expectations,
    events: Events,
    backoff: ErrorBackoff,
}

/// Runs the ReplicaSet controller until `shutdown` is cancelled.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let (replicasets, rs_writer) = reflector::store::<ReplicaSet>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods: pods.clone(),
        replicasets: replicasets.clone(),
        expectations: Expectations::default(),
        events: Events::new(client.clone(), CONTROLLER_NAME),
        backoff: ErrorBackoff::default(),
    });
    let (trigger, triggers) = tokio::sync::mpsc::unbounded_channel();
    let handler_ctx = Arc::clone(&ctx);
    let informer = tokio::spawn(informer::inform(
        Api::<Pod>::all(client.clone()),
        pod_writer,
        move |change| on_pod_change(&handler_ctx, &trigger, change),
        shutdown.clone(),
    ));
    // Acting on a partial pod cache would create pods that exist already.
    let ready = tokio::select! {
        () = shutdown.cancelled() => false,
        ready = pods.wait_until_ready() => ready.is_ok(),
    };
    if ready {
        // Each ReplicaSet change triggers it (after the store has it), and
        // so do the pod changes the informer maps to it.
        let own = watcher(Api::<ReplicaSet>::all(client), watcher::Config::default())
            .default_backoff()
            .reflect(rs_writer)
            .touched_objects();
        let from_pods = UnboundedReceiverStream::new(triggers)
            .map(|rs: ObjectRef<ReplicaSet>| Ok(ReconcileRequest::from(rs)));
        let queue = futures::stream::select(trigger_self(own, ()).boxed(), from_pods.boxed())
            .take_until(shutdown.clone().cancelled_owned());
        applier(
            |rs, ctx| Box::pin(reconcile(rs, ctx)),
            error_policy,
            ctx,
            replicasets,
            queue,
            kube::runtime::Config::default(),
        )
        .for_each(|result| {
            if let Err(err) = result {
                tracing::debug!(%err, "replicaset controller");
            }
            futures::future::ready(())
        })
        .await;
    }
    shutdown.cancelled().await;
    if let Err(err) = informer.await {
        tracing::warn!(%err, "the pod informer of the replicaset controller ended abnormally");
    }
}

/// Lowers expectations and triggers the ReplicaSets a pod change concerns
/// (upstream's addPod, updatePod and deletePod handlers).
fn on_pod_change(
    ctx: &Context,
    trigger: &UnboundedSender<ObjectRef<ReplicaSet>>,
    change: Change<Pod>,
) {
    let send = |rs: &ReplicaSet| {
        // The receiver only goes away at shutdown.
        let _ = trigger.send(ObjectRef::from_obj(rs));
    };
    match change {
        Change::Applied { old: None, new } => {
            if new.metadata.deletion_timestamp.is_some() {
                pod_deleted(ctx, &new, &send);
                return;
            }
            if let Some(rs) = controlling_replicaset(ctx, &new) {
                ctx.expectations.creation_observed(&key_of(&*rs));
                send(&rs);
                return;
            }
            for rs in selecting_replicasets(ctx, &new) {
                send(&rs);
            }
        }
        Change::Applied {
            old: Some(old),
            new,
        } => {
            if old.metadata.resource_version == new.metadata.resource_version {
                return;
            }
            let labels_changed = old.metadata.labels != new.metadata.labels;
            if new.metadata.deletion_timestamp.is_some() {
                // A terminating pod counts as deleted; its old labels may
                // have tied it to other ReplicaSets.
                pod_deleted(ctx, &new, &send);
                if labels_changed {
                    pod_deleted(ctx, &old, &send);
                }
                return;
            }
            let old_controller = controller_of(&old.metadata).map(|r| r.uid.clone());
            let new_controller = controller_of(&new.metadata).map(|r| r.uid.clone());
            let controller_changed = old_controller != new_controller;
            if controller_changed && let Some(rs) = controlling_replicaset(ctx, &old) {
                send(&rs);
            }
            if let Some(rs) = controlling_replicaset(ctx, &new) {
                send(&rs);
                return;
            }
            if labels_changed || controller_changed {
                for rs in selecting_replicasets(ctx, &new) {
                    send(&rs);
                }
            }
        }
        Change::Deleted(pod) => pod_deleted(ctx, &pod, &send),
    }
}

fn pod_deleted(ctx: &Context, pod: &Pod, send: &impl Fn(&ReplicaSet)) {
    if let Some(rs) = controlling_replicaset(ctx, pod) {
        ctx.expectations
            .deletion_observed(&key_of(&*rs), &pods::pod_key(pod));
        send(&rs);
    }
}

/// The ReplicaSet in the cache that is the pod's controller.
fn controlling_replicaset(ctx: &Context, pod: &Pod) -> Option<Arc<ReplicaSet>> {
    cached_controller(&ctx.replicasets, &pod.metadata)
}

/// The ReplicaSets of the pod's namespace whose (non-empty) selector
/// matches it: the candidates to adopt an orphan.
fn selecting_replicasets(ctx: &Context, pod: &Pod) -> Vec<Arc<ReplicaSet>> {
    cached_selecting(&ctx.replicasets, &pod.metadata, selector_of)
}

fn selector_of(rs: &ReplicaSet) -> Option<Selector> {
    Selector::try_from(rs.spec.as_ref()?.selector.clone()).ok()
}

fn desired_replicas(rs: &ReplicaSet) -> usize {
    let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    usize::try_from(replicas).unwrap_or(0)
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let action = sync(&rs, &ctx).await?;
    ctx.backoff.reset(&key_of(&*rs));
    Ok(action)
}

fn error_policy(rs: Arc<ReplicaSet>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = key_of(&*rs);
    if err.is_conflict() {
        // A write raced the cache; the next sync sees the newer object.
        tracing::debug!(replicaset = %key, %err, "syncing a replicaset met a conflict; retrying");
    } else {
        tracing::warn!(replicaset = %key, %err, "syncing a replicaset failed; retrying");
    }
    Action::requeue(ctx.backoff.next_delay(&key))
}

/// One sync (upstream's `syncReplicaSet`).
async fn sync(rs: &ReplicaSet, ctx: &Context) -> Result<Action, Error> {
    let key = key_of(rs);
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let namespace = rs.metadata.namespace.as_deref().unwrap_or_default();
    let needs_sync = ctx.expectations.satisfied(&key, uid, Instant::now());
    let Some(selector) = selector_of(rs) else {
        tracing::warn!(replicaset = %key, "invalid selector; ignoring the replicaset");
        return Ok(Action::await_change());
    };
    let namespace_pods = ctx
        .pods
        .state_filter(|pod| pod.metadata.namespace.as_deref() == Some(namespace));
    let active: Vec<Arc<Pod>> = namespace_pods
        .iter()
        .filter(|pod| pod_is_active(pod))
        .cloned()
        .collect();
    let owned = claim_pods(ctx, rs, &selector, active).await?;
    let owned_refs: Vec<&Pod> = owned.iter().map(AsRef::as_ref).collect();

    let manage_error = if needs_sync && rs.metadata.deletion_timestamp.is_none() {
        manage_replicas(ctx, rs, &owned_refs, &namespace_pods)
            .await
            .err()
    } else {
        None
    };
    let now = Timestamp::now();
    let message = manage_error.as_ref().map(Error::condition_message);
    let mut new_status = status::calculate_status(rs, &owned_refs, message.as_deref(), now);
    new_status.observed_generation = rs.metadata.generation;
    if !status::status_is_current(rs, &new_status) {
        write_status(ctx, rs, &new_status).await?;
    }
    if let Some(err) = manage_error {
        return Err(err);
    }
    if !needs_sync {
        // A lost watch event must not stall the ReplicaSet for good.
        return Ok(Action::requeue(expectations::EXPECTATIONS_TIMEOUT));
    }
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    Ok(next_availability(&owned_refs, min_ready, now)
        .map_or_else(Action::await_change, Action::requeue))
}

/// How long until the first ready pod that is not yet available becomes
/// available (ready for `min_ready` seconds), plus a second of slack.
fn next_availability(pods: &[&Pod], min_ready: i32, now: Timestamp) -> Option<Duration> {
    if min_ready <= 0 {
        return None;
    }
    pods.iter()
        .filter(|pod| !status::pod_is_available(pod, min_ready, now))
        .filter_map(|pod| {
            let since = pod_ready_since(pod)?;
            let at = since + SignedDuration::from_secs(i64::from(min_ready) + 1);
            Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
        })
        .min()
}

/// The active pods `rs` owns after adopting orphans it selects and
/// releasing pods it no longer selects.
async fn claim_pods(
    ctx: &Context,
    rs: &ReplicaSet,
    selector: &Selector,
    pods: Vec<Arc<Pod>>,
) -> Result<Vec<Arc<Pod>>, Error> {
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let namespace = rs.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let mut owned = Vec::with_capacity(pods.len());
    let mut may_adopt: Option<bool> = None;
    for pod in pods {
        match claim::classify(uid, deleting, selector, &pod.metadata) {
            Claim::Owned => owned.push(pod),
            Claim::Ignore => {}
            Claim::Adopt => {
                if may_adopt.is_none() {
                    may_adopt = Some(still_current(ctx, rs).await?);
                }
                if may_adopt != Some(true) {
                    continue;
                }
                let Some(owner) = controller_ref(rs) else {
                    continue;
                };
                match claim::adopt(&api, &*pod, &owner).await {
                    Ok(adopted) => owned.push(Arc::new(adopted)),
                    Err(err) if is_not_found(&err) => {}
                    Err(source) => {
                        return Err(Error::Api {
                            action: "adopting pod",
                            target: pods::pod_key(&pod),
                            source,
                        });
                    }
                }
            }
            Claim::Release => match claim::release(&api, &*pod, uid).await {
                Ok(_) => {}
                Err(err) if is_not_found(&err) => {}
                Err(source) => {
                    return Err(Error::Api {
                        action: "releasing pod",
                        target: pods::pod_key(&pod),
                        source,
                    });
                }
            },
        }
    }
    Ok(owned)
}

/// Whether the ReplicaSet, read afresh, is still this one and not being
/// deleted (upstream's `canAdopt` check before the first adoption).
async fn still_current(ctx: &Context, rs: &ReplicaSet) -> Result<bool, Error> {
    let namespace = rs.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), namespace);
    let name = rs.name_any();
    match api.get_opt(&name).await {
        Ok(Some(fresh)) => Ok(
            fresh.metadata.uid == rs.metadata.uid && fresh.metadata.deletion_timestamp.is_none()
        ),
        Ok(None) => Ok(false),
        Err(source) => Err(Error::Api {
            action: "reading replicaset",
            target: key_of(rs),
            source,
        }),
    }
}

/// Creates or deletes pods to meet `spec.replicas` (upstream's
/// `manageReplicas`).
async fn manage_replicas(
    ctx: &Context,
    rs: &ReplicaSet,
    owned: &[&Pod],
    namespace_pods: &[Arc<Pod>],
) -> Result<(), Error> {
    let desired = desired_replicas(rs);
    if owned.len() < desired {
        create_pods(ctx, rs, (desired - owned.len()).min(BURST_REPLICAS)).await
    } else if owned.len() > desired {
        let related = related_pods(ctx, rs, namespace_pods);
        let related_refs: Vec<&Pod> = related.iter().map(AsRef::as_ref).collect();
        let count = (owned.len() - desired).min(BURST_REPLICAS);
        let victims = ranking::pods_to_delete(owned, &related_refs, count, Timestamp::now());
        delete_pods(ctx, rs, &victims).await
    } else {
        Ok(())
    }
}

async fn create_pods(ctx: &Context, rs: &ReplicaSet, count: usize) -> Result<(), Error> {
    let key = key_of(rs);
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    ctx.expectations
        .expect_creations(&key, uid, count, Instant::now());
    let Some(owner) = controller_ref(rs) else {
        ctx.expectations.creations_abandoned(&key, count);
        return Ok(());
    };
    let pod = match pods::pod_from_template(rs, owner) {
        Ok(pod) => pod,
        Err(err) => {
            ctx.expectations.creations_abandoned(&key, count);
            record(
                ctx,
                rs,
                true,
                "FailedCreate",
                format!("Error creating: {err}"),
            );
            return Err(err.into());
        }
    };
    let api: Api<Pod> = Api::namespaced(
        ctx.client.clone(),
        rs.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let mut created = 0;
    let mut first_error = None;
    for batch in pods::slow_start_batches(count) {
        let results = join_all((0..batch).map(|_| create_pod(ctx, &api, rs, &pod))).await;
        for result in results {
            match result {
                Ok(true) => created += 1,
                Ok(false) => {}
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        if first_error.is_some() {
            break;
        }
    }
    if created < count {
        ctx.expectations.creations_abandoned(&key, count - created);
    }
    first_error.map_or(Ok(()), Err)
}

/// Creates one pod; false when the namespace is terminating (nothing can
/// be created there, and nothing needs to be).
async fn create_pod(
    ctx: &Context,
    api: &Api<Pod>,
    rs: &ReplicaSet,
    pod: &Pod,
) -> Result<bool, Error> {
    match api.create(&PostParams::default(), pod).await {
        Ok(created) => {
            record(
                ctx,
                rs,
                false,
                "SuccessfulCreate",
                format!("Created pod: {}", created.name_any()),
            );
            Ok(true)
        }
        Err(source) => {
            record(
                ctx,
                rs,
                true,
                "FailedCreate",
                format!("Error creating: {}", api_message(&source)),
            );
            if namespace_terminating(&source) {
                return Ok(false);
            }
            Err(Error::Api {
                action: "creating a pod for",
                target: key_of(rs),
                source,
            })
        }
    }
}

async fn delete_pods(ctx: &Context, rs: &ReplicaSet, victims: &[&Pod]) -> Result<(), Error> {
    let key = key_of(rs);
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    ctx.expectations.expect_deletions(
        &key,
        uid,
        victims.iter().map(|pod| pods::pod_key(pod)),
        Instant::now(),
    );
    let api: Api<Pod> = Api::namespaced(
        ctx.client.clone(),
        rs.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let results = join_all(victims.iter().map(|pod| {
        let api = &api;
        async move {
            let name = pod.name_any();
            (
                name.clone(),
                api.delete(&name, &DeleteParams::default()).await,
            )
        }
    }))
    .await;
    let mut first_error = None;
    for (pod, (name, result)) in victims.iter().zip(results) {
        match result {
            Ok(_) => record(
                ctx,
                rs,
                false,
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
            ),
            Err(err) => {
                // The informer will not see this deletion.
                ctx.expectations
                    .deletion_observed(&key, &pods::pod_key(pod));
                if !is_not_found(&err) {
                    record(
                        ctx,
                        rs,
                        true,
                        "FailedDelete",
                        format!("Error deleting: {}", api_message(&err)),
                    );
                    first_error.get_or_insert(Error::Delete(api_message(&err)));
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The pods selected by any ReplicaSet under the same controller as `rs`
/// (only `rs` when it has none): pods sharing a node with more of them are
/// deleted first.
fn related_pods(ctx: &Context, rs: &ReplicaSet, namespace_pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    let namespace = rs.metadata.namespace.as_deref();
    let siblings: Vec<Selector> = match controller_of(&rs.metadata) {
        None => selector_of(rs).into_iter().collect(),
        Some(controller) => ctx
            .replicasets
            .state_filter(|other| {
                other.metadata.namespace.as_deref() == namespace
                    && controller_of(&other.metadata).is_some_and(|c| c.uid == controller.uid)
            })
            .iter()
            .filter_map(|other| selector_of(other))
            .collect(),
    };
    namespace_pods
        .iter()
        .filter(|pod| siblings.iter().any(|s| s.matches(pod.labels())))
        .cloned()
        .collect()
}

/// Writes `status` with a merge patch: the counts upstream omits when zero
/// are removed, the conditions replaced.
async fn write_status(
    ctx: &Context,
    rs: &ReplicaSet,
    status: &ReplicaSetStatus,
) -> Result<(), Error> {
    let nonzero = |v: Option<i32>| v.filter(|v| *v != 0).map_or(Value::Null, Value::from);
    let conditions = status.conditions.as_ref().map_or(Value::Null, |c| {
        serde_json::to_value(c).unwrap_or(Value::Null)
    });
    let patch = json!({
        "status": {
            "replicas": status.replicas,
            "fullyLabeledReplicas": nonzero(status.fully_labeled_replicas),
            "readyReplicas": nonzero(status.ready_replicas),
            "availableReplicas": nonzero(status.available_replicas),
            "observedGeneration": status.observed_generation.filter(|g| *g != 0).map_or(Value::Null, Value::from),
            "conditions": conditions,
        }
    });
    let api: Api<ReplicaSet> = Api::namespaced(
        ctx.client.clone(),
        rs.metadata.namespace.as_deref().unwrap_or_default(),
    );
    match api
        .patch_status(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if is_not_found(&err) => Ok(()),
        Err(source) => Err(Error::Api {
            action: "updating the status of replicaset",
            target: key_of(rs),
            source,
        }),
    }
}

/// Records an event on `rs` without holding up the sync.
fn record(ctx: &Context, rs: &ReplicaSet, warning: bool, reason: &'static str, note: String) {
    let events = ctx.events.clone();
    let reference = rs.object_ref(&());
    tokio::spawn(async move {
        if warning {
            events.warning(&reference, reason, note).await;
        } else {
            events.normal(&reference, reason, note).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ready_pod(secs_ago: i64, now: Timestamp) -> Pod {
        Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(now - SignedDuration::from_secs(secs_ago))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn availability_is_checked_again_when_the_first_pod_gets_there() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let pods = [ready_pod(2, now), ready_pod(8, now), ready_pod(60, now)];
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(
            next_availability(&refs, 10, now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(next_availability(&refs, 0, now), None);
        assert_eq!(next_availability(&refs[2..], 10, now), None);
    }
}
