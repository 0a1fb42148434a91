//! The pod status kubelet reports, computed from the runtime's view of the
//! pod (pure): phase, conditions, addresses, QoS class and container
//! statuses with their states, last states, readiness and restart counts.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
    VolumeMountStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::resources::qos_class;
use super::snapshot::{ContainerInfo, PodSnapshot};

/// Why a container waits, as the last sync found (ErrImagePull,
/// CrashLoopBackOff, CreateContainerConfigError, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The reason kubectl shows.
    pub reason: String,
    /// The details.
    pub message: String,
}

impl Waiting {
    /// A waiting reason with its message.
    pub fn new(reason: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// What the probes say about one running container instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// The readiness probe succeeded (last result).
    pub ready: bool,
    /// The startup probe succeeded.
    pub started: bool,
}

/// Everything the status is computed from.
#[derive(Debug)]
pub struct StatusInput<'a> {
    /// The pod as the API has it (spec, and the status written before).
    pub pod: &'a Pod,
    /// The runtime's view.
    pub snapshot: &'a PodSnapshot,
    /// The node's IP.
    pub host_ip: &'a str,
    /// The runtime's name, the scheme of container IDs.
    pub runtime_name: &'a str,
    /// Waiting reasons by container name.
    pub waiting: &'a HashMap<String, Waiting>,
    /// Probe results by container ID.
    pub health: &'a HashMap<String, Health>,
    /// The pod is terminating or done: containers will not restart.
    pub terminal: bool,
    /// Now, for times that start with this status.
    pub now: Timestamp,
}

/// A time as the API stores it (whole seconds).
pub fn api_time(ts: Timestamp) -> Time {
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

fn time_of_nanos(ns: i64) -> Option<Time> {
    (ns > 0)
        .then(|| Timestamp::from_second(ns / 1_000_000_000).ok())
        .flatten()
        .map(Time)
}

/// Whether an init container is a sidecar (`restartPolicy: Always`).
pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// Whether the pod's restart policy restarts a container that exited
/// with `exit_code`.
pub fn should_restart(restart_policy: &str, exit_code: i32) -> bool {
    match restart_policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// The pod status.
pub fn pod_status(input: &StatusInput<'_>) -> PodStatus {
    let pod = input.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let init_containers = spec.init_containers.clone().unwrap_or_default();
    let has_init = !init_containers.is_empty();
    let init_statuses: Vec<ContainerStatus> = init_containers
        .iter()
        .map(|c| container_status(input, c, has_init))
        .collect();
    let mut statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(input, c, has_init))
        .collect();
    statuses.sort_by(|a, b| a.name.cmp(&b.name));

    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let mut phase = phase(
        &init_containers,
        &spec.containers,
        &init_statuses,
        &statuses,
        restart_policy,
        input.terminal,
    );
    if let Some(old_phase @ ("Succeeded" | "Failed")) = old.phase.as_deref() {
        phase = old_phase;
    }

    let all: Vec<&ContainerStatus> = init_statuses.iter().chain(&statuses).collect();
    let host_network = spec.host_network.unwrap_or(false);
    let pod_ip = if host_network {
        Some(input.host_ip.to_owned())
    } else {
        input.snapshot.pod_ip().map(str::to_owned)
    };
    let sandbox_ready =
        input.snapshot.sandbox().is_some_and(|s| s.ready) && (host_network || pod_ip.is_some());

    let mut conditions = vec![
        condition("PodReadyToStartContainers", sandbox_ready, "", ""),
        initialized_condition(&init_containers, &spec.containers, &all, phase),
    ];
    let containers_ready =
        containers_ready_condition(&init_containers, &spec.containers, &all, phase);
    conditions.push(ready_condition(pod, &containers_ready, &old));
    conditions.push(containers_ready);
    conditions.push(condition("PodScheduled", true, "", ""));
    let kubelet_owned = |t: &str| {
        matches!(
            t,
            "PodScheduled"
                | "Ready"
                | "Initialized"
                | "ContainersReady"
                | "PodReadyToStartContainers"
        )
    };
    let mut all_conditions: Vec<PodCondition> = old
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !kubelet_owned(&c.type_))
        .collect();
    for mut c in conditions {
        let previous = old.conditions.iter().flatten().find(|o| o.type_ == c.type_);
        c.last_transition_time = match previous {
            Some(p) if p.status == c.status => p.last_transition_time.clone(),
            _ => Some(api_time(input.now)),
        };
        all_conditions.push(c);
    }

    let (pod_ip, pod_ips) = match pod_ip {
        Some(ip) => (Some(ip.clone()), Some(vec![PodIP { ip }])),
        None => (old.pod_ip.clone(), old.pod_ips.clone()),
    };
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(all_conditions),
        host_ip: Some(input.host_ip.to_owned()),
        host_ips: Some(vec![HostIP {
            ip: input.host_ip.to_owned(),
        }]),
        pod_ip,
        pod_ips,
        start_time: old.start_time.clone().or_else(|| Some(api_time(input.now))),
        qos_class: Some(qos_class(pod).to_owned()),
        init_container_statuses: has_init.then_some(init_statuses),
        container_statuses: Some(statuses),
        message: old.message.clone(),
        reason: old.reason.clone(),
        nominated_node_name: old.nominated_node_name.clone(),
        ..Default::default()
    }
}

fn condition(type_: &str, ok: bool, reason: &str, message: &str) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        message: (!message.is_empty()).then(|| message.to_owned()),
        ..Default::default()
    }
}

/// `[a b]`, as Go prints a string slice.
fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

fn waiting_state(reason: &str, message: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: (!reason.is_empty()).then(|| reason.to_owned()),
            message: (!message.is_empty()).then(|| message.to_owned()),
        }),
        ..Default::default()
    }
}

fn container_id(input: &StatusInput<'_>, info: &ContainerInfo) -> String {
    format!("{}://{}", input.runtime_name, info.id())
}

fn terminated_state(input: &StatusInput<'_>, info: &ContainerInfo) -> ContainerState {
    let reason = if info.status.reason.is_empty() {
        if info.exit_code() == 0 {
            "Completed"
        } else {
            "Error"
        }
        .to_owned()
    } else {
        info.status.reason.clone()
    };
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: Some(container_id(input, info)),
            exit_code: info.exit_code(),
            reason: Some(reason),
            message: (!info.termination_message.is_empty())
                .then(|| info.termination_message.clone()),
            started_at: time_of_nanos(info.status.started_at),
            finished_at: time_of_nanos(info.status.finished_at),
            signal: None,
        }),
        ..Default::default()
    }
}

fn normalized_image(image: &str) -> String {
    image
        .parse::<skiff_images::reference::Reference>()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| image.to_owned())
}

fn container_status(input: &StatusInput<'_>, c: &Container, has_init: bool) -> ContainerStatus {
    let current = input.snapshot.current(&c.name);
    let previous = input.snapshot.previous(&c.name);
    let default_reason = if has_init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let mut state = match current {
        None => waiting_state(default_reason, ""),
        Some(info) if info.running() => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time_of_nanos(info.status.started_at),
            }),
            ..Default::default()
        },
        Some(info) if info.exited() => terminated_state(input, info),
        Some(_) => waiting_state("ContainerCreating", ""),
    };
    let mut last_state = previous
        .filter(|p| p.exited())
        .map(|p| terminated_state(input, p));
    let running = current.is_some_and(ContainerInfo::running);
    if let Some(waiting) = input.waiting.get(&c.name)
        && !running
    {
        if state.terminated.is_some() {
            last_state = Some(state);
        }
        state = waiting_state(&waiting.reason, &waiting.message);
    }
    let health = current.and_then(|info| input.health.get(info.id()));
    let started = running && health.map_or(c.startup_probe.is_none(), |h| h.started);
    let ready = started && health.map_or(c.readiness_probe.is_none(), |h| h.ready);
    let volume_mounts = current.map(|_| {
        c.volume_mounts
            .iter()
            .flatten()
            .map(|m| {
                let read_only = m.read_only.unwrap_or(false);
                VolumeMountStatus {
                    name: m.name.clone(),
                    mount_path: m.mount_path.clone(),
                    read_only: read_only.then_some(true),
                    recursive_read_only: read_only.then(|| {
                        if m.recursive_read_only.as_deref() == Some("Enabled") {
                            "Enabled".to_owned()
                        } else {
                            "Disabled".to_owned()
                        }
                    }),
                }
            })
            .collect::<Vec<_>>()
    });
    ContainerStatus {
        name: c.name.clone(),
        image: normalized_image(c.image.as_deref().unwrap_or_default()),
        image_id: current
            .map(|i| i.status.image_ref.clone())
            .unwrap_or_default(),
        container_id: current.map(|i| container_id(input, i)),
        ready,
        started: Some(started),
        restart_count: current.map_or(0, |i| i.restart_count),
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        volume_mounts: volume_mounts.filter(|v| !v.is_empty()),
        ..Default::default()
    }
}

fn terminated_exit(s: &ContainerState) -> Option<i32> {
    s.terminated.as_ref().map(|t| t.exit_code)
}

fn last_terminated_exit(status: &ContainerStatus) -> Option<i32> {
    status.last_state.as_ref().and_then(terminated_exit)
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn any_regular_started(containers: &[Container], statuses: &[ContainerStatus]) -> bool {
    containers.iter().any(|c| {
        find(statuses, &c.name).is_some_and(|s| {
            let state = s.state.clone().unwrap_or_default();
            state.running.is_some()
                || state.terminated.is_some()
                || last_terminated_exit(s).is_some()
        })
    })
}

/// kubelet's `getPhase`.
fn phase(
    init_containers: &[Container],
    containers: &[Container],
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    restart_policy: &str,
    terminal: bool,
) -> &'static str {
    let mut pending_init = 0;
    let mut pending_sidecars = 0;
    let mut failed_init = 0;
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in init_containers {
        let Some(s) = find(init_statuses, &c.name) else {
            if is_sidecar(c) {
                unknown += 1;
            } else {
                pending_init += 1;
            }
            continue;
        };
        let state = s.state.clone().unwrap_or_default();
        if is_sidecar(c) {
            if state.running.is_some() {
                if s.started != Some(true) {
                    pending_sidecars += 1;
                }
                running += 1;
            } else if state.waiting.is_some() && last_terminated_exit(s).is_none() {
                pending_sidecars += 1;
            }
            continue;
        }
        if state.running.is_some() {
            pending_init += 1;
        } else if let Some(code) = terminated_exit(&state) {
            if code != 0 {
                failed_init += 1;
            }
        } else if state.waiting.is_some() {
            match last_terminated_exit(s) {
                Some(code) if code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    for c in containers {
        let Some(s) = find(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(code) = terminated_exit(&state) {
            stopped += 1;
            if code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if last_terminated_exit(s).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    if failed_init > 0 && restart_policy == "Never" {
        return "Failed";
    }
    let initializing =
        pending_init > 0 || (pending_sidecars > 0 && !any_regular_started(containers, statuses));
    if initializing || waiting > 0 {
        "Pending"
    } else if running > 0 && unknown == 0 {
        "Running"
    } else if running == 0 && stopped > 0 && unknown == 0 {
        if terminal {
            if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            }
        } else if restart_policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if restart_policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

fn initialized_condition(
    init_containers: &[Container],
    containers: &[Container],
    all: &[&ContainerStatus],
    phase: &str,
) -> PodCondition {
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in init_containers {
        match all.iter().find(|s| s.name == c.name) {
            None => unknown.push(c.name.clone()),
            Some(s) if is_sidecar(c) => {
                if s.started != Some(true) {
                    incomplete.push(c.name.clone());
                }
            }
            Some(s) => {
                let done = s
                    .state
                    .as_ref()
                    .and_then(terminated_exit)
                    .is_some_and(|code| code == 0);
                if !done {
                    incomplete.push(c.name.clone());
                }
            }
        }
    }
    if phase == "Succeeded" && unknown.is_empty() {
        return condition("Initialized", true, "PodCompleted", "");
    }
    let regular: Vec<ContainerStatus> = all.iter().map(|s| (*s).clone()).collect();
    if any_regular_started(containers, &regular) {
        return condition("Initialized", true, "", "");
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        messages.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if messages.is_empty() {
        condition("Initialized", true, "", "")
    } else {
        condition(
            "Initialized",
            false,
            "ContainersNotInitialized",
            &messages.join(", "),
        )
    }
}

fn containers_ready_condition(
    init_containers: &[Container],
    containers: &[Container],
    all: &[&ContainerStatus],
    phase: &str,
) -> PodCondition {
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let considered = init_containers
        .iter()
        .filter(|c| is_sidecar(c))
        .chain(containers);
    for c in considered {
        match all.iter().find(|s| s.name == c.name) {
            None => unknown.push(c.name.clone()),
            Some(s) if !s.ready => unready.push(c.name.clone()),
            Some(_) => {}
        }
    }
    if phase == "Succeeded" && unknown.is_empty() {
        return condition("ContainersReady", false, "PodCompleted", "");
    }
    if phase == "Failed" {
        return condition("ContainersReady", false, "PodFailed", "");
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        messages.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if messages.is_empty() {
        condition("ContainersReady", true, "", "")
    } else {
        condition(
            "ContainersReady",
            false,
            "ContainersNotReady",
            &messages.join(", "),
        )
    }
}

fn ready_condition(pod: &Pod, containers_ready: &PodCondition, old: &PodStatus) -> PodCondition {
    if containers_ready.status != "True" {
        return PodCondition {
            type_: "Ready".into(),
            ..containers_ready.clone()
        };
    }
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.clone())
        .unwrap_or_default();
    let mut messages = Vec::new();
    for gate in gates {
        match old
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == gate.condition_type)
        {
            None => messages.push(format!(
                "corresponding condition of pod readiness gate \"{}\" does not exist.",
                gate.condition_type
            )),
            Some(c) if c.status != "True" => messages.push(format!(
                "the status of pod readiness gate \"{}\" is not \"True\", but {}",
                gate.condition_type, c.status
            )),
            Some(_) => {}
        }
    }
    if messages.is_empty() {
        condition("Ready", true, "", "")
    } else {
        condition(
            "Ready",
            false,
            "ReadinessGatesNotReady",
            &messages.join(", "),
        )
    }
}

#[cfg(test)]
mod tests;
