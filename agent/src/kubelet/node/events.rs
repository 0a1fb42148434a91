//! The node's events, as kubelet records them: `Starting` ("Starting
//! kubelet.") and one event per condition change ("Node n1 status is now:
//! NodeReady"), about the Node (whose UID kubelet sets to its name).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Records events about one node as `kubelet`.
#[derive(Clone)]
pub struct NodeEvents {
    recorder: Recorder,
    reference: ObjectReference,
    node_name: String,
}

impl std::fmt::Debug for NodeEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeEvents")
            .field("node", &self.node_name)
            .finish_non_exhaustive()
    }
}

impl NodeEvents {
    /// A recorder for `node_name`'s events.
    pub fn new(client: kube::Client, node_name: &str) -> Self {
        let reporter = Reporter {
            controller: "kubelet".into(),
            instance: Some(node_name.to_owned()),
        };
        Self {
            recorder: Recorder::new(client, reporter),
            reference: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node_name.to_owned()),
                uid: Some(node_name.to_owned()),
                ..ObjectReference::default()
            },
            node_name: node_name.to_owned(),
        }
    }

    /// `Starting`: "Starting kubelet.".
    pub async fn starting(&self) {
        self.publish("Starting", "Starting kubelet.".into()).await;
    }

    /// A condition change: "Node <name> status is now: <reason>".
    pub async fn status_is_now(&self, reason: &'static str) {
        let note = format!("Node {} status is now: {reason}", self.node_name);
        self.publish(reason, note).await;
    }

    async fn publish(&self, reason: &str, note: String) {
        let event = Event {
            type_: EventType::Normal,
            reason: reason.to_owned(),
            note: Some(note),
            action: reason.to_owned(),
            secondary: None,
        };
        if let Err(err) = self.recorder.publish(&event, &self.reference).await {
            tracing::debug!(node = %self.node_name, reason, %err, "recording a node event");
        }
    }
}
