//! The `endpoints.kubernetes.io/last-change-trigger-time` annotation:
//! when the change that the Endpoints (or EndpointSlices) now reflect
//! happened, as upstream's `TriggerTimeTracker` computes it — the Service's
//! creation for a Service seen for the first time, otherwise the earliest
//! Ready-condition transition among the selected pods that changed since
//! the last sync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;

/// The annotation's key.
pub(crate) const LAST_CHANGE_TRIGGER_TIME: &str =
    "endpoints.kubernetes.io/last-change-trigger-time";

/// What was seen of one Service at its last sync.
#[derive(Debug, Default)]
struct ServiceState {
    last_service: Option<Timestamp>,
    last_pods: HashMap<String, Timestamp>,
}

/// Trigger times per Service; one per controller.
#[derive(Debug, Default)]
pub(crate) struct TriggerTimeTracker {
    states: Mutex<HashMap<(String, String), ServiceState>>,
}

/// A computed trigger time and the state to record once the write that
/// exports it succeeded (a failed write leaves the next sync to report
/// the same changes).
#[derive(Debug)]
pub(crate) struct Pending {
    /// The time to export, or None when the annotation should be cleared.
    pub time: Option<Timestamp>,
    key: (String, String),
    state: ServiceState,
}

impl TriggerTimeTracker {
    /// The trigger time for `service` and its `pods` as they are now,
    /// compared with the last recorded sync.
    pub(crate) fn compute(&self, service: &Service, pods: &[Arc<Pod>]) -> Pending {
        let key = service_key(service);
        let states = self
            .states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let last = states.get(&key);
        let mut earliest: Option<Timestamp> = None;
        let mut pod_times = HashMap::new();
        for pod in pods {
            let Some(time) = pod_trigger_time(pod) else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            let before = last.and_then(|l| l.last_pods.get(&name));
            if before.is_none_or(|before| time > *before) {
                earliest = Some(earliest.map_or(time, |e| e.min(time)));
            }
            pod_times.insert(name, time);
        }
        let service_time = service.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(time) = service_time
            && last
                .and_then(|l| l.last_service)
                .is_none_or(|before| time > before)
        {
            earliest = Some(earliest.map_or(time, |e| e.min(time)));
        }
        let time = if last.is_some() {
            earliest
        } else {
            service_time
        };
        Pending {
            time,
            key,
            state: ServiceState {
                last_service: service_time,
                last_pods: pod_times,
            },
        }
    }

    /// Records a sync's state (after its write, or when none was needed).
    pub(crate) fn record(&self, pending: Pending) {
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(pending.key, pending.state);
    }

    /// Forgets a deleted Service.
    pub(crate) fn delete_service(&self, namespace: &str, name: &str) {
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(namespace.to_owned(), name.to_owned()));
    }
}

/// The time as Go's `time.RFC3339Nano` in UTC writes it (fraction without
/// trailing zeros, none when whole).
pub(crate) fn format_rfc3339_nano(time: Timestamp) -> String {
    let seconds = time.as_second();
    let nanos = time.subsec_nanosecond();
    let whole = Timestamp::from_second(seconds).unwrap_or(time);
    let base = whole.to_string();
    if nanos == 0 {
        return base;
    }
    let fraction = format!("{nanos:09}");
    let fraction = fraction.trim_end_matches('0');
    match base.strip_suffix('Z') {
        Some(stem) => format!("{stem}.{fraction}Z"),
        None => base,
    }
}

fn service_key(service: &Service) -> (String, String) {
    (
        service.metadata.namespace.clone().unwrap_or_default(),
        service.metadata.name.clone().unwrap_or_default(),
    )
}

/// When the pod's Ready condition last changed.
fn pod_trigger_time(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(created: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": created},
        }))
        .unwrap()
    }

    fn pod(name: &str, ready_at: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}]},
            }))
            .unwrap(),
        )
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_new_service_reports_its_creation() {
        let tracker = TriggerTimeTracker::default();
        let svc = service("2024-01-01T00:00:00Z");
        let pods = [pod("a", "2024-01-01T00:00:05Z")];
        assert_eq!(
            tracker.compute(&svc, &pods).time,
            Some(ts("2024-01-01T00:00:00Z"))
        );
    }

    fn sync(tracker: &TriggerTimeTracker, svc: &Service, pods: &[Arc<Pod>]) -> Option<Timestamp> {
        let pending = tracker.compute(svc, pods);
        let time = pending.time;
        tracker.record(pending);
        time
    }

    #[test]
    fn later_syncs_report_the_earliest_pod_change_or_nothing() {
        let tracker = TriggerTimeTracker::default();
        let svc = service("2024-01-01T00:00:00Z");
        sync(&tracker, &svc, &[pod("a", "2024-01-01T00:00:05Z")]);
        assert_eq!(
            sync(&tracker, &svc, &[pod("a", "2024-01-01T00:00:05Z")]),
            None
        );
        let changed = [
            pod("a", "2024-01-01T00:00:09Z"),
            pod("b", "2024-01-01T00:00:07Z"),
        ];
        // Not recorded (the write failed): the next sync reports it again.
        assert_eq!(
            tracker.compute(&svc, &changed).time,
            Some(ts("2024-01-01T00:00:07Z"))
        );
        assert_eq!(
            sync(&tracker, &svc, &changed),
            Some(ts("2024-01-01T00:00:07Z"))
        );
        assert_eq!(sync(&tracker, &svc, &changed), None);
        tracker.delete_service("default", "web");
        assert_eq!(
            sync(&tracker, &svc, &changed),
            Some(ts("2024-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn formats_as_go_rfc3339_nano() {
        assert_eq!(
            format_rfc3339_nano(ts("2024-01-02T03:04:05Z")),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(
            format_rfc3339_nano(ts("2024-01-02T03:04:05.120Z")),
            "2024-01-02T03:04:05.12Z"
        );
        assert_eq!(
            format_rfc3339_nano(ts("2024-01-02T03:04:05.000000001Z")),
            "2024-01-02T03:04:05.000000001Z"
        );
    }
}
