//! The Endpoints controller (kube-controller-manager's
//! `endpoint-controller`): one Endpoints object per Service with a
//! selector, named as the Service, listing its pods' addresses — ready ones
//! under `addresses`, others under `notReadyAddresses` (all ready with
//! `publishNotReadyAddresses`) — on the container ports its ports target.
//!
//! Selector-less and ExternalName Services are left alone (their Endpoints
//! are written by hand); an Endpoints object whose Service is gone is
//! deleted, at the Service's deletion and, for leftovers, whenever the
//! Service watch (re)lists.
//!
//! # Layout
//! - this file: the informers, triggers and the reconcile of one Service.
//! - `subsets`: packing, capping and comparing subsets as upstream does.

#[path = "endpoints/subsets.rs"]
mod subsets;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::applier;
use kube::runtime::controller::{
    Action, Config as ControllerConfig, ReconcileRequest, trigger_with,
};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::common::{Events, pod_is_ready};
use super::endpointslice::selection::{self, PodServices};
use super::endpointslice::trigger_time::{
    LAST_CHANGE_TRIGGER_TIME, TriggerTimeTracker, format_rfc3339_nano,
};
use super::queue::{ErrorBackoff, api_message, informer, namespace_terminating, object_key};

/// The label marking the Endpoints of a headless Service.
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The annotation saying the addresses were cut to [`subsets::MAX_CAPACITY`].
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The annotation of Endpoints used as leader-election locks (never deleted).
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// The field manager of the controller's writes.
const FIELD_MANAGER: &str = "kube-controller-manager";

/// What failed while reconciling a Service's Endpoints.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    /// A write to the API failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being written.
        what: String,
        /// The client's error.
        source: kube::Error,
    },
    /// An informer stopped before its cache filled.
    #[error("the {0} informer stopped")]
    InformerStopped(&'static str),
    /// The Endpoints cache has not seen the controller's last write yet.
    #[error("endpoints informer cache is out of date for {0}")]
    StaleCache(String),
}

/// The controller's caches and helpers.
struct Context {
    client: kube::Client,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    trigger_times: TriggerTimeTracker,
    stale: StaleEndpoints,
    backoff: ErrorBackoff,
    events: Events,
}

/// What the Service watch asks of the clean-up task.
#[derive(Debug)]
enum Cleanup {
    /// The Service went: delete its Endpoints.
    Deleted(ObjectRef<Service>),
    /// The Service watch listed everything: delete Endpoints without a Service.
    Sweep,
}

/// Runs the Endpoints controller until `shutdown` is cancelled.
pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let (services, service_events) = informer(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let (pods, pod_events) = informer(Api::<Pod>::all(client.clone()), watcher::Config::default());
    let (endpoints, endpoint_events) = informer(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods,
        endpoints,
        trigger_times: TriggerTimeTracker::default(),
        stale: StaleEndpoints::default(),
        backoff: ErrorBackoff::default(),
        events: Events::new(client, "endpoint-controller"),
    });
    let (cleanup_tx, cleanup_rx) = mpsc::unbounded_channel();
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
                        let key = ObjectRef::from_obj(&svc);
                        let namespace = key.namespace.as_deref().unwrap_or_default();
                        ctx.trigger_times.delete_service(namespace, &key.name);
                        ctx.stale.forget(namespace, &key.name);
                        let _ = cleanup_tx.send(Cleanup::Deleted(key));
                        Vec::new()
                    }
                    Event::InitDone => {
                        let _ = cleanup_tx.send(Cleanup::Sweep);
                        Vec::new()
                    }
                    Event::Init => Vec::new(),
                }
            },
        )
    };
    let pod_index = Arc::new(PodServices::default());
    let pod_triggers = {
        let services = services.clone();
        trigger_with(pod_events, move |event| match event {
            Event::Apply(pod) | Event::InitApply(pod) => pod_index.changed(&pod, &services, false),
            Event::Delete(pod) => pod_index.changed(&pod, &services, true),
            Event::Init | Event::InitDone => Vec::new(),
        })
    };
    // Upstream watches Endpoints only to re-create deleted ones.
    let endpoint_triggers = trigger_with(endpoint_events, |event| match event {
        Event::Delete(ep) => vec![
            ObjectRef::<Service>::new(ep.metadata.name.as_deref().unwrap_or_default())
                .within(ep.metadata.namespace.as_deref().unwrap_or_default()),
        ],
        _ => Vec::new(),
    });
    let queue = stream::select_all([
        service_triggers.boxed(),
        pod_triggers.boxed(),
        endpoint_triggers.boxed(),
    ])
    .take_until(shutdown.clone().cancelled_owned());
    let reconciles = applier(
        |svc, ctx| Box::pin(reconcile(svc, ctx)),
        error_policy,
        ctx.clone(),
        services.clone(),
        queue,
        ControllerConfig::default(),
    )
    .for_each(|result| async move {
        match result {
            Ok(_) => {}
            Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
            Err(err) => tracing::debug!(%err, "endpoints controller"),
        }
    });
    tokio::join!(reconciles, clean_up(ctx, services, cleanup_rx, shutdown));
}

fn error_policy(service: Arc<Service>, err: &EndpointsError, ctx: Arc<Context>) -> Action {
    let key = object_key(&service.metadata);
    match err {
        EndpointsError::StaleCache(_) => {
            tracing::debug!(service = %key, "waiting for the endpoints cache")
        }
        _ => tracing::warn!(service = %key, %err, "syncing endpoints"),
    }
    Action::requeue(ctx.backoff.next_delay(&key))
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, EndpointsError> {
    ctx.pods
        .wait_until_ready()
        .await
        .map_err(|_| EndpointsError::InformerStopped("pods"))?;
    ctx.endpoints
        .wait_until_ready()
        .await
        .map_err(|_| EndpointsError::InformerStopped("endpoints"))?;
    sync_service(&service, &ctx).await?;
    ctx.backoff.reset(&object_key(&service.metadata));
    Ok(Action::await_change())
}

/// Upstream's `syncService` for a Service that exists.
async fn sync_service(service: &Service, ctx: &Context) -> Result<(), EndpointsError> {
    let Some(selector) = selection::managed_selector(service) else {
        return Ok(());
    };
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let name = service.metadata.name.clone().unwrap_or_default();
    let pods = selection::selected_pods(&ctx.pods, &namespace, selector);
    let trigger = ctx.trigger_times.compute(service, &pods);
    let subsets = desired_subsets(service, &pods);
    let current = ctx.endpoints.get(&ObjectRef::new(&name).within(&namespace));
    if ctx.stale.is_stale(&namespace, &name, current.as_deref()) {
        return Err(EndpointsError::StaleCache(format!("{namespace}/{name}")));
    }
    let service_labels = service.metadata.labels.clone().unwrap_or_default();
    if let Some(current) = current.as_deref()
        && up_to_date(current, &subsets, &service_labels)
    {
        ctx.trigger_times.record(trigger);
        return Ok(());
    }
    let mut endpoints = match current.as_deref() {
        Some(current) => current.clone(),
        None => Endpoints {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        },
    };
    let creating = current.is_none();
    let mut subsets = subsets;
    let truncated = subsets::truncate(&mut subsets);
    endpoints.subsets = (!subsets.is_empty()).then_some(subsets);
    let annotations = endpoints
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    match trigger.time {
        Some(time) => {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), format_rfc3339_nano(time));
        }
        None => {
            annotations.remove(LAST_CHANGE_TRIGGER_TIME);
        }
    }
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    let mut labels = service_labels;
    if selection::is_service_ip_set(service) {
        labels.remove(HEADLESS_LABEL);
    } else {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    endpoints.metadata.labels = Some(labels);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let written = if creating {
        api.create(&params, &endpoints).await
    } else {
        api.replace(&name, &params, &endpoints).await
    };
    match written {
        Ok(written) => {
            ctx.trigger_times.record(trigger);
            ctx.stale
                .wrote(&namespace, &name, current.as_deref(), &written);
            Ok(())
        }
        Err(err) if creating && namespace_terminating(&err) => Ok(()),
        Err(err) => {
            let reference = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Endpoints".into()),
                namespace: Some(namespace.clone()),
                name: Some(name.clone()),
                uid: endpoints.metadata.uid.clone(),
                ..Default::default()
            };
            let (reason, note) = if creating {
                (
                    "FailedToCreateEndpoint",
                    format!(
                        "Failed to create endpoint for service {namespace}/{name}: {}",
                        api_message(&err)
                    ),
                )
            } else {
                (
                    "FailedToUpdateEndpoint",
                    format!(
                        "Failed to update endpoint {namespace}/{name}: {}",
                        api_message(&err)
                    ),
                )
            };
            ctx.events.warning(&reference, reason, note).await;
            Err(EndpointsError::Api {
                what: format!("writing Endpoints {namespace}/{name}"),
                source: err,
            })
        }
    }
}

/// The controller's writes the Endpoints cache has not shown yet (upstream's
/// `staleEndpointsTracker`, extended to creates): planning from an older
/// copy would only fail with a conflict (or AlreadyExists) and a warning.
/// Expectations older than [`STALE_FORGET_AFTER`] are dropped.
#[derive(Debug, Default)]
struct StaleEndpoints {
    expected: Mutex<HashMap<(String, String), (Written, Instant)>>,
}

/// What the cache should show after a write.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Written {
    /// An object (it had none).
    Created,
    /// A resourceVersion other than this, the one replaced.
    Replaced(String),
}

/// How long an unmet expectation is kept.
const STALE_FORGET_AFTER: Duration = Duration::from_secs(30);

impl StaleEndpoints {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (Written, Instant)>> {
        self.expected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes a successful create or replace of `before` by `after`.
    fn wrote(&self, namespace: &str, name: &str, before: Option<&Endpoints>, after: &Endpoints) {
        let expected = match before {
            None => Written::Created,
            Some(before) => {
                let old = before.metadata.resource_version.clone().unwrap_or_default();
                if after.metadata.resource_version.as_ref() == Some(&old) {
                    // A write that changed nothing: the cache is current.
                    return;
                }
                Written::Replaced(old)
            }
        };
        self.lock().insert(
            (namespace.to_owned(), name.to_owned()),
            (expected, Instant::now()),
        );
    }

    /// Whether `cached` predates the controller's last write; a met
    /// expectation is dropped.
    fn is_stale(&self, namespace: &str, name: &str, cached: Option<&Endpoints>) -> bool {
        let mut expected = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        let Some((written, since)) = expected.get(&key) else {
            return false;
        };
        let stale = since.elapsed() < STALE_FORGET_AFTER
            && match (written, cached) {
                (Written::Created, None) => true,
                (Written::Replaced(old), Some(cached)) => {
                    cached.metadata.resource_version.as_ref() == Some(old)
                }
                _ => false,
            };
        if !stale {
            expected.remove(&key);
        }
        stale
    }

    /// Forgets a deleted Service.
    fn forget(&self, namespace: &str, name: &str) {
        self.lock().remove(&(namespace.to_owned(), name.to_owned()));
    }
}

/// Whether the stored Endpoints already say what the Service and its pods
/// say (upstream skips the write then, even if the trigger time moved).
fn up_to_date(
    current: &Endpoints,
    desired: &[EndpointSubset],
    service_labels: &BTreeMap<String, String>,
) -> bool {
    let stored = current.subsets.as_deref().unwrap_or_default();
    let mut labels = current.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    let annotated = current
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(OVER_CAPACITY));
    subsets::normalized(stored) == subsets::normalized(desired)
        && &labels == service_labels
        && subsets::capacity_annotation_correct(annotated, stored)
}

/// The Service's subsets from its selected pods, packed.
fn desired_subsets(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let ports = selection::service_ports(service);
    let mut subsets = Vec::new();
    for pod in pods {
        if !selection::should_pod_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(address) = endpoint_address(service, pod) else {
            tracing::debug!(pod = ?pod.metadata.name, "no pod IP of the Service's family");
            continue;
        };
        let ready = publish_not_ready || pod_is_ready(pod);
        let add = |subsets: &mut Vec<EndpointSubset>, port: Option<EndpointPort>| {
            let list = Some(vec![address.clone()]);
            subsets.push(EndpointSubset {
                addresses: if ready { list.clone() } else { None },
                not_ready_addresses: if ready { None } else { list },
                ports: port.map(|p| vec![p]),
            });
        };
        if ports.is_empty() {
            // Headless Services may have no ports.
            if selection::is_headless(service) {
                add(&mut subsets, None);
            }
            continue;
        }
        for service_port in ports {
            let Some(number) = selection::find_port(pod, service_port) else {
                tracing::debug!(pod = ?pod.metadata.name, port = ?service_port.name, "no such container port");
                continue;
            };
            add(
                &mut subsets,
                Some(EndpointPort {
                    name: service_port.name.clone().filter(|n| !n.is_empty()),
                    port: number,
                    protocol: service_port.protocol.clone(),
                    app_protocol: service_port.app_protocol.clone(),
                }),
            );
        }
    }
    subsets::repack(&subsets)
}

/// The pod's address for the Service: the pod IP of the Service's first IP
/// family, the node and a reference to the pod; the hostname when the pod's
/// subdomain is this Service.
fn endpoint_address(service: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let want_v6 = wants_ipv6(service, pod);
    let ip = selection::pod_ips(pod)
        .into_iter()
        .find(|ip| ip.contains(':') == want_v6)?;
    Some(EndpointAddress {
        ip: ip.to_owned(),
        hostname: selection::endpoint_hostname(pod, service),
        node_name: selection::node_name(pod),
        target_ref: Some(selection::pod_reference(pod)),
    })
}

/// Upstream's family choice: the Service's first IP family; without one
/// the cluster IP's family, or for headless Services the pod IP's.
fn wants_ipv6(service: &Service, pod: &Pod) -> bool {
    let spec = service.spec.as_ref();
    if let Some(family) = spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
    {
        return family == "IPv6";
    }
    if selection::is_service_ip_set(service) {
        return spec
            .and_then(|s| s.cluster_ip.as_deref())
            .is_some_and(|ip| ip.contains(':'));
    }
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .is_some_and(|ip| ip.contains(':'))
}

/// Deletes the Endpoints of deleted Services, and after each full list of
/// Services the Endpoints no Service owns any more (upstream's
/// `checkLeftoverEndpoints`), leader-election locks excepted.
async fn clean_up(
    ctx: Arc<Context>,
    services: Store<Service>,
    mut requests: mpsc::UnboundedReceiver<Cleanup>,
    shutdown: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            () = shutdown.cancelled() => return,
            request = requests.recv() => match request {
                Some(request) => request,
                None => return,
            },
        };
        let targets: Vec<ObjectRef<Service>> = match request {
            Cleanup::Deleted(service) => vec![service],
            Cleanup::Sweep => {
                if ctx.endpoints.wait_until_ready().await.is_err() {
                    return;
                }
                ctx.endpoints
                    .state()
                    .iter()
                    .filter(|ep| {
                        !ep.metadata
                            .annotations
                            .as_ref()
                            .is_some_and(|a| a.contains_key(LEADER_ANNOTATION))
                    })
                    .map(|ep| {
                        ObjectRef::new(ep.metadata.name.as_deref().unwrap_or_default())
                            .within(ep.metadata.namespace.as_deref().unwrap_or_default())
                    })
                    .collect()
            }
        };
        for service in targets {
            // A Service of the same name may be back already.
            if services.get(&service).is_some() {
                continue;
            }
            let namespace = service.namespace.clone().unwrap_or_default();
            let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &namespace);
            match api.delete(&service.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => {
                    tracing::warn!(%err, endpoints = %service, "deleting the Endpoints of a deleted Service");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, extra: serde_json::Value) -> Arc<Pod> {
        let mut value = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            },
        });
        merge(&mut value, extra);
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn merge(target: &mut serde_json::Value, patch: serde_json::Value) {
        if let (Some(t), serde_json::Value::Object(p)) = (target.as_object_mut(), patch.clone()) {
            for (k, v) in p {
                merge(t.entry(k).or_insert(serde_json::Value::Null), v);
            }
        } else if !patch.is_null() {
            *target = patch;
        }
    }

    #[test]
    fn ready_and_not_ready_pods_on_a_named_port() {
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "10.43.0.9",
            "ports": [{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}]}));
        let pods = [
            pod("a", "10.42.0.5", true, json!({})),
            pod("b", "10.42.0.6", false, json!({})),
        ];
        let subsets = desired_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        let ready = s.addresses.as_ref().unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].ip, "10.42.0.5");
        assert_eq!(ready[0].node_name.as_deref(), Some("node-a"));
        let target = ready[0].target_ref.as_ref().unwrap();
        assert_eq!(
            (target.kind.as_deref(), target.name.as_deref()),
            (Some("Pod"), Some("a"))
        );
        assert_eq!(s.not_ready_addresses.as_ref().unwrap()[0].ip, "10.42.0.6");
        let port = &s.ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("web"), 8080));
    }

    #[test]
    fn a_pod_without_the_named_port_is_left_out_of_that_port_only() {
        let svc = service(
            json!({"selector": {"app": "web"}, "clusterIP": "10.43.0.9", "ports": [
                {"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "admin", "port": 81, "targetPort": "admin", "protocol": "TCP"},
            ]}),
        );
        let with_admin = pod(
            "a",
            "10.42.0.5",
            true,
            json!({"spec": {"containers": [{"name": "c", "ports": [
            {"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 9000}]}]}}),
        );
        let without = pod("b", "10.42.0.6", true, json!({}));
        let subsets = desired_subsets(&svc, &[with_admin, without]);
        assert_eq!(subsets.len(), 2);
        let web = subsets
            .iter()
            .find(|s| s.ports.as_ref().unwrap()[0].name.as_deref() == Some("web"))
            .unwrap();
        assert_eq!(web.addresses.as_ref().unwrap().len(), 2);
        let admin = subsets
            .iter()
            .find(|s| s.ports.as_ref().unwrap()[0].name.as_deref() == Some("admin"))
            .unwrap();
        assert_eq!(admin.addresses.as_ref().unwrap().len(), 1);
        assert_eq!(admin.ports.as_ref().unwrap()[0].port, 9000);
    }

    #[test]
    fn publish_not_ready_makes_every_pod_ready_even_terminating() {
        let svc = service(
            json!({"selector": {"app": "web"}, "clusterIP": "10.43.0.9", "publishNotReadyAddresses": true,
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}),
        );
        let terminating = pod(
            "b",
            "10.42.0.6",
            false,
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
        );
        let subsets = desired_subsets(
            &svc,
            &[pod("a", "10.42.0.5", false, json!({})), terminating.clone()],
        );
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 2);
        assert!(subsets[0].not_ready_addresses.is_none());
        let plain = service(json!({"selector": {"app": "web"}, "clusterIP": "10.43.0.9",
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}));
        assert!(desired_subsets(&plain, &[terminating]).is_empty());
    }

    #[test]
    fn headless_without_ports_lists_addresses_and_hostnames() {
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let named = pod(
            "a",
            "10.42.0.5",
            true,
            json!({"spec": {"hostname": "db-0", "subdomain": "web"}}),
        );
        let subsets = desired_subsets(&svc, &[named]);
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].ports.is_none());
        assert_eq!(
            subsets[0].addresses.as_ref().unwrap()[0]
                .hostname
                .as_deref(),
            Some("db-0")
        );
    }

    fn with_version(version: &str) -> Endpoints {
        let mut ep = Endpoints::default();
        ep.metadata.resource_version = Some(version.into());
        ep
    }

    #[test]
    fn the_cache_is_stale_until_it_shows_the_last_write() {
        let stale = StaleEndpoints::default();
        assert!(!stale.is_stale("default", "web", None));
        stale.wrote("default", "web", None, &with_version("5"));
        assert!(stale.is_stale("default", "web", None));
        assert!(!stale.is_stale("default", "web", Some(&with_version("5"))));
        stale.wrote(
            "default",
            "web",
            Some(&with_version("5")),
            &with_version("7"),
        );
        assert!(stale.is_stale("default", "web", Some(&with_version("5"))));
        assert!(!stale.is_stale("default", "web", Some(&with_version("7"))));
        // Met: forgotten.
        assert!(!stale.is_stale("default", "web", Some(&with_version("5"))));
        // A no-op write leaves nothing to wait for.
        stale.wrote(
            "default",
            "web",
            Some(&with_version("7")),
            &with_version("7"),
        );
        assert!(!stale.is_stale("default", "web", Some(&with_version("7"))));
    }

    #[test]
    fn stored_endpoints_matching_the_desired_ones_are_up_to_date() {
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let subsets = desired_subsets(&svc, &[pod("a", "10.42.0.5", true, json!({}))]);
        let labels: BTreeMap<String, String> = [("app".to_owned(), "web".to_owned())].into();
        let mut stored_labels = labels.clone();
        stored_labels.insert(HEADLESS_LABEL.into(), String::new());
        let stored = Endpoints {
            metadata: kube::api::ObjectMeta {
                labels: Some(stored_labels),
                ..Default::default()
            },
            subsets: Some(subsets.clone()),
        };
        assert!(up_to_date(&stored, &subsets, &labels));
        assert!(!up_to_date(&stored, &[], &labels));
        assert!(!up_to_date(&stored, &subsets, &BTreeMap::new()));
    }
}
