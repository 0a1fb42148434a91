//! Workload kinds: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job,
//! CronJob, ReplicationController, PodTemplate, HorizontalPodAutoscaler.
//! Each pod template gets the PodSpec defaults (not the Pod-only ones).

use serde_json::{Value, json};

use super::{
    child, cluster, default_str, default_value, empty_map, existing, items, pod, str_of, unset,
};

/// The labels the Job strategy puts on a Job's pod template.
const JOB_UID_LABELS: [&str; 2] = ["batch.kubernetes.io/controller-uid", "controller-uid"];
const JOB_NAME_LABELS: [&str; 2] = ["batch.kubernetes.io/job-name", "job-name"];

/// `spec.template` of a workload, made when absent (a Go struct).
fn spec_template(spec: &mut Value) {
    if let Some(template) = child(spec, "template") {
        pod::template(template);
    }
}

/// PodTemplate: its template.
pub(super) fn pod_template(obj: &mut Value) {
    if let Some(template) = child(obj, "template") {
        pod::template(template);
    }
}

/// ReplicationController: replicas 1; selector and labels from the
/// template's labels when empty.
pub(super) fn replication_controller(obj: &mut Value) {
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned();
    if let Some(labels) = template_labels {
        if let Some(spec) = child(obj, "spec")
            && empty_map(spec, "selector")
            && let Some(map) = spec.as_object_mut()
        {
            map.insert("selector".into(), labels.clone());
        }
        if let Some(meta) = child(obj, "metadata")
            && empty_map(meta, "labels")
            && let Some(map) = meta.as_object_mut()
        {
            map.insert("labels".into(), labels);
        }
    }
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    if let Some(template) = existing(spec, "template") {
        pod::template(template);
    }
}

/// Deployment: replicas 1, RollingUpdate 25%/25%, 10 revisions kept, 600 s
/// progress deadline.
pub(super) fn deployment(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if str_of(strategy, "type") == "RollingUpdate"
            && let Some(rolling) = child(strategy, "rollingUpdate")
        {
            default_value(rolling, "maxUnavailable", json!("25%"));
            default_value(rolling, "maxSurge", json!("25%"));
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    default_value(spec, "progressDeadlineSeconds", json!(600));
    spec_template(spec);
}

/// ReplicaSet: replicas 1.
pub(super) fn replica_set(obj: &mut Value) {
    if let Some(spec) = child(obj, "spec") {
        default_value(spec, "replicas", json!(1));
        spec_template(spec);
    }
}

/// StatefulSet: replicas 1, OrderedReady, RollingUpdate with partition 0,
/// claims retained, 10 revisions kept, claim templates defaulted.
pub(super) fn stateful_set(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = child(spec, "updateStrategy") {
        if str_of(strategy, "type").is_empty() {
            default_str(strategy, "type", "RollingUpdate");
            default_value(strategy, "rollingUpdate", json!({}));
        }
        if str_of(strategy, "type") == "RollingUpdate"
            && let Some(rolling) = existing(strategy, "rollingUpdate")
        {
            default_value(rolling, "partition", json!(0));
        }
    }
    if let Some(retention) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        default_str(retention, "whenDeleted", "Retain");
        default_str(retention, "whenScaled", "Retain");
    }
    default_value(spec, "replicas", json!(1));
    default_value(spec, "revisionHistoryLimit", json!(10));
    for claim in items(spec, "volumeClaimTemplates") {
        if let Some(claim_spec) = child(claim, "spec") {
            cluster::claim_spec(claim_spec);
        }
        cluster::claim_status(claim);
    }
    spec_template(spec);
}

/// DaemonSet: RollingUpdate with maxUnavailable 1 and maxSurge 0, 10
/// revisions kept.
pub(super) fn daemon_set(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if let Some(strategy) = child(spec, "updateStrategy") {
        default_str(strategy, "type", "RollingUpdate");
        if str_of(strategy, "type") == "RollingUpdate"
            && let Some(rolling) = child(strategy, "rollingUpdate")
        {
            default_value(rolling, "maxUnavailable", json!(1));
            default_value(rolling, "maxSurge", json!(0));
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    spec_template(spec);
}

/// Job: `SetDefaults_Job`, then (unless `manualSelector`) the selector and
/// template labels the Job strategy makes from the uid and name on create,
/// then the Job's labels from its template's, as a read back would show.
pub(super) fn job(obj: &mut Value) {
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if unset(spec, "completions") && unset(spec, "parallelism") {
        default_value(spec, "completions", json!(1));
    }
    default_value(spec, "parallelism", json!(1));
    let backoff = if unset(spec, "backoffLimitPerIndex") {
        6
    } else {
        i64::from(i32::MAX)
    };
    default_value(spec, "backoffLimit", json!(backoff));
    default_value(spec, "completionMode", json!("NonIndexed"));
    default_value(spec, "suspend", json!(false));
    let replacement = if unset(spec, "podFailurePolicy") {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    default_value(spec, "podReplacementPolicy", json!(replacement));
    default_value(spec, "manualSelector", json!(false));
    job_spec(spec);
    labels_from_template(obj);
    let manual = obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
    if !manual && !uid.is_empty() {
        generate_selector(obj, &uid, &name);
    }
    labels_from_template(obj);
}

/// What a Job and a CronJob's job template share: the pod template and
/// the pod failure policy's condition patterns (status True).
fn job_spec(spec: &mut Value) {
    if let Some(policy) = existing(spec, "podFailurePolicy") {
        for rule in items(policy, "rules") {
            for pattern in items(rule, "onPodConditions") {
                default_str(pattern, "status", "True");
            }
        }
    }
    spec_template(spec);
}

/// A Job's labels default to its template's when it has none.
fn labels_from_template(obj: &mut Value) {
    let Some(labels) = obj
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned()
    else {
        return;
    };
    if let Some(meta) = child(obj, "metadata")
        && empty_map(meta, "labels")
        && let Some(map) = meta.as_object_mut()
    {
        map.insert("labels".into(), labels);
    }
}

/// The Job strategy's selector: the template labeled with the uid and
/// name (unless set), the selector matching the uid label.
fn generate_selector(obj: &mut Value, uid: &str, name: &str) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    if let Some(labels) = child(spec, "template")
        .and_then(|t| child(t, "metadata"))
        .and_then(|m| child(m, "labels"))
        .and_then(Value::as_object_mut)
    {
        for (keys, value) in [(JOB_NAME_LABELS, name), (JOB_UID_LABELS, uid)] {
            for key in keys {
                labels.entry(key).or_insert_with(|| json!(value));
            }
        }
    }
    if let Some(match_labels) = child(spec, "selector")
        .and_then(|s| child(s, "matchLabels"))
        .and_then(Value::as_object_mut)
    {
        match_labels
            .entry(JOB_UID_LABELS[0])
            .or_insert_with(|| json!(uid));
    }
}

/// CronJob: Allow, not suspended, 3 successful and 1 failed job kept; the
/// job template's pod template (not the Job defaults).
pub(super) fn cron_job(obj: &mut Value) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_str(spec, "concurrencyPolicy", "Allow");
    default_value(spec, "suspend", json!(false));
    default_value(spec, "successfulJobsHistoryLimit", json!(3));
    default_value(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec_value) = child(spec, "jobTemplate").and_then(|t| child(t, "spec")) {
        job_spec(job_spec_value);
    }
}

/// HorizontalPodAutoscaler (autoscaling/v2): min 1 replica, 80% CPU when
/// no metric is given, and a given `behavior` completed with the default
/// scaling rules.
pub(super) fn horizontal_pod_autoscaler(obj: &mut Value) {
    let v1 = str_of(obj, "apiVersion") == "autoscaling/v1";
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_value(spec, "minReplicas", json!(1));
    if v1 {
        return;
    }
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
        && let Some(map) = spec.as_object_mut()
    {
        map.insert(
            "metrics".into(),
            json!([{
                "type": "Resource",
                "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 80 } },
            }]),
        );
    }
    if let Some(behavior) = existing(spec, "behavior") {
        let up = json!({
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                { "type": "Pods", "value": 4, "periodSeconds": 15 },
                { "type": "Percent", "value": 100, "periodSeconds": 15 },
            ],
        });
        let down = json!({
            "selectPolicy": "Max",
            "policies": [{ "type": "Percent", "value": 100, "periodSeconds": 15 }],
        });
        for (key, defaults) in [("scaleUp", up), ("scaleDown", down)] {
            if let Some(rules) = child(behavior, key)
                && let Some(defaults) = defaults.as_object()
            {
                for (field, value) in defaults {
                    default_value(rules, field, value.clone());
                }
            }
        }
    }
}
