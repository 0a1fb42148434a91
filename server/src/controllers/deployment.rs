//! The Deployment controller (kube-controller-manager's
//! `deployment-controller`): one ReplicaSet per pod template (named and
//! labelled by its `pod-template-hash`), rolled out by RollingUpdate within
//! maxSurge/maxUnavailable or by Recreate, with revisions, history
//! cleanup, pausing, proportional scaling mid-rollout, and the status and
//! conditions `kubectl rollout status` reads.
//!
//! A ReplicaSet informer feeds the cache the reconcile reads and the
//! triggers (the ReplicaSet's controller, or for an orphan every
//! Deployment selecting it). Recreate asks the apiserver for the old pods
//! only while it waits for them to go.
//!
//! # Layout
//!
//! - `template`: the pod-template-hash and template equality.
//! - `revision`: the annotations kept on ReplicaSets.
//! - `replicas`: fenceposts, sizes, orderings, proportions.
//! - `status`: status and conditions.
//! - `sync`: one sync's working state and writes: scaling, cleanup, status.
//! - `new_replicaset`: the new ReplicaSet found, revised or created.
//! - `rolling`, `recreate`: the two strategies.

mod new_replicaset;
mod recreate;
mod replicas;
mod revision;
mod rolling;
mod status;
mod sync;
mod template;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::core::Selector;
use kube::runtime::controller::{Action, ReconcileRequest, trigger_self};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, applier, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc::UnboundedSender;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use self::sync::Rollout;
use super::common::{Events, cached_controller, cached_selecting, controller_of, controller_ref};
use super::queue::{ErrorBackoff, api_message, key_of};
use super::replicaset::claim::{self, Claim, is_not_found};
use super::replicaset::informer::{self, Change};

/// The name events are recorded under.
const CONTROLLER_NAME: &str = "deployment-controller";

/// What failed while syncing a Deployment.
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
    /// The Deployment cannot be rolled out as it is.
    #[error("deployment {0}: {1}")]
    Invalid(String, String),
}

impl Error {
    /// Whether a write lost an optimistic-concurrency race.
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Api { source: kube::Error::Api(status), .. } if status.code == 409)
    }
}

/// What the reconcile and the ReplicaSet handlers share.
struct Context {
    client: Client,
    replicasets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    events: Events,
    backoff: ErrorBackoff,
}

/// Runs the Deployment controller until `shutdown` is cancelled.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let (deployments, deployment_writer) = reflector::store::<Deployment>();
    let (replicasets, rs_writer) = reflector::store::<ReplicaSet>();
    let ctx = Arc::new(Context {
        client: client.clone(),
        replicasets: replicasets.clone(),
        deployments: deployments.clone(),
        events: Events::new(client.clone(), CONTROLLER_NAME),
        backoff: ErrorBackoff::default(),
    });
    let (trigger, triggers) = tokio::sync::mpsc::unbounded_channel();
    let handler_ctx = Arc::clone(&ctx);
    let informer = tokio::spawn(informer::inform(
        Api::<ReplicaSet>::all(client.clone()),
        rs_writer,
        move |change| on_replicaset_change(&handler_ctx, &trigger, change),
        shutdown.clone(),
    ));
    // Acting on a partial ReplicaSet cache would create ReplicaSets that
    // exist already.
    let ready = tokio::select! {
        () = shutdown.cancelled() => false,
        ready = replicasets.wait_until_ready() => ready.is_ok(),
    };
    if ready {
        // Each Deployment change triggers it (after the store has it), and
        // so do the ReplicaSet changes the informer maps to it.
        let own = watcher(Api::<Deployment>::all(client), watcher::Config::default())
            .default_backoff()
            .reflect(deployment_writer)
            .touched_objects();
        let from_replicasets = UnboundedReceiverStream::new(triggers)
            .map(|d: ObjectRef<Deployment>| Ok(ReconcileRequest::from(d)));
        let queue =
            futures::stream::select(trigger_self(own, ()).boxed(), from_replicasets.boxed())
                .take_until(shutdown.clone().cancelled_owned());
        applier(
            |d, ctx| Box::pin(reconcile(d, ctx)),
            error_policy,
            ctx,
            deployments,
            queue,
            kube::runtime::Config::default(),
        )
        .for_each(|result| {
            if let Err(err) = result {
                tracing::debug!(%err, "deployment controller");
            }
            futures::future::ready(())
        })
        .await;
    }
    shutdown.cancelled().await;
    if let Err(err) = informer.await {
        tracing::warn!(%err, "the replicaset informer of the deployment controller ended abnormally");
    }
}

/// Triggers the Deployments a ReplicaSet change concerns (upstream's
/// addReplicaSet, updateReplicaSet and deleteReplicaSet handlers).
fn on_replicaset_change(
    ctx: &Context,
    trigger: &UnboundedSender<ObjectRef<Deployment>>,
    change: Change<ReplicaSet>,
) {
    let send = |d: &Deployment| {
        // The receiver only goes away at shutdown.
        let _ = trigger.send(ObjectRef::from_obj(d));
    };
    match change {
        Change::Applied { old: None, new } => {
            if let Some(d) = controlling_deployment(ctx, &new) {
                send(&d);
                return;
            }
            if new.metadata.deletion_timestamp.is_none() {
                for d in selecting_deployments(ctx, &new) {
                    send(&d);
                }
            }
        }
        Change::Applied {
            old: Some(old),
            new,
        } => {
            if old.metadata.resource_version == new.metadata.resource_version {
                return;
            }
            let old_controller = controller_of(&old.metadata).map(|r| r.uid.clone());
            let new_controller = controller_of(&new.metadata).map(|r| r.uid.clone());
            let controller_changed = old_controller != new_controller;
            if controller_changed && let Some(d) = controlling_deployment(ctx, &old) {
                send(&d);
            }
            if let Some(d) = controlling_deployment(ctx, &new) {
                send(&d);
                return;
            }
            if old.metadata.labels != new.metadata.labels || controller_changed {
                for d in selecting_deployments(ctx, &new) {
                    send(&d);
                }
            }
        }
        Change::Deleted(rs) => {
            if let Some(d) = controlling_deployment(ctx, &rs) {
                send(&d);
            }
        }
    }
}

/// The Deployment in the cache that is the ReplicaSet's controller.
fn controlling_deployment(ctx: &Context, rs: &ReplicaSet) -> Option<Arc<Deployment>> {
    cached_controller(&ctx.deployments, &rs.metadata)
}

/// The Deployments of the ReplicaSet's namespace whose (non-empty)
/// selector matches it.
fn selecting_deployments(ctx: &Context, rs: &ReplicaSet) -> Vec<Arc<Deployment>> {
    cached_selecting(&ctx.deployments, &rs.metadata, selector_of)
}

fn selector_of(d: &Deployment) -> Option<Selector> {
    Selector::try_from(d.spec.as_ref()?.selector.clone()).ok()
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let action = Box::pin(sync_deployment(&d, &ctx)).await?;
    ctx.backoff.reset(&key_of(&*d));
    Ok(action)
}

fn error_policy(d: Arc<Deployment>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = key_of(&*d);
    if err.is_conflict() {
        // A write raced the cache; the next sync sees the newer object.
        tracing::debug!(deployment = %key, %err, "syncing a deployment met a conflict; retrying");
    } else {
        tracing::warn!(deployment = %key, %err, "syncing a deployment failed; retrying");
    }
    Action::requeue(ctx.backoff.next_delay(&key))
}

/// One sync (upstream's `syncDeployment`).
async fn sync_deployment(d: &Deployment, ctx: &Context) -> Result<Action, Error> {
    let Some(selector) = selector_of(d) else {
        tracing::warn!(deployment = %key_of(d), "invalid selector; ignoring the deployment");
        return Ok(Action::await_change());
    };
    let mut rollout = Rollout::new(ctx, d.clone());
    if selector.selects_all() {
        Box::pin(rollout.selecting_everything()).await?;
        return Ok(Action::await_change());
    }
    let replicasets = Box::pin(claim_replicasets(ctx, d, &selector)).await?;
    rollout.set_replicasets(replicasets);
    if d.metadata.deletion_timestamp.is_some() {
        Box::pin(rollout.sync_status_only()).await?;
        return Ok(rollout.action());
    }
    Box::pin(rollout.check_paused_conditions()).await?;
    if d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
        Box::pin(rollout.sync()).await?;
        return Ok(rollout.action());
    }
    if Box::pin(rollout.is_scaling_event()).await? {
        Box::pin(rollout.sync()).await?;
        return Ok(rollout.action());
    }
    let strategy = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.clone())
        .unwrap_or_else(|| "RollingUpdate".into());
    match strategy.as_str() {
        "Recreate" => Box::pin(rollout.rollout_recreate(&selector)).await?,
        "RollingUpdate" => Box::pin(rollout.rollout_rolling()).await?,
        other => {
            return Err(Error::Invalid(
                key_of(d),
                format!("unexpected deployment strategy type: {other}"),
            ));
        }
    }
    Ok(rollout.action())
}

/// The ReplicaSets of the Deployment after adopting orphans its selector
/// matches and releasing ReplicaSets it no longer selects (upstream's
/// `getReplicaSetsForDeployment`).
async fn claim_replicasets(
    ctx: &Context,
    d: &Deployment,
    selector: &Selector,
) -> Result<Vec<ReplicaSet>, Error> {
    let namespace = d.metadata.namespace.as_deref().unwrap_or_default();
    let uid = d.metadata.uid.as_deref().unwrap_or_default();
    let deleting = d.metadata.deletion_timestamp.is_some();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), namespace);
    let candidates = ctx
        .replicasets
        .state_filter(|rs| rs.metadata.namespace.as_deref() == Some(namespace));
    let mut owned = Vec::new();
    let mut may_adopt: Option<bool> = None;
    for rs in candidates {
        match claim::classify(uid, deleting, selector, &rs.metadata) {
            Claim::Owned => owned.push((*rs).clone()),
            Claim::Ignore => {}
            Claim::Adopt => {
                if may_adopt.is_none() {
                    may_adopt = Some(still_current(ctx, d).await?);
                }
                if may_adopt != Some(true) {
                    continue;
                }
                let Some(owner) = controller_ref(d) else {
                    continue;
                };
                match claim::adopt(&api, &*rs, &owner).await {
                    Ok(adopted) => owned.push(adopted),
                    Err(err) if is_not_found(&err) => {}
                    Err(source) => {
                        return Err(Error::Api {
                            action: "adopting replicaset",
                            target: key_of(&*rs),
                            source,
                        });
                    }
                }
            }
            Claim::Release => match claim::release(&api, &*rs, uid).await {
                Ok(_) => {}
                Err(err) if is_not_found(&err) => {}
                Err(source) => {
                    return Err(Error::Api {
                        action: "releasing replicaset",
                        target: key_of(&*rs),
                        source,
                    });
                }
            },
        }
    }
    Ok(owned)
}

/// Whether the Deployment, read afresh, is still this one and not being
/// deleted (upstream's `canAdopt` check before the first adoption).
async fn still_current(ctx: &Context, d: &Deployment) -> Result<bool, Error> {
    let namespace = d.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    match Box::pin(api.get_opt(&d.name_any())).await {
        Ok(Some(fresh)) => {
            Ok(fresh.metadata.uid == d.metadata.uid && fresh.metadata.deletion_timestamp.is_none())
        }
        Ok(None) => Ok(false),
        Err(source) => Err(Error::Api {
            action: "reading deployment",
            target: key_of(d),
            source,
        }),
    }
}
