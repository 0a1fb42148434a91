//! Pulls from the test registry: `Always` pulls with kubelet's events; an
//! image that does not exist is ErrImagePull, then ImagePullBackOff.

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::harness::{PodNode, phase, waiting_reason};
use skiff_tests::{Fixture, RegistryKind, TestRegistry};

#[tokio::test(flavor = "multi_thread")]
async fn images_are_pulled_as_the_policy_says_and_failures_back_off() {
    let registry = TestRegistry::start(RegistryKind::Open).unwrap();
    let node = PodNode::start().await;
    let image = Fixture::Busybox.reference(&registry);
    let missing = registry.reference("skiff-test/nope:1.0");
    node.create_pod(json!({
        "metadata": {"name": "pulled"},
        "spec": {"containers": [{"name": "c", "image": image, "command": ["sleep", "3600"]}]}
    }))
    .await;
    node.create_pod(json!({
        "metadata": {"name": "missing"},
        "spec": {"containers": [{"name": "c", "image": missing, "command": ["sleep", "3600"]}]}
    }))
    .await;
    node.wait_pod("pulled", "Running", |p| phase(p) == "Running")
        .await;
    node.wait_event("pulled", "Pulling", &format!("Pulling image \"{image}\""))
        .await;
    node.wait_event(
        "pulled",
        "Pulled",
        &format!("Successfully pulled image \"{image}\" in "),
    )
    .await;
    node.wait_event("pulled", "Pulled", "Image size: ").await;

    node.wait_pod("missing", "ErrImagePull", |p| {
        waiting_reason(p, "c").as_deref() == Some("ErrImagePull")
    })
    .await;
    node.wait_event(
        "missing",
        "Failed",
        &format!("Failed to pull image \"{missing}\": rpc error: code = NotFound"),
    )
    .await;
    node.wait_event("missing", "Failed", "Error: ErrImagePull")
        .await;
    node.wait_pod("missing", "ImagePullBackOff", |p| {
        waiting_reason(p, "c").as_deref() == Some("ImagePullBackOff")
    })
    .await;
    node.wait_event(
        "missing",
        "BackOff",
        &format!("Back-off pulling image \"{missing}\""),
    )
    .await;
    node.delete_all_pods().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_secrets_authenticate_to_the_registry() {
    let registry = TestRegistry::start(RegistryKind::Basic).unwrap();
    let node = PodNode::start().await;
    let (user, password) = registry.credentials().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = json!({"auths": {registry.host(): {"auth": auth}}}).to_string();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "regcred"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config}
    }))
    .unwrap();
    Api::<Secret>::namespaced(node.client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let image = Fixture::BusyboxV1.reference(&registry);
    let pod = |name: &str, secrets: serde_json::Value| {
        json!({
            "metadata": {"name": name},
            "spec": {
                "imagePullSecrets": secrets,
                "containers": [{"name": "c", "image": image, "command": ["sleep", "3600"]}]
            }
        })
    };
    node.create_pod(pod("anonymous", json!([]))).await;
    node.create_pod(pod("authenticated", json!([{"name": "regcred"}])))
        .await;
    node.wait_pod("authenticated", "Running", |p| phase(p) == "Running")
        .await;
    node.wait_pod("anonymous", "refused", |p| {
        matches!(
            waiting_reason(p, "c").as_deref(),
            Some("ErrImagePull" | "ImagePullBackOff")
        )
    })
    .await;
    node.delete_all_pods().await;
}
