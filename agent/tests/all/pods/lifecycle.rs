//! A pod's way from creation to deletion.

use serde_json::json;

use super::harness::{BUSYBOX, PodNode, condition, container, http_body, phase};

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_runs_turns_ready_serves_its_config_and_is_deleted_gracefully() {
    let node = PodNode::start().await;
    node.create_config_map(
        "web-config",
        json!({"greeting": "hello-from-file", "word": "env"}),
    )
    .await;
    let script = "mkdir -p /www && \
        echo \"$GREETING-$FROM_CM-$POD_NAME-$MY_NS-$(cat /etc/config/greeting)-$(cat /etc/podinfo/name)-$CPU_MILLIS\" > /www/index.html && \
        exec httpd -f -p 8080 -h /www";
    let host_dir = node.dir.path().join("host");
    let pod = node
        .create_pod(json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "terminationGracePeriodSeconds": 5,
                "containers": [{
                    "name": "web",
                    "image": BUSYBOX,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", script],
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "env": [
                        {"name": "BASE", "value": "hi"},
                        {"name": "GREETING", "value": "$(BASE)-there"},
                        {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "word"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "CPU_MILLIS", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}}
                    ],
                    "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                    "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo bye > /host/pre-stop"]}}},
                    "volumeMounts": [
                        {"name": "host", "mountPath": "/host"},
                        {"name": "config", "mountPath": "/etc/config"},
                        {"name": "podinfo", "mountPath": "/etc/podinfo"},
                        {"name": "scratch", "mountPath": "/scratch"}
                    ]
                }],
                "volumes": [
                    {"name": "config", "configMap": {"name": "web-config"}},
                    {"name": "podinfo", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": host_dir, "type": "DirectoryOrCreate"}}
                ]
            }
        }))
        .await;
    let uid = pod.metadata.uid.clone().unwrap();

    let ready = node
        .wait_pod("web", "Running and Ready", |p| {
            phase(p) == "Running" && condition(p, "Ready")
        })
        .await;
    let status = ready.status.clone().unwrap();
    let ip = status.pod_ip.clone().unwrap();
    let cidr_prefix = node.lease.pod_cidr();
    let cidr_prefix = &cidr_prefix[..cidr_prefix.len() - 4];
    assert!(
        ip.starts_with(cidr_prefix),
        "{ip} in {}",
        node.lease.pod_cidr()
    );
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(status.qos_class.as_deref(), Some("Burstable"));
    for c in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "PodScheduled",
    ] {
        assert!(condition(&ready, c), "{c}: {status:#?}");
    }
    let web = container(&ready, "web");
    assert!(web.ready);
    assert_eq!(web.started, Some(true));
    assert_eq!(web.restart_count, 0);
    assert!(
        web.container_id.as_deref().unwrap().starts_with("skiff://"),
        "{web:?}"
    );
    assert!(web.state.as_ref().unwrap().running.is_some());
    assert_eq!(web.image, BUSYBOX);
    assert!(web.image_id.contains("sha256:"), "{}", web.image_id);

    let body = http_body(&format!("{ip}:8080")).await;
    assert_eq!(
        body.trim(),
        "hi-there-env-web-default-hello-from-file-web-100"
    );

    // The memory limit reached the container's cgroup.
    let id = web
        .container_id
        .as_deref()
        .unwrap()
        .trim_start_matches("skiff://");
    let limit = format!(
        "/sys/fs/cgroup/memory/{}/kubepods/burstable/pod{uid}/{id}/memory.limit_in_bytes",
        node.lease.bridge()
    );
    assert_eq!(
        std::fs::read_to_string(&limit).unwrap().trim(),
        (64u64 << 20).to_string()
    );

    // kubelet's events tell the story.
    node.wait_event(
        "web",
        "Pulled",
        &format!("Container image \"{BUSYBOX}\" already present on machine"),
    )
    .await;
    node.wait_event("web", "Created", "Created container web")
        .await;
    node.wait_event("web", "Started", "Started container web")
        .await;

    // Its log is where kubelet puts it.
    let log = node
        .logs_dir()
        .join(format!("default_web_{uid}"))
        .join("web")
        .join("0.log");
    assert!(log.exists(), "{}", log.display());

    // Graceful deletion: the kubelet stops it and deletes the object.
    node.pods()
        .delete("web", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    node.wait_event("web", "Killing", "Stopping container web")
        .await;
    node.wait_gone("web").await;
    assert_eq!(
        std::fs::read_to_string(host_dir.join("pre-stop")).unwrap(),
        "bye\n",
        "the preStop hook ran"
    );
    // (The apiserver may drop the object on the kubelet's last status
    // write, a moment before the kubelet's own final DELETE.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while node.sandboxes_of(&uid).await > 0 {
        assert!(std::time::Instant::now() < deadline, "the sandbox stays");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!node.dir.path().join("kubelet/pods").join(&uid).exists());
    assert!(!log.exists(), "the pod's logs go with it");
    let cgroup = format!(
        "/sys/fs/cgroup/memory/{}/kubepods/burstable/pod{uid}",
        node.lease.bridge()
    );
    assert!(
        !std::path::Path::new(&cgroup).exists(),
        "{cgroup} is removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_config_map_holds_the_container_until_it_exists() {
    let node = PodNode::start().await;
    node.create_pod(json!({
        "metadata": {"name": "needs-config"},
        "spec": {"containers": [{
            "name": "c",
            "image": BUSYBOX,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "x"}}}]
        }]}
    }))
    .await;
    let waiting = node
        .wait_pod("needs-config", "CreateContainerConfigError", |p| {
            super::harness::waiting_reason(p, "c").as_deref() == Some("CreateContainerConfigError")
        })
        .await;
    let message = container(&waiting, "c")
        .state
        .unwrap()
        .waiting
        .unwrap()
        .message
        .unwrap();
    assert_eq!(message, "configmap \"later\" not found");
    assert_eq!(phase(&waiting), "Pending");
    node.wait_event(
        "needs-config",
        "Failed",
        "Error: configmap \"later\" not found",
    )
    .await;
    node.create_config_map("later", json!({"x": "1"})).await;
    node.wait_pod("needs-config", "Running", |p| phase(p) == "Running")
        .await;
    node.delete_all_pods().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_waits_for_the_pod_network_and_host_network_pods_do_not() {
    let node = PodNode::start_with(false).await;
    node.create_pod(json!({
        "metadata": {"name": "waits"},
        "spec": {"containers": [sleeper()]}
    }))
    .await;
    node.create_pod(json!({
        "metadata": {"name": "on-host"},
        "spec": {"hostNetwork": true, "containers": [sleeper()]}
    }))
    .await;
    node.wait_pod("on-host", "Running", |p| phase(p) == "Running")
        .await;
    node.wait_event(
        "waits",
        "NetworkNotReady",
        "network is not ready: container runtime network not ready: NetworkReady=false reason:NoPodCIDR",
    )
    .await;
    assert_eq!(phase(&node.pods().get("waits").await.unwrap()), "Pending");
    node.give_pod_cidr().await;
    node.wait_pod("waits", "Running", |p| phase(p) == "Running")
        .await;
    node.delete_all_pods().await;
}

fn sleeper() -> serde_json::Value {
    json!({
        "name": "c",
        "image": BUSYBOX,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sleep", "3600"]
    })
}
