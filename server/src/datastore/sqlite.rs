//! [`SqliteLog`]: the revision log in one SQLite table, in WAL mode.
//!
//! Each row is one write: the key, its value (for a delete, the value it
//! had), the revision that created the key, the row before it and whether it
//! deletes. The revision is the row's `INTEGER PRIMARY KEY AUTOINCREMENT`, so
//! it only rises, also across compactions and restarts. One connection
//! writes (SQLite has one writer), committing with `synchronous=FULL`, so an
//! acknowledged write survives a killed process and a power loss; readers
//! use their own connections and never wait for the writer (WAL).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};
use tokio::sync::broadcast;

use super::{
    DatastoreError, Event, EventKind, KeyValue, ListOptions, ListResult, Revision, RevisionLog,
    prefix_end,
};

/// Events buffered for subscribers that fall behind (they then re-read the
/// log).
const EVENT_BUFFER: usize = 1024;
/// Rows a compaction deletes per transaction, so writes never wait long.
const COMPACT_BATCH: usize = 500;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    lease INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_revision ON log (key, revision);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

const COLUMNS: &str = "revision, key, create_revision, prev_revision, deleted, lease, value";

/// The revision log on an SQLite file.
#[derive(Debug)]
pub struct SqliteLog {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    events: broadcast::Sender<Event>,
}

/// A row of the log.
struct Row {
    kv: KeyValue,
    prev_revision: Revision,
    deleted: bool,
}

impl Row {
    fn from_sql(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        Ok(Row {
            kv: KeyValue {
                mod_revision: row.get(0)?,
                key: row.get(1)?,
                create_revision: row.get(2)?,
                value: row.get(6)?,
                lease: row.get(5)?,
            },
            prev_revision: row.get(3)?,
            deleted: row.get::<_, i64>(4)? != 0,
        })
    }

    fn into_event(self) -> Event {
        let kind = if self.deleted {
            EventKind::Delete
        } else if self.kv.create_revision == self.kv.mod_revision {
            EventKind::Create
        } else {
            EventKind::Update
        };
        Event {
            kind,
            kv: self.kv,
            prev_revision: self.prev_revision,
        }
    }
}

impl SqliteLog {
    /// Opens (or creates) the log at `path`; its directory is created with
    /// mode 0700 and the file is made 0600.
    pub fn open(path: &Path) -> Result<SqliteLog, DatastoreError> {
        let io = |source| DatastoreError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        let writer = connect(path)?;
        writer
            .execute_batch(SCHEMA)
            .map_err(DatastoreError::sqlite("creating the schema"))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(SqliteLog {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            events,
        })
    }

    /// Runs `read` on a reader connection from the pool.
    fn read<T>(
        &self,
        op: &'static str,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, DatastoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path)?,
        };
        let result = read(&conn).map_err(DatastoreError::sqlite(op));
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        result
    }

    /// Runs `write` in an immediate transaction on the writer; commits when
    /// it succeeds and then tells subscribers of its event.
    fn write<T>(
        &self,
        op: &'static str,
        write: impl FnOnce(&Transaction<'_>) -> Result<(T, Option<Event>), DatastoreError>,
    ) -> Result<T, DatastoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(DatastoreError::sqlite(op))?;
        let (value, event) = write(&tx)?;
        tx.commit().map_err(DatastoreError::sqlite(op))?;
        if let Some(event) = event {
            // Nobody listening is fine.
            let _ = self.events.send(event);
        }
        Ok(value)
    }

    /// The read revision for `requested` (0: current), checked against
    /// compaction and the current revision.
    fn read_revision(&self, requested: Revision) -> Result<Revision, DatastoreError> {
        let current = self.current_revision()?;
        if requested == 0 {
            return Ok(current);
        }
        if requested > current {
            return Err(DatastoreError::FutureRevision { requested, current });
        }
        let compacted = self.compact_revision()?;
        if requested < compacted {
            return Err(DatastoreError::Compacted {
                requested,
                compacted,
            });
        }
        Ok(requested)
    }
}

/// A connection with the pragmas every one needs.
fn connect(path: &Path) -> Result<Connection, DatastoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(DatastoreError::sqlite("opening the database"))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 10000;",
    )
    .map_err(DatastoreError::sqlite("configuring the database"))?;
    Ok(conn)
}

/// The latest row of `key` at or below `revision`.
fn latest(conn: &Connection, key: &str, revision: Revision) -> rusqlite::Result<Option<Row>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM log WHERE key = ?1 AND revision <= ?2 \
         ORDER BY revision DESC LIMIT 1"
    ))?
    .query_row((key, revision), Row::from_sql)
    .optional()
}

/// The latest live row of `key`, or `NotFound`.
fn live(tx: &Transaction<'_>, key: &str) -> Result<Row, DatastoreError> {
    match latest(tx, key, Revision::MAX).map_err(DatastoreError::sqlite("reading a key"))? {
        Some(row) if !row.deleted => Ok(row),
        _ => Err(DatastoreError::NotFound(key.to_owned())),
    }
}

/// The latest live row of `key` when it is at revision `expected` (0:
/// any), else `NotFound` or `Conflict`.
fn live_at(tx: &Transaction<'_>, key: &str, expected: Revision) -> Result<Row, DatastoreError> {
    let current = live(tx, key)?;
    if expected != 0 && current.kv.mod_revision != expected {
        return Err(DatastoreError::Conflict {
            key: key.to_owned(),
            expected,
            current: Box::new(current.kv),
        });
    }
    Ok(current)
}

/// Appends a row; returns its revision.
fn append(
    tx: &Transaction<'_>,
    key: &str,
    create_revision: Option<Revision>,
    prev_revision: Revision,
    deleted: bool,
    lease: i64,
    value: &[u8],
) -> rusqlite::Result<Revision> {
    tx.prepare_cached(
        "INSERT INTO log (key, create_revision, prev_revision, deleted, lease, value) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute((
        key,
        create_revision.unwrap_or(0),
        prev_revision,
        i64::from(deleted),
        lease,
        value,
    ))?;
    let revision = tx.last_insert_rowid();
    if create_revision.is_none() {
        tx.prepare_cached("UPDATE log SET create_revision = ?1 WHERE revision = ?1")?
            .execute([revision])?;
    }
    Ok(revision)
}

/// `(prefix, end)` bounds of a prefix range; `end` is `None` for no bound.
fn bounds(prefix: &str) -> (String, Option<String>) {
    (prefix.to_owned(), prefix_end(prefix))
}

impl RevisionLog for SqliteLog {
    fn current_revision(&self) -> Result<Revision, DatastoreError> {
        self.read("reading the revision", |conn| {
            conn.prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'log'")?
                .query_row([], |row| row.get(0))
                .optional()
                .map(|seq| seq.unwrap_or(0))
        })
    }

    fn compact_revision(&self) -> Result<Revision, DatastoreError> {
        self.read("reading the compacted revision", |conn| {
            conn.prepare_cached("SELECT value FROM meta WHERE name = 'compact_revision'")?
                .query_row([], |row| row.get(0))
                .optional()
                .map(|rev| rev.unwrap_or(0))
        })
    }

    fn create(&self, key: &str, value: &[u8], lease: i64) -> Result<Revision, DatastoreError> {
        self.write("creating a key", |tx| {
            let err = DatastoreError::sqlite("creating a key");
            if let Some(row) = latest(tx, key, Revision::MAX).map_err(err)?
                && !row.deleted
            {
                return Err(DatastoreError::AlreadyExists(key.to_owned()));
            }
            let revision = append(tx, key, None, 0, false, lease, value)
                .map_err(DatastoreError::sqlite("creating a key"))?;
            let kv = KeyValue {
                key: key.to_owned(),
                create_revision: revision,
                mod_revision: revision,
                value: value.to_vec(),
                lease,
            };
            let event = Event {
                kind: EventKind::Create,
                kv,
                prev_revision: 0,
            };
            Ok((revision, Some(event)))
        })
    }

    fn update(
        &self,
        key: &str,
        value: &[u8],
        expected: Revision,
        lease: i64,
    ) -> Result<KeyValue, DatastoreError> {
        self.write("updating a key", |tx| {
            let current = live_at(tx, key, expected)?;
            let create = current.kv.create_revision;
            let revision = append(
                tx,
                key,
                Some(create),
                current.kv.mod_revision,
                false,
                lease,
                value,
            )
            .map_err(DatastoreError::sqlite("updating a key"))?;
            let kv = KeyValue {
                key: key.to_owned(),
                create_revision: create,
                mod_revision: revision,
                value: value.to_vec(),
                lease,
            };
            let event = Event {
                kind: EventKind::Update,
                kv: kv.clone(),
                prev_revision: current.kv.mod_revision,
            };
            Ok((kv, Some(event)))
        })
    }

    fn delete(
        &self,
        key: &str,
        expected: Revision,
    ) -> Result<(KeyValue, Revision), DatastoreError> {
        self.write("deleting a key", |tx| {
            let current = live_at(tx, key, expected)?;
            let kv = current.kv;
            let revision = append(
                tx,
                key,
                Some(kv.create_revision),
                kv.mod_revision,
                true,
                0,
                &kv.value,
            )
            .map_err(DatastoreError::sqlite("deleting a key"))?;
            let event = Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    mod_revision: revision,
                    ..kv.clone()
                },
                prev_revision: kv.mod_revision,
            };
            Ok(((kv, revision), Some(event)))
        })
    }

    fn get(&self, key: &str, revision: Revision) -> Result<Option<KeyValue>, DatastoreError> {
        let at = if revision == 0 {
            Revision::MAX
        } else {
            self.read_revision(revision)?
        };
        let row = self.read("reading a key", |conn| latest(conn, key, at))?;
        Ok(row.filter(|row| !row.deleted).map(|row| row.kv))
    }

    fn list(&self, options: &ListOptions) -> Result<ListResult, DatastoreError> {
        let revision = self.read_revision(options.revision)?;
        let (start, end) = bounds(&options.prefix);
        let wanted = if options.limit == 0 {
            usize::MAX
        } else {
            options.limit + 1
        };
        // Keys in order, a batch at a time, each at its latest row at or
        // below the revision; deleted ones are skipped. The index on
        // (key, revision) lets a batch stop early instead of grouping the
        // whole range for every page.
        let batch = if options.limit == 0 {
            -1
        } else {
            (options.limit as i64 + 1).max(64)
        };
        let mut kvs = self.read("listing keys", |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM log WHERE revision IN (\
                   SELECT MAX(revision) FROM log \
                   WHERE key > ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3) AND revision <= ?4 \
                   GROUP BY key ORDER BY key LIMIT ?5) \
                 ORDER BY key"
            ))?;
            let mut kvs = Vec::new();
            let mut cursor = options.start_after.clone().unwrap_or_default();
            loop {
                let rows = statement
                    .query_map((&cursor, &start, &end, revision, batch), Row::from_sql)?
                    .collect::<rusqlite::Result<Vec<Row>>>()?;
                let exhausted = batch < 0 || rows.len() < batch as usize;
                if let Some(last) = rows.last() {
                    cursor = last.kv.key.clone();
                }
                kvs.extend(rows.into_iter().filter(|r| !r.deleted).map(|r| r.kv));
                if exhausted || kvs.len() >= wanted {
                    return Ok(kvs);
                }
            }
        })?;
        let more = kvs.len() > options.limit && options.limit != 0;
        if options.limit != 0 {
            kvs.truncate(options.limit);
        }
        Ok(ListResult {
            kvs,
            revision,
            more,
        })
    }

    fn count(&self, prefix: &str) -> Result<usize, DatastoreError> {
        let (start, end) = bounds(prefix);
        self.read("counting keys", |conn| {
            conn.prepare_cached(
                "SELECT COUNT(*) FROM log WHERE revision IN (\
                   SELECT MAX(revision) FROM log \
                   WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) GROUP BY key) \
                 AND deleted = 0",
            )?
            .query_row((&start, &end), |row| row.get::<_, i64>(0))
            .map(|n| n as usize)
        })
    }

    fn events(
        &self,
        prefix: &str,
        after: Revision,
        limit: usize,
    ) -> Result<Vec<Event>, DatastoreError> {
        let compacted = self.compact_revision()?;
        if after < compacted {
            return Err(DatastoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let (start, end) = bounds(prefix);
        self.read("reading events", |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM log \
                 WHERE revision > ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3) \
                 ORDER BY revision LIMIT ?4"
            ))?;
            let rows = statement.query_map((after, &start, &end, limit as i64), |row| {
                Row::from_sql(row).map(Row::into_event)
            })?;
            rows.collect()
        })
    }

    fn compact(&self, revision: Revision) -> Result<usize, DatastoreError> {
        let revision = revision.min(self.current_revision()?);
        // First say the history is gone, so that no read starts on rows
        // about to go; then delete in short transactions.
        let advanced = self.write("compacting", |tx| {
            let compacted: Revision = tx
                .query_row(
                    "SELECT value FROM meta WHERE name = 'compact_revision'",
                    [],
                    |row| row.get(0),
                )
                .optional()
                .map_err(DatastoreError::sqlite("compacting"))?
                .unwrap_or(0);
            if revision <= compacted {
                return Ok((false, None));
            }
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('compact_revision', ?1) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [revision],
            )
            .map_err(DatastoreError::sqlite("compacting"))?;
            Ok((true, None))
        })?;
        if !advanced {
            return Ok(0);
        }
        // Rows a later row of the same key at or below `revision` replaces,
        // then deletions at or below it with nothing older left.
        let passes = [
            "DELETE FROM log WHERE revision IN (\
               SELECT l.revision FROM log l WHERE l.revision <= ?1 AND EXISTS (\
                 SELECT 1 FROM log n WHERE n.key = l.key \
                 AND n.revision > l.revision AND n.revision <= ?1) \
               LIMIT ?2)",
            "DELETE FROM log WHERE revision IN (\
               SELECT revision FROM log WHERE revision <= ?1 AND deleted = 1 LIMIT ?2)",
        ];
        let mut removed = 0;
        for pass in passes {
            loop {
                let n = self.write("compacting", |tx| {
                    let n = tx
                        .prepare_cached(pass)
                        .and_then(|mut s| s.execute((revision, COMPACT_BATCH as i64)))
                        .map_err(DatastoreError::sqlite("compacting"))?;
                    Ok((n, None))
                })?;
                removed += n;
                if n < COMPACT_BATCH {
                    break;
                }
            }
        }
        Ok(removed)
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}
