//! The shim's memory with one running container (a figure to report, not
//! an assertion: timings and sizes belong in benches). For the figure that
//! matters, point `SKIFF_SHIM_BINARY` at a release build of `skiff` (or of
//! `skiff-test-shim`) and run with `--no-capture`.

use anyhow::Result;
use skiff_shims::PodNamespace;

use crate::harness::{Bundle, Pod};

fn smaps_rollup(pid: i32) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    Ok((field("Rss:"), field("Pss:")))
}

#[tokio::test]
#[allow(clippy::print_stderr)]
async fn shim_memory_with_one_running_container() -> Result<()> {
    let shared = [PodNamespace::Net, PodNamespace::Ipc, PodNamespace::Uts];
    let with_pid = [
        PodNamespace::Net,
        PodNamespace::Ipc,
        PodNamespace::Uts,
        PodNamespace::Pid,
    ];
    for namespaces in [&shared[..], &with_pid[..]] {
        let pod = Pod::start_with(namespaces, Some("mem")).await?;
        pod.run("app", &Bundle::sh("echo up; sleep 1000")).await?;
        pod.wait_log("app", "up").await?;
        // Idle, as most of the time: the shim sheds what creating touched.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let (rss, pss) = smaps_rollup(pod.shim_pid()?)?;
        let pod_init = crate::harness::cgroup_procs(&pod.cgroup_parent)
            .into_iter()
            .find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "skiff-pod-init")
            });
        let init = match pod_init {
            Some(pid) => {
                let (rss, pss) = smaps_rollup(pid)?;
                format!("; pod PID 1 RSS {rss} kB, PSS {pss} kB")
            }
            None => String::new(),
        };
        eprintln!(
            "shim memory with 1 running container ({}, namespaces {namespaces:?}): shim RSS {rss} kB, PSS {pss} kB{init}",
            crate::harness::shim_binary().display()
        );
        assert!(rss > 0);
        pod.teardown().await?;
    }
    Ok(())
}
