//! Reviews answered, not stored: `SelfSubjectAccessReview` (`kubectl auth
//! can-i`) and `SelfSubjectReview` (`kubectl auth whoami`).
//!
//! Until RBAC is enforced every authenticated user may do everything, so an
//! access review is always allowed — the truthful answer today.

use hyper::StatusCode;
use serde_json::json;

use super::body;
use super::context::{Call, Reply};
use super::error::ApiError;

/// Whether `plural` is a review the server answers rather than stores.
pub fn is_review(group: &str, plural: &str) -> bool {
    matches!(
        (group, plural),
        ("authorization.k8s.io", "selfsubjectaccessreviews")
            | ("authentication.k8s.io", "selfsubjectreviews")
    )
}

/// Answers a review.
pub fn answer(call: &Call, bytes: &[u8]) -> Result<Reply, ApiError> {
    let mut review = body::decode_object(&call.headers, bytes)?;
    review["apiVersion"] = json!(call.rt.api_version());
    review["kind"] = json!(call.rt.kind);
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    match call.rt.plural.as_str() {
        "selfsubjectaccessreviews" => {
            let attributes = &review["spec"];
            if !attributes["resourceAttributes"].is_object()
                && !attributes["nonResourceAttributes"].is_object()
            {
                return Err(ApiError::invalid(
                    &call.rt.group,
                    &call.rt.kind,
                    "",
                    "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
                    &[],
                ));
            }
            review["status"] = json!({ "allowed": true });
        }
        _ => {
            let mut user = json!({ "username": call.user.name, "groups": call.user.groups });
            if !call.user.uid.is_empty() {
                user["uid"] = json!(call.user.uid);
            }
            if !call.user.extra.is_empty() {
                user["extra"] = json!(call.user.extra);
            }
            review["status"] = json!({ "userInfo": user });
        }
    }
    Ok(Reply::with(StatusCode::CREATED, review))
}
