//! The TokenRequest subresource (`POST
//! /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`): a signed token
//! for the service account, optionally bound to a pod, secret or node, as
//! kube-apiserver's TokenREST makes it.

use hyper::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::Tokens;
use super::claims::{self, Grant, ObjectRef, Subject};
use super::jwt;
use crate::apiserver::Api;
use crate::apiserver::body;
use crate::apiserver::context::{Call, Reply};
use crate::apiserver::error::ApiError;
use crate::apiserver::object::{self, meta_str};
use crate::apiserver::validation::{self, Cause, CauseReason};

/// The default `spec.expirationSeconds` (an hour).
const DEFAULT_EXPIRATION_SECONDS: i64 = 60 * 60;
/// The shortest expiry a client may ask for (ten minutes).
const MIN_EXPIRATION_SECONDS: i64 = 10 * 60;
/// The longest (2^32 seconds).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// Answers a TokenRequest for the service account the call names.
pub fn create(
    api: &Api,
    tokens: &Tokens,
    call: &Call,
    bytes: &[u8],
    now: OffsetDateTime,
) -> Result<Reply, ApiError> {
    let mut request = body::decode_object(&call.headers, bytes)?;
    let (namespace, name) = (call.namespace(), call.name());
    let mut causes = Vec::new();
    let asked_name = meta_str(&request, "name");
    if !asked_name.is_empty() && asked_name != name {
        causes.push(invalid(
            "metadata.name",
            &format!("{asked_name:?}"),
            "must match the service account name if specified",
        ));
    }
    let asked_namespace = meta_str(&request, "namespace");
    if !asked_namespace.is_empty() && asked_namespace != namespace {
        causes.push(invalid(
            "metadata.namespace",
            &format!("{asked_namespace:?}"),
            "must match the service account namespace if specified",
        ));
    }
    let expiration = match &request["spec"]["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        value => value.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: spec.expirationSeconds: {value} is not an integer"
            ))
        })?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        causes.push(invalid(
            "spec.expirationSeconds",
            &expiration.to_string(),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        causes.push(invalid(
            "spec.expirationSeconds",
            &expiration.to_string(),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if !causes.is_empty() {
        return Err(invalid_request(name, &causes));
    }

    let service_account = get(api, "serviceaccounts", namespace, name)?;
    let mut audiences: Vec<String> = request["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences = tokens.audiences().to_vec();
    }
    let mut subject = Subject {
        namespace: namespace.to_owned(),
        service_account: reference(&service_account),
        jti: object::new_uid(),
        ..Subject::default()
    };
    let bound = request["spec"]["boundObjectRef"].clone();
    if bound.is_object() {
        bind(api, &mut subject, name, &bound)?;
    }

    // kubelet's projected tokens ask for 3607 s; like kube-apiserver, such
    // a pod-bound token for the API's audiences lasts a year and is only
    // reported as stale after its hour.
    let (mut lifetime, mut warn_after) = (expiration, None);
    if subject.pod.is_some()
        && expiration == claims::WARN_ONLY_EXPIRATION_SECONDS
        && audiences.iter().all(|a| tokens.audiences().contains(a))
    {
        lifetime = claims::EXTENDED_EXPIRATION_SECONDS;
        warn_after = Some(expiration);
    }
    let issued = now.unix_timestamp();
    let claims = claims::claims(&Grant {
        issuer: tokens.issuer(),
        audiences: &audiences,
        subject: &subject,
        now: issued,
        expiration_seconds: lifetime,
        warn_after,
    });
    let token = jwt::sign(&tokens.key, &claims)
        .map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;

    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["kind"] = json!("TokenRequest");
    let metadata = object::meta_mut(&mut request);
    metadata.insert("name".into(), json!(name));
    metadata.insert("namespace".into(), json!(namespace));
    metadata.insert("creationTimestamp".into(), json!(object::timestamp(now)));
    request["spec"]["audiences"] = json!(audiences);
    request["spec"]["expirationSeconds"] = json!(expiration);
    if !bound.is_object() {
        request["spec"]["boundObjectRef"] = Value::Null;
    }
    request["status"] = json!({
        "token": token,
        "expirationTimestamp": object::timestamp(now + time::Duration::seconds(expiration)),
    });
    Ok(Reply::with(StatusCode::CREATED, request))
}

/// Binds the token to the object `bound` refers to.
fn bind(
    api: &Api,
    subject: &mut Subject,
    service_account: &str,
    bound: &Value,
) -> Result<(), ApiError> {
    let api_version = bound["apiVersion"].as_str().unwrap_or("");
    let kind = bound["kind"].as_str().unwrap_or("");
    let bound_name = bound["name"].as_str().unwrap_or("");
    let namespace = subject.namespace.clone();
    let object = match (api_version, kind) {
        ("v1", "Pod") => {
            let pod = get(api, "pods", &namespace, bound_name)?;
            let runs_as = pod["spec"]["serviceAccountName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("default");
            if runs_as != service_account {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {service_account:?} to pod running with different serviceaccount name."
                )));
            }
            // The pod's node goes into the token too (ServiceAccountTokenPodNodeInfo).
            let node_name = pod["spec"]["nodeName"].as_str().unwrap_or("");
            if !node_name.is_empty()
                && let Ok(node) = get(api, "nodes", "", node_name)
            {
                subject.node = Some(reference(&node));
            }
            subject.pod = Some(reference(&pod));
            pod
        }
        ("v1", "Secret") => {
            let secret = get(api, "secrets", &namespace, bound_name)?;
            subject.secret = Some(reference(&secret));
            secret
        }
        ("v1", "Node") => {
            let node = get(api, "nodes", "", bound_name)?;
            subject.node = Some(reference(&node));
            node
        }
        _ => {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={kind}"
            )));
        }
    };
    let asked_uid = bound["uid"].as_str().unwrap_or("");
    let uid = meta_str(&object, "uid");
    if !asked_uid.is_empty() && asked_uid != uid {
        return Err(ApiError::conflict(
            "",
            kind,
            bound_name,
            &format!(
                "the UID in the bound object reference ({asked_uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    Ok(())
}

/// A core object, or 404 naming it.
fn get(api: &Api, plural: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
    let rt = api
        .resources
        .find("", "v1", plural)
        .ok_or_else(ApiError::no_resource)?;
    api.store
        .try_get(&rt, namespace, name, 0)?
        .ok_or_else(|| ApiError::not_found("", plural, name))
}

fn reference(obj: &Value) -> ObjectRef {
    ObjectRef {
        name: meta_str(obj, "name").to_owned(),
        uid: meta_str(obj, "uid").to_owned(),
    }
}

fn invalid(field: &str, value: &str, detail: &str) -> Cause {
    Cause {
        reason: CauseReason::Invalid,
        field: field.to_owned(),
        message: format!("Invalid value: {value}: {detail}"),
    }
}

fn invalid_request(name: &str, causes: &[Cause]) -> ApiError {
    let message = validation::invalid_message("TokenRequest.authentication.k8s.io", name, causes);
    let causes: Vec<_> = causes
        .iter()
        .map(|c| crate::apiserver::error::StatusCause {
            reason: c.reason.as_str().to_owned(),
            message: c.message.clone(),
            field: c.field.clone(),
        })
        .collect();
    ApiError::invalid(
        "authentication.k8s.io",
        "TokenRequest",
        name,
        message,
        &causes,
    )
}
