//! The ReplicaSet and Deployment controllers against a real apiserver, as
//! kube-controller-manager 1.32 behaves: pods from templates, scaling,
//! rolling updates within maxSurge/maxUnavailable, Recreate, rollback,
//! pause, restart, proportional scaling, and the real kubectl's `rollout`
//! verbs. There is no kubelet: the tests mark pods Running and Ready.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use skiff_server::controllers::{deployment, replicaset};
use tokio_util::sync::CancellationToken;

use crate::support::{Controllers, controllers_cluster};

controllers_cluster!();

async fn cluster() -> Cluster {
    Cluster(
        Controllers::start(|client, stop| {
            tokio::spawn(replicaset::run(client.clone(), stop.clone()));
            tokio::spawn(deployment::run(client.clone(), stop.clone()));
        })
        .await,
    )
}

impl Cluster {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn replicasets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// The pods with `selector`, oldest first.
    async fn pods_of(&self, selector: &str) -> Vec<Pod> {
        let mut pods = self
            .pods()
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items;
        pods.sort_by_key(|p| p.metadata.creation_timestamp.clone());
        pods
    }

    /// The ReplicaSets with `selector`, by revision, then oldest first
    /// (creation times have whole seconds).
    async fn replicasets_of(&self, selector: &str) -> Vec<ReplicaSet> {
        let mut sets = self
            .replicasets()
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items;
        let key = |rs: &ReplicaSet| {
            let revision: i64 = annotation(&rs.metadata, "deployment.kubernetes.io/revision")
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            (
                revision,
                rs.metadata.creation_timestamp.clone(),
                rs.metadata.name.clone(),
            )
        };
        sets.sort_by_key(key);
        sets
    }

    async fn deployment(&self, name: &str) -> Deployment {
        self.deployments().get(name).await.unwrap()
    }

    /// Marks the pod Running and Ready, as a kubelet would.
    async fn make_ready(&self, name: &str) {
        let now = serde_json::to_value(Time(Timestamp::now())).unwrap();
        let status = json!({
            "status": {
                "phase": "Running",
                "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": now }],
            }
        });
        self.pods()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
    }

    /// Marks every pod with `selector` ready; how many were not.
    async fn make_all_ready(&self, selector: &str) -> usize {
        let mut marked = 0;
        for pod in self.pods_of(selector).await {
            if !is_ready(&pod) && pod.metadata.deletion_timestamp.is_none() {
                self.make_ready(&pod.name_any()).await;
                marked += 1;
            }
        }
        marked
    }

    /// Keeps marking new pods ready in the background (a kubelet
    /// stand-in), until the cluster is dropped.
    fn kubelet(&self, selector: &str) {
        let client = self.client.clone();
        let stop = self.stop.clone();
        let selector = selector.to_owned();
        tokio::spawn(async move {
            let pods: Api<Pod> = Api::namespaced(client, "default");
            while !stop.is_cancelled() {
                if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
                    for pod in list.items {
                        if !is_ready(&pod) && pod.metadata.deletion_timestamp.is_none() {
                            let now = serde_json::to_value(Time(Timestamp::now())).unwrap();
                            let status = json!({ "status": {
                                "phase": "Running",
                                "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": now }],
                            }});
                            let _ = pods
                                .patch_status(
                                    &pod.name_any(),
                                    &PatchParams::default(),
                                    &Patch::Merge(status),
                                )
                                .await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    /// Messages of the events about `name` with `reason`.
    async fn event_messages(&self, name: &str, reason: &str) -> Vec<String> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.reason.as_deref() == Some(reason)
            })
            .filter_map(|e| e.message)
            .collect()
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn annotation(meta: &kube::api::ObjectMeta, key: &str) -> Option<String> {
    meta.annotations.as_ref()?.get(key).cloned()
}

fn condition(d: &Deployment, type_: &str) -> Option<(String, String, String)> {
    let c = d
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?
        .clone();
    Some((
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    ))
}

/// Polls `check` until it returns Ok, failing with its last complaint
/// after 30 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                panic!("timed out waiting for {what}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn deployment_manifest(
    name: &str,
    replicas: i32,
    image: &str,
    strategy: serde_json::Value,
) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "strategy": strategy,
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": name, "image": image }] },
            },
        },
    }))
    .unwrap()
}

fn rolling(surge: serde_json::Value, unavailable: serde_json::Value) -> serde_json::Value {
    json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": surge, "maxUnavailable": unavailable } })
}

async fn set_image(c: &Cluster, name: &str, image: &str) {
    let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": name, "image": image }] } } } });
    c.deployments()
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// Waits until the ReplicaSets with `selector` have sizes `[old, new]`
/// and the pods to match exist.
async fn step_to(c: &Cluster, selector: &str, old: i32, new: i32) {
    eventually(&format!("old {old}, new {new}"), || async {
        let now: Vec<i32> = c
            .replicasets_of(selector)
            .await
            .iter()
            .map(spec_replicas)
            .collect();
        let pods = c.pods_of(selector).await.len();
        if now == [old, new] && pods == usize::try_from(old + new).unwrap_or(0) {
            Ok(())
        } else {
            Err(format!("{now:?}, {pods} pods"))
        }
    })
    .await;
}

/// Waits until the Deployment "web" has observed its spec and counts
/// `count` updated replicas.
async fn updated(c: &Cluster, count: i32) {
    eventually(&format!("{count} updated replicas"), || async {
        let d = c.deployment("web").await;
        let s = d.status.clone().unwrap_or_default();
        if s.updated_replicas == Some(count) && d.metadata.generation <= s.observed_generation {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
}

/// Waits until the Deployment's rollout is complete as `kubectl rollout
/// status` judges it.
async fn rolled_out(c: &Cluster, name: &str, replicas: i32) -> Deployment {
    eventually("the rollout to complete", || async {
        let d = c.deployment(name).await;
        let s = d.status.clone().unwrap_or_default();
        let done = d.metadata.generation <= s.observed_generation
            && s.updated_replicas == Some(replicas)
            && s.replicas == Some(replicas)
            && s.available_replicas == Some(replicas)
            && condition(&d, "Progressing").is_some_and(|c| c.1 == "NewReplicaSetAvailable");
        if done { Ok(d) } else { Err(format!("{s:?}")) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_makes_a_replicaset_whose_pods_become_available() {
    let c = cluster().await;
    c.deployments()
        .create(
            &PostParams::default(),
            &deployment_manifest("web", 2, "busybox:1", rolling(json!("25%"), json!("25%"))),
        )
        .await
        .unwrap();
    let rs = eventually("a replicaset with two pods", || async {
        let sets = c.replicasets_of("app=web").await;
        let pods = c.pods_of("app=web").await;
        match sets.as_slice() {
            [rs] if pods.len() == 2 => Ok(rs.clone()),
            _ => Err(format!("{} replicasets, {} pods", sets.len(), pods.len())),
        }
    })
    .await;
    let hash = rs.labels()["pod-template-hash"].clone();
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    assert!(
        hash.len() <= 10
            && hash
                .bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)),
        "{hash}"
    );
    assert_eq!(spec_replicas(&rs), 2);
    assert_eq!(
        rs.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()["pod-template-hash"],
        hash
    );
    let owner = &rs.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Deployment", "web", Some(true))
    );
    assert_eq!(
        annotation(&rs.metadata, "deployment.kubernetes.io/revision").as_deref(),
        Some("1")
    );
    assert_eq!(
        annotation(&rs.metadata, "deployment.kubernetes.io/desired-replicas").as_deref(),
        Some("2")
    );
    assert_eq!(
        annotation(&rs.metadata, "deployment.kubernetes.io/max-replicas").as_deref(),
        Some("3")
    );

    let pods = c.pods_of("app=web").await;
    for pod in &pods {
        assert!(
            pod.name_any().starts_with(&format!("web-{hash}-")),
            "{}",
            pod.name_any()
        );
        assert_eq!(pod.labels()["pod-template-hash"], hash);
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("ReplicaSet", rs.name_any().as_str(), Some(true))
        );
    }

    // Not ready yet: the Deployment says so.
    eventually("the deployment to count its pods", || async {
        let d = c.deployment("web").await;
        let s = d.status.clone().unwrap_or_default();
        if s.replicas == Some(2)
            && s.updated_replicas == Some(2)
            && s.unavailable_replicas == Some(2)
        {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    let status = c
        .kubectl(&["rollout", "status", "deployment/web", "--watch=false"])
        .await;
    assert_eq!(
        status.trim(),
        "Waiting for deployment \"web\" rollout to finish: 0 of 2 updated replicas are available..."
    );
    let d = c.deployment("web").await;
    assert_eq!(
        condition(&d, "Available"),
        Some((
            "False".into(),
            "MinimumReplicasUnavailable".into(),
            "Deployment does not have minimum availability.".into()
        ))
    );

    c.make_all_ready("app=web").await;
    let d = rolled_out(&c, "web", 2).await;
    let s = d.status.clone().unwrap();
    assert_eq!((s.ready_replicas, s.unavailable_replicas), (Some(2), None));
    assert_eq!(s.observed_generation, d.metadata.generation);
    assert_eq!(
        condition(&d, "Available"),
        Some((
            "True".into(),
            "MinimumReplicasAvailable".into(),
            "Deployment has minimum availability.".into()
        ))
    );
    assert_eq!(
        condition(&d, "Progressing"),
        Some((
            "True".into(),
            "NewReplicaSetAvailable".into(),
            format!("ReplicaSet \"web-{hash}\" has successfully progressed.")
        ))
    );
    assert_eq!(
        annotation(&d.metadata, "deployment.kubernetes.io/revision").as_deref(),
        Some("1")
    );
    let rs = c.replicasets().get(&format!("web-{hash}")).await.unwrap();
    let rs_status = rs.status.unwrap();
    assert_eq!(
        (
            rs_status.replicas,
            rs_status.fully_labeled_replicas,
            rs_status.ready_replicas,
            rs_status.available_replicas
        ),
        (2, Some(2), Some(2), Some(2))
    );
    assert_eq!(rs_status.observed_generation, rs.metadata.generation);

    let scaled = eventually("the ScalingReplicaSet event", || async {
        let messages = c.event_messages("web", "ScalingReplicaSet").await;
        if messages.is_empty() {
            Err("none".to_owned())
        } else {
            Ok(messages)
        }
    })
    .await;
    assert_eq!(
        scaled,
        [format!("Scaled up replica set web-{hash} from 0 to 2")]
    );
    let created = eventually("a SuccessfulCreate event", || async {
        let messages = c
            .event_messages(&format!("web-{hash}"), "SuccessfulCreate")
            .await;
        if messages.is_empty() {
            Err("none".to_owned())
        } else {
            Ok(messages)
        }
    })
    .await;
    let names: Vec<String> = pods
        .iter()
        .map(|p| format!("Created pod: {}", p.name_any()))
        .collect();
    assert!(names.contains(&created[0]), "{created:?} vs {names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_adds_pods_and_removes_the_not_ready_ones_first() {
    let c = cluster().await;
    c.deployments()
        .create(
            &PostParams::default(),
            &deployment_manifest("web", 2, "busybox:1", rolling(json!("25%"), json!("25%"))),
        )
        .await
        .unwrap();
    eventually("two pods", || async {
        let n = c.pods_of("app=web").await.len();
        if n == 2 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    })
    .await;
    c.make_all_ready("app=web").await;
    rolled_out(&c, "web", 2).await;
    let ready: Vec<String> = c
        .pods_of("app=web")
        .await
        .iter()
        .map(ResourceExt::name_any)
        .collect();

    c.kubectl(&["scale", "deployment/web", "--replicas=5"])
        .await;
    eventually("five pods", || async {
        let sets = c.replicasets_of("app=web").await;
        let n = c.pods_of("app=web").await.len();
        if n == 5 && sets.len() == 1 && spec_replicas(&sets[0]) == 5 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    })
    .await;
    let rs = &c.replicasets_of("app=web").await[0];
    assert_eq!(
        annotation(&rs.metadata, "deployment.kubernetes.io/desired-replicas").as_deref(),
        Some("5")
    );
    // 25% of 5 rounded up.
    assert_eq!(
        annotation(&rs.metadata, "deployment.kubernetes.io/max-replicas").as_deref(),
        Some("7")
    );

    // Back to two: the three pods that never became ready go.
    c.kubectl(&["scale", "deployment/web", "--replicas=2"])
        .await;
    let left = eventually("two pods again", || async {
        let pods = c.pods_of("app=web").await;
        if pods.len() == 2 {
            Ok(pods.iter().map(ResourceExt::name_any).collect::<Vec<_>>())
        } else {
            Err(format!("{} pods", pods.len()))
        }
    })
    .await;
    let mut left = left;
    left.sort();
    let mut ready = ready;
    ready.sort();
    assert_eq!(left, ready);
    let d = rolled_out(&c, "web", 2).await;
    assert_eq!(
        annotation(&d.metadata, "deployment.kubernetes.io/revision").as_deref(),
        Some("1")
    );
    assert_eq!(c.replicasets_of("app=web").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_keeps_within_max_surge_and_max_unavailable() {
    let c = cluster().await;
    c.deployments()
        .create(
            &PostParams::default(),
            &deployment_manifest("web", 3, "busybox:1", rolling(json!(1), json!(0))),
        )
        .await
        .unwrap();
    eventually("three pods", || async {
        let n = c.pods_of("app=web").await.len();
        if n == 3 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    })
    .await;
    c.make_all_ready("app=web").await;
    rolled_out(&c, "web", 3).await;

    // Watch the invariants while the rollout runs: at most 3 + 1 pods
    // wanted, never fewer than 3 ready.
    let violated = Arc::new(AtomicBool::new(false));
    let monitor = {
        let violated = Arc::clone(&violated);
        let client = c.client.clone();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
            let pods: Api<Pod> = Api::namespaced(client, "default");
            while !stopped.is_cancelled() {
                let (Ok(sets), Ok(pods)) = (
                    sets.list(&ListParams::default().labels("app=web")).await,
                    pods.list(&ListParams::default().labels("app=web")).await,
                ) else {
                    break;
                };
                let wanted: i32 = sets.items.iter().map(spec_replicas).sum();
                let ready = pods.items.iter().filter(|p| is_ready(p)).count();
                if wanted > 4 || ready < 3 {
                    violated.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        stop
    };

    set_image(&c, "web", "busybox:2").await;
    let sizes = || async {
        let sets = c.replicasets_of("app=web").await;
        sets.iter().map(spec_replicas).collect::<Vec<_>>()
    };
    let step = |old: i32, new: i32| step_to(&c, "app=web", old, new);
    // Surge one new pod; no old pod may go before it is available.
    step(3, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sizes().await, [3, 1]);
    let d = c.deployment("web").await;
    let sets = c.replicasets_of("app=web").await;
    let new_name = sets[1].name_any();
    assert_eq!(
        condition(&d, "Progressing").map(|c| c.1),
        Some("ReplicaSetUpdated".to_owned()),
        "{:?}",
        d.status
    );
    updated(&c, 1).await;
    let status = c
        .kubectl(&["rollout", "status", "deployment/web", "--watch=false"])
        .await;
    assert_eq!(
        status.trim(),
        "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."
    );

    c.make_all_ready("app=web").await;
    step(2, 2).await;
    updated(&c, 2).await;
    let status = c
        .kubectl(&["rollout", "status", "deployment/web", "--watch=false"])
        .await;
    assert!(status.starts_with("Waiting for deployment \"web\" rollout to finish: 2 out of 3 new replicas have been updated..."), "{status}");
    c.make_all_ready("app=web").await;
    step(1, 3).await;
    eventually("4 replicas, 3 updated", || async {
        let s = c.deployment("web").await.status.unwrap_or_default();
        if (s.replicas, s.updated_replicas) == (Some(4), Some(3)) {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    let status = c
        .kubectl(&["rollout", "status", "deployment/web", "--watch=false"])
        .await;
    assert_eq!(
        status.trim(),
        "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
    );
    c.make_all_ready("app=web").await;
    step(0, 3).await;
    c.make_all_ready("app=web").await;
    let d = rolled_out(&c, "web", 3).await;
    monitor.cancel();
    assert!(
        !violated.load(Ordering::SeqCst),
        "maxSurge or maxUnavailable was exceeded"
    );

    assert_eq!(
        annotation(&d.metadata, "deployment.kubernetes.io/revision").as_deref(),
        Some("2")
    );
    let sets = c.replicasets_of("app=web").await;
    assert_eq!(sets[1].name_any(), new_name);
    assert_eq!(
        annotation(&sets[0].metadata, "deployment.kubernetes.io/revision").as_deref(),
        Some("1")
    );
    assert_eq!(
        annotation(&sets[1].metadata, "deployment.kubernetes.io/revision").as_deref(),
        Some("2")
    );
    assert_eq!(c.pods_of("app=web").await.len(), 3);
    let status = c.kubectl(&["rollout", "status", "deployment/web"]).await;
    assert_eq!(status.trim(), "deployment \"web\" successfully rolled out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_removes_every_old_pod_before_making_new_ones() {
    let c = cluster().await;
    c.deployments()
        .create(
            &PostParams::default(),
            &deployment_manifest("db", 2, "busybox:1", json!({ "type": "Recreate" })),
        )
        .await
        .unwrap();
    eventually("two pods", || async {
        let n = c.pods_of("app=db").await.len();
        if n == 2 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    })
    .await;
    c.make_all_ready("app=db").await;
    rolled_out(&c, "db", 2).await;
    let old_hash = c.replicasets_of("app=db").await[0].labels()["pod-template-hash"].clone();

    set_image(&c, "db", "busybox:2").await;
    let new = eventually("the new replicaset", || async {
        let sets = c.replicasets_of("app=db").await;
        if sets.len() == 2 {
            Ok(sets[1].clone())
        } else {
            Err(format!("{} sets", sets.len()))
        }
    })
    .await;
    // By the time it exists, no old pod is left, and it gets all replicas at once.
    let old_pods = c
        .pods_of(&format!("app=db,pod-template-hash={old_hash}"))
        .await;
    assert!(
        old_pods.is_empty(),
        "{:?}",
        old_pods
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>()
    );
    assert_eq!(spec_replicas(&new), 2);
    eventually("two new pods", || async {
        let n = c.pods_of("app=db").await.len();
        if n == 2 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    })
    .await;
    c.make_all_ready("app=db").await;
    let d = rolled_out(&c, "db", 2).await;
    assert_eq!(
        annotation(&d.metadata, "deployment.kubernetes.io/revision").as_deref(),
        Some("2")
    );
    let sizes: Vec<i32> = c
        .replicasets_of("app=db")
        .await
        .iter()
        .map(spec_replicas)
        .collect();
    assert_eq!(sizes, [0, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_history_undo_and_status() {
    let c = cluster().await;
    c.kubelet("app=web");
    c.deployments()
        .create(
            &PostParams::default(),
            &deployment_manifest("web", 2, "busybox:1", rolling(json!("25%"), json!("25%"))),
        )
        .await
        .unwrap();
    let out = c
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );
    let first = c.replicasets_of("app=web").await[0].name_any();

    c.kubectl(&["set", "image", "deployment/web", "web=busybox:2"])
        .await;
    let out = c
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );
    let history = c.kubectl(&["rollout", "history", "deployment/web"]).await;
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    let out = c.kubectl(&["rollout", "undo", "deployment/web"]).await;
    assert_eq!(out.trim(), "deployment.apps/web rolled back");
    let out = c
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );

    // The first ReplicaSet is the new one again, with the next revision.
    let d = rolled_out(&c, "web", 2).await;
    let sets = c.replicasets_of("app=web").await;
    assert_eq!(sets.len(), 2, "no third replicaset");
    // By revision: the second template (2), then the first (now 3).
    assert_eq!(sets[1].name_any(), first);
    assert_eq!(spec_replicas(&sets[1]), 2);
    assert_eq!(spec_replicas(&sets[0]), 0);
    assert_eq!(
        annotation(&sets[1].metadata, "deployment.kubernetes.io/revision").as_deref(),
        Some("3")
    );
    assert_eq!(
        annotation(
            &sets[1].metadata,
            "deployment.kubernetes.io/revision-history"
        )
        .as_deref(),
        Some("1")
    );
    assert_eq!(
        annotation(&d.metadata, "deployment.kubernetes.io/revision").as_deref(),
        Some("3")
    );
    let history = c.kubectl(&["rollout", "history", "deployment/web"]).await;
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    let detail = c
        .kubectl(&["rollout", "history", "deployment/web", "--revision=3"])
        .await;
    assert!(detail.contains("busybox:1"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_deployment_scales_but_does_not_roll_until_resumed() {
    let c = cluster().await;
    c.kubelet("app=web");
    c.deployments()
        .create(
            &PostParams::default(),
            &deployment_manifest("web", 2, "busybox:1", rolling(json!("25%"), json!("25%"))),
        )
        .await
        .unwrap();
    rolled_out(&c, "web", 2).await;

    c.kubectl(&["rollout", "pause", "deployment/web"]).await;
    let d = eventually("the paused condition", || async {
        let d = c.deployment("web").await;
        match condition(&d, "Progressing") {
            Some(p) if p.1 == "DeploymentPaused" => Ok(d),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(
        condition(&d, "Progressing"),
        Some((
            "Unknown".into(),
            "DeploymentPaused".into(),
            "Deployment is paused".into()
        ))
    );
    c.kubectl(&["set", "image", "deployment/web", "web=busybox:2"])
        .await;
    c.kubectl(&["scale", "deployment/web", "--replicas=3"])
        .await;
    eventually("three pods of the old template", || async {
        let sets = c.replicasets_of("app=web").await;
        let pods = c.pods_of("app=web").await.len();
        if sets.len() == 1 && spec_replicas(&sets[0]) == 3 && pods == 3 {
            Ok(())
        } else {
            Err(format!("{} sets, {pods} pods", sets.len()))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.replicasets_of("app=web").await.len(),
        1,
        "a paused deployment rolled"
    );

    c.kubectl(&["rollout", "resume", "deployment/web"]).await;
    let out = c
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );
    let sets = c.replicasets_of("app=web").await;
    let sizes: Vec<i32> = sets.iter().map(spec_replicas).collect();
    assert_eq!(sizes, [0, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_restart_makes_a_new_replicaset() {
    let c = cluster().await;
    c.kubelet("app=web");
    c.deployments()
        .create(
            &PostParams::default(),
            &deployment_manifest("web", 1, "busybox:1", rolling(json!("25%"), json!("25%"))),
        )
        .await
        .unwrap();
    rolled_out(&c, "web", 1).await;
    c.kubectl(&["rollout", "restart", "deployment/web"]).await;
    let out = c
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );
    let sets = c.replicasets_of("app=web").await;
    assert_eq!(sets.len(), 2);
    let template_annotations = sets[1]
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    assert!(
        template_annotations.contains_key("kubectl.kubernetes.io/restartedAt"),
        "{template_annotations:?}"
    );
    assert_eq!(sets.iter().map(spec_replicas).collect::<Vec<_>>(), [0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_mid_rollout_is_proportional() {
    let c = cluster().await;
    c.deployments()
        .create(
            &PostParams::default(),
            &deployment_manifest("web", 10, "busybox:1", rolling(json!(3), json!(2))),
        )
        .await
        .unwrap();
    eventually("ten pods", || async {
        let n = c.pods_of("app=web").await.len();
        if n == 10 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    })
    .await;
    c.make_all_ready("app=web").await;
    rolled_out(&c, "web", 10).await;

    // The new pods never become ready: the rollout stops at old 8, new 5.
    set_image(&c, "web", "busybox:2").await;
    let sizes = || async {
        c.replicasets_of("app=web")
            .await
            .iter()
            .map(spec_replicas)
            .collect::<Vec<_>>()
    };
    eventually("old 8, new 5", || async {
        let now = sizes().await;
        if now == [8, 5] {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sizes().await, [8, 5]);

    // To 20 (at most 23): 8 * 23 / 13 = 14.2 and 5 * 23 / 13 = 8.8.
    c.kubectl(&["scale", "deployment/web", "--replicas=20"])
        .await;
    eventually("old 14, new 9", || async {
        let now = sizes().await;
        if now == [14, 9] {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sizes().await, [14, 9]);
    for rs in c.replicasets_of("app=web").await {
        assert_eq!(
            annotation(&rs.metadata, "deployment.kubernetes.io/desired-replicas").as_deref(),
            Some("20")
        );
        assert_eq!(
            annotation(&rs.metadata, "deployment.kubernetes.io/max-replicas").as_deref(),
            Some("23")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_replicasets_beyond_the_history_limit_are_deleted() {
    let c = cluster().await;
    c.kubelet("app=web");
    let mut manifest =
        deployment_manifest("web", 1, "busybox:1", rolling(json!("25%"), json!("25%")));
    manifest.spec.as_mut().unwrap().revision_history_limit = Some(1);
    c.deployments()
        .create(&PostParams::default(), &manifest)
        .await
        .unwrap();
    rolled_out(&c, "web", 1).await;
    for image in ["busybox:2", "busybox:3"] {
        set_image(&c, "web", image).await;
        eventually("the new template rolled out", || async {
            let d = c.deployment("web").await;
            let sets = c.replicasets_of("app=web").await;
            let new_ready = sets.iter().any(|rs| {
                rs.spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .and_then(|t| t.spec.as_ref())
                    .map(|s| s.containers[0].image.clone())
                    == Some(Some(image.to_owned()))
                    && rs.status.as_ref().and_then(|s| s.available_replicas) == Some(1)
            });
            let complete =
                condition(&d, "Progressing").is_some_and(|c| c.1 == "NewReplicaSetAvailable");
            if new_ready && complete {
                Ok(())
            } else {
                Err(format!("{} sets", sets.len()))
            }
        })
        .await;
    }
    let sets = eventually("one old replicaset kept", || async {
        let sets = c.replicasets_of("app=web").await;
        if sets.len() == 2 {
            Ok(sets)
        } else {
            Err(format!("{} sets", sets.len()))
        }
    })
    .await;
    let revisions: Vec<Option<String>> = sets
        .iter()
        .map(|rs| annotation(&rs.metadata, "deployment.kubernetes.io/revision"))
        .collect();
    assert_eq!(revisions, [Some("2".to_owned()), Some("3".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicaset_replaces_deleted_pods_adopts_orphans_and_releases_strays() {
    let c = cluster().await;
    // An orphan the ReplicaSet will select. The ReplicaSet's pod watch may
    // see it only after the ReplicaSet itself (two watches, as upstream):
    // the controller then makes two pods, adopts the orphan and deletes
    // one of three. Its deletion cost keeps the orphan the one that stays.
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "stray",
            "labels": { "app": "solo" },
            "annotations": { "controller.kubernetes.io/pod-deletion-cost": "100" },
        },
        "spec": { "containers": [{ "name": "c", "image": "busybox:1" }] },
    }))
    .unwrap();
    c.pods()
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": { "name": "solo" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "solo" } },
            "template": {
                "metadata": { "labels": { "app": "solo" } },
                "spec": { "containers": [{ "name": "c", "image": "busybox:1" }] },
            },
        },
    }))
    .unwrap();
    c.replicasets()
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();
    let pods = eventually("the orphan adopted and one pod made", || async {
        let pods = c.pods_of("app=solo").await;
        let owned = pods
            .iter()
            .filter(|p| p.owner_references().iter().any(|o| o.name == "solo"))
            .count();
        if pods.len() == 2 && owned == 2 {
            Ok(pods)
        } else {
            Err(format!("{} pods, {owned} owned", pods.len()))
        }
    })
    .await;
    assert!(pods.iter().any(|p| p.name_any() == "stray"));
    let made = pods
        .iter()
        .find(|p| p.name_any() != "stray")
        .unwrap()
        .name_any();
    assert!(made.starts_with("solo-"), "{made}");

    // A deleted pod is replaced.
    c.pods()
        .delete(&made, &DeleteParams::default())
        .await
        .unwrap();
    eventually("a replacement", || async {
        let pods = c.pods_of("app=solo").await;
        let names: Vec<String> = pods.iter().map(ResourceExt::name_any).collect();
        if pods.len() == 2 && !names.contains(&made) {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    })
    .await;

    // A pod relabelled out of the selector is released and replaced.
    let relabel = json!({ "metadata": { "labels": { "app": "elsewhere" } } });
    c.pods()
        .patch("stray", &PatchParams::default(), &Patch::Merge(relabel))
        .await
        .unwrap();
    eventually("the stray released and replaced", || async {
        let stray = c.pods().get("stray").await.unwrap();
        let pods = c.pods_of("app=solo").await;
        if stray.owner_references().is_empty() && pods.len() == 2 {
            Ok(())
        } else {
            Err(format!(
                "{:?}, {} pods",
                stray.owner_references(),
                pods.len()
            ))
        }
    })
    .await;

    let rs = eventually("the status", || async {
        let rs = c.replicasets().get("solo").await.unwrap();
        let s = rs.status.clone().unwrap_or_default();
        if s.replicas == 2
            && s.fully_labeled_replicas == Some(2)
            && s.observed_generation == rs.metadata.generation
        {
            Ok(rs)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert_eq!(rs.status.unwrap().ready_replicas, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn available_replicas_wait_for_min_ready_seconds() {
    let c = cluster().await;
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": { "name": "slow" },
        "spec": {
            "replicas": 1,
            "minReadySeconds": 2,
            "selector": { "matchLabels": { "app": "slow" } },
            "template": {
                "metadata": { "labels": { "app": "slow" } },
                "spec": { "containers": [{ "name": "c", "image": "busybox:1" }] },
            },
        },
    }))
    .unwrap();
    c.replicasets()
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();
    eventually("a pod", || async {
        let n = c.pods_of("app=slow").await.len();
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    })
    .await;
    c.make_all_ready("app=slow").await;
    let status = || async {
        c.replicasets()
            .get("slow")
            .await
            .unwrap()
            .status
            .unwrap_or_default()
    };
    eventually("ready, not yet available", || async {
        let s = status().await;
        if s.ready_replicas == Some(1) {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert_eq!(status().await.available_replicas, None);
    eventually("available after minReadySeconds", || async {
        let s = status().await;
        if s.available_replicas == Some(1) {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_pod_sets_replica_failure_until_it_can_be_created() {
    let c = cluster().await;
    let mut manifest =
        deployment_manifest("web", 1, "busybox:1", rolling(json!("25%"), json!("25%")));
    let template = &mut manifest.spec.as_mut().unwrap().template;
    template.spec.as_mut().unwrap().service_account_name = Some("builder".into());
    c.deployments()
        .create(&PostParams::default(), &manifest)
        .await
        .unwrap();
    let rs = eventually("a ReplicaFailure condition", || async {
        let sets = c.replicasets_of("app=web").await;
        let failure = sets.first().and_then(|rs| {
            rs.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "ReplicaFailure")
                .cloned()
        });
        match failure {
            Some(f) => Ok((sets[0].name_any(), f)),
            None => Err(format!("{} sets", sets.len())),
        }
    })
    .await;
    let (rs_name, failure) = rs;
    assert_eq!(
        (failure.status.as_str(), failure.reason.as_deref()),
        ("True", Some("FailedCreate"))
    );
    assert!(
        failure
            .message
            .as_deref()
            .unwrap_or("")
            .contains("serviceaccount \"builder\" not found"),
        "{failure:?}"
    );
    let d = eventually("the failure on the deployment", || async {
        let d = c.deployment("web").await;
        if condition(&d, "ReplicaFailure").is_some() {
            Ok(d)
        } else {
            Err(format!("{:?}", d.status))
        }
    })
    .await;
    assert_eq!(condition(&d, "ReplicaFailure").unwrap().1, "FailedCreate");
    let events = c.event_messages(&rs_name, "FailedCreate").await;
    assert!(
        events.iter().any(|m| m.starts_with("Error creating: ")),
        "{events:?}"
    );

    let account: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": "builder" } })).unwrap();
    Api::<ServiceAccount>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    eventually("the pod made and the failure cleared", || async {
        let d = c.deployment("web").await;
        let pods = c.pods_of("app=web").await.len();
        if pods == 1 && condition(&d, "ReplicaFailure").is_none() {
            Ok(())
        } else {
            Err(format!("{pods} pods, {:?}", d.status))
        }
    })
    .await;
    let rs = c.replicasets().get(&rs_name).await.unwrap();
    assert_eq!(rs.status.unwrap().conditions, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_without_progress_exceeds_its_deadline() {
    let c = cluster().await;
    let mut manifest =
        deployment_manifest("web", 2, "busybox:1", rolling(json!("25%"), json!("25%")));
    manifest.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    c.deployments()
        .create(&PostParams::default(), &manifest)
        .await
        .unwrap();
    // The pods never become ready.
    let d = eventually("the deadline to pass", || async {
        let d = c.deployment("web").await;
        match condition(&d, "Progressing") {
            Some(p) if p.1 == "ProgressDeadlineExceeded" => Ok(d),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let rs = c.replicasets_of("app=web").await[0].name_any();
    assert_eq!(
        condition(&d, "Progressing"),
        Some((
            "False".into(),
            "ProgressDeadlineExceeded".into(),
            format!("ReplicaSet \"{rs}\" has timed out progressing.")
        ))
    );
    let (ok, _, stderr) = c
        .kubectl_result(&["rollout", "status", "deployment/web", "--timeout=10s"])
        .await;
    assert!(!ok);
    assert!(
        stderr.contains("deployment \"web\" exceeded its progress deadline"),
        "{stderr}"
    );

    // Progress again (pods ready) completes the rollout.
    c.make_all_ready("app=web").await;
    rolled_out(&c, "web", 2).await;
}
