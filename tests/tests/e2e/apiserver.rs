//! `skiff server --disable-agent` driven by the real kubectl 1.32, as users
//! drive kube-apiserver: create, get, list, describe, edit, patch, apply,
//! delete, watch, explain, CRDs, namespaces, restarts and bad input.

use std::collections::BTreeSet;

use serde_json::Value;
use skiff_tests::server::SkiffServer;

use crate::{failed, ok};

fn start() -> (tempfile::TempDir, SkiffServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = SkiffServer::start(&dir.path().join("server")).unwrap();
    (dir, server)
}

fn kubectl(server: &SkiffServer, args: &[&str]) -> String {
    ok(server.kubectl(args).unwrap())
}

fn kubectl_fails(server: &SkiffServer, args: &[&str]) -> String {
    failed(server.kubectl(args).unwrap())
}

fn apply(server: &SkiffServer, args: &[&str], manifest: &str) -> String {
    ok(server.kubectl_with(args, Some(manifest), &[]).unwrap())
}

fn json(server: &SkiffServer, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&kubectl(server, &all)).unwrap()
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: 127.0.0.1:5000/skiff-test/busybox:latest
        command: ["httpd", "-f", "-p", "8080"]
        ports:
        - containerPort: 8080
"#;

#[test]
fn kubectl_creates_gets_lists_describes_and_deletes_across_kinds() {
    let (_dir, server) = start();
    assert!(
        kubectl(
            &server,
            &["create", "configmap", "app", "--from-literal=a=1"]
        )
        .contains("configmap/app created")
    );
    kubectl(
        &server,
        &[
            "create",
            "secret",
            "generic",
            "pw",
            "--from-literal=password=hunter2",
        ],
    );
    kubectl(&server, &["create", "namespace", "team"]);
    kubectl(&server, &["create", "serviceaccount", "bot", "-n", "team"]);
    apply(&server, &["create", "-f", "-"], DEPLOYMENT);
    kubectl(
        &server,
        &["create", "service", "nodeport", "web", "--tcp=80:8080"],
    );
    kubectl(
        &server,
        &["create", "job", "once", "--image=busybox", "--", "true"],
    );
    kubectl(
        &server,
        &[
            "create",
            "cronjob",
            "tick",
            "--image=busybox",
            "--schedule=*/5 * * * *",
            "--",
            "true",
        ],
    );
    kubectl(
        &server,
        &[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods",
        ],
    );
    kubectl(
        &server,
        &["create", "ingress", "web", "--rule=example.local/=web:80"],
    );
    kubectl(
        &server,
        &[
            "create",
            "poddisruptionbudget",
            "web",
            "--selector=app=web",
            "--min-available=1",
        ],
    );
    kubectl(
        &server,
        &["create", "priorityclass", "high", "--value=1000"],
    );

    // Defaults a user relies on, and server-set metadata.
    let deployment = json(&server, &["get", "deployment", "web"]);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["restartPolicy"],
        "Always"
    );
    assert_eq!(deployment["metadata"]["generation"], 1);
    assert_eq!(deployment["metadata"]["uid"].as_str().unwrap().len(), 36);
    let svc = json(&server, &["get", "service", "web"]);
    let ip = svc["spec"]["clusterIP"].as_str().unwrap();
    assert!(ip.starts_with("10.43."), "{ip}");
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&node_port));

    // Tables as kubectl prints them.
    let table = kubectl(&server, &["get", "deployments"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("READY") && table.contains("UP-TO-DATE") && table.contains("web"),
        "{table}"
    );
    let wide = kubectl(&server, &["get", "services", "-o", "wide"]);
    assert!(wide.contains("SELECTOR") && wide.contains("80:"), "{wide}");
    let names = kubectl(
        &server,
        &[
            "get",
            "configmaps",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    );
    assert!(names.split_whitespace().any(|n| n == "app"), "{names}");
    let yaml = kubectl(&server, &["get", "secret", "pw", "-o", "yaml"]);
    assert!(yaml.contains("password: aHVudGVyMg=="), "{yaml}");
    let all_ns = kubectl(&server, &["get", "serviceaccounts", "-A"]);
    assert!(
        all_ns.contains("team") && all_ns.contains("bot"),
        "{all_ns}"
    );
    let described = kubectl(&server, &["describe", "deployment", "web"]);
    assert!(
        described.contains("Replicas:") && described.contains("RollingUpdate"),
        "{described}"
    );
    kubectl(&server, &["describe", "service", "web"]);

    // Label selectors and delete.
    let selected = kubectl(
        &server,
        &["get", "deployments", "-l", "app=web", "-o", "name"],
    );
    assert_eq!(selected.trim(), "deployment.apps/web");
    assert!(
        kubectl(
            &server,
            &["get", "deployments", "-l", "app!=web", "-o", "name"]
        )
        .trim()
        .is_empty()
    );
    assert!(kubectl(&server, &["delete", "configmap", "app"]).contains("deleted"));
    let gone = kubectl_fails(&server, &["get", "configmap", "app"]);
    assert!(gone.contains("configmaps \"app\" not found"), "{gone}");
    kubectl(
        &server,
        &["delete", "deployment,service,job,cronjob", "--all"],
    );
    assert!(
        kubectl(&server, &["get", "deployments", "-o", "name"])
            .trim()
            .is_empty()
    );
}

#[test]
fn edit_and_the_three_patch_types_change_objects() {
    let (_dir, server) = start();
    apply(&server, &["create", "-f", "-"], DEPLOYMENT);
    let edited = server
        .kubectl_with(
            &["edit", "deployment", "web"],
            None,
            &[("KUBE_EDITOR", "sed -i -e s/replicas:\\ 2/replicas:\\ 3/")],
        )
        .unwrap();
    assert!(ok(edited).contains("edited"));
    assert_eq!(
        json(&server, &["get", "deployment", "web"])["spec"]["replicas"],
        3
    );
    // Strategic merge: the container list merges by name.
    kubectl(
        &server,
        &[
            "patch",
            "deployment",
            "web",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"busybox:2"}]}}}}"#,
        ],
    );
    let deployment = json(&server, &["get", "deployment", "web"]);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "busybox:2");
    assert_eq!(
        container["command"][0], "httpd",
        "strategic merge kept the other fields"
    );
    assert_eq!(deployment["metadata"]["generation"], 3);
    kubectl(
        &server,
        &[
            "patch",
            "deployment",
            "web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"tier":"front"}}}"#,
        ],
    );
    kubectl(
        &server,
        &[
            "patch",
            "deployment",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#,
        ],
    );
    let deployment = json(&server, &["get", "deployment", "web"]);
    assert_eq!(deployment["metadata"]["labels"]["tier"], "front");
    assert_eq!(deployment["spec"]["replicas"], 5);
    let err = kubectl_fails(
        &server,
        &[
            "patch",
            "deployment",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
        ],
    );
    assert!(!err.is_empty());
    // Scale goes through the scale subresource.
    kubectl(&server, &["scale", "deployment", "web", "--replicas=1"]);
    assert_eq!(
        json(&server, &["get", "deployment", "web"])["spec"]["replicas"],
        1
    );
}

#[test]
fn apply_creates_changes_and_reapplies_client_and_server_side() {
    let (_dir, server) = start();
    assert!(
        apply(&server, &["apply", "-f", "-"], DEPLOYMENT).contains("deployment.apps/web created")
    );
    assert!(apply(&server, &["apply", "-f", "-"], DEPLOYMENT).contains("unchanged"));
    let changed = DEPLOYMENT.replace("replicas: 2", "replicas: 4");
    assert!(apply(&server, &["apply", "-f", "-"], &changed).contains("configured"));
    let deployment = json(&server, &["get", "deployment", "web"]);
    assert_eq!(deployment["spec"]["replicas"], 4);
    assert!(
        deployment["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );

    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n  b: \"2\"\n";
    assert!(
        apply(&server, &["apply", "--server-side", "-f", "-"], cm).contains("serverside-applied")
    );
    let removed = cm.replace("  b: \"2\"\n", "");
    apply(&server, &["apply", "--server-side", "-f", "-"], &removed);
    let got = json(
        &server,
        &["get", "configmap", "settings", "--show-managed-fields"],
    );
    assert_eq!(
        got["data"],
        serde_json::json!({"a": "1"}),
        "the field the manager stopped applying is gone"
    );
    assert!(
        got["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["manager"] == "kubectl" && m["operation"] == "Apply")
    );
    // Another manager's field: a conflict, unless forced.
    ok(server
        .kubectl(&[
            "patch",
            "configmap",
            "settings",
            "--type=merge",
            "-p",
            r#"{"data":{"a":"changed"}}"#,
            "--field-manager=other",
        ])
        .unwrap());
    let conflict = failed(
        server
            .kubectl_with(&["apply", "--server-side", "-f", "-"], Some(&removed), &[])
            .unwrap(),
    );
    assert!(conflict.contains("conflict"), "{conflict}");
    apply(
        &server,
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &removed,
    );
    assert_eq!(
        json(&server, &["get", "configmap", "settings"])["data"]["a"],
        "1"
    );
}

#[test]
fn get_watch_sees_changes_in_order() {
    use std::io::BufRead as _;
    use std::time::{Duration, Instant};
    let (_dir, server) = start();
    kubectl(&server, &["create", "configmap", "w0"]);
    let mut watch = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args([
            "get",
            "configmaps",
            "-w",
            "--output-watch-events",
            "--request-timeout=30s",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Lines as they come, as "TYPE name".
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let event: Vec<&str> = line.split_whitespace().take(2).collect();
            if tx.send(event.join(" ")).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let wait_for = |wanted: &str, seen: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.iter().any(|l| l == wanted) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("{wanted} not seen in {seen:?}"),
            }
        }
    };
    // The watch is running once it has shown the existing object.
    wait_for("ADDED w0", &mut seen);
    for name in ["w1", "w2", "w3"] {
        kubectl(&server, &["create", "configmap", name]);
    }
    kubectl(&server, &["label", "configmap", "w1", "x=y"]);
    kubectl(&server, &["delete", "configmap", "w2"]);
    wait_for("DELETED w2", &mut seen);
    let _ = watch.kill();
    let _ = watch.wait();
    let expected = [
        "ADDED w0",
        "ADDED w1",
        "ADDED w2",
        "ADDED w3",
        "MODIFIED w1",
        "DELETED w2",
    ];
    let positions: Vec<usize> = expected
        .iter()
        .map(|e| {
            seen.iter()
                .position(|l| l == e)
                .unwrap_or_else(|| panic!("{e} missing in {seen:?}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}

#[test]
fn discovery_explain_and_custom_resources_work() {
    let (_dir, server) = start();
    let resources = kubectl(&server, &["api-resources"]);
    for line in [
        "deployments",
        "deploy",
        "apps/v1",
        "customresourcedefinitions",
        "runtimeclasses",
    ] {
        assert!(resources.contains(line), "{line}: {resources}");
    }
    let versions: BTreeSet<String> = kubectl(&server, &["api-versions"])
        .lines()
        .map(str::to_owned)
        .collect();
    for v in [
        "v1",
        "apps/v1",
        "batch/v1",
        "networking.k8s.io/v1",
        "rbac.authorization.k8s.io/v1",
    ] {
        assert!(versions.contains(v), "{v}: {versions:?}");
    }
    let explained = kubectl(&server, &["explain", "deployment.spec.strategy"]);
    assert!(
        explained.contains("rollingUpdate") && explained.contains("DeploymentStrategy"),
        "{explained}"
    );

    let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: boats.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: boats, singular: boat, kind: Boat, shortNames: [bt]}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Length, type: integer, jsonPath: .spec.length}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              length: {type: integer, minimum: 1}
              color: {type: string, default: blue}
"#;
    apply(&server, &["apply", "-f", "-"], crd);
    let boat =
        "apiVersion: example.com/v1\nkind: Boat\nmetadata:\n  name: skiff\nspec:\n  length: 4\n";
    let mut created = String::new();
    for _ in 0..50 {
        match server
            .kubectl_with(&["apply", "-f", "-"], Some(boat), &[])
            .unwrap()
        {
            out if out.status.success() => {
                created = String::from_utf8_lossy(&out.stdout).into_owned();
                break;
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
    assert!(
        created.contains("boat.example.com/skiff created"),
        "{created}"
    );
    let listed = kubectl(&server, &["get", "bt"]);
    assert!(
        listed.contains("LENGTH") && listed.contains("skiff") && listed.contains('4'),
        "{listed}"
    );
    assert_eq!(
        json(&server, &["get", "boat", "skiff"])["spec"]["color"],
        "blue"
    );
    let bad =
        "apiVersion: example.com/v1\nkind: Boat\nmetadata:\n  name: raft\nspec:\n  length: 0\n";
    let err = failed(
        server
            .kubectl_with(&["apply", "-f", "-"], Some(bad), &[])
            .unwrap(),
    );
    assert!(err.contains("spec.length"), "{err}");
    kubectl(&server, &["delete", "crd", "boats.example.com"]);
    // Its custom resources went with it: made again, the CRD starts empty.
    apply(&server, &["apply", "-f", "-"], crd);
    let mut listed = String::new();
    for _ in 0..50 {
        match server.kubectl(&["get", "boats", "-o", "name"]).unwrap() {
            out if out.status.success() => {
                listed = String::from_utf8_lossy(&out.stdout).into_owned();
                break;
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
    assert!(listed.trim().is_empty(), "{listed}");
}

#[test]
fn deleting_a_namespace_removes_its_content() {
    let (_dir, server) = start();
    kubectl(&server, &["create", "namespace", "doomed"]);
    kubectl(&server, &["create", "configmap", "c", "-n", "doomed"]);
    kubectl(
        &server,
        &[
            "create",
            "deployment",
            "d",
            "--image=busybox",
            "-n",
            "doomed",
        ],
    );
    kubectl(&server, &["delete", "namespace", "doomed", "--timeout=30s"]);
    let err = kubectl_fails(&server, &["get", "namespace", "doomed"]);
    assert!(err.contains("not found"), "{err}");
    kubectl(&server, &["create", "namespace", "doomed"]);
    assert!(
        kubectl(
            &server,
            &["get", "configmaps", "-n", "doomed", "-o", "name"]
        )
        .lines()
        .all(|l| !l.ends_with("/c"))
    );
}

#[test]
fn a_restart_keeps_every_object_and_resource_versions_keep_rising() {
    let (_dir, mut server) = start();
    for i in 0..20 {
        kubectl(
            &server,
            &[
                "create",
                "configmap",
                &format!("keep-{i}"),
                &format!("--from-literal=i={i}"),
            ],
        );
    }
    // kubectl's own `get -o json` list has no resourceVersion; the API's does.
    let raw = kubectl(
        &server,
        &["get", "--raw", "/api/v1/namespaces/default/configmaps"],
    );
    let before: i64 = serde_json::from_str::<Value>(&raw).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    server.restart_after_kill().unwrap();
    let list = json(&server, &["get", "configmaps"]);
    let names: BTreeSet<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    for i in 0..20 {
        assert!(names.contains(format!("keep-{i}").as_str()));
    }
    kubectl(&server, &["create", "configmap", "after"]);
    let after: i64 = json(&server, &["get", "configmap", "after"])["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after > before, "{after} > {before}");
}

#[test]
fn bad_input_gets_a_status_error_and_changes_nothing() {
    let (_dir, server) = start();
    let err = failed(
        server
            .kubectl_with(
                &["create", "-f", "-"],
                Some("apiVersion: v1\nkind: ConfigMap\nmetadata: [broken\n"),
                &[],
            )
            .unwrap(),
    );
    assert!(err.contains("error"), "{err}");
    let unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\ndatta:\n  a: b\n";
    let err = failed(
        server
            .kubectl_with(&["create", "-f", "-"], Some(unknown), &[])
            .unwrap(),
    );
    assert!(err.contains("unknown field \"datta\""), "{err}");
    let err = kubectl_fails(&server, &["create", "configmap", "Bad_Name"]);
    assert!(
        err.contains("is invalid") && err.contains("metadata.name"),
        "{err}"
    );
    let wrong_kind = "apiVersion: apps/v1\nkind: ConfigMap\nmetadata:\n  name: odd\n";
    failed(
        server
            .kubectl_with(&["create", "-f", "-"], Some(wrong_kind), &[])
            .unwrap(),
    );
    let invalid = DEPLOYMENT.replace(
        "        image: 127.0.0.1:5000/skiff-test/busybox:latest\n",
        "",
    );
    let err = failed(
        server
            .kubectl_with(&["create", "-f", "-"], Some(&invalid), &[])
            .unwrap(),
    );
    assert!(
        err.contains("spec.template.spec.containers[0].image: Required value"),
        "{err}"
    );
    // Over 3 MiB: refused whole.
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  a: \"{}\"\n",
        "x".repeat(3 * 1024 * 1024 + 10)
    );
    let err = failed(
        server
            .kubectl_with(&["create", "-f", "-"], Some(&big), &[])
            .unwrap(),
    );
    assert!(
        err.contains("too large") || err.contains("Too large") || err.contains("413"),
        "{err}"
    );
    let err = kubectl_fails(&server, &["create", "configmap", "x", "-n", "nowhere"]);
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");
    // Nothing half-written.
    let names = kubectl(&server, &["get", "configmaps", "-A", "-o", "name"]);
    assert!(
        !names.contains("strict") && !names.contains("big") && !names.contains("odd"),
        "{names}"
    );
    // A stale resourceVersion is a conflict.
    kubectl(&server, &["create", "configmap", "cas"]);
    let mut stale = json(&server, &["get", "configmap", "cas"]);
    kubectl(&server, &["label", "configmap", "cas", "v=2"]);
    stale["data"] = serde_json::json!({"k": "v"});
    let err = failed(
        server
            .kubectl_with(&["replace", "-f", "-"], Some(&stale.to_string()), &[])
            .unwrap(),
    );
    assert!(err.contains("the object has been modified"), "{err}");
}

#[test]
fn kill_9_during_a_write_storm_loses_no_acknowledged_write() {
    let (_dir, mut server) = start();
    let kubeconfig = server.kubeconfig().to_owned();
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let kubeconfig = kubeconfig.clone();
            let acknowledged = acknowledged.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let name = format!("storm-{w}-{i}");
                    let out = std::process::Command::new("kubectl")
                        .arg("--kubeconfig")
                        .arg(&kubeconfig)
                        .args(["create", "configmap", &name, "--request-timeout=5s"])
                        .output()
                        .unwrap();
                    if !out.status.success() {
                        return;
                    }
                    acknowledged.lock().unwrap().push(name);
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(2));
    server.kill_9();
    for writer in writers {
        writer.join().unwrap();
    }
    server.restart_after_kill().unwrap();
    let names = kubectl(&server, &["get", "configmaps", "-o", "name"]);
    let stored: BTreeSet<&str> = names
        .lines()
        .filter_map(|l| l.strip_prefix("configmap/"))
        .collect();
    let acknowledged = acknowledged.lock().unwrap();
    assert!(
        acknowledged.len() > 10,
        "only {} writes before the kill",
        acknowledged.len()
    );
    for name in acknowledged.iter() {
        assert!(
            stored.contains(name.as_str()),
            "acknowledged {name} was lost"
        );
    }
}

#[test]
fn lists_validate_on_the_client_and_round_trip_through_get_and_apply() {
    let (_dir, server) = start();
    // kubectl validates a `kind: List` itself, with the protobuf /openapi/v2.
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": {"a": "1"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}, "data": {"b": "2"}}]}"#;
    let created = apply(&server, &["create", "-f", "-"], list);
    assert!(
        created.contains("configmap/one created") && created.contains("configmap/two created"),
        "{created}"
    );
    let bad = list
        .replace(r#""data": {"b": "2"}"#, r#""dataa": {"b": "2"}"#)
        .replace("one", "three")
        .replace("two", "four");
    let err = failed(
        server
            .kubectl_with(&["create", "-f", "-"], Some(&bad), &[])
            .unwrap(),
    );
    assert!(
        err.contains("unknown field") && err.contains("dataa"),
        "{err}"
    );
    // What `get -o yaml` prints applies back.
    let yaml = kubectl(&server, &["get", "configmaps", "one", "two", "-o", "yaml"]);
    kubectl(&server, &["delete", "configmap", "one", "two"]);
    let applied = apply(&server, &["apply", "-f", "-"], &yaml);
    assert!(
        applied.contains("configmap/one") && applied.contains("configmap/two"),
        "{applied}"
    );
}

#[test]
fn auth_can_i_and_whoami_answer_for_the_admin() {
    let (_dir, server) = start();
    assert_eq!(
        kubectl(&server, &["auth", "can-i", "create", "deployments"]).trim(),
        "yes"
    );
    let whoami = kubectl(&server, &["auth", "whoami"]);
    assert!(
        whoami.contains("system:admin") && whoami.contains("system:masters"),
        "{whoami}"
    );
}

#[test]
fn lists_with_custom_resources_validate_against_their_crd_schema() {
    let (_dir, server) = start();
    let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string, pattern: '^\d+$', default: "5"}
              replicas: {type: integer, minimum: 1, maximum: 10}
              port: {x-kubernetes-int-or-string: true, anyOf: [{type: integer}, {type: string}]}
              mode: {type: string, enum: [a, b], nullable: true}
              free: {type: object, x-kubernetes-preserve-unknown-fields: true}
              tags: {type: array, items: {type: string}, x-kubernetes-list-type: set}
"#;
    apply(&server, &["apply", "-f", "-"], crd);
    let list = r#"
apiVersion: v1
kind: List
items:
- apiVersion: stable.example.com/v1
  kind: CronTab
  metadata: {name: c1}
  spec: {cronSpec: "5", replicas: 2, port: 80, mode: a, free: {x: 1}, tags: [q]}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c1}
"#;
    // The CRD is served a moment after it is created.
    let mut created = String::new();
    for _ in 0..50 {
        let out = server
            .kubectl_with(&["create", "-f", "-"], Some(list), &[])
            .unwrap();
        if out.status.success() {
            created = String::from_utf8_lossy(&out.stdout).into_owned();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        created.contains("crontab.stable.example.com/c1 created")
            && created.contains("configmap/c1 created"),
        "{created}"
    );
    // An unknown field in one item fails the whole list on the client:
    // nothing of it is created.
    let bad = list
        .replace("name: c1", "name: c2")
        .replace("tags: [q]}", "tags: [q], bogus: 1}");
    let err = failed(
        server
            .kubectl_with(&["create", "-f", "-"], Some(&bad), &[])
            .unwrap(),
    );
    assert!(
        err.contains(r#"unknown field "bogus" in com.example.stable.v1.CronTab.spec"#),
        "{err}"
    );
    let left = kubectl_fails(&server, &["get", "configmap", "c2"]);
    assert!(left.contains("NotFound"), "{left}");
    let left = kubectl_fails(&server, &["get", "crontab", "c2"]);
    assert!(left.contains("NotFound"), "{left}");
}
