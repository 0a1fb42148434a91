//! Server-side apply and managed fields, against a hand-made schema of the
//! parts of Deployments and ConfigMaps the tests touch.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::super::schema::{FieldMeta, PatchSchema};
use super::*;

const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
const T0: &str = "2026-12-03T17:00:00Z";
const T1: &str = "2026-12-03T17:01:00Z";
const T2: &str = "2026-12-03T17:02:00Z";

#[derive(Default)]
struct TestSchema(HashMap<(&'static str, &'static str), FieldMeta>);

impl PatchSchema for TestSchema {
    fn field(&self, definition: &str, field: &str) -> Option<FieldMeta> {
        self.0
            .iter()
            .find(|((d, f), _)| *d == definition && *f == field)
            .map(|(_, m)| m.clone())
    }
}

fn object(def: &str) -> FieldMeta {
    FieldMeta {
        definition: Some(def.to_owned()),
        ..FieldMeta::default()
    }
}

fn list_map(def: &str, keys: &[&str]) -> FieldMeta {
    FieldMeta {
        strategies: vec!["merge".to_owned()],
        merge_key: Some(keys[0].to_owned()),
        definition: Some(def.to_owned()),
        list_type: Some("map".to_owned()),
        list_map_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        ..FieldMeta::default()
    }
}

fn schema() -> TestSchema {
    let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
    let mut fields = HashMap::new();
    let mut add = |def: &'static str, names: &[&'static str], m: FieldMeta| {
        for name in names {
            fields.insert((def, *name), m.clone());
        }
    };
    let scalar = FieldMeta::default();
    for root in [DEPLOYMENT, "io.k8s.api.core.v1.ConfigMap"] {
        add(root, &["apiVersion", "kind"], scalar.clone());
        add(root, &["metadata"], object(meta));
    }
    add(
        DEPLOYMENT,
        &["spec"],
        object("io.k8s.api.apps.v1.DeploymentSpec"),
    );
    add(
        DEPLOYMENT,
        &["status"],
        object("io.k8s.api.apps.v1.DeploymentStatus"),
    );
    add(
        "io.k8s.api.apps.v1.DeploymentStatus",
        &["replicas"],
        scalar.clone(),
    );
    add("io.k8s.api.core.v1.ConfigMap", &["data"], scalar.clone());
    add(
        meta,
        &[
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
        ],
        scalar.clone(),
    );
    add(meta, &["labels", "annotations"], scalar.clone());
    let finalizers = FieldMeta {
        strategies: vec!["merge".to_owned()],
        list_type: Some("set".to_owned()),
        ..FieldMeta::default()
    };
    add(meta, &["finalizers"], finalizers);
    let spec = "io.k8s.api.apps.v1.DeploymentSpec";
    add(spec, &["replicas"], scalar.clone());
    let selector = FieldMeta {
        map_type: Some("atomic".to_owned()),
        ..object("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
    };
    add(spec, &["selector"], selector);
    add(
        spec,
        &["template"],
        object("io.k8s.api.core.v1.PodTemplateSpec"),
    );
    add(
        "io.k8s.api.core.v1.PodTemplateSpec",
        &["metadata"],
        object(meta),
    );
    add(
        "io.k8s.api.core.v1.PodTemplateSpec",
        &["spec"],
        object("io.k8s.api.core.v1.PodSpec"),
    );
    add(
        "io.k8s.api.core.v1.PodSpec",
        &["containers"],
        list_map("io.k8s.api.core.v1.Container", &["name"]),
    );
    let container = "io.k8s.api.core.v1.Container";
    add(container, &["name", "image"], scalar.clone());
    add(
        container,
        &["args"],
        FieldMeta {
            list_type: Some("atomic".to_owned()),
            ..scalar.clone()
        },
    );
    add(
        container,
        &["ports"],
        list_map(
            "io.k8s.api.core.v1.ContainerPort",
            &["containerPort", "protocol"],
        ),
    );
    add(
        "io.k8s.api.core.v1.ContainerPort",
        &["containerPort", "protocol", "name"],
        scalar,
    );
    TestSchema(fields)
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    })
}

/// A configuration setting only what `spec` holds.
fn partial(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec})
}

fn run(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    apply(
        live,
        applied,
        manager,
        force,
        Some(DEPLOYMENT),
        &schema(),
        now,
    )
}

fn entry<'v>(object: &'v Value, manager: &str, operation: &str) -> Option<&'v Value> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn fields<'v>(object: &'v Value, manager: &str, operation: &str) -> &'v Value {
    entry(object, manager, operation).map_or(&Value::Null, |e| &e["fieldsV1"])
}

#[test]
fn apply_creates_the_object_with_an_apply_entry() {
    let applied = deployment(3, "nginx:1");
    let object = run(None, &applied, "kubectl", false, T0).expect("applies");
    let mut without = object.clone();
    without["metadata"]
        .as_object_mut()
        .map(|m| m.remove("managedFields"));
    assert_eq!(without, applied);
    let entry = entry(&object, "kubectl", "Apply").expect("entry");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["time"], T0);
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert_eq!(
        object["metadata"]["managedFields"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn fields_v1_of_a_kubectl_applied_deployment_has_upstreams_shape() {
    let applied = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
    });
    let object = run(None, &applied, "kubectl", false, T0).expect("applies");
    // Apply entries own map entries and list items, not the maps holding
    // them: no `"."` under `f:labels` (upstream's ConfigMap example shows
    // `f:labels: {f:test-label: {}}`), one on the list item.
    let expected = json!({
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}},
        }}}},
    });
    assert_eq!(fields(&object, "kubectl", "Apply"), &expected);
}

#[test]
fn reapplying_without_a_field_removes_it() {
    let first = run(None, &deployment(3, "nginx:1"), "kubectl", false, T0).expect("applies");
    let mut second = deployment(3, "nginx:1");
    second["spec"].as_object_mut().map(|s| s.remove("replicas"));
    second["metadata"]["labels"] = json!({"tier": "web"});
    let object = run(Some(&first), &second, "kubectl", false, T1).expect("re-applies");
    assert!(object["spec"].get("replicas").is_none());
    assert_eq!(object["metadata"]["labels"], json!({"tier": "web"}));
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1"
    );
    assert!(
        fields(&object, "kubectl", "Apply")["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    assert_eq!(
        entry(&object, "kubectl", "Apply").map(|e| &e["time"]),
        Some(&json!(T1))
    );
}

#[test]
fn fields_nobody_owns_survive_a_reapply() {
    let mut live = run(None, &deployment(3, "nginx:1"), "kubectl", false, T0).expect("applies");
    // What the server defaults after an apply belongs to nobody.
    live["spec"]["revisionHistoryLimit"] = json!(10);
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    let object =
        run(Some(&live), &deployment(3, "nginx:2"), "kubectl", false, T1).expect("re-applies");
    assert_eq!(object["spec"]["revisionHistoryLimit"], 10);
    let container = &object["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (&container["image"], &container["imagePullPolicy"]),
        (&json!("nginx:2"), &json!("IfNotPresent"))
    );
}

#[test]
fn a_field_another_manager_owns_is_kept_when_dropped() {
    let first = run(None, &partial(json!({"replicas": 3})), "a", false, T0).expect("a applies");
    let shared = run(
        Some(&first),
        &partial(json!({"replicas": 3})),
        "b",
        false,
        T1,
    )
    .expect("b shares");
    let object = run(Some(&shared), &partial(json!({})), "a", false, T2).expect("a drops it");
    assert_eq!(object["spec"]["replicas"], 3);
    assert!(entry(&object, "a", "Apply").is_none());
    assert_eq!(
        fields(&object, "b", "Apply"),
        &json!({"f:spec": {"f:replicas": {}}})
    );
}

#[test]
fn two_appliers_on_different_fields_coexist() {
    let first = run(None, &partial(json!({"replicas": 3})), "a", false, T0).expect("a applies");
    let mut labels = partial(json!({}));
    labels["metadata"]["labels"] = json!({"team": "x"});
    let object = run(Some(&first), &labels, "b", false, T1).expect("b applies");
    assert_eq!(object["spec"]["replicas"], 3);
    assert_eq!(object["metadata"]["labels"]["team"], "x");
    assert_eq!(
        fields(&object, "a", "Apply"),
        &json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        fields(&object, "b", "Apply"),
        &json!({"f:metadata": {"f:labels": {"f:team": {}}}})
    );
}

#[test]
fn changing_a_field_another_applier_owns_conflicts() {
    let first = run(None, &partial(json!({"replicas": 3})), "a", false, T0).expect("a applies");
    let err = run(
        Some(&first),
        &partial(json!({"replicas": 5})),
        "b",
        false,
        T1,
    )
    .expect_err("conflicts");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
    );
    assert_eq!((err.code(), err.reason()), (409, "Conflict"));
    let ApplyError::Conflicts(conflicts) = err else {
        panic!("not a conflict")
    };
    assert_eq!(conflicts[0].cause_message(), "conflict with \"a\"");
    assert_eq!(conflicts[0].field, ".spec.replicas");
}

/// A Deployment created by client-side `kubectl apply`.
fn created_client_side(replicas: i64, image: &str) -> Value {
    let mut object = deployment(replicas, image);
    let schema = schema();
    record_update(
        None,
        &mut object,
        "kubectl-client-side-apply",
        "apps/v1",
        Some(DEPLOYMENT),
        &schema,
        T0,
    );
    object
}

#[test]
fn changing_a_field_an_updater_owns_conflicts() {
    let live = created_client_side(3, "nginx:1");
    let err = run(
        Some(&live),
        &partial(json!({"replicas": 5})),
        "kubectl",
        false,
        T1,
    )
    .expect_err("conflicts");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    let ApplyError::Conflicts(conflicts) = err else {
        panic!("not a conflict")
    };
    assert_eq!(
        conflicts[0].cause_message(),
        "conflict with \"kubectl-client-side-apply\" using apps/v1"
    );
}

#[test]
fn several_conflicts_are_listed_by_owner() {
    let live = created_client_side(3, "nginx:1");
    let err = run(Some(&live), &deployment(5, "nginx:2"), "ci", false, T1).expect_err("conflicts");
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n\
         - .spec.replicas\n\
         - .spec.template.spec.containers[name=\"web\"].image"
    );
}

#[test]
fn applying_the_same_value_shares_the_field() {
    let live = created_client_side(3, "nginx:1");
    let object = run(
        Some(&live),
        &partial(json!({"replicas": 3})),
        "ci",
        false,
        T1,
    )
    .expect("shares");
    assert_eq!(
        fields(&object, "ci", "Apply"),
        &json!({"f:spec": {"f:replicas": {}}})
    );
    assert!(
        fields(&object, "kubectl-client-side-apply", "Update")["f:spec"]
            .get("f:replicas")
            .is_some()
    );
    // Nothing changed: the applier's entry has no time yet.
    assert!(entry(&object, "ci", "Apply").is_some_and(|e| e.get("time").is_none()));
}

#[test]
fn force_moves_ownership() {
    let live = created_client_side(3, "nginx:1");
    let object = run(
        Some(&live),
        &partial(json!({"replicas": 5})),
        "ci",
        true,
        T1,
    )
    .expect("forced");
    assert_eq!(object["spec"]["replicas"], 5);
    assert_eq!(
        fields(&object, "ci", "Apply"),
        &json!({"f:spec": {"f:replicas": {}}})
    );
    let updater = fields(&object, "kubectl-client-side-apply", "Update");
    assert!(updater["f:spec"].get("f:replicas").is_none());
    assert!(updater["f:spec"].get("f:template").is_some());
}

#[test]
fn containers_merge_by_name_across_appliers() {
    let container = |name: &str| {
        partial(json!({"template": {"spec": {"containers": [{"name": name, "image": name}]}}}))
    };
    let first = run(None, &container("a"), "a", false, T0).expect("a applies");
    let both = run(Some(&first), &container("b"), "b", false, T1).expect("b applies");
    let names: Vec<&Value> = both["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().map(|c| &c["name"]).collect())
        .unwrap_or_default();
    assert_eq!(names, vec![&json!("a"), &json!("b")]);
    assert_eq!(
        fields(&both, "b", "Apply"),
        &json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"b\"}": {".": {}, "f:image": {}, "f:name": {}},
        }}}}})
    );
    // a dropping its container removes it, and only it.
    let dropped = run(
        Some(&both),
        &partial(json!({"replicas": 1})),
        "a",
        false,
        T2,
    )
    .expect("a re-applies");
    assert_eq!(
        dropped["spec"]["template"]["spec"]["containers"],
        json!([{"name": "b", "image": "b"}])
    );
}

#[test]
fn ports_are_keyed_with_the_default_protocol() {
    let applied = partial(json!({"template": {"spec": {"containers": [
        {"name": "web", "ports": [{"containerPort": 80}]},
    ]}}}));
    let object = run(None, &applied, "kubectl", false, T0).expect("applies");
    let container = &fields(&object, "kubectl", "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"]
        ["k:{\"name\":\"web\"}"];
    assert_eq!(
        container["f:ports"],
        json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}})
    );
}

#[test]
fn set_lists_union_across_appliers() {
    let with_finalizer = |f: &str| {
        let mut c = partial(json!({}));
        c["metadata"]["finalizers"] = json!([f]);
        c
    };
    let first = run(None, &with_finalizer("a/x"), "a", false, T0).expect("a applies");
    let both = run(Some(&first), &with_finalizer("b/y"), "b", false, T1).expect("b applies");
    assert_eq!(both["metadata"]["finalizers"], json!(["a/x", "b/y"]));
    assert_eq!(
        fields(&both, "b", "Apply"),
        &json!({"f:metadata": {"f:finalizers": {"v:\"b/y\"": {}}}})
    );
}

#[test]
fn record_update_takes_what_a_client_side_write_changed() {
    let applied = run(None, &deployment(3, "nginx:1"), "kubectl", false, T0).expect("applies");
    let mut edited = applied.clone();
    edited["spec"]["replicas"] = json!(4);
    edited["metadata"]["labels"]["tier"] = json!("front");
    let schema = schema();
    record_update(
        Some(&applied),
        &mut edited,
        "kubectl-edit",
        "apps/v1",
        Some(DEPLOYMENT),
        &schema,
        T1,
    );
    assert_eq!(
        fields(&edited, "kubectl-edit", "Update"),
        &json!({"f:metadata": {"f:labels": {"f:tier": {}}}, "f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        entry(&edited, "kubectl-edit", "Update").map(|e| &e["time"]),
        Some(&json!(T1))
    );
    assert!(
        fields(&edited, "kubectl", "Apply")["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    // Apply entries sort before Update entries.
    assert_eq!(edited["metadata"]["managedFields"][0]["operation"], "Apply");
    let err = run(
        Some(&edited),
        &deployment(3, "nginx:1"),
        "kubectl",
        false,
        T2,
    )
    .expect_err("conflicts");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn record_update_on_create_tracks_added_maps_but_not_value_structs() {
    let object = created_client_side(3, "nginx:1");
    let entry = entry(&object, "kubectl-client-side-apply", "Update").expect("entry");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["time"], T0);
    assert_eq!(
        entry["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}},
                },
            },
        })
    );
}

#[test]
fn record_update_without_changes_keeps_entries() {
    let live = created_client_side(3, "nginx:1");
    let mut same = live.clone();
    same["metadata"]["resourceVersion"] = json!("7");
    let schema = schema();
    record_update(
        Some(&live),
        &mut same,
        "kubectl-edit",
        "apps/v1",
        Some(DEPLOYMENT),
        &schema,
        T1,
    );
    assert_eq!(
        same["metadata"]["managedFields"],
        live["metadata"]["managedFields"]
    );
}

#[test]
fn managed_fields_reset_by_the_client_and_untracked_objects() {
    let live = created_client_side(3, "nginx:1");
    let schema = schema();
    let mut cleared = live.clone();
    cleared["metadata"]["managedFields"] = json!([]);
    cleared["spec"]["replicas"] = json!(4);
    record_update(
        Some(&live),
        &mut cleared,
        "kubectl-edit",
        "apps/v1",
        Some(DEPLOYMENT),
        &schema,
        T1,
    );
    assert!(cleared["metadata"].get("managedFields").is_none());
    let mut again = cleared.clone();
    again["spec"]["replicas"] = json!(5);
    record_update(
        Some(&cleared),
        &mut again,
        "kubectl-edit",
        "apps/v1",
        Some(DEPLOYMENT),
        &schema,
        T2,
    );
    assert!(again["metadata"].get("managedFields").is_none());
    // Applying to an untracked object: what it held belongs to
    // before-first-apply, so changing it conflicts.
    let err = run(
        Some(&again),
        &partial(json!({"replicas": 6})),
        "ci",
        false,
        T2,
    )
    .expect_err("conflicts");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn sent_managed_fields_replace_the_live_ones() {
    let live = created_client_side(3, "nginx:1");
    let mut sent = live.clone();
    sent["metadata"]["managedFields"] = json!([{
        "manager": "someone", "operation": "Update", "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}},
    }]);
    let schema = schema();
    record_update(
        Some(&live),
        &mut sent,
        "kubectl-edit",
        "apps/v1",
        Some(DEPLOYMENT),
        &schema,
        T1,
    );
    let managers: Vec<&Value> = sent["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().map(|e| &e["manager"]).collect())
        .unwrap_or_default();
    assert_eq!(managers, vec![&json!("someone")]);
}

#[test]
fn a_noop_apply_keeps_the_entry_time() {
    let first = run(None, &deployment(3, "nginx:1"), "kubectl", false, T0).expect("applies");
    let again = run(
        Some(&first),
        &deployment(3, "nginx:1"),
        "kubectl",
        false,
        T1,
    )
    .expect("re-applies");
    assert_eq!(again, first);
}

#[test]
fn status_is_neither_applied_nor_owned_on_the_main_resource() {
    let mut applied = partial(json!({"replicas": 1}));
    applied["status"] = json!({"replicas": 9});
    let object = run(None, &applied, "kubectl", false, T0).expect("applies");
    assert!(object.get("status").is_none());
    assert!(
        fields(&object, "kubectl", "Apply")
            .get("f:status")
            .is_none()
    );
}

#[test]
fn client_side_apply_upgrades_to_server_side_without_conflicts() {
    let mut live = deployment(3, "nginx:1");
    let mut last = deployment(3, "nginx:1");
    last["metadata"].as_object_mut().map(|m| m.remove("labels"));
    live["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: format!("{last}\n")});
    let schema = schema();
    record_update(
        None,
        &mut live,
        "kubectl-client-side-apply",
        "apps/v1",
        Some(DEPLOYMENT),
        &schema,
        T0,
    );
    let mut applied = deployment(3, "nginx:2");
    applied["metadata"]
        .as_object_mut()
        .map(|m| m.remove("labels"));
    // The image changes, but live still holds the last-applied image.
    let object = run(Some(&live), &applied, "kubectl", false, T1).expect("upgrades");
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    let annotation = object["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
        .as_str()
        .unwrap_or_default();
    assert!(annotation.contains("nginx:2"));
    // Another manager gets no such pass.
    assert!(run(Some(&live), &applied, "ci", false, T1).is_err());
}

#[test]
fn bad_configurations_are_refused_as_upstream() {
    let no_key = partial(json!({"template": {"spec": {"containers": [{"image": "x"}]}}}));
    let err = run(None, &no_key, "kubectl", false, T0).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "failed to create typed patch object (/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: \
         element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
    );
    assert_eq!((err.code(), err.reason()), (500, ""));
    let twice =
        partial(json!({"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}));
    let err = run(None, &twice, "kubectl", false, T0).expect_err("refused");
    assert!(
        err.to_string()
            .ends_with(".spec.template.spec.containers: duplicate entries for key [name=\"a\"]")
    );

    let mut no_kind = partial(json!({}));
    no_kind.as_object_mut().map(|o| o.remove("kind"));
    let err = run(None, &no_kind, "kubectl", false, T0).expect_err("refused");
    assert_eq!(
        (err.to_string().as_str(), err.code()),
        ("invalid object type: apps/v1, Kind=", 400)
    );
    let mut managed = partial(json!({}));
    managed["metadata"]["managedFields"] = json!([]);
    let err = run(None, &managed, "kubectl", false, T0).expect_err("refused");
    assert_eq!(
        (err.to_string().as_str(), err.reason()),
        ("metadata.managedFields must be nil", "BadRequest")
    );
    let err = check_applied_type(&partial(json!({})), "v1", "Pod").expect_err("wrong kind");
    assert_eq!(
        err.to_string(),
        "invalid object type: apps/v1, Kind=Deployment"
    );
    assert!(check_applied_type(&partial(json!({})), "apps/v1", "Deployment").is_ok());
}

#[test]
fn kinds_without_schema_have_atomic_lists() {
    let schema = TestSchema::default();
    let cr = |items: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"items": items}});
    let first = apply(None, &cr(json!([1, 2])), "a", false, None, &schema, T0).expect("a applies");
    assert_eq!(
        fields(&first, "a", "Apply"),
        &json!({"f:spec": {"f:items": {}}})
    );
    let err =
        apply(Some(&first), &cr(json!([3])), "b", false, None, &schema, T1).expect_err("conflicts");
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"a\": .spec.items"
    );
    let forced =
        apply(Some(&first), &cr(json!([3])), "b", true, None, &schema, T1).expect("forced");
    assert_eq!(forced["spec"]["items"], json!([3]));
}

#[test]
fn field_managers_come_from_the_parameter_or_the_user_agent() {
    assert_eq!(
        field_manager_for(Some("kubectl-edit"), "kubectl/v1.32.0"),
        "kubectl-edit"
    );
    assert_eq!(
        field_manager_for(
            None,
            "kube-controller-manager/v1.32.0 (linux/amd64) kubernetes/abc"
        ),
        "kube-controller-manager"
    );
    assert_eq!(field_manager_for(Some(""), &"x".repeat(300)).len(), 128);
}
