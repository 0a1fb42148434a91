//! The SQLite revision log on real files.

use std::sync::Arc;
use std::time::Duration;

use skiff_server::datastore::{
    DatastoreError, EventKind, ListOptions, RevisionLog, SqliteLog, Watch,
};

fn open(dir: &tempfile::TempDir) -> SqliteLog {
    SqliteLog::open(&dir.path().join("db/state.db")).unwrap()
}

fn list(
    log: &SqliteLog,
    prefix: &str,
    revision: i64,
    limit: usize,
    after: Option<&str>,
) -> Vec<String> {
    log.list(&ListOptions {
        prefix: prefix.into(),
        start_after: after.map(str::to_owned),
        revision,
        limit,
    })
    .unwrap()
    .kvs
    .into_iter()
    .map(|kv| format!("{}={}", kv.key, String::from_utf8_lossy(&kv.value)))
    .collect()
}

#[test]
fn writes_get_rising_revisions_and_check_the_expected_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    assert_eq!(log.current_revision().unwrap(), 0);
    let r1 = log.create("/a/x", b"1", 0).unwrap();
    assert!(matches!(
        log.create("/a/x", b"again", 0),
        Err(DatastoreError::AlreadyExists(_))
    ));
    let kv = log.update("/a/x", b"2", r1, 0).unwrap();
    assert!(kv.mod_revision > r1);
    assert_eq!(kv.create_revision, r1);
    match log.update("/a/x", b"stale", r1, 0) {
        Err(DatastoreError::Conflict { current, .. }) => assert_eq!(current.value, b"2"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        log.update("/a/missing", b"x", 0, 0),
        Err(DatastoreError::NotFound(_))
    ));
    let (deleted, r3) = log.delete("/a/x", 0).unwrap();
    assert_eq!(deleted.value, b"2");
    assert!(r3 > kv.mod_revision);
    assert_eq!(log.get("/a/x", 0).unwrap(), None);
    // The past is readable until compacted.
    assert_eq!(log.get("/a/x", r1).unwrap().unwrap().value, b"1");
    // Re-created: a new create revision.
    let r4 = log.create("/a/x", b"3", 0).unwrap();
    assert_eq!(log.get("/a/x", 0).unwrap().unwrap().create_revision, r4);
    assert_eq!(log.current_revision().unwrap(), r4);
    assert!(matches!(
        log.get("/a/x", r4 + 10),
        Err(DatastoreError::FutureRevision { .. })
    ));
}

#[test]
fn lists_by_prefix_in_pages_and_at_past_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    for name in ["c", "a", "b", "d"] {
        log.create(&format!("/cm/default/{name}"), name.as_bytes(), 0)
            .unwrap();
    }
    log.create("/cm/other/z", b"z", 0).unwrap();
    log.create("/cmx/default/nope", b"n", 0).unwrap();
    let before = log.current_revision().unwrap();
    log.delete("/cm/default/b", 0).unwrap();
    let kv = log.get("/cm/default/a", 0).unwrap().unwrap();
    log.update("/cm/default/a", b"a2", kv.mod_revision, 0)
        .unwrap();

    assert_eq!(
        list(&log, "/cm/default/", 0, 0, None),
        ["/cm/default/a=a2", "/cm/default/c=c", "/cm/default/d=d"]
    );
    assert_eq!(log.count("/cm/").unwrap(), 4);
    // Pages: limit and continue after the last key.
    let page = log
        .list(&ListOptions {
            prefix: "/cm/".into(),
            limit: 2,
            ..Default::default()
        })
        .unwrap();
    assert!(page.more);
    assert_eq!(page.kvs.len(), 2);
    assert_eq!(
        list(&log, "/cm/", page.revision, 2, Some(&page.kvs[1].key)),
        ["/cm/default/d=d", "/cm/other/z=z"]
    );
    // As of before the delete and the update.
    assert_eq!(
        list(&log, "/cm/default/", before, 0, None),
        [
            "/cm/default/a=a",
            "/cm/default/b=b",
            "/cm/default/c=c",
            "/cm/default/d=d"
        ]
    );
}

#[test]
fn compaction_drops_history_but_never_current_values() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let mut rev = log.create("/k/hot", b"0", 0).unwrap();
    for i in 1..=50 {
        rev = log
            .update("/k/hot", i.to_string().as_bytes(), rev, 0)
            .unwrap()
            .mod_revision;
    }
    log.create("/k/gone", b"x", 0).unwrap();
    log.delete("/k/gone", 0).unwrap();
    log.create("/k/cold", b"c", 0).unwrap();
    let at = log.current_revision().unwrap();
    let removed = log.compact(at).unwrap();
    assert_eq!(
        removed,
        50 + 2,
        "50 old values of /k/hot, /k/gone and its deletion"
    );
    assert_eq!(log.compact_revision().unwrap(), at);
    assert_eq!(list(&log, "/k/", 0, 0, None), ["/k/cold=c", "/k/hot=50"]);
    assert_eq!(list(&log, "/k/", at, 0, None), ["/k/cold=c", "/k/hot=50"]);
    assert!(matches!(
        log.get("/k/hot", at - 5),
        Err(DatastoreError::Compacted { .. })
    ));
    assert!(matches!(
        log.events("/k/", at - 5, 10),
        Err(DatastoreError::Compacted { .. })
    ));
    // Revisions keep rising, also after a restart.
    drop(log);
    let log = open(&dir);
    assert_eq!(log.current_revision().unwrap(), at);
    assert!(log.create("/k/new", b"n", 0).unwrap() > at);
    assert_eq!(log.compact(at).unwrap(), 0, "nothing more to compact");
}

#[test]
fn the_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let _log = open(&dir);
    let mode = |p: &str| {
        std::fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("db"), 0o700);
    assert_eq!(mode("db/state.db"), 0o600);
}

#[tokio::test]
async fn a_watch_replays_from_a_revision_then_follows_writes() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<SqliteLog> = Arc::new(open(&dir));
    let r1 = log.create("/w/a", b"1", 0).unwrap();
    let kv = log.update("/w/a", b"2", r1, 0).unwrap();
    log.create("/other/x", b"x", 0).unwrap();
    let mut watch = Watch::start(log.clone(), "/w/", 0).unwrap();
    let e = next(&mut watch).await;
    assert_eq!((e.kind, e.kv.mod_revision), (EventKind::Create, r1));
    let e = next(&mut watch).await;
    assert_eq!((e.kind, e.prev_revision), (EventKind::Update, r1));
    assert_eq!(e.kv.mod_revision, kv.mod_revision);
    // Live writes, other prefixes skipped.
    let writer = log.clone();
    tokio::task::spawn_blocking(move || {
        writer.create("/other/y", b"y", 0).unwrap();
        writer.create("/w/b", b"b", 0).unwrap();
        writer.delete("/w/a", 0).unwrap();
    })
    .await
    .unwrap();
    let e = next(&mut watch).await;
    assert_eq!((e.kind, e.kv.key.as_str()), (EventKind::Create, "/w/b"));
    let e = next(&mut watch).await;
    assert_eq!((e.kind, e.kv.key.as_str()), (EventKind::Delete, "/w/a"));
    assert_eq!(e.kv.value, b"2", "a delete carries the last value");

    // From a compacted revision: gone.
    log.compact(log.current_revision().unwrap()).unwrap();
    assert!(matches!(
        Watch::start(log.clone(), "/w/", r1),
        Err(DatastoreError::Compacted { .. })
    ));
}

#[tokio::test]
async fn a_watch_that_falls_behind_reads_the_log_and_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<SqliteLog> = Arc::new(open(&dir));
    let mut watch = Watch::start(log.clone(), "/l/", 0).unwrap();
    let writer = log.clone();
    // More writes than the live buffer holds, before the watch reads any.
    let n = 3000;
    tokio::task::spawn_blocking(move || {
        for i in 0..n {
            writer.create(&format!("/l/{i:05}"), b"v", 0).unwrap();
        }
    })
    .await
    .unwrap();
    let mut last = 0;
    for i in 0..n {
        let e = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.kv.key, format!("/l/{i:05}"));
        assert!(e.kv.mod_revision > last);
        last = e.kv.mod_revision;
    }
}

/// The watch's next event, within 5 s.
async fn next(watch: &mut Watch) -> skiff_server::datastore::Event {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("an event in time")
        .unwrap()
}

/// Env var naming the database when this test binary runs as the writer
/// child of [`a_killed_writer_loses_no_acknowledged_write`].
const WRITER_DB: &str = "SKIFF_TEST_WRITER_DB";

/// Not a test of its own: the child process of
/// [`a_killed_writer_loses_no_acknowledged_write`]. It writes as fast as it
/// can and prints each write once `create`/`update` returned.
#[test]
fn writer_child() {
    let Some(db) = std::env::var_os(WRITER_DB) else {
        return;
    };
    use std::io::Write;
    let log = SqliteLog::open(std::path::Path::new(&db)).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let key = format!("/storm/{}", i % 50);
        let revision = match log.get(&key, 0).unwrap() {
            None => log.create(&key, i.to_string().as_bytes(), 0).unwrap(),
            Some(kv) => {
                log.update(&key, i.to_string().as_bytes(), kv.mod_revision, 0)
                    .unwrap()
                    .mod_revision
            }
        };
        writeln!(out, "acked {key} {revision} {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn a_killed_writer_loses_no_acknowledged_write() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db/state.db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "datastore::writer_child", "--nocapture"])
        .env(WRITER_DB, &db)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::sync::mpsc::channel();
    let (tx, rx) = lines;
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Let it write for a while, then kill it mid-storm.
    let mut acked = std::collections::HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let mut parts = line.split(' ').skip(1);
            let (Some(key), Some(rev), Some(value)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            acked.insert(
                key.to_owned(),
                (rev.parse::<i64>().unwrap(), value.to_owned()),
            );
        }
    }
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    // Lines already written but not read yet were acknowledged too.
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        let mut parts = line.split(' ').skip(1);
        if let (Some(key), Some(rev), Some(value)) = (parts.next(), parts.next(), parts.next()) {
            acked.insert(
                key.to_owned(),
                (rev.parse::<i64>().unwrap(), value.to_owned()),
            );
        }
    }
    assert!(
        acked.len() == 50,
        "the writer wrote too little: {}",
        acked.len()
    );
    let log = SqliteLog::open(&db).unwrap();
    for (key, (revision, value)) in &acked {
        let kv = log.get(key, 0).unwrap().expect("an acknowledged key");
        // The last acknowledged write is there, or a later one that was
        // committed but not yet printed when the process died.
        assert!(kv.mod_revision >= *revision, "{key}: {kv:?} < {revision}");
        if kv.mod_revision == *revision {
            assert_eq!(kv.value, value.as_bytes());
        }
    }
}

#[test]
fn pages_skip_deleted_keys_and_cover_every_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    for i in 0..300 {
        log.create(&format!("/p/{i:03}"), b"v", 0).unwrap();
    }
    // Long runs of deleted keys, longer than a batch.
    for i in (0..300).filter(|i| i % 100 < 90) {
        log.delete(&format!("/p/{i:03}"), 0).unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = log
            .list(&ListOptions {
                prefix: "/p/".into(),
                start_after: after.clone(),
                limit: 7,
                ..Default::default()
            })
            .unwrap();
        pages += 1;
        assert!(page.kvs.len() <= 7);
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        after = page.kvs.last().map(|kv| kv.key.clone());
        if !page.more {
            break;
        }
    }
    let live: Vec<String> = (0..300)
        .filter(|i| i % 100 >= 90)
        .map(|i| format!("/p/{i:03}"))
        .collect();
    assert_eq!(seen, live);
    assert_eq!(pages, 5, "30 live keys in pages of 7");
}
