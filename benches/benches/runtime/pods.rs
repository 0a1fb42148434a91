//! Starting pods through CRI and timing each call, one after another or
//! several at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_cri::v1 as cri;
use skiff_benches::Samples;
use skiff_tests::cri::Cri;
use tokio::task::JoinSet;

pub use skiff_benches::cri::remove_pod;

use super::{PARALLEL, ROUNDS, SEQUENTIAL, Subject, WARMUP, sweep};

/// Pod and container configs as kubelet sends them, per runtime.
#[derive(Clone)]
pub struct PodTemplate {
    /// The runtime's name, part of pod UIDs and cgroup parents.
    pub runtime: &'static str,
    /// The container image.
    pub image: String,
    /// Where pods' log directories go.
    pub logs: PathBuf,
}

impl PodTemplate {
    /// A pod named `name`.
    pub fn pod(&self, name: &str) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{}-{name}", self.runtime),
                namespace: "bench".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: self.logs.join(name).display().to_string(),
            labels: HashMap::from([("app".into(), name.into())]),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("/{}/{}/{name}", sweep::CGROUP_ROOT, self.runtime),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        pid: cri::NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A busybox `sleep 3600` container.
    pub fn container(&self) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: "sleep".into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: self.image.clone(),
                ..Default::default()
            }),
            command: vec!["sleep".into(), "3600".into()],
            log_path: "sleep.log".into(),
            linux: Some(cri::LinuxContainerConfig::default()),
            ..Default::default()
        }
    }
}

/// How pods are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// One after another.
    Sequential,
    /// Rounds of [`PARALLEL`] at once.
    Parallel,
}

impl Mode {
    /// The mode in words.
    pub fn describe(self) -> &'static str {
        match self {
            Mode::Sequential => "20 pods one after another",
            Mode::Parallel => "5 rounds of 5 pods in parallel",
        }
    }
}

/// Latencies of one pod start.
pub struct PodTimes {
    sandbox: Duration,
    create: Duration,
    start: Duration,
    /// From RunPodSandbox to the first ContainerStatus saying RUNNING.
    running: Duration,
}

/// Latencies of many pod starts.
#[derive(Default)]
pub struct StartFigures {
    /// RunPodSandbox.
    pub sandbox: Samples,
    /// CreateContainer.
    pub create: Samples,
    /// StartContainer.
    pub start: Samples,
    /// CreateContainer + StartContainer.
    pub create_start: Samples,
    /// RunPodSandbox to StartContainer returned.
    pub whole: Samples,
    /// RunPodSandbox to ContainerStatus saying RUNNING.
    pub running: Samples,
    /// StopPodSandbox + RemovePodSandbox.
    pub teardown: Samples,
    /// Wall time of each round (parallel mode).
    pub rounds: Samples,
}

impl StartFigures {
    fn record(&mut self, t: &PodTimes) {
        self.sandbox.push(t.sandbox);
        self.create.push(t.create);
        self.start.push(t.start);
        self.create_start.push(t.create + t.start);
        self.whole.push(t.sandbox + t.create + t.start);
        self.running.push(t.running);
    }
}

pub async fn starts(subject: &Subject, mode: Mode) -> anyhow::Result<StartFigures> {
    let mut figures = StartFigures::default();
    if mode == Mode::Sequential {
        for i in 0..WARMUP {
            let (id, _) = Box::pin(start_pod(
                subject.cri.clone(),
                subject.template.clone(),
                format!("warm-{i}"),
            ))
            .await?;
            remove_pod(&subject.cri, &id).await?;
        }
    }
    let (rounds, per_round) = match mode {
        Mode::Sequential => (SEQUENTIAL, 1),
        Mode::Parallel => (ROUNDS, PARALLEL),
    };
    for round in 0..rounds {
        let started = Instant::now();
        let mut pods = JoinSet::new();
        for i in 0..per_round {
            let name = match mode {
                Mode::Sequential => format!("seq-{round}"),
                Mode::Parallel => format!("par-{round}-{i}"),
            };
            pods.spawn(start_pod(
                subject.cri.clone(),
                subject.template.clone(),
                name,
            ));
        }
        let mut ids = Vec::new();
        let mut failure = None;
        while let Some(joined) = pods.join_next().await {
            match joined.context("pod start task")? {
                Ok((id, times)) => {
                    figures.record(&times);
                    ids.push(id);
                }
                Err(err) => failure = Some(err),
            }
        }
        figures.rounds.push(started.elapsed());
        for id in ids {
            figures.teardown.push(remove_pod(&subject.cri, &id).await?);
        }
        if let Some(err) = failure {
            return Err(err);
        }
        // Let the runtime finish what a removal leaves in the background
        // (shim exit, events) before the next measured start.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(figures)
}

/// Starts a pod with one `sleep` container; returns the pod's ID.
pub async fn start_pod(
    cri: Cri,
    template: PodTemplate,
    name: String,
) -> anyhow::Result<(String, PodTimes)> {
    let config = template.pod(&name);
    std::fs::create_dir_all(&config.log_directory)?;
    let runtime = template.runtime;
    let mut rt = cri.runtime;
    let t0 = Instant::now();
    let pod_id = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .with_context(|| format!("{runtime}: RunPodSandbox {name}"))?
        .into_inner()
        .pod_sandbox_id;
    let t1 = Instant::now();
    let container_id = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(template.container()),
            sandbox_config: Some(config),
        })
        .await
        .with_context(|| format!("{runtime}: CreateContainer in {name}"))?
        .into_inner()
        .container_id;
    let t2 = Instant::now();
    rt.start_container(cri::StartContainerRequest {
        container_id: container_id.clone(),
    })
    .await
    .with_context(|| format!("{runtime}: StartContainer in {name}"))?;
    let t3 = Instant::now();
    loop {
        let state = rt
            .container_status(cri::ContainerStatusRequest {
                container_id: container_id.clone(),
                verbose: false,
            })
            .await
            .with_context(|| format!("{runtime}: ContainerStatus in {name}"))?
            .into_inner()
            .status
            .map(|s| s.state);
        if state == Some(cri::ContainerState::ContainerRunning as i32) {
            break;
        }
        if t3.elapsed() > Duration::from_secs(10) {
            bail!(
                "{runtime}: container in {name} not RUNNING 10 s after StartContainer: {state:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let times = PodTimes {
        sandbox: t1 - t0,
        create: t2 - t1,
        start: t3 - t2,
        running: t0.elapsed(),
    };
    Ok((pod_id, times))
}
