//! Upstream's wording for the problems users hit most.

use serde_json::json;

use super::super::{CauseReason, invalid_message, validate};
use super::fixtures::*;
use super::{check, texts};

const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

#[test]
fn missing_image() {
    let mut p = pod();
    p["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("image");
    let causes = validate("", "pods", &p, None);
    assert_eq!(texts(&causes), ["spec.containers[0].image: Required value"]);
    assert_eq!(causes[0].reason, CauseReason::Required);
    assert_eq!(causes[0].reason.as_str(), "FieldValueRequired");
    assert_eq!(
        invalid_message("Pod", "web", &causes),
        "Pod \"web\" is invalid: spec.containers[0].image: Required value"
    );
}

#[test]
fn bad_name() {
    let mut cm = config_map();
    cm["metadata"]["name"] = json!("Bad_Name");
    let causes = validate("", "configmaps", &cm, None);
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason.as_str(), "FieldValueInvalid");
    assert_eq!(causes[0].field, "metadata.name");
    assert_eq!(
        causes[0].message,
        format!("Invalid value: \"Bad_Name\": {SUBDOMAIN_RULE}")
    );
    assert_eq!(
        invalid_message("ConfigMap", "Bad_Name", &causes),
        format!(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": {SUBDOMAIN_RULE}"
        )
    );
}

#[test]
fn name_formats_per_kind() {
    let svc = json!({ "metadata": { "name": "1web", "namespace": "default" }, "spec": { "ports": [{ "port": 80 }] } });
    assert_eq!(
        check("", "services", &svc),
        [
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
    let ns = json!({ "metadata": { "name": "team.a" } });
    assert_eq!(
        check("", "namespaces", &ns),
        ["metadata.name: Invalid value: \"team.a\": must not contain dots"]
    );
    let role = json!({ "metadata": { "name": "a/b", "namespace": "default" }, "rules": [] });
    assert_eq!(
        check("rbac.authorization.k8s.io", "roles", &role),
        ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
    );
    let role = json!({ "metadata": { "name": "..", "namespace": "default" } });
    assert_eq!(
        check("rbac.authorization.k8s.io", "roles", &role),
        ["metadata.name: Invalid value: \"..\": may not be '..'"]
    );
    let missing = json!({ "metadata": { "namespace": "default" }, "data": {} });
    assert_eq!(
        check("", "configmaps", &missing),
        ["metadata.name: Required value: name or generateName is required"]
    );
    let mut cron = cron_job();
    cron["metadata"]["name"] = json!("a".repeat(53));
    assert_eq!(
        check("batch", "cronjobs", &cron),
        [format!(
            "metadata.name: Invalid value: \"{}\": must be no more than 52 characters",
            "a".repeat(53)
        )]
    );
}

#[test]
fn cluster_scoped_kinds_refuse_a_namespace() {
    let pv = json!({ "metadata": { "name": "pv-1", "namespace": "default" }, "spec": pv()["spec"].clone() });
    assert_eq!(
        check("", "persistentvolumes", &pv),
        ["metadata.namespace: Forbidden: not allowed on this type"]
    );
}

#[test]
fn duplicate_container_name() {
    let mut p = pod();
    p["spec"]["containers"] = json!([container("web"), container("web")]);
    assert_eq!(
        check("", "pods", &p),
        ["spec.containers[1].name: Duplicate value: \"web\""]
    );
}

#[test]
fn invalid_label_key_and_value() {
    let mut cm = config_map();
    cm["metadata"]["labels"] =
        json!({ "bad key": "ok", "example..com/x": "-bad", "v": "x".repeat(64) });
    assert_eq!(
        check("", "configmaps", &cm),
        [
            "metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_owned(),
            format!("metadata.labels: Invalid value: \"example..com/x\": prefix part {SUBDOMAIN_RULE}"),
            "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_owned(),
            format!("metadata.labels: Invalid value: \"{}\": must be no more than 63 characters", "x".repeat(64)),
        ]
    );
}

#[test]
fn annotations_finalizers_and_owner_references() {
    let mut cm = config_map();
    cm["metadata"]["annotations"] = json!({ "big": "x".repeat(256 * 1024) });
    assert_eq!(
        check("", "configmaps", &cm),
        ["metadata.annotations: Too long: may not be more than 262144 bytes"]
    );
    let mut cm = config_map();
    cm["metadata"]["finalizers"] = json!(["example.com/cleanup", "kubernetes", "cleanup"]);
    assert_eq!(
        check("", "configmaps", &cm),
        [
            "metadata.finalizers[2]: Invalid value: \"cleanup\": name is neither a standard finalizer name nor is it fully qualified"
        ]
    );
    let mut cm = config_map();
    cm["metadata"]["ownerReferences"] =
        json!([{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" }]);
    assert_eq!(
        check("", "configmaps", &cm),
        ["metadata.ownerReferences.uid: Invalid value: \"\": must not be empty"]
    );
}

#[test]
fn selector_mismatch() {
    let mut d = deployment();
    d["spec"]["template"]["metadata"]["labels"] = json!({ "app": "other" });
    let causes = validate("apps", "deployments", &d, None);
    assert_eq!(
        invalid_message("Deployment.apps", "web", &causes),
        "Deployment.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"
    );
    let mut d = deployment();
    d["spec"].as_object_mut().unwrap().remove("selector");
    let causes = validate("apps", "deployments", &d, None);
    assert_eq!(
        invalid_message("Deployment.apps", "web", &causes),
        "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\", \"tier\":\"frontend\"}: `selector` does not match template `labels`]"
    );
    let mut d = deployment();
    d["spec"]["selector"] = json!({});
    assert_eq!(
        check("apps", "deployments", &d),
        [
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
        ]
    );
}

#[test]
fn workload_numbers_and_policies() {
    let mut d = deployment();
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    d["spec"]["strategy"] = json!({ "type": "Sometimes" });
    assert_eq!(
        check("apps", "deployments", &d),
        [
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            "spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:\"Sometimes\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\"",
        ]
    );
    let mut p = pod();
    p["spec"]["restartPolicy"] = json!("Sometimes");
    assert_eq!(
        check("", "pods", &p),
        [
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        ]
    );
    let mut j = job();
    j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    j["spec"]["parallelism"] = json!(-2);
    assert_eq!(
        check("batch", "jobs", &j),
        [
            "spec.parallelism: Invalid value: -2: must be greater than or equal to 0",
            "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
        ]
    );
}

#[test]
fn container_ports_mounts_and_resources() {
    let mut p = pod();
    let c = &mut p["spec"]["containers"][0];
    c["ports"] = json!([{ "name": "http", "containerPort": 70000 }, { "name": "http", "containerPort": 81 }, { "name": "Web_1", "containerPort": 82 }]);
    c["volumeMounts"] = json!([{ "name": "nope", "mountPath": "/x" }]);
    c["resources"] = json!({ "requests": { "cpu": "2", "memory": "1.5Gi" }, "limits": { "cpu": "1000m", "memory": "2Gi" } });
    assert_eq!(
        check("", "pods", &p),
        [
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
            "spec.containers[0].ports[2].name: Invalid value: \"Web_1\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "spec.containers[0].volumeMounts[0].name: Not found: \"nope\"",
            "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
        ]
    );
    assert_eq!(
        validate("", "pods", &p, None)[3].reason.as_str(),
        "FieldValueNotFound"
    );
    let mut p = pod();
    p["spec"]["volumes"] = json!([{ "name": "data", "emptyDir": {} }, { "name": "data", "emptyDir": {} }, { "name": "x" }]);
    assert_eq!(
        check("", "pods", &p),
        [
            "spec.volumes[1].name: Duplicate value: \"data\"",
            "spec.volumes[2]: Required value: must specify a volume type"
        ]
    );
}

#[test]
fn service_ports() {
    let svc = json!({ "metadata": { "name": "web", "namespace": "default" }, "spec": { "type": "ClusterIP", "selector": { "app": "web" } } });
    let causes = validate("", "services", &svc, None);
    assert_eq!(
        invalid_message("Service", "web", &causes),
        "Service \"web\" is invalid: spec.ports: Required value"
    );
    let mut svc = service();
    svc["spec"]["ports"][1]
        .as_object_mut()
        .unwrap()
        .remove("name");
    svc["spec"]["ports"][0]["nodePort"] = json!(80);
    svc["spec"]["ports"][1]["port"] = json!(0);
    assert_eq!(
        check("", "services", &svc),
        [
            "spec.ports[1].name: Required value",
            "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
        ]
    );
    let mut svc = service();
    svc["spec"]["type"] = json!("Magic");
    svc["spec"]["ports"][1]["port"] = json!(80);
    assert_eq!(
        check("", "services", &svc),
        [
            "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
        ]
    );
    let ext = json!({ "metadata": { "name": "ext", "namespace": "default" }, "spec": { "type": "ExternalName" } });
    assert_eq!(
        check("", "services", &ext),
        ["spec.externalName: Required value"]
    );
}

#[test]
fn bad_cron_schedules() {
    let cases = [
        (
            "every minute",
            "expected exactly 5 fields, found 2: [every minute]",
        ),
        ("61 * * * *", "end of range (61) above maximum (59): 61"),
        ("* * * * 7", "end of range (7) above maximum (6): 7"),
        (
            "a * * * *",
            "failed to parse int from a: strconv.Atoi: parsing \"a\": invalid syntax",
        ),
        (
            "5-1 * * * *",
            "beginning of range (5) beyond end of range (1): 5-1",
        ),
        ("@sometimes", "unrecognized descriptor: @sometimes"),
        (
            "@every 5x",
            "failed to parse duration @every 5x: time: unknown unit \"x\" in duration \"5x\"",
        ),
    ];
    for (schedule, detail) in cases {
        let mut c = cron_job();
        c["spec"]["schedule"] = json!(schedule);
        assert_eq!(
            check("batch", "cronjobs", &c),
            [format!(
                "spec.schedule: Invalid value: \"{schedule}\": {detail}"
            )]
        );
    }
    for ok in ["@hourly", "@every 1h30m", "0 0 1 */2 *", "15,45 * ? * SUN"] {
        let mut c = cron_job();
        c["spec"]["schedule"] = json!(ok);
        assert_eq!(check("batch", "cronjobs", &c), Vec::<String>::new(), "{ok}");
    }
    let mut c = cron_job();
    c["spec"]["schedule"] = json!("");
    c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    assert_eq!(
        check("batch", "cronjobs", &c),
        [
            "spec.schedule: Required value",
            "spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
        ]
    );
}

#[test]
fn crd_with_two_storage_versions() {
    let mut crd = crd();
    crd["spec"]["versions"][1]["storage"] = json!(true);
    assert_eq!(
        check("apiextensions.k8s.io", "customresourcedefinitions", &crd),
        [
            "spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion{apiextensions.CustomResourceDefinitionVersion{Name:\"v1\", Served:true, Storage:true}, apiextensions.CustomResourceDefinitionVersion{Name:\"v1beta1\", Served:true, Storage:true}}: must have exactly one version marked as storage version"
        ]
    );
    let mut crd = super::fixtures::crd();
    crd["metadata"]["name"] = json!("gadgets.example.com");
    crd["spec"]["group"] = json!("example");
    crd["spec"]["scope"] = json!("Global");
    crd["spec"]["versions"][0]["schema"] = json!(null);
    assert_eq!(
        check("apiextensions.k8s.io", "customresourcedefinitions", &crd),
        [
            "metadata.name: Invalid value: \"gadgets.example.com\": must be spec.names.plural+\".\"+spec.group",
            "spec.group: Invalid value: \"example\": should be a domain with at least one dot",
            "spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"",
            "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required",
        ]
    );
}

#[test]
fn config_maps_and_secrets() {
    let mut cm = config_map();
    cm["data"] = json!({ "bad key": "x", "big": "x".repeat(1024 * 1024 + 1) });
    assert_eq!(
        check("", "configmaps", &cm),
        [
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            "[]: Too long: may not be more than 1048576 bytes",
        ]
    );
    let mut s = secret();
    s["data"].as_object_mut().unwrap().remove("tls.key");
    assert_eq!(check("", "secrets", &s), ["data[tls.key]: Required value"]);
}

#[test]
fn other_kinds() {
    let pvc =
        json!({ "metadata": { "name": "d", "namespace": "default" }, "spec": { "resources": {} } });
    assert_eq!(
        check("", "persistentvolumeclaims", &pvc),
        [
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Required value"
        ]
    );
    let pdb = json!({ "metadata": { "name": "p", "namespace": "default" }, "spec": { "minAvailable": 1, "maxUnavailable": "150%" } });
    assert_eq!(
        check("policy", "poddisruptionbudgets", &pdb),
        [
            "spec: Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:intstr.IntOrString{Type:0, IntVal:1, StrVal:\"\"}, Selector:(*v1.LabelSelector)(nil), MaxUnavailable:intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}, UnhealthyPodEvictionPolicy:(*policy.UnhealthyPodEvictionPolicyType)(nil)}: minAvailable and maxUnavailable cannot be both set",
            "spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%",
        ]
    );
    let slice = json!({ "metadata": { "name": "s", "namespace": "default" }, "addressType": "IPv5", "endpoints": [] });
    assert_eq!(
        check("discovery.k8s.io", "endpointslices", &slice),
        [
            "addressType: Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
        ]
    );
    let ing = json!({ "metadata": { "name": "i", "namespace": "default" },
                      "spec": { "rules": [{ "http": { "paths": [{ "path": "/", "backend": { "service": { "name": "web", "port": { "number": 80 } } } },
                                                                 { "path": "/x", "pathType": "Regex", "backend": {} }] } }] } });
    assert_eq!(
        check("networking.k8s.io", "ingresses", &ing),
        [
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
            "spec.rules[0].http.paths[1].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
            "spec.rules[0].http.paths[1].backend: Invalid value: \"\": resource or service backend is required",
        ]
    );
    let role = json!({ "metadata": { "name": "r", "namespace": "default" }, "rules": [{ "apiGroups": [""], "resources": ["pods"] }] });
    assert_eq!(
        check("rbac.authorization.k8s.io", "roles", &role),
        ["rules[0].verbs: Required value: verbs must contain at least one value"]
    );
    let binding = json!({ "metadata": { "name": "b", "namespace": "default" }, "roleRef": { "kind": "Role", "name": "r" },
                          "subjects": [{ "kind": "Robot", "name": "x" }] });
    assert_eq!(
        check("rbac.authorization.k8s.io", "rolebindings", &binding),
        [
            "roleRef.apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
            "subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
        ]
    );
    let rc = json!({ "metadata": { "name": "wasm" }, "handler": "Wasm_Time" });
    assert_eq!(
        check("node.k8s.io", "runtimeclasses", &rc),
        [
            "handler: Invalid value: \"Wasm_Time\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
    assert_eq!(
        check(
            "scheduling.k8s.io",
            "priorityclasses",
            &json!({ "metadata": { "name": "p" } })
        ),
        ["value: Required value"]
    );
    let lease = json!({ "metadata": { "name": "l", "namespace": "default" }, "spec": { "leaseDurationSeconds": 0 } });
    assert_eq!(
        check("coordination.k8s.io", "leases", &lease),
        ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
    );
    let event = json!({ "metadata": { "name": "e", "namespace": "default" }, "involvedObject": { "kind": "Pod", "namespace": "other" } });
    assert_eq!(
        check("", "events", &event),
        ["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
    );
}

#[test]
fn repeated_messages_are_reported_once() {
    let mut cm = config_map();
    cm["metadata"]["labels"] = json!({ "a": "-x" });
    cm["metadata"]["annotations"] = json!({});
    let mut causes = validate("", "configmaps", &cm, None);
    causes.extend(causes.clone());
    let message = invalid_message("ConfigMap", "web-config", &causes);
    assert!(
        message.starts_with(
            "ConfigMap \"web-config\" is invalid: metadata.labels: Invalid value: \"-x\": "
        ),
        "{message}"
    );
    assert!(!message.contains("is invalid: ["), "{message}");
    assert_eq!(
        invalid_message("ConfigMap", "x", &[]),
        "ConfigMap \"x\" is invalid"
    );
}
