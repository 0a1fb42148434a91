//! The Endpoints and EndpointSlice controllers against a real apiserver:
//! Services, pods and pod status are written by the test (no kubelet), the
//! controllers run directly with the admin client.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skiff_server::controllers::{endpoints, endpointslice};
use skiff_server::run::Components;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::support::TestServer;

/// Polls `check` until it yields a value (20 s at most).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..400 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

struct Cluster {
    _server: TestServer,
    client: kube::Client,
    _controllers: DropGuard,
}

/// A server with only the Endpoints and EndpointSlice controllers, and a node.
async fn cluster() -> Cluster {
    let server = TestServer::start(Components {
        scheduler: false,
        controller_manager: false,
    })
    .await;
    let client = server.client().await;
    let stop = CancellationToken::new();
    tokio::spawn(endpoints::run(client.clone(), stop.clone()));
    tokio::spawn(endpointslice::run(client.clone(), stop.clone()));
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "zone-1"}},
    }))
    .unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    Cluster {
        _server: server,
        client,
        _controllers: stop.drop_guard(),
    }
}

async fn create<K>(api: &Api<K>, value: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap()
}

fn pod(name: &str, labels: Value, ports: Value) -> Value {
    json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox", "ports": ports}]},
    })
}

/// Gives the pod an IP and a Ready condition, as a kubelet would.
async fn set_status(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{
            "type": "Ready",
            "status": if ready { "True" } else { "False" },
            "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
        }],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn ips(list: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> Vec<String> {
    list.iter().flatten().map(|a| a.ip.clone()).collect()
}

async fn endpoints_where(
    api: &Api<Endpoints>,
    name: &str,
    test: impl Fn(&Endpoints) -> bool,
) -> Endpoints {
    let what = format!("endpoints {name}");
    eventually(&what, || {
        let api = api.clone();
        let name = name.to_owned();
        let test = &test;
        async move { api.get_opt(&name).await.unwrap().filter(|ep| test(ep)) }
    })
    .await
}

async fn slices_of(api: &Api<EndpointSlice>, service: &str) -> Vec<EndpointSlice> {
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    api.list(&params).await.unwrap().items
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_and_slices_follow_pods_and_their_readiness() {
    let c = cluster().await;
    let services: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let http = json!([{"name": "http", "containerPort": 8080}]);
    create(&pods, pod("web-1", json!({"app": "web"}), http.clone())).await;
    create(&pods, pod("web-2", json!({"app": "web"}), http.clone())).await;
    create(&pods, pod("other", json!({"app": "other"}), http.clone())).await;
    let svc = create(
        &services,
        json!({
            "metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]},
        }),
    )
    .await;
    // Pods without IPs are nobody's endpoints yet.
    let empty = endpoints_where(&eps, "web", |_| true).await;
    assert!(empty.subsets.is_none_or(|s| s.is_empty()));
    set_status(&pods, "web-1", "10.42.0.11", true).await;
    set_status(&pods, "web-2", "10.42.0.12", false).await;
    set_status(&pods, "other", "10.42.0.13", true).await;

    let ep = endpoints_where(&eps, "web", |ep| {
        ep.subsets.as_ref().is_some_and(|s| {
            s.len() == 1
                && ips(&s[0].addresses) == ["10.42.0.11"]
                && ips(&s[0].not_ready_addresses) == ["10.42.0.12"]
        })
    })
    .await;
    let subset = &ep.subsets.as_ref().unwrap()[0];
    let address = &subset.addresses.as_ref().unwrap()[0];
    assert_eq!(address.node_name.as_deref(), Some("node-a"));
    let target = address.target_ref.as_ref().unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.name.as_deref()),
        (Some("Pod"), Some("web-1"))
    );
    let port = &subset.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("web"), 8080, Some("TCP"))
    );
    let labels = ep.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert!(!labels.contains_key("service.kubernetes.io/headless"));
    let annotations = ep.metadata.annotations.clone().unwrap_or_default();
    assert!(annotations.contains_key("endpoints.kubernetes.io/last-change-trigger-time"));

    // The slice says the same, with conditions.
    let slice = eventually("a slice with both pods", || {
        let slices = slices.clone();
        async move {
            let all = slices_of(&slices, "web").await;
            (all.len() == 1 && all[0].endpoints.len() == 2).then(|| all[0].clone())
        }
    })
    .await;
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert!(slice.metadata.name.as_deref().unwrap().starts_with("web-"));
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Service", svc.metadata.uid.as_deref().unwrap())
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(slice.address_type, "IPv4");
    let slice_port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!(
        (slice_port.name.as_deref(), slice_port.port),
        (Some("web"), Some(8080))
    );
    let by_pod = |s: &EndpointSlice, pod: &str| {
        s.endpoints
            .iter()
            .find(|e| e.target_ref.as_ref().and_then(|t| t.name.as_deref()) == Some(pod))
            .cloned()
            .unwrap()
    };
    let one = by_pod(&slice, "web-1");
    assert_eq!(one.addresses, vec!["10.42.0.11".to_owned()]);
    assert_eq!(one.node_name.as_deref(), Some("node-a"));
    assert_eq!(one.zone.as_deref(), Some("zone-1"));
    let conditions = one.conditions.unwrap();
    assert_eq!(
        (conditions.ready, conditions.serving, conditions.terminating),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(
        by_pod(&slice, "web-2").conditions.unwrap().ready,
        Some(false)
    );

    // web-2 turns ready: both addresses ready.
    set_status(&pods, "web-2", "10.42.0.12", true).await;
    endpoints_where(&eps, "web", |ep| {
        ep.subsets.as_ref().is_some_and(|s| {
            s.len() == 1
                && ips(&s[0].addresses) == ["10.42.0.11", "10.42.0.12"]
                && s[0].not_ready_addresses.is_none()
        })
    })
    .await;

    // web-1 is being deleted (its kubelet would finish that): out of the
    // Endpoints, terminating in the slice, which is updated in place.
    pods.delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    endpoints_where(&eps, "web", |ep| {
        ep.subsets
            .as_ref()
            .is_some_and(|s| s.len() == 1 && ips(&s[0].addresses) == ["10.42.0.12"])
    })
    .await;
    let name = slice.metadata.name.clone();
    let updated = eventually("web-1 terminating in the slice", || {
        let slices = slices.clone();
        async move {
            let all = slices_of(&slices, "web").await;
            all.into_iter().find(|s| {
                s.endpoints.iter().any(|e| {
                    e.target_ref.as_ref().and_then(|t| t.name.as_deref()) == Some("web-1")
                        && e.conditions.as_ref().and_then(|c| c.terminating) == Some(true)
                })
            })
        }
    })
    .await;
    assert_eq!(updated.metadata.name, name);
    let gone = by_pod(&updated, "web-1").conditions.unwrap();
    assert_eq!((gone.ready, gone.serving), (Some(false), Some(true)));
    assert_eq!(slices_of(&slices, "web").await.len(), 1);
    // No write raced the controllers' caches.
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(c.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap();
    let warnings: Vec<_> = events
        .items
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| (e.reason.clone(), e.message.clone()))
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn named_ports_missing_on_a_pod_leave_it_out_of_that_port() {
    let c = cluster().await;
    let services: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    create(
        &pods,
        pod("full", json!({"app": "web"}), json!([{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}])),
    )
    .await;
    create(
        &pods,
        pod(
            "plain",
            json!({"app": "web"}),
            json!([{"name": "http", "containerPort": 8080}]),
        ),
    )
    .await;
    set_status(&pods, "full", "10.42.0.21", true).await;
    set_status(&pods, "plain", "10.42.0.22", true).await;
    create(
        &services,
        json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9090, "targetPort": "metrics"},
            ]},
        }),
    )
    .await;
    let ep = endpoints_where(&eps, "web", |ep| {
        ep.subsets.as_ref().is_some_and(|s| s.len() == 2)
    })
    .await;
    let subsets = ep.subsets.unwrap();
    let with = |port: &str| {
        subsets
            .iter()
            .find(|s| s.ports.as_ref().unwrap()[0].name.as_deref() == Some(port))
            .unwrap()
            .clone()
    };
    assert_eq!(ips(&with("http").addresses), ["10.42.0.21", "10.42.0.22"]);
    assert_eq!(ips(&with("metrics").addresses), ["10.42.0.21"]);
    assert_eq!(with("metrics").ports.unwrap()[0].port, 9090);
}

#[tokio::test(flavor = "multi_thread")]
async fn headless_services_publishing_not_ready_pods() {
    let c = cluster().await;
    let services: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    create(&pods, pod("db-0", json!({"app": "db"}), json!([]))).await;
    set_status(&pods, "db-0", "10.42.0.31", false).await;
    create(
        &services,
        json!({
            "metadata": {"name": "db"},
            "spec": {"selector": {"app": "db"}, "clusterIP": "None", "publishNotReadyAddresses": true},
        }),
    )
    .await;
    let ep = endpoints_where(&eps, "db", |ep| ep.subsets.is_some()).await;
    let subset = &ep.subsets.as_ref().unwrap()[0];
    assert_eq!(ips(&subset.addresses), ["10.42.0.31"]);
    assert!(subset.ports.is_none());
    let labels = ep.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("service.kubernetes.io/headless")
            .map(String::as_str),
        Some("")
    );
    let slice = eventually("the headless slice", || {
        let slices = slices.clone();
        async move {
            slices_of(&slices, "db")
                .await
                .into_iter()
                .find(|s| !s.endpoints.is_empty())
        }
    })
    .await;
    let labels = slice.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("service.kubernetes.io/headless")
            .map(String::as_str),
        Some("")
    );
    let conditions = slice.endpoints[0].conditions.clone().unwrap();
    assert_eq!(
        (conditions.ready, conditions.serving),
        (Some(true), Some(false))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn selectorless_endpoints_are_left_alone_and_endpoints_go_with_their_service() {
    let c = cluster().await;
    let services: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    create(
        &services,
        json!({"metadata": {"name": "external"}, "spec": {"ports": [{"port": 5432}]}}),
    )
    .await;
    create(
        &eps,
        json!({
            "metadata": {"name": "external"},
            "subsets": [{"addresses": [{"ip": "192.168.1.10"}], "ports": [{"port": 5432}]}],
        }),
    )
    .await;
    create(&pods, pod("web-1", json!({"app": "web"}), json!([]))).await;
    set_status(&pods, "web-1", "10.42.0.41", true).await;
    create(
        &services,
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    )
    .await;
    // Once the controller wrote web's Endpoints, it has seen "external" too.
    endpoints_where(&eps, "web", |ep| ep.subsets.is_some()).await;
    eventually("web's slice", || {
        let slices = slices.clone();
        async move { (!slices_of(&slices, "web").await.is_empty()).then_some(()) }
    })
    .await;
    let manual = eps.get("external").await.unwrap();
    assert_eq!(ips(&manual.subsets.unwrap()[0].addresses), ["192.168.1.10"]);
    assert!(slices_of(&slices, "external").await.is_empty());

    // A deleted Service takes its Endpoints along, selector or not.
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    services
        .delete("external", &DeleteParams::default())
        .await
        .unwrap();
    for name in ["web", "external"] {
        eventually(&format!("endpoints {name} deleted"), || {
            let eps = eps.clone();
            async move { eps.get_opt(name).await.unwrap().is_none().then_some(()) }
        })
        .await;
    }
}
