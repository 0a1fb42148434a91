//! The OpenAPI paths of a served resource, laid out as kube-apiserver lays
//! them out: collection, item, cluster-wide list, watch and subresource
//! paths, each operation with `x-kubernetes-action` and
//! `x-kubernetes-group-version-kind`.
//!
//! kubectl reads two things here: whether the kind's PATCH operation lists
//! the `fieldValidation` parameter (then the server validates fields and
//! kubectl skips client-side validation, see cli-runtime's
//! `QueryParamVerifierV3`), and whether it accepts
//! `application/strategic-merge-patch+json` (then client-side apply computes
//! a strategic merge patch from the v3 schemas).

use serde_json::{Map, Value, json};

use super::ServedResource;
use super::parameters::parameter;

/// `metav1.Status`, the answer of deletes.
pub(super) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
/// `metav1.DeleteOptions`, the body of deletes.
pub(super) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
/// `metav1.Patch`, the body of patches.
pub(super) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
/// `metav1.WatchEvent`, the answer of watches.
pub(super) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
/// `autoscaling/v1` `Scale`, the `/scale` subresource.
pub(super) const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";

/// Subresources that hold the kind itself (GET/PUT/PATCH of the object).
const SAME_KIND_SUBRESOURCES: &[&str] = &["status", "ephemeralcontainers", "resize"];

const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_PARAMS: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
];
const DELETE_COLLECTION_PARAMS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];

/// Patch content types; custom resources take all but strategic merge.
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];
const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";

/// Which OpenAPI version to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    /// Swagger 2.0 (`/openapi/v2`).
    V2,
    /// OpenAPI 3.0 (`/openapi/v3/...`).
    V3,
}

impl Flavor {
    /// A `$ref` to a definition.
    pub fn reference(self, name: &str) -> Value {
        match self {
            Flavor::V2 => json!({ "$ref": format!("#/definitions/{name}") }),
            Flavor::V3 => json!({ "$ref": format!("#/components/schemas/{name}") }),
        }
    }

    fn schema(self, name: Option<&str>) -> Value {
        name.map_or_else(|| json!({ "type": "object" }), |n| self.reference(n))
    }
}

/// A served resource with the definitions of its kind and of its list.
#[derive(Debug)]
pub(super) struct Target<'a> {
    pub resource: &'a ServedResource,
    pub definition: Option<String>,
    pub list_definition: Option<String>,
    /// A custom resource: no protobuf, no strategic merge patch.
    pub custom: bool,
}

/// Adds the paths of `target` to `paths`.
pub(super) fn add_resource(paths: &mut Map<String, Value>, flavor: Flavor, target: &Target<'_>) {
    let r = target.resource;
    let has = |verb: &str| r.verbs.iter().any(|v| v == verb);
    let prefix = api_prefix(&r.group, &r.version);
    let scope = if r.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let namespaced = if r.namespaced { "Namespaced" } else { "" };
    let gv = gv_name(&r.group, &r.version);
    let kind = r.kind.as_str();
    let plural = r.plural.as_str();
    let gvk = [r.group.as_str(), r.version.as_str(), kind];
    let definition = target.definition.as_deref();
    let writer = Writer {
        flavor,
        tag: tag(&r.group, &r.version),
        custom: target.custom,
    };
    let scope_params: &[&str] = if r.namespaced {
        &["namespace", "pretty"]
    } else {
        &["pretty"]
    };
    let item_params: &[&str] = if r.namespaced {
        &["name", "namespace", "pretty"]
    } else {
        &["name", "pretty"]
    };

    let mut collection = Map::new();
    if has("list") {
        collection.insert(
            "get".into(),
            writer.operation(&Operation {
                action: "list",
                id: format!("list{gv}{namespaced}{kind}"),
                description: format!("list or watch objects of kind {kind}"),
                gvk,
                params: LIST_PARAMS,
                body: Body::None,
                codes: &["200"],
                schema: target.list_definition.as_deref(),
                produces: Produces::List,
            }),
        );
    }
    if has("create") {
        collection.insert(
            "post".into(),
            writer.operation(&Operation {
                action: "post",
                id: format!("create{gv}{namespaced}{kind}"),
                description: format!("create a {kind}"),
                gvk,
                params: WRITE_PARAMS,
                body: Body::Object(definition),
                codes: &["200", "201", "202"],
                schema: definition,
                produces: Produces::Object,
            }),
        );
    }
    if has("deletecollection") {
        collection.insert(
            "delete".into(),
            writer.operation(&Operation {
                action: "deletecollection",
                id: format!("delete{gv}Collection{namespaced}{kind}"),
                description: format!("delete collection of {kind}"),
                gvk,
                params: DELETE_COLLECTION_PARAMS,
                body: Body::Delete,
                codes: &["200"],
                schema: Some(STATUS),
                produces: Produces::Object,
            }),
        );
    }
    writer.insert_path(
        paths,
        format!("{prefix}{scope}/{plural}"),
        collection,
        scope_params,
    );

    let mut item = Map::new();
    if has("get") {
        item.insert(
            "get".into(),
            writer.operation(&Operation {
                action: "get",
                id: format!("read{gv}{namespaced}{kind}"),
                description: format!("read the specified {kind}"),
                gvk,
                params: &[],
                body: Body::None,
                codes: &["200"],
                schema: definition,
                produces: Produces::Object,
            }),
        );
    }
    if has("update") {
        item.insert(
            "put".into(),
            writer.replace(
                format!("replace{gv}{namespaced}{kind}"),
                kind,
                gvk,
                definition,
            ),
        );
    }
    if has("patch") {
        item.insert(
            "patch".into(),
            writer.patch(
                format!("patch{gv}{namespaced}{kind}"),
                kind,
                gvk,
                definition,
            ),
        );
    }
    if has("delete") {
        item.insert(
            "delete".into(),
            writer.operation(&Operation {
                action: "delete",
                id: format!("delete{gv}{namespaced}{kind}"),
                description: format!("delete a {kind}"),
                gvk,
                params: DELETE_PARAMS,
                body: Body::Delete,
                codes: &["200", "202"],
                schema: Some(STATUS),
                produces: Produces::Object,
            }),
        );
    }
    let item_path = format!("{prefix}{scope}/{plural}/{{name}}");
    writer.insert_path(paths, item_path.clone(), item, item_params);

    if r.namespaced && has("list") {
        let operation = writer.operation(&Operation {
            action: "list",
            id: format!("list{gv}{kind}ForAllNamespaces"),
            description: format!("list or watch objects of kind {kind}"),
            gvk,
            params: LIST_PARAMS,
            body: Body::None,
            codes: &["200"],
            schema: target.list_definition.as_deref(),
            produces: Produces::List,
        });
        writer.insert_get(paths, format!("{prefix}/{plural}"), operation, &["pretty"]);
    }

    if has("watch") {
        let watch = |action: &'static str, id: String, description: String| {
            writer.operation(&Operation {
                action,
                id,
                description,
                gvk,
                params: LIST_PARAMS,
                body: Body::None,
                codes: &["200"],
                schema: Some(WATCH_EVENT),
                produces: Produces::Watch,
            })
        };
        let deprecated = "deprecated: use the 'watch' parameter with a list operation instead";
        writer.insert_get(
            paths,
            format!("{prefix}/watch{scope}/{plural}"),
            watch(
                "watchlist",
                format!("watch{gv}{namespaced}{kind}List"),
                format!("watch individual changes to a list of {kind}. {deprecated}."),
            ),
            scope_params,
        );
        writer.insert_get(
            paths,
            format!("{prefix}/watch{scope}/{plural}/{{name}}"),
            watch(
                "watch",
                format!("watch{gv}{namespaced}{kind}"),
                format!(
                    "watch changes to an object of kind {kind}. {deprecated}, filtered to a single item with the 'fieldSelector' parameter."
                ),
            ),
            item_params,
        );
        if r.namespaced {
            writer.insert_get(
                paths,
                format!("{prefix}/watch/{plural}"),
                watch(
                    "watchlist",
                    format!("watch{gv}{kind}ListForAllNamespaces"),
                    format!("watch individual changes to a list of {kind}. {deprecated}."),
                ),
                &["pretty"],
            );
        }
    }

    for subresource in &r.subresources {
        let (sub_gvk, schema) = if subresource == "scale" {
            (["autoscaling", "v1", "Scale"], Some(SCALE))
        } else if SAME_KIND_SUBRESOURCES.contains(&subresource.as_str()) {
            (gvk, definition)
        } else {
            continue;
        };
        let suffix = capitalize(subresource);
        let mut operations = Map::new();
        operations.insert(
            "get".into(),
            writer.operation(&Operation {
                action: "get",
                id: format!("read{gv}{namespaced}{kind}{suffix}"),
                description: format!("read {subresource} of the specified {kind}"),
                gvk: sub_gvk,
                params: &[],
                body: Body::None,
                codes: &["200"],
                schema,
                produces: Produces::Object,
            }),
        );
        operations.insert(
            "put".into(),
            writer.replace(
                format!("replace{gv}{namespaced}{kind}{suffix}"),
                kind,
                sub_gvk,
                schema,
            ),
        );
        operations.insert(
            "patch".into(),
            writer.patch(
                format!("patch{gv}{namespaced}{kind}{suffix}"),
                kind,
                sub_gvk,
                schema,
            ),
        );
        writer.insert_path(
            paths,
            format!("{item_path}/{subresource}"),
            operations,
            item_params,
        );
    }
}

/// A GET at a discovery path (`/apis/apps/v1/`, `/api/`, `/version/`).
pub(super) fn add_discovery(
    paths: &mut Map<String, Value>,
    flavor: Flavor,
    path: &str,
    tag: &str,
    id: &str,
    description: &str,
    schema: &str,
) {
    let writer = Writer {
        flavor,
        tag: tag.to_owned(),
        custom: false,
    };
    let mut operation = writer.operation(&Operation {
        action: "",
        id: id.to_owned(),
        description: description.to_owned(),
        gvk: ["", "", ""],
        params: &[],
        body: Body::None,
        codes: &["200"],
        schema: Some(schema),
        produces: Produces::Discovery,
    });
    if let Some(operation) = operation.as_object_mut() {
        operation.remove("x-kubernetes-action");
        operation.remove("x-kubernetes-group-version-kind");
    }
    writer.insert_get(paths, path.to_owned(), operation, &[]);
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub(super) fn api_prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// Upstream's operation tag: `core_v1`, `apps_v1`, `rbacAuthorization_v1`.
pub(super) fn tag(group: &str, version: &str) -> String {
    let mut name = String::new();
    for (i, part) in group_parts(group).enumerate() {
        name.push_str(&if i == 0 {
            part.to_owned()
        } else {
            capitalize(part)
        });
    }
    format!("{name}_{version}")
}

/// Upstream's operation-id infix: `CoreV1`, `AppsV1`, `RbacAuthorizationV1`.
pub(super) fn gv_name(group: &str, version: &str) -> String {
    format!("{}{}", group_name(group), capitalize(version))
}

/// `Core`, `Apps`, `RbacAuthorization`, `StableExampleCom`.
pub(super) fn group_name(group: &str) -> String {
    group_parts(group).map(capitalize).collect()
}

fn group_parts(group: &str) -> impl Iterator<Item = &str> {
    let group = if group.is_empty() {
        "core"
    } else {
        group.strip_suffix(".k8s.io").unwrap_or(group)
    };
    group.split(['.', '-']).filter(|p| !p.is_empty())
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// One operation, before it is written in a flavor.
struct Operation<'a> {
    action: &'static str,
    id: String,
    description: String,
    gvk: [&'a str; 3],
    params: &'static [&'static str],
    body: Body<'a>,
    codes: &'static [&'static str],
    schema: Option<&'a str>,
    produces: Produces,
}

enum Body<'a> {
    None,
    Object(Option<&'a str>),
    Patch,
    Delete,
}

#[derive(Clone, Copy)]
enum Produces {
    Object,
    List,
    Watch,
    Discovery,
}

/// Writes operations of one resource in one flavor.
struct Writer {
    flavor: Flavor,
    tag: String,
    custom: bool,
}

impl Writer {
    fn replace(&self, id: String, kind: &str, gvk: [&str; 3], schema: Option<&str>) -> Value {
        self.operation(&Operation {
            action: "put",
            id,
            description: format!("replace the specified {kind}"),
            gvk,
            params: WRITE_PARAMS,
            body: Body::Object(schema),
            codes: &["200", "201"],
            schema,
            produces: Produces::Object,
        })
    }

    fn patch(&self, id: String, kind: &str, gvk: [&str; 3], schema: Option<&str>) -> Value {
        self.operation(&Operation {
            action: "patch",
            id,
            description: format!("partially update the specified {kind}"),
            gvk,
            params: PATCH_PARAMS,
            body: Body::Patch,
            codes: &["200", "201"],
            schema,
            produces: Produces::Object,
        })
    }

    fn produces(&self, produces: Produces) -> Vec<&'static str> {
        let mut types = vec!["application/json", "application/yaml"];
        if !self.custom {
            types.push("application/vnd.kubernetes.protobuf");
        }
        match produces {
            Produces::Object => {}
            Produces::Discovery => {
                types = vec![
                    "application/json",
                    "application/yaml",
                    "application/vnd.kubernetes.protobuf",
                ]
            }
            Produces::List | Produces::Watch => {
                types.push("application/json;stream=watch");
                if !self.custom {
                    types.push("application/vnd.kubernetes.protobuf;stream=watch");
                }
            }
        }
        types
    }

    fn patch_types(&self) -> Vec<&'static str> {
        PATCH_TYPES
            .iter()
            .copied()
            .filter(|t| !self.custom || *t != STRATEGIC_MERGE_PATCH)
            .collect()
    }

    fn operation(&self, op: &Operation<'_>) -> Value {
        let flavor = self.flavor;
        let mut out = Map::new();
        let mut parameters: Vec<Value> = op.params.iter().map(|p| parameter(flavor, p)).collect();
        let produces = self.produces(op.produces);
        let response_schema = flavor.schema(op.schema);
        match flavor {
            Flavor::V2 => {
                let consumes = match op.body {
                    Body::Patch => self.patch_types(),
                    _ => vec!["*/*"],
                };
                out.insert("consumes".into(), json!(consumes));
                out.insert("produces".into(), json!(produces));
                out.insert("schemes".into(), json!(["https"]));
                let body = match &op.body {
                    Body::None => None,
                    Body::Object(schema) => Some((flavor.schema(*schema), true)),
                    Body::Patch => Some((flavor.reference(PATCH), true)),
                    Body::Delete => Some((flavor.reference(DELETE_OPTIONS), false)),
                };
                if let Some((schema, required)) = body {
                    let mut param = json!({ "in": "body", "name": "body", "schema": schema });
                    if required {
                        param["required"] = Value::Bool(true);
                    }
                    parameters.insert(0, param);
                }
            }
            Flavor::V3 => {
                let body = match &op.body {
                    Body::None => None,
                    Body::Object(schema) => Some((media(&["*/*"], &flavor.schema(*schema)), true)),
                    Body::Patch => {
                        Some((media(&self.patch_types(), &flavor.reference(PATCH)), true))
                    }
                    Body::Delete => {
                        Some((media(&["*/*"], &flavor.reference(DELETE_OPTIONS)), false))
                    }
                };
                if let Some((content, required)) = body {
                    let mut request = json!({ "content": content });
                    if required {
                        request["required"] = Value::Bool(true);
                    }
                    out.insert("requestBody".into(), request);
                }
            }
        }
        out.insert("tags".into(), json!([self.tag]));
        out.insert("description".into(), Value::String(op.description.clone()));
        out.insert("operationId".into(), Value::String(op.id.clone()));
        if !parameters.is_empty() {
            out.insert("parameters".into(), Value::Array(parameters));
        }
        let mut responses = Map::new();
        for code in op.codes {
            let description = match *code {
                "201" => "Created",
                "202" => "Accepted",
                _ => "OK",
            };
            let response = match flavor {
                Flavor::V2 => json!({ "description": description, "schema": response_schema }),
                Flavor::V3 => {
                    json!({ "description": description, "content": media(&produces, &response_schema) })
                }
            };
            responses.insert((*code).into(), response);
        }
        responses.insert("401".into(), json!({ "description": "Unauthorized" }));
        out.insert("responses".into(), Value::Object(responses));
        out.insert(
            "x-kubernetes-action".into(),
            Value::String(op.action.into()),
        );
        let [group, version, kind] = op.gvk;
        out.insert(
            "x-kubernetes-group-version-kind".into(),
            json!({ "group": group, "kind": kind, "version": version }),
        );
        Value::Object(out)
    }

    /// Adds a path with its operations and path-level parameters.
    fn insert_path(
        &self,
        paths: &mut Map<String, Value>,
        path: String,
        mut operations: Map<String, Value>,
        params: &[&str],
    ) {
        if operations.is_empty() {
            return;
        }
        if !params.is_empty() {
            let params = params.iter().map(|p| parameter(self.flavor, p)).collect();
            operations.insert("parameters".into(), Value::Array(params));
        }
        paths.insert(path, Value::Object(operations));
    }

    fn insert_get(
        &self,
        paths: &mut Map<String, Value>,
        path: String,
        operation: Value,
        params: &[&str],
    ) {
        let mut operations = Map::new();
        operations.insert("get".into(), operation);
        self.insert_path(paths, path, operations, params);
    }
}

/// `{"<type>": {"schema": <schema>}, ...}`.
fn media(types: &[&str], schema: &Value) -> Value {
    Value::Object(
        types
            .iter()
            .map(|t| ((*t).to_owned(), json!({ "schema": schema })))
            .collect(),
    )
}
