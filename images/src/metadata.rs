//! The store's durable index: images, their names and layers, and snapshots,
//! in one SQLite database (WAL mode) so every change is one transaction and
//! a crash leaves either the old or the new state, never a mix.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::digest::Digest;

/// What failed in the metadata database.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// SQLite refused an operation.
    #[error("image metadata database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The disk (or the filesystem's quota) is full: nothing was written.
    #[error("image metadata database {path}: No space left on device (SQLite: {source})")]
    NoSpace {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A row holds a value Skiff did not write (a damaged or foreign database).
    #[error("image metadata database {path}: corrupt row: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl MetadataError {
    fn from_sqlite(path: &Path, source: rusqlite::Error) -> Self {
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => Self::NoSpace { path, source },
            _ => Self::Sqlite { path, source },
        }
    }
}

/// One layer of an image, bottom-most first in [`ImageRecord::layers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// The (compressed) blob's digest, as the manifest names it.
    pub blob_digest: Digest,
    /// The blob's size in bytes.
    pub blob_size: u64,
    /// The blob's media type.
    pub media_type: String,
    /// The digest of the uncompressed layer tar: the snapshot key.
    pub diff_id: Digest,
}

/// An image as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The image ID: its config's digest.
    pub id: Digest,
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    /// The platform manifest's media type.
    pub manifest_media_type: String,
    /// Every name of the image: tags (`repo:tag`) and repo digests (`repo@sha256:…`).
    pub names: Vec<String>,
    /// Layers, bottom-most first.
    pub layers: Vec<LayerRef>,
    /// Manifest, config and layer blob sizes added up, as containerd reports it.
    pub size: u64,
    /// The config's `User` (may be empty).
    pub user: String,
    /// Pinned images are never garbage-collected.
    pub pinned: bool,
    /// When the image was first stored (Unix seconds).
    pub created_at: i64,
    /// When the image was last pulled or used (Unix seconds).
    pub last_used: i64,
}

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// One unpacked layer, shared by every image that has it.
    Layer,
    /// A container's writable upper directory.
    Container,
}

/// A snapshot directory's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// Short numeric ID: the directory name under `snapshots/`.
    pub id: i64,
    /// Layer or container.
    pub kind: SnapshotKind,
    /// The diff ID (layers) or the caller's key (containers).
    pub key: String,
    /// For containers: the image the rootfs was prepared from.
    pub image: Option<Digest>,
    /// False while being unpacked or prepared: such rows are leftovers of a crash.
    pub ready: bool,
    /// Bytes used on disk (layers: measured when unpacked).
    pub disk_usage: u64,
    /// Inodes used (layers: counted when unpacked).
    pub inodes: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    user TEXT NOT NULL,
    pinned INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    last_used INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_names (
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    blob_digest TEXT NOT NULL,
    blob_size INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    diff_id TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    image_id TEXT,
    ready INTEGER NOT NULL DEFAULT 0,
    disk_usage INTEGER NOT NULL DEFAULT 0,
    inodes INTEGER NOT NULL DEFAULT 0
);
";

/// The metadata database.
#[derive(Debug)]
pub struct Metadata {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Metadata {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, MetadataError> {
        let err = |source| MetadataError::from_sqlite(path, source);
        let conn = Connection::open(path).map_err(err)?;
        // NORMAL is crash-safe in WAL mode: a power cut may lose the newest
        // transaction, never consistency; files are synced before commit.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON; PRAGMA cache_size = -512; PRAGMA busy_timeout = 5000;",
        )
        .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        restrict_permissions(path);
        Ok(Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, MetadataError> {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut conn).map_err(|source| MetadataError::from_sqlite(&self.path, source))
    }

    fn corrupt(&self, detail: String) -> MetadataError {
        MetadataError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    /// Every image, with names and layers.
    pub fn images(&self) -> Result<Vec<ImageRecord>, MetadataError> {
        type Row = (String, String, String, i64, String, bool, i64, i64);
        type LayerRow = (String, String, i64, String, String);
        let (rows, names, layers) = self.with(|conn| {
            let rows: Vec<Row> = conn
                .prepare(
                    "SELECT id, manifest_digest, manifest_media_type, size, user, pinned, \
                     created_at, last_used FROM images ORDER BY created_at, id",
                )?
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            let names: Vec<(String, String)> = conn
                .prepare("SELECT image_id, name FROM image_names ORDER BY name")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let layers: Vec<LayerRow> = conn
                .prepare(
                    "SELECT image_id, blob_digest, blob_size, media_type, diff_id \
                     FROM image_layers ORDER BY image_id, position",
                )?
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            Ok((rows, names, layers))
        })?;

        let digest = |s: &str| s.parse::<Digest>().map_err(|e| self.corrupt(e.to_string()));
        let mut images = Vec::with_capacity(rows.len());
        for (id, manifest_digest, media_type, size, user, pinned, created_at, last_used) in rows {
            let image_names = names
                .iter()
                .filter(|(i, _)| *i == id)
                .map(|(_, n)| n.clone())
                .collect();
            let mut image_layers = Vec::new();
            for (_, blob, blob_size, layer_media_type, diff_id) in
                layers.iter().filter(|(i, ..)| *i == id)
            {
                image_layers.push(LayerRef {
                    blob_digest: digest(blob)?,
                    blob_size: *blob_size as u64,
                    media_type: layer_media_type.clone(),
                    diff_id: digest(diff_id)?,
                });
            }
            images.push(ImageRecord {
                id: digest(&id)?,
                manifest_digest: digest(&manifest_digest)?,
                manifest_media_type: media_type,
                names: image_names,
                layers: image_layers,
                size: size as u64,
                user,
                pinned,
                created_at,
                last_used,
            });
        }
        Ok(images)
    }

    /// Stores `image` and gives it its names (moving a name from whichever
    /// image had it), in one transaction. Layers are replaced; an existing
    /// image keeps its other names and its creation time.
    pub fn put_image(&self, image: &ImageRecord) -> Result<(), MetadataError> {
        let id = image.id.to_string();
        self.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO images (id, manifest_digest, manifest_media_type, size, user, pinned, \
                 created_at, last_used) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest, \
                 manifest_media_type = excluded.manifest_media_type, size = excluded.size, \
                 user = excluded.user, pinned = images.pinned OR excluded.pinned, \
                 last_used = excluded.last_used",
                params![
                    id,
                    image.manifest_digest.to_string(),
                    image.manifest_media_type,
                    image.size as i64,
                    image.user,
                    image.pinned,
                    image.created_at,
                    image.last_used
                ],
            )?;
            tx.execute("DELETE FROM image_layers WHERE image_id = ?1", [&id])?;
            for (position, layer) in image.layers.iter().enumerate() {
                tx.execute(
                    "INSERT INTO image_layers (image_id, position, blob_digest, blob_size, \
                     media_type, diff_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id,
                        position as i64,
                        layer.blob_digest.to_string(),
                        layer.blob_size as i64,
                        layer.media_type,
                        layer.diff_id.to_string()
                    ],
                )?;
            }
            for name in &image.names {
                tx.execute(
                    "INSERT INTO image_names (name, image_id) VALUES (?1, ?2) \
                     ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                    params![name, id],
                )?;
            }
            tx.commit()
        })
    }

    /// Deletes an image with its names and layer list (not its snapshots).
    pub fn delete_image(&self, id: &Digest) -> Result<(), MetadataError> {
        self.with(|conn| {
            conn.execute("DELETE FROM images WHERE id = ?1", [id.to_string()])
                .map(drop)
        })
    }

    /// Records that an image was used now.
    pub fn touch_image(&self, id: &Digest, now: i64) -> Result<(), MetadataError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE images SET last_used = ?2 WHERE id = ?1",
                params![id.to_string(), now],
            )
            .map(drop)
        })
    }

    /// Starts a snapshot: a row in the not-ready state whose ID names its directory.
    pub fn begin_snapshot(
        &self,
        kind: SnapshotKind,
        key: &str,
        image: Option<&Digest>,
    ) -> Result<i64, MetadataError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO snapshots (kind, key, image_id, ready) VALUES (?1, ?2, ?3, 0)",
                params![kind_name(kind), key, image.map(Digest::to_string)],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    /// Marks a snapshot ready, with its measured usage.
    pub fn finish_snapshot(
        &self,
        id: i64,
        disk_usage: u64,
        inodes: u64,
    ) -> Result<(), MetadataError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE snapshots SET ready = 1, disk_usage = ?2, inodes = ?3 WHERE id = ?1",
                params![id, disk_usage as i64, inodes as i64],
            )
            .map(drop)
        })
    }

    /// Forgets a snapshot.
    pub fn delete_snapshot(&self, id: i64) -> Result<(), MetadataError> {
        self.with(|conn| {
            conn.execute("DELETE FROM snapshots WHERE id = ?1", [id])
                .map(drop)
        })
    }

    /// Every snapshot.
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>, MetadataError> {
        type Row = (i64, String, String, Option<String>, bool, i64, i64);
        let rows: Vec<Row> = self.with(|conn| {
            conn.prepare(
                "SELECT id, kind, key, image_id, ready, disk_usage, inodes FROM snapshots ORDER BY id",
            )?
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })?
            .collect()
        })?;
        rows.into_iter()
            .map(|(id, kind, key, image, ready, disk_usage, inodes)| {
                let kind = match kind.as_str() {
                    "layer" => SnapshotKind::Layer,
                    "container" => SnapshotKind::Container,
                    other => return Err(self.corrupt(format!("snapshot {id} has kind {other:?}"))),
                };
                let image = image
                    .map(|s| s.parse::<Digest>().map_err(|e| self.corrupt(e.to_string())))
                    .transpose()?;
                Ok(SnapshotRecord {
                    id,
                    kind,
                    key,
                    image,
                    ready,
                    disk_usage: disk_usage as u64,
                    inodes: inodes as u64,
                })
            })
            .collect()
    }

    /// The snapshot with `key`, if any.
    pub fn snapshot(&self, key: &str) -> Result<Option<SnapshotRecord>, MetadataError> {
        let id: Option<i64> = self.with(|conn| {
            conn.query_row("SELECT id FROM snapshots WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
        })?;
        match id {
            None => Ok(None),
            Some(id) => Ok(self.snapshots()?.into_iter().find(|s| s.id == id)),
        }
    }
}

fn kind_name(kind: SnapshotKind) -> &'static str {
    match kind {
        SnapshotKind::Layer => "layer",
        SnapshotKind::Container => "container",
    }
}

fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for file in [
        path.to_path_buf(),
        path.with_extension("db-wal"),
        path.with_extension("db-shm"),
    ] {
        let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(config: &[u8], names: &[&str]) -> ImageRecord {
        ImageRecord {
            id: Digest::sha256_of(config),
            manifest_digest: Digest::sha256_of(b"manifest"),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            layers: vec![LayerRef {
                blob_digest: Digest::sha256_of(b"blob"),
                blob_size: 4,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                diff_id: Digest::sha256_of(b"tar"),
            }],
            size: 100,
            user: "1000".into(),
            pinned: false,
            created_at: 1,
            last_used: 2,
        }
    }

    #[test]
    fn a_full_disk_is_a_no_space_error_and_keeps_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&dir.path().join("meta.db")).unwrap();
        let a = image(b"a", &["docker.io/library/a:latest"]);
        meta.put_image(&a).unwrap();
        // SQLite's page limit fails writes exactly as a full disk does.
        meta.with(|conn| {
            let pages: i64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0))?;
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
        })
        .unwrap();
        let big_name = format!("docker.io/library/b:{}", "x".repeat(64 * 1024));
        let err = meta
            .put_image(&image(b"b", &[big_name.as_str()]))
            .unwrap_err();
        assert!(matches!(err, MetadataError::NoSpace { .. }), "{err:?}");
        assert!(err.to_string().contains("No space left on device"), "{err}");
        assert_eq!(meta.images().unwrap(), vec![a]);
    }

    #[test]
    fn images_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let a = image(b"a", &["docker.io/library/a:latest"]);
        Metadata::open(&path).unwrap().put_image(&a).unwrap();
        assert_eq!(Metadata::open(&path).unwrap().images().unwrap(), vec![a]);
    }

    #[test]
    fn a_tag_moves_to_the_newer_image_and_the_old_keeps_its_other_names() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&dir.path().join("meta.db")).unwrap();
        meta.put_image(&image(b"old", &["r/x:latest", "r/x:1"]))
            .unwrap();
        meta.put_image(&image(b"new", &["r/x:latest"])).unwrap();
        let images = meta.images().unwrap();
        let names_of = |config: &[u8]| {
            images
                .iter()
                .find(|i| i.id == Digest::sha256_of(config))
                .unwrap()
                .names
                .clone()
        };
        assert_eq!(names_of(b"old"), vec!["r/x:1".to_string()]);
        assert_eq!(names_of(b"new"), vec!["r/x:latest".to_string()]);
        meta.delete_image(&Digest::sha256_of(b"old")).unwrap();
        assert_eq!(meta.images().unwrap().len(), 1);
    }

    #[test]
    fn snapshots_start_unready_and_are_found_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open(&dir.path().join("meta.db")).unwrap();
        let id = meta
            .begin_snapshot(SnapshotKind::Layer, "sha256:aa", None)
            .unwrap();
        assert!(!meta.snapshot("sha256:aa").unwrap().unwrap().ready);
        meta.finish_snapshot(id, 10, 2).unwrap();
        let snap = meta.snapshot("sha256:aa").unwrap().unwrap();
        assert!(snap.ready);
        assert_eq!((snap.disk_usage, snap.inodes), (10, 2));
        assert!(
            meta.begin_snapshot(SnapshotKind::Layer, "sha256:aa", None)
                .is_err()
        );
        meta.delete_snapshot(id).unwrap();
        assert!(meta.snapshot("sha256:aa").unwrap().is_none());
    }
}
