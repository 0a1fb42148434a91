//! Namespaces: the ones every cluster has, and the cleaner that empties a
//! Terminating namespace (deleting each object in it, waiting for their
//! finalizers), then drops its `kubernetes` finalizer and the namespace.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Api;
use super::error::ApiError;
use super::kubernetes_endpoints;
use super::object::{self, meta_str};
use super::store;
use super::verbs;

/// Namespaces made at first start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// How often the cleaner looks even when not woken.
const RESYNC: Duration = Duration::from_secs(5);

/// Makes the system namespaces and the `kubernetes` service when missing,
/// and points the service's endpoints at `advertise`, where clients reach
/// this apiserver.
pub fn bootstrap(api: &Api, advertise: SocketAddr) -> Result<(), ApiError> {
    let apiserver_port = advertise.port();
    let ns_type = api
        .resources
        .find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("namespaces are not served"))?;
    for name in SYSTEM_NAMESPACES {
        if api.store.try_get(&ns_type, "", name, 0)?.is_some() {
            continue;
        }
        let mut ns = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": name, "labels": { "kubernetes.io/metadata.name": name } },
            "spec": { "finalizers": ["kubernetes"] },
            "status": { "phase": "Active" },
        });
        verbs::prepare_create(&ns_type, &mut ns);
        ns["status"] = json!({ "phase": "Active" });
        match api.store.create(&ns_type, &ns, 0) {
            Ok(_) => {}
            Err(err) if err.reason == "AlreadyExists" => {}
            Err(err) => return Err(err),
        }
    }
    let svc_type = api
        .resources
        .find("", "v1", "services")
        .ok_or_else(|| ApiError::internal("services are not served"))?;
    let ip = api.services.first_ip();
    api.services.reserve(ip);
    if api
        .store
        .try_get(&svc_type, "default", "kubernetes", 0)?
        .is_none()
    {
        let mut svc = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": { "component": "apiserver", "provider": "kubernetes" },
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": ip.to_string(),
                "clusterIPs": [ip.to_string()],
                "ports": [{ "name": "https", "port": 443, "protocol": "TCP", "targetPort": apiserver_port }],
                "sessionAffinity": "None",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster",
            },
            "status": { "loadBalancer": {} },
        });
        verbs::prepare_create(&svc_type, &mut svc);
        svc["status"] = json!({ "loadBalancer": {} });
        match api.store.create(&svc_type, &svc, 0) {
            Ok(_) => {}
            Err(err) if err.reason == "AlreadyExists" => {}
            Err(err) => return Err(err),
        }
    }
    kubernetes_endpoints::reconcile(api, advertise)
}

/// Runs the cleaner until `shutdown`.
pub async fn run_cleaner(api: Arc<Api>, shutdown: CancellationToken) {
    loop {
        let pass = {
            let api = api.clone();
            tokio::task::spawn_blocking(move || clean(&api)).await
        };
        match pass {
            Ok(Err(err)) => tracing::warn!(%err, "cleaning terminating namespaces"),
            Err(err) => tracing::warn!(%err, "namespace cleaner task"),
            Ok(Ok(())) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = api.namespaces_changed.notified() => {
                // Let a burst of deletes settle.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            () = tokio::time::sleep(RESYNC) => {}
        }
    }
}

/// One pass over every Terminating namespace.
fn clean(api: &Api) -> Result<(), ApiError> {
    let Some(ns_type) = api.resources.find("", "v1", "namespaces") else {
        return Ok(());
    };
    let namespaces = api.store.list(&ns_type, "", 0, None, 0)?;
    for ns in namespaces.items {
        if meta_str(&ns, "deletionTimestamp").is_empty() {
            continue;
        }
        let name = meta_str(&ns, "name").to_owned();
        let remaining = empty(api, &name)?;
        if remaining > 0 {
            continue;
        }
        // Content gone: drop the `kubernetes` finalizer, then the namespace
        // once no metadata finalizer holds it.
        let ns = api.store.update_with(&ns_type, "", &name, |mut ns| {
            let spec_finalizers = ns["spec"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let kept: Vec<_> = spec_finalizers
                .into_iter()
                .filter(|f| f != "kubernetes")
                .collect();
            if ns["spec"]["finalizers"].as_array().map(Vec::len) == Some(kept.len()) {
                return Ok(None);
            }
            ns["spec"]["finalizers"] = json!(kept);
            Ok(Some(ns))
        })?;
        let spec_done = ns["spec"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
        if spec_done && object::finalizers(&ns).is_empty() {
            match api
                .store
                .delete(&ns_type, "", &name, store::resource_version(&ns))
            {
                Ok((gone, _)) => {
                    tracing::info!(namespace = %name, "namespace deleted");
                    api.deleted(&ns_type, &gone);
                }
                Err(err) if err.reason == "Conflict" || err.reason == "NotFound" => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(())
}

/// Deletes every object in `namespace`; returns how many remain (waiting
/// for finalizers or their node).
fn empty(api: &Api, namespace: &str) -> Result<usize, ApiError> {
    let mut remaining = 0;
    for rt in api.resources.all() {
        if !rt.namespaced {
            continue;
        }
        let page = api.store.list(&rt, namespace, 0, None, 0)?;
        for item in page.items {
            remaining += 1;
            if !meta_str(&item, "deletionTimestamp").is_empty() {
                continue;
            }
            let call = super::context::Call {
                info: super::request::RequestInfo {
                    verb: "delete".into(),
                    group: rt.group.clone(),
                    version: rt.version.clone(),
                    namespace: namespace.to_owned(),
                    resource: rt.plural.clone(),
                    name: meta_str(&item, "name").to_owned(),
                    subresource: String::new(),
                },
                query: Default::default(),
                headers: Default::default(),
                user: super::auth::User::system(
                    "system:serviceaccount:kube-system:namespace-controller",
                ),
                rt: rt.clone(),
                wanted: super::body::Wanted::Object,
            };
            let options = verbs::DeleteOptions {
                propagation: Some("Background".into()),
                ..Default::default()
            };
            match verbs::delete_object(api, &call, namespace, meta_str(&item, "name"), &options) {
                Ok((_, true)) => remaining -= 1,
                Ok((_, false)) => {}
                Err(err) if err.reason == "NotFound" => remaining -= 1,
                Err(err) => return Err(err),
            }
        }
    }
    Ok(remaining)
}
