//! The pod verbs: `runp`, `stopp`, `rmp`, `inspectp` and `pods`.

use std::path::PathBuf;
use std::time::Duration;

use k8s_cri::v1::{
    ListPodSandboxRequest, ListPodSandboxResponse, PodSandbox, PodSandboxConfig, PodSandboxFilter,
    PodSandboxState, PodSandboxStateValue, PodSandboxStatusRequest, PodSandboxStatusResponse,
    RemovePodSandboxRequest, RunPodSandboxRequest, StopPodSandboxRequest,
};

use super::config::parse_go_duration;
use super::config_file::load_pod_config;
use super::console::{Level, rpc_error};
use super::inspecti::{StatusData, output_status_data};
use super::json::{Escape, Json};
use super::lookup::{
    Deadline, compile_regex, go_map, matches, parse_labels, resolve_pod, rpc_failed,
    subcommand_help, truncate_count, truncated_id,
};
use super::table::Table;
use super::timefmt::{ago, go_time, rfc3339_nano};
use super::{CrictlError, Session, protojson};
use crate::client::CriClient;

/// `crictl runp` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RunpArgs {
    /// Runtime handler to use. Available options are defined by the container runtime.
    #[arg(short, long, value_name = "HANDLER")]
    runtime: Option<String>,
    /// Seconds to wait for a run pod sandbox request to complete before cancelling the request
    #[arg(short = 'T', long, value_name = "DURATION")]
    cancel_timeout: Option<String>,
    /// The pod config (JSON or YAML)
    #[arg(value_name = "pod-config.[json|yaml]")]
    config: PathBuf,
}

/// `crictl stopp` options.
#[derive(Debug, Clone, clap::Args)]
pub struct StoppArgs {
    /// Pods to stop
    #[arg(value_name = "POD-ID", required = true)]
    ids: Vec<String>,
}

/// `crictl rmp` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RmpArgs {
    /// Force removal of the pod sandbox, disregarding if running
    #[arg(short, long)]
    force: bool,
    /// Remove all pods
    #[arg(short, long)]
    all: bool,
    /// Pods to remove
    #[arg(value_name = "POD-ID", required_unless_present = "all")]
    ids: Vec<String>,
}

/// `crictl inspectp` options.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectpArgs {
    /// Output format, One of: json|yaml|go-template|table
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<String>,
    /// Do not show verbose information
    #[arg(short, long)]
    quiet: bool,
    /// The template string is only used when output is go-template
    #[arg(long, hide = true)]
    template: Option<String>,
    /// Filter by pod name regular expression pattern
    #[arg(long)]
    name: Option<String>,
    /// Filter by pod namespace regular expression pattern
    #[arg(long)]
    namespace: Option<String>,
    /// Filter by pod state
    #[arg(short, long)]
    state: Option<String>,
    /// Filter by key=value label
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Show the most recently created pod
    #[arg(short, long)]
    latest: bool,
    /// Show last n recently created pods. Set 0 for unlimited
    #[arg(short = 'n', long, default_value_t = 0)]
    last: usize,
    /// Pods to inspect
    #[arg(value_name = "POD-ID")]
    ids: Vec<String>,
}

/// `crictl pods` options.
#[derive(Debug, Clone, clap::Args)]
pub struct PodsArgs {
    /// filter by pod id
    #[arg(long)]
    id: Option<String>,
    /// Filter by pod name regular expression pattern
    #[arg(long)]
    name: Option<String>,
    /// Filter by pod namespace regular expression pattern
    #[arg(long)]
    namespace: Option<String>,
    /// Filter by pod state
    #[arg(short, long)]
    state: Option<String>,
    /// Filter by key=value label
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Show verbose info for pods
    #[arg(short, long)]
    verbose: bool,
    /// List only pod IDs
    #[arg(short, long)]
    quiet: bool,
    /// Output format, One of: json|yaml|table
    #[arg(short, long, value_name = "FORMAT", default_value = "table")]
    output: String,
    /// Show the most recently created pod
    #[arg(short, long)]
    latest: bool,
    /// Show last n recently created pods. Set 0 for unlimited
    #[arg(short = 'n', long, default_value_t = 0)]
    last: usize,
    /// Show output without truncating the ID
    #[arg(long)]
    no_trunc: bool,
}

pub(super) async fn runp(
    args: &RunpArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    apply_cancel_timeout(session, args.cancel_timeout.as_deref())?;
    let mut client = session.runtime_client().await?;
    let config = load_pod(session, &args.config)?;
    let id = run_pod_sandbox(
        session,
        &mut client,
        config,
        args.runtime.as_deref().unwrap_or_default(),
    )
    .await
    .map_err(|s| rpc_failed("run pod sandbox", &s))?;
    session.console.print(&format!("{id}\n"))?;
    Ok(())
}

/// `--cancel-timeout`: the deadline for this command's calls.
pub(super) fn apply_cancel_timeout(
    session: &mut Session<'_, '_>,
    value: Option<&str>,
) -> Result<(), CrictlError> {
    let Some(text) = value else {
        return Ok(());
    };
    let timeout = parse_go_duration(text).map_err(|e| {
        CrictlError::Failed(format!(
            "invalid value {text:?} for flag -cancel-timeout: {e}"
        ))
    })?;
    if timeout > Duration::ZERO {
        session.settings.timeout = timeout;
    }
    Ok(())
}

/// Loads a pod config, showing its warnings; errors read as crictl's.
pub(super) fn load_pod(
    session: &mut Session<'_, '_>,
    path: &std::path::Path,
) -> Result<PodSandboxConfig, CrictlError> {
    let loaded = load_pod_config(path)
        .map_err(|e| CrictlError::Failed(format!("load podSandboxConfig: {e}")))?;
    for warning in &loaded.warnings {
        session.console.log(Level::Warn, warning);
    }
    Ok(loaded.config)
}

/// RunPodSandbox; the new pod's ID.
pub(super) async fn run_pod_sandbox(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    config: PodSandboxConfig,
    runtime_handler: &str,
) -> Result<String, tonic::Status> {
    let request = RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: runtime_handler.to_owned(),
    };
    session.debug(format!("RunPodSandboxRequest: {request:?}"));
    let response = session
        .call(
            Deadline::Double,
            Box::pin(client.runtime.run_pod_sandbox(request)),
        )
        .await;
    session.debug(format!("RunPodSandboxResponse: {response:?}"));
    Ok(response?.pod_sandbox_id)
}

pub(super) async fn stopp(
    args: &StoppArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    let mut client = session.runtime_client().await?;
    for given in &args.ids {
        stop_pod(session, &mut client, given)
            .await
            .map_err(|e| CrictlError::Failed(format!("stopping the pod sandbox {given:?}: {e}")))?;
    }
    Ok(())
}

/// StopPodSandbox, printing `Stopped sandbox <id>`.
async fn stop_pod(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    given: &str,
) -> Result<(), String> {
    if given.is_empty() {
        return Err("ID cannot be empty".to_owned());
    }
    let id = resolve_pod(session, client, given)
        .await
        .map_err(|e| e.to_string())?;
    session.debug(format!("Stopping pod sandbox: {id}"));
    let request = StopPodSandboxRequest { pod_sandbox_id: id };
    session
        .call(Deadline::Default, client.runtime.stop_pod_sandbox(request))
        .await
        .map_err(|s| rpc_error(&s))?;
    session
        .console
        .print(&format!("Stopped sandbox {given}\n"))
        .map_err(|e| e.to_string())?;
    Ok(())
}

pub(super) async fn rmp(args: &RmpArgs, session: &mut Session<'_, '_>) -> Result<(), CrictlError> {
    let mut client = session.runtime_client().await?;
    let mut ids = args.ids.clone();
    if args.all {
        let request = ListPodSandboxRequest { filter: None };
        let pods = session
            .call(Deadline::Default, client.runtime.list_pod_sandbox(request))
            .await
            .map_err(|s| CrictlError::Failed(rpc_error(&s)))?;
        ids = pods.items.into_iter().map(|pod| pod.id).collect();
    }
    if ids.is_empty() {
        if args.all {
            session.console.log(Level::Info, "No pods to remove");
            return Ok(());
        }
        session.console.print(&subcommand_help("rmp"))?;
        return Ok(());
    }
    let mut errors = Vec::new();
    for given in &ids {
        if let Err(e) = remove_pod(session, &mut client, given, args.force).await {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CrictlError::Failed(errors.join("\n")))
    }
}

async fn remove_pod(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    given: &str,
    force: bool,
) -> Result<(), String> {
    let id = resolve_pod(session, client, given)
        .await
        .map_err(|e| e.to_string())?;
    let request = PodSandboxStatusRequest {
        pod_sandbox_id: id.clone(),
        verbose: false,
    };
    let status = session
        .call(
            Deadline::Default,
            client.runtime.pod_sandbox_status(request),
        )
        .await
        .map_err(|s| format!("getting sandbox status of pod {given:?}: {}", rpc_error(&s)))?;
    let ready = status
        .status
        .is_some_and(|s| s.state == PodSandboxState::SandboxReady as i32);
    if ready {
        if !force {
            return Err(format!(
                "pod sandbox {given:?} is running, please stop it first"
            ));
        }
        stop_pod(session, client, given)
            .await
            .map_err(|e| format!("stopping the pod sandbox {given:?} failed: {e}"))?;
    }
    session.debug(format!("Removing pod sandbox: {id}"));
    let request = RemovePodSandboxRequest { pod_sandbox_id: id };
    session
        .call(
            Deadline::Default,
            client.runtime.remove_pod_sandbox(request),
        )
        .await
        .map_err(|s| format!("removing the pod sandbox {given:?}: {}", rpc_error(&s)))?;
    session
        .console
        .print(&format!("Removed sandbox {given}\n"))
        .map_err(|e| e.to_string())?;
    Ok(())
}

pub(super) async fn inspectp(
    args: &InspectpArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    let mut client = session.runtime_client().await?;
    let mut ids = args.ids.clone();
    if ids.is_empty() {
        let filter = PodFilter {
            id: None,
            name: args.name.as_deref(),
            namespace: args.namespace.as_deref(),
            state: args.state.as_deref(),
            labels: &args.label,
            latest: args.latest,
            last: args.last,
        };
        let pods = list_pods(session, &mut client, &filter)
            .await
            .map_err(|e| CrictlError::Failed(format!("listing pod sandboxes: {e}")))?;
        ids = pods.into_iter().map(|pod| pod.id).collect();
    }
    if ids.is_empty() {
        session
            .console
            .log(Level::Error, "No IDs provided or nothing found per filter");
        session.console.print(&subcommand_help("inspectp"))?;
        return Ok(());
    }
    let output = args
        .output
        .as_deref()
        .filter(|o| !o.is_empty())
        .unwrap_or("json");
    let verbose = !args.quiet;
    let mut statuses = Vec::new();
    for given in &ids {
        let id = resolve_pod(session, &mut client, given).await?;
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: id,
            verbose,
        };
        session.debug(format!("PodSandboxStatusRequest: {request:?}"));
        let response = session
            .call(
                Deadline::Default,
                client.runtime.pod_sandbox_status(request),
            )
            .await
            .map_err(|s| {
                rpc_failed(
                    "get the status of pod sandboxes: get pod sandbox status",
                    &s,
                )
            })?;
        session.debug(format!("PodSandboxStatusResponse: {response:?}"));
        if output == "table" {
            let text = status_table(&response, verbose);
            session.console.print(&text)?;
        } else {
            statuses.push(StatusData {
                status: status_json(&response),
                info: response.info,
            });
        }
    }
    output_status_data(session, statuses, output)
}

/// The status as crictl marshals it: protojson with its top-level unset
/// messages `null` and `createdAt` as an RFC 3339 time.
fn status_json(response: &PodSandboxStatusResponse) -> Json {
    let Some(status) = &response.status else {
        return Json::Null;
    };
    let mut json = protojson::message_with_nulls(status);
    if let Json::Object(fields) = &mut json {
        for (key, value) in fields.iter_mut() {
            if key == "createdAt" {
                *value = Json::str(rfc3339_nano(status.created_at));
            }
        }
    }
    json
}

fn status_table(response: &PodSandboxStatusResponse, verbose: bool) -> String {
    let status = response.status.clone().unwrap_or_default();
    let mut text = format!("ID: {}\n", status.id);
    if let Some(metadata) = &status.metadata {
        if !metadata.name.is_empty() {
            text.push_str(&format!("Name: {}\n", metadata.name));
        }
        if !metadata.uid.is_empty() {
            text.push_str(&format!("UID: {}\n", metadata.uid));
        }
        if !metadata.namespace.is_empty() {
            text.push_str(&format!("Namespace: {}\n", metadata.namespace));
        }
        text.push_str(&format!("Attempt: {}\n", metadata.attempt));
    }
    text.push_str(&format!("Status: {}\n", pod_state_name(status.state)));
    text.push_str(&format!("Created: {}\n", go_time(status.created_at)));
    if let Some(network) = &status.network {
        text.push_str(&format!("IP Addresses: {}\n", network.ip));
        for ip in &network.additional_ips {
            text.push_str(&format!("Additional IP: {}\n", ip.ip));
        }
    }
    text.push_str(&labels_text("Labels", &status.labels));
    text.push_str(&labels_text("Annotations", &status.annotations));
    if verbose {
        text.push_str(&format!("Info: {}\n", go_map(&response.info)));
    }
    text
}

/// `Labels:` and a tab-indented `key -> value` line per entry, when any.
pub(super) fn labels_text(title: &str, map: &std::collections::HashMap<String, String>) -> String {
    if map.is_empty() {
        return String::new();
    }
    let mut keys: Vec<_> = map.keys().collect();
    keys.sort();
    let mut text = format!("{title}:\n");
    for key in keys {
        text.push_str(&format!("\t{key} -> {}\n", map[key]));
    }
    text
}

fn pod_state_name(state: i32) -> String {
    PodSandboxState::try_from(state)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| state.to_string())
}

/// The STATE column: `Ready` or `NotReady`.
fn pod_state_short(state: i32) -> String {
    match PodSandboxState::try_from(state) {
        Ok(PodSandboxState::SandboxReady) => "Ready".to_owned(),
        Ok(PodSandboxState::SandboxNotready) => "NotReady".to_owned(),
        Err(_) => state.to_string(),
    }
}

/// The filters of `pods` and `inspectp`.
struct PodFilter<'a> {
    id: Option<&'a str>,
    name: Option<&'a str>,
    namespace: Option<&'a str>,
    state: Option<&'a str>,
    labels: &'a [String],
    latest: bool,
    last: usize,
}

/// ListPodSandbox with crictl's client-side filters, newest first.
async fn list_pods(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    filter: &PodFilter<'_>,
) -> Result<Vec<PodSandbox>, String> {
    let state = match filter.state.map(str::to_lowercase).as_deref() {
        None | Some("") => None,
        Some("ready") => Some(PodSandboxState::SandboxReady),
        Some("notready") => Some(PodSandboxState::SandboxNotready),
        Some(_) => return Err("--state should be ready or notready".to_owned()),
    };
    let id = match filter.id.filter(|id| !id.is_empty()) {
        Some(id) => resolve_pod(session, client, id)
            .await
            .map_err(|e| e.to_string())?,
        None => String::new(),
    };
    let name = compile_regex(filter.name).map_err(|e| e.to_string())?;
    let namespace = compile_regex(filter.namespace).map_err(|e| e.to_string())?;
    let request = ListPodSandboxRequest {
        filter: Some(PodSandboxFilter {
            id,
            state: state.map(|s| PodSandboxStateValue { state: s as i32 }),
            label_selector: parse_labels(filter.labels).map_err(|e| e.to_string())?,
        }),
    };
    session.debug(format!("ListPodSandboxRequest: {request:?}"));
    let response = session
        .call(Deadline::Default, client.runtime.list_pod_sandbox(request))
        .await
        .map_err(|s| format!("call list sandboxes RPC: {}", rpc_error(&s)))?;
    session.debug(format!("ListPodSandboxResponse: {response:?}"));
    let mut pods: Vec<PodSandbox> = response
        .items
        .into_iter()
        .filter(|pod| {
            pod.metadata.as_ref().is_some_and(|m| {
                matches(name.as_ref(), &m.name) && matches(namespace.as_ref(), &m.namespace)
            })
        })
        .collect();
    pods.sort_by_key(|pod| std::cmp::Reverse(pod.created_at));
    pods.truncate(truncate_count(pods.len(), filter.latest, filter.last));
    Ok(pods)
}

pub(super) async fn pods(
    args: &PodsArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    let mut client = session.runtime_client().await?;
    let filter = PodFilter {
        id: args.id.as_deref(),
        name: args.name.as_deref(),
        namespace: args.namespace.as_deref(),
        state: args.state.as_deref(),
        labels: &args.label,
        latest: args.latest,
        last: args.last,
    };
    let failed = |e: String| CrictlError::Failed(format!("listing pod sandboxes: {e}"));
    let pods = list_pods(session, &mut client, &filter)
        .await
        .map_err(|e| failed(format!("list pod sandboxes: {e}")))?;
    let text = match args.output.as_str() {
        "json" | "yaml" => {
            let json = protojson::message(&ListPodSandboxResponse { items: pods });
            if args.output == "json" {
                format!("{}\n", json.pretty(Escape::Protojson))
            } else {
                format!("{}\n", json.to_yaml())
            }
        }
        "table" => render_pods(&pods, args),
        other => return Err(failed(format!("unsupported output format {other:?}"))),
    };
    session.console.print(&text)?;
    Ok(())
}

fn runtime_handler(pod: &PodSandbox) -> &str {
    if pod.runtime_handler.is_empty() {
        "(default)"
    } else {
        &pod.runtime_handler
    }
}

/// The `pods` table, `-q` IDs or `-v` details.
fn render_pods(pods: &[PodSandbox], args: &PodsArgs) -> String {
    let mut out = String::new();
    let mut table = Table::default();
    if !args.verbose && !args.quiet {
        table.row(
            [
                "POD ID",
                "CREATED",
                "STATE",
                "NAME",
                "NAMESPACE",
                "ATTEMPT",
                "RUNTIME",
            ]
            .map(String::from)
            .to_vec(),
        );
    }
    for pod in pods {
        if args.quiet {
            out.push_str(&format!("{}\n", pod.id));
            continue;
        }
        let metadata = pod.metadata.clone().unwrap_or_default();
        if !args.verbose {
            let id = if args.no_trunc {
                pod.id.clone()
            } else {
                truncated_id(&pod.id, "")
            };
            table.row(vec![
                id,
                ago(pod.created_at),
                pod_state_short(pod.state),
                metadata.name,
                metadata.namespace,
                metadata.attempt.to_string(),
                runtime_handler(pod).to_owned(),
            ]);
            continue;
        }
        out.push_str(&format!("ID: {}\n", pod.id));
        if pod.metadata.is_some() {
            if !metadata.name.is_empty() {
                out.push_str(&format!("Name: {}\n", metadata.name));
            }
            if !metadata.uid.is_empty() {
                out.push_str(&format!("UID: {}\n", metadata.uid));
            }
            if !metadata.namespace.is_empty() {
                out.push_str(&format!("Namespace: {}\n", metadata.namespace));
            }
            if metadata.attempt != 0 {
                out.push_str(&format!("Attempt: {}\n", metadata.attempt));
            }
        }
        out.push_str(&format!("Status: {}\n", pod_state_short(pod.state)));
        out.push_str(&format!("Created: {}\n", go_time(pod.created_at)));
        out.push_str(&labels_text("Labels", &pod.labels));
        out.push_str(&labels_text("Annotations", &pod.annotations));
        out.push_str(&format!("Runtime: {}\n\n", runtime_handler(pod)));
    }
    out.push_str(&table.render());
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use k8s_cri::v1::{PodSandboxMetadata, PodSandboxNetworkStatus, PodSandboxStatus};

    use super::*;
    use crate::crictl::timefmt::now_nanos;

    fn pod(id: &str, name: &str, minutes_ago: i64) -> PodSandbox {
        PodSandbox {
            id: id.to_owned(),
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                uid: "uid-1".to_owned(),
                namespace: "default".to_owned(),
                attempt: 0,
            }),
            state: PodSandboxState::SandboxReady as i32,
            created_at: now_nanos() - minutes_ago * 60_000_000_000,
            labels: HashMap::new(),
            annotations: HashMap::new(),
            runtime_handler: String::new(),
        }
    }

    fn args() -> PodsArgs {
        PodsArgs {
            id: None,
            name: None,
            namespace: None,
            state: None,
            label: vec![],
            verbose: false,
            quiet: false,
            output: "table".to_owned(),
            latest: false,
            last: 0,
            no_trunc: false,
        }
    }

    #[test]
    fn the_pods_table_reads_as_crictl_prints_it() {
        let id = "8c7a3f8e2b1d4c5a6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";
        let pods = [pod(id, "nginx-sandbox", 2)];
        let expected = "\
POD ID              CREATED             STATE               NAME                NAMESPACE           ATTEMPT             RUNTIME
8c7a3f8e2b1d4       2 minutes ago       Ready               nginx-sandbox       default             0                   (default)
";
        assert_eq!(render_pods(&pods, &args()), expected);
        let quiet = PodsArgs {
            quiet: true,
            ..args()
        };
        assert_eq!(render_pods(&pods, &quiet), format!("{id}\n"));
    }

    #[test]
    fn verbose_pods_list_their_details() {
        let mut p = pod("abc", "web", 0);
        p.created_at = 1_700_000_000_000_000_000;
        p.labels.insert("app".into(), "web".into());
        let verbose = PodsArgs {
            verbose: true,
            ..args()
        };
        assert_eq!(
            render_pods(&[p], &verbose),
            "ID: abc\nName: web\nUID: uid-1\nNamespace: default\nStatus: Ready\n\
             Created: 2023-11-14 22:13:20 +0000 UTC\nLabels:\n\tapp -> web\nRuntime: (default)\n\n"
        );
    }

    #[test]
    fn status_json_has_readable_times_and_null_messages() {
        let response = PodSandboxStatusResponse {
            status: Some(PodSandboxStatus {
                id: "abc".into(),
                created_at: 1_700_000_000_000_000_000,
                network: Some(PodSandboxNetworkStatus {
                    ip: "10.42.0.5".into(),
                    additional_ips: vec![],
                }),
                ..Default::default()
            }),
            info: HashMap::new(),
            containers_statuses: vec![],
            timestamp: 0,
        };
        let Json::Object(fields) = status_json(&response) else {
            panic!("not an object");
        };
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("createdAt"), Some(Json::str("2023-11-14T22:13:20Z")));
        assert_eq!(get("linux"), Some(Json::Null));
        assert_eq!(get("state"), Some(Json::str("SANDBOX_READY")));
        let table = status_table(&response, true);
        assert_eq!(
            table,
            "ID: abc\nStatus: SANDBOX_READY\nCreated: 2023-11-14 22:13:20 +0000 UTC\n\
             IP Addresses: 10.42.0.5\nInfo: map[]\n"
        );
    }
}
