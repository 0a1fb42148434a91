//! The components `skiff server` runs beside the apiserver reach it as
//! themselves.

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kube_rs_client_lists_namespaces_with_every_component_running() {
    let server = TestServer::start(Default::default()).await;
    let namespaces: Api<Namespace> = Api::all(server.client().await);
    let list = namespaces.list(&Default::default()).await.unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .filter_map(|ns| ns.metadata.name.clone())
        .collect();
    assert!(names.contains(&"default".to_owned()), "{names:?}");
    assert!(names.contains(&"kube-system".to_owned()), "{names:?}");
}
