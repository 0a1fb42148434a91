//! Readiness, liveness and startup probes of a pod's running containers,
//! one task per probe, as kubelet's prober workers run them: the first
//! probe after `initialDelaySeconds`, then every `periodSeconds`; the
//! result flips after `successThreshold` successes or `failureThreshold`
//! failures in a row; liveness and readiness wait for the startup probe.
//! Each failure is an `Unhealthy` event; a failed liveness or startup
//! probe asks the pod worker to restart the container.
//!
//! - [`handlers`]: running one probe or lifecycle hook.
//! - [`http`]: the HTTP GET they send.
//! - [`grpc`]: the gRPC health check they call.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::cri::Cri;
use super::events::{Recorder, container_ref, reason};
use super::status::Health;

pub mod grpc;
pub mod handlers;
pub mod http;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// `readinessProbe`.
    Readiness,
    /// `livenessProbe`.
    Liveness,
    /// `startupProbe`.
    Startup,
}

impl ProbeKind {
    /// As kubelet's messages name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Readiness => "Readiness",
            Self::Liveness => "Liveness",
            Self::Startup => "Startup",
        }
    }
}

#[derive(Debug, Default)]
struct Results {
    health: HashMap<String, Health>,
    failed: HashMap<String, ProbeKind>,
}

/// The probes of one pod.
#[derive(Debug)]
pub struct Probes {
    results: Arc<Mutex<Results>>,
    running: HashMap<String, CancellationToken>,
    notify: Arc<Notify>,
}

/// Everything a probe task needs.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// The runtime.
    pub cri: Cri,
    /// Where Unhealthy events go.
    pub events: Recorder,
    /// The pod.
    pub pod: Pod,
    /// The container's spec.
    pub container: Container,
    /// The running instance.
    pub container_id: String,
    /// When it started.
    pub started_at: SystemTime,
    /// The pod's IP.
    pub pod_ip: String,
}

impl Probes {
    /// Probes that wake the pod worker through `notify` when a result
    /// changes.
    pub fn new(notify: Arc<Notify>) -> Self {
        Self {
            results: Arc::default(),
            running: HashMap::new(),
            notify,
        }
    }

    fn results(&self) -> std::sync::MutexGuard<'_, Results> {
        self.results.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Probe results by container ID.
    pub fn health(&self) -> HashMap<String, Health> {
        self.results().health.clone()
    }

    /// The probe that failed for container `id` (liveness or startup),
    /// taken: the worker restarts the container once.
    pub fn take_failure(&self, id: &str) -> Option<ProbeKind> {
        self.results().failed.remove(id)
    }

    /// Starts probing the running container of `target` unless it is
    /// probed already.
    pub fn ensure(&mut self, target: ProbeTarget) {
        if self.running.contains_key(&target.container_id) {
            return;
        }
        let c = &target.container;
        self.results().health.insert(
            target.container_id.clone(),
            Health {
                ready: c.readiness_probe.is_none(),
                started: c.startup_probe.is_none(),
            },
        );
        let stop = CancellationToken::new();
        let probes = [
            (ProbeKind::Startup, c.startup_probe.clone()),
            (ProbeKind::Readiness, c.readiness_probe.clone()),
            (ProbeKind::Liveness, c.liveness_probe.clone()),
        ];
        for (kind, probe) in probes {
            if let Some(probe) = probe {
                let worker = Worker {
                    kind,
                    probe,
                    target: target.clone(),
                    results: self.results.clone(),
                    notify: self.notify.clone(),
                };
                tokio::spawn(worker.run(stop.clone()));
            }
        }
        self.running.insert(target.container_id, stop);
    }

    /// Stops probing containers not in `live` and forgets their results.
    pub fn retain(&mut self, live: &HashSet<String>) {
        self.running.retain(|id, stop| {
            let keep = live.contains(id);
            if !keep {
                stop.cancel();
            }
            keep
        });
        let mut results = self.results();
        results.health.retain(|id, _| live.contains(id));
        results.failed.retain(|id, _| live.contains(id));
    }

    /// Stops every probe.
    pub fn stop_all(&mut self) {
        self.retain(&HashSet::new());
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        for stop in self.running.values() {
            stop.cancel();
        }
    }
}

fn seconds(value: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(value.unwrap_or(default).max(0)).unwrap_or(0))
}

struct Worker {
    kind: ProbeKind,
    probe: Probe,
    target: ProbeTarget,
    results: Arc<Mutex<Results>>,
    notify: Arc<Notify>,
}

impl Worker {
    fn results(&self) -> std::sync::MutexGuard<'_, Results> {
        self.results.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn started(&self) -> bool {
        self.results()
            .health
            .get(&self.target.container_id)
            .is_some_and(|h| h.started)
    }

    async fn run(self, stop: CancellationToken) {
        let period = seconds(self.probe.period_seconds, 10).max(Duration::from_secs(1));
        let initial = seconds(self.probe.initial_delay_seconds, 0);
        let success_threshold = self.probe.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = self.probe.failure_threshold.unwrap_or(3).max(1);
        let first = (self.target.started_at + initial)
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(first) => {}
        }
        let object = container_ref(&self.target.pod, &self.target.container.name);
        let (mut successes, mut failures) = (0, 0);
        let mut result: Option<bool> = None;
        loop {
            // Liveness and readiness wait for the startup probe.
            if self.kind == ProbeKind::Startup || self.started() {
                let target = handlers::Target {
                    cri: &self.target.cri,
                    container: &self.target.container,
                    container_id: &self.target.container_id,
                    pod_ip: &self.target.pod_ip,
                };
                let outcome = tokio::select! {
                    () = stop.cancelled() => return,
                    outcome = handlers::probe(target, &self.probe) => outcome,
                };
                match outcome {
                    Ok(()) => {
                        successes += 1;
                        failures = 0;
                    }
                    Err(output) => {
                        failures += 1;
                        successes = 0;
                        self.target.events.warning(
                            &object,
                            reason::UNHEALTHY,
                            format!("{} probe failed: {output}", self.kind.label()),
                        );
                    }
                }
                let new = if successes >= success_threshold {
                    Some(true)
                } else if failures >= failure_threshold {
                    Some(false)
                } else {
                    result
                };
                if new != result {
                    result = new;
                    if self.apply(new == Some(true)) {
                        return;
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
        }
    }

    /// Records a new result; true when this probe is done for the
    /// container (a startup success, or a failure that restarts it).
    fn apply(&self, ok: bool) -> bool {
        let id = &self.target.container_id;
        let done = {
            let mut results = self.results();
            let health = results.health.entry(id.clone()).or_default();
            match (self.kind, ok) {
                (ProbeKind::Readiness, ok) => {
                    health.ready = ok;
                    false
                }
                (ProbeKind::Startup, true) => {
                    health.started = true;
                    true
                }
                (ProbeKind::Liveness, true) => false,
                (kind, false) => {
                    results.failed.insert(id.clone(), kind);
                    true
                }
            }
        };
        self.notify.notify_one();
        done
    }
}
