//! The container lifecycle verbs: `create`, `start`, `run`, `stop`, `rm`
//! and `update`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1::{
    AuthConfig, ContainerConfig, ContainerState, CreateContainerRequest, ImageSpec,
    LinuxContainerResources, ListContainersRequest, PodSandboxConfig, PullImageRequest,
    RemoveContainerRequest, StartContainerRequest, StopContainerRequest,
    UpdateContainerResourcesRequest,
};

use super::config::parse_go_duration;
use super::config_file::load_container_config;
use super::console::{Level, rpc_error};
use super::lookup::{Deadline, resolve_container, resolve_pod, rpc_failed, subcommand_help};
use super::ps::{ContainerQuery, container_status, list_containers};
use super::pull::{parse_creds, read_password};
use super::sandbox::{apply_cancel_timeout, load_pod, run_pod_sandbox};
use super::{CrictlError, Session};
use crate::client::CriClient;

/// How `create` and `run` pull the image.
#[derive(Debug, Clone, clap::Args)]
pub struct PullFlags {
    /// Do not pull the image (overrides pull-image-on-create=true or disable-pull-on-run=false in config)
    #[arg(long)]
    no_pull: bool,
    /// Pull the image (overrides pull-image-on-create=false or disable-pull-on-run=true in config)
    #[arg(long)]
    with_pull: bool,
    /// Use USERNAME[:PASSWORD] for accessing the registry
    #[arg(long, value_name = "USERNAME[:PASSWORD]")]
    creds: Option<String>,
    /// Use AUTH_STRING (base64 of USERNAME[:PASSWORD]) for accessing the registry
    #[arg(long, value_name = "AUTH_STRING")]
    auth: Option<String>,
    /// Use USERNAME for accessing the registry. The password will be requested on the command line
    #[arg(long, value_name = "USERNAME")]
    username: Option<String>,
    /// Seconds to wait for a container create request to complete before cancelling the request
    #[arg(short = 'T', long, value_name = "DURATION")]
    cancel_timeout: Option<String>,
    /// Maximum time to be used for pulling the image, disabled if set to 0s
    #[arg(
        long,
        visible_alias = "pt",
        env = "CRICTL_PULL_TIMEOUT",
        value_name = "DURATION"
    )]
    pull_timeout: Option<String>,
}

/// `crictl create` options.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pull: PullFlags,
    /// The pod to create the container in
    #[arg(value_name = "POD")]
    pod: String,
    /// The container config (JSON or YAML)
    #[arg(value_name = "container-config.[json|yaml]")]
    container_config: PathBuf,
    /// The pod's config (JSON or YAML)
    #[arg(value_name = "pod-config.[json|yaml]")]
    pod_config: PathBuf,
}

/// `crictl run` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pull: PullFlags,
    /// Runtime handler to use. Available options are defined by the container runtime.
    #[arg(short, long, value_name = "HANDLER")]
    runtime: Option<String>,
    /// The container config (JSON or YAML)
    #[arg(value_name = "container-config.[json|yaml]")]
    container_config: PathBuf,
    /// The pod config (JSON or YAML)
    #[arg(value_name = "pod-config.[json|yaml]")]
    pod_config: PathBuf,
}

/// `crictl start` options.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// Containers to start
    #[arg(value_name = "CONTAINER-ID")]
    ids: Vec<String>,
}

/// `crictl stop` options.
#[derive(Debug, Clone, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait to kill the container after a graceful stop is requested
    #[arg(short, long, default_value_t = 0, allow_negative_numbers = true)]
    timeout: i64,
    /// Stop all running containers
    #[arg(short, long)]
    all: bool,
    /// Containers to stop
    #[arg(value_name = "CONTAINER-ID")]
    ids: Vec<String>,
}

/// `crictl rm` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RmArgs {
    /// Force removal of the container, disregarding if running
    #[arg(short, long)]
    force: bool,
    /// Preserve the container log file and its rotations
    #[arg(short, long)]
    keep_logs: bool,
    /// Remove all containers
    #[arg(short, long)]
    all: bool,
    /// Containers to remove
    #[arg(value_name = "CONTAINER-ID")]
    ids: Vec<String>,
}

/// `crictl update` options.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// CPU CFS period to be used for hardcapping (in usecs). 0 to use system default
    #[arg(long, default_value_t = 0)]
    cpu_period: i64,
    /// CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    cpu_quota: i64,
    /// CPU shares (relative weight vs. other containers)
    #[arg(long, visible_alias = "cpu-shares", default_value_t = 0)]
    cpu_share: i64,
    /// Memory limit (in bytes)
    #[arg(long, default_value_t = 0)]
    memory: i64,
    /// CPU(s) to use
    #[arg(long, default_value = "")]
    cpuset_cpus: String,
    /// Memory node(s) to use
    #[arg(long, default_value = "")]
    cpuset_mems: String,
    /// OOM Killer score to use
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    oom_score_adj: i64,
    /// (Windows only) Number of CPUs available to the container
    #[arg(long, hide = true, default_value_t = 0)]
    cpu_count: i64,
    /// (Windows only) Portion of CPU cycles specified as a percentage * 100
    #[arg(long, hide = true, default_value_t = 0)]
    cpu_maximum: i64,
    /// Containers to update
    #[arg(value_name = "CONTAINER-ID")]
    ids: Vec<String>,
}

fn both_pull_flags(flags: &PullFlags) -> Result<(), CrictlError> {
    if flags.no_pull && flags.with_pull {
        return Err(CrictlError::Failed(
            "conflict: no-pull and with-pull are both set".to_owned(),
        ));
    }
    Ok(())
}

pub(super) async fn create(
    args: &CreateArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    both_pull_flags(&args.pull)?;
    let with_pull =
        (!args.pull.no_pull && session.settings.pull_image_on_create) || args.pull.with_pull;
    apply_cancel_timeout(session, args.pull.cancel_timeout.as_deref())?;
    let mut client = session.runtime_client().await?;
    let pod_config = load_pod_config_for_create(session, &args.pod_config)
        .map_err(|e| CrictlError::Failed(format!("creating container: {e}")))?;
    let pod = resolve_pod(session, &mut client, &args.pod).await?;
    let id = Box::pin(create_container(
        session,
        &mut client,
        &pod,
        &args.container_config,
        pod_config,
        &args.pull,
        with_pull,
    ))
    .await
    .map_err(|e| CrictlError::Failed(format!("creating container: {e}")))?;
    session.console.print(&format!("{id}\n"))?;
    Ok(())
}

/// A pod config as `create` reads it: its errors are not prefixed.
fn load_pod_config_for_create(
    session: &mut Session<'_, '_>,
    path: &Path,
) -> Result<PodSandboxConfig, String> {
    let loaded = super::config_file::load_pod_config(path)?;
    for warning in &loaded.warnings {
        session.console.log(Level::Warn, warning);
    }
    Ok(loaded.config)
}

/// Loads the container config, pulls its images when asked, and creates
/// the container; its ID.
async fn create_container(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    pod_id: &str,
    config_path: &Path,
    pod_config: PodSandboxConfig,
    pull: &PullFlags,
    with_pull: bool,
) -> Result<String, String> {
    let loaded = load_container_config(config_path)?;
    for warning in &loaded.warnings {
        session.console.log(Level::Warn, warning);
    }
    let mut config = loaded.config;
    let image = config.image.get_or_insert_with(ImageSpec::default);
    if image.user_specified_image.is_empty() {
        image.user_specified_image = image.image.clone();
    }
    if with_pull {
        pull_images(session, &config, &pod_config, pull).await?;
    }
    let request = CreateContainerRequest {
        pod_sandbox_id: pod_id.to_owned(),
        config: Some(config),
        sandbox_config: Some(pod_config),
    };
    session.debug(format!("CreateContainerRequest: {request:?}"));
    let response = session
        .call(
            Deadline::Default,
            Box::pin(client.runtime.create_container(request)),
        )
        .await;
    session.debug(format!("CreateContainerResponse: {response:?}"));
    response.map(|r| r.container_id).map_err(|s| rpc_error(&s))
}

/// Pulls the container's image and any image it mounts, as crictl does
/// before creating.
async fn pull_images(
    session: &mut Session<'_, '_>,
    config: &ContainerConfig,
    pod_config: &PodSandboxConfig,
    flags: &PullFlags,
) -> Result<(), String> {
    let auth = auth_config(session, flags)?;
    let timeout = match &flags.pull_timeout {
        Some(text) => parse_go_duration(text)
            .map_err(|e| format!("invalid value {text:?} for flag -pull-timeout: {e}"))?,
        None => Duration::ZERO,
    };
    let spec = config.image.clone().unwrap_or_default();
    let mut images = vec![spec.image.clone()];
    session.console.log(
        Level::Info,
        &format!("Pulling container image: {}", spec.image),
    );
    for mount in &config.mounts {
        if let Some(image) = mount.image.as_ref().filter(|i| !i.image.is_empty()) {
            session.console.log(
                Level::Info,
                &format!(
                    "Pulling image {} to be mounted to container path: {}",
                    image.image, mount.container_path
                ),
            );
            images.push(image.image.clone());
        }
    }
    let mut client = session.image_client().await.map_err(|e| e.to_string())?;
    for image in images {
        let request = PullImageRequest {
            image: Some(ImageSpec {
                image,
                annotations: spec.annotations.clone(),
                ..ImageSpec::default()
            }),
            auth: auth.clone(),
            sandbox_config: Some(pod_config.clone()),
        };
        session.debug(format!("PullImageRequest: {request:?}"));
        let call = client.images.pull_image(request);
        let response = if timeout.is_zero() {
            call.await.map(tonic::Response::into_inner)
        } else {
            match tokio::time::timeout(timeout, call).await {
                Ok(result) => result.map(tonic::Response::into_inner),
                Err(_) => Err(tonic::Status::deadline_exceeded(
                    "context deadline exceeded",
                )),
            }
        };
        let response = response.map_err(|s| rpc_error(&s))?;
        session.debug(format!("PullImageResponse: {response:?}"));
    }
    Ok(())
}

/// The registry credentials of `--username`, `--creds` or `--auth`.
fn auth_config(
    session: &mut Session<'_, '_>,
    flags: &PullFlags,
) -> Result<Option<AuthConfig>, String> {
    if let Some(username) = flags.username.as_ref().filter(|u| !u.is_empty()) {
        session
            .console
            .print("Enter Password:")
            .map_err(|e| e.to_string())?;
        let _ = session.console.out.flush();
        let password = read_password().map_err(|e| e.to_string())?;
        session.console.print("\n").map_err(|e| e.to_string())?;
        return Ok(Some(AuthConfig {
            username: username.clone(),
            password,
            ..AuthConfig::default()
        }));
    }
    let creds = flags.creds.as_deref().filter(|c| !c.is_empty());
    let auth = flags.auth.as_deref().filter(|a| !a.is_empty());
    match (creds, auth) {
        (Some(_), Some(_)) => Err("both `--creds` and `--auth` are specified".to_owned()),
        (Some(creds), None) => {
            let (username, password) = parse_creds(creds).map_err(|e| e.to_string())?;
            Ok(Some(AuthConfig {
                username,
                password,
                ..AuthConfig::default()
            }))
        }
        (None, Some(auth)) => Ok(Some(AuthConfig {
            auth: auth.to_owned(),
            ..AuthConfig::default()
        })),
        (None, None) => Ok(None),
    }
}

pub(super) async fn start(
    args: &StartArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    if args.ids.is_empty() {
        return Err(CrictlError::Failed("ID cannot be empty".to_owned()));
    }
    let mut client = session.runtime_client().await?;
    for given in &args.ids {
        start_container(session, &mut client, given)
            .await
            .map_err(|e| CrictlError::Failed(format!("starting the container {given:?}: {e}")))?;
    }
    Ok(())
}

/// StartContainer, printing the ID.
async fn start_container(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    given: &str,
) -> Result<(), String> {
    if given.is_empty() {
        return Err("ID cannot be empty".to_owned());
    }
    let id = resolve_container(session, client, given)
        .await
        .map_err(|e| e.to_string())?;
    let request = StartContainerRequest { container_id: id };
    session
        .call(Deadline::Default, client.runtime.start_container(request))
        .await
        .map_err(|s| rpc_error(&s))?;
    session
        .console
        .print(&format!("{given}\n"))
        .map_err(|e| e.to_string())
}

pub(super) async fn run(args: &RunArgs, session: &mut Session<'_, '_>) -> Result<(), CrictlError> {
    both_pull_flags(&args.pull)?;
    let with_pull =
        (!session.settings.disable_pull_on_run && !args.pull.no_pull) || args.pull.with_pull;
    apply_cancel_timeout(session, args.pull.cancel_timeout.as_deref())?;
    let failed = |e: String| CrictlError::Failed(format!("running container: {e}"));
    let mut client = session.runtime_client().await?;
    let pod_config = load_pod(session, &args.pod_config).map_err(|e| failed(e.to_string()))?;
    let pod_id = run_pod_sandbox(
        session,
        &mut client,
        pod_config.clone(),
        args.runtime.as_deref().unwrap_or_default(),
    )
    .await
    .map_err(|s| failed(format!("run pod sandbox: {}", rpc_error(&s))))?;
    let id = Box::pin(create_container(
        session,
        &mut client,
        &pod_id,
        &args.container_config,
        pod_config,
        &args.pull,
        with_pull,
    ))
    .await
    .map_err(|e| failed(format!("creating container failed: {e}")))?;
    start_container(session, &mut client, &id)
        .await
        .map_err(|e| failed(format!("starting the container {id:?}: {e}")))
}

pub(super) async fn stop(
    args: &StopArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    let mut client = session.runtime_client().await?;
    if args.all && !args.ids.is_empty() {
        return Err(CrictlError::Exit {
            message: "cannot specify CONTAINER-ID(s) when using --all".to_owned(),
            code: 1,
        });
    }
    let ids = if args.all {
        let query = ContainerQuery {
            state: Some("running"),
            ..ContainerQuery::default()
        };
        let containers = list_containers(session, &mut client, &query)
            .await
            .map_err(|e| CrictlError::Failed(format!("listing containers: {e}")))?;
        if containers.is_empty() {
            session.console.print("No running containers found.\n")?;
            return Ok(());
        }
        containers.into_iter().map(|c| c.id).collect()
    } else if args.ids.is_empty() {
        return Err(CrictlError::Exit {
            message: "you must specify at least one CONTAINER-ID or use --all".to_owned(),
            code: 1,
        });
    } else {
        args.ids.clone()
    };
    for given in &ids {
        stop_container(session, &mut client, given, args.timeout)
            .await
            .map_err(|e| CrictlError::Failed(format!("stopping the container {given:?}: {e}")))?;
    }
    Ok(())
}

/// StopContainer with a grace period, printing the ID.
async fn stop_container(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    given: &str,
    timeout: i64,
) -> Result<(), String> {
    if given.is_empty() {
        return Err("ID cannot be empty".to_owned());
    }
    let id = resolve_container(session, client, given)
        .await
        .map_err(|e| e.to_string())?;
    session.debug(format!("Stopping container: {id} (timeout = {timeout})"));
    let grace = Duration::from_secs(timeout.max(0).unsigned_abs());
    let request = StopContainerRequest {
        container_id: id,
        timeout,
    };
    session
        .call(
            Deadline::Plus(grace),
            client.runtime.stop_container(request),
        )
        .await
        .map_err(|s| rpc_error(&s))?;
    session
        .console
        .print(&format!("{given}\n"))
        .map_err(|e| e.to_string())
}

pub(super) async fn rm(args: &RmArgs, session: &mut Session<'_, '_>) -> Result<(), CrictlError> {
    let mut client = session.runtime_client().await?;
    let mut ids = args.ids.clone();
    if args.all {
        let request = ListContainersRequest { filter: None };
        let containers = session
            .call(Deadline::Default, client.runtime.list_containers(request))
            .await
            .map_err(|s| CrictlError::Failed(rpc_error(&s)))?;
        ids = containers.containers.into_iter().map(|c| c.id).collect();
    }
    if ids.is_empty() {
        if args.all {
            session.console.log(Level::Info, "No containers to remove");
            return Ok(());
        }
        session.console.print(&subcommand_help("rm"))?;
        return Ok(());
    }
    let mut errors = Vec::new();
    for given in &ids {
        if let Err(e) = remove_container(session, &mut client, given, args).await {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CrictlError::Failed(errors.join("\n")))
    }
}

async fn remove_container(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    given: &str,
    args: &RmArgs,
) -> Result<(), String> {
    let status = container_status(session, client, given, false)
        .await
        .map_err(|s| format!("getting container status {given:?}: {}", rpc_error(&s)))?
        .status
        .unwrap_or_default();
    if status.state == ContainerState::ContainerRunning as i32 {
        if !args.force {
            return Err(format!(
                "container {given:?} is running, please stop it first"
            ));
        }
        stop_container(session, client, given, 0)
            .await
            .map_err(|e| format!("stopping the container {given:?}: {e}"))?;
    }
    let id = if status.id.is_empty() {
        given.to_owned()
    } else {
        status.id.clone()
    };
    session.debug(format!("Removing container: {id}"));
    let request = RemoveContainerRequest { container_id: id };
    session
        .call(Deadline::Default, client.runtime.remove_container(request))
        .await
        .map_err(|s| format!("removing container {given:?}: {}", rpc_error(&s)))?;
    session
        .console
        .print(&format!("{given}\n"))
        .map_err(|e| e.to_string())?;
    if !args.keep_logs && !status.log_path.is_empty() {
        for file in log_files(Path::new(&status.log_path)) {
            if let Err(e) = std::fs::remove_file(&file) {
                let message = format!(
                    "removing log file {} for container {given:?} failed: {}",
                    file.display(),
                    super::go_errno_text(&e)
                );
                session.console.log(Level::Error, &message);
            }
        }
    }
    Ok(())
}

/// A log file and its rotations (`0.log.20241122-101010`), as crictl
/// globs `<path>.*`; the log itself last.
fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        let prefix = format!("{}.", name.to_string_lossy());
        if let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }) {
            let mut rotated: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| dir.join(e.file_name()))
                .collect();
            rotated.sort();
            files.extend(rotated);
        }
    }
    files.push(path.to_owned());
    files
}

pub(super) async fn update(
    args: &UpdateArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    if args.ids.is_empty() {
        return Err(CrictlError::Failed("ID cannot be empty".to_owned()));
    }
    let mut client = session.runtime_client().await?;
    for given in &args.ids {
        let id = resolve_container(session, &mut client, given).await?;
        let request = UpdateContainerResourcesRequest {
            container_id: id,
            linux: Some(LinuxContainerResources {
                cpu_period: args.cpu_period,
                cpu_quota: args.cpu_quota,
                cpu_shares: args.cpu_share,
                memory_limit_in_bytes: args.memory,
                oom_score_adj: args.oom_score_adj,
                cpuset_cpus: args.cpuset_cpus.clone(),
                cpuset_mems: args.cpuset_mems.clone(),
                ..LinuxContainerResources::default()
            }),
            windows: None,
            annotations: Default::default(),
        };
        session.debug(format!("UpdateContainerResourcesRequest: {request:?}"));
        session
            .call(
                Deadline::Default,
                client.runtime.update_container_resources(request),
            )
            .await
            .map_err(|s| rpc_failed(format!("updating container resources for {given:?}"), &s))?;
        session.console.print(&format!("{given}\n"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_files_include_rotations_before_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        for name in [
            "0.log",
            "0.log.20241122-101010",
            "0.log.20241122-101010.gz",
            "1.log",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let files = log_files(&log);
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["0.log.20241122-101010", "0.log.20241122-101010.gz", "0.log"]
        );
    }
}
