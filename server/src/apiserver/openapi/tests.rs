use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{Value, json};

use super::*;

const ALL_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn openapi() -> &'static OpenApi {
    static OPENAPI: OnceLock<OpenApi> = OnceLock::new();
    OPENAPI.get_or_init(|| OpenApi::load().expect("load"))
}

fn resource(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    subresources: &[&str],
) -> ServedResource {
    ServedResource {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        subresources: subresources.iter().map(|s| s.to_string()).collect(),
        verbs: ALL_VERBS.iter().map(|s| s.to_string()).collect(),
    }
}

fn resources() -> Vec<ServedResource> {
    vec![
        resource(
            "",
            "v1",
            "Pod",
            "pods",
            true,
            &["status", "ephemeralcontainers", "log", "exec"],
        ),
        resource(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            &["status", "finalize"],
        ),
        resource("", "v1", "ConfigMap", "configmaps", true, &[]),
        resource(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["status", "scale"],
        ),
        resource(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            true,
            &["status", "scale"],
        ),
        resource(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            &["status"],
        ),
    ]
}

fn crontab() -> CustomSchema {
    CustomSchema {
        group: "stable.example.com".into(),
        version: "v1".into(),
        kind: "CronTab".into(),
        plural: "crontabs".into(),
        namespaced: true,
        schema: json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "cronSpec": { "type": "string" },
                        "replicas": { "type": "integer" },
                        "ports": { "type": "array", "items": {
                            "type": "object", "properties": { "port": { "type": "integer" } },
                        } },
                        "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                        "config": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                        "template": { "type": "object", "x-kubernetes-embedded-resource": true,
                            "properties": { "spec": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } },
                        "port": { "x-kubernetes-int-or-string": true },
                        "empty": { "type": "object" },
                    },
                },
                "status": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
            },
        }),
    }
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

#[test]
fn patch_schema_pod_spec_containers() {
    let meta = openapi()
        .field("io.k8s.api.core.v1.PodSpec", "containers")
        .expect("containers");
    assert_eq!(meta.strategies, vec!["merge"]);
    assert_eq!(meta.merge_key.as_deref(), Some("name"));
    assert_eq!(
        meta.definition.as_deref(),
        Some("io.k8s.api.core.v1.Container")
    );
    assert_eq!(meta.list_type.as_deref(), Some("map"));
    assert_eq!(meta.list_map_keys, vec!["name"]);
    assert!(meta.has("merge"));
}

#[test]
fn patch_schema_pod_spec_volumes() {
    let meta = openapi()
        .field("io.k8s.api.core.v1.PodSpec", "volumes")
        .expect("volumes");
    assert_eq!(meta.strategies, vec!["merge", "retainKeys"]);
    assert_eq!(meta.merge_key.as_deref(), Some("name"));
    assert_eq!(
        meta.definition.as_deref(),
        Some("io.k8s.api.core.v1.Volume")
    );
}

#[test]
fn patch_schema_container_ports() {
    let meta = openapi()
        .field("io.k8s.api.core.v1.Container", "ports")
        .expect("ports");
    assert_eq!(meta.merge_key.as_deref(), Some("containerPort"));
    assert_eq!(meta.list_type.as_deref(), Some("map"));
    assert_eq!(meta.list_map_keys, vec!["containerPort", "protocol"]);
    assert_eq!(
        meta.definition.as_deref(),
        Some("io.k8s.api.core.v1.ContainerPort")
    );
}

#[test]
fn patch_schema_finalizers_maps_and_scalars() {
    let api = openapi();
    let finalizers = api
        .field(
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "finalizers",
        )
        .expect("finalizers");
    assert_eq!(finalizers.strategies, vec!["merge"]);
    assert_eq!(finalizers.list_type.as_deref(), Some("set"));
    assert_eq!(finalizers.definition, None);

    let selector = api
        .field("io.k8s.api.core.v1.PodSpec", "nodeSelector")
        .expect("nodeSelector");
    assert_eq!(selector.map_type.as_deref(), Some("atomic"));
    assert!(selector.strategies.is_empty());

    // Values of a map of structs; scalar definitions (Quantity) give none.
    let limits = api
        .field("io.k8s.api.core.v1.ResourceRequirements", "limits")
        .expect("limits");
    assert_eq!(limits.definition, None);
    let template = api
        .field("io.k8s.api.apps.v1.DeploymentSpec", "template")
        .expect("template");
    assert_eq!(
        template.definition.as_deref(),
        Some("io.k8s.api.core.v1.PodTemplateSpec")
    );

    assert_eq!(api.field("io.k8s.api.core.v1.PodSpec", "nope"), None);
    assert_eq!(api.field("io.k8s.api.core.v1.Nope", "containers"), None);
}

#[test]
fn definition_for_gvk() {
    let api = openapi();
    assert_eq!(
        api.definition_for("apps", "v1", "Deployment"),
        Some("io.k8s.api.apps.v1.Deployment")
    );
    assert_eq!(
        api.definition_for("", "v1", "Pod"),
        Some("io.k8s.api.core.v1.Pod")
    );
    assert_eq!(
        api.definition_for("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        Some("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition")
    );
    assert_eq!(api.definition_for("apps", "v1", "Nope"), None);
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web", "labels": { "app": "web" }, "annotations": { "a": "b" } },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": 1 } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": {
                    "containers": [{
                        "name": "web",
                        "image": "nginx",
                        "ports": [{ "containerPort": 80 }],
                        "resources": { "limits": { "cpu": "1", "memory": "1Gi" } },
                        "env": [{ "name": "A", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }],
                    }],
                    "nodeSelector": { "disk": "ssd" },
                },
            },
        },
        "status": { "replicas": 2, "conditions": [{ "type": "Available", "status": "True" }] },
    })
}

#[test]
fn unknown_fields_valid_deployment() {
    let found = openapi().unknown_fields("io.k8s.api.apps.v1.Deployment", &deployment());
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn unknown_fields_in_deployment() {
    let mut object = deployment();
    object["spec"]["replicas2"] = json!(3);
    object["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("x");
    object["metadata"]["labelz"] = json!({});
    object["spec"]["template"]["spec"]["containers"][0]["ports"][0]["hostPortt"] = json!(1);
    let found = openapi().unknown_fields("io.k8s.api.apps.v1.Deployment", &object);
    assert_eq!(
        found,
        vec![
            "metadata.labelz",
            "spec.replicas2",
            "spec.template.spec.containers[0].imagee",
            "spec.template.spec.containers[0].ports[0].hostPortt",
        ]
    );
}

#[test]
fn unknown_fields_untyped_values_accept_anything() {
    let object = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "spec": { "versions": [{ "name": "v1", "schema": { "openAPIV3Schema": {
            "type": "object", "x-whatever": 1, "default": { "anything": true },
        } } }] },
    });
    let crd = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition";
    let found = openapi().unknown_fields(crd, &object);
    // `x-whatever` is not a JSONSchemaProps field; `default` is untyped JSON.
    assert_eq!(
        found,
        vec!["spec.versions[0].schema.openAPIV3Schema.x-whatever"]
    );
}

#[test]
fn unknown_fields_in_custom_resource() {
    let schema = crontab().schema;
    let object = json!({
        "apiVersion": "stable.example.com/v1",
        "kind": "CronTab",
        "metadata": { "name": "a", "bogus": 1 },
        "spec": {
            "cronSpec": "* * * * */5",
            "replicass": 1,
            "ports": [{ "port": 1 }, { "prot": 2 }],
            "labels": { "x": "y" },
            "config": { "anything": { "goes": true } },
            "template": { "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" }, "spec": { "x": 1 }, "extra": 1 },
            "port": "http",
            "empty": { "pruned": true },
        },
        "status": { "whatever": 1 },
        "top": 1,
    });
    let found = openapi().unknown_fields_in_schema(&schema, &object);
    assert_eq!(
        found,
        vec![
            "metadata.bogus",
            "spec.empty.pruned",
            "spec.ports[1].prot",
            "spec.replicass",
            "spec.template.extra",
            "top",
        ]
    );
}

/// kubectl's QueryParamVerifierV3: the first PATCH operation carrying the
/// GVK decides whether `param` is supported.
fn supports_query_param(doc: &Value, gvk: &Value, param: &str) -> bool {
    let paths = doc["paths"].as_object().expect("paths");
    for item in paths.values() {
        let Some(patch) = item.get("patch") else {
            continue;
        };
        if &patch["x-kubernetes-group-version-kind"] != gvk {
            continue;
        }
        return patch["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == param));
    }
    false
}

/// kubectl apply's gvkSupportsPatchOpenAPIV3.
fn supports_strategic_merge_patch(doc: &Value, gvk: &Value) -> bool {
    let paths = doc["paths"].as_object().expect("paths");
    for item in paths.values() {
        let Some(patch) = item.get("patch") else {
            continue;
        };
        if &patch["x-kubernetes-group-version-kind"] == gvk {
            return patch["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_some();
        }
    }
    false
}

/// Resolves `allOf[0]` then `$ref`, as strategicpatch's PatchMetaFromOpenAPIV3 does.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    if let Some(first) = schema.get("allOf").and_then(|a| a.get(0)) {
        schema = first;
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .expect("v3 ref");
        return &doc["components"]["schemas"][name];
    }
    schema
}

fn schema_by_gvk<'a>(doc: &'a Value, gvk: &Value) -> Option<&'a Value> {
    doc["components"]["schemas"]
        .as_object()?
        .values()
        .find(|s| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|list| list.contains(gvk))
        })
}

/// Every `$ref` in the document resolves to a component.
fn assert_refs_resolve(doc: &Value) {
    fn walk(doc: &Value, value: &Value) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "$ref" {
                        let name = child
                            .as_str()
                            .and_then(|r| r.strip_prefix("#/components/schemas/"));
                        let name = name.unwrap_or_else(|| panic!("bad ref {child}"));
                        assert!(
                            doc["components"]["schemas"].get(name).is_some(),
                            "dangling {name}"
                        );
                    } else {
                        walk(doc, child);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(doc, item)),
            _ => {}
        }
    }
    walk(doc, doc);
}

#[test]
fn v3_apps_v1_document() {
    let doc = openapi()
        .v3_group_version("apps", "v1", &resources(), &[])
        .expect("build")
        .expect("served");
    let doc = parse(&doc);
    assert_eq!(doc["openapi"], "3.0.0");
    assert_eq!(doc["info"]["version"], "v1.32.0");
    assert_refs_resolve(&doc);

    let deployment_gvk = gvk("apps", "v1", "Deployment");
    let schema = schema_by_gvk(&doc, &deployment_gvk).expect("Deployment schema");
    assert_eq!(schema["type"], "object");
    assert!(schema["properties"]["apiVersion"].get("enum").is_none());
    assert!(supports_query_param(
        &doc,
        &deployment_gvk,
        "fieldValidation"
    ));
    assert!(supports_strategic_merge_patch(&doc, &deployment_gvk));
    assert!(supports_query_param(
        &doc,
        &gvk("autoscaling", "v1", "Scale"),
        "fieldValidation"
    ));
    assert!(doc["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"].is_object());
    assert!(
        doc["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object()
    );
    assert!(
        doc["components"]["schemas"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"].is_object()
    );

    let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    let patch = &item["patch"];
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
    let names: Vec<&str> = patch["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["dryRun", "fieldManager", "fieldValidation", "force"]
    );
    let content = patch["requestBody"]["content"]
        .as_object()
        .expect("content");
    for t in [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ] {
        assert!(content.contains_key(t), "{t}");
    }
    assert_eq!(item["get"]["x-kubernetes-action"], "get");
    assert_eq!(item["put"]["x-kubernetes-action"], "put");
    assert_eq!(item["delete"]["x-kubernetes-action"], "delete");
    let collection = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"];
    assert_eq!(collection["get"]["x-kubernetes-action"], "list");
    assert_eq!(collection["post"]["x-kubernetes-action"], "post");
    assert_eq!(
        collection["delete"]["x-kubernetes-action"],
        "deletecollection"
    );
    assert_eq!(
        doc["paths"]["/apis/apps/v1/deployments"]["get"]["operationId"],
        "listAppsV1DeploymentForAllNamespaces"
    );
    assert_eq!(
        doc["paths"]["/apis/apps/v1/watch/namespaces/{namespace}/deployments"]["get"]["x-kubernetes-action"],
        "watchlist"
    );
    assert_eq!(
        doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]["patch"]["x-kubernetes-group-version-kind"],
        deployment_gvk
    );
    assert_eq!(
        doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["get"]["x-kubernetes-group-version-kind"],
        gvk("autoscaling", "v1", "Scale")
    );
    assert!(doc["paths"]["/apis/apps/v1/"]["get"].is_object());
    // No core or networking kinds leak into apps/v1.
    assert!(
        doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .all(|p| p.starts_with("/apis/apps/v1/"))
    );

    // strategicpatch's v3 walk: Deployment.spec.template.spec.containers.
    let mut schema = schema;
    for field in ["spec", "template", "spec"] {
        schema = resolve(&doc, &schema["properties"][field]);
    }
    let containers = &schema["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    let container = resolve(&doc, &containers["items"]);
    assert!(container["properties"]["image"].is_object());
}

#[test]
fn v3_core_v1_document_for_kubectl_explain() {
    let doc = parse(
        &openapi()
            .v3_document("api/v1", &resources(), &[])
            .expect("build")
            .expect("served"),
    );
    assert_refs_resolve(&doc);
    // kubectl explain finds the GVK on the list or item path's operations.
    let gvk_of = |path: &str| doc["paths"][path]["get"]["x-kubernetes-group-version-kind"].clone();
    assert_eq!(
        gvk_of("/api/v1/namespaces/{namespace}/pods"),
        gvk("", "v1", "Pod")
    );
    assert_eq!(gvk_of("/api/v1/namespaces"), gvk("", "v1", "Namespace"));
    assert!(
        doc["paths"]
            .get("/api/v1/namespaces/{namespace}/namespaces")
            .is_none()
    );
    let pod = schema_by_gvk(&doc, &gvk("", "v1", "Pod")).expect("Pod schema");
    // A described field is wrapped in allOf, as upstream writes it.
    assert_eq!(
        pod["properties"]["spec"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.PodSpec"
    );
    assert!(pod["properties"]["spec"]["description"].is_string());
    assert!(supports_query_param(
        &doc,
        &gvk("", "v1", "Pod"),
        "fieldValidation"
    ));
    assert!(supports_query_param(
        &doc,
        &gvk("", "v1", "Namespace"),
        "fieldValidation"
    ));
    assert!(
        doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/ephemeralcontainers"]["patch"]
            .is_object()
    );
    assert!(
        doc["paths"]
            .get("/api/v1/namespaces/{namespace}/pods/{name}/exec")
            .is_none()
    );
}

#[test]
fn v3_custom_resource_document() {
    let crontab = crontab();
    let doc = parse(
        &openapi()
            .v3_group_version(
                "stable.example.com",
                "v1",
                &resources(),
                std::slice::from_ref(&crontab),
            )
            .expect("build")
            .expect("served"),
    );
    assert_refs_resolve(&doc);
    let crontab_gvk = gvk("stable.example.com", "v1", "CronTab");
    let schema = schema_by_gvk(&doc, &crontab_gvk).expect("CronTab schema");
    assert_eq!(
        schema["properties"]["spec"]["properties"]["cronSpec"]["type"],
        "string"
    );
    assert_eq!(
        schema["properties"]["metadata"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(doc["components"]["schemas"]["com.example.stable.v1.CronTabList"].is_object());
    assert!(supports_query_param(&doc, &crontab_gvk, "fieldValidation"));
    assert!(!supports_strategic_merge_patch(&doc, &crontab_gvk));
    assert!(
        doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]["get"]
            .is_object()
    );
}

#[test]
fn v3_index_lists_group_versions_with_stable_hashes() {
    let api = openapi();
    let extra = [crontab()];
    let index = parse(&api.v3_index(&resources(), &extra).expect("index"));
    let paths = index["paths"].as_object().expect("paths");
    for path in [
        "api",
        "apis",
        "version",
        "api/v1",
        "apis/apps",
        "apis/apps/v1",
        "apis/networking.k8s.io/v1",
        "apis/stable.example.com/v1",
    ] {
        let url = paths[path]["serverRelativeURL"].as_str().expect(path);
        let (prefix, hash) = url.split_once("?hash=").expect("hash");
        assert_eq!(prefix, format!("/openapi/v3/{path}"));
        assert_eq!(hash.len(), 128);
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_eq!(
            api.v3_hash(path, &resources(), &extra).as_deref(),
            Some(hash)
        );
        assert!(
            api.v3_document(path, &resources(), &extra)
                .expect("build")
                .is_some(),
            "{path}"
        );
    }
    assert_eq!(paths.len(), 10);
    let again = parse(&api.v3_index(&resources(), &extra).expect("index"));
    assert_eq!(index, again);
    // A changed schema changes its group-version's hash only.
    let mut changed = crontab();
    changed.schema["properties"]["spec"]["properties"]["more"] = json!({ "type": "string" });
    let changed = [changed];
    assert_ne!(
        api.v3_hash("apis/stable.example.com/v1", &resources(), &extra),
        api.v3_hash("apis/stable.example.com/v1", &resources(), &changed)
    );
    assert_eq!(
        api.v3_hash("apis/apps/v1", &resources(), &extra),
        api.v3_hash("apis/apps/v1", &resources(), &changed)
    );
    assert_eq!(api.v3_hash("apis/batch/v1", &resources(), &extra), None);
    assert!(
        api.v3_document("apis/batch/v1", &resources(), &extra)
            .expect("build")
            .is_none()
    );
}

#[test]
fn v2_document() {
    let doc = parse(&openapi().v2_json(&resources(), &[crontab()]).expect("v2"));
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(doc["info"]["title"], "Kubernetes");
    assert_eq!(doc["info"]["version"], "v1.32.0");
    let definitions = doc["definitions"].as_object().expect("definitions");
    assert!(definitions.len() >= 638);
    assert!(definitions.contains_key("com.example.stable.v1.CronTab"));
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(
        patch["consumes"]
            .as_array()
            .expect("consumes")
            .contains(&json!("application/strategic-merge-patch+json"))
    );
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        gvk("apps", "v1", "Deployment")
    );
    assert_eq!(
        doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"]["parameters"][0]["schema"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.Pod"
    );
}

#[test]
#[allow(clippy::print_stdout)]
fn load_time_and_index_size() {
    let start = Instant::now();
    let api = OpenApi::load().expect("load");
    let load = start.elapsed();
    let start = Instant::now();
    let v3 = api
        .v3_group_version("", "v1", &resources(), &[])
        .expect("v3")
        .expect("served");
    let core = start.elapsed();
    let start = Instant::now();
    let v2 = api.v2_json(&resources(), &[]).expect("v2");
    let whole = start.elapsed();
    println!(
        "OpenApi::load {load:?}; index ~{} KiB; /openapi/v3/api/v1 {} KiB in {core:?}; /openapi/v2 {} KiB in {whole:?}",
        api.index_bytes() / 1024,
        v3.len() / 1024,
        v2.len() / 1024,
    );
    assert!(api.index_bytes() < 2 << 20);
}
