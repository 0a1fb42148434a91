//! One metadata-only watch per watched resource (upstream's monitors),
//! feeding the graph builder in order through one channel. Monitors follow
//! discovery: new resources (CRDs) get one, resources no longer served
//! lose theirs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::resources::Resource;

/// What the monitors tell the graph builder.
#[derive(Debug)]
pub enum GraphEvent {
    /// These resources are about to be listed: wait for them before the
    /// workers start.
    Expect(Vec<Arc<Resource>>),
    /// An object was listed, added or changed.
    Observed(Arc<Resource>, Box<ObjectMeta>),
    /// An object was deleted.
    Deleted(String),
    /// A (re)list of the resource finished, having seen these UIDs.
    Listed(Arc<Resource>, HashSet<String>),
    /// The resource is no longer watched.
    Stopped(Arc<Resource>),
}

struct Monitor {
    resource: Arc<Resource>,
    stop: CancellationToken,
}

/// The running monitors, by resource name.
pub struct Monitors {
    client: kube::Client,
    events: mpsc::Sender<GraphEvent>,
    shutdown: CancellationToken,
    running: HashMap<String, Monitor>,
}

impl std::fmt::Debug for Monitors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitors")
            .field("running", &self.running.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Monitors {
    /// Monitors sending to `events`, all stopped by `shutdown`.
    pub fn new(
        client: kube::Client,
        events: mpsc::Sender<GraphEvent>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            client,
            events,
            shutdown,
            running: HashMap::new(),
        }
    }

    /// Starts monitors for new resources (or new versions) and stops those
    /// of resources no longer served.
    pub async fn sync(&mut self, wanted: &[Arc<Resource>]) {
        let wanted_names: HashSet<String> = wanted.iter().map(|r| r.name()).collect();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|name| !wanted_names.contains(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(monitor) = self.running.remove(&name) {
                monitor.stop.cancel();
                tracing::debug!(resource = %name, "garbage collector stops watching");
                let _ = self
                    .events
                    .send(GraphEvent::Stopped(monitor.resource))
                    .await;
            }
        }
        let mut start = Vec::new();
        for resource in wanted {
            let name = resource.name();
            match self.running.get(&name) {
                Some(monitor) if monitor.resource == *resource => {}
                Some(_) => {
                    if let Some(old) = self.running.remove(&name) {
                        old.stop.cancel();
                        let _ = self.events.send(GraphEvent::Stopped(old.resource)).await;
                    }
                    start.push(resource.clone());
                }
                None => start.push(resource.clone()),
            }
        }
        if start.is_empty() {
            return;
        }
        // Announced before any of them can report being listed.
        let _ = self.events.send(GraphEvent::Expect(start.clone())).await;
        for resource in start {
            let stop = self.shutdown.child_token();
            tokio::spawn(watch(
                self.client.clone(),
                resource.clone(),
                self.events.clone(),
                stop.clone(),
            ));
            self.running
                .insert(resource.name(), Monitor { resource, stop });
        }
    }
}

async fn watch(
    client: kube::Client,
    resource: Arc<Resource>,
    events: mpsc::Sender<GraphEvent>,
    stop: CancellationToken,
) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &resource.api);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: Option<HashSet<String>> = None;
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return,
            next = stream.next() => next,
        };
        let event = match next {
            None => return,
            Some(Ok(event)) => event,
            Some(Err(err)) => {
                tracing::debug!(resource = %resource.name(), %err, "garbage collector watch");
                continue;
            }
        };
        let message = match event.modify(|object| object.metadata.managed_fields = None) {
            Event::Init => {
                listing = Some(HashSet::new());
                continue;
            }
            Event::InitApply(object) => {
                if let (Some(seen), Some(uid)) = (listing.as_mut(), &object.metadata.uid) {
                    seen.insert(uid.clone());
                }
                GraphEvent::Observed(resource.clone(), Box::new(object.metadata))
            }
            Event::InitDone => {
                GraphEvent::Listed(resource.clone(), listing.take().unwrap_or_default())
            }
            Event::Apply(object) => {
                GraphEvent::Observed(resource.clone(), Box::new(object.metadata))
            }
            Event::Delete(object) => match object.metadata.uid {
                Some(uid) => GraphEvent::Deleted(uid),
                None => continue,
            },
        };
        if events.send(message).await.is_err() {
            return;
        }
    }
}
