//! OOM kills recorded from the container's cgroup.

use anyhow::Result;

use crate::harness::{Bundle, Pod};

#[tokio::test]
async fn a_container_over_its_memory_limit_is_oom_killed() -> Result<()> {
    let pod = Pod::start().await?;
    let bundle = Bundle {
        memory_limit: Some(16 << 20),
        ..Bundle {
            args: vec![
                "dd".into(),
                "if=/dev/zero".into(),
                "of=/dev/null".into(),
                "bs=64M".into(),
                "count=1".into(),
            ],
            ..Bundle::default()
        }
    };
    pod.run("hog", &bundle).await?;
    let state = pod.wait_exit("hog").await?;
    assert_eq!(state.exit_code, Some(137));
    assert!(state.oom_killed);
    assert_eq!(state.reason.as_deref(), Some("OOMKilled"));

    pod.run(
        "modest",
        &Bundle {
            memory_limit: Some(16 << 20),
            ..Bundle::sh("echo fine")
        },
    )
    .await?;
    let state = pod.wait_exit("modest").await?;
    assert_eq!(
        (state.oom_killed, state.reason.as_deref()),
        (false, Some("Completed"))
    );
    pod.teardown().await
}
