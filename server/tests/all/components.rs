//! The components `skiff server` runs beside the apiserver reach it as
//! themselves.

use k8s_openapi::api::core::v1::{Endpoints, Namespace};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Api, ResourceExt};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_service_lists_the_apiserver_as_its_endpoint() {
    let server = TestServer::apiserver_only().await;
    let client = server.client().await;
    let url = server.url();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let subsets = endpoints.get("kubernetes").await.unwrap().subsets.unwrap();
    assert_eq!(subsets.len(), 1);
    let addresses = subsets[0].addresses.as_ref().unwrap();
    assert_eq!(addresses[0].ip, "127.0.0.1");
    let ports = subsets[0].ports.as_ref().unwrap();
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].port),
        (Some("https"), i32::from(port))
    );

    let slices: Api<EndpointSlice> = Api::namespaced(client, "default");
    let slice = slices.get("kubernetes").await.unwrap();
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.endpoints[0].addresses, ["127.0.0.1"]);
    assert_eq!(
        slice
            .labels()
            .get("kubernetes.io/service-name")
            .map(String::as_str),
        Some("kubernetes")
    );
}
