//! Update rules: immutable fields and what may change.

use serde_json::json;

use super::check_update;
use super::fixtures::*;

#[test]
fn immutable_selector() {
    let old = deployment();
    let mut new = deployment();
    new["spec"]["selector"]["matchLabels"] = json!({ "app": "web2" });
    new["spec"]["template"]["metadata"]["labels"]["app"] = json!("web2");
    assert_eq!(
        check_update("apps", "deployments", &new, &old),
        [
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        ]
    );
    let mut scaled = deployment();
    scaled["spec"]["replicas"] = json!(5);
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    assert_eq!(
        check_update("apps", "deployments", &scaled, &old),
        Vec::<String>::new()
    );
    let old = job();
    let mut new = job();
    new["spec"]["selector"]["matchLabels"]["extra"] = json!("x");
    new["spec"]["template"]["metadata"]["labels"]["extra"] = json!("x");
    let causes = check_update("batch", "jobs", &new, &old);
    assert_eq!(
        causes[0],
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"batch.kubernetes.io/controller-uid\":\"a1b2\", \"extra\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    );
    assert!(
        causes[1].starts_with("spec.template: Invalid value: {"),
        "{causes:?}"
    );
    assert!(causes[1].ends_with("}: field is immutable"), "{causes:?}");
}

#[test]
fn pod_updates_are_limited() {
    let old = pod();
    let mut new = pod();
    new["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    new["spec"]["activeDeadlineSeconds"] = json!(60);
    new["spec"]["tolerations"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "key": "k", "operator": "Exists" }));
    new["metadata"]["labels"]["extra"] = json!("yes");
    assert_eq!(check_update("", "pods", &new, &old), Vec::<String>::new());

    let mut new = pod();
    new["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8080);
    let causes = check_update("", "pods", &new, &old);
    assert_eq!(causes.len(), 1);
    assert!(
        causes[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"),
        "{causes:?}"
    );
    assert!(causes[0].contains("- containers[0].ports[0].containerPort: 80\n+ containers[0].ports[0].containerPort: 8080"), "{causes:?}");

    let mut new = pod();
    new["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(container("sidecar"));
    assert_eq!(
        check_update("", "pods", &new, &old),
        ["spec.containers: Forbidden: pod updates may not add or remove containers"]
    );

    let mut new = pod();
    new["spec"]["tolerations"] = json!([]);
    let causes = check_update("", "pods", &new, &old);
    assert_eq!(
        causes,
        [
            "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
        ]
    );

    let mut new = pod();
    new["metadata"]["name"] = json!("other");
    assert_eq!(
        check_update("", "pods", &new, &old),
        ["metadata.name: Invalid value: \"other\": field is immutable"]
    );
}

#[test]
fn stateful_set_updates() {
    let old = stateful_set();
    let mut new = stateful_set();
    new["spec"]["replicas"] = json!(3);
    new["spec"]["minReadySeconds"] = json!(5);
    assert_eq!(
        check_update("apps", "statefulsets", &new, &old),
        Vec::<String>::new()
    );
    new["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] =
        json!("2Gi");
    assert_eq!(
        check_update("apps", "statefulsets", &new, &old),
        [
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        ]
    );
}

#[test]
fn service_cluster_ip_is_immutable() {
    let old = service();
    let mut new = service();
    new["spec"]["clusterIP"] = json!("10.43.0.21");
    new["spec"]["clusterIPs"] = json!(["10.43.0.21"]);
    assert_eq!(
        check_update("", "services", &new, &old),
        ["spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.21\"}: may not change once set"]
    );
}

#[test]
fn immutable_config_maps_and_secrets() {
    let mut old = config_map();
    old["immutable"] = json!(true);
    let mut new = old.clone();
    new["data"]["KEY_NAME"] = json!("changed");
    assert_eq!(
        check_update("", "configmaps", &new, &old),
        ["data: Forbidden: field is immutable when `immutable` is set"]
    );
    new["immutable"] = json!(false);
    assert_eq!(
        check_update("", "configmaps", &new, &old),
        [
            "immutable: Forbidden: field is immutable when `immutable` is set",
            "data: Forbidden: field is immutable when `immutable` is set"
        ]
    );
    let old = secret();
    let mut new = secret();
    new["type"] = json!("Opaque");
    assert_eq!(
        check_update("", "secrets", &new, &old),
        ["type: Invalid value: \"Opaque\": field is immutable"]
    );
}

#[test]
fn claims_bindings_and_runtime_classes() {
    let old = pvc();
    let mut new = pvc();
    new["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    let causes = check_update("", "persistentvolumeclaims", &new, &old);
    assert_eq!(causes.len(), 1);
    assert!(causes[0].starts_with("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n"));
    new["status"]["phase"] = json!("Bound");
    new["spec"]["volumeName"] = json!("pv-1");
    assert_eq!(
        check_update("", "persistentvolumeclaims", &new, &old),
        Vec::<String>::new()
    );

    let old = json!({ "metadata": { "name": "b", "namespace": "default" },
                      "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r" } });
    let mut new = old.clone();
    new["roleRef"]["name"] = json!("r2");
    assert_eq!(
        check_update("rbac.authorization.k8s.io", "rolebindings", &new, &old),
        [
            "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"r2\"}: cannot change roleRef"
        ]
    );

    let old = json!({ "metadata": { "name": "wasm" }, "handler": "wasmtime" });
    let new = json!({ "metadata": { "name": "wasm" }, "handler": "runc" });
    assert_eq!(
        check_update("node.k8s.io", "runtimeclasses", &new, &old),
        ["handler: Invalid value: \"runc\": field is immutable"]
    );

    let mut old = pv();
    let mut new = pv();
    new["spec"]["hostPath"]["path"] = json!("/srv/other");
    assert!(check_update("", "persistentvolumes", &new, &old)[0].starts_with("spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation\n"));
    old["metadata"]["deletionTimestamp"] = json!("2026-12-03T17:00:00Z");
    let mut new = old.clone();
    new["metadata"]["finalizers"] = json!(["example.com/hold"]);
    assert_eq!(
        check_update("", "persistentvolumes", &new, &old),
        [
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/hold\"}"
        ]
    );
}
