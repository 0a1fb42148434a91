//! Deployments as `kubectl create deployment` users run them: Ready pods
//! answering on their pod IPs, the node as `get nodes -o wide` shows it,
//! scale, `set image`, rollout history and undo, deletion.

use std::time::Duration;

use serde_json::Value;
use skiff_tests::Fixture;

use super::{Cluster, HTTPD, assert_contains, described, host_os_image, items, name, table};

/// `kubectl create deployment web --image=<image> --replicas=<n> -- sh -c HTTPD`.
fn create_web(cluster: &Cluster, image: &str, replicas: usize) {
    let out = cluster.kubectl(&[
        "create",
        "deployment",
        "web",
        &format!("--image={image}"),
        &format!("--replicas={replicas}"),
        "--",
        "sh",
        "-c",
        HTTPD,
    ]);
    assert_contains(&out, "deployment.apps/web created");
}

#[test]
fn a_deployment_runs_ready_pods_that_answer_on_their_pod_ips() {
    let cluster = Cluster::start("web-node");
    check_node_wide(&cluster);

    let image = cluster.image(Fixture::Busybox);
    create_web(&cluster, &image, 2);
    cluster.rollout_status("web");
    let pods = cluster.ready_pods("app=web", 2);
    let mut ips = Vec::new();
    for pod in &pods {
        // `latest` is the 2.0 image.
        assert_eq!(
            cluster.http_from_pod(pod, "/etc/skiff-release").trim(),
            "2.0"
        );
        assert_eq!(pod["spec"]["nodeName"], cluster.node_name.as_str());
        assert_eq!(pod["status"]["hostIP"], "127.0.0.1", "{}", pod["status"]);
        ips.push(cluster.pod_ip(pod));
    }
    assert_ne!(ips[0], ips[1], "two pods share an IP");

    // What `kubectl get pods -o wide` shows.
    let rows = table(&cluster.kubectl(&["get", "pods", "-l", "app=web", "-o", "wide"]));
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert!(row["NAME"].starts_with("web-"), "{row:?}");
        assert_eq!(row["READY"], "1/1", "{row:?}");
        assert_eq!(row["STATUS"], "Running", "{row:?}");
        assert_eq!(row["RESTARTS"], "0", "{row:?}");
        assert_eq!(row["NODE"], cluster.node_name, "{row:?}");
        assert!(ips.contains(&row["IP"]), "{row:?} not among {ips:?}");
    }

    // The Deployment and its ReplicaSet as kubectl prints them.
    let rows = table(&cluster.kubectl(&["get", "deployment", "web"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0]["READY"].as_str(),
            rows[0]["UP-TO-DATE"].as_str(),
            rows[0]["AVAILABLE"].as_str()
        ),
        ("2/2", "2", "2"),
        "{rows:?}"
    );
    let rows = table(&cluster.kubectl(&["get", "replicasets", "-l", "app=web"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0]["DESIRED"].as_str(),
            rows[0]["CURRENT"].as_str(),
            rows[0]["READY"].as_str()
        ),
        ("2", "2", "2"),
        "{rows:?}"
    );

    // `kubectl describe node`: roles, conditions as the kubelet words
    // them, the pods running there.
    let text = cluster.kubectl(&["describe", "node", &cluster.node_name]);
    assert_eq!(
        described(&text, "Roles"),
        Some("control-plane,master"),
        "{text}"
    );
    assert_eq!(
        described(&text, "Non-terminated Pods"),
        Some("(2 in total)"),
        "{text}"
    );
    let ready_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("Ready "))
        .unwrap_or_default();
    assert!(
        ready_line.contains(" True ")
            && ready_line.contains("KubeletReady")
            && ready_line.ends_with("kubelet is posting ready status"),
        "{text}"
    );
    for pod in &pods {
        assert_contains(&text, name(pod));
    }

    // A deleted pod is replaced.
    let gone = name(&pods[0]).to_string();
    cluster.kubectl(&["delete", "pod", &gone]);
    let replaced = cluster.ready_pods("app=web", 2);
    assert!(replaced.iter().all(|p| name(p) != gone), "{gone} is back");
    ips = replaced.iter().map(|p| cluster.pod_ip(p)).collect();
    for pod in &replaced {
        assert_eq!(
            cluster.http_from_pod(pod, "/etc/skiff-release").trim(),
            "2.0"
        );
    }

    // A Service over the pods: its Endpoints and EndpointSlice hold both
    // pod IPs on the target port.
    assert_contains(
        &cluster.kubectl(&[
            "expose",
            "deployment",
            "web",
            "--port=80",
            "--target-port=8080",
        ]),
        "service/web exposed",
    );
    let service = cluster.json(&["get", "service", "web"]);
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap_or_default();
    assert!(cluster_ip.starts_with("10.43."), "{}", service["spec"]);
    ips.sort();
    let endpoints: Vec<String> = ips.iter().map(|ip| format!("{ip}:8080")).collect();
    cluster.eventually("the Service's Endpoints", Duration::from_secs(20), || {
        let rows = table(&cluster.kubectl(&["get", "endpoints", "web"]));
        let mut listed: Vec<String> = rows
            .first()
            .map(|row| row["ENDPOINTS"].split(',').map(str::to_string).collect())
            .unwrap_or_default();
        listed.sort();
        if listed == endpoints {
            Ok(())
        } else {
            Err(format!("{rows:?}"))
        }
    });
    cluster.eventually(
        "the Service's EndpointSlice",
        Duration::from_secs(20),
        || {
            let rows = table(&cluster.kubectl(&[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ]));
            let Some(row) = rows.first() else {
                return Err("no EndpointSlice".to_string());
            };
            let mut listed: Vec<String> = row["ENDPOINTS"].split(',').map(str::to_string).collect();
            listed.sort();
            if rows.len() == 1
                && row["ADDRESSTYPE"] == "IPv4"
                && row["PORTS"] == "8080"
                && listed == ips
            {
                Ok(())
            } else {
                Err(format!("{rows:?}"))
            }
        },
    );
}

/// `kubectl get nodes -o wide`, as k3s shows a server with its agent.
fn check_node_wide(cluster: &Cluster) {
    let text = cluster.kubectl(&["get", "nodes", "-o", "wide"]);
    let header = text.lines().next().unwrap_or_default();
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ],
        "{text}"
    );
    let rows = table(&text);
    assert_eq!(rows.len(), 1, "{text}");
    let node = &rows[0];
    assert_eq!(node["NAME"], cluster.node_name, "{text}");
    assert_eq!(node["STATUS"], "Ready", "{text}");
    assert_eq!(node["ROLES"], "control-plane,master", "{text}");
    let version: Value = serde_json::from_str(&cluster.kubectl(&["version", "-o", "json"]))
        .expect("kubectl version -o json");
    assert_eq!(
        node["VERSION"],
        version["serverVersion"]["gitVersion"]
            .as_str()
            .unwrap_or("?"),
        "the kubelet's version is the server's\n{text}"
    );
    assert_eq!(node["INTERNAL-IP"], "127.0.0.1", "{text}");
    assert_eq!(node["EXTERNAL-IP"], "<none>", "{text}");
    assert_eq!(node["OS-IMAGE"], host_os_image(), "{text}");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    assert_eq!(node["KERNEL-VERSION"], kernel.trim(), "{text}");
    assert!(node["CONTAINER-RUNTIME"].starts_with("skiff://"), "{text}");

    let node = cluster.json(&["get", "node", &cluster.node_name]);
    let labels = &node["metadata"]["labels"];
    for (key, value) in [
        ("node-role.kubernetes.io/control-plane", "true"),
        ("node-role.kubernetes.io/master", "true"),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/hostname", cluster.node_name.as_str()),
    ] {
        assert_eq!(labels[key], value, "label {key}: {labels}");
    }
    assert_eq!(
        node["spec"]["podCIDR"],
        cluster.lease.pod_cidr().as_str(),
        "{}",
        node["spec"]
    );
}

#[test]
fn a_deployment_scales_updates_rolls_back_and_is_deleted_with_its_pods() {
    let cluster = Cluster::start("rollout-node");
    let latest = cluster.image(Fixture::Busybox);
    let v1 = cluster.image(Fixture::BusyboxV1);
    create_web(&cluster, &latest, 2);
    cluster.rollout_status("web");
    // Every pod this test sees, to check the node forgets them all.
    let mut uids = uids_of(&cluster.ready_pods("app=web", 2));
    let first_rs = only_replicaset(&cluster);

    // Scale.
    assert_contains(
        &cluster.kubectl(&["scale", "deployment/web", "--replicas=3"]),
        "deployment.apps/web scaled",
    );
    cluster.rollout_status("web");
    let pods = cluster.ready_pods("app=web", 3);
    for pod in &pods {
        assert_eq!(
            cluster.http_from_pod(pod, "/etc/skiff-release").trim(),
            "2.0"
        );
    }
    uids.extend(uids_of(&pods));
    let rows = table(&cluster.kubectl(&["get", "deployment", "web"]));
    assert_eq!(rows[0]["READY"], "3/3", "{rows:?}");

    // A new image: the container `kubectl create deployment` named after it.
    assert_contains(
        &cluster.kubectl(&["set", "image", "deployment/web", &format!("busybox={v1}")]),
        "deployment.apps/web image updated",
    );
    cluster.rollout_status("web");
    uids.extend(uids_of(&serve_release(&cluster, &v1, "1.0")));
    let replicasets = replicasets(&cluster);
    assert_eq!(
        replicasets.len(),
        2,
        "old and new ReplicaSets: {replicasets:?}"
    );
    for (rs, replicas) in &replicasets {
        let expected = if *rs == first_rs { 0 } else { 3 };
        assert_eq!(*replicas, expected, "{rs}: {replicasets:?}");
    }

    // History: two revisions, the second with the new image.
    let history = cluster.kubectl(&["rollout", "history", "deployment/web"]);
    assert_eq!(revisions(&history), ["1", "2"], "{history}");
    let second = cluster.kubectl(&["rollout", "history", "deployment/web", "--revision=2"]);
    assert_contains(&second, &v1);

    // Undo: back to the first template, on the first ReplicaSet again.
    assert_contains(
        &cluster.kubectl(&["rollout", "undo", "deployment/web"]),
        "deployment.apps/web rolled back",
    );
    cluster.rollout_status("web");
    uids.extend(uids_of(&serve_release(&cluster, &latest, "2.0")));
    for (rs, replicas) in &replicasets_now(&cluster) {
        let expected = if *rs == first_rs { 3 } else { 0 };
        assert_eq!(*replicas, expected, "{rs} after undo");
    }
    let history = cluster.kubectl(&["rollout", "history", "deployment/web"]);
    assert_eq!(revisions(&history), ["2", "3"], "{history}");

    // Restart: every pod replaced, the template stamped with the time.
    let before: Vec<String> = cluster
        .ready_pods("app=web", 3)
        .iter()
        .map(|p| name(p).to_string())
        .collect();
    assert_contains(
        &cluster.kubectl(&["rollout", "restart", "deployment/web"]),
        "deployment.apps/web restarted",
    );
    cluster.rollout_status("web");
    let pods = cluster.eventually("3 new pods", Duration::from_secs(60), || {
        let pods = cluster.ready_pods("app=web", 3);
        if pods.iter().all(|p| !before.iter().any(|b| b == name(p))) {
            Ok(pods)
        } else {
            Err(format!("old pods among {:?}", uids_of(&pods)))
        }
    });
    uids.extend(uids_of(&pods));
    let deployment = cluster.json(&["get", "deployment", "web"]);
    assert!(
        deployment["spec"]["template"]["metadata"]["annotations"]
            ["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{}",
        deployment["spec"]["template"]
    );

    // Paused, a new image waits; resumed, it rolls out.
    assert_contains(
        &cluster.kubectl(&["rollout", "pause", "deployment/web"]),
        "deployment.apps/web paused",
    );
    let replicasets_paused = replicasets_now(&cluster).len();
    cluster.kubectl(&["set", "image", "deployment/web", &format!("busybox={v1}")]);
    cluster.eventually(
        "the paused Deployment observed",
        Duration::from_secs(20),
        || {
            let d = cluster.json(&["get", "deployment", "web"]);
            let paused = d["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Progressing" && c["reason"] == "DeploymentPaused")
            });
            if paused && d["status"]["observedGeneration"] == d["metadata"]["generation"] {
                Ok(())
            } else {
                Err(format!("{}", d["status"]))
            }
        },
    );
    assert_eq!(replicasets_now(&cluster).len(), replicasets_paused);
    let images: Vec<String> = cluster
        .ready_pods("app=web", 3)
        .iter()
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(images.iter().all(|i| *i == latest), "{images:?}");
    assert_contains(
        &cluster.kubectl(&["rollout", "resume", "deployment/web"]),
        "deployment.apps/web resumed",
    );
    cluster.rollout_status("web");
    uids.extend(uids_of(&serve_release(&cluster, &v1, "1.0")));

    // Deleting the Deployment takes its ReplicaSets and pods along.
    assert_contains(
        &cluster.kubectl(&["delete", "deployment", "web"]),
        "deployment.apps \"web\" deleted",
    );
    cluster.eventually(
        "the Deployment's ReplicaSets and pods gone",
        Duration::from_secs(60),
        || {
            let left = cluster.kubectl(&["get", "replicasets,pods", "-l", "app=web", "-o", "name"]);
            if left.trim().is_empty() {
                Ok(())
            } else {
                Err(left)
            }
        },
    );
    // And from the node: no container is left running.
    cluster.eventually("no containers on the node", Duration::from_secs(30), || {
        let out = skiff_tests::skiff::skiff_command()
            .expect("skiff binary")
            .arg("crictl")
            .arg("--runtime-endpoint")
            .arg(format!("unix://{}", cluster.server.cri_socket().display()))
            .args(["ps", "-q"])
            .output()
            .map_err(|err| err.to_string())?;
        let ids = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && ids.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "crictl ps: {ids} {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    // The kubelet removes the pods' cgroups.
    uids.sort();
    uids.dedup();
    cluster.eventually("the pods' cgroups removed", Duration::from_secs(30), || {
        let left = pod_cgroups(&uids);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
}

fn uids_of(pods: &[Value]) -> Vec<String> {
    pods.iter()
        .map(|p| {
            p["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// cgroup directories (any hierarchy) of the pods with these UIDs.
fn pod_cgroups(uids: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = stack.pop() {
        let Ok(children) = std::fs::read_dir(&dir) else {
            continue;
        };
        for child in children.filter_map(|e| e.ok()) {
            if !child.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = child.file_name().to_string_lossy().into_owned();
            if uids.iter().any(|uid| name.contains(uid.as_str())) {
                found.push(child.path().display().to_string());
            } else {
                stack.push(child.path());
            }
        }
    }
    found
}

/// Waits until the three active pods run `image` and serve `release`;
/// returns them.
fn serve_release(cluster: &Cluster, image: &str, release: &str) -> Vec<Value> {
    let pods = cluster.eventually(
        &format!("3 Ready pods running {image}"),
        Duration::from_secs(60),
        || {
            let pods = cluster.ready_pods("app=web", 3);
            let images: Vec<&str> = pods
                .iter()
                .map(|p| {
                    p["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or_default()
                })
                .collect();
            if images.iter().all(|i| *i == image) {
                Ok(pods)
            } else {
                Err(format!("images {images:?}"))
            }
        },
    );
    for pod in &pods {
        assert_eq!(
            cluster.http_from_pod(pod, "/etc/skiff-release").trim(),
            release,
            "{}",
            name(pod)
        );
    }
    pods
}

/// The name of the Deployment's only ReplicaSet.
fn only_replicaset(cluster: &Cluster) -> String {
    let all = replicasets_now(cluster);
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].0.clone()
}

/// Waits until the old ReplicaSets are scaled down (a rollout done);
/// returns (name, spec.replicas) of each.
fn replicasets(cluster: &Cluster) -> Vec<(String, i64)> {
    cluster.eventually(
        "one ReplicaSet with replicas, the others at 0",
        Duration::from_secs(30),
        || {
            let all = replicasets_now(cluster);
            let scaled = all.iter().filter(|(_, r)| *r > 0).count();
            if scaled == 1 {
                Ok(all)
            } else {
                Err(format!("{all:?}"))
            }
        },
    )
}

fn replicasets_now(cluster: &Cluster) -> Vec<(String, i64)> {
    items(&cluster.json(&["get", "replicasets", "-l", "app=web"]))
        .iter()
        .map(|rs| {
            (
                name(rs).to_string(),
                rs["spec"]["replicas"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// The REVISION column of `kubectl rollout history`.
fn revisions(history: &str) -> Vec<String> {
    let after_header = history
        .split_once("REVISION")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    table(&format!("REVISION{after_header}"))
        .iter()
        .map(|row| row["REVISION"].clone())
        .collect()
}
