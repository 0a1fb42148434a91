//! `crictl ps` and `crictl inspect`, and the container listing that
//! `stop -a` and `exec`'s filters share.

use std::collections::HashMap;

use k8s_cri::v1::{
    Container, ContainerFilter, ContainerState, ContainerStateValue, ContainerStatusRequest,
    ContainerStatusResponse, ListContainersRequest, ListContainersResponse,
};

use super::console::{Level, rpc_error};
use super::inspecti::{StatusData, image_status, output_status_data};
use super::json::{Escape, Json};
use super::lookup::{
    Deadline, compile_regex, go_map, matches, parse_labels, resolve_container, resolve_pod,
    rpc_failed, subcommand_help, truncate_count, truncated_id,
};
use super::sandbox::labels_text;
use super::table::Table;
use super::timefmt::{ZERO_TIME_RFC3339, ago, rfc3339_nano};
use super::{CrictlError, Session, protojson};
use crate::client::CriClient;

/// The label kubelet puts the pod's name in.
const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
/// The label kubelet puts the pod's namespace in.
const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";

/// `crictl ps` options.
#[derive(Debug, Clone, clap::Args)]
pub struct PsArgs {
    /// Show verbose information for containers
    #[arg(short, long)]
    verbose: bool,
    /// Filter by container id
    #[arg(long)]
    id: Option<String>,
    /// Filter by container name regular expression pattern
    #[arg(long)]
    name: Option<String>,
    /// Filter by pod id
    #[arg(short, long)]
    pod: Option<String>,
    /// Filter by container image
    #[arg(long)]
    image: Option<String>,
    /// Filter by container state
    #[arg(short, long)]
    state: Option<String>,
    /// Filter by key=value label
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Output format, One of: json|yaml|table
    #[arg(short, long, value_name = "FORMAT", default_value = "table")]
    output: String,
    /// Show all containers
    #[arg(short, long)]
    all: bool,
    /// Show the most recently created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Show last n recently created containers (includes all states). Set 0 for unlimited.
    #[arg(short = 'n', long, default_value_t = 0)]
    last: usize,
    /// Show output without truncating the ID
    #[arg(long)]
    no_trunc: bool,
    /// Show image path instead of image id
    #[arg(short, long)]
    resolve_image_path: bool,
    /// Filter by pod namespace regular expression pattern
    #[arg(long)]
    namespace: Option<String>,
}

/// `crictl inspect` options.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// Output format, One of: json|yaml|go-template|table
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<String>,
    /// Do not show verbose information
    #[arg(short, long)]
    quiet: bool,
    /// The template string is only used when output is go-template
    #[arg(long, hide = true)]
    template: Option<String>,
    /// Filter by container name regular expression pattern
    #[arg(long)]
    name: Option<String>,
    /// Filter by pod namespace regular expression pattern
    #[arg(long)]
    namespace: Option<String>,
    /// Filter by pod id
    #[arg(short, long)]
    pod: Option<String>,
    /// Filter by container image
    #[arg(long)]
    image: Option<String>,
    /// Filter by container state
    #[arg(short, long)]
    state: Option<String>,
    /// Filter by key=value label
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Show the most recently created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Show last n recently created containers (includes all states). Set 0 for unlimited.
    #[arg(short = 'n', long, default_value_t = 0)]
    last: usize,
    /// Show all containers
    #[arg(short, long)]
    all: bool,
    /// Containers to inspect
    #[arg(value_name = "CONTAINER-ID")]
    ids: Vec<String>,
}

/// Which containers a listing keeps.
#[derive(Debug, Default)]
pub(super) struct ContainerQuery<'a> {
    pub id: Option<&'a str>,
    pub pod: Option<&'a str>,
    pub name: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub image: Option<&'a str>,
    pub state: Option<&'a str>,
    pub labels: &'a [String],
    pub all: bool,
    pub latest: bool,
    pub last: usize,
}

/// ListContainers with crictl's filters: running ones unless `all`, a
/// state, or `latest`/`last` say otherwise; newest first.
pub(super) async fn list_containers(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    query: &ContainerQuery<'_>,
) -> Result<Vec<Container>, String> {
    let mut state = match query.state.map(str::to_lowercase).as_deref() {
        None | Some("") => (!query.all).then_some(ContainerState::ContainerRunning),
        Some("created") => Some(ContainerState::ContainerCreated),
        Some("running") => Some(ContainerState::ContainerRunning),
        Some("exited") => Some(ContainerState::ContainerExited),
        Some("unknown") => Some(ContainerState::ContainerUnknown),
        Some(_) => {
            return Err("--state should be one of created, running, exited or unknown".to_owned());
        }
    };
    if query.latest || query.last > 0 {
        state = None;
    }
    let id = match query.id.filter(|id| !id.is_empty()) {
        Some(id) => resolve_container(session, client, id)
            .await
            .map_err(|e| e.to_string())?,
        None => String::new(),
    };
    let pod = match query.pod.filter(|id| !id.is_empty()) {
        Some(id) => resolve_pod(session, client, id)
            .await
            .map_err(|e| e.to_string())?,
        None => String::new(),
    };
    let name = compile_regex(query.name).map_err(|e| e.to_string())?;
    let namespace = compile_regex(query.namespace).map_err(|e| e.to_string())?;
    let request = ListContainersRequest {
        filter: Some(ContainerFilter {
            id,
            state: state.map(|s| ContainerStateValue { state: s as i32 }),
            pod_sandbox_id: pod,
            label_selector: parse_labels(query.labels).map_err(|e| e.to_string())?,
        }),
    };
    session.debug(format!("ListContainersRequest: {request:?}"));
    let response = session
        .call(Deadline::Default, client.runtime.list_containers(request))
        .await
        .map_err(|s| format!("call list containers RPC: {}", rpc_error(&s)))?;
    session.debug(format!("ListContainerResponse: {response:?}"));
    let mut images = None;
    let mut wanted_image = None;
    if let Some(image) = query.image.filter(|i| !i.is_empty()) {
        let mut client = session.image_client().await.map_err(|e| e.to_string())?;
        wanted_image = Some(image_id(session, &mut client, image).await?);
        images = Some(client);
    }
    let mut containers = Vec::new();
    for container in response.containers {
        if let (Some(wanted), Some(images)) = (&wanted_image, images.as_mut()) {
            let image = container.image.as_ref().map_or("", |i| i.image.as_str());
            // An image that does not exist never matches.
            if wanted.is_none() || image_id(session, images, image).await? != *wanted {
                continue;
            }
        }
        let namespace_label = label_or_unknown(&container.labels, POD_NAMESPACE_LABEL);
        let keep = container.metadata.as_ref().is_some_and(|m| {
            matches(name.as_ref(), &m.name) && matches(namespace.as_ref(), namespace_label)
        });
        if keep {
            containers.push(container);
        }
    }
    containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    containers.truncate(truncate_count(containers.len(), query.latest, query.last));
    Ok(containers)
}

/// The ID of the image a reference names, if present.
async fn image_id(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    image: &str,
) -> Result<Option<String>, String> {
    let response = image_status(session, client, image, false)
        .await
        .map_err(|s| format!("check image match: {}", rpc_error(&s)))?;
    Ok(response.image.map(|i| i.id))
}

fn label_or_unknown<'a>(labels: &'a HashMap<String, String>, key: &str) -> &'a str {
    labels.get(key).map_or("unknown", String::as_str)
}

/// The STATE column: `Created`, `Running`, `Exited` or `Unknown`.
pub(super) fn container_state_short(state: i32) -> String {
    match ContainerState::try_from(state) {
        Ok(ContainerState::ContainerCreated) => "Created".to_owned(),
        Ok(ContainerState::ContainerRunning) => "Running".to_owned(),
        Ok(ContainerState::ContainerExited) => "Exited".to_owned(),
        Ok(ContainerState::ContainerUnknown) => "Unknown".to_owned(),
        Err(_) => state.to_string(),
    }
}

fn container_state_name(state: i32) -> String {
    ContainerState::try_from(state)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| state.to_string())
}

pub(super) async fn ps(args: &PsArgs, session: &mut Session<'_, '_>) -> Result<(), CrictlError> {
    let mut client = session.runtime_client().await?;
    let query = ContainerQuery {
        id: args.id.as_deref(),
        pod: args.pod.as_deref(),
        name: args.name.as_deref(),
        namespace: args.namespace.as_deref(),
        image: args.image.as_deref(),
        state: args.state.as_deref(),
        labels: &args.label,
        all: args.all,
        latest: args.latest,
        last: args.last,
    };
    let failed = |e: String| CrictlError::Failed(format!("listing containers: {e}"));
    let containers = list_containers(session, &mut client, &query)
        .await
        .map_err(|e| failed(format!("list containers: {e}")))?;
    let text = match args.output.as_str() {
        "json" | "yaml" => {
            let json = protojson::message(&ListContainersResponse { containers });
            if args.output == "json" {
                format!("{}\n", json.pretty(Escape::Protojson))
            } else {
                format!("{}\n", json.to_yaml())
            }
        }
        "table" => {
            let mut repo_images = HashMap::new();
            if args.resolve_image_path && !args.quiet && !args.verbose {
                let mut images = session.image_client().await?;
                for container in &containers {
                    let image = shown_image(container, args.no_trunc);
                    if repo_images.contains_key(&image) {
                        continue;
                    }
                    let status = image_status(session, &mut images, &image, false)
                        .await
                        .map_err(|s| {
                            failed(format!("failed to fetch repo image {}", rpc_error(&s)))
                        })?;
                    let repo = status
                        .image
                        .and_then(|i| i.repo_tags.into_iter().next())
                        .unwrap_or_else(|| image.clone());
                    repo_images.insert(image, repo);
                }
            }
            render_containers(&containers, args, &repo_images)
        }
        other => return Err(failed(format!("unsupported output format {other:?}"))),
    };
    session.console.print(&text)?;
    Ok(())
}

/// The IMAGE column: the image, a digest cut to 13 hex digits unless
/// `--no-trunc`.
fn shown_image(container: &Container, no_trunc: bool) -> String {
    let image = container
        .image
        .as_ref()
        .map_or(String::new(), |i| i.image.clone());
    if no_trunc {
        return image;
    }
    match parse_digest(&image) {
        Some((algorithm, _)) => truncated_id(&image, &format!("{algorithm}:")),
        None => image,
    }
}

/// `algorithm:hex` when `text` is a digest as go-digest parses one.
fn parse_digest(text: &str) -> Option<(&str, &str)> {
    let (algorithm, hex) = text.split_once(':')?;
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return None,
    };
    let valid = hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then_some((algorithm, hex))
}

fn render_containers(
    containers: &[Container],
    args: &PsArgs,
    repo_images: &HashMap<String, String>,
) -> String {
    let mut out = String::new();
    let mut table = Table::default();
    if !args.verbose && !args.quiet {
        table.row(
            [
                "CONTAINER",
                "IMAGE",
                "CREATED",
                "STATE",
                "NAME",
                "ATTEMPT",
                "POD ID",
                "POD",
                "NAMESPACE",
            ]
            .map(String::from)
            .to_vec(),
        );
    }
    for container in containers {
        if args.quiet {
            out.push_str(&format!("{}\n", container.id));
            continue;
        }
        let created = ago(container.created_at);
        let namespace = label_or_unknown(&container.labels, POD_NAMESPACE_LABEL);
        let metadata = container.metadata.clone().unwrap_or_default();
        if !args.verbose {
            let (id, pod_id) = if args.no_trunc {
                (container.id.clone(), container.pod_sandbox_id.clone())
            } else {
                (
                    truncated_id(&container.id, ""),
                    truncated_id(&container.pod_sandbox_id, ""),
                )
            };
            let mut image = shown_image(container, args.no_trunc);
            if let Some(repo) = repo_images.get(&image) {
                image = repo.clone();
            }
            table.row(vec![
                id,
                image,
                created,
                container_state_short(container.state),
                metadata.name,
                metadata.attempt.to_string(),
                pod_id,
                label_or_unknown(&container.labels, POD_NAME_LABEL).to_owned(),
                namespace.to_owned(),
            ]);
            continue;
        }
        out.push_str(&format!("ID: {}\n", container.id));
        out.push_str(&format!("PodID: {}\n", container.pod_sandbox_id));
        out.push_str(&format!("Namespace: {namespace}\n"));
        if container.metadata.is_some() {
            if !metadata.name.is_empty() {
                out.push_str(&format!("Name: {}\n", metadata.name));
            }
            out.push_str(&format!("Attempt: {}\n", metadata.attempt));
        }
        out.push_str(&format!(
            "State: {}\n",
            container_state_short(container.state)
        ));
        if let Some(image) = &container.image {
            out.push_str(&format!("Image: {}\n", image.image));
        }
        out.push_str(&format!("Created: {created}\n"));
        out.push_str(&labels_text("Labels", &container.labels));
        out.push_str(&labels_text("Annotations", &container.annotations));
        out.push('\n');
    }
    out.push_str(&table.render());
    out
}

pub(super) async fn inspect(
    args: &InspectArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    let mut client = session.runtime_client().await?;
    let mut ids = args.ids.clone();
    if ids.is_empty() {
        let query = ContainerQuery {
            id: None,
            pod: args.pod.as_deref(),
            name: args.name.as_deref(),
            namespace: args.namespace.as_deref(),
            image: args.image.as_deref(),
            state: args.state.as_deref(),
            labels: &args.label,
            all: args.all,
            latest: args.latest,
            last: args.last,
        };
        let containers = list_containers(session, &mut client, &query)
            .await
            .map_err(|e| CrictlError::Failed(format!("listing containers: {e}")))?;
        ids = containers.into_iter().map(|c| c.id).collect();
    }
    if ids.is_empty() {
        session
            .console
            .log(Level::Error, "No IDs provided or nothing found per filter");
        session.console.print(&subcommand_help("inspect"))?;
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
        let response = container_status(session, &mut client, given, verbose)
            .await
            .map_err(|s| rpc_failed("get the status of containers: get container status", &s))?;
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

/// ContainerStatus for an ID or a prefix of one.
pub(super) async fn container_status(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    given: &str,
    verbose: bool,
) -> Result<ContainerStatusResponse, tonic::Status> {
    let id = resolve_container(session, client, given)
        .await
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
    let request = ContainerStatusRequest {
        container_id: id,
        verbose,
    };
    session.debug(format!("ContainerStatusRequest: {request:?}"));
    let response = session
        .call(Deadline::Default, client.runtime.container_status(request))
        .await;
    session.debug(format!("ContainerStatusResponse: {response:?}"));
    response
}

/// The status as crictl marshals it: protojson with top-level unset
/// messages `null` and the three times in RFC 3339 (Go's zero time for
/// the ones that have not happened).
fn status_json(response: &ContainerStatusResponse) -> Json {
    let Some(status) = &response.status else {
        return Json::Null;
    };
    let state = ContainerState::try_from(status.state).ok();
    let started = if state == Some(ContainerState::ContainerCreated) {
        ZERO_TIME_RFC3339.to_owned()
    } else {
        rfc3339_nano(status.started_at)
    };
    let finished = state == Some(ContainerState::ContainerExited)
        || (state == Some(ContainerState::ContainerUnknown) && status.finished_at > 0);
    let finished = if finished {
        rfc3339_nano(status.finished_at)
    } else {
        ZERO_TIME_RFC3339.to_owned()
    };
    let mut json = protojson::message_with_nulls(status);
    if let Json::Object(fields) = &mut json {
        for (key, value) in fields.iter_mut() {
            match key.as_str() {
                "createdAt" => *value = Json::str(rfc3339_nano(status.created_at)),
                "startedAt" => *value = Json::str(started.clone()),
                "finishedAt" => *value = Json::str(finished.clone()),
                _ => {}
            }
        }
    }
    json
}

fn status_table(response: &ContainerStatusResponse, verbose: bool) -> String {
    let status = response.status.clone().unwrap_or_default();
    let mut text = format!("ID: {}\n", status.id);
    if let Some(metadata) = &status.metadata {
        if !metadata.name.is_empty() {
            text.push_str(&format!("Name: {}\n", metadata.name));
        }
        if metadata.attempt != 0 {
            text.push_str(&format!("Attempt: {}\n", metadata.attempt));
        }
    }
    text.push_str(&format!("State: {}\n", container_state_name(status.state)));
    text.push_str(&format!("Created: {}\n", ago(status.created_at)));
    let state = ContainerState::try_from(status.state).ok();
    if state != Some(ContainerState::ContainerCreated) {
        text.push_str(&format!("Started: {}\n", ago(status.started_at)));
    }
    if state == Some(ContainerState::ContainerExited) {
        if status.finished_at > 0 {
            text.push_str(&format!("Finished: {}\n", ago(status.finished_at)));
        }
        text.push_str(&format!("Exit Code: {}\n", status.exit_code));
    }
    text.push_str(&labels_text("Labels", &status.labels));
    text.push_str(&labels_text("Annotations", &status.annotations));
    if verbose {
        text.push_str(&format!("Info: {}\n", go_map(&response.info)));
    }
    text
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::{ContainerMetadata, ContainerStatus, ImageSpec};

    use super::*;
    use crate::crictl::timefmt::now_nanos;

    const DIGEST: &str = "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741";

    fn container(id: &str, image: &str) -> Container {
        Container {
            id: id.to_owned(),
            pod_sandbox_id: "8c7a3f8e2b1d4c5a6e7f8091a2b3c4d5".to_owned(),
            metadata: Some(ContainerMetadata {
                name: "web".to_owned(),
                attempt: 1,
            }),
            image: Some(ImageSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
            image_ref: String::new(),
            state: ContainerState::ContainerRunning as i32,
            created_at: now_nanos() - 5 * 1_000_000_000,
            labels: HashMap::from([
                (POD_NAME_LABEL.to_owned(), "nginx".to_owned()),
                (POD_NAMESPACE_LABEL.to_owned(), "default".to_owned()),
            ]),
            annotations: HashMap::new(),
            image_id: String::new(),
        }
    }

    fn args() -> PsArgs {
        PsArgs {
            verbose: false,
            id: None,
            name: None,
            pod: None,
            image: None,
            state: None,
            label: vec![],
            quiet: false,
            output: "table".to_owned(),
            all: false,
            latest: false,
            last: 0,
            no_trunc: false,
            resolve_image_path: false,
            namespace: None,
        }
    }

    #[test]
    fn the_ps_table_reads_as_crictl_prints_it() {
        let containers = [container("0123456789abcdef0123", DIGEST)];
        let expected = "\
CONTAINER           IMAGE               CREATED             STATE               NAME                ATTEMPT             POD ID              POD                 NAMESPACE
0123456789abc       3f57d9401f8d4       5 seconds ago       Running             web                 1                   8c7a3f8e2b1d4       nginx               default
";
        assert_eq!(
            render_containers(&containers, &args(), &HashMap::new()),
            expected
        );
        let no_trunc = PsArgs {
            no_trunc: true,
            ..args()
        };
        let text = render_containers(&containers, &no_trunc, &HashMap::new());
        assert!(text.contains(DIGEST), "{text}");
    }

    #[test]
    fn images_that_are_not_digests_show_whole() {
        let c = container("c", "docker.io/library/busybox:latest");
        assert_eq!(shown_image(&c, false), "docker.io/library/busybox:latest");
        assert_eq!(parse_digest("sha256:abc"), None);
        assert!(parse_digest(DIGEST).is_some());
    }

    #[test]
    fn verbose_containers_list_their_details() {
        let mut c = container("c1", "busybox");
        c.labels.clear();
        let verbose = PsArgs {
            verbose: true,
            ..args()
        };
        assert_eq!(
            render_containers(&[c], &verbose, &HashMap::new()),
            "ID: c1\nPodID: 8c7a3f8e2b1d4c5a6e7f8091a2b3c4d5\nNamespace: unknown\nName: web\n\
             Attempt: 1\nState: Running\nImage: busybox\nCreated: 5 seconds ago\n\n"
        );
    }

    #[test]
    fn status_times_follow_the_state() {
        let mut status = ContainerStatus {
            id: "c1".into(),
            state: ContainerState::ContainerCreated as i32,
            created_at: 1_700_000_000_000_000_000,
            started_at: 0,
            finished_at: 0,
            ..Default::default()
        };
        let response = |status: &ContainerStatus| ContainerStatusResponse {
            status: Some(status.clone()),
            info: HashMap::new(),
        };
        let get = |json: Json, key: &str| {
            let Json::Object(fields) = json else {
                panic!("not an object")
            };
            fields.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
        };
        let json = status_json(&response(&status));
        assert_eq!(
            get(json.clone(), "createdAt"),
            Some(Json::str("2023-11-14T22:13:20Z"))
        );
        assert_eq!(
            get(json.clone(), "startedAt"),
            Some(Json::str(ZERO_TIME_RFC3339))
        );
        assert_eq!(get(json, "finishedAt"), Some(Json::str(ZERO_TIME_RFC3339)));

        status.state = ContainerState::ContainerExited as i32;
        status.started_at = 1_700_000_001_000_000_000;
        status.finished_at = 1_700_000_002_500_000_000;
        status.exit_code = 3;
        let json = status_json(&response(&status));
        assert_eq!(
            get(json.clone(), "startedAt"),
            Some(Json::str("2023-11-14T22:13:21Z"))
        );
        assert_eq!(
            get(json.clone(), "finishedAt"),
            Some(Json::str("2023-11-14T22:13:22.5Z"))
        );
        assert_eq!(get(json, "metadata"), Some(Json::Null));
        let table = status_table(&response(&status), false);
        assert!(
            table.starts_with("ID: c1\nState: CONTAINER_EXITED\nCreated: "),
            "{table}"
        );
        assert!(table.ends_with("Exit Code: 3\n"), "{table}");
    }
}
