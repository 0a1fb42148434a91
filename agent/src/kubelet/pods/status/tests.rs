use std::collections::HashMap;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::kubelet::pods::snapshot::{ContainerInfo, PodSnapshot, SandboxInfo};

const S: i64 = 1_000_000_000;

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: Some("127.0.0.1:5000/skiff-test/busybox:latest".into()),
        ..Default::default()
    }
}

fn pod(containers: Vec<Container>, init: Vec<Container>, restart: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("default".into()),
            uid: Some("uid-1".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            init_containers: (!init.is_empty()).then_some(init),
            restart_policy: Some(restart.into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            qos_class: Some("BestEffort".into()),
            ..Default::default()
        }),
    }
}

fn instance(
    name: &str,
    id: &str,
    state: cri::ContainerState,
    exit: i32,
    restarts: i32,
) -> ContainerInfo {
    ContainerInfo {
        status: cri::ContainerStatus {
            id: id.into(),
            state: state as i32,
            created_at: (100 + i64::from(restarts)) * S,
            started_at: (101 + i64::from(restarts)) * S,
            finished_at: if state == cri::ContainerState::ContainerExited {
                (102 + i64::from(restarts)) * S
            } else {
                0
            },
            exit_code: exit,
            image_ref: "127.0.0.1:5000/skiff-test/busybox@sha256:ab".into(),
            ..Default::default()
        },
        sandbox_id: "sb".into(),
        name: name.into(),
        restart_count: restarts,
        hash: String::new(),
        termination_message: String::new(),
    }
}

fn ready_sandbox() -> SandboxInfo {
    SandboxInfo {
        id: "sb".into(),
        attempt: 0,
        ready: true,
        created_at: 99 * S,
        ip: Some("10.42.0.9".into()),
    }
}

struct Fixture {
    waiting: HashMap<String, Waiting>,
    health: HashMap<String, Health>,
    terminal: bool,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            waiting: HashMap::new(),
            health: HashMap::new(),
            terminal: false,
        }
    }

    fn status(&self, pod: &Pod, snapshot: &PodSnapshot) -> PodStatus {
        pod_status(&StatusInput {
            pod,
            snapshot,
            host_ip: "192.168.0.2",
            runtime_name: "skiff",
            waiting: &self.waiting,
            health: &self.health,
            terminal: self.terminal,
            now: Timestamp::from_second(1_700_000_000).unwrap(),
        })
    }
}

fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a k8s_openapi::api::core::v1::PodCondition {
    s.conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == t)
        .unwrap_or_else(|| panic!("no {t}"))
}

#[test]
fn a_new_pod_is_pending_and_creating() {
    let p = pod(vec![container("c")], vec![], "Always");
    let s = Fixture::new().status(&p, &PodSnapshot::default());
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    let c = &s.container_statuses.as_ref().unwrap()[0];
    let waiting = c.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
    assert_eq!(c.started, Some(false));
    assert_eq!(cond(&s, "PodReadyToStartContainers").status, "False");
    assert_eq!(cond(&s, "Initialized").status, "True");
    let ready = cond(&s, "Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [c]")
    );
    let types: Vec<&str> = s
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled"
        ]
    );
    assert_eq!(s.host_ip.as_deref(), Some("192.168.0.2"));
    assert!(s.start_time.is_some());
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
}

#[test]
fn a_running_container_makes_the_pod_running_and_ready() {
    let p = pod(vec![container("c")], vec![], "Always");
    let snap = PodSnapshot {
        sandboxes: vec![ready_sandbox()],
        containers: vec![instance(
            "c",
            "abc",
            cri::ContainerState::ContainerRunning,
            0,
            0,
        )],
    };
    let s = Fixture::new().status(&p, &snap);
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(s.pod_ip.as_deref(), Some("10.42.0.9"));
    assert_eq!(s.pod_ips.as_ref().unwrap()[0].ip, "10.42.0.9");
    let c = &s.container_statuses.as_ref().unwrap()[0];
    assert!(c.ready);
    assert_eq!(c.started, Some(true));
    assert_eq!(c.container_id.as_deref(), Some("skiff://abc"));
    assert_eq!(c.image_id, "127.0.0.1:5000/skiff-test/busybox@sha256:ab");
    assert!(c.state.as_ref().unwrap().running.is_some());
    for t in [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ] {
        assert_eq!(cond(&s, t).status, "True", "{t}");
    }
}

#[test]
fn readiness_probes_gate_readiness() {
    let mut c = container("c");
    c.readiness_probe = Some(Probe::default());
    let p = pod(vec![c], vec![], "Always");
    let snap = PodSnapshot {
        sandboxes: vec![ready_sandbox()],
        containers: vec![instance(
            "c",
            "abc",
            cri::ContainerState::ContainerRunning,
            0,
            0,
        )],
    };
    let mut f = Fixture::new();
    let s = f.status(&p, &snap);
    assert!(!s.container_statuses.as_ref().unwrap()[0].ready);
    assert_eq!(cond(&s, "ContainersReady").status, "False");
    f.health.insert(
        "abc".into(),
        Health {
            ready: true,
            started: true,
        },
    );
    let s = f.status(&p, &snap);
    assert!(s.container_statuses.as_ref().unwrap()[0].ready);
}

#[test]
fn a_completed_pod_succeeds() {
    let p = pod(vec![container("c")], vec![], "Never");
    let snap = PodSnapshot {
        sandboxes: vec![ready_sandbox()],
        containers: vec![instance(
            "c",
            "abc",
            cri::ContainerState::ContainerExited,
            0,
            0,
        )],
    };
    let s = Fixture::new().status(&p, &snap);
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    let t = s.container_statuses.as_ref().unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!(t.reason.as_deref(), Some("Completed"));
    assert_eq!(t.exit_code, 0);
    assert!(t.started_at.is_some() && t.finished_at.is_some());
    assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
    assert_eq!(
        cond(&s, "Initialized").reason.as_deref(),
        Some("PodCompleted")
    );
}

#[test]
fn a_failed_container_with_restart_never_fails_the_pod() {
    let p = pod(vec![container("c")], vec![], "Never");
    let snap = PodSnapshot {
        sandboxes: vec![ready_sandbox()],
        containers: vec![instance(
            "c",
            "abc",
            cri::ContainerState::ContainerExited,
            2,
            0,
        )],
    };
    let s = Fixture::new().status(&p, &snap);
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodFailed"));
}

#[test]
fn crash_loop_back_off_waits_with_the_last_state() {
    let p = pod(vec![container("c")], vec![], "Always");
    let snap = PodSnapshot {
        sandboxes: vec![ready_sandbox()],
        containers: vec![
            instance("c", "new", cri::ContainerState::ContainerExited, 1, 1),
            instance("c", "old", cri::ContainerState::ContainerExited, 1, 0),
        ],
    };
    let mut f = Fixture::new();
    f.waiting.insert(
        "c".into(),
        Waiting::new(
            "CrashLoopBackOff",
            "back-off 10s restarting failed container=c pod=p_default(uid-1)",
        ),
    );
    let s = f.status(&p, &snap);
    assert_eq!(s.phase.as_deref(), Some("Running"));
    let c = &s.container_statuses.as_ref().unwrap()[0];
    assert_eq!(c.restart_count, 1);
    let w = c.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
    let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(last.exit_code, 1);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    assert_eq!(last.container_id.as_deref(), Some("skiff://new"));
}

#[test]
fn init_containers_hold_the_pod_pending() {
    let p = pod(vec![container("c")], vec![container("init")], "Always");
    let snap = PodSnapshot {
        sandboxes: vec![ready_sandbox()],
        containers: vec![instance(
            "init",
            "i1",
            cri::ContainerState::ContainerRunning,
            0,
            0,
        )],
    };
    let s = Fixture::new().status(&p, &snap);
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    let init = cond(&s, "Initialized");
    assert_eq!(init.status, "False");
    assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
    assert_eq!(
        init.message.as_deref(),
        Some("containers with incomplete status: [init]")
    );
    let c = &s.container_statuses.as_ref().unwrap()[0];
    let w = c.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(w.reason.as_deref(), Some("PodInitializing"));
    assert_eq!(s.init_container_statuses.as_ref().unwrap().len(), 1);
}

#[test]
fn a_failed_init_container_fails_a_never_restarting_pod() {
    let p = pod(vec![container("c")], vec![container("init")], "Never");
    let snap = PodSnapshot {
        sandboxes: vec![ready_sandbox()],
        containers: vec![instance(
            "init",
            "i1",
            cri::ContainerState::ContainerExited,
            1,
            0,
        )],
    };
    let s = Fixture::new().status(&p, &snap);
    assert_eq!(s.phase.as_deref(), Some("Failed"));
}

#[test]
fn terminated_pods_are_terminal_whatever_the_policy() {
    let p = pod(vec![container("c")], vec![], "Always");
    let snap = PodSnapshot {
        sandboxes: vec![ready_sandbox()],
        containers: vec![instance(
            "c",
            "abc",
            cri::ContainerState::ContainerExited,
            143,
            0,
        )],
    };
    let mut f = Fixture::new();
    assert_eq!(f.status(&p, &snap).phase.as_deref(), Some("Running"));
    f.terminal = true;
    assert_eq!(f.status(&p, &snap).phase.as_deref(), Some("Failed"));
}

#[test]
fn transition_times_are_kept_while_a_condition_holds() {
    let mut p = pod(vec![container("c")], vec![], "Always");
    let f = Fixture::new();
    let first = f.status(&p, &PodSnapshot::default());
    let mut earlier = first.clone();
    for c in earlier.conditions.as_mut().unwrap() {
        c.last_transition_time = Some(api_time(Timestamp::from_second(1_600_000_000).unwrap()));
    }
    p.status = Some(earlier);
    let again = f.status(&p, &PodSnapshot::default());
    assert_eq!(
        cond(&again, "Ready")
            .last_transition_time
            .as_ref()
            .unwrap()
            .0
            .as_second(),
        1_600_000_000
    );
    let snap = PodSnapshot {
        sandboxes: vec![ready_sandbox()],
        containers: vec![instance(
            "c",
            "abc",
            cri::ContainerState::ContainerRunning,
            0,
            0,
        )],
    };
    let running = f.status(&p, &snap);
    assert_eq!(
        cond(&running, "Ready")
            .last_transition_time
            .as_ref()
            .unwrap()
            .0
            .as_second(),
        1_700_000_000
    );
}

#[test]
fn container_statuses_are_sorted_by_name() {
    let p = pod(vec![container("zz"), container("aa")], vec![], "Always");
    let s = Fixture::new().status(&p, &PodSnapshot::default());
    let names: Vec<&str> = s
        .container_statuses
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["aa", "zz"]);
}

#[test]
fn restart_policies() {
    assert!(should_restart("Always", 0));
    assert!(should_restart("OnFailure", 1));
    assert!(!should_restart("OnFailure", 0));
    assert!(!should_restart("Never", 1));
}
