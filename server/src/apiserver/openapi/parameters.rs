//! The query and path parameters of the operations, in v2 or v3 form.

use serde_json::{Value, json};

use super::paths::Flavor;

/// A parameter by name, in the flavor's form.
pub(super) fn parameter(flavor: Flavor, name: &str) -> Value {
    let (location, ty, description) = PARAMETERS
        .iter()
        .find(|(n, ..)| *n == name)
        .map_or(("query", "string", ""), |(_, l, t, d)| (*l, *t, *d));
    let mut out = match flavor {
        Flavor::V2 => {
            json!({ "name": name, "in": location, "description": description, "type": ty, "uniqueItems": true })
        }
        Flavor::V3 => json!({
            "name": name, "in": location, "description": description,
            "schema": { "type": ty, "uniqueItems": true },
        }),
    };
    if location == "path" {
        out["required"] = Value::Bool(true);
    }
    out
}

/// (name, in, type, description) of every parameter the paths use.
const PARAMETERS: &[(&str, &str, &str, &str)] = &[
    ("name", "path", "string", "name of the object"),
    (
        "namespace",
        "path",
        "string",
        "object name and auth scope, such as for teams and projects",
    ),
    (
        "pretty",
        "query",
        "string",
        "If 'true', the output is pretty printed.",
    ),
    (
        "allowWatchBookmarks",
        "query",
        "boolean",
        "allowWatchBookmarks asks a watch for events of type \"BOOKMARK\", sent at the server's discretion. Ignored when not watching.",
    ),
    (
        "continue",
        "query",
        "string",
        "continue is the token from a previous list answer with the same query, to fetch the next chunk of results. An expired token is answered with 410 ResourceExpired.",
    ),
    (
        "fieldSelector",
        "query",
        "string",
        "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
    ),
    (
        "labelSelector",
        "query",
        "string",
        "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
    ),
    (
        "limit",
        "query",
        "integer",
        "limit is the maximum number of items a list returns; when more exist, the list metadata carries a `continue` token for the rest.",
    ),
    (
        "resourceVersion",
        "query",
        "string",
        "resourceVersion constrains which resource versions the request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
    ),
    (
        "resourceVersionMatch",
        "query",
        "string",
        "resourceVersionMatch says how resourceVersion applies to a list call. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
    ),
    (
        "sendInitialEvents",
        "query",
        "boolean",
        "With `watch=true`, start the watch with synthetic events for the current state of the collection, followed by a \"Bookmark\" event.",
    ),
    (
        "timeoutSeconds",
        "query",
        "integer",
        "Timeout for the list/watch call, regardless of activity.",
    ),
    (
        "watch",
        "query",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
    ),
    (
        "dryRun",
        "query",
        "string",
        "When present, the modification is not persisted. Valid values are: - All: all dry run stages will be processed",
    ),
    (
        "fieldManager",
        "query",
        "string",
        "fieldManager names the actor or entity making these changes; at most 128 printable characters.",
    ),
    (
        "fieldValidation",
        "query",
        "string",
        "fieldValidation tells the server what to do with unknown or duplicate fields in the object of a POST/PUT/PATCH request. Valid values are: - Ignore: drop them silently. - Warn: drop them and send a warning header for each (the default). - Strict: fail the request with a BadRequest error listing them.",
    ),
    (
        "force",
        "query",
        "boolean",
        "Force makes an Apply request re-acquire fields other managers own. Must be unset for non-apply patch requests.",
    ),
    (
        "gracePeriodSeconds",
        "query",
        "integer",
        "Seconds before the object is deleted; a non-negative integer, zero deletes immediately. Unset uses the type's default.",
    ),
    (
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        "query",
        "boolean",
        "If true, delete the resource unsafely when the normal deletion fails with a corrupt object error. Defaults to false.",
    ),
    (
        "orphanDependents",
        "query",
        "boolean",
        "Deprecated: use propagationPolicy. Whether dependents are orphaned (adds or removes the \"orphan\" finalizer). Only one of this and propagationPolicy may be set.",
    ),
    (
        "propagationPolicy",
        "query",
        "string",
        "Whether and how garbage collection is performed: 'Orphan' orphans the dependents; 'Background' lets the garbage collector delete them in the background; 'Foreground' deletes them first. Only one of this and orphanDependents may be set.",
    ),
];
