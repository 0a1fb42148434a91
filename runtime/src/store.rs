//! Durable records: one JSON file per sandbox or container, replaced
//! atomically (write, fsync, rename), so a restarted runtime reports exactly
//! what it reported before and a crash never leaves half a record.
//! [`RecordStore::put_unsynced`] skips the fsync for changes a restarted
//! runtime learns again from the shims (a container that started): still
//! atomic when the process dies, only a power loss may forget them.

use std::fs;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What failed while reading or writing records.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("runtime records: {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A record file is not valid JSON of the expected shape.
    #[error("runtime records: {} is corrupt: {source}", path.display())]
    Corrupt {
        /// The record file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// A record that knows its own ID.
pub trait Record: Serialize + DeserializeOwned {
    /// The ID, used as the file name.
    fn id(&self) -> &str;
}

/// A directory of JSON records of one kind.
#[derive(Debug)]
pub struct RecordStore<T> {
    dir: PathBuf,
    _kind: PhantomData<fn() -> T>,
}

impl<T: Record> RecordStore<T> {
    /// Opens (creating, mode 0700) the directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::Io {
                op: "create directory",
                path: dir.into(),
                source,
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            _kind: PhantomData,
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Every record; temporary files of interrupted writes are removed.
    pub fn load_all(&self) -> Result<Vec<T>, StoreError> {
        let io_err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { op, path, source }
        };
        let mut records = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err("read", &self.dir))? {
            let path = entry.map_err(io_err("read", &self.dir))?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") => {
                    let bytes = fs::read(&path).map_err(io_err("read", &path))?;
                    let record =
                        serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                            path: path.clone(),
                            source,
                        })?;
                    records.push(record);
                }
                Some("tmp") => {
                    let _ = fs::remove_file(&path);
                }
                _ => {}
            }
        }
        Ok(records)
    }

    /// Writes `record`, replacing any earlier version, durably.
    pub fn put(&self, record: &T) -> Result<(), StoreError> {
        self.write(record, true)
    }

    /// Writes `record` like [`RecordStore::put`], without waiting for the
    /// disk: for changes the shims can tell a restarted runtime again.
    pub fn put_unsynced(&self, record: &T) -> Result<(), StoreError> {
        self.write(record, false)
    }

    fn write(&self, record: &T, sync: bool) -> Result<(), StoreError> {
        let path = self.path(record.id());
        // A temporary name of its own per write: two writers of one record
        // never share (and rename away) each other's file.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
        let io_err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { op, path, source }
        };
        let bytes = serde_json::to_vec(record).map_err(|source| StoreError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        file.write_all(&bytes).map_err(io_err("write", &tmp))?;
        if sync {
            file.sync_all().map_err(io_err("sync", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err("rename", &path))
    }

    /// Deletes the record `id` (already gone is fine).
    pub fn delete(&self, id: &str) -> Result<(), StoreError> {
        let path = self.path(id);
        match fs::remove_file(&path) {
            Err(source) if source.kind() != io::ErrorKind::NotFound => Err(StoreError::Io {
                op: "remove",
                path,
                source,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Thing {
        id: String,
        value: u32,
    }

    impl Record for Thing {
        fn id(&self) -> &str {
            &self.id
        }
    }

    #[test]
    fn records_round_trip_replace_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::<Thing>::open(&dir.path().join("things")).unwrap();
        store
            .put(&Thing {
                id: "a".into(),
                value: 1,
            })
            .unwrap();
        store
            .put(&Thing {
                id: "a".into(),
                value: 2,
            })
            .unwrap();
        fs::write(dir.path().join("things/b.tmp"), "{half").unwrap();
        let reopened = RecordStore::<Thing>::open(&dir.path().join("things")).unwrap();
        assert_eq!(
            reopened.load_all().unwrap(),
            vec![Thing {
                id: "a".into(),
                value: 2
            }]
        );
        assert!(!dir.path().join("things/b.tmp").exists());
        reopened.delete("a").unwrap();
        reopened.delete("a").unwrap();
        assert!(reopened.load_all().unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_record_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::<Thing>::open(dir.path()).unwrap();
        fs::write(dir.path().join("x.json"), "not json").unwrap();
        let err = store.load_all().unwrap_err();
        assert!(err.to_string().contains("x.json"), "{err}");
    }
}
