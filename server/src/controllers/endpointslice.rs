//! The EndpointSlice controller (kube-controller-manager's
//! `endpointslice-controller`): discovery.k8s.io/v1 EndpointSlices for
//! every Service with a selector, labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`,
//! owned by the Service (the garbage collector removes them with it), at
//! most 100 endpoints each, updated in place.
//!
//! Not built: the EndpointSlice mirroring controller (slices for
//! selector-less Services from hand-written Endpoints) and topology hints.
//!
//! # Layout
//! - this file: informers, triggers, and writing a Service's plan.
//! - `reconciler`: the plan (pure).
//! - `tracker`: whether the slice cache has seen the controller's writes.
//! - `selection`, `trigger_time`: shared with the Endpoints controller —
//!   which pods back a Service, and the last-change-trigger-time annotation.

#[path = "endpointslice/reconciler.rs"]
mod reconciler;
#[path = "endpointslice/selection.rs"]
pub(crate) mod selection;
#[path = "endpointslice/tracker.rs"]
mod tracker;
#[path = "endpointslice/trigger_time.rs"]
pub(crate) mod trigger_time;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::applier;
use kube::runtime::controller::{
    Action, Config as ControllerConfig, ReconcileRequest, trigger_with,
};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;

use super::common::Events;
use super::queue::{ErrorBackoff, api_message, informer, namespace_terminating, object_key};
use reconciler::{CONTROLLER_NAME, MANAGED_BY_LABEL, MAX_ENDPOINTS_PER_SLICE, SERVICE_NAME_LABEL};
use selection::PodServices;
use tracker::SliceTracker;
use trigger_time::{LAST_CHANGE_TRIGGER_TIME, TriggerTimeTracker, format_rfc3339_nano};

/// The field manager of the controller's writes.
const FIELD_MANAGER: &str = "kube-controller-manager";
/// The node label giving a zone (a change re-syncs the node's Services).
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What failed while reconciling a Service's EndpointSlices.
#[derive(Debug, thiserror::Error)]
pub enum EndpointSliceError {
    /// Writes failed or pods had to be skipped; upstream's aggregated text.
    #[error("{0}")]
    Sync(String),
    /// The slice cache has not seen the controller's last writes yet.
    #[error("EndpointSlice informer cache is out of date")]
    StaleCache,
    /// An informer stopped before its cache filled.
    #[error("the {0} informer stopped")]
    InformerStopped(&'static str),
}

/// The controller's caches and helpers.
struct Context {
    client: kube::Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    trigger_times: TriggerTimeTracker,
    tracker: SliceTracker,
    backoff: ErrorBackoff,
    events: Events,
}

/// Runs the EndpointSlice controller until `shutdown` is cancelled.
pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let (services, service_events) = informer(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let (pods, pod_events) = informer(Api::<Pod>::all(client.clone()), watcher::Config::default());
    let (nodes, node_events) =
        informer(Api::<Node>::all(client.clone()), watcher::Config::default());
    let (slices, slice_events) = informer(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={CONTROLLER_NAME}")),
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods: pods.clone(),
        nodes,
        slices,
        trigger_times: TriggerTimeTracker::default(),
        tracker: SliceTracker::default(),
        backoff: ErrorBackoff::default(),
        events: Events::new(client, "endpointslice-controller"),
    });
    let service_triggers = {
        let ctx = ctx.clone();
        trigger_with(
            service_events,
            move |event| -> Vec<ReconcileRequest<Service>> {
                match event {
                    Event::Apply(svc) | Event::InitApply(svc) => {
                        vec![ObjectRef::from_obj(&svc).into()]
                    }
                    Event::Delete(svc) => {
                        let key = service_key(&svc);
                        ctx.trigger_times.delete_service(&key.0, &key.1);
                        ctx.tracker.forget_service(&key);
                        Vec::new()
                    }
                    Event::Init | Event::InitDone => Vec::new(),
                }
            },
        )
    };
    let pod_index = Arc::new(PodServices::default());
    let pod_triggers = {
        let services = services.clone();
        let pod_index = pod_index.clone();
        trigger_with(pod_events, move |event| match event {
            Event::Apply(pod) | Event::InitApply(pod) => pod_index.changed(&pod, &services, false),
            Event::Delete(pod) => pod_index.changed(&pod, &services, true),
            Event::Init | Event::InitDone => Vec::new(),
        })
    };
    let slice_triggers = {
        let ctx = ctx.clone();
        trigger_with(slice_events, move |event| match event {
            Event::Apply(slice) | Event::InitApply(slice) => owning_service(&slice),
            Event::Delete(slice) => {
                if let Some(uid) = slice.metadata.uid.as_deref() {
                    ctx.tracker.forget_slice(uid);
                }
                owning_service(&slice)
            }
            Event::Init | Event::InitDone => None,
        })
    };
    // Pods on a node that appears, goes or changes zone need their
    // endpoints redone; heartbeats change nothing here.
    let node_zones: Mutex<HashMap<String, Option<String>>> = Mutex::default();
    let node_triggers = trigger_with(node_events, move |event| {
        let (node, gone) = match event {
            Event::Apply(node) | Event::InitApply(node) => (node, false),
            Event::Delete(node) => (node, true),
            Event::Init | Event::InitDone => return Vec::new(),
        };
        let name = node.metadata.name.clone().unwrap_or_default();
        let zone = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE_LABEL))
            .cloned();
        let mut zones = node_zones
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = if gone {
            zones.remove(&name).is_some()
        } else {
            zones.insert(name.clone(), zone.clone()) != Some(zone)
        };
        drop(zones);
        if !changed {
            return Vec::new();
        }
        let mut services: Vec<ObjectRef<Service>> = Vec::new();
        for pod in pods.state_filter(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
        }) {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            for svc in pod_index.of(namespace, pod.metadata.name.as_deref().unwrap_or_default()) {
                if !services.contains(&svc) {
                    services.push(svc);
                }
            }
        }
        services
    });
    let queue = stream::select_all([
        service_triggers.boxed(),
        pod_triggers.boxed(),
        slice_triggers.boxed(),
        node_triggers.boxed(),
    ])
    .take_until(shutdown.cancelled_owned());
    applier(
        |svc, ctx| Box::pin(reconcile(svc, ctx)),
        error_policy,
        ctx,
        services,
        queue,
        ControllerConfig::default(),
    )
    .for_each(|result| async move {
        match result {
            Ok(_) | Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
            Err(err) => tracing::debug!(%err, "endpointslice controller"),
        }
    })
    .await;
}

fn error_policy(service: Arc<Service>, err: &EndpointSliceError, ctx: Arc<Context>) -> Action {
    let key = object_key(&service.metadata);
    match err {
        EndpointSliceError::StaleCache => {
            tracing::debug!(service = %key, "waiting for the slice cache")
        }
        _ => tracing::warn!(service = %key, %err, "syncing endpoint slices"),
    }
    Action::requeue(ctx.backoff.next_delay(&key))
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, EndpointSliceError> {
    for (store_ready, what) in [
        (ctx.pods.wait_until_ready().await.is_ok(), "pods"),
        (ctx.nodes.wait_until_ready().await.is_ok(), "nodes"),
        (
            ctx.slices.wait_until_ready().await.is_ok(),
            "endpointslices",
        ),
    ] {
        if !store_ready {
            return Err(EndpointSliceError::InformerStopped(what));
        }
    }
    sync_service(&service, &ctx).await?;
    ctx.backoff.reset(&object_key(&service.metadata));
    Ok(Action::await_change())
}

/// Upstream's `syncService` for a Service that exists.
async fn sync_service(service: &Service, ctx: &Context) -> Result<(), EndpointSliceError> {
    let Some(selector) = selection::managed_selector(service) else {
        return Ok(());
    };
    let key = service_key(service);
    let (namespace, name) = (&key.0, &key.1);
    let pods = selection::selected_pods(&ctx.pods, namespace, selector);
    let existing = ctx.slices.state_filter(|slice| {
        slice.metadata.namespace.as_deref() == Some(namespace.as_str())
            && slice.metadata.deletion_timestamp.is_none()
            && label(slice, SERVICE_NAME_LABEL) == Some(name.as_str())
            && label(slice, MANAGED_BY_LABEL) == Some(CONTROLLER_NAME)
    });
    if ctx.tracker.stale(&key, &existing) {
        return Err(EndpointSliceError::StaleCache);
    }
    let trigger = ctx.trigger_times.compute(service, &pods);
    let node = |name: &str| ctx.nodes.get(&ObjectRef::new(name));
    let plan = reconciler::plan(service, &pods, &node, &existing, MAX_ENDPOINTS_PER_SLICE);
    let mut errors = Vec::new();
    match write_plan(
        service,
        &key,
        ctx,
        plan.create,
        plan.update,
        plan.delete,
        trigger.time,
    )
    .await
    {
        Ok(()) => ctx.trigger_times.record(trigger),
        Err(err) => errors.push(err),
    }
    errors.extend(plan.skipped);
    if errors.is_empty() {
        return Ok(());
    }
    let message = if errors.len() == 1 {
        errors.remove(0)
    } else {
        format!("[{}]", errors.join(", "))
    };
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some(namespace.clone()),
        name: Some(name.clone()),
        uid: service.metadata.uid.clone(),
        ..Default::default()
    };
    ctx.events
        .warning(
            &reference,
            "FailedToUpdateEndpointSlices",
            format!("Error updating Endpoint Slices for Service {namespace}/{name}: {message}"),
        )
        .await;
    Err(EndpointSliceError::Sync(message))
}

/// Upstream's `finalize`: creates (not for a Service being deleted), then
/// updates, then deletes, each stamped with the trigger time; stops at the
/// first failure, returning upstream's text for it.
async fn write_plan(
    service: &Service,
    key: &(String, String),
    ctx: &Context,
    create: Vec<EndpointSlice>,
    update: Vec<EndpointSlice>,
    delete: Vec<EndpointSlice>,
    trigger_time: Option<k8s_openapi::jiff::Timestamp>,
) -> Result<(), String> {
    let (namespace, name) = (&key.0, &key.1);
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    if service.metadata.deletion_timestamp.is_none() {
        for mut slice in create {
            stamp_trigger_time(&mut slice, trigger_time);
            match api.create(&params, &slice).await {
                Ok(created) => ctx.tracker.written(key, &created),
                // Creates fail for as long as the namespace is terminating.
                Err(err) if namespace_terminating(&err) => return Ok(()),
                Err(err) => {
                    return Err(format!(
                        "failed to create EndpointSlice for Service {namespace}/{name}: {}",
                        api_message(&err)
                    ));
                }
            }
        }
    }
    for mut slice in update {
        stamp_trigger_time(&mut slice, trigger_time);
        let slice_name = slice.metadata.name.clone().unwrap_or_default();
        match api.replace(&slice_name, &params, &slice).await {
            Ok(updated) => ctx.tracker.written(key, &updated),
            Err(err) => {
                return Err(format!(
                    "failed to update {slice_name} EndpointSlice for Service {namespace}/{name}: {}",
                    api_message(&err)
                ));
            }
        }
    }
    for slice in delete {
        let slice_name = slice.metadata.name.clone().unwrap_or_default();
        match api.delete(&slice_name, &DeleteParams::default()).await {
            Ok(_) => ctx.tracker.deleted(key, &slice),
            Err(kube::Error::Api(status)) if status.code == 404 => ctx.tracker.deleted(key, &slice),
            Err(err) => {
                return Err(format!(
                    "failed to delete {slice_name} EndpointSlice for Service {namespace}/{name}: {}",
                    api_message(&err)
                ));
            }
        }
    }
    Ok(())
}

fn stamp_trigger_time(
    slice: &mut EndpointSlice,
    trigger_time: Option<k8s_openapi::jiff::Timestamp>,
) {
    let annotations = slice.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match trigger_time {
        Some(time) => {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), format_rfc3339_nano(time));
        }
        None => {
            annotations.remove(LAST_CHANGE_TRIGGER_TIME);
        }
    }
}

fn service_key(service: &Service) -> (String, String) {
    (
        service.metadata.namespace.clone().unwrap_or_default(),
        service.metadata.name.clone().unwrap_or_default(),
    )
}

fn label<'a>(slice: &'a EndpointSlice, key: &str) -> Option<&'a str> {
    slice.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The Service a slice of this controller belongs to.
fn owning_service(slice: &EndpointSlice) -> Option<ObjectRef<Service>> {
    if label(slice, MANAGED_BY_LABEL) != Some(CONTROLLER_NAME) {
        return None;
    }
    let name = label(slice, SERVICE_NAME_LABEL)?;
    Some(ObjectRef::new(name).within(slice.metadata.namespace.as_deref().unwrap_or_default()))
}
