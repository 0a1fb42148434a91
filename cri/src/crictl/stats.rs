//! `crictl stats` and `crictl statsp`: resource usage of containers and
//! pods. CPU % needs two samples, `--seconds` apart, as crictl takes them;
//! `-w` redraws every half second until interrupted.

use std::collections::HashMap;
use std::time::Duration;

use k8s_cri::v1::{
    ContainerStats, ContainerStatsFilter, ListContainerStatsRequest, ListContainerStatsResponse,
    ListPodSandboxStatsRequest, ListPodSandboxStatsResponse, PodSandboxStats,
    PodSandboxStatsFilter,
};

use super::console::rpc_error;
use super::json::Escape;
use super::lookup::{Deadline, parse_labels, resolve_container, resolve_pod, truncated_id};
use super::table::{Table, human_size};
use super::{CrictlError, Session, protojson};
use crate::client::CriClient;

/// How often `--watch` redraws.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// Clears a terminal and homes the cursor, before each `--watch` frame.
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";

/// `crictl stats` options.
#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Filter by container id
    #[arg(long)]
    id: Option<String>,
    /// Filter by pod id
    #[arg(short, long)]
    pod: Option<String>,
    /// Filter by key=value label
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Output format, One of: json|yaml|table
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<String>,
    /// Sample duration for CPU usage in seconds
    #[arg(short, long, default_value_t = 1)]
    seconds: u64,
    /// Watch pod resources
    #[arg(short, long)]
    watch: bool,
    /// The container (same as --id)
    #[arg(value_name = "ID")]
    container: Option<String>,
}

/// `crictl statsp` options.
#[derive(Debug, Clone, clap::Args)]
pub struct StatspArgs {
    /// Filter by pod id
    #[arg(long)]
    id: Option<String>,
    /// Filter by key=value label
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Output format, One of: json|yaml|table
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<String>,
    /// Sample duration for CPU usage in seconds
    #[arg(short, long, default_value_t = 1)]
    seconds: u64,
    /// Watch pod resources
    #[arg(short, long)]
    watch: bool,
    /// The pod (same as --id)
    #[arg(value_name = "ID")]
    pod: Option<String>,
}

/// Shows frames until one fails, once or (with `watch`) until interrupted.
async fn display<F>(session: &mut Session<'_, '_>, watch: bool, mut frame: F) -> Result<(), String>
where
    F: AsyncFrame,
{
    if !watch {
        return frame.show(session, false).await;
    }
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            result = frame.show(session, true) => result?,
        }
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
    }
}

/// One redraw of a stats display.
trait AsyncFrame {
    /// Samples and prints once; `clear` clears the screen first.
    async fn show(&mut self, session: &mut Session<'_, '_>, clear: bool) -> Result<(), String>;
}

struct ContainerFrame<'a> {
    client: CriClient,
    filter: ContainerStatsFilter,
    args: &'a StatsArgs,
}

impl ContainerFrame<'_> {
    async fn sample(
        &mut self,
        session: &mut Session<'_, '_>,
    ) -> Result<Vec<ContainerStats>, String> {
        let request = ListContainerStatsRequest {
            filter: Some(self.filter.clone()),
        };
        session.debug(format!("ListContainerStatsRequest: {request:?}"));
        let response = session
            .call(
                Deadline::Default,
                self.client.runtime.list_container_stats(request),
            )
            .await
            .map_err(|s| rpc_error(&s))?;
        session.debug(format!("ListContainerStatsResponse: {response:?}"));
        let mut stats = response.stats;
        stats.sort_by(|a, b| attributes_id(a).cmp(attributes_id(b)));
        Ok(stats)
    }
}

fn attributes_id(stats: &ContainerStats) -> &str {
    stats.attributes.as_ref().map_or("", |a| a.id.as_str())
}

impl AsyncFrame for ContainerFrame<'_> {
    async fn show(&mut self, session: &mut Session<'_, '_>, clear: bool) -> Result<(), String> {
        let first = self.sample(session).await?;
        if let Some(text) = structured(
            self.args.output.as_deref(),
            &ListContainerStatsResponse {
                stats: first.clone(),
            },
        ) {
            session.console.print(&text).map_err(|e| e.to_string())?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(self.args.seconds)).await;
        let second = self.sample(session).await?;
        let text = container_table(&first, &second, self.args.all)?;
        let text = if clear {
            format!("{CLEAR_SCREEN}{text}")
        } else {
            text
        };
        session.console.print(&text).map_err(|e| e.to_string())
    }
}

/// The JSON or YAML of a response, or `None` for the table.
fn structured<T: serde::Serialize>(output: Option<&str>, response: &T) -> Option<String> {
    match output {
        Some("json") => Some(format!(
            "{}\n",
            protojson::message(response).pretty(Escape::Protojson)
        )),
        Some("yaml") => Some(format!("{}\n", protojson::message(response).to_yaml())),
        _ => None,
    }
}

fn value(v: Option<&k8s_cri::v1::UInt64Value>) -> u64 {
    v.map_or(0, |v| v.value)
}

/// CPU % between two samples of cumulative CPU time, as crictl computes it.
fn cpu_percent(
    usage: u64,
    timestamp: i64,
    old_usage: u64,
    old_timestamp: i64,
) -> Result<f64, String> {
    if usage == 0 {
        return Ok(0.0);
    }
    let duration = timestamp - old_timestamp;
    if duration == 0 {
        return Err("cpu stat is not updated during sample".to_owned());
    }
    Ok((usage as f64 - old_usage as f64) / duration as f64 * 100.0)
}

fn container_table(
    first: &[ContainerStats],
    second: &[ContainerStats],
    all: bool,
) -> Result<String, String> {
    let old: HashMap<&str, &ContainerStats> = first.iter().map(|s| (attributes_id(s), s)).collect();
    let mut table = Table::default();
    table.row(
        [
            "CONTAINER",
            "NAME",
            "CPU %",
            "MEM",
            "DISK",
            "INODES",
            "SWAP",
        ]
        .map(String::from)
        .to_vec(),
    );
    for stats in second {
        let id = attributes_id(stats);
        let name = stats
            .attributes
            .as_ref()
            .and_then(|a| a.metadata.as_ref())
            .map_or("", |m| m.name.as_str());
        let cpu = stats.cpu.unwrap_or_default();
        let usage = value(cpu.usage_core_nano_seconds.as_ref());
        let memory = stats
            .memory
            .as_ref()
            .map_or(0, |m| value(m.working_set_bytes.as_ref()));
        let layer = stats.writable_layer.clone().unwrap_or_default();
        let swap = stats
            .swap
            .as_ref()
            .map_or(0, |s| value(s.swap_usage_bytes.as_ref()));
        if !all && usage == 0 && memory == 0 {
            // Not running.
            continue;
        }
        let Some(old) = old.get(id) else {
            // Appeared between the samples.
            continue;
        };
        let old_cpu = old.cpu.unwrap_or_default();
        let percent = cpu_percent(
            usage,
            cpu.timestamp,
            value(old_cpu.usage_core_nano_seconds.as_ref()),
            old_cpu.timestamp,
        )?;
        table.row(vec![
            truncated_id(id, ""),
            name.to_owned(),
            format!("{percent:.2}"),
            human_size(memory as f64, 4),
            human_size(value(layer.used_bytes.as_ref()) as f64, 4),
            value(layer.inodes_used.as_ref()).to_string(),
            human_size(swap as f64, 4),
        ]);
    }
    Ok(table.render())
}

pub(super) async fn stats(
    args: &StatsArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    let mut client = session.runtime_client().await?;
    let failed = |e: String| CrictlError::Failed(format!("get container stats: {e}"));
    let given = args.id.clone().or_else(|| args.container.clone());
    let id = match given.filter(|id| !id.is_empty()) {
        Some(id) => resolve_container(session, &mut client, &id).await?,
        None => String::new(),
    };
    let pod = match args.pod.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => resolve_pod(session, &mut client, id).await?,
        None => String::new(),
    };
    let filter = ContainerStatsFilter {
        id,
        pod_sandbox_id: pod,
        label_selector: parse_labels(&args.label)?,
    };
    let frame = ContainerFrame {
        client,
        filter,
        args,
    };
    display(session, args.watch, frame).await.map_err(failed)
}

struct PodFrame<'a> {
    client: CriClient,
    filter: PodSandboxStatsFilter,
    args: &'a StatspArgs,
}

impl PodFrame<'_> {
    async fn sample(
        &mut self,
        session: &mut Session<'_, '_>,
    ) -> Result<Vec<PodSandboxStats>, String> {
        let request = ListPodSandboxStatsRequest {
            filter: Some(self.filter.clone()),
        };
        session.debug(format!("ListPodSandboxStatsRequest: {request:?}"));
        let response = session
            .call(
                Deadline::Default,
                self.client.runtime.list_pod_sandbox_stats(request),
            )
            .await
            .map_err(|s| format!("list pod sandbox stats: {}", rpc_error(&s)))?;
        session.debug(format!("ListPodSandboxStatsResponse: {response:?}"));
        let mut stats = response.stats;
        stats.sort_by(|a, b| pod_id(a).cmp(pod_id(b)));
        Ok(stats)
    }
}

fn pod_id(stats: &PodSandboxStats) -> &str {
    stats.attributes.as_ref().map_or("", |a| a.id.as_str())
}

impl AsyncFrame for PodFrame<'_> {
    async fn show(&mut self, session: &mut Session<'_, '_>, clear: bool) -> Result<(), String> {
        let first = self.sample(session).await?;
        if let Some(text) = structured(
            self.args.output.as_deref(),
            &ListPodSandboxStatsResponse {
                stats: first.clone(),
            },
        ) {
            session.console.print(&text).map_err(|e| e.to_string())?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(self.args.seconds)).await;
        let second = self.sample(session).await?;
        let text = pod_table(&first, &second)?;
        let text = if clear {
            format!("{CLEAR_SCREEN}{text}")
        } else {
            text
        };
        session.console.print(&text).map_err(|e| e.to_string())
    }
}

/// A pod's cumulative CPU time, its timestamp and its working set.
fn pod_usage(stats: &PodSandboxStats) -> Result<(u64, i64, u64), String> {
    match (&stats.linux, &stats.windows) {
        (Some(_), Some(_)) => Err(format!(
            "pod {:?} has both linux and windows stats which is not supported",
            truncated_id(pod_id(stats), "")
        )),
        (Some(linux), None) => {
            let cpu = linux.cpu.unwrap_or_default();
            let memory = linux
                .memory
                .as_ref()
                .map_or(0, |m| value(m.working_set_bytes.as_ref()));
            Ok((
                value(cpu.usage_core_nano_seconds.as_ref()),
                cpu.timestamp,
                memory,
            ))
        }
        (None, Some(windows)) => {
            let cpu = windows.cpu.unwrap_or_default();
            let memory = windows
                .memory
                .as_ref()
                .map_or(0, |m| value(m.working_set_bytes.as_ref()));
            Ok((
                value(cpu.usage_core_nano_seconds.as_ref()),
                cpu.timestamp,
                memory,
            ))
        }
        (None, None) => Ok((0, 0, 0)),
    }
}

fn pod_table(first: &[PodSandboxStats], second: &[PodSandboxStats]) -> Result<String, String> {
    let old: HashMap<&str, &PodSandboxStats> = first.iter().map(|s| (pod_id(s), s)).collect();
    let mut table = Table::default();
    table.row(["POD", "POD ID", "CPU %", "MEM"].map(String::from).to_vec());
    for stats in second {
        let (usage, timestamp, memory) = pod_usage(stats)?;
        if usage == 0 && memory == 0 {
            continue;
        }
        let Some(old) = old.get(pod_id(stats)) else {
            continue;
        };
        let (old_usage, old_timestamp, _) = pod_usage(old)?;
        let percent = cpu_percent(usage, timestamp, old_usage, old_timestamp)?;
        let name = stats
            .attributes
            .as_ref()
            .and_then(|a| a.metadata.as_ref())
            .map_or("", |m| m.name.as_str());
        table.row(vec![
            name.to_owned(),
            truncated_id(pod_id(stats), ""),
            format!("{percent:.2}"),
            human_size(memory as f64, 4),
        ]);
    }
    Ok(table.render())
}

pub(super) async fn statsp(
    args: &StatspArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    let mut client = session.runtime_client().await?;
    let given = args.id.clone().or_else(|| args.pod.clone());
    let id = match given.filter(|id| !id.is_empty()) {
        Some(id) => resolve_pod(session, &mut client, &id).await?,
        None => String::new(),
    };
    let filter = PodSandboxStatsFilter {
        id,
        label_selector: parse_labels(&args.label)
            .map_err(|e| CrictlError::Failed(format!("parse pod labels: {e}")))?,
    };
    let frame = PodFrame {
        client,
        filter,
        args,
    };
    display(session, args.watch, frame)
        .await
        .map_err(|e| CrictlError::Failed(format!("get pod stats: {e}")))
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::{
        ContainerAttributes, ContainerMetadata, CpuUsage, FilesystemUsage, LinuxPodSandboxStats,
        MemoryUsage, PodSandboxAttributes, PodSandboxMetadata, UInt64Value,
    };

    use super::*;

    fn container(id: &str, cpu_ns: u64, at: i64, memory: u64) -> ContainerStats {
        ContainerStats {
            attributes: Some(ContainerAttributes {
                id: id.to_owned(),
                metadata: Some(ContainerMetadata {
                    name: "web".to_owned(),
                    attempt: 0,
                }),
                ..Default::default()
            }),
            cpu: Some(CpuUsage {
                timestamp: at,
                usage_core_nano_seconds: Some(UInt64Value { value: cpu_ns }),
                usage_nano_cores: None,
            }),
            memory: Some(MemoryUsage {
                working_set_bytes: Some(UInt64Value { value: memory }),
                ..Default::default()
            }),
            writable_layer: Some(FilesystemUsage {
                used_bytes: Some(UInt64Value { value: 28_672 }),
                inodes_used: Some(UInt64Value { value: 8 }),
                ..Default::default()
            }),
            swap: None,
        }
    }

    #[test]
    fn cpu_percent_comes_from_two_samples() {
        let id = "303cdce60ee9a0123456789";
        let first = [container(id, 1_000_000_000, 1_000_000_000, 13_430_000)];
        let second = [container(id, 1_250_000_000, 2_000_000_000, 13_430_000)];
        let expected = "\
CONTAINER           NAME                CPU %               MEM                 DISK                INODES              SWAP
303cdce60ee9a       web                 25.00               13.43MB             28.67kB             8                   0B
";
        assert_eq!(container_table(&first, &second, false).unwrap(), expected);
        let stopped = [container(id, 0, 2_000_000_000, 0)];
        assert_eq!(
            container_table(&first, &stopped, false)
                .unwrap()
                .lines()
                .count(),
            1
        );
        assert_eq!(
            container_table(&first, &stopped, true)
                .unwrap()
                .lines()
                .count(),
            2
        );
        let frozen = [container(id, 1_250_000_000, 1_000_000_000, 1)];
        assert_eq!(
            container_table(&first, &frozen, false).unwrap_err(),
            "cpu stat is not updated during sample"
        );
    }

    #[test]
    fn pods_show_name_id_cpu_and_memory() {
        let pod = |cpu: u64, at: i64| PodSandboxStats {
            attributes: Some(PodSandboxAttributes {
                id: "8c7a3f8e2b1d4c5a6e7f".to_owned(),
                metadata: Some(PodSandboxMetadata {
                    name: "nginx".to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            linux: Some(LinuxPodSandboxStats {
                cpu: Some(CpuUsage {
                    timestamp: at,
                    usage_core_nano_seconds: Some(UInt64Value { value: cpu }),
                    usage_nano_cores: None,
                }),
                memory: Some(MemoryUsage {
                    working_set_bytes: Some(UInt64Value { value: 2_712_000 }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            windows: None,
        };
        let text = pod_table(&[pod(0, 1_000_000_000)], &[pod(500_000_000, 2_000_000_000)]).unwrap();
        assert_eq!(
            text,
            "\
POD                 POD ID              CPU %               MEM
nginx               8c7a3f8e2b1d4       50.00               2.712MB
"
        );
    }
}
