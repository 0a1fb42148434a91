//! Kubernetes `Status` responses.

use bytes::Bytes;
use hyper::{Response, StatusCode, header};

use super::Body;

/// A `Status` object with `code`, `reason` and `message`.
pub fn failure(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut response = Response::new(super::full(Bytes::from(body.to_string())));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// 401 for a request without credentials.
pub fn unauthorized() -> Response<Body> {
    failure(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
}
