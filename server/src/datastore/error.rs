//! What a datastore operation can fail with.

use super::{KeyValue, Revision};

/// A failed datastore operation.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    /// Create of a key that exists.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// Update or delete of a key that does not exist.
    #[error("key {0} not found")]
    NotFound(String),
    /// Update or delete expecting another revision than the key's.
    #[error("key {key} is at revision {}, not {expected}", current.mod_revision)]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The key's current value.
        current: Box<KeyValue>,
    },
    /// A read or watch at a revision whose history is compacted.
    #[error("revision {requested} is compacted (history starts after {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compacted revision.
        compacted: Revision,
    },
    /// A read at a revision that does not exist yet.
    #[error("revision {requested} is in the future (the current one is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// The database failed.
    #[error("datastore {op}: {source}")]
    Sqlite {
        /// What was being done.
        op: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file or its directory could not be prepared.
    #[error("datastore {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl DatastoreError {
    /// A database error while doing `op`.
    pub(crate) fn sqlite(op: &'static str) -> impl FnOnce(rusqlite::Error) -> Self {
        move |source| DatastoreError::Sqlite { op, source }
    }
}
