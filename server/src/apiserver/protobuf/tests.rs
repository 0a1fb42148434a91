//! Bodies kubectl 1.32 sent (fixtures/*.pb) must read as the JSON kubectl
//! printed for the same command with `--dry-run=client -o json`
//! (fixtures/*.json, Go's own encoding of the same object); hand-encoded
//! bodies cover the special types and the errors.

use std::sync::OnceLock;

use serde_json::{Value, json};

use super::*;

fn protobuf() -> &'static Protobuf {
    static PROTOBUF: OnceLock<Protobuf> = OnceLock::new();
    PROTOBUF.get_or_init(|| Protobuf::load().expect("embedded table loads"))
}

/// (name, body kubectl POSTed, kubectl's `--dry-run=client -o json` output).
const FIXTURES: &[(&str, &[u8], &str)] = &[
    (
        "configmap",
        include_bytes!("fixtures/configmap.pb"),
        include_str!("fixtures/configmap.json"),
    ),
    (
        "configmap-binary",
        include_bytes!("fixtures/configmap-binary.pb"),
        include_str!("fixtures/configmap-binary.json"),
    ),
    (
        "secret-generic",
        include_bytes!("fixtures/secret-generic.pb"),
        include_str!("fixtures/secret-generic.json"),
    ),
    (
        "secret-docker-registry",
        include_bytes!("fixtures/secret-docker-registry.pb"),
        include_str!("fixtures/secret-docker-registry.json"),
    ),
    (
        "deployment",
        include_bytes!("fixtures/deployment.pb"),
        include_str!("fixtures/deployment.json"),
    ),
    (
        "service-nodeport",
        include_bytes!("fixtures/service-nodeport.pb"),
        include_str!("fixtures/service-nodeport.json"),
    ),
    (
        "job",
        include_bytes!("fixtures/job.pb"),
        include_str!("fixtures/job.json"),
    ),
    (
        "job-from-cronjob",
        include_bytes!("fixtures/job-from-cronjob.pb"),
        include_str!("fixtures/job-from-cronjob.json"),
    ),
    (
        "cronjob",
        include_bytes!("fixtures/cronjob.pb"),
        include_str!("fixtures/cronjob.json"),
    ),
    (
        "namespace",
        include_bytes!("fixtures/namespace.pb"),
        include_str!("fixtures/namespace.json"),
    ),
    (
        "priorityclass",
        include_bytes!("fixtures/priorityclass.pb"),
        include_str!("fixtures/priorityclass.json"),
    ),
    (
        "serviceaccount",
        include_bytes!("fixtures/serviceaccount.pb"),
        include_str!("fixtures/serviceaccount.json"),
    ),
    (
        "role",
        include_bytes!("fixtures/role.pb"),
        include_str!("fixtures/role.json"),
    ),
    (
        "rolebinding",
        include_bytes!("fixtures/rolebinding.pb"),
        include_str!("fixtures/rolebinding.json"),
    ),
    (
        "clusterrole",
        include_bytes!("fixtures/clusterrole.pb"),
        include_str!("fixtures/clusterrole.json"),
    ),
    (
        "clusterrolebinding",
        include_bytes!("fixtures/clusterrolebinding.pb"),
        include_str!("fixtures/clusterrolebinding.json"),
    ),
    (
        "quota",
        include_bytes!("fixtures/quota.pb"),
        include_str!("fixtures/quota.json"),
    ),
    (
        "poddisruptionbudget",
        include_bytes!("fixtures/poddisruptionbudget.pb"),
        include_str!("fixtures/poddisruptionbudget.json"),
    ),
    (
        "ingress",
        include_bytes!("fixtures/ingress.pb"),
        include_str!("fixtures/ingress.json"),
    ),
];

/// Go prints `"creationTimestamp": null`; the decoder leaves it out.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

fn fixture(name: &str) -> Value {
    let (_, body, _) = FIXTURES
        .iter()
        .find(|(n, _, _)| *n == name)
        .expect("fixture exists");
    protobuf().decode(body).expect("fixture decodes")
}

#[test]
fn kubectl_bodies_read_as_kubectl_prints_them() {
    for (name, body, printed) in FIXTURES {
        assert!(body.starts_with(b"k8s\0"), "{name} is a protobuf body");
        let decoded = protobuf()
            .decode(body)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = without_nulls(serde_json::from_str(printed).expect("fixture JSON parses"));
        assert_eq!(decoded, expected, "{name}");
    }
}

#[test]
fn deployment_keeps_replicas_zero_and_drops_empty_fields() {
    let d = fixture("deployment");
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["spec"]["replicas"], 0);
    assert!(d["metadata"].get("creationTimestamp").is_none());
    assert!(
        d["metadata"].get("namespace").is_none(),
        "empty strings are dropped"
    );
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "busybox");
    // kubectl sends protocol "" (the server defaults it to TCP): dropped.
    assert_eq!(container["ports"], json!([{"containerPort": 80}]));
    assert_eq!(
        container["resources"],
        json!({}),
        "non-pointer structs stay, even empty"
    );
    assert!(container.get("stdin").is_none(), "false is dropped");
    assert_eq!(d["status"], json!({}));
    assert!(
        d["spec"].get("minReadySeconds").is_none(),
        "non-pointer 0 is dropped"
    );
}

#[test]
fn secret_data_is_base64_and_configmap_data_is_text() {
    assert_eq!(fixture("secret-generic")["data"], json!({"p": "cQ=="}));
    assert_eq!(fixture("configmap")["data"], json!({"a": "b"}));
    let binary = fixture("configmap-binary");
    assert_eq!(binary["binaryData"], json!({"blob": "YWIA/w=="}));
    assert_eq!(
        binary["data"],
        json!({"k": ""}),
        "map values stay even when empty"
    );
}

#[test]
fn pointer_zeros_stay() {
    assert_eq!(fixture("priorityclass")["value"], 0);
    assert_eq!(fixture("poddisruptionbudget")["spec"]["minAvailable"], 0);
    let job = fixture("job-from-cronjob");
    assert_eq!(job["metadata"]["ownerReferences"][0]["controller"], true);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["resources"]["limits"],
        json!({"cpu": "500m", "memory": "64Mi"})
    );
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
}

#[test]
fn token_request_reads() {
    let token = protobuf()
        .decode(include_bytes!("fixtures/token.pb"))
        .expect("decodes");
    assert_eq!(token["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(token["kind"], "TokenRequest");
    assert_eq!(token["spec"], json!({}));
}

// --- hand-encoded bodies ---------------------------------------------------

/// A message being encoded.
#[derive(Default, Clone)]
struct Msg(Vec<u8>);

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Msg {
    fn new() -> Self {
        Self::default()
    }
    fn int(mut self, tag: u32, v: i64) -> Self {
        varint(u64::from(tag) << 3, &mut self.0);
        varint(v as u64, &mut self.0);
        self
    }
    fn bytes(mut self, tag: u32, b: &[u8]) -> Self {
        varint(u64::from(tag) << 3 | 2, &mut self.0);
        varint(b.len() as u64, &mut self.0);
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, tag: u32, s: &str) -> Self {
        self.bytes(tag, s.as_bytes())
    }
    fn msg(self, tag: u32, m: Msg) -> Self {
        self.bytes(tag, &m.0)
    }
    fn double(mut self, tag: u32, v: f64) -> Self {
        varint(u64::from(tag) << 3 | 1, &mut self.0);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn entry(self, tag: u32, key: &str, value: Msg) -> Self {
        self.msg(tag, Msg::new().str(1, key).msg(2, value))
    }
}

fn body(api_version: &str, kind: &str, object: Msg) -> Vec<u8> {
    let unknown = Msg::new()
        .msg(1, Msg::new().str(1, api_version).str(2, kind))
        .msg(2, object);
    [b"k8s\0".as_slice(), &unknown.0].concat()
}

fn decode(api_version: &str, kind: &str, object: Msg) -> Value {
    protobuf()
        .decode(&body(api_version, kind, object))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn error(body: &[u8]) -> String {
    protobuf().decode(body).expect_err("must fail").to_string()
}

#[test]
fn special_types_print_as_go_prints_them() {
    // 2026-12-03T17:00:00.5Z: Time keeps whole seconds.
    let time = Msg::new().int(1, 1_796_317_200).int(2, 500_000_000);
    let quantity = |q: &str| Msg::new().str(1, q);
    let pod = Msg::new()
        .msg(
            1,
            Msg::new()
                .str(1, "p")
                .msg(8, time.clone())
                .msg(9, Msg::new()),
        )
        .msg(
            2,
            Msg::new()
                .msg(
                    1,
                    Msg::new()
                        .str(1, "cm")
                        // VolumeSource inline, ConfigMapVolumeSource's LocalObjectReference inline.
                        .msg(
                            2,
                            Msg::new().msg(
                                19,
                                Msg::new().msg(1, Msg::new().str(1, "settings")).int(4, 0),
                            ),
                        ),
                )
                .msg(
                    1,
                    Msg::new()
                        .str(1, "scratch")
                        .msg(2, Msg::new().msg(2, Msg::new())),
                )
                .msg(
                    2,
                    Msg::new()
                        .str(1, "app")
                        .msg(
                            8,
                            Msg::new().entry(1, "cpu", quantity("250m")).entry(
                                2,
                                "memory",
                                quantity("1Gi"),
                            ),
                        )
                        // Probe with its ProbeHandler inline; port as a named IntOrString.
                        .msg(
                            10,
                            Msg::new()
                                .msg(
                                    1,
                                    Msg::new().msg(
                                        2,
                                        Msg::new().msg(2, Msg::new().int(1, 1).str(3, "http")),
                                    ),
                                )
                                .int(4, 0),
                        ),
                )
                .int(21, 0),
        );
    let p = decode("v1", "Pod", pod);
    assert_eq!(p["metadata"]["creationTimestamp"], "2026-12-03T17:00:00Z");
    assert!(
        p["metadata"].get("deletionTimestamp").is_none(),
        "a zero time is left out"
    );
    assert_eq!(
        p["spec"]["volumes"],
        json!([{"name": "cm", "configMap": {"name": "settings", "optional": false}}, {"name": "scratch", "emptyDir": {}}])
    );
    let container = &p["spec"]["containers"][0];
    assert_eq!(
        container["resources"],
        json!({"limits": {"cpu": "250m"}, "requests": {"memory": "1Gi"}})
    );
    assert_eq!(
        container["livenessProbe"],
        json!({"httpGet": {"port": "http"}})
    );
    assert_eq!(p["spec"]["automountServiceAccountToken"], false);

    let secret = decode(
        "v1",
        "Secret",
        Msg::new()
            .entry(2, "k", Msg::new())
            .bytes(2, &Msg::new().str(1, "bin").bytes(2, &[0, 0xff, 0x10]).0)
            .int(5, 0),
    );
    assert_eq!(secret["data"], json!({"k": "", "bin": "AP8Q"}));
    assert_eq!(secret["immutable"], false);

    let lease = Msg::new().msg(
        2,
        Msg::new()
            .str(1, "")
            .int(2, 0)
            .msg(4, Msg::new().int(1, 1_796_317_200).int(2, 123_456_789))
            .int(5, 0),
    );
    assert_eq!(
        decode("coordination.k8s.io/v1", "Lease", lease)["spec"],
        json!({"holderIdentity": "", "leaseDurationSeconds": 0, "renewTime": "2026-12-03T17:00:00.123456Z", "leaseTransitions": 0})
    );

    // ServicePort.targetPort is not a pointer: 0 is left out; a PDB's minAvailable is.
    let service = Msg::new().msg(
        2,
        Msg::new()
            .msg(
                1,
                Msg::new().int(3, 80).msg(4, Msg::new().int(1, 0).int(2, 0)),
            )
            .msg(1, Msg::new().int(3, 0).msg(4, Msg::new().int(2, 8080))),
    );
    assert_eq!(
        decode("v1", "Service", service)["spec"]["ports"],
        json!([{"port": 80}, {"port": 0, "targetPort": 8080}])
    );
    let pdb = Msg::new().msg(2, Msg::new().msg(3, Msg::new().int(1, 1).str(3, "10%")));
    assert_eq!(
        decode("policy/v1", "PodDisruptionBudget", pdb)["spec"],
        json!({"maxUnavailable": "10%"})
    );

    // RawExtension holds JSON, or a nested protobuf object.
    let revision = Msg::new()
        .bytes(2, &Msg::new().str(1, r#"{"spec":{"x":1}}"#).0)
        .int(3, 0);
    assert_eq!(
        decode("apps/v1", "ControllerRevision", revision.clone())["data"],
        json!({"spec": {"x": 1}})
    );
    assert_eq!(
        decode("apps/v1", "ControllerRevision", revision)["revision"],
        0
    );
    let nested = body("v1", "Namespace", Msg::new().msg(1, Msg::new().str(1, "n")));
    let revision = Msg::new().msg(2, Msg::new().bytes(1, &nested));
    assert_eq!(
        decode("apps/v1", "ControllerRevision", revision)["data"],
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})
    );
}

#[test]
fn repeated_numbers_read_packed_and_unpacked() {
    // Job.spec.podFailurePolicy.rules[0].onExitCodes.values: [1, 2, -1].
    let packed = Msg::new().bytes(3, &[1, 2, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let unpacked = Msg::new().int(3, 1).int(3, 2).int(3, -1);
    for values in [packed, unpacked] {
        let on_exit_codes = Msg(Msg::new()
            .str(2, "In")
            .0
            .into_iter()
            .chain(values.0)
            .collect());
        let rule = Msg::new().str(1, "FailJob").msg(2, on_exit_codes);
        let job = Msg::new().msg(2, Msg::new().msg(11, Msg::new().msg(1, rule)));
        let spec = &decode("batch/v1", "Job", job)["spec"];
        assert_eq!(
            spec["podFailurePolicy"]["rules"][0],
            json!({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 2, -1]}})
        );
    }
}

#[test]
fn crd_schemas_print_their_unions() {
    let string_schema = Msg::new().str(5, "string");
    let props = Msg::new()
        .str(5, "object")
        .entry(29, "name", string_schema.clone())
        .msg(24, Msg::new().msg(1, string_schema.clone()))
        .msg(30, Msg::new().int(1, 0))
        .msg(8, Msg::new().str(1, r#"{"a":[1]}"#))
        .double(9, 2.5)
        .int(38, 0);
    let version = Msg::new()
        .str(1, "v1")
        .int(2, 1)
        .int(3, 0)
        .msg(4, Msg::new().msg(1, props));
    let crd = Msg::new().msg(2, Msg::new().str(1, "example.com").msg(7, version));
    let crd = decode("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd);
    assert_eq!(
        crd["spec"]["versions"][0],
        json!({"name": "v1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "items": {"type": "string"},
            "additionalProperties": false,
            "default": {"a": [1]},
            "maximum": 2.5,
            "x-kubernetes-preserve-unknown-fields": false,
        }}})
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let namespace = Msg::new()
        .msg(1, Msg::new().str(1, "n").str(99, "future").int(98, 7))
        .double(77, 1.0)
        .msg(2, Msg::new().str(1, "kubernetes"));
    assert_eq!(
        decode("v1", "Namespace", namespace),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "spec": {"finalizers": ["kubernetes"]}})
    );
}

#[test]
fn envelope_errors_say_what_failed() {
    assert!(error(b"{\"kind\":\"Pod\"}").contains("prefix"));
    assert!(error(b"k8s\0\x0a\x80").contains("runtime.Unknown"));
    let unknown = body("example.com/v1", "Widget", Msg::new());
    assert_eq!(
        error(&unknown),
        "no protobuf message for example.com/v1, Kind=Widget"
    );
    let no_kind = [
        b"k8s\0".as_slice(),
        &Msg::new().msg(1, Msg::new().str(1, "v1")).0,
    ]
    .concat();
    assert!(error(&no_kind).contains("no kind"));
    let gzip = [body("v1", "Pod", Msg::new()), Msg::new().str(3, "gzip").0].concat();
    assert!(error(&gzip).contains("contentEncoding \"gzip\""));
    let json = [
        b"k8s\0".as_slice(),
        &Msg::new()
            .msg(1, Msg::new().str(1, "v1").str(2, "Namespace"))
            .str(2, r#"{"metadata":{"name":"j"}}"#)
            .str(4, "application/json")
            .0,
    ]
    .concat();
    assert_eq!(
        protobuf().decode(&json).expect("JSON content")["metadata"]["name"],
        "j"
    );
}

#[test]
fn object_errors_name_the_field() {
    // replicas sent length-delimited.
    let deployment = Msg::new().msg(2, Msg::new().str(1, "three"));
    assert_eq!(
        error(&body("apps/v1", "Deployment", deployment)),
        "malformed protobuf in Deployment.spec.replicas: field 1 is length-delimited, expected varint"
    );
    // A truncated varint inside a container.
    let mut pod = Msg::new()
        .msg(2, Msg::new().msg(2, Msg::new().str(1, "c")))
        .0;
    pod.extend_from_slice(&[0x10, 0x80]);
    let message = error(&body("v1", "Pod", Msg(pod)));
    assert!(
        message.starts_with("malformed protobuf in Pod: truncated varint"),
        "{message}"
    );
    let truncated = body(
        "v1",
        "Pod",
        Msg::new().msg(2, Msg::new().bytes(2, &[0x0a, 0x09, b'c'])),
    );
    assert!(
        error(&truncated).starts_with("malformed protobuf in Pod.spec.containers: 9 bytes wanted")
    );
    let bad_json = Msg::new().msg(2, Msg::new().str(1, "{nope"));
    assert!(
        error(&body("apps/v1", "ControllerRevision", bad_json))
            .starts_with("invalid embedded JSON in ControllerRevision.data")
    );
    let far_future = Msg::new().msg(1, Msg::new().msg(8, Msg::new().int(1, 300_000_000_000)));
    assert!(error(&body("v1", "Namespace", far_future)).contains("metadata.creationTimestamp"));
    // 300 nested schemas.
    let mut schema = Msg::new().str(5, "string");
    for _ in 0..300 {
        schema = Msg::new().msg(24, Msg::new().msg(1, schema));
    }
    let version = Msg::new().msg(4, Msg::new().msg(1, schema));
    let crd = Msg::new().msg(2, Msg::new().msg(7, version));
    assert!(
        error(&body(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            crd
        ))
        .contains("nest deeper")
    );
}

#[test]
fn table_covers_the_served_kinds() {
    for (api_version, kind) in [
        ("v1", "Pod"),
        ("v1", "ConfigMap"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "CronJob"),
        ("networking.k8s.io/v1", "Ingress"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("policy/v1", "Eviction"),
        ("v1", "DeleteOptions"),
    ] {
        assert!(protobuf().knows(api_version, kind), "{api_version} {kind}");
    }
    assert!(!protobuf().knows("apps/v1beta1", "Deployment"));
}
