//! The dependency graph (upstream's `GraphBuilder` state): a node per
//! object the monitors saw, keyed by UID, with its owner references, and
//! the reverse index from an owner UID to its dependents. Owners
//! referenced but not seen are "virtual" nodes until the API confirms or
//! denies them. Every change returns the work it implies: items to
//! attempt to delete (verify and maybe collect) or to orphan.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::resources::Resource;

/// The finalizer of an object deleted in the foreground.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer of an object whose dependents are orphaned.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// Where an object is: its coordinates and UID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its namespace, None when cluster-scoped (or for a virtual node
    /// referenced from a cluster-scoped dependent).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
}

/// One owner reference of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owner's UID.
    pub uid: String,
    /// The reference's apiVersion.
    pub api_version: String,
    /// The reference's kind.
    pub kind: String,
    /// The reference's name.
    pub name: String,
    /// `blockOwnerDeletion`.
    pub block: bool,
}

/// An object in the graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// Where it is.
    pub identity: Identity,
    /// The resource its monitor watches; None for a virtual node.
    pub resource: Option<Arc<Resource>>,
    /// Its owner references (empty for a virtual node).
    pub owners: Vec<Owner>,
    /// It has a deletionTimestamp.
    pub being_deleted: bool,
    /// Deleted in the foreground: waiting for its dependents to go.
    pub deleting_dependents: bool,
    /// Deleted with the orphan finalizer: its dependents are to be released.
    pub orphaning: bool,
}

impl Node {
    /// Whether a monitor saw it (as opposed to a virtual node).
    pub fn observed(&self) -> bool {
        self.resource.is_some()
    }
}

/// What a change asks the workers to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Attempt to delete (verify) the node with this UID.
    Delete(String),
    /// Orphan the dependents of the node with this UID.
    Orphan(String),
}

/// The objects and their ownership.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

fn owners_of(meta: &ObjectMeta) -> Vec<Owner> {
    meta.owner_references
        .iter()
        .flatten()
        .map(|r| Owner {
            uid: r.uid.clone(),
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            block: r.block_owner_deletion == Some(true),
        })
        .collect()
}

fn has_finalizer(meta: &ObjectMeta, name: &str) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == name))
}

fn matches_coordinates(owner: &Owner, identity: &Identity) -> bool {
    owner.api_version == identity.api_version
        && owner.kind == identity.kind
        && owner.name == identity.name
}

impl Graph {
    /// The node with `uid`.
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// How many nodes there are (observed and virtual).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The observed dependents of `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<Node> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d))
            .filter(|n| n.observed())
            .cloned()
            .collect()
    }

    /// Whether anything depends on `uid`.
    pub fn has_dependents(&self, uid: &str) -> bool {
        !self.dependents(uid).is_empty()
    }

    /// The dependents of `uid` whose reference to it has blockOwnerDeletion.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<Node> {
        self.dependents(uid)
            .into_iter()
            .filter(|d| d.owners.iter().any(|o| o.uid == uid && o.block))
            .collect()
    }

    /// A monitor saw `meta` (added or changed) in `resource`.
    pub fn observe(&mut self, resource: &Arc<Resource>, meta: &ObjectMeta) -> Vec<Work> {
        let Some(uid) = meta.uid.clone() else {
            return Vec::new();
        };
        let identity = Identity {
            api_version: resource.api.api_version.clone(),
            kind: resource.api.kind.clone(),
            namespace: if resource.namespaced {
                meta.namespace.clone()
            } else {
                None
            },
            name: meta.name.clone().unwrap_or_default(),
            uid: uid.clone(),
        };
        let owners = owners_of(meta);
        let being_deleted = meta.deletion_timestamp.is_some();
        let deleting_dependents = being_deleted && has_finalizer(meta, FOREGROUND_FINALIZER);
        let orphaning = being_deleted && has_finalizer(meta, ORPHAN_FINALIZER);
        let mut work = Vec::new();
        let previous = self.nodes.get(&uid).filter(|n| n.observed()).cloned();
        let (was_deleting, was_orphaning, old_owners) = match &previous {
            Some(old) => (old.deleting_dependents, old.orphaning, old.owners.clone()),
            None => (false, false, Vec::new()),
        };
        // Owners dropped, or no longer blocked on, may be waiting for this one.
        for old in &old_owners {
            let unblocked = match owners.iter().find(|o| o.uid == old.uid) {
                None => {
                    if let Some(set) = self.dependents.get_mut(&old.uid) {
                        set.remove(&uid);
                    }
                    self.drop_unreferenced_virtual(&old.uid);
                    old.block
                }
                Some(new) => old.block && !new.block,
            };
            if unblocked
                && self
                    .nodes
                    .get(&old.uid)
                    .is_some_and(|n| n.deleting_dependents)
            {
                work.push(Work::Delete(old.uid.clone()));
            }
        }
        let added: Vec<Owner> = owners
            .iter()
            .filter(|o| !old_owners.iter().any(|old| old.uid == o.uid))
            .cloned()
            .collect();
        self.nodes.insert(
            uid.clone(),
            Node {
                identity: identity.clone(),
                resource: Some(resource.clone()),
                owners,
                being_deleted,
                deleting_dependents,
                orphaning,
            },
        );
        self.add_to_owners(&identity, &added, &mut work);
        if orphaning && !was_orphaning {
            work.push(Work::Orphan(uid.clone()));
        }
        if deleting_dependents && !was_deleting {
            for dependent in self.dependents(&uid) {
                work.push(Work::Delete(dependent.identity.uid));
            }
            work.push(Work::Delete(uid));
        }
        work
    }

    fn add_to_owners(&mut self, dependent: &Identity, owners: &[Owner], work: &mut Vec<Work>) {
        let mut suspicious = false;
        for owner in owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(dependent.uid.clone());
            match self.nodes.get(&owner.uid) {
                None => {
                    // Not seen (yet): a virtual node the workers verify.
                    self.nodes.insert(
                        owner.uid.clone(),
                        Node {
                            identity: Identity {
                                api_version: owner.api_version.clone(),
                                kind: owner.kind.clone(),
                                namespace: dependent.namespace.clone(),
                                name: owner.name.clone(),
                                uid: owner.uid.clone(),
                            },
                            resource: None,
                            owners: Vec::new(),
                            being_deleted: false,
                            deleting_dependents: false,
                            orphaning: false,
                        },
                    );
                    work.push(Work::Delete(owner.uid.clone()));
                }
                Some(node) => {
                    let namespace_mismatch = node.identity.namespace.is_some()
                        && node.identity.namespace != dependent.namespace;
                    if namespace_mismatch || !matches_coordinates(owner, &node.identity) {
                        suspicious = true;
                    }
                    if node.deleting_dependents {
                        // Born into a foreground deletion: it goes too.
                        suspicious = true;
                    }
                }
            }
        }
        if suspicious {
            work.push(Work::Delete(dependent.uid.clone()));
        }
    }

    fn drop_unreferenced_virtual(&mut self, uid: &str) {
        let referenced = self.dependents.get(uid).is_some_and(|d| !d.is_empty());
        if !referenced {
            self.dependents.remove(uid);
            if self.nodes.get(uid).is_some_and(|n| !n.observed()) {
                self.nodes.remove(uid);
            }
        }
    }

    /// The object with `uid` is gone.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut work: Vec<Work> = self
            .dependents
            .get(uid)
            .into_iter()
            .flatten()
            .map(|d| Work::Delete(d.clone()))
            .collect();
        if self.dependents.get(uid).is_some_and(|d| d.is_empty()) {
            self.dependents.remove(uid);
        }
        for owner in &node.owners {
            if let Some(set) = self.dependents.get_mut(&owner.uid) {
                set.remove(uid);
            }
            if self
                .nodes
                .get(&owner.uid)
                .is_some_and(|n| n.deleting_dependents)
            {
                work.push(Work::Delete(owner.uid.clone()));
            }
            self.drop_unreferenced_virtual(&owner.uid);
        }
        work
    }

    /// The API says nothing with `identity` exists (a "virtual delete"):
    /// a virtual node goes; an observed one goes when its coordinates are
    /// these, else only the dependents that use these coordinates are
    /// checked again.
    pub fn absent(&mut self, identity: &Identity) -> Vec<Work> {
        let Some(node) = self.nodes.get(&identity.uid) else {
            return Vec::new();
        };
        if !node.observed() || node.identity == *identity {
            return self.remove(&identity.uid);
        }
        self.dependents(&identity.uid)
            .into_iter()
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == identity.uid && matches_coordinates(o, identity))
            })
            .map(|d| Work::Delete(d.identity.uid))
            .collect()
    }

    /// A monitor listed `resource` again and saw only `seen`: the rest of
    /// its objects are gone.
    pub fn relisted(&mut self, resource: &Arc<Resource>, seen: &HashSet<String>) -> Vec<Work> {
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(uid, n)| {
                n.resource
                    .as_ref()
                    .is_some_and(|r| Arc::ptr_eq(r, resource))
                    && !seen.contains(*uid)
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        gone.iter().flat_map(|uid| self.remove(uid)).collect()
    }

    /// The monitor of `resource` stopped (the resource is no longer
    /// served): its objects leave the graph.
    pub fn forget_resource(&mut self, resource: &Arc<Resource>) -> Vec<Work> {
        self.relisted(resource, &HashSet::new())
    }
}

#[cfg(test)]
mod tests;
