//! Request bodies in (JSON or YAML, at most 3 MiB) and responses out (JSON,
//! or a Table or object metadata when the client's `Accept` asks for one).

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap};
use hyper::{Response, StatusCode};
use serde_json::Value;

use super::Body;
use super::error::ApiError;

/// The largest request body accepted (kube-apiserver's limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// What a client asked the response to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The object(s) as JSON.
    Object,
    /// A `meta.k8s.io/v1` Table.
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// Reads the `Accept` header: the first of the client's choices the server
/// can give.
pub fn wanted(headers: &HeaderMap) -> Result<Wanted, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.trim().is_empty() {
        return Ok(Wanted::Object);
    }
    for choice in accept.split(',') {
        let mut parts = choice.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        if !matches!(
            media,
            "application/json" | "application/*" | "*/*" | "application/yaml"
        ) {
            continue;
        }
        match param("as") {
            None => return Ok(Wanted::Object),
            Some("Table") if param("g") == Some("meta.k8s.io") => {
                if matches!(param("v"), Some("v1" | "v1beta1")) {
                    return Ok(Wanted::Table);
                }
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if param("g") == Some("meta.k8s.io") =>
            {
                return Ok(Wanted::Metadata);
            }
            Some(_) => {}
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io (asked for {accept})"
    )))
}

/// Whether the client asked for YAML (`kubectl` never does; curl users may).
pub fn wants_yaml(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.trim_start().starts_with("application/yaml"))
}

/// Reads a body of at most [`MAX_BODY`] bytes.
pub async fn read<B>(body: B) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(MAX_BODY))
        }
        Err(err) => Err(ApiError::bad_request(format!(
            "reading the request body: {err}"
        ))),
    }
}

/// The body's media type, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes an object body: JSON, or YAML for `application/yaml`.
pub fn decode_object(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ApiError> {
    let media = content_type(headers);
    let value: Value = match media.as_str() {
        "application/json" | "" | "*/*" => serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (json: {e})")))?,
        "application/yaml" | "application/apply-patch+yaml" => decode_yaml(bytes)?,
        super::protobuf::CONTENT_TYPE => decode_protobuf(bytes)?,
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other})"
            )));
        }
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON or YAML object",
        ));
    }
    Ok(value)
}

/// The protobuf tables, loaded the first time a protobuf body arrives.
static PROTOBUF: std::sync::OnceLock<Result<super::protobuf::Protobuf, String>> =
    std::sync::OnceLock::new();

/// Decodes a `application/vnd.kubernetes.protobuf` body (kubectl's typed
/// commands send them) into the JSON object.
fn decode_protobuf(bytes: &[u8]) -> Result<Value, ApiError> {
    let tables =
        PROTOBUF.get_or_init(|| super::protobuf::Protobuf::load().map_err(|e| e.to_string()));
    match tables {
        Ok(tables) => tables.decode(bytes).map_err(|e| {
            ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
        }),
        Err(err) => Err(ApiError::internal(format!("protobuf tables: {err}"))),
    }
}

/// Decodes YAML (or JSON, which is YAML) into a JSON value.
pub fn decode_yaml(bytes: &[u8]) -> Result<Value, ApiError> {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}")))?;
    serde_json::to_value(yaml)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
}

/// A JSON (or YAML) response.
pub fn respond(code: StatusCode, value: &Value, yaml: bool) -> Response<Body> {
    let (bytes, media) = if yaml {
        match serde_yaml_ng::to_string(value) {
            Ok(text) => (Bytes::from(text), "application/yaml"),
            Err(_) => (Bytes::from(value.to_string()), "application/json"),
        }
    } else {
        (Bytes::from(value.to_string()), "application/json")
    };
    let mut response = Response::new(super::full(bytes));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(media),
    );
    response
}

/// The `Status` response of an error.
pub fn error(err: &ApiError) -> Response<Body> {
    respond(err.code, &err.status(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Result<Wanted, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        wanted(&headers)
    }

    #[test]
    fn kubectl_get_asks_for_a_table_and_gets_one() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(accept(kubectl).unwrap(), Wanted::Table);
        assert_eq!(accept("application/json").unwrap(), Wanted::Object);
        assert_eq!(accept("*/*").unwrap(), Wanted::Object);
        assert_eq!(
            accept("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io").unwrap(),
            Wanted::Metadata
        );
        let err = accept("application/vnd.kubernetes.protobuf").unwrap_err();
        assert_eq!(err.code, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf, application/json").unwrap(),
            Wanted::Object
        );
    }
}
