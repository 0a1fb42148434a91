//! Secrets as files and env, and the service account token volume.

use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::json;

use super::harness::{BUSYBOX, PodNode, container, http_body, phase, waiting_reason};

#[tokio::test(flavor = "multi_thread")]
async fn secrets_reach_the_pod_as_files_and_env() {
    let node = PodNode::start().await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds"},
        "stringData": {"user": "admin", "password": "s3cret"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(node.client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let script = "mkdir -p /www && \
        echo \"$APP_user:$(cat /etc/creds/password):$(stat -c %a /etc/creds/..data/password)\" > /www/index.html && \
        exec httpd -f -p 8080 -h /www";
    node.create_pod(json!({
        "metadata": {"name": "secret-user"},
        "spec": {
            "containers": [{
                "name": "c",
                "image": BUSYBOX,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
                "envFrom": [{"secretRef": {"name": "creds"}, "prefix": "APP_"}],
                "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds"}]
            }],
            "volumes": [{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 256}}]
        }
    }))
    .await;
    let pod = node
        .wait_pod("secret-user", "Running", |p| phase(p) == "Running")
        .await;
    let ip = pod.status.unwrap().pod_ip.unwrap();
    assert_eq!(
        http_body(&format!("{ip}:8080")).await.trim(),
        "admin:s3cret:400"
    );
    node.delete_all_pods().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_account_token_is_projected_or_its_absence_explained() {
    let node = PodNode::start().await;
    // What the controller-manager would make (it does not run here).
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    Api::<ServiceAccount>::namespaced(node.client.clone(), "default")
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let ca: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "kube-root-ca.crt"},
        "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\n"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(node.client.clone(), "default")
        .create(&PostParams::default(), &ca)
        .await
        .unwrap();
    let script = "mkdir -p /www && \
        cd /var/run/secrets/kubernetes.io/serviceaccount && \
        echo \"$(cat namespace):$(test -s token && echo token):$(test -s ca.crt && echo ca)\" > /www/index.html && \
        exec httpd -f -p 8080 -h /www";
    node.create_pod(json!({
        "metadata": {"name": "sa"},
        "spec": {
            "automountServiceAccountToken": true,
            "containers": [{
                "name": "c",
                "image": BUSYBOX,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script]
            }]
        }
    }))
    .await;
    let pod = node
        .wait_pod("sa", "Running or refused for want of TokenRequest", |p| {
            phase(p) == "Running"
                || waiting_reason(p, "c").as_deref() == Some("CreateContainerConfigError")
        })
        .await;
    if phase(&pod) == "Running" {
        let ip = pod.status.unwrap().pod_ip.unwrap();
        assert_eq!(
            http_body(&format!("{ip}:8080")).await.trim(),
            "default:token:ca"
        );
    } else {
        let message = container(&pod, "c")
            .state
            .unwrap()
            .waiting
            .unwrap()
            .message
            .unwrap();
        assert!(
            message.contains("TokenRequest API (serviceaccounts/default/token) is not served"),
            "{message}"
        );
    }
    node.delete_all_pods().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_classes_choose_the_runtime_handler() {
    use k8s_openapi::api::node::v1::RuntimeClass;
    let node = PodNode::start().await;
    let class: RuntimeClass = serde_json::from_value(json!({
        "metadata": {"name": "wasm"},
        "handler": "wasmtime"
    }))
    .unwrap();
    Api::<RuntimeClass>::all(node.client.clone())
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
    let pod = |name: &str, class: &str| {
        json!({
            "metadata": {"name": name},
            "spec": {
                "runtimeClassName": class,
                "containers": [{
                    "name": "c",
                    "image": BUSYBOX,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"]
                }]
            }
        })
    };
    let wasm = node.create_pod(pod("with-class", "wasm")).await;
    node.create_pod(pod("unknown-class", "nope")).await;
    node.wait_pod("with-class", "Running", |p| phase(p) == "Running")
        .await;
    assert_eq!(
        node.sandbox_handler(wasm.metadata.uid.as_deref().unwrap())
            .await,
        "wasmtime"
    );
    node.wait_event(
        "unknown-class",
        "FailedCreatePodSandBox",
        "runtimeclass.node.k8s.io \"nope\" not found",
    )
    .await;
    node.delete_all_pods().await;
}
