//! PATCH bodies applied to stored objects, as kube-apiserver applies them:
//! RFC 6902 JSON patch (`application/json-patch+json`), RFC 7386 JSON merge
//! patch (`application/merge-patch+json`) and Kubernetes' strategic merge
//! patch (`application/strategic-merge-patch+json`), the last driven by the
//! `x-kubernetes-patch-strategy`/`-merge-key` metadata of [`PatchSchema`].
//!
//! Server-side apply (`application/apply-patch+yaml`) is not handled here.
//!
//! # Layout
//! - `mod.rs`: [`PatchType`], [`apply_patch`], [`PatchError`] and its Status mapping.
//! - `json_patch.rs`: RFC 6902 with the quirks of the Go library upstream uses
//!   (evanphx/json-patch v4: negative indices, `replace` of a missing object key adds it).
//! - `merge_patch.rs`: RFC 7386 as the same library does it.
//! - `strategic.rs`: strategic merge patch (apimachinery `strategicpatch`).
//! - `gofmt.rs`: Go's `%v` rendering of JSON values, for upstream's error texts.

mod gofmt;
mod json_patch;
mod merge_patch;
mod strategic;
#[cfg(test)]
mod strategic_tests;

use serde_json::Value;

use super::schema::{FieldMeta, PatchSchema};

/// The PATCH content types kube-apiserver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`: an RFC 6902 list of operations.
    Json,
    /// `application/merge-patch+json`: an RFC 7386 merge patch.
    Merge,
    /// `application/strategic-merge-patch+json`: Kubernetes' strategic merge patch.
    StrategicMerge,
    /// `application/apply-patch+yaml`: server-side apply (handled elsewhere).
    Apply,
}

impl PatchType {
    /// The patch type of a request's `Content-Type` (parameters such as
    /// `; charset=utf-8` are ignored); `None` for any other media type.
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        let known = [
            PatchType::Json,
            PatchType::Merge,
            PatchType::StrategicMerge,
            PatchType::Apply,
        ];
        known
            .into_iter()
            .find(|t| t.content_type().eq_ignore_ascii_case(media_type))
    }

    /// The media type of this patch type, e.g. `application/merge-patch+json`.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Why a patch could not be applied. `Display` is the text upstream's
/// libraries produce; [`PatchError::code`], [`PatchError::reason`] and
/// [`PatchError::status_message`] give the `Status` kube-apiserver answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not a patch of its content type (bad JSON, a JSON patch
    /// that is not a list, a merge patch that is not an object).
    #[error("{message}")]
    Malformed {
        /// The decoder's message, e.g. `json: cannot unmarshal object into Go value of type jsonpatch.Patch`.
        message: String,
    },
    /// A JSON patch operation did not apply: a failed `test`, a missing path.
    #[error("{message}")]
    JsonPatchOperation {
        /// The operation's `path` (or `from`), a JSON pointer.
        path: String,
        /// The message of upstream's library, naming the path.
        message: String,
    },
    /// A JSON patch with more operations than kube-apiserver allows.
    #[error("The allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyOperations {
        /// The limit, 10000.
        max: usize,
        /// The number of operations sent.
        got: usize,
    },
    /// A malformed `$setElementOrder/…`, `$deleteFromPrimitiveList/…` or
    /// `$retainKeys` directive.
    #[error("{message}")]
    BadDirective {
        /// Where in the object, e.g. `spec.strategy`.
        path: String,
        /// Upstream's text, e.g. `invalid patch format of retainKeys`.
        message: String,
    },
    /// A list of lists in a merging list.
    #[error("lists of lists are not supported")]
    ListOfLists {
        /// Where in the object.
        path: String,
    },
    /// Any other strategic merge failure: an item of a merging list without
    /// its merge key, an unknown `$patch`, list items of mixed types.
    #[error("{message}")]
    StrategicMerge {
        /// Where in the object, e.g. `spec.template.spec.containers[1]`.
        path: String,
        /// Upstream's text, e.g. `map: map[image:nginx] does not contain declared merge key: name`.
        message: String,
    },
    /// A strategic merge patch of a type without a schema (custom resources).
    #[error(
        "the body of the request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )]
    StrategicMergeUnsupported,
    /// [`PatchType::Apply`] was passed to [`apply_patch`].
    #[error("server-side apply is handled elsewhere, not by apply_patch")]
    ServerSideApply,
}

/// The largest number of operations kube-apiserver takes in one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The message kube-apiserver puts in a 422 made by `NewGenericServerResponse`.
const GENERIC_422: &str = "the server rejected our request due to an error in our request";

impl PatchError {
    /// The HTTP code of kube-apiserver's answer: 400, 413, 415, 422, or 500
    /// for the strategic merge failures upstream does not classify.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::Malformed { .. } | PatchError::BadDirective { .. } => 400,
            PatchError::TooManyOperations { .. } => 413,
            PatchError::StrategicMergeUnsupported => 415,
            PatchError::JsonPatchOperation { .. } | PatchError::ListOfLists { .. } => 422,
            PatchError::StrategicMerge { .. } | PatchError::ServerSideApply => 500,
        }
    }

    /// The `reason` of kube-apiserver's `Status`; empty where upstream
    /// answers a plain error (`StatusReasonUnknown`, omitted from the JSON).
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::Malformed { .. } | PatchError::BadDirective { .. } => "BadRequest",
            PatchError::TooManyOperations { .. } => "RequestEntityTooLarge",
            PatchError::StrategicMergeUnsupported => "UnsupportedMediaType",
            PatchError::JsonPatchOperation { .. } | PatchError::ListOfLists { .. } => "Invalid",
            PatchError::StrategicMerge { .. } => "",
            PatchError::ServerSideApply => "InternalError",
        }
    }

    /// The `message` of kube-apiserver's `Status`: the generic 422 text for
    /// failed JSON patch operations and lists of lists, else `Display`.
    pub fn status_message(&self) -> String {
        match self {
            PatchError::JsonPatchOperation { .. } | PatchError::ListOfLists { .. } => {
                GENERIC_422.to_string()
            }
            other => other.to_string(),
        }
    }

    /// The field path (strategic merge) or JSON pointer (JSON patch) the
    /// error is about, when there is one.
    pub fn field_path(&self) -> Option<&str> {
        match self {
            PatchError::JsonPatchOperation { path, .. }
            | PatchError::BadDirective { path, .. }
            | PatchError::ListOfLists { path }
            | PatchError::StrategicMerge { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Applies `patch` (the request body) of `patch_type` to `original` and
/// returns the patched object. `root_definition` is the OpenAPI definition
/// of the object's kind (`io.k8s.api.apps.v1.Deployment`), which strategic
/// merge needs; `None` (custom resources) refuses strategic merge with
/// upstream's 415.
pub fn apply_patch(
    patch_type: PatchType,
    original: &Value,
    patch: &[u8],
    root_definition: Option<&str>,
    schema: &dyn PatchSchema,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => json_patch::apply(original, patch),
        PatchType::Merge => merge_patch::apply(original, patch),
        PatchType::StrategicMerge => match root_definition {
            Some(root) => strategic::apply(original, patch, root, schema),
            None => Err(PatchError::StrategicMergeUnsupported),
        },
        PatchType::Apply => Err(PatchError::ServerSideApply),
    }
}

/// Go's name for the JSON kind `encoding/json` reports in "cannot unmarshal
/// X into Go value of type T".
fn go_json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Parses a request body as JSON, with a decoder error as Go phrases the
/// common ones.
fn parse_json(body: &[u8]) -> Result<Value, PatchError> {
    serde_json::from_slice(body).map_err(|e| PatchError::Malformed {
        message: if e.is_eof() {
            "unexpected end of JSON input".to_string()
        } else {
            e.to_string()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoSchema;
    impl PatchSchema for NoSchema {
        fn field(&self, _: &str, _: &str) -> Option<FieldMeta> {
            None
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json"),
            Some(PatchType::Json)
        );
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("Application/Strategic-Merge-Patch+JSON"),
            Some(PatchType::StrategicMerge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
        assert_eq!(PatchType::from_content_type(""), None);
    }

    #[test]
    fn strategic_merge_without_definition_is_415() {
        let err = apply_patch(
            PatchType::StrategicMerge,
            &serde_json::json!({}),
            b"{}",
            None,
            &NoSchema,
        )
        .unwrap_err();
        assert_eq!(err, PatchError::StrategicMergeUnsupported);
        assert_eq!(err.code(), 415);
        assert_eq!(err.reason(), "UnsupportedMediaType");
        assert!(err.to_string().starts_with(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json"
        ));
    }

    #[test]
    fn apply_is_refused() {
        let err = apply_patch(
            PatchType::Apply,
            &serde_json::json!({}),
            b"{}",
            Some("x"),
            &NoSchema,
        )
        .unwrap_err();
        assert_eq!(err, PatchError::ServerSideApply);
        assert!(
            err.to_string()
                .contains("server-side apply is handled elsewhere")
        );
    }

    #[test]
    fn status_mapping() {
        let op = PatchError::JsonPatchOperation {
            path: "/spec/replicas".into(),
            message: "testing value /spec/replicas failed: test failed".into(),
        };
        assert_eq!((op.code(), op.reason()), (422, "Invalid"));
        assert_eq!(op.status_message(), GENERIC_422);
        assert_eq!(op.field_path(), Some("/spec/replicas"));
        let bad = PatchError::Malformed {
            message: "x".into(),
        };
        assert_eq!((bad.code(), bad.reason()), (400, "BadRequest"));
        assert_eq!(bad.status_message(), "x");
        let too_many = PatchError::TooManyOperations {
            max: 10000,
            got: 10001,
        };
        assert_eq!(too_many.code(), 413);
        assert_eq!(
            too_many.to_string(),
            "The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
        let smp = PatchError::StrategicMerge {
            path: "spec.containers[0]".into(),
            message: "map: map[image:nginx] does not contain declared merge key: name".into(),
        };
        assert_eq!((smp.code(), smp.reason()), (500, ""));
        assert_eq!(smp.field_path(), Some("spec.containers[0]"));
        let directive = PatchError::BadDirective {
            path: "spec.strategy".into(),
            message: "invalid patch format of retainKeys".into(),
        };
        assert_eq!(directive.code(), 400);
        let lol = PatchError::ListOfLists { path: "a".into() };
        assert_eq!(lol.code(), 422);
    }
}
