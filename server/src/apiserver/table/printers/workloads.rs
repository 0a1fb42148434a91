//! Workloads: controllers, jobs and revisions.

use serde_json::Value;
use time::OffsetDateTime;

use super::super::descriptions as d;
use super::super::format::{
    age, arr_at, container_cells, format_label_selector, format_labels, human_duration, int_at, or,
    parse_time, selector_string, since, str_at,
};
use super::{AGE, CONTAINERS, Column, IMAGES, NAME, col, has_condition, name, s, wide};

fn template_spec(o: &Value) -> &Value {
    o.pointer("/spec/template/spec").unwrap_or(&Value::Null)
}

/// `spec.replicas`, defaulted to 1 as the v1 API does.
fn desired_replicas(o: &Value) -> i64 {
    o.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

pub(super) const REPLICATION_CONTROLLER: &[Column] = &[
    NAME,
    col("Desired", "integer", d::RC_SPEC_REPLICAS),
    col("Current", "integer", d::RC_STATUS_REPLICAS),
    col("Ready", "integer", d::RC_STATUS_READY_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::RC_SPEC_SELECTOR),
];

pub(super) fn replication_controller(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let (names, images) = container_cells(template_spec(o));
    vec![
        name(o),
        Value::from(desired_replicas(o)),
        Value::from(int_at(o, "/status/replicas")),
        Value::from(int_at(o, "/status/readyReplicas")),
        s(age(o, now)),
        s(names),
        s(images),
        s(format_labels(o.pointer("/spec/selector"))),
    ]
}

pub(super) const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", d::DEPLOY_STATUS_UPDATED),
    col("Available", "string", d::DEPLOY_STATUS_AVAILABLE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::DEPLOY_SPEC_SELECTOR),
];

pub(super) fn deployment(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let (names, images) = container_cells(template_spec(o));
    vec![
        name(o),
        s(format!(
            "{}/{}",
            int_at(o, "/status/readyReplicas"),
            desired_replicas(o)
        )),
        Value::from(int_at(o, "/status/updatedReplicas")),
        Value::from(int_at(o, "/status/availableReplicas")),
        s(age(o, now)),
        s(names),
        s(images),
        s(selector_string(o.pointer("/spec/selector"))),
    ]
}

pub(super) const REPLICA_SET: &[Column] = &[
    NAME,
    col("Desired", "integer", d::RS_SPEC_REPLICAS),
    col("Current", "integer", d::RS_STATUS_REPLICAS),
    col("Ready", "integer", d::RS_STATUS_READY_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::RS_SPEC_SELECTOR),
];

pub(super) fn replica_set(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let (names, images) = container_cells(template_spec(o));
    vec![
        name(o),
        Value::from(desired_replicas(o)),
        Value::from(int_at(o, "/status/replicas")),
        Value::from(int_at(o, "/status/readyReplicas")),
        s(age(o, now)),
        s(names),
        s(images),
        s(format_label_selector(o.pointer("/spec/selector"))),
    ]
}

pub(super) const STATEFUL_SET: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

pub(super) fn stateful_set(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let (names, images) = container_cells(template_spec(o));
    vec![
        name(o),
        s(format!(
            "{}/{}",
            int_at(o, "/status/readyReplicas"),
            desired_replicas(o)
        )),
        s(age(o, now)),
        s(names),
        s(images),
    ]
}

pub(super) const DAEMON_SET: &[Column] = &[
    NAME,
    col("Desired", "integer", d::DS_STATUS_DESIRED),
    col("Current", "integer", d::DS_STATUS_CURRENT),
    col("Ready", "integer", d::DS_STATUS_READY),
    col("Up-to-date", "integer", d::DS_STATUS_UPDATED),
    col("Available", "integer", d::DS_STATUS_AVAILABLE),
    col("Node Selector", "string", d::POD_SPEC_NODE_SELECTOR),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::DS_SPEC_SELECTOR),
];

pub(super) fn daemon_set(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let (names, images) = container_cells(template_spec(o));
    vec![
        name(o),
        Value::from(int_at(o, "/status/desiredNumberScheduled")),
        Value::from(int_at(o, "/status/currentNumberScheduled")),
        Value::from(int_at(o, "/status/numberReady")),
        Value::from(int_at(o, "/status/updatedNumberScheduled")),
        Value::from(int_at(o, "/status/numberAvailable")),
        s(format_labels(o.pointer("/spec/template/spec/nodeSelector"))),
        s(age(o, now)),
        s(names),
        s(images),
        s(format_label_selector(o.pointer("/spec/selector"))),
    ]
}

pub(super) const CONTROLLER_REVISION: &[Column] = &[
    NAME,
    col("Controller", "string", "Controller of the object"),
    col("Revision", "string", d::CONTROLLER_REVISION_REVISION),
    AGE,
];

pub(super) fn controller_revision(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let controller = arr_at(o, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            let group = str_at(r, "/apiVersion")
                .rsplit_once('/')
                .map(|(g, _)| g)
                .unwrap_or_default();
            let kind = str_at(r, "/kind");
            let group_kind = if group.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}.{group}")
            };
            if group_kind.is_empty() {
                str_at(r, "/name").to_string()
            } else {
                format!("{}/{}", group_kind.to_lowercase(), str_at(r, "/name"))
            }
        })
        .unwrap_or_else(|| "<none>".to_string());
    vec![
        name(o),
        s(controller),
        Value::from(int_at(o, "/revision")),
        s(age(o, now)),
    ]
}

pub(super) const JOB: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", d::JOB_STATUS_SUCCEEDED),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::JOB_SPEC_SELECTOR),
];

pub(super) fn job(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let succeeded = int_at(o, "/status/succeeded");
    let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match o
            .pointer("/spec/parallelism")
            .and_then(Value::as_i64)
            .unwrap_or(0)
        {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = o
        .pointer("/status/startTime")
        .and_then(Value::as_str)
        .and_then(parse_time);
    let end = o
        .pointer("/status/completionTime")
        .and_then(Value::as_str)
        .and_then(parse_time);
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let conditions = "/status/conditions";
    let status = if has_condition(o, conditions, "Complete") {
        "Complete"
    } else if has_condition(o, conditions, "Failed") {
        "Failed"
    } else if o
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        "Terminating"
    } else if has_condition(o, conditions, "Suspended") {
        "Suspended"
    } else if has_condition(o, conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = container_cells(template_spec(o));
    vec![
        name(o),
        s(status),
        s(completions),
        s(duration),
        s(age(o, now)),
        s(names),
        s(images),
        s(format_label_selector(o.pointer("/spec/selector"))),
    ]
}

pub(super) const CRON_JOB: &[Column] = &[
    NAME,
    col("Schedule", "string", d::CRONJOB_SPEC_SCHEDULE),
    col("Timezone", "string", d::CRONJOB_SPEC_TIME_ZONE),
    col("Suspend", "boolean", d::CRONJOB_SPEC_SUSPEND),
    col("Active", "integer", d::CRONJOB_STATUS_ACTIVE),
    col("Last Schedule", "string", d::CRONJOB_STATUS_LAST_SCHEDULE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::JOB_SPEC_SELECTOR),
];

pub(super) fn cron_job(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let last_schedule = match o
        .pointer("/status/lastScheduleTime")
        .filter(|t| !t.is_null())
    {
        Some(t) => since(now, Some(t)),
        None => "<none>".to_string(),
    };
    let suspend = match o.pointer("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let job_template = o.pointer("/spec/jobTemplate").unwrap_or(&Value::Null);
    let (names, images) = container_cells(
        job_template
            .pointer("/spec/template/spec")
            .unwrap_or(&Value::Null),
    );
    vec![
        name(o),
        Value::from(str_at(o, "/spec/schedule")),
        s(or(str_at(o, "/spec/timeZone"), "<none>")),
        s(suspend),
        Value::from(arr_at(o, "/status/active").len()),
        s(last_schedule),
        s(age(o, now)),
        s(names),
        s(images),
        s(format_label_selector(
            job_template.pointer("/spec/selector"),
        )),
    ]
}
