//! `logs`: reading, filtering and following CRI log files.

use std::time::Duration;

use super::fake::now_nanos;
use super::pod_with_container;
use crate::crictl_runtime::harness::Harness;

/// A container with a CRI log file; (container ID, log path).
async fn container_with_log(harness: &Harness, log: &str) -> (String, std::path::PathBuf) {
    let (_, id) = pod_with_container(harness).await;
    let (code, _, err) = harness.crictl(&["start", &id]).await;
    assert_eq!(code, 0, "{err}");
    let path = harness.dir.path().join("logs/web/0.log");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, log).unwrap();
    (id, path)
}

const LOG: &str = "\
2026-11-23T18:00:00.000000001Z stdout F first line
2026-11-23T18:00:01.5Z stderr F an error
2026-11-23T18:00:02Z stdout P a long li
2026-11-23T18:00:02.1Z stdout F ne, joined
2026-11-23T18:00:03Z stdout F last
";

#[tokio::test]
async fn logs_read_the_cri_log_file() {
    let harness = Harness::start().await;
    let (id, path) = container_with_log(&harness, LOG).await;

    let (code, out, err) = harness.crictl(&["logs", &id[..5]]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "first line\na long line, joined\nlast\n");
    assert_eq!(err, "an error\n");

    let (_, out, _) = harness.crictl(&["logs", "--tail", "1", &id]).await;
    assert_eq!(out, "last\n");
    let (_, out, err) = harness.crictl(&["logs", "-t", &id]).await;
    assert_eq!(
        out,
        "2026-11-23T18:00:00.000000001Z first line\n2026-11-23T18:00:02Z a long line, joined\n2026-11-23T18:00:03Z last\n"
    );
    assert_eq!(err, "2026-11-23T18:00:01.5Z an error\n");
    let (_, out, err) = harness.crictl(&["logs", "--stream", "stderr", &id]).await;
    assert_eq!((out.as_str(), err.as_str()), ("", "an error\n"));
    let (_, out, _) = harness
        .crictl(&["logs", "--since", "2026-11-23T18:00:02Z", &id])
        .await;
    assert_eq!(out, "a long line, joined\nlast\n");
    let (_, out, _) = harness.crictl(&["logs", "--limit-bytes", "5", &id]).await;
    assert_eq!(out, "first");

    let (code, _, err) = harness.crictl(&["logs", "-p", &id]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("previous terminated container web not found"),
        "{err}"
    );
    let (code, _, err) = harness
        .crictl(&["logs", "--tail", "1", "--stream", "stdout", &id])
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("--tail and --stream are mutually exclusive"),
        "{err}"
    );

    std::fs::remove_file(&path).unwrap();
    let (code, _, err) = harness.crictl(&["logs", &id]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("failed to try resolving symlinks in path"),
        "{err}"
    );
    assert!(err.contains("no such file or directory"), "{err}");
}

fn cri_line(stream: &str, text: &str) -> String {
    let secs = now_nanos() / 1_000_000_000;
    format!("2026-11-23T18:00:{:02}Z {stream} F {text}\n", secs % 60)
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[tokio::test]
async fn logs_follow_across_rotation_until_the_container_exits() {
    let harness = Harness::start().await;
    let (id, path) = container_with_log(&harness, &cri_line("stdout", "one")).await;
    let mut follower = harness.crictl_in_background(&["logs", "-f", &id]);

    tokio::time::sleep(Duration::from_millis(400)).await;
    append(&path, &cri_line("stdout", "two"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    // kubelet's rotation: rename, then the runtime reopens a fresh file.
    std::fs::rename(&path, path.with_extension("log.20261123-180000")).unwrap();
    std::fs::write(&path, cri_line("stderr", "three")).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    append(&path, &cri_line("stdout", "four"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        follower.try_recv().is_err(),
        "logs -f waits while the container runs"
    );

    let (code, out, err) = harness.crictl(&["stop", &id]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out_followed, err) = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .expect("logs -f ends once the container exited")
        .expect("crictl's thread");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out_followed, "one\ntwo\nfour\n");
    assert_eq!(err, "three\n");
    assert_eq!(out, format!("{id}\n"));

    // rm removes the log and its rotations.
    let (code, _, err) = harness.crictl(&["rm", &id]).await;
    assert_eq!(code, 0, "{err}");
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
