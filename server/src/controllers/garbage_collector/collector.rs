//! The collector's decisions, checked against the API before each write
//! (upstream's `attemptToDeleteItem`, `processDeletingDependentsItem` and
//! `attemptToOrphanWorker`):
//!
//! - an object whose owners are all gone (absent, or present with another
//!   UID) is deleted, with the propagation its own finalizers ask for;
//! - an object with a live owner loses only its references to gone owners;
//! - an object whose owners wait for their dependents (foreground) is
//!   deleted in the foreground when it has dependents itself;
//! - a foreground-deleted owner loses its `foregroundDeletion` finalizer
//!   once no dependent with blockOwnerDeletion remains;
//! - an owner with the `orphan` finalizer has its references removed from
//!   its dependents, then the finalizer.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::PropagationPolicy;
use serde_json::{Value, json};

use super::graph::{FOREGROUND_FINALIZER, Graph, Identity, Node, ORPHAN_FINALIZER, Work};
use super::queue::WorkQueue;
use super::resources::{Resource, Resources};

/// How many absent owners are remembered (upstream's `absentOwnerCache`).
const ABSENT_CACHE_SIZE: usize = 500;
/// Attempts of a read-modify-write patch that meets conflicts.
const PATCH_ATTEMPTS: usize = 5;

/// An object's address in the API.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its resource.
    pub resource: Arc<Resource>,
    /// Its namespace, for namespaced resources.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.resource.name(), ns, self.name),
            None => write!(f, "{} {}", self.resource.name(), self.name),
        }
    }
}

/// What the collector does to the API (a fake in unit tests).
pub trait Objects: Send + Sync {
    /// The object's metadata, None when it does not exist.
    fn get(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<Option<ObjectMeta>, kube::Error>> + Send;
    /// Deletes the object if its UID is `uid`; gone already is not an error.
    fn delete(
        &self,
        target: &Target,
        uid: &str,
        policy: PropagationPolicy,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;
    /// Applies a JSON merge patch to the object.
    fn patch(
        &self,
        target: &Target,
        patch: Value,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;
    /// Records a Warning event on an object.
    fn warn(
        &self,
        object: &Identity,
        reason: &str,
        message: String,
    ) -> impl Future<Output = ()> + Send;
}

/// A failed attempt; the item is tried again after a back-off.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// An API call failed.
    #[error("{action} {target}: {source}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// To what.
        target: String,
        /// The API error.
        source: Box<kube::Error>,
    },
    /// Discovery does not know where objects of this kind live.
    #[error("no served resource has apiVersion {api_version} and kind {kind}")]
    Unmapped {
        /// The reference's apiVersion.
        api_version: String,
        /// The reference's kind.
        kind: String,
    },
    /// Every attempt of a patch met a conflict.
    #[error("{target} kept changing while being patched")]
    Conflicts {
        /// The object.
        target: String,
    },
}

/// What to do with an item after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Finished with it.
    Done,
    /// Try again later (a virtual node not yet seen by a monitor).
    Requeue,
}

#[derive(Debug, Default)]
struct AbsentCache {
    order: VecDeque<String>,
    keys: HashSet<String>,
}

impl AbsentCache {
    fn key(owner: &OwnerReference, namespace: Option<&str>) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            owner.api_version,
            owner.kind,
            namespace.unwrap_or(""),
            owner.name,
            owner.uid
        )
    }

    fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    fn add(&mut self, key: String) {
        if self.keys.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > ABSENT_CACHE_SIZE
                && let Some(oldest) = self.order.pop_front()
            {
                self.keys.remove(&oldest);
            }
        }
    }
}

enum OwnerState {
    Absent,
    Waiting,
    Solid,
    /// A namespaced owner referenced from a cluster-scoped object.
    InvalidScope,
}

#[derive(Default)]
struct Classified {
    solid: Vec<OwnerReference>,
    dangling: Vec<OwnerReference>,
    waiting: Vec<OwnerReference>,
}

/// The graph, the resources, the queues and the API, shared by the
/// graph builder and the workers.
#[derive(Debug)]
pub struct Collector<O> {
    graph: Mutex<Graph>,
    resources: RwLock<Resources>,
    absent: Mutex<AbsentCache>,
    /// Items to attempt to delete.
    pub deletes: Arc<WorkQueue>,
    /// Owners whose dependents to orphan.
    pub orphans: Arc<WorkQueue>,
    /// The API.
    pub objects: O,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn has_finalizer(meta: &ObjectMeta, name: &str) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == name))
}

fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == code)
}

impl<O: Objects> Collector<O> {
    /// A collector writing through `objects`.
    pub fn new(objects: O) -> Self {
        Self {
            graph: Mutex::new(Graph::default()),
            resources: RwLock::new(Resources::default()),
            absent: Mutex::new(AbsentCache::default()),
            deletes: Arc::new(WorkQueue::default()),
            orphans: Arc::new(WorkQueue::default()),
            objects,
        }
    }

    /// The graph, locked.
    pub fn graph(&self) -> MutexGuard<'_, Graph> {
        lock(&self.graph)
    }

    /// Replaces what discovery found.
    pub fn set_resources(&self, resources: Resources) {
        *self
            .resources
            .write()
            .unwrap_or_else(PoisonError::into_inner) = resources;
    }

    fn resolve(&self, api_version: &str, kind: &str) -> Result<Arc<Resource>, GcError> {
        self.resources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .resolve(api_version, kind)
            .ok_or_else(|| GcError::Unmapped {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            })
    }

    /// Queues what a graph change asks for.
    pub fn enqueue(&self, work: Vec<Work>) {
        for item in work {
            match item {
                Work::Delete(uid) => self.deletes.add(uid),
                Work::Orphan(uid) => self.orphans.add(uid),
            }
        }
    }

    /// Where a node lives; None for a namespaced kind without a namespace
    /// (a virtual owner named by a cluster-scoped object: it cannot exist).
    fn target_of(&self, node: &Node) -> Result<Option<Target>, GcError> {
        let resource = match &node.resource {
            Some(resource) => resource.clone(),
            None => self.resolve(&node.identity.api_version, &node.identity.kind)?,
        };
        let namespace = if resource.namespaced {
            match &node.identity.namespace {
                Some(ns) => Some(ns.clone()),
                None => return Ok(None),
            }
        } else {
            None
        };
        Ok(Some(Target {
            resource,
            namespace,
            name: node.identity.name.clone(),
        }))
    }

    async fn get(&self, target: &Target) -> Result<Option<ObjectMeta>, GcError> {
        self.objects
            .get(target)
            .await
            .map_err(|source| GcError::Api {
                action: "getting",
                target: target.to_string(),
                source: Box::new(source),
            })
    }

    async fn delete(
        &self,
        target: &Target,
        uid: &str,
        policy: PropagationPolicy,
    ) -> Result<(), GcError> {
        tracing::debug!(%target, ?policy, "garbage collector deleting");
        match self.objects.delete(target, uid, policy).await {
            Ok(()) => Ok(()),
            Err(err) if is_status(&err, 404) => Ok(()),
            Err(source) => Err(GcError::Api {
                action: "deleting",
                target: target.to_string(),
                source: Box::new(source),
            }),
        }
    }

    /// Attempts to delete (or first verify) the node with `uid`.
    pub async fn attempt_to_delete(&self, uid: &str) -> Result<Outcome, GcError> {
        let Some(node) = self.graph().node(uid).cloned() else {
            return Ok(Outcome::Done);
        };
        // Being deleted is a one-way trip: its dependents are handled when it goes.
        if node.being_deleted && !node.deleting_dependents {
            return Ok(Outcome::Done);
        }
        let latest = match self.target_of(&node)? {
            Some(target) => self.get(&target).await?.map(|meta| (target, meta)),
            None => None,
        };
        let Some((target, latest)) = latest.filter(|(_, m)| m.uid.as_deref() == Some(uid)) else {
            let work = self.graph().absent(&node.identity);
            self.enqueue(work);
            return Ok(Outcome::Done);
        };
        if node.deleting_dependents {
            self.process_deleting_dependents(&node, &target).await?;
            return Ok(Outcome::Done);
        }
        let owners = latest.owner_references.clone().unwrap_or_default();
        if !owners.is_empty() {
            let Some(classified) = self.classify(&node.identity, &owners).await? else {
                return Ok(Outcome::Done);
            };
            self.act(&node, &target, &latest, classified).await?;
        }
        let still_virtual = self.graph().node(uid).is_some_and(|n| !n.observed());
        Ok(if still_virtual {
            Outcome::Requeue
        } else {
            Outcome::Done
        })
    }

    async fn act(
        &self,
        node: &Node,
        target: &Target,
        latest: &ObjectMeta,
        classified: Classified,
    ) -> Result<(), GcError> {
        let uid = node.identity.uid.as_str();
        if !classified.solid.is_empty() {
            let gone: HashSet<&str> = classified
                .dangling
                .iter()
                .chain(&classified.waiting)
                .map(|o| o.uid.as_str())
                .collect();
            if !gone.is_empty() {
                self.edit_owner_references(target, uid, |refs| {
                    refs.retain(|r| !gone.contains(r.uid.as_str()));
                })
                .await?;
            }
            return Ok(());
        }
        let has_dependents = self.graph().has_dependents(uid);
        if !classified.waiting.is_empty() && has_dependents {
            let cycle = self
                .graph()
                .dependents(uid)
                .iter()
                .any(|d| d.deleting_dependents);
            if cycle {
                // A dependent waits for this one while this one would wait
                // for its owners: stop blocking the owners.
                let waiting: HashSet<&str> =
                    classified.waiting.iter().map(|o| o.uid.as_str()).collect();
                self.edit_owner_references(target, uid, |refs| {
                    for r in refs.iter_mut().filter(|r| waiting.contains(r.uid.as_str())) {
                        r.block_owner_deletion = Some(false);
                    }
                })
                .await?;
            }
            return self
                .delete(target, uid, PropagationPolicy::Foreground)
                .await;
        }
        let policy = if has_finalizer(latest, ORPHAN_FINALIZER) {
            PropagationPolicy::Orphan
        } else if has_finalizer(latest, FOREGROUND_FINALIZER) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        self.delete(target, uid, policy).await
    }

    async fn classify(
        &self,
        dependent: &Identity,
        owners: &[OwnerReference],
    ) -> Result<Option<Classified>, GcError> {
        let mut classified = Classified::default();
        for owner in owners {
            match self.owner_state(dependent, owner).await? {
                OwnerState::Absent => classified.dangling.push(owner.clone()),
                OwnerState::Waiting => classified.waiting.push(owner.clone()),
                OwnerState::Solid => classified.solid.push(owner.clone()),
                OwnerState::InvalidScope => {
                    let message = format!(
                        "ownerRef [{}/{}, namespace: , name: {}, uid: {}] does not exist in namespace \"\"",
                        owner.api_version, owner.kind, owner.name, owner.uid
                    );
                    self.objects
                        .warn(dependent, "OwnerRefInvalidNamespace", message)
                        .await;
                    return Ok(None);
                }
            }
        }
        Ok(Some(classified))
    }

    async fn owner_state(
        &self,
        dependent: &Identity,
        owner: &OwnerReference,
    ) -> Result<OwnerState, GcError> {
        {
            let absent = lock(&self.absent);
            if absent.contains(&AbsentCache::key(owner, None))
                || absent.contains(&AbsentCache::key(owner, dependent.namespace.as_deref()))
            {
                return Ok(OwnerState::Absent);
            }
        }
        let resource = self.resolve(&owner.api_version, &owner.kind)?;
        let namespace = if resource.namespaced {
            match &dependent.namespace {
                Some(ns) => Some(ns.clone()),
                None => return Ok(OwnerState::InvalidScope),
            }
        } else {
            None
        };
        let cache_key = AbsentCache::key(owner, namespace.as_deref());
        let target = Target {
            resource,
            namespace,
            name: owner.name.clone(),
        };
        match self.get(&target).await? {
            Some(meta) if meta.uid.as_deref() == Some(owner.uid.as_str()) => {
                if meta.deletion_timestamp.is_some() && has_finalizer(&meta, FOREGROUND_FINALIZER) {
                    Ok(OwnerState::Waiting)
                } else {
                    Ok(OwnerState::Solid)
                }
            }
            _ => {
                lock(&self.absent).add(cache_key);
                Ok(OwnerState::Absent)
            }
        }
    }

    async fn process_deleting_dependents(
        &self,
        node: &Node,
        target: &Target,
    ) -> Result<(), GcError> {
        let blocking = self.graph().blocking_dependents(&node.identity.uid);
        if blocking.is_empty() {
            return self
                .remove_finalizer(target, &node.identity.uid, FOREGROUND_FINALIZER)
                .await;
        }
        for dependent in blocking {
            if !dependent.deleting_dependents {
                self.deletes.add(dependent.identity.uid);
            }
        }
        Ok(())
    }

    /// Removes the owner's references from its dependents, then its
    /// `orphan` finalizer.
    pub async fn attempt_to_orphan(&self, uid: &str) -> Result<Outcome, GcError> {
        let (node, dependents) = {
            let graph = self.graph();
            let Some(node) = graph.node(uid).cloned() else {
                return Ok(Outcome::Done);
            };
            (node, graph.dependents(uid))
        };
        for dependent in dependents {
            let Some(target) = self.target_of(&dependent)? else {
                continue;
            };
            self.edit_owner_references(&target, &dependent.identity.uid, |refs| {
                refs.retain(|r| r.uid != uid);
            })
            .await?;
        }
        if let Some(target) = self.target_of(&node)? {
            self.remove_finalizer(&target, uid, ORPHAN_FINALIZER)
                .await?;
        }
        Ok(Outcome::Done)
    }

    /// Read-modify-write of an object's metadata with its resourceVersion
    /// as precondition; `edit` returns the new metadata fields, None when
    /// nothing is to change.
    async fn patch_metadata(
        &self,
        target: &Target,
        uid: &str,
        edit: impl Fn(&ObjectMeta) -> Option<Value>,
    ) -> Result<(), GcError> {
        for _ in 0..PATCH_ATTEMPTS {
            let Some(meta) = self.get(target).await? else {
                return Ok(());
            };
            if meta.uid.as_deref() != Some(uid) {
                return Ok(());
            }
            let Some(mut fields) = edit(&meta) else {
                return Ok(());
            };
            fields["resourceVersion"] = json!(meta.resource_version);
            match self
                .objects
                .patch(target, json!({ "metadata": fields }))
                .await
            {
                Ok(()) => return Ok(()),
                Err(err) if is_status(&err, 409) => continue,
                Err(err) if is_status(&err, 404) => return Ok(()),
                Err(source) => {
                    return Err(GcError::Api {
                        action: "patching",
                        target: target.to_string(),
                        source: Box::new(source),
                    });
                }
            }
        }
        Err(GcError::Conflicts {
            target: target.to_string(),
        })
    }

    async fn edit_owner_references(
        &self,
        target: &Target,
        uid: &str,
        edit: impl Fn(&mut Vec<OwnerReference>),
    ) -> Result<(), GcError> {
        self.patch_metadata(target, uid, |meta| {
            let before = meta.owner_references.clone().unwrap_or_default();
            let mut after = before.clone();
            edit(&mut after);
            if after == before {
                return None;
            }
            let refs = if after.is_empty() {
                Value::Null
            } else {
                json!(after)
            };
            Some(json!({ "ownerReferences": refs }))
        })
        .await
    }

    async fn remove_finalizer(
        &self,
        target: &Target,
        uid: &str,
        finalizer: &str,
    ) -> Result<(), GcError> {
        self.patch_metadata(target, uid, |meta| {
            if !has_finalizer(meta, finalizer) {
                return None;
            }
            let kept: Vec<&String> = meta
                .finalizers
                .iter()
                .flatten()
                .filter(|f| *f != finalizer)
                .collect();
            let finalizers = if kept.is_empty() {
                Value::Null
            } else {
                json!(kept)
            };
            Some(json!({ "finalizers": finalizers }))
        })
        .await
    }
}

#[cfg(test)]
mod tests;
