//! Strategic merge patch cases, against a hand-written schema of the few
//! fields they touch.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{FieldMeta, PatchError, PatchSchema, PatchType, apply_patch};

const POD: &str = "io.k8s.api.core.v1.Pod";
const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";

/// The fields the tests need, as the embedded OpenAPI spec has them.
struct TestSchema(HashMap<(&'static str, &'static str), FieldMeta>);

impl TestSchema {
    fn new() -> TestSchema {
        let object = |def: &str| FieldMeta {
            definition: Some(def.to_string()),
            ..FieldMeta::default()
        };
        let merge = |key: Option<&str>, def: Option<&str>, extra: &[&str]| FieldMeta {
            strategies: std::iter::once("merge")
                .chain(extra.iter().copied())
                .map(String::from)
                .collect(),
            merge_key: key.map(String::from),
            definition: def.map(String::from),
            ..FieldMeta::default()
        };
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        let pod_spec = "io.k8s.api.core.v1.PodSpec";
        let container = "io.k8s.api.core.v1.Container";
        let fields = [
            ((POD, "metadata"), object(meta)),
            ((POD, "spec"), object(pod_spec)),
            ((DEPLOYMENT, "metadata"), object(meta)),
            (
                (DEPLOYMENT, "spec"),
                object("io.k8s.api.apps.v1.DeploymentSpec"),
            ),
            (
                ("io.k8s.api.apps.v1.DeploymentSpec", "template"),
                object("io.k8s.api.core.v1.PodTemplateSpec"),
            ),
            (
                ("io.k8s.api.apps.v1.DeploymentSpec", "strategy"),
                FieldMeta {
                    strategies: vec!["retainKeys".into()],
                    definition: Some("io.k8s.api.apps.v1.DeploymentStrategy".into()),
                    ..FieldMeta::default()
                },
            ),
            (
                ("io.k8s.api.core.v1.PodTemplateSpec", "metadata"),
                object(meta),
            ),
            (
                ("io.k8s.api.core.v1.PodTemplateSpec", "spec"),
                object(pod_spec),
            ),
            ((meta, "finalizers"), merge(None, None, &[])),
            (
                (pod_spec, "containers"),
                merge(Some("name"), Some(container), &[]),
            ),
            (
                (pod_spec, "volumes"),
                merge(
                    Some("name"),
                    Some("io.k8s.api.core.v1.Volume"),
                    &["retainKeys"],
                ),
            ),
            (
                (pod_spec, "tolerations"),
                FieldMeta {
                    definition: Some("io.k8s.api.core.v1.Toleration".into()),
                    list_type: Some("atomic".into()),
                    ..FieldMeta::default()
                },
            ),
            (
                (container, "ports"),
                merge(
                    Some("containerPort"),
                    Some("io.k8s.api.core.v1.ContainerPort"),
                    &[],
                ),
            ),
            (
                (container, "env"),
                merge(Some("name"), Some("io.k8s.api.core.v1.EnvVar"), &[]),
            ),
        ];
        TestSchema(fields.into_iter().collect())
    }
}

impl PatchSchema for TestSchema {
    fn field(&self, definition: &str, field: &str) -> Option<FieldMeta> {
        self.0
            .iter()
            .find(|((d, f), _)| *d == definition && *f == field)
            .map(|(_, meta)| meta.clone())
    }
}

fn smp(root: &str, original: &Value, patch: Value) -> Result<Value, PatchError> {
    apply_patch(
        PatchType::StrategicMerge,
        original,
        patch.to_string().as_bytes(),
        Some(root),
        &TestSchema::new(),
    )
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "labels": {"app": "web", "tier": "frontend"},
            "finalizers": ["a", "b", "c"]
        },
        "spec": {
            "containers": [
                {"name": "a", "image": "nginx",
                 "ports": [{"containerPort": 80, "protocol": "TCP"}],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "b", "image": "redis"},
                {"name": "c", "image": "busybox"}
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "k1", "effect": "NoSchedule"}, {"key": "k2", "effect": "NoExecute"}]
        }
    })
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|items| items.iter().filter_map(|i| i["name"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn change_one_container_image() {
    let out = smp(
        POD,
        &pod(),
        json!({"spec": {"containers": [{"name": "b", "image": "redis:7"}]}}),
    )
    .unwrap();
    assert_eq!(names(&out["spec"]["containers"]), ["a", "b", "c"]);
    assert_eq!(
        out["spec"]["containers"][1],
        json!({"name": "b", "image": "redis:7"})
    );
    assert_eq!(out["spec"]["containers"][0], pod()["spec"]["containers"][0]);
}

#[test]
fn add_a_container_puts_it_first() {
    // The kubectl patch docs' example: the new container comes first.
    let original = json!({"spec": {"containers": [{"name": "patch-demo-ctr", "image": "nginx"}]}});
    let out = smp(
        POD,
        &original,
        json!({"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "patch-demo-ctr-2", "image": "redis"}, {"name": "patch-demo-ctr", "image": "nginx"}])
    );
}

#[test]
fn delete_a_container() {
    let out = smp(
        POD,
        &pod(),
        json!({"spec": {"containers": [{"name": "b", "$patch": "delete"}]}}),
    )
    .unwrap();
    assert_eq!(names(&out["spec"]["containers"]), ["a", "c"]);
    // As kubectl apply sends it, with the order of what is left.
    let out = smp(
        POD,
        &pod(),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
            "containers": [{"$patch": "delete", "name": "b"}]
        }}),
    )
    .unwrap();
    assert_eq!(names(&out["spec"]["containers"]), ["a", "c"]);
}

#[test]
fn replace_the_containers() {
    let out = smp(
        POD,
        &pod(),
        json!({"spec": {"containers": [{"name": "z", "image": "z:1"}, {"$patch": "replace"}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "z", "image": "z:1"}])
    );
    // `$patch: replace` alone empties the list.
    let out = smp(
        POD,
        &pod(),
        json!({"spec": {"containers": [{"$patch": "replace"}]}}),
    )
    .unwrap();
    assert_eq!(out["spec"]["containers"], json!([]));
}

#[test]
fn replace_and_delete_a_map() {
    let out = smp(
        POD,
        &pod(),
        json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}}),
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
    // `$patch: delete` on a map empties it, as upstream does.
    let out = smp(
        POD,
        &pod(),
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"], json!({}));
}

#[test]
fn set_element_order_reorders() {
    let out = smp(
        POD,
        &pod(),
        json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}}),
    )
    .unwrap();
    assert_eq!(names(&out["spec"]["containers"]), ["c", "a", "b"]);
    // Items the directive leaves out keep their place among the others.
    let out = smp(
        POD,
        &pod(),
        json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}}),
    )
    .unwrap();
    assert_eq!(names(&out["spec"]["containers"]), ["b", "c", "a"]);
}

#[test]
fn set_element_order_places_a_new_env_var_in_the_middle() {
    // kubectl apply after inserting X between A and B.
    let out = smp(
        POD,
        &pod(),
        json!({"spec": {"containers": [{
            "name": "a",
            "$setElementOrder/env": [{"name": "A"}, {"name": "X"}, {"name": "B"}],
            "env": [{"name": "X", "value": "x"}]
        }], "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}),
    )
    .unwrap();
    assert_eq!(names(&out["spec"]["containers"][0]["env"]), ["A", "X", "B"]);
    assert_eq!(names(&out["spec"]["containers"]), ["a", "b", "c"]);
}

#[test]
fn set_element_order_must_match_the_patch_list() {
    let err = smp(
        POD,
        &pod(),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "b", "image": "x"}]
        }}),
    )
    .unwrap_err();
    assert_eq!(err.field_path(), Some("spec.containers"));
    assert!(
        err.to_string().starts_with("the order in patch list:"),
        "{err}"
    );
}

#[test]
fn ports_merge_by_container_port() {
    let out = smp(
        POD,
        &pod(),
        json!({"spec": {"containers": [{"name": "a", "ports": [
            {"containerPort": 80, "name": "http"}, {"containerPort": 443}
        ]}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}])
    );
}

#[test]
fn finalizers_union_and_delete_from_primitive_list() {
    let out = smp(
        POD,
        &pod(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
    )
    .unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
    // Union; new items go before the server's remaining ones, as upstream.
    let out = smp(POD, &pod(), json!({"metadata": {"finalizers": ["d", "a"]}})).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["d", "a", "b", "c"]));
    // As kubectl apply sends a removal.
    let out = smp(
        POD,
        &pod(),
        json!({"metadata": {
            "$setElementOrder/finalizers": ["a", "c"],
            "$deleteFromPrimitiveList/finalizers": ["b"]
        }}),
    )
    .unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
    // A deletion list for a missing field adds nothing.
    let original = json!({"metadata": {"name": "x"}});
    let out = smp(
        POD,
        &original,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
    )
    .unwrap();
    assert_eq!(out, original);
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.26", "imagePullPolicy": "IfNotPresent"}]}
            }
        }
    })
}

#[test]
fn retain_keys_switches_to_recreate() {
    let out = smp(
        DEPLOYMENT,
        &deployment(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    )
    .unwrap();
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    // kubectl apply's form, with the dropped field nulled too.
    let out = smp(
        DEPLOYMENT,
        &deployment(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
    )
    .unwrap();
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    // Setting a field the directive does not list is refused.
    let err = smp(
        DEPLOYMENT,
        &deployment(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}}),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "invalid patch format of retainKeys");
    assert_eq!(err.code(), 400);
    assert_eq!(err.field_path(), Some("spec.strategy"));
}

#[test]
fn retain_keys_in_a_merging_list_item() {
    let out = smp(
        POD,
        &pod(),
        json!({"spec": {"volumes": [
            {"$retainKeys": ["configMap", "name"], "name": "data", "configMap": {"name": "cm"}}
        ]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cm"}}])
    );
}

#[test]
fn null_deletes_a_label() {
    let out = smp(
        POD,
        &pod(),
        json!({"metadata": {"labels": {"tier": null, "env": "prod"}}}),
    )
    .unwrap();
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "env": "prod"})
    );
}

#[test]
fn lists_without_strategy_are_replaced() {
    let out = smp(
        POD,
        &pod(),
        json!({"spec": {"tolerations": [{"key": "k3", "effect": "NoSchedule"}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["tolerations"],
        json!([{"key": "k3", "effect": "NoSchedule"}])
    );
}

#[test]
fn unknown_fields_patch_like_a_merge_patch() {
    let original =
        json!({"spec": {"extra": {"keep": 1, "drop": 2, "list": [1, 2]}}, "status": {"a": 1}});
    let out = smp(
        POD,
        &original,
        json!({"spec": {"extra": {"drop": null, "list": [3], "new": {"x": null, "y": 1}}}}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"spec": {"extra": {"keep": 1, "list": [3], "new": {"y": 1}}}, "status": {"a": 1}})
    );
}

#[test]
fn new_values_lose_nulls_and_directives() {
    let original = json!({"metadata": {"name": "x"}});
    let out = smp(
        POD,
        &original,
        json!({"spec": {"containers": [{"name": "a", "image": null, "$setElementOrder/env": []}],
                        "affinity": {"$patch": "replace"}}}),
    )
    .unwrap();
    assert_eq!(out["spec"], json!({"containers": [{"name": "a"}]}));
}

#[test]
fn merge_item_without_merge_key() {
    let err = smp(
        POD,
        &pod(),
        json!({"spec": {"containers": [{"image": "nginx:2"}]}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "map: map[image:nginx:2] does not contain declared merge key: name"
    );
    assert_eq!(err.field_path(), Some("spec.containers[0]"));
    assert_eq!(err.code(), 500);
    let err = smp(
        POD,
        &pod(),
        json!({"spec": {"containers": [{"$patch": "delete", "image": "x"}]}}),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("does not contain declared merge key: name"),
        "{err}"
    );
}

#[test]
fn bad_directives() {
    let err = smp(
        POD,
        &pod(),
        json!({"metadata": {"labels": {"$patch": "frob"}}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown patch type: frob in map: map[$patch:frob]"
    );
    assert_eq!(err.field_path(), Some("metadata.labels"));
    let err = smp(
        POD,
        &pod(),
        json!({"spec": {"containers": [{"$patch": "merge", "name": "a"}]}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "merging lists cannot yet be specified in the patch"
    );
    let err = smp(POD, &pod(), json!({"spec": {"$setElementOrder": []}})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid patch format of setElementOrder list"
    );
    assert_eq!(err.code(), 400);
    let err = smp(
        POD,
        &pod(),
        json!({"metadata": {"$deleteFromPrimitiveListX/finalizers": []}}),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "invalid patch format of primitive list");
    let err = smp(
        POD,
        &pod(),
        json!({"spec": {"$setElementOrder/containers": "a"}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected a []interface {}, but received a string"
    );
    let err = smp(POD, &pod(), json!({"metadata": {"finalizers": [["x"]]}})).unwrap_err();
    assert_eq!(
        err,
        PatchError::ListOfLists {
            path: "metadata.finalizers".into()
        }
    );
    let err = smp(POD, &pod(), json!({"metadata": {"finalizers": [1]}})).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("list element types are not identical"),
        "{err}"
    );
}

#[test]
fn malformed_bodies() {
    let schema = TestSchema::new();
    let err =
        apply_patch(PatchType::StrategicMerge, &pod(), b"[]", Some(POD), &schema).unwrap_err();
    assert_eq!(
        err.to_string(),
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
    assert_eq!(err.code(), 400);
    let err = apply_patch(PatchType::StrategicMerge, &pod(), b"{", Some(POD), &schema).unwrap_err();
    assert_eq!(err.code(), 400);
}

#[test]
fn kubectl_apply_image_change() {
    // What kubectl 1.32 `apply` sends after the image in the manifest changed.
    let last_applied = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"name":"web","namespace":"default"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":"nginx:1.27","name":"nginx"}]}}}}
"#;
    let body = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{"image": "nginx:1.27", "name": "nginx"}]
        }}}
    });
    let out = smp(DEPLOYMENT, &deployment(), body).unwrap();
    let mut want = deployment();
    want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!(last_applied);
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    assert_eq!(out, want);
}

#[test]
fn untyped_root_is_a_merge_patch_with_directives() {
    // A definition the schema does not know: everything is untyped.
    let original = json!({"spec": {"list": [1, 2], "m": {"a": 1}}});
    let out = smp(
        "io.example.Unknown",
        &original,
        json!({"spec": {"list": [3], "m": {"$patch": "replace", "b": 2}}}),
    )
    .unwrap();
    assert_eq!(out, json!({"spec": {"list": [3], "m": {"b": 2}}}));
}

#[test]
fn server_only_items_keep_their_place_after_a_rename() {
    // kubectl apply renaming `app` while a webhook-injected sidecar lives
    // on the server only: upstream puts the sidecar first.
    let original = json!({"spec": {"containers": [
        {"name": "app", "image": "app:1"}, {"name": "istio-proxy", "image": "proxy"}
    ]}});
    let out = smp(
        POD,
        &original,
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "app2"}],
            "containers": [{"name": "app2", "image": "app:2"}, {"$patch": "delete", "name": "app"}]
        }}),
    )
    .unwrap();
    assert_eq!(names(&out["spec"]["containers"]), ["istio-proxy", "app2"]);
}
