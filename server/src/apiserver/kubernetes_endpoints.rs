//! The `kubernetes` Service's Endpoints and EndpointSlice in `default`:
//! the address and port clients reach the apiserver at, written at every
//! start as kube-apiserver's endpoint reconciler writes them (so
//! `kubectl get endpoints kubernetes` shows where the apiserver is, and a
//! moved address is corrected).

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::Api;
use super::error::ApiError;
use super::verbs;

/// The Service, Endpoints and EndpointSlice name.
const NAME: &str = "kubernetes";
const NAMESPACE: &str = "default";

/// Makes the `kubernetes` Endpoints and EndpointSlice list `advertise`,
/// creating them or correcting what they list.
pub fn reconcile(api: &Api, advertise: SocketAddr) -> Result<(), ApiError> {
    let ip = advertise.ip().to_string();
    let port = json!([{ "name": "https", "port": advertise.port(), "protocol": "TCP" }]);
    let endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": { "endpointslice.kubernetes.io/skip-mirror": "true" },
        },
        "subsets": [{ "addresses": [{ "ip": ip }], "ports": port }],
    });
    write(api, ("", "v1", "endpoints"), endpoints, &["subsets"])?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": { "kubernetes.io/service-name": NAME },
        },
        "addressType": if advertise.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{ "addresses": [ip], "conditions": { "ready": true } }],
        "ports": port,
    });
    write(
        api,
        ("discovery.k8s.io", "v1", "endpointslices"),
        slice,
        &["addressType", "endpoints", "ports"],
    )
}

/// Creates `desired`, or copies its `fields` onto the stored object when
/// they differ.
fn write(
    api: &Api,
    (group, version, plural): (&str, &str, &str),
    mut desired: Value,
    fields: &[&str],
) -> Result<(), ApiError> {
    let rt = api
        .resources
        .find(group, version, plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))?;
    if api.store.try_get(&rt, NAMESPACE, NAME, 0)?.is_none() {
        verbs::prepare_create(&rt, &mut desired);
        match api.store.create(&rt, &desired, 0) {
            Err(err) if err.reason != "AlreadyExists" => return Err(err),
            _ => return Ok(()),
        }
    }
    api.store.update_with(&rt, NAMESPACE, NAME, |mut current| {
        if fields.iter().all(|f| current.get(*f) == desired.get(*f)) {
            return Ok(None);
        }
        for field in fields {
            current[*field] = desired[*field].clone();
        }
        Ok(Some(current))
    })?;
    Ok(())
}
