//! Create, start, logs, exit status, signals, delete.

use anyhow::Result;
use skiff_shims::protocol::ContainerStatus;

use crate::harness::{Bundle, Pod};

#[tokio::test]
async fn output_is_logged_and_exit_codes_are_recorded() -> Result<()> {
    let pod = Pod::start().await?;
    pod.run(
        "fails",
        &Bundle::sh("echo out; echo err >&2; printf partial; exit 3"),
    )
    .await?;
    let state = pod.wait_exit("fails").await?;
    assert_eq!(state.exit_code, Some(3));
    assert_eq!(state.reason.as_deref(), Some("Error"));
    assert!(!state.oom_killed);
    assert!(state.finished_at_ns.unwrap() >= state.started_at_ns.unwrap());

    let mut records = pod.log_records("fails");
    records.sort();
    assert_eq!(
        records,
        ["stderr F err", "stdout F out", "stdout F partial"]
    );
    let record: skiff_shims::protocol::ContainerState =
        serde_json::from_slice(&std::fs::read(pod.path().join("exits/fails.json"))?)?;
    assert_eq!(record, state);

    pod.run("succeeds", &Bundle::sh("true")).await?;
    let state = pod.wait_exit("succeeds").await?;
    assert_eq!(
        (state.exit_code, state.reason.as_deref()),
        (Some(0), Some("Completed"))
    );
    assert_eq!(state.status, ContainerStatus::Exited);
    pod.teardown().await
}

#[tokio::test]
async fn long_lines_are_split_into_partial_records() -> Result<()> {
    let pod = Pod::start().await?;
    let script = "dd if=/dev/zero bs=1000 count=40 2>/dev/null | tr '\\0' a; echo; printf end";
    pod.run("long", &Bundle::sh(script)).await?;
    pod.wait_exit("long").await?;
    let records = pod.log_records("long");
    let shape: Vec<(String, usize)> = records
        .iter()
        .map(|r| (r[..8].to_owned(), r.len() - 9))
        .collect();
    assert_eq!(
        shape,
        [
            ("stdout P".to_owned(), 16384),
            ("stdout P".to_owned(), 16384),
            ("stdout F".to_owned(), 7232),
            ("stdout F".to_owned(), 3),
        ]
    );
    // Every record has an RFC3339Nano UTC timestamp.
    for line in pod.log("long").lines() {
        let stamp = line.split(' ').next().unwrap();
        assert!(
            stamp.ends_with('Z') && stamp.len() >= 20 && &stamp[10..11] == "T",
            "{stamp}"
        );
    }
    pod.teardown().await
}

#[tokio::test]
async fn term_then_kill() -> Result<()> {
    let pod = Pod::start().await?;
    pod.run(
        "polite",
        &Bundle::sh("trap 'exit 143' TERM; while true; do sleep 0.1; done"),
    )
    .await?;
    pod.run(
        "stubborn",
        &Bundle::sh("trap '' TERM; while true; do sleep 0.1; done"),
    )
    .await?;
    pod.client.signal("polite", 15).await?;
    pod.client.signal("stubborn", 15).await?;
    let state = pod.wait_exit("polite").await?;
    assert_eq!(state.exit_code, Some(143));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        pod.client.state("stubborn").await?.status,
        ContainerStatus::Running
    );
    pod.client.signal("stubborn", 9).await?;
    let state = pod.wait_exit("stubborn").await?;
    assert_eq!(
        (state.exit_code, state.reason.as_deref()),
        (Some(137), Some("Error"))
    );
    // Signalling an exited container is a no-op.
    pod.client.signal("stubborn", 9).await?;
    pod.teardown().await
}

#[tokio::test]
async fn refusals_and_unknown_ids() -> Result<()> {
    use skiff_shims::client::{ClientError, CreateOptions};
    use skiff_shims::protocol::ErrorKind;
    let kind = |result: Result<(), ClientError>| result.err().map(|err| err.kind());
    let pod = Pod::start().await?;
    pod.run("sleeper", &Bundle::sh("sleep 1000")).await?;
    assert_eq!(
        kind(pod.client.delete("sleeper").await),
        Some(ErrorKind::FailedPrecondition)
    );
    assert_eq!(
        kind(pod.client.shutdown().await),
        Some(ErrorKind::FailedPrecondition)
    );
    assert_eq!(
        kind(pod.client.start("sleeper").await.map(drop)),
        Some(ErrorKind::FailedPrecondition)
    );
    assert_eq!(
        kind(pod.client.signal("nobody", 9).await),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(pod.client.state("nobody").await.map(drop)),
        Some(ErrorKind::NotFound)
    );
    let bundle = pod.bundle("sleeper", &Bundle::sh("true"))?;
    assert_eq!(
        kind(
            pod.client
                .create("sleeper", &bundle, &CreateOptions::default())
                .await
                .map(drop)
        ),
        Some(ErrorKind::AlreadyExists)
    );
    let empty = pod.path().join("containers/empty");
    std::fs::create_dir_all(&empty)?;
    assert_eq!(
        kind(
            pod.client
                .create("empty", &empty, &CreateOptions::default())
                .await
                .map(drop)
        ),
        Some(ErrorKind::InvalidArgument)
    );
    // A process that cannot run fails its create and leaves nothing.
    let missing = Bundle {
        args: vec!["/bin/no-such-binary".into()],
        ..Bundle::default()
    };
    let fds_before = std::fs::read_dir(format!("/proc/{}/fd", pod.shim_pid()?))?.count();
    for attempt in 0..3 {
        let id = format!("missing-{attempt}");
        let err = pod
            .create(&id, &missing, &CreateOptions::default())
            .await
            .expect_err("created a container without its binary");
        assert!(err.to_string().contains("no-such-binary"), "{err:#}");
        assert!(!pod.path().join("libcontainer").join(&id).exists());
    }
    let fds_after = std::fs::read_dir(format!("/proc/{}/fd", pod.shim_pid()?))?.count();
    assert!(
        fds_after <= fds_before + 1,
        "failed creates leaked descriptors: {fds_before} -> {fds_after}"
    );
    assert_eq!(pod.client.states().await?.len(), 1);
    pod.teardown().await
}

#[tokio::test]
async fn a_created_container_can_be_deleted() -> Result<()> {
    let pod = Pod::start().await?;
    let pid = pod
        .create("unstarted", &Bundle::sh("echo never"), &Default::default())
        .await?;
    assert!(crate::harness::process_alive(pid));
    pod.client.delete("unstarted").await?;
    crate::harness::wait_gone(pid).await?;
    assert!(pod.client.states().await?.is_empty());
    assert!(!pod.log("unstarted").contains("never"));
    assert!(!pod.path().join("libcontainer/unstarted").exists());
    assert!(!pod.path().join("exits/unstarted.json").exists());
    pod.teardown().await
}

#[tokio::test]
async fn update_changes_the_cgroup() -> Result<()> {
    use oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};
    let pod = Pod::start().await?;
    let bundle = Bundle {
        memory_limit: Some(64 << 20),
        ..Bundle::sh("sleep 1000")
    };
    pod.run("limited", &bundle).await?;
    let limit_file = std::path::Path::new("/sys/fs/cgroup/memory")
        .join(pod.cgroup_parent.strip_prefix("/")?)
        .join("limited/memory.limit_in_bytes");
    assert_eq!(
        std::fs::read_to_string(&limit_file)?.trim(),
        (64 << 20).to_string()
    );
    let resources = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(32i64 << 20).build()?)
        .build()?;
    pod.client.update("limited", &resources).await?;
    assert_eq!(
        std::fs::read_to_string(&limit_file)?.trim(),
        (32 << 20).to_string()
    );
    pod.teardown().await
}

#[tokio::test]
async fn reopen_log_after_rotation() -> Result<()> {
    let pod = Pod::start().await?;
    pod.run(
        "ticker",
        &Bundle::sh("i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.05; done"),
    )
    .await?;
    pod.wait_log("ticker", "tick-3").await?;
    let rotated = pod.path().join("ticker.log.1");
    std::fs::rename(pod.log_path("ticker"), &rotated)?;
    pod.client.reopen_log("ticker").await?;
    pod.wait_log("ticker", "tick-").await?;
    let old = std::fs::read_to_string(&rotated)?;
    assert!(old.contains("tick-3"));
    let last_old: u32 = old
        .lines()
        .last()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .parse()?;
    let first_new: u32 = pod.log_records("ticker")[0]
        .rsplit('-')
        .next()
        .unwrap()
        .parse()?;
    assert!(first_new > last_old, "{last_old} then {first_new}");
    pod.teardown().await
}

#[tokio::test]
async fn events_stream_the_lifecycle() -> Result<()> {
    use skiff_shims::protocol::Event;
    let pod = Pod::start().await?;
    let mut events = pod.client.events().await?;
    pod.run("short", &Bundle::sh("exit 4")).await?;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(20), events.next())
            .await??
            .expect("stream open");
        seen.push(event);
    }
    assert!(matches!(&seen[0], Event::Created { id, .. } if id == "short"));
    assert!(matches!(&seen[1], Event::Started { id, .. } if id == "short"));
    assert!(
        matches!(&seen[2], Event::Exited { id, exit_code: 4, oom_killed: false, reason, .. } if id == "short" && reason == "Error")
    );
    pod.client.delete("short").await?;
    let deleted = tokio::time::timeout(std::time::Duration::from_secs(20), events.next()).await??;
    assert!(matches!(deleted, Some(Event::Deleted { id }) if id == "short"));
    pod.teardown().await
}

#[tokio::test]
async fn the_init_is_the_shims_child_and_dies_of_sigterm_before_start() -> Result<()> {
    let pod = Pod::start().await?;
    let pid = pod
        .create("created", &Bundle::sh("echo never"), &Default::default())
        .await?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let ppid = status
        .lines()
        .find_map(|line| line.strip_prefix("PPid:"))
        .map(|ppid| ppid.trim().to_owned());
    assert_eq!(ppid, Some(pod.shim_pid()?.to_string()));
    pod.client.signal("created", 15).await?;
    let state = pod.wait_exit("created").await?;
    assert_eq!(state.exit_code, Some(143));
    assert_eq!(state.started_at_ns, None);
    pod.teardown().await
}

#[tokio::test]
async fn what_this_host_cannot_grant_is_clamped() -> Result<()> {
    let pod = Pod::start().await?;
    let shim_oom = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", pod.shim_pid()?))?;
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) },
        0
    );
    let bundle = Bundle {
        oom_score_adj: Some(-998),
        nofile: Some((hard.rlim_max + 1000, hard.rlim_max + 1000)),
        ..Bundle::sh("cat /proc/self/oom_score_adj; ulimit -Hn")
    };
    pod.run("greedy", &bundle).await?;
    let state = pod.wait_exit("greedy").await?;
    assert_eq!(state.exit_code, Some(0), "{:?}", pod.log("greedy"));
    let records = pod.log_records("greedy");
    let granted: i32 = records[0].trim_start_matches("stdout F ").parse()?;
    assert!(granted > -998, "{records:?}");
    assert_eq!(records[1], format!("stdout F {}", hard.rlim_max));
    // A BestEffort-like score for the container leaves the shim's alone.
    pod.run(
        "besteffort",
        &Bundle {
            oom_score_adj: Some(1000),
            ..Bundle::sh("cat /proc/self/oom_score_adj")
        },
    )
    .await?;
    pod.wait_exit("besteffort").await?;
    assert_eq!(pod.log_records("besteffort"), ["stdout F 1000"]);
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{}/oom_score_adj", pod.shim_pid()?))?,
        shim_oom
    );
    pod.teardown().await
}
