//! Carries the scheduler's decisions out against the apiserver, as
//! kube-scheduler's DefaultBinder and failure handler do: POST
//! `pods/<name>/binding` and record `Scheduled`; or record `FailedScheduling`
//! and set the pod's PodScheduled condition to False.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::cache::{DEFAULT_SCHEDULER, str_at};
use super::queue::PodKey;
use super::state::{Decision, Outcome};
use crate::controllers::common::Events;

/// PodScheduled reason when no node fits (`v1.PodReasonUnschedulable`).
pub(super) const REASON_UNSCHEDULABLE: &str = "Unschedulable";
/// PodScheduled reason when scheduling failed otherwise
/// (`v1.PodReasonSchedulerError`).
pub(super) const REASON_SCHEDULER_ERROR: &str = "SchedulerError";
/// Field manager of the scheduler's writes, as upstream's shows.
const FIELD_MANAGER: &str = "kube-scheduler";
/// Longest event note (upstream's `noteLengthLimit`).
const NOTE_LIMIT: usize = 1024;

/// Writes decisions to the apiserver.
#[derive(Clone)]
pub(super) struct Binder {
    client: kube::Client,
    events: Events,
}

impl std::fmt::Debug for Binder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binder").finish_non_exhaustive()
    }
}

impl Binder {
    /// A binder recording events as `default-scheduler`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            events: Events::new(client.clone(), DEFAULT_SCHEDULER),
            client,
        }
    }

    /// Carries out one decision.
    pub async fn carry_out(self, decision: Decision) -> Outcome {
        match decision {
            Decision::Bind { key, pod, node } => self.bind(key, &pod, &node).await,
            Decision::Unschedulable { key, pod, message } => {
                self.record_failure(&pod, REASON_UNSCHEDULABLE, &message)
                    .await;
                Outcome::Recorded(key)
            }
        }
    }

    async fn bind(&self, key: PodKey, pod: &Value, node: &str) -> Outcome {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(key.name.clone()),
                namespace: Some(key.namespace.clone()),
                uid: Some(key.uid.clone()),
                ..Default::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                name: Some(node.to_owned()),
                ..Default::default()
            },
        };
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match pods
            .create_subresource::<_, Value>("binding", &key.name, &params, &binding)
            .await
        {
            Ok(_) => {
                tracing::debug!(pod = %key, node, "bound");
                let note = format!(
                    "Successfully assigned {}/{} to {node}",
                    key.namespace, key.name
                );
                self.events
                    .normal(&object_ref(pod), "Scheduled", note)
                    .await;
                Outcome::Bound(key)
            }
            // Gone, being deleted, or bound by someone else: nothing to retry.
            Err(kube::Error::Api(status)) if status.is_not_found() || status.is_conflict() => {
                tracing::debug!(pod = %key, node, message = %status.message, "binding refused");
                Outcome::BindFailed { key, retry: false }
            }
            Err(err) => {
                let message = format!(
                    "running Bind plugin \"DefaultBinder\": {}",
                    error_text(&err)
                );
                tracing::warn!(pod = %key, node, %message, "binding failed; retrying");
                self.record_failure(pod, REASON_SCHEDULER_ERROR, &message)
                    .await;
                Outcome::BindFailed { key, retry: true }
            }
        }
    }

    /// Records a FailedScheduling event and sets PodScheduled=False with
    /// `reason` and `message` (no write when the condition already says so).
    /// Failures are logged: the pod is retried anyway.
    async fn record_failure(&self, pod: &Value, reason: &str, message: &str) {
        self.events
            .warning(&object_ref(pod), "FailedScheduling", truncate_note(message))
            .await;
        let Some(patch) = condition_patch(pod, reason, message, &now()) else {
            return;
        };
        let namespace = str_at(pod, &["metadata", "namespace"]).unwrap_or("default");
        let name = str_at(pod, &["metadata", "name"]).unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        if let Err(err) = pods
            .patch_status(name, &params, &Patch::Strategic(patch))
            .await
        {
            tracing::debug!(pod = %format!("{namespace}/{name}"), err = %error_text(&err), "updating PodScheduled");
        }
    }
}

/// The strategic merge patch setting PodScheduled=False, or None when the
/// pod's condition already has this status, reason and message (upstream's
/// `updatePod` → `UpdatePodCondition`). The uid makes it fail on a
/// recreated pod of the same name.
pub(super) fn condition_patch(
    pod: &Value,
    reason: &str,
    message: &str,
    now: &str,
) -> Option<Value> {
    let current = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| str_at(c, &["type"]) == Some("PodScheduled"))
        });
    let was_false = current.is_some_and(|c| str_at(c, &["status"]) == Some("False"));
    if was_false
        && current.is_some_and(|c| {
            str_at(c, &["reason"]) == Some(reason) && str_at(c, &["message"]) == Some(message)
        })
    {
        return None;
    }
    let transition = current
        .filter(|_| was_false)
        .and_then(|c| str_at(c, &["lastTransitionTime"]))
        .unwrap_or(now);
    Some(json!({
        "metadata": {"uid": str_at(pod, &["metadata", "uid"])},
        "status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": transition,
        }]},
    }))
}

/// The event's reference to the pod, as `ref.GetReference` makes it.
pub(super) fn object_ref(pod: &Value) -> ObjectReference {
    let field = |name: &str| str_at(pod, &["metadata", name]).map(str::to_owned);
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: field("namespace"),
        name: field("name"),
        uid: field("uid"),
        resource_version: field("resourceVersion"),
        field_path: None,
    }
}

/// Cuts an event note to upstream's limit, ending it with " ...".
pub(super) fn truncate_note(message: &str) -> String {
    if message.len() <= NOTE_LIMIT {
        return message.to_owned();
    }
    let suffix = " ...";
    let mut end = NOTE_LIMIT - suffix.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &message[..end])
}

/// An API error as Go prints it: the Status message when there is one.
fn error_text(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// The time now as the API writes it.
fn now() -> String {
    serde_json::to_value(Time(k8s_openapi::jiff::Timestamp::now()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "0/1 nodes are available: 1 Insufficient cpu.";

    fn pod(conditions: Value) -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1", "resourceVersion": "7"},
            "status": {"phase": "Pending", "conditions": conditions},
        })
    }

    #[test]
    fn a_new_condition_starts_its_transition_now() {
        let patch = condition_patch(&pod(json!([])), REASON_UNSCHEDULABLE, MESSAGE, "T1");
        assert_eq!(
            patch,
            Some(json!({
                "metadata": {"uid": "u1"},
                "status": {"conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": MESSAGE, "lastProbeTime": null, "lastTransitionTime": "T1",
                }]},
            }))
        );
    }

    #[test]
    fn an_unchanged_condition_is_not_written_again() {
        let current = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                              "message": MESSAGE, "lastTransitionTime": "T0"}]);
        assert_eq!(
            condition_patch(&pod(current.clone()), REASON_UNSCHEDULABLE, MESSAGE, "T1"),
            None
        );
        // A new message keeps the transition time: the status stayed False.
        let patch =
            condition_patch(&pod(current), REASON_UNSCHEDULABLE, "other", "T1").unwrap_or_default();
        assert_eq!(patch["status"]["conditions"][0]["lastTransitionTime"], "T0");
        assert_eq!(patch["status"]["conditions"][0]["message"], "other");
    }

    #[test]
    fn the_pod_reference_names_the_version_seen() {
        let reference = object_ref(&pod(json!([])));
        assert_eq!(reference.kind.as_deref(), Some("Pod"));
        assert_eq!(reference.namespace.as_deref(), Some("default"));
        assert_eq!(reference.uid.as_deref(), Some("u1"));
        assert_eq!(reference.resource_version.as_deref(), Some("7"));
    }

    #[test]
    fn long_notes_are_cut_as_upstream_cuts_them() {
        assert_eq!(truncate_note(MESSAGE), MESSAGE);
        let long = "é".repeat(700);
        let cut = truncate_note(&long);
        assert!(cut.len() <= NOTE_LIMIT, "{}", cut.len());
        assert!(cut.ends_with(" ..."));
    }
}
