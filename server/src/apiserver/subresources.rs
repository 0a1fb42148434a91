//! Subresources other than status: `scale`, `pods/binding`,
//! `pods/eviction`, `namespaces/finalize`, `serviceaccounts/token`. The
//! node-side ones (`log`, `exec`, `attach`, `portforward`, `proxy`) are
//! relayed by `kubelet` before a request gets here.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::Api;
use super::body;
use super::context::{Call, Reply};
use super::error::ApiError;
use super::object::meta_str;
use super::patch::{self, PatchType};
use super::selector::LabelSelector;
use super::store;
use super::tokens;
use super::verbs::{self, DeleteOptions, Part};

/// Answers a subresource request.
pub fn serve(api: &Api, call: &Call, bytes: &[u8]) -> Result<Reply, ApiError> {
    let rt = &call.rt;
    let sub = call.info.subresource.as_str();
    if !rt.has_subresource(sub) {
        return Err(ApiError::no_resource());
    }
    match (sub, call.info.verb.as_str()) {
        ("status", "get") => verbs::get(api, call),
        ("status", "update") => verbs::update(api, call, bytes, Part::Status),
        ("status", "patch") => verbs::patch(api, call, bytes, Part::Status),
        ("scale", "get") => Ok(Reply::ok(scale_of(
            call,
            &api.store.get(rt, call.namespace(), call.name(), 0)?,
        ))),
        ("scale", "update" | "patch") => update_scale(api, call, bytes),
        ("binding", "create") => bind(api, call, bytes),
        ("eviction", "create") => evict(api, call, bytes),
        ("finalize", "update") => finalize(api, call, bytes),
        ("ephemeralcontainers", "get") => verbs::get(api, call),
        ("token", "create") => {
            let tokens = api.tokens.get().ok_or_else(|| {
                ApiError::unavailable("the apiserver has no service-account signing key")
            })?;
            tokens::create_token(api, tokens, call, bytes, time::OffsetDateTime::now_utc())
        }
        (_, verb) => Err(ApiError::method_not_allowed(format!(
            "{verb} is not supported on {}/{sub}",
            rt.plural
        ))),
    }
}

/// The `autoscaling/v1` Scale of a workload.
fn scale_of(call: &Call, obj: &Value) -> Value {
    let selector = selector_string(&obj["spec"]["selector"]);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta_str(obj, "name"),
            "namespace": meta_str(obj, "namespace"),
            "uid": meta_str(obj, "uid"),
            "resourceVersion": meta_str(obj, "resourceVersion"),
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": { "replicas": obj["spec"]["replicas"].as_i64().unwrap_or(if call.rt.custom { 0 } else { 1 }) },
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector,
        },
    })
}

/// A workload's selector as the string Scale carries (kube-apiserver's
/// `LabelSelectorAsSelector(...).String()`); a ReplicationController's
/// selector is a plain label map.
fn selector_string(selector: &Value) -> String {
    let parsed =
        if selector.get("matchLabels").is_some() || selector.get("matchExpressions").is_some() {
            LabelSelector::from_object(selector).ok()
        } else {
            selector.as_object().map(LabelSelector::from_map)
        };
    parsed.map(|s| s.to_string()).unwrap_or_default()
}

fn update_scale(api: &Api, call: &Call, bytes: &[u8]) -> Result<Reply, ApiError> {
    let rt = &call.rt;
    let current = api.store.get(rt, call.namespace(), call.name(), 0)?;
    let scale = if call.info.verb == "patch" {
        let patch_type = PatchType::from_content_type(&body::content_type(&call.headers))
            .ok_or_else(|| {
                ApiError::unsupported_media_type("the patch content type is not supported")
            })?;
        patch::apply_patch(
            patch_type,
            &scale_of(call, &current),
            bytes,
            Some("io.k8s.api.autoscaling.v1.Scale"),
            api.openapi.as_ref(),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?
    } else {
        body::decode_object(&call.headers, bytes)?
    };
    let Some(replicas) = scale["spec"]["replicas"].as_i64() else {
        return Err(ApiError::bad_request(
            "spec.replicas is required in a Scale",
        ));
    };
    let explicit = store::resource_version(&scale);
    let written = loop {
        let old = api.store.get(rt, call.namespace(), call.name(), 0)?;
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(replicas);
        match verbs::write_update(api, call, &old, new, explicit, Part::Main) {
            Err(err) if err.reason == "Conflict" && explicit == 0 => continue,
            other => break other?,
        }
    };
    Ok(Reply::ok(scale_of(call, &written)))
}

/// `pods/binding`: assigns a pending pod to a node (once).
fn bind(api: &Api, call: &Call, bytes: &[u8]) -> Result<Reply, ApiError> {
    let binding = body::decode_object(&call.headers, bytes)?;
    let node = binding["target"]["name"].as_str().unwrap_or("").to_owned();
    if node.is_empty() {
        return Err(ApiError::bad_request("target.name: Required value"));
    }
    let rt = &call.rt;
    api.store.update_with(rt, call.namespace(), call.name(), |mut pod| {
        if !meta_str(&pod, "deletionTimestamp").is_empty() {
            return Err(ApiError::conflict(&rt.group, &rt.plural, call.name(), "pod is being deleted, cannot be assigned to a host"));
        }
        if let Some(bound) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                call.name(),
                &format!("pod {} is already assigned to node {bound:?}", call.name()),
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
        conditions.push(json!({ "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": super::object::now() }));
        pod["status"]["conditions"] = json!(conditions);
        Ok(Some(pod))
    })?;
    Ok(Reply::with(
        StatusCode::CREATED,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 }),
    ))
}

/// `pods/eviction`: deletes the pod (PodDisruptionBudgets are honoured
/// once the disruption controller keeps their status).
fn evict(api: &Api, call: &Call, bytes: &[u8]) -> Result<Reply, ApiError> {
    let eviction = body::decode_object(&call.headers, bytes)?;
    let mut options = DeleteOptions::default();
    if let Some(delete) = eviction.get("deleteOptions").filter(|d| d.is_object()) {
        options.grace = delete["gracePeriodSeconds"].as_i64();
        options.uid = delete["preconditions"]["uid"].as_str().map(str::to_owned);
        options.resource_version = delete["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_owned);
    }
    api.check_disruption_budgets(call)?;
    verbs::delete_object(api, call, call.namespace(), call.name(), &options)?;
    Ok(Reply::with(
        StatusCode::CREATED,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 }),
    ))
}

/// `namespaces/<name>/finalize`: sets the namespace's spec.finalizers.
fn finalize(api: &Api, call: &Call, bytes: &[u8]) -> Result<Reply, ApiError> {
    let asked = body::decode_object(&call.headers, bytes)?;
    let finalizers = asked["spec"]["finalizers"].clone();
    let rt = &call.rt;
    let written = api.store.update_with(rt, "", call.name(), |mut ns| {
        ns["spec"]["finalizers"] = if finalizers.is_null() {
            json!([])
        } else {
            finalizers.clone()
        };
        Ok(Some(ns))
    })?;
    api.namespace_changed();
    Ok(Reply::ok(written))
}
