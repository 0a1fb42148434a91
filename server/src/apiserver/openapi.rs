//! The Kubernetes 1.32 OpenAPI definitions: the schema lookups the apiserver
//! needs (patch strategies, list types, unknown fields) and the `/openapi/v2`
//! and `/openapi/v3` documents kubectl reads (`kubectl explain`, client-side
//! apply, and whether the server validates fields itself).
//!
//! The definitions are embedded zstd-compressed (`server/openapi/`, made by
//! `scripts/gen-openapi.py`). [`OpenApi::load`] keeps only a compact index in
//! memory (each definition's fields with their patch metadata and types, and
//! the group-version-kind table); the full document is decompressed and
//! parsed only while a `/openapi/*` document is built, then dropped.
//!
//! # Layout
//! - `index`: the compact index and [`PatchSchema`] answers.
//! - `unknown`: fields an object has that its schema does not know
//!   (`fieldValidation=Strict|Warn`), for built-in kinds and custom resources.
//! - `paths`: the operations of a served resource, in v2 or v3 form;
//!   `parameters`: their parameters.
//! - `documents`: the `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<path>`
//!   documents and their hashes.
//! - `protobuf_v2`: the `/openapi/v2` document as gnostic's protobuf.

mod documents;
mod index;
mod parameters;
mod paths;
mod protobuf_v2;
mod unknown;

use serde_json::Value;

use super::schema::{FieldMeta, PatchSchema};
use index::Index;

/// The Kubernetes version the definitions describe (`info.version`).
pub const KUBERNETES_VERSION: &str = skiff_agent::kubelet::node::KUBERNETES_RELEASE;

/// The embedded definitions: `{"definitions": {...}}`, zstd-compressed.
static DEFINITIONS_ZST: &[u8] =
    include_bytes!("../../openapi/kubernetes-v1.32-definitions.json.zst");

/// A failure to read the embedded definitions or to write a document.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    /// The embedded definitions do not decompress.
    #[error("decompressing the embedded OpenAPI definitions: {0}")]
    Decompress(#[source] std::io::Error),
    /// The embedded definitions are not the expected JSON.
    #[error("parsing the embedded OpenAPI definitions: {0}")]
    Parse(#[source] serde_json::Error),
    /// A document could not be serialized.
    #[error("serializing an OpenAPI document: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// A resource the apiserver serves, as the OpenAPI paths describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServedResource {
    /// API group, `""` for core.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Lowercase plural, e.g. `deployments`.
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Served subresources: `status` (and other same-kind ones such as
    /// `ephemeralcontainers`) and `scale` get paths; others are left out.
    pub subresources: Vec<String>,
    /// Verbs: `get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`.
    pub verbs: Vec<String>,
}

/// A custom resource's schema (one served version of a CRD).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomSchema {
    /// API group, e.g. `stable.example.com`.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `CronTab`.
    pub kind: String,
    /// Lowercase plural, e.g. `crontabs`; used for paths when `resources`
    /// does not list the kind.
    pub plural: String,
    /// Whether objects live in namespaces; used like `plural`.
    pub namespaced: bool,
    /// The version's `schema.openAPIV3Schema`.
    pub schema: Value,
}

/// The Kubernetes OpenAPI definitions: a compact index for lookups, and the
/// embedded document for serving.
#[derive(Debug)]
pub struct OpenApi {
    index: Index,
    /// SHA-512 of the embedded definitions; part of every v3 hash.
    digest: [u8; 64],
}

impl OpenApi {
    /// Builds the index from the embedded definitions.
    pub fn load() -> Result<Self, OpenApiError> {
        let json = decompress()?;
        let index = Index::from_json(&json)?;
        Ok(Self {
            index,
            digest: documents::sha512(&[DEFINITIONS_ZST]),
        })
    }

    /// The definition of a kind by its `x-kubernetes-group-version-kind`,
    /// e.g. (`apps`, `v1`, `Deployment`) -> `io.k8s.api.apps.v1.Deployment`.
    pub fn definition_for(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.index.definition_for(group, version, kind)
    }

    /// Paths of the fields of `object` that the definition does not declare
    /// (for `fieldValidation=Strict|Warn`), as upstream's strict decoder
    /// names them: `spec.replicas2`, `spec.template.spec.containers[0].imagee`
    /// (no leading dot; upstream's message is `unknown field "<path>"`).
    /// Objects are walked by properties, lists by items, maps by values;
    /// untyped values (`RawExtension`, `JSON`, ...) accept anything. Empty
    /// when the definition is unknown.
    pub fn unknown_fields(&self, definition: &str, object: &Value) -> Vec<String> {
        unknown::in_definition(&self.index, definition, object)
    }

    /// Like [`OpenApi::unknown_fields`], against a CRD's `openAPIV3Schema`:
    /// `apiVersion`, `kind` and `metadata` (checked as `ObjectMeta`) are
    /// always known at the root and in `x-kubernetes-embedded-resource`
    /// objects; `x-kubernetes-preserve-unknown-fields` and schemas without a
    /// type accept anything; a `type: object` without `properties` or
    /// `additionalProperties` knows no fields (upstream prunes them all).
    pub fn unknown_fields_in_schema(&self, schema: &Value, object: &Value) -> Vec<String> {
        unknown::in_schema(&self.index, schema, object)
    }

    /// The `/openapi/v2` document (swagger 2.0 JSON): every definition,
    /// the custom resources' schemas, and paths for `resources` and the
    /// custom kinds.
    pub fn v2_json(
        &self,
        resources: &[ServedResource],
        extra: &[CustomSchema],
    ) -> Result<Vec<u8>, OpenApiError> {
        documents::v2(&self.index, resources, extra)
    }

    /// The `/openapi/v2` document of [`OpenApi::v2_json`] as gnostic's
    /// `openapi.v2.Document` protobuf, which kubectl reads to validate
    /// manifests on the client (every item of a `kind: List`).
    pub fn v2_protobuf(
        &self,
        resources: &[ServedResource],
        extra: &[CustomSchema],
    ) -> Result<Vec<u8>, OpenApiError> {
        protobuf_v2::encode(self.v2_json(resources, extra)?)
    }

    /// The `/openapi/v3` discovery document: `{"paths": {"api/v1":
    /// {"serverRelativeURL": "/openapi/v3/api/v1?hash=<HASH>"}, ...}}` with
    /// `api`, `apis`, `version`, `apis/<group>` and every served
    /// group-version (custom kinds' included).
    pub fn v3_index(
        &self,
        resources: &[ServedResource],
        extra: &[CustomSchema],
    ) -> Result<Vec<u8>, OpenApiError> {
        documents::v3_index(&self.digest, resources, extra)
    }

    /// The document served at `/openapi/v3/<path>` (`path` without the
    /// prefix and query: `api/v1`, `apis/apps/v1`, `apis/apps`, `api`,
    /// `apis`, `version`); `None` for a path the index does not list.
    pub fn v3_document(
        &self,
        path: &str,
        resources: &[ServedResource],
        extra: &[CustomSchema],
    ) -> Result<Option<Vec<u8>>, OpenApiError> {
        documents::v3_document(&self.index, path, resources, extra)
    }

    /// The OpenAPI 3.0 document of one group-version (`/openapi/v3/apis/<g>/<v>`,
    /// `/openapi/v3/api/v1` for core): paths for its resources and every
    /// schema they reach; `None` when nothing is served in it.
    pub fn v3_group_version(
        &self,
        group: &str,
        version: &str,
        resources: &[ServedResource],
        extra: &[CustomSchema],
    ) -> Result<Option<Vec<u8>>, OpenApiError> {
        self.v3_document(
            &documents::group_version_path(group, version),
            resources,
            extra,
        )
    }

    /// The `hash` the v3 index gives `path` (upper-case hex SHA-512, like
    /// kube-apiserver's), for answering `?hash=` requests; `None` for a path
    /// the index does not list. It digests the inputs of the document (the
    /// embedded definitions, this module's version, the path's resources
    /// and custom schemas), so it changes exactly when the document can.
    pub fn v3_hash(
        &self,
        path: &str,
        resources: &[ServedResource],
        extra: &[CustomSchema],
    ) -> Option<String> {
        documents::v3_hash(&self.digest, path, resources, extra)
    }

    /// Rough heap bytes the index holds.
    pub fn index_bytes(&self) -> usize {
        self.index.heap_bytes()
    }
}

impl PatchSchema for OpenApi {
    fn field(&self, definition: &str, field: &str) -> Option<FieldMeta> {
        self.index.field_meta(definition, field)
    }
}

/// The embedded definitions, decompressed.
fn decompress() -> Result<Vec<u8>, OpenApiError> {
    zstd::stream::decode_all(DEFINITIONS_ZST).map_err(OpenApiError::Decompress)
}

/// The embedded definitions, parsed: definition name -> schema.
fn full_definitions() -> Result<serde_json::Map<String, Value>, OpenApiError> {
    let json = decompress()?;
    let mut document: Value = serde_json::from_slice(&json).map_err(OpenApiError::Parse)?;
    match document.get_mut("definitions").map(Value::take) {
        Some(Value::Object(definitions)) => Ok(definitions),
        _ => Err(OpenApiError::Parse(serde::de::Error::custom(
            "no \"definitions\" object",
        ))),
    }
}

#[cfg(test)]
mod tests;
