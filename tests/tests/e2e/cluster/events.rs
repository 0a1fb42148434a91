//! `kubectl get events` and `kubectl describe` tell a Deployment's story:
//! ScalingReplicaSet, SuccessfulCreate, Scheduled, Pulling, Pulled,
//! Created, Started, with the upstream components' names and messages.

use std::time::Duration;

use skiff_tests::Fixture;

use super::{
    Cluster, HTTPD, assert_contains, described, described_events, event_lines, events, events_for,
    name, table,
};

#[test]
fn events_and_describe_tell_a_pods_story() {
    let cluster = Cluster::start("story-node");
    let image = cluster.image(Fixture::Busybox);
    cluster.kubectl(&[
        "create",
        "deployment",
        "web",
        &format!("--image={image}"),
        "--",
        "sh",
        "-c",
        HTTPD,
    ]);
    cluster.rollout_status("web");
    let pods = cluster.ready_pods("app=web", 1);
    let pod = name(&pods[0]).to_string();
    let pod_ip = cluster.pod_ip(&pods[0]);
    let rs = pods[0]["metadata"]["ownerReferences"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(rs.starts_with("web-"), "owner {rs:?}");

    // The events, as objects: the kubelet's arrive asynchronously.
    let all = cluster.eventually(
        "the whole story in the events",
        Duration::from_secs(30),
        || {
            let all = events(&cluster);
            let wanted = [
                ("Deployment", "web", "ScalingReplicaSet"),
                ("ReplicaSet", rs.as_str(), "SuccessfulCreate"),
                ("Pod", pod.as_str(), "Scheduled"),
                ("Pod", pod.as_str(), "Pulling"),
                ("Pod", pod.as_str(), "Pulled"),
                ("Pod", pod.as_str(), "Created"),
                ("Pod", pod.as_str(), "Started"),
            ];
            let missing: Vec<_> = wanted
                .iter()
                .filter(|(kind, object, reason)| events_for(&all, kind, object, reason).is_empty())
                .collect();
            if missing.is_empty() {
                Ok(all)
            } else {
                Err(format!("missing {missing:?} among:\n{}", event_lines(&all)))
            }
        },
    );
    let message = |kind: &str, object: &str, reason: &str| -> String {
        let found = events_for(&all, kind, object, reason);
        assert_eq!(
            found[0]["type"],
            "Normal",
            "{kind}/{object} {reason}:\n{}",
            event_lines(&all)
        );
        found[0]["message"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(
        message("Deployment", "web", "ScalingReplicaSet"),
        format!("Scaled up replica set {rs} from 0 to 1")
    );
    assert_eq!(
        message("ReplicaSet", &rs, "SuccessfulCreate"),
        format!("Created pod: {pod}")
    );
    assert_eq!(
        message("Pod", &pod, "Scheduled"),
        format!(
            "Successfully assigned default/{pod} to {}",
            cluster.node_name
        )
    );
    // `latest` is pulled every time (imagePullPolicy Always).
    assert_eq!(
        message("Pod", &pod, "Pulling"),
        format!("Pulling image \"{image}\"")
    );
    let pulled = message("Pod", &pod, "Pulled");
    assert!(
        pulled.starts_with(&format!("Successfully pulled image \"{image}\" in "))
            || pulled == format!("Container image \"{image}\" already present on machine"),
        "Pulled: {pulled}"
    );
    assert!(
        message("Pod", &pod, "Created").starts_with("Created container"),
        "{}",
        event_lines(&all)
    );
    assert_contains(&message("Pod", &pod, "Created"), "busybox");
    assert!(
        message("Pod", &pod, "Started").starts_with("Started container"),
        "{}",
        event_lines(&all)
    );
    assert_contains(&message("Pod", &pod, "Started"), "busybox");
    for (reason, component) in [("Scheduled", "default-scheduler"), ("Started", "kubelet")] {
        let event = events_for(&all, "Pod", &pod, reason)[0];
        let from = event["source"]["component"]
            .as_str()
            .filter(|c| !c.is_empty())
            .or(event["reportingComponent"].as_str())
            .unwrap_or_default();
        assert_eq!(from, component, "{reason}: {event}");
    }
    let started = events_for(&all, "Pod", &pod, "Started")[0];
    assert_eq!(
        started["involvedObject"]["fieldPath"], "spec.containers{busybox}",
        "{started}"
    );

    // `kubectl get events`: the table users read.
    let text = cluster.kubectl(&["get", "events"]);
    let header: Vec<&str> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{text}"
    );
    let rows = table(&text);
    for (object, reason) in [
        ("deployment/web".to_string(), "ScalingReplicaSet"),
        (format!("replicaset/{rs}"), "SuccessfulCreate"),
        (format!("pod/{pod}"), "Scheduled"),
        (format!("pod/{pod}"), "Pulling"),
        (format!("pod/{pod}"), "Pulled"),
        (format!("pod/{pod}"), "Created"),
        (format!("pod/{pod}"), "Started"),
    ] {
        assert!(
            rows.iter()
                .any(|r| r["OBJECT"] == object && r["REASON"] == reason && r["TYPE"] == "Normal"),
            "no {reason} for {object} in:\n{text}"
        );
    }

    // `kubectl describe pod`.
    let text = cluster.kubectl(&["describe", "pod", &pod]);
    assert_eq!(described(&text, "Name"), Some(pod.as_str()), "{text}");
    assert_eq!(described(&text, "Namespace"), Some("default"), "{text}");
    assert_eq!(
        described(&text, "Node"),
        Some(format!("{}/127.0.0.1", cluster.node_name).as_str()),
        "{text}"
    );
    assert_eq!(described(&text, "Status"), Some("Running"), "{text}");
    assert_eq!(described(&text, "IP"), Some(pod_ip.as_str()), "{text}");
    assert_eq!(
        described(&text, "Controlled By"),
        Some(format!("ReplicaSet/{rs}").as_str()),
        "{text}"
    );
    assert_eq!(described(&text, "Image"), Some(image.as_str()), "{text}");
    assert_eq!(described(&text, "State"), Some("Running"), "{text}");
    assert_eq!(described(&text, "Ready"), Some("True"), "{text}");
    assert_eq!(described(&text, "Restart Count"), Some("0"), "{text}");
    assert!(
        described(&text, "Container ID").is_some_and(|id| id.starts_with("skiff://")),
        "{text}"
    );
    assert!(
        described(&text, "Image ID").is_some_and(|id| id.contains("@sha256:")),
        "{text}"
    );
    let story = described_events(&text);
    for (reason, from, message) in [
        (
            "Scheduled",
            "default-scheduler",
            format!(
                "Successfully assigned default/{pod} to {}",
                cluster.node_name
            ),
        ),
        ("Pulling", "kubelet", format!("Pulling image \"{image}\"")),
        ("Pulled", "kubelet", String::new()),
        ("Created", "kubelet", "Created container".to_string()),
        ("Started", "kubelet", "Started container".to_string()),
    ] {
        assert!(
            story.iter().any(|row| row["Type"] == "Normal"
                && row["Reason"] == reason
                && row["From"] == from
                && row["Message"].starts_with(&message)),
            "no {reason} from {from} ({message}) in:\n{text}"
        );
    }
    // In the order they happened.
    let order: Vec<&str> = story.iter().map(|row| row["Reason"].as_str()).collect();
    let position = |reason: &str| order.iter().position(|r| *r == reason);
    assert!(
        position("Scheduled") < position("Pulling")
            && position("Pulling") < position("Pulled")
            && position("Pulled") < position("Created")
            && position("Created") < position("Started"),
        "{order:?}"
    );

    // `kubectl describe` of the Deployment and the ReplicaSet.
    let text = cluster.kubectl(&["describe", "deployment", "web"]);
    assert_eq!(
        described(&text, "NewReplicaSet").map(|v| v.starts_with(&rs)),
        Some(true),
        "{text}"
    );
    let story = described_events(&text);
    assert!(
        story.iter().any(|row| row["Reason"] == "ScalingReplicaSet"
            && row["From"] == "deployment-controller"
            && row["Message"] == format!("Scaled up replica set {rs} from 0 to 1")),
        "{text}"
    );
    let text = cluster.kubectl(&["describe", "replicaset", &rs]);
    assert_eq!(
        described(&text, "Pods Status"),
        Some("1 Running / 0 Waiting / 0 Succeeded / 0 Failed"),
        "{text}"
    );
    let story = described_events(&text);
    assert!(
        story.iter().any(|row| row["Reason"] == "SuccessfulCreate"
            && row["From"] == "replicaset-controller"
            && row["Message"] == format!("Created pod: {pod}")),
        "{text}"
    );
}
