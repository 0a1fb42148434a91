//! The ServiceAccount controller and the root CA publisher against a real
//! apiserver: every active namespace gets a `default` ServiceAccount and
//! the `kube-root-ca.crt` ConfigMap holding the server CA, both restored
//! when deleted or changed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use skiff_server::controllers::{root_ca, serviceaccount};

use crate::support::{Controllers, eventually};

const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The apiserver with the ServiceAccount and root CA controllers, and
/// the server CA they publish.
struct Cluster {
    controllers: Controllers,
    ca_pem: String,
}

impl std::ops::Deref for Cluster {
    type Target = Controllers;
    fn deref(&self) -> &Controllers {
        &self.controllers
    }
}

async fn cluster() -> Cluster {
    let controllers = Controllers::start(|client, stop| {
        tokio::spawn(serviceaccount::run(client.clone(), stop.clone()));
    })
    .await;
    let ca_path = controllers
        .server
        .dir
        .path()
        .join("data/server/tls/server-ca.crt");
    let ca_pem = std::fs::read_to_string(&ca_path).unwrap();
    tokio::spawn(root_ca::run(
        controllers.client.clone(),
        ca_pem.clone(),
        controllers.stop.clone(),
    ));
    Cluster {
        controllers,
        ca_pem,
    }
}

impl Cluster {
    async fn account(&self, namespace: &str) -> ServiceAccount {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        eventually(
            &format!("the default service account in {namespace}"),
            || async { api.get_opt("default").await.unwrap() },
        )
        .await
    }

    async fn root_ca(&self, namespace: &str) -> ConfigMap {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        eventually(&format!("kube-root-ca.crt in {namespace}"), || async {
            api.get_opt("kube-root-ca.crt").await.unwrap()
        })
        .await
    }

    fn assert_published(&self, cm: &ConfigMap) {
        let data = cm.data.clone().unwrap_or_default();
        assert_eq!(data.get("ca.crt"), Some(&self.ca_pem));
        assert_eq!(data.len(), 1);
        assert_eq!(cm.annotations()["kubernetes.io/description"], DESCRIPTION);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_a_default_service_account_made_again_when_deleted() {
    let c = cluster().await;
    for namespace in ["default", "kube-system"] {
        c.account(namespace).await;
    }
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    let team: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": "team" } })).unwrap();
    namespaces
        .create(&PostParams::default(), &team)
        .await
        .unwrap();
    let first = c.account("team").await;

    let api: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "team");
    api.delete("default", &DeleteParams::default())
        .await
        .unwrap();
    let again = eventually("a new default service account", || async {
        api.get_opt("default")
            .await
            .unwrap()
            .filter(|sa| sa.uid() != first.uid())
    })
    .await;
    assert_eq!(again.name_any(), "default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_the_root_ca_restored_when_changed_or_deleted() {
    let c = cluster().await;
    for namespace in ["default", "kube-system"] {
        let cm = c.root_ca(namespace).await;
        c.assert_published(&cm);
    }
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    let team: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": "team" } })).unwrap();
    namespaces
        .create(&PostParams::default(), &team)
        .await
        .unwrap();
    let cm = c.root_ca("team").await;
    c.assert_published(&cm);

    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "team");
    let mut tampered = cm.clone();
    tampered.data = Some(BTreeMap::from([(
        "ca.crt".to_owned(),
        "not a CA".to_owned(),
    )]));
    tampered.metadata.annotations = None;
    api.replace("kube-root-ca.crt", &PostParams::default(), &tampered)
        .await
        .unwrap();
    let restored = eventually("the CA to be restored", || async {
        let cm = api.get("kube-root-ca.crt").await.unwrap();
        (cm.data.as_ref()?.get("ca.crt") == Some(&c.ca_pem)).then_some(cm)
    })
    .await;
    c.assert_published(&restored);

    api.delete("kube-root-ca.crt", &DeleteParams::default())
        .await
        .unwrap();
    let again = eventually("the ConfigMap to come back", || async {
        api.get_opt("kube-root-ca.crt")
            .await
            .unwrap()
            .filter(|cm| cm.uid() != restored.uid())
    })
    .await;
    c.assert_published(&again);
}
