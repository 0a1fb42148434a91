//! The served documents: `/openapi/v2`, the `/openapi/v3` index, the
//! `/openapi/v3/<path>` documents, and the hashes the index links them by.
//! Each is built from the full embedded definitions, parsed for the request
//! and dropped after it.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use super::index::{Index, REF_PREFIX};
use super::paths::{self, DELETE_OPTIONS, Flavor, PATCH, SCALE, STATUS, Target, WATCH_EVENT};
use super::{CustomSchema, KUBERNETES_VERSION, OpenApiError, ServedResource, full_definitions};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";
const API_VERSIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions";
const API_GROUP_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList";
const API_GROUP: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup";
const VERSION_INFO: &str = "io.k8s.apimachinery.pkg.version.Info";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const V3_REF_PREFIX: &str = "#/components/schemas/";

const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DESCRIPTION: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const LIST_METADATA_DESCRIPTION: &str = "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// Part of every v3 hash: changes when this module writes different documents.
const FORMAT: &str = concat!("skiff-openapi/1/", env!("CARGO_PKG_VERSION"));

/// The `/openapi/v2` document.
pub(super) fn v2(
    index: &Index,
    resources: &[ServedResource],
    extra: &[CustomSchema],
) -> Result<Vec<u8>, OpenApiError> {
    let served = served(resources, extra);
    let mut definitions = full_definitions()?;
    for custom in extra {
        for (name, schema) in custom_definitions(Flavor::V2, custom) {
            definitions.insert(name, schema);
        }
    }
    let mut paths = Map::new();
    add_root_discovery(&mut paths, Flavor::V2);
    for (group, version) in group_versions(&served) {
        add_group_version_discovery(&mut paths, Flavor::V2, &group, &version);
    }
    for target in targets(index, &served, extra) {
        paths::add_resource(&mut paths, Flavor::V2, &target);
    }
    let document = json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": KUBERNETES_VERSION },
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": { "BearerToken": {
            "description": "Bearer Token authentication", "in": "header", "name": "authorization", "type": "apiKey",
        } },
        "security": [{ "BearerToken": [] }],
    });
    serde_json::to_vec(&document).map_err(OpenApiError::Serialize)
}

/// The `/openapi/v3` index.
pub(super) fn v3_index(
    digest: &[u8; 64],
    resources: &[ServedResource],
    extra: &[CustomSchema],
) -> Result<Vec<u8>, OpenApiError> {
    let served = served(resources, extra);
    let mut listed: Vec<String> = vec!["api".into(), "apis".into(), "version".into()];
    let group_versions = group_versions(&served);
    let groups: BTreeSet<&str> = group_versions
        .iter()
        .map(|(g, _)| g.as_str())
        .filter(|g| !g.is_empty())
        .collect();
    listed.extend(groups.iter().map(|g| format!("apis/{g}")));
    listed.extend(group_versions.iter().map(|(g, v)| group_version_path(g, v)));
    let mut paths = Map::new();
    for path in listed {
        let hash = hash_of(digest, &path, &served, extra);
        paths.insert(
            path.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}") }),
        );
    }
    serde_json::to_vec(&json!({ "paths": paths })).map_err(OpenApiError::Serialize)
}

/// The document at `/openapi/v3/<path>`.
pub(super) fn v3_document(
    index: &Index,
    path: &str,
    resources: &[ServedResource],
    extra: &[CustomSchema],
) -> Result<Option<Vec<u8>>, OpenApiError> {
    let served = served(resources, extra);
    let Some(doc_path) = DocPath::parse(path, &served) else {
        return Ok(None);
    };
    let mut paths = Map::new();
    let mut roots = BTreeSet::new();
    let mut customs = Vec::new();
    match &doc_path {
        DocPath::Api | DocPath::Apis | DocPath::Version => {
            let (path, tag, id, description, schema) = root_discovery(&doc_path);
            paths::add_discovery(&mut paths, Flavor::V3, path, tag, id, description, schema);
            roots.insert(schema.to_owned());
        }
        DocPath::Group(group) => {
            let name = paths::group_name(group);
            let tag = lower_first(&name);
            paths::add_discovery(
                &mut paths,
                Flavor::V3,
                &format!("/apis/{group}/"),
                &tag,
                &format!("get{name}APIGroup"),
                "get information of a group",
                API_GROUP,
            );
            roots.insert(API_GROUP.to_owned());
        }
        DocPath::GroupVersion(group, version) => {
            add_group_version_discovery(&mut paths, Flavor::V3, group, version);
            roots.extend(
                [
                    STATUS,
                    DELETE_OPTIONS,
                    PATCH,
                    WATCH_EVENT,
                    API_RESOURCE_LIST,
                ]
                .map(String::from),
            );
            let in_group_version: Vec<Cow<'_, ServedResource>> = served
                .iter()
                .filter(|r| &r.group == group && &r.version == version)
                .cloned()
                .collect();
            for target in targets(index, &in_group_version, extra) {
                paths::add_resource(&mut paths, Flavor::V3, &target);
                if target.custom {
                    roots.extend([OBJECT_META, LIST_META].map(String::from));
                } else {
                    roots.extend(
                        target
                            .definition
                            .iter()
                            .chain(&target.list_definition)
                            .cloned(),
                    );
                }
                if target.resource.subresources.iter().any(|s| s == "scale") {
                    roots.insert(SCALE.to_owned());
                }
            }
            customs.extend(
                extra
                    .iter()
                    .filter(|c| &c.group == group && &c.version == version),
            );
        }
    }

    let mut definitions = full_definitions()?;
    let mut schemas = Map::new();
    for name in closure(&definitions, roots) {
        if let Some(schema) = definitions.remove(&name) {
            let schema = v3_definition(&name, schema);
            schemas.insert(name, schema);
        }
    }
    drop(definitions);
    for custom in customs {
        for (name, schema) in custom_definitions(Flavor::V3, custom) {
            schemas.insert(name, schema);
        }
    }
    let document = json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": KUBERNETES_VERSION },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "BearerToken": {
                "type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header",
            } },
        },
        "security": [{ "BearerToken": [] }],
    });
    serde_json::to_vec(&document)
        .map(Some)
        .map_err(OpenApiError::Serialize)
}

/// The hash the v3 index gives `path`; `None` when it does not list it.
pub(super) fn v3_hash(
    digest: &[u8; 64],
    path: &str,
    resources: &[ServedResource],
    extra: &[CustomSchema],
) -> Option<String> {
    let served = served(resources, extra);
    DocPath::parse(path, &served)?;
    Some(hash_of(digest, path, &served, extra))
}

/// `api/v1` or `apis/<group>/<version>`.
pub(super) fn group_version_path(group: &str, version: &str) -> String {
    paths::api_prefix(group, version)
        .trim_start_matches('/')
        .to_owned()
}

/// SHA-512 of the concatenated parts.
pub(super) fn sha512(parts: &[&[u8]]) -> [u8; 64] {
    let mut hasher = Sha512::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// A document path of the v3 index.
#[derive(Debug, PartialEq, Eq)]
enum DocPath {
    Api,
    Apis,
    Version,
    Group(String),
    GroupVersion(String, String),
}

impl DocPath {
    /// Parses `path`; `None` unless the index lists it.
    fn parse(path: &str, served: &[Cow<'_, ServedResource>]) -> Option<Self> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let doc_path = match parts.as_slice() {
            ["api"] => return Some(DocPath::Api),
            ["apis"] => return Some(DocPath::Apis),
            ["version"] => return Some(DocPath::Version),
            ["api", version] => DocPath::GroupVersion(String::new(), (*version).to_owned()),
            ["apis", group] if !group.is_empty() => DocPath::Group((*group).to_owned()),
            ["apis", group, version] if !group.is_empty() => {
                DocPath::GroupVersion((*group).to_owned(), (*version).to_owned())
            }
            _ => return None,
        };
        let listed = served.iter().any(|r| match &doc_path {
            DocPath::Group(group) => &r.group == group,
            DocPath::GroupVersion(group, version) => &r.group == group && &r.version == version,
            _ => false,
        });
        listed.then_some(doc_path)
    }
}

/// The resources to describe: `resources`, plus custom kinds they omit.
fn served<'a>(
    resources: &'a [ServedResource],
    extra: &[CustomSchema],
) -> Vec<Cow<'a, ServedResource>> {
    let mut served: Vec<Cow<'a, ServedResource>> = resources.iter().map(Cow::Borrowed).collect();
    for custom in extra {
        let listed = resources.iter().any(|r| {
            r.group == custom.group && r.version == custom.version && r.kind == custom.kind
        });
        if !listed {
            served.push(Cow::Owned(ServedResource {
                group: custom.group.clone(),
                version: custom.version.clone(),
                kind: custom.kind.clone(),
                plural: custom.plural.clone(),
                namespaced: custom.namespaced,
                subresources: Vec::new(),
                verbs: [
                    "get",
                    "list",
                    "watch",
                    "create",
                    "update",
                    "patch",
                    "delete",
                    "deletecollection",
                ]
                .map(String::from)
                .to_vec(),
            }));
        }
    }
    served
}

/// The resources with the definitions of their kinds and lists.
fn targets<'a>(
    index: &Index,
    served: &'a [Cow<'a, ServedResource>],
    extra: &[CustomSchema],
) -> Vec<Target<'a>> {
    served
        .iter()
        .map(|resource| {
            let (group, version, kind) = (&resource.group, &resource.version, &resource.kind);
            let custom = extra
                .iter()
                .any(|c| &c.group == group && &c.version == version && &c.kind == kind);
            if custom {
                Target {
                    resource,
                    definition: Some(custom_name(group, version, kind)),
                    list_definition: Some(custom_name(group, version, &format!("{kind}List"))),
                    custom: true,
                }
            } else {
                let definition = index
                    .definition_for(group, version, kind)
                    .map(str::to_owned);
                Target {
                    resource,
                    custom: definition.is_none(),
                    definition,
                    list_definition: index
                        .definition_for(group, version, &format!("{kind}List"))
                        .map(str::to_owned),
                }
            }
        })
        .collect()
}

/// Served (group, version) pairs, sorted.
fn group_versions(served: &[Cow<'_, ServedResource>]) -> BTreeSet<(String, String)> {
    served
        .iter()
        .map(|r| (r.group.clone(), r.version.clone()))
        .collect()
}

fn hash_of(
    digest: &[u8; 64],
    path: &str,
    served: &[Cow<'_, ServedResource>],
    extra: &[CustomSchema],
) -> String {
    let mut hasher = Sha512::new();
    hasher.update(FORMAT.as_bytes());
    hasher.update(digest);
    hasher.update(path.as_bytes());
    if let Some(DocPath::GroupVersion(group, version)) = DocPath::parse(path, served) {
        for r in served
            .iter()
            .filter(|r| r.group == group && r.version == version)
        {
            let fields = json!([
                r.group,
                r.version,
                r.kind,
                r.plural,
                r.namespaced,
                r.subresources,
                r.verbs
            ]);
            hasher.update(fields.to_string().as_bytes());
        }
        for c in extra
            .iter()
            .filter(|c| c.group == group && c.version == version)
        {
            let fields = json!([c.group, c.version, c.kind, c.plural, c.namespaced, c.schema]);
            hasher.update(fields.to_string().as_bytes());
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// (path, tag, operation id, description, schema) of `/api/`, `/apis/`, `/version/`.
fn root_discovery(
    doc_path: &DocPath,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
) {
    match doc_path {
        DocPath::Api => (
            "/api/",
            "core",
            "getCoreAPIVersions",
            "get available API versions",
            API_VERSIONS,
        ),
        DocPath::Version => (
            "/version/",
            "version",
            "getCodeVersion",
            "get the version information for this server",
            VERSION_INFO,
        ),
        _ => (
            "/apis/",
            "apis",
            "getAPIVersions",
            "get available API versions",
            API_GROUP_LIST,
        ),
    }
}

fn add_root_discovery(paths: &mut Map<String, Value>, flavor: Flavor) {
    for doc_path in [DocPath::Api, DocPath::Apis, DocPath::Version] {
        let (path, tag, id, description, schema) = root_discovery(&doc_path);
        paths::add_discovery(paths, flavor, path, tag, id, description, schema);
    }
}

fn add_group_version_discovery(
    paths: &mut Map<String, Value>,
    flavor: Flavor,
    group: &str,
    version: &str,
) {
    paths::add_discovery(
        paths,
        flavor,
        &format!("{}/", paths::api_prefix(group, version)),
        &paths::tag(group, version),
        &format!("get{}APIResources", paths::gv_name(group, version)),
        "get available resources",
        API_RESOURCE_LIST,
    );
}

/// The names of `roots` and every definition they reach through `$ref`s.
fn closure(definitions: &Map<String, Value>, roots: BTreeSet<String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut pending: Vec<String> = roots.into_iter().collect();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = definitions.get(&name) {
            collect_refs(schema, &mut pending);
        }
    }
    seen
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(reference)) => {
                        if let Some(name) = reference.strip_prefix(REF_PREFIX) {
                            out.push(name.to_owned());
                        }
                    }
                    _ => collect_refs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, out)),
        _ => {}
    }
}

/// A definition in OpenAPI v3 form. IntOrString and Quantity are a `oneOf`
/// there, as upstream's v3 documents have them (and `kubectl explain` then
/// names their fields `<IntOrString>` and `<Quantity>`, not `<string>`).
fn v3_definition(name: &str, schema: Value) -> Value {
    let one_of = match name {
        INT_OR_STRING => json!([{ "type": "integer" }, { "type": "string" }]),
        QUANTITY => json!([{ "type": "string" }, { "type": "number" }]),
        _ => return to_v3(schema),
    };
    let mut out = Map::new();
    if let Some(description) = schema.get("description") {
        out.insert("description".into(), description.clone());
    }
    if let Some(format) = schema.get("format") {
        out.insert("format".into(), format.clone());
    }
    out.insert("oneOf".into(), one_of);
    Value::Object(out)
}

/// A schema in OpenAPI v3 form: `$ref`s to `#/components/schemas/`, and
/// a `$ref` with siblings (a described field) wrapped in `allOf` as upstream
/// writes it, since v3 ignores a `$ref`'s siblings.
fn to_v3(schema: Value) -> Value {
    let Value::Object(map) = schema else {
        return schema;
    };
    let mut out = Map::new();
    let mut reference = None;
    for (key, value) in map {
        match (key.as_str(), value) {
            ("$ref", Value::String(r)) => {
                reference = Some(match r.strip_prefix(REF_PREFIX) {
                    Some(name) => format!("{V3_REF_PREFIX}{name}"),
                    None => r,
                });
            }
            ("properties", Value::Object(properties)) => {
                let properties = properties.into_iter().map(|(k, v)| (k, to_v3(v))).collect();
                out.insert(key, Value::Object(properties));
            }
            ("items" | "additionalProperties", value @ Value::Object(_)) => {
                out.insert(key, to_v3(value));
            }
            (_, value) => {
                out.insert(key, value);
            }
        }
    }
    if let Some(reference) = reference {
        if out.is_empty() {
            out.insert("$ref".into(), Value::String(reference));
        } else {
            out.insert("allOf".into(), json!([{ "$ref": reference }]));
        }
    }
    Value::Object(out)
}

/// Upstream's definition name of a custom kind: the group reversed, then
/// version and kind (`com.example.stable.v1.CronTab`).
fn custom_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').rev().collect();
    parts.push(version);
    parts.push(kind);
    parts.join(".")
}

/// A described reference to a definition (`allOf` in v3).
fn described_ref(flavor: Flavor, name: &str, description: &str) -> Value {
    let reference = flavor.reference(name);
    match flavor {
        Flavor::V2 => {
            let mut out = reference;
            out["description"] = Value::String(description.to_owned());
            out
        }
        Flavor::V3 => json!({ "allOf": [reference], "description": description }),
    }
}

/// The definitions of a custom kind and of its list.
fn custom_definitions(flavor: Flavor, custom: &CustomSchema) -> [(String, Value); 2] {
    let (group, version, kind) = (&custom.group, &custom.version, &custom.kind);
    let name = custom_name(group, version, kind);
    let string = |description: &str| json!({ "description": description, "type": "string" });

    let mut schema = match &custom.schema {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    schema.entry("type").or_insert_with(|| json!("object"));
    let properties = schema.entry("properties").or_insert_with(|| json!({}));
    if let Value::Object(properties) = properties {
        properties.insert("apiVersion".into(), string(API_VERSION_DESCRIPTION));
        properties.insert("kind".into(), string(KIND_DESCRIPTION));
        properties.insert(
            "metadata".into(),
            described_ref(flavor, OBJECT_META, METADATA_DESCRIPTION),
        );
    }
    schema.insert(
        "x-kubernetes-group-version-kind".into(),
        json!([{ "group": group, "kind": kind, "version": version }]),
    );

    let list = json!({
        "description": format!("{kind}List is a list of {kind}"),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": string(API_VERSION_DESCRIPTION),
            "items": {
                "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", custom.plural),
                "type": "array",
                "items": flavor.reference(&name),
            },
            "kind": string(KIND_DESCRIPTION),
            "metadata": described_ref(flavor, LIST_META, LIST_METADATA_DESCRIPTION),
        },
        "x-kubernetes-group-version-kind": [{ "group": group, "kind": format!("{kind}List"), "version": version }],
    });
    [
        (name.clone(), Value::Object(schema)),
        (custom_name(group, version, &format!("{kind}List")), list),
    ]
}

fn lower_first(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}
