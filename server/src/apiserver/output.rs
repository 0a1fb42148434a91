//! Shaping answers: one object or a list, as JSON, a Table or object
//! metadata; list selectors; `continue` tokens.

use base64::Engine;
use serde_json::{Value, json};

use super::Api;
use super::body::Wanted;
use super::context::Call;
use super::error::ApiError;
use super::request::Query;
use super::resources::ResourceType;
use super::selector::{FieldSelector, LabelSelector};
use super::table::{self, IncludeObject, TableOptions};
use crate::datastore::Revision;

/// The label and field selectors of a list, watch or deletecollection.
#[derive(Debug)]
pub struct Filter {
    group: String,
    resource: String,
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    /// Reads `labelSelector` and `fieldSelector`; a bad one is a 400.
    pub fn from_query(rt: &ResourceType, query: &Query) -> Result<Self, ApiError> {
        let labels = match query.str("labelSelector").trim() {
            "" => None,
            text => {
                Some(LabelSelector::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?)
            }
        };
        let fields = match query.str("fieldSelector").trim() {
            "" => None,
            text => Some(
                FieldSelector::parse(text)
                    .and_then(|f| f.for_resource(&rt.group, &rt.plural))
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
            ),
        };
        Ok(Self {
            group: rt.group.clone(),
            resource: rt.plural.clone(),
            labels,
            fields,
        })
    }

    /// Whether nothing is filtered.
    pub fn is_everything(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    /// Whether `obj` passes; a field the kind does not support is a 400.
    pub fn matches(&self, obj: &Value) -> Result<bool, ApiError> {
        if let Some(labels) = &self.labels
            && !labels.matches_object(obj)
        {
            return Ok(false);
        }
        if let Some(fields) = &self.fields {
            return fields
                .matches(&self.group, &self.resource, obj)
                .map_err(|e| ApiError::bad_request(e.to_string()));
        }
        Ok(true)
    }
}

fn table_options(api: &Api, call: &Call, no_headers: bool) -> Result<TableOptions, ApiError> {
    let include =
        IncludeObject::parse(call.query.get("includeObject")).map_err(ApiError::bad_request)?;
    Ok(TableOptions {
        include_object: include,
        printer_columns: api.printer_columns(&call.rt),
        no_headers,
    })
}

/// A `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"].clone(),
    })
}

/// One object as the client asked for it.
pub fn one(api: &Api, call: &Call, obj: Value) -> Result<Value, ApiError> {
    one_with(api, call, obj, false)
}

/// One object as the client asked for it; a Table without column
/// definitions when `no_headers` (watch events after the first).
pub fn one_with(api: &Api, call: &Call, obj: Value, no_headers: bool) -> Result<Value, ApiError> {
    Ok(match call.wanted {
        Wanted::Object => obj,
        Wanted::Metadata => partial_metadata(&obj),
        Wanted::Table => {
            let rv = obj["metadata"]["resourceVersion"].clone();
            let mut table = table::table(
                &call.rt.group,
                &call.rt.plural,
                std::slice::from_ref(&obj),
                time::OffsetDateTime::now_utc(),
                &table_options(api, call, no_headers)?,
            );
            table["metadata"]["resourceVersion"] = rv;
            table
        }
    })
}

/// A list as the client asked for it.
pub fn many(
    api: &Api,
    call: &Call,
    items: Vec<Value>,
    revision: Revision,
    next: Option<String>,
) -> Result<Value, ApiError> {
    let mut metadata = json!({ "resourceVersion": revision.to_string() });
    if let Some(next) = next {
        metadata["continue"] = json!(next);
    }
    Ok(match call.wanted {
        Wanted::Object => {
            // Built by hand so the items move in rather than being copied.
            let mut list = serde_json::Map::new();
            list.insert("kind".into(), json!(format!("{}List", call.rt.kind)));
            list.insert("apiVersion".into(), json!(call.rt.api_version()));
            list.insert("metadata".into(), metadata);
            list.insert("items".into(), Value::Array(items));
            Value::Object(list)
        }
        Wanted::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": items.iter().map(partial_metadata).collect::<Vec<_>>(),
        }),
        Wanted::Table => {
            let mut table = table::table(
                &call.rt.group,
                &call.rt.plural,
                &items,
                time::OffsetDateTime::now_utc(),
                &table_options(api, call, false)?,
            );
            table["metadata"] = metadata;
            table
        }
    })
}

/// A `continue` token: the revision the list is read at and the last key
/// returned (kube-apiserver's token shape: base64 of
/// `{"v":"meta.k8s.io/v1","rv":N,"start":"..."}`).
pub fn encode_continue(revision: Revision, last_key: &str, prefix: &str) -> String {
    let start = format!("{}\u{0}", last_key.strip_prefix(prefix).unwrap_or(last_key));
    let token = json!({ "v": "meta.k8s.io/v1", "rv": revision, "start": start });
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

/// Reads a `continue` token made for `prefix`: (revision, key to start after).
pub fn decode_continue(token: &str, prefix: &str) -> Result<(Revision, String), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if value["v"] != "meta.k8s.io/v1" {
        return Err(bad());
    }
    let revision = value["rv"].as_i64().filter(|rv| *rv > 0).ok_or_else(bad)?;
    let start = value["start"].as_str().ok_or_else(bad)?;
    let start = start.strip_suffix('\u{0}').unwrap_or(start);
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((revision, format!("{prefix}{start}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_stay_in_their_prefix() {
        let token = encode_continue(
            42,
            "/registry/configmaps/default/b",
            "/registry/configmaps/default/",
        );
        assert_eq!(
            decode_continue(&token, "/registry/configmaps/default/").unwrap(),
            (42, "/registry/configmaps/default/b".to_owned())
        );
        let evil = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"../secrets/x"}"#);
        assert!(decode_continue(&evil, "/registry/configmaps/").is_err());
        assert!(decode_continue("not-base64!", "/p/").is_err());
    }
}
