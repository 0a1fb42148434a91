//! Configuration reaching containers: a ConfigMap and a Secret as files
//! (volumes) and as environment (`env` and `envFrom`), the downward API
//! (`fieldRef`, `resourceFieldRef`) and the ServiceAccount volume every
//! pod gets.

use std::process::Command;
use std::time::Duration;

use skiff_tests::Fixture;

use super::{Cluster, SLEEP_FOREVER, assert_contains};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: reader
  labels: {app: reader}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: reader
    image: IMAGE
    command: [sh, -c, "env | sort; SLEEP"]
    resources:
      limits: {memory: 64Mi, cpu: 500m}
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef: {name: app-config, key: greeting}
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {name: app-secret, key: password}
    - name: POD_NAME
      valueFrom:
        fieldRef: {fieldPath: metadata.name}
    - name: POD_IP
      valueFrom:
        fieldRef: {fieldPath: status.podIP}
    - name: NODE_NAME
      valueFrom:
        fieldRef: {fieldPath: spec.nodeName}
    - name: APP_LABEL
      valueFrom:
        fieldRef: {fieldPath: "metadata.labels['app']"}
    - name: MEMORY_MIB
      valueFrom:
        resourceFieldRef: {resource: limits.memory, divisor: 1Mi}
    - name: COMPOSED
      value: "$(GREETING)-world"
    envFrom:
    - prefix: CM_
      configMapRef: {name: app-config}
    - prefix: SEC_
      secretRef: {name: app-secret}
    volumeMounts:
    - {name: config, mountPath: /etc/config}
    - {name: secret, mountPath: /etc/secret}
    - {name: picked, mountPath: /etc/picked}
    - {name: info, mountPath: /etc/podinfo}
  volumes:
  - name: config
    configMap: {name: app-config}
  - name: secret
    secret: {secretName: app-secret, defaultMode: 0400}
  - name: picked
    configMap:
      name: app-config
      items:
      - {key: color, path: nested/colour.txt}
  - name: info
    downwardAPI:
      items:
      - path: labels
        fieldRef: {fieldPath: metadata.labels}
      - path: name
        fieldRef: {fieldPath: metadata.name}
"#;

#[test]
fn config_maps_and_secrets_reach_a_pod_as_files_and_env() {
    let cluster = Cluster::start("config-node");
    cluster.kubectl(&[
        "create",
        "configmap",
        "app-config",
        "--from-literal=greeting=hello",
        "--from-literal=color=blue",
    ]);
    cluster.kubectl(&[
        "create",
        "secret",
        "generic",
        "app-secret",
        "--from-literal=password=s3cret",
    ]);
    let manifest = POD
        .replace("IMAGE", &cluster.image(Fixture::Busybox))
        .replace("SLEEP", SLEEP_FOREVER);
    assert_contains(&cluster.apply(&manifest), "pod/reader created");
    cluster.wait_pod_ready("reader");
    let pod = cluster.json(&["get", "pod", "reader"]);
    let pod_ip = cluster.pod_ip(&pod);

    // Environment, as the container printed it at start.
    let logs = cluster.eventually(
        "the environment in the logs",
        Duration::from_secs(10),
        || {
            let logs = cluster.kubectl(&["logs", "reader"]);
            if logs.contains("PASSWORD=") {
                Ok(logs)
            } else {
                Err(logs)
            }
        },
    );
    let env: Vec<&str> = logs.lines().collect();
    for expected in [
        "GREETING=hello".to_string(),
        "PASSWORD=s3cret".to_string(),
        "CM_greeting=hello".to_string(),
        "CM_color=blue".to_string(),
        "SEC_password=s3cret".to_string(),
        "POD_NAME=reader".to_string(),
        format!("POD_IP={pod_ip}"),
        format!("NODE_NAME={}", cluster.node_name),
        "APP_LABEL=reader".to_string(),
        "MEMORY_MIB=64".to_string(),
        "COMPOSED=hello-world".to_string(),
        "HOSTNAME=reader".to_string(),
    ] {
        assert!(
            env.contains(&expected.as_str()),
            "no {expected} in:\n{logs}"
        );
    }
    // The same through exec.
    assert_eq!(
        cluster.kubectl(&[
            "exec",
            "reader",
            "--",
            "sh",
            "-c",
            "echo $GREETING/$SEC_password"
        ]),
        "hello/s3cret\n"
    );

    // Files.
    let cat = |path: &str| cluster.kubectl(&["exec", "reader", "--", "cat", path]);
    assert_eq!(cat("/etc/config/greeting"), "hello");
    assert_eq!(cat("/etc/config/color"), "blue");
    assert_eq!(cat("/etc/secret/password"), "s3cret");
    assert_eq!(cat("/etc/picked/nested/colour.txt"), "blue");
    assert_eq!(cat("/etc/podinfo/name"), "reader");
    assert_eq!(cat("/etc/podinfo/labels"), "app=\"reader\"");
    let listing = cluster.kubectl(&["exec", "reader", "--", "ls", "/etc/config"]);
    let mut names: Vec<&str> = listing.split_whitespace().collect();
    names.sort_unstable();
    assert_eq!(names, ["color", "greeting"], "{listing}");
    // defaultMode 0400 on the secret's file (through its ..data symlink).
    let mode = cluster.kubectl(&[
        "exec",
        "reader",
        "--",
        "stat",
        "-L",
        "-c",
        "%a",
        "/etc/secret/password",
    ]);
    assert_eq!(mode.trim(), "400");
    // Secrets live in memory, not on the node's disk.
    let mounts = cluster.kubectl(&["exec", "reader", "--", "cat", "/proc/mounts"]);
    assert!(
        mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some("/etc/secret") && l.starts_with("tmpfs ")),
        "/etc/secret is no tmpfs:\n{mounts}"
    );

    // The ServiceAccount volume: a token for the `default` account, the
    // cluster CA and the namespace.
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    assert_eq!(cat(&format!("{sa}/namespace")), "default");
    assert!(
        cat(&format!("{sa}/ca.crt")).starts_with("-----BEGIN CERTIFICATE-----"),
        "ca.crt"
    );
    let token = cat(&format!("{sa}/token"));
    assert_eq!(token.split('.').count(), 3, "a JWT: {token:?}");
    // The apiserver takes the token for the pod's ServiceAccount.
    let server = cluster.kubectl(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let out = Command::new("kubectl")
        .args([
            "--kubeconfig",
            "/dev/null",
            "--server",
            &server,
            "--token",
            &token,
        ])
        .args(["--insecure-skip-tls-verify", "auth", "whoami", "-o"])
        .arg("jsonpath={.status.userInfo.username}")
        .output()
        .expect("run kubectl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "system:serviceaccount:default:default",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What in-cluster clients (client-go's InClusterConfig) read: the
    // `kubernetes` Service of the default namespace, as kubelet always
    // passes it, service links or not.
    for expected in [
        "KUBERNETES_SERVICE_HOST=".to_string(),
        "KUBERNETES_SERVICE_PORT=443".to_string(),
        "KUBERNETES_PORT_443_TCP_PROTO=tcp".to_string(),
    ] {
        assert!(
            env.iter().any(|line| line.starts_with(expected.as_str())),
            "no {expected} in:\n{logs}"
        );
    }
}
