//! The datastore: a revisioned key-value log, the model kine implements on
//! SQL and the one the apiserver needs from etcd.
//!
//! Every write appends a row and gets the next revision, the cluster-wide
//! `resourceVersion`. A key's current value is its latest row; reads at an
//! older revision see the latest row at or below it, until compaction drops
//! rows that no read may need any more (then such reads answer
//! [`DatastoreError::Compacted`], which the apiserver turns into 410 Gone).
//! Watches replay the log from a revision, then follow new writes.
//!
//! # Layout
//!
//! - `error`: [`DatastoreError`].
//! - `sqlite`: [`SqliteLog`], the embedded default (SQLite in WAL mode).
//! - `watch`: [`Watch`], a stream of [`Event`]s from a revision.

mod error;
mod sqlite;
mod watch;

pub use error::DatastoreError;
pub use sqlite::SqliteLog;
pub use watch::Watch;

/// A revision of the log; 0 means "none" (or "the current one" in reads).
pub type Revision = i64;

/// A key's value as of one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, e.g. `/registry/configmaps/default/app`.
    pub key: String,
    /// The revision that created the key (after its last deletion).
    pub create_revision: Revision,
    /// The revision of this value.
    pub mod_revision: Revision,
    /// The value (an API object's JSON).
    pub value: Vec<u8>,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created.
    Create,
    /// The key's value was replaced.
    Update,
    /// The key was deleted.
    Delete,
}

/// One write, as watchers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The key's value after the write; for a delete, the value it had (at
    /// the delete's revision).
    pub kv: KeyValue,
    /// The revision of the value before the write (0 for a create).
    pub prev_revision: Revision,
}

/// Which keys a list reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Keys starting with this.
    pub prefix: String,
    /// Only keys after this one (a `continue` token's key), exclusive.
    pub start_after: Option<String>,
    /// At this revision (0: the current one).
    pub revision: Revision,
    /// At most this many keys (0: all).
    pub limit: usize,
}

/// A list's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// The revision read at.
    pub revision: Revision,
    /// Whether keys remain after the last one returned.
    pub more: bool,
}

/// The operations the apiserver needs, on a revision log.
pub trait RevisionLog: Send + Sync {
    /// The latest revision.
    fn current_revision(&self) -> Result<Revision, DatastoreError>;
    /// The revision below which history is gone.
    fn compact_revision(&self) -> Result<Revision, DatastoreError>;
    /// Creates `key`; [`DatastoreError::AlreadyExists`] when it exists.
    fn create(&self, key: &str, value: &[u8], lease: i64) -> Result<Revision, DatastoreError>;
    /// Replaces `key`'s value if its current revision is `expected`;
    /// [`DatastoreError::Conflict`] with the current value otherwise.
    fn update(
        &self,
        key: &str,
        value: &[u8],
        expected: Revision,
        lease: i64,
    ) -> Result<KeyValue, DatastoreError>;
    /// Deletes `key` if its current revision is `expected` (0: any);
    /// returns the deleted value and the delete's revision.
    fn delete(&self, key: &str, expected: Revision)
    -> Result<(KeyValue, Revision), DatastoreError>;
    /// `key`'s value at `revision` (0: current), `None` when absent.
    fn get(&self, key: &str, revision: Revision) -> Result<Option<KeyValue>, DatastoreError>;
    /// Keys under a prefix, in key order.
    fn list(&self, options: &ListOptions) -> Result<ListResult, DatastoreError>;
    /// How many keys are under `prefix` now.
    fn count(&self, prefix: &str) -> Result<usize, DatastoreError>;
    /// Events after `after` (exclusive) for keys under `prefix`, in revision
    /// order, at most `limit`.
    fn events(
        &self,
        prefix: &str,
        after: Revision,
        limit: usize,
    ) -> Result<Vec<Event>, DatastoreError>;
    /// Drops history at or below `revision` that no read at or above it
    /// needs; returns the rows removed.
    fn compact(&self, revision: Revision) -> Result<usize, DatastoreError>;
    /// Every write from now on, once committed, in revision order.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event>;
}

/// The smallest key greater than every key starting with `prefix` (the end
/// of a prefix range), `None` when there is none.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return String::from_utf8(bytes).ok();
        }
    }
    None
}
