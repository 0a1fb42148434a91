//! Pods and pod templates.

use serde_json::Value;
use time::OffsetDateTime;

use super::super::descriptions as d;
use super::super::format::{
    age, arr_at, container_cells, format_labels, human_duration, int_at, or, parse_time, str_at,
};
use super::{AGE, Column, NAME, col, has_condition, name, s, wide};

fn max_time(current: &mut Option<OffsetDateTime>, candidate: Option<&Value>) {
    if let Some(at) = candidate.and_then(Value::as_str).and_then(parse_time)
        && current.is_none_or(|c| c < at)
    {
        *current = Some(at);
    }
}

pub(super) const POD: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", d::POD_STATUS_POD_IP),
    wide("Node", "string", d::POD_SPEC_NODE_NAME),
    wide(
        "Nominated Node",
        "string",
        d::POD_STATUS_NOMINATED_NODE_NAME,
    ),
    wide("Readiness Gates", "string", d::POD_SPEC_READINESS_GATES),
];

fn terminated_reason(t: &Value, prefix: &str) -> String {
    let reason = str_at(t, "/reason");
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = int_at(t, "/signal");
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int_at(t, "/exitCode"))
    }
}

pub(super) fn pod(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let init_specs = arr_at(o, "/spec/initContainers");
    let restartable = |n: &str| {
        init_specs
            .iter()
            .any(|c| str_at(c, "/name") == n && str_at(c, "/restartPolicy") == "Always")
    };
    let total = arr_at(o, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| str_at(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut restartable_restarts = 0i64;
    let mut last_restart: Option<OffsetDateTime> = None;
    let mut last_restartable_restart: Option<OffsetDateTime> = None;

    let phase = str_at(o, "/status/phase");
    let mut reason = or(str_at(o, "/status/reason"), phase);
    for c in arr_at(o, "/status/conditions") {
        if str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated" {
            reason = "SchedulingGated".to_string();
        }
    }

    let mut initializing = false;
    for (i, c) in arr_at(o, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        restarts += int_at(c, "/restartCount");
        let finished = c.pointer("/lastState/terminated/finishedAt");
        max_time(&mut last_restart, finished);
        let is_restartable = restartable(str_at(c, "/name"));
        if is_restartable {
            restartable_restarts += int_at(c, "/restartCount");
            max_time(&mut last_restartable_restart, finished);
        }
        let terminated = c.pointer("/state/terminated").filter(|t| t.is_object());
        let waiting_reason = c
            .pointer("/state/waiting")
            .filter(|w| w.is_object())
            .map(|w| str_at(w, "/reason"));
        if terminated.is_some_and(|t| int_at(t, "/exitCode") == 0) {
            continue;
        }
        if is_restartable && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = match (terminated, waiting_reason) {
            (Some(t), _) => terminated_reason(t, "Init:"),
            (None, Some(w)) if !w.is_empty() && w != "PodInitializing" => format!("Init:{w}"),
            _ => format!("Init:{i}/{}", init_specs.len()),
        };
        initializing = true;
        break;
    }

    if !initializing || has_condition(o, "/status/conditions", "Initialized") {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for c in arr_at(o, "/status/containerStatuses").iter().rev() {
            restarts += int_at(c, "/restartCount");
            max_time(
                &mut last_restart,
                c.pointer("/lastState/terminated/finishedAt"),
            );
            let waiting = c.pointer("/state/waiting").filter(|w| w.is_object());
            let terminated = c.pointer("/state/terminated").filter(|t| t.is_object());
            let running = c.pointer("/state/running").is_some_and(Value::is_object);
            if let Some(w) = waiting.filter(|w| !str_at(w, "/reason").is_empty()) {
                reason = str_at(w, "/reason").to_string();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
            } else if c.get("ready").and_then(Value::as_bool) == Some(true) && running {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_condition(o, "/status/conditions", "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .to_string();
        }
    }

    let deleting = o
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    if deleting && str_at(o, "/status/reason") == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let mut restarts_text = restarts.to_string();
    if let (true, Some(at)) = (restarts != 0, last_restart) {
        restarts_text = format!("{restarts} ({} ago)", human_duration(now - at));
    }

    let pod_ip = match o.pointer("/status/podIPs/0/ip").and_then(Value::as_str) {
        Some(ip) => ip,
        None => str_at(o, "/status/podIP"),
    };
    let gates = arr_at(o, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr_at(o, "/status/conditions");
        let true_count = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| str_at(c, "/type") == str_at(g, "/conditionType"))
                    .is_some_and(|c| str_at(c, "/status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        name(o),
        s(format!("{ready}/{total}")),
        s(reason),
        s(restarts_text),
        s(age(o, now)),
        s(or(pod_ip, "<none>")),
        s(or(str_at(o, "/spec/nodeName"), "<none>")),
        s(or(str_at(o, "/status/nominatedNodeName"), "<none>")),
        s(readiness_gates),
    ]
}

pub(super) const POD_TEMPLATE: &[Column] = &[
    NAME,
    col(
        "Containers",
        "string",
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    ),
    col("Pod Labels", "string", "The labels for the pod template."),
];

pub(super) fn pod_template(o: &Value, _now: OffsetDateTime) -> Vec<Value> {
    let (names, images) = container_cells(o.pointer("/template/spec").unwrap_or(&Value::Null));
    vec![
        name(o),
        s(names),
        s(images),
        s(format_labels(o.pointer("/template/metadata/labels"))),
    ]
}
