//! `skiff crictl`: a crictl-compatible client for the CRI socket: the
//! image verbs (`pull`, `images`, `inspecti`, `rmi`, `imagefsinfo`) and the
//! runtime verbs (`version`, `info`, `runp`, `pods`, `inspectp`, `stopp`,
//! `rmp`, `create`, `start`, `run`, `ps`, `inspect`, `logs`, `exec`,
//! `attach`, `port-forward`, `stats`, `statsp`, `stop`, `rm`, `update`). It
//! prints what crictl 1.3x prints — tables, protobuf JSON, YAML and
//! logrus-style error lines — because users script against it. `pull` also
//! draws a progress bar, through Skiff's pull-progress side channel.
//!
//! The `skiff` binary embeds [`CrictlArgs`] as a subcommand and calls [`run`].
//!
//! One file per verb or family of verbs: `pull`, `images`, `inspecti`,
//! `rmi`, `imagefsinfo`, `version`, `info`, `sandbox` (pod verbs),
//! `container` (container lifecycle), `ps` (`ps`, `inspect`), `logs`,
//! `exec` (`exec`, `attach`, `port-forward`), `stats` (`stats`, `statsp`).
//! `config` merges flags, environment and `/etc/crictl.yaml`;
//! `config_file` and `config_decode` read pod and container configs;
//! `lookup` holds RPC deadlines, ID prefixes and list filters; `timefmt`
//! Go's time formats; `console` writes results and logrus-style lines;
//! [`json`], [`protojson`] and [`table`] reproduce crictl's JSON and table
//! output.

use std::future::Future;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tonic::Status;

use crate::client::{self, CriClient};
use crate::error::ConnectError;

mod config;
mod config_decode;
mod config_file;
mod console;
mod container;
mod exec;
mod imagefsinfo;
mod images;
mod info;
mod inspecti;
pub mod json;
mod logs;
mod lookup;
pub mod protojson;
mod ps;
mod pull;
mod rmi;
mod sandbox;
mod stats;
pub mod table;
pub(crate) mod timefmt;
mod version;

pub use config::{ConfigFile, DEFAULT_CONFIG_PATH, DEFAULT_TIMEOUT, GlobalFlags, Settings};
pub use console::{Console, Level};

/// `skiff crictl`: client for CRI.
#[derive(Debug, Clone, Parser)]
#[command(name = "crictl", about = "client for CRI")]
pub struct CrictlArgs {
    /// Location of the client config file
    #[arg(long, short = 'c', env = "CRI_CONFIG_FILE", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Endpoint of CRI container runtime service (default: unix:///run/skiff/cri.sock)
    #[arg(
        long,
        short = 'r',
        env = "CONTAINER_RUNTIME_ENDPOINT",
        value_name = "ENDPOINT"
    )]
    pub runtime_endpoint: Option<String>,
    /// Endpoint of CRI image manager service (default: uses 'runtime-endpoint' setting)
    #[arg(
        long,
        short = 'i',
        env = "IMAGE_SERVICE_ENDPOINT",
        value_name = "ENDPOINT"
    )]
    pub image_endpoint: Option<String>,
    /// Timeout of connecting to the server (e.g. 2s, 20s); 0 or less is the default, 2s
    #[arg(long, short = 't', value_name = "DURATION", allow_hyphen_values = true)]
    pub timeout: Option<String>,
    /// Enable debug mode
    #[arg(long, short = 'D')]
    pub debug: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Option<CrictlCommand>,
}

/// crictl's commands.
#[derive(Debug, Clone, Subcommand)]
pub enum CrictlCommand {
    /// Pull an image from a registry
    Pull(pull::PullArgs),
    /// List images
    #[command(visible_aliases = ["image", "img"])]
    Images(images::ImagesArgs),
    /// Return the status of one or more images
    Inspecti(inspecti::InspectiArgs),
    /// Remove one or more images
    Rmi(rmi::RmiArgs),
    /// Return image filesystem info
    Imagefsinfo(imagefsinfo::ImageFsInfoArgs),
    /// Display runtime version information
    Version,
    /// Run a new pod
    Runp(sandbox::RunpArgs),
    /// Stop one or more running pods
    Stopp(sandbox::StoppArgs),
    /// Remove one or more pods
    Rmp(sandbox::RmpArgs),
    /// Display the status of one or more pods
    Inspectp(sandbox::InspectpArgs),
    /// List pods
    Pods(sandbox::PodsArgs),
    /// Create a new container
    Create(container::CreateArgs),
    /// Start one or more created containers
    Start(container::StartArgs),
    /// Run a new container inside a sandbox
    Run(container::RunArgs),
    /// Stop one or more running containers
    Stop(container::StopArgs),
    /// Remove one or more containers
    Rm(container::RmArgs),
    /// Update one or more running containers
    Update(container::UpdateArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// Display the status of one or more containers
    Inspect(ps::InspectArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// List container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// List pod statistics
    Statsp(stats::StatspArgs),
    /// Display information of the container runtime
    Info(info::InfoArgs),
    /// Run a command in a running container
    Exec(exec::ExecArgs),
    /// Attach to a running container
    Attach(exec::AttachArgs),
    /// Forward local port to a pod
    PortForward(exec::PortForwardArgs),
    /// crictl's other commands: not built yet.
    #[command(external_subcommand)]
    Other(Vec<String>),
}

/// crictl verbs skiff crictl does not have yet.
const RUNTIME_VERBS: &[&str] = &[
    "checkpoint",
    "events",
    "metricdescs",
    "metricsp",
    "runtime-config",
    "update-runtime-config",
];

/// Why a crictl command failed.
#[derive(Debug, thiserror::Error)]
pub enum CrictlError {
    /// The command failed; printed as a `FATA` line, exit code 1.
    #[error("{0}")]
    Failed(String),
    /// Printed as is on stderr, with its own exit code (as urfave/cli does
    /// for unknown commands).
    #[error("{message}")]
    Exit {
        /// The text.
        message: String,
        /// The exit code.
        code: i32,
    },
    /// Writing to stdout failed.
    #[error("write output: {0}")]
    Output(#[from] io::Error),
}

impl CrictlError {
    fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }
}

/// Runs `skiff crictl` on the process's stdout and stderr; returns the exit code.
pub async fn run(args: CrictlArgs) -> i32 {
    let terminal = io::stderr().is_terminal();
    let mut stdout = io::stdout();
    let mut stderr = io::stderr();
    let code = run_with(args, &mut stdout, &mut stderr, terminal).await;
    let _ = stdout.flush();
    code
}

/// Runs `skiff crictl` writing to `out` and `err`; `terminal` says whether
/// `err` is a terminal (colored log lines, progress bar).
pub async fn run_with(
    args: CrictlArgs,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    terminal: bool,
) -> i32 {
    let mut console = Console::new(out, err, terminal);
    console.debug = args.debug;
    match dispatch(args, &mut console).await {
        Ok(()) => 0,
        // `skiff crictl images | head -1`: crictl dies of SIGPIPE quietly.
        Err(CrictlError::Output(err)) if err.kind() == io::ErrorKind::BrokenPipe => 141,
        Err(CrictlError::Exit { message, code }) => {
            console.print_err(&format!("{message}\n"));
            code
        }
        Err(err) => {
            console.log(Level::Fatal, &err.to_string());
            1
        }
    }
}

async fn dispatch(args: CrictlArgs, console: &mut Console<'_>) -> Result<(), CrictlError> {
    let flags = GlobalFlags {
        config: args.config,
        runtime_endpoint: args.runtime_endpoint,
        image_endpoint: args.image_endpoint,
        timeout: args.timeout,
        debug: args.debug,
    };
    let file = config::load(&flags).map_err(CrictlError::Failed)?;
    let settings = config::resolve(&flags, file.as_ref()).map_err(CrictlError::Failed)?;
    console.debug = settings.debug;
    console.log(
        Level::Debug,
        &format!(
            "Using config {} with {settings:?}",
            config::config_path(&flags).display()
        ),
    );
    let mut session = Session { console, settings };
    let Some(command) = args.command else {
        let help = <CrictlArgs as clap::CommandFactory>::command().render_help();
        session.console.print(&format!("{help}\n"))?;
        return Ok(());
    };
    match command {
        CrictlCommand::Pull(args) => pull::run(&args, &mut session).await,
        CrictlCommand::Images(args) => images::run(&args, &mut session).await,
        CrictlCommand::Inspecti(args) => inspecti::run(&args, &mut session).await,
        CrictlCommand::Rmi(args) => rmi::run(&args, &mut session).await,
        CrictlCommand::Imagefsinfo(args) => imagefsinfo::run(&args, &mut session).await,
        CrictlCommand::Version => version::run(&mut session).await,
        CrictlCommand::Runp(args) => Box::pin(sandbox::runp(&args, &mut session)).await,
        CrictlCommand::Stopp(args) => Box::pin(sandbox::stopp(&args, &mut session)).await,
        CrictlCommand::Rmp(args) => Box::pin(sandbox::rmp(&args, &mut session)).await,
        CrictlCommand::Inspectp(args) => Box::pin(sandbox::inspectp(&args, &mut session)).await,
        CrictlCommand::Pods(args) => Box::pin(sandbox::pods(&args, &mut session)).await,
        CrictlCommand::Create(args) => Box::pin(container::create(&args, &mut session)).await,
        CrictlCommand::Start(args) => Box::pin(container::start(&args, &mut session)).await,
        CrictlCommand::Run(args) => Box::pin(container::run(&args, &mut session)).await,
        CrictlCommand::Stop(args) => Box::pin(container::stop(&args, &mut session)).await,
        CrictlCommand::Rm(args) => Box::pin(container::rm(&args, &mut session)).await,
        CrictlCommand::Update(args) => Box::pin(container::update(&args, &mut session)).await,
        CrictlCommand::Ps(args) => Box::pin(ps::ps(&args, &mut session)).await,
        CrictlCommand::Inspect(args) => Box::pin(ps::inspect(&args, &mut session)).await,
        CrictlCommand::Logs(args) => Box::pin(logs::run(&args, &mut session)).await,
        CrictlCommand::Stats(args) => Box::pin(stats::stats(&args, &mut session)).await,
        CrictlCommand::Statsp(args) => Box::pin(stats::statsp(&args, &mut session)).await,
        CrictlCommand::Info(args) => Box::pin(info::run(&args, &mut session)).await,
        CrictlCommand::Exec(args) => Box::pin(exec::exec(&args, &mut session)).await,
        CrictlCommand::Attach(args) => Box::pin(exec::attach(&args, &mut session)).await,
        CrictlCommand::PortForward(args) => Box::pin(exec::port_forward(&args, &mut session)).await,
        CrictlCommand::Other(words) => Err(unsupported(words.first().map_or("", String::as_str))),
    }
}

fn unsupported(verb: &str) -> CrictlError {
    if RUNTIME_VERBS.contains(&verb) {
        CrictlError::failed(format!("crictl {verb:?} is not built yet in skiff crictl"))
    } else if verb == "config" || verb == "completion" {
        CrictlError::failed(format!(
            "crictl {verb:?} is not supported by skiff crictl; edit {DEFAULT_CONFIG_PATH} instead"
        ))
    } else {
        CrictlError::Exit {
            message: format!("No help topic for '{verb}'"),
            code: 3,
        }
    }
}

/// One command's settings and console.
pub(crate) struct Session<'c, 'a> {
    console: &'c mut Console<'a>,
    settings: Settings,
}

impl Session<'_, '_> {
    fn debug(&mut self, message: impl AsRef<str>) {
        self.console.log(Level::Debug, message.as_ref());
    }

    /// Connects to the image endpoint.
    async fn image_client(&mut self) -> Result<CriClient, CrictlError> {
        let endpoint = self.settings.image_endpoint.clone();
        self.debug(format!("Get image connection to {endpoint}"));
        client::connect(&endpoint, self.settings.timeout)
            .await
            .map_err(|e| connect_failure("image", &endpoint, e))
    }

    /// Connects to the runtime endpoint.
    async fn runtime_client(&mut self) -> Result<CriClient, CrictlError> {
        let endpoint = self.settings.runtime_endpoint.clone();
        self.debug(format!("Get runtime connection to {endpoint}"));
        client::connect(&endpoint, self.settings.timeout)
            .await
            .map_err(|e| connect_failure("runtime", &endpoint, e))
    }

    /// Runs a unary call within the timeout, as crictl's CRI client does.
    async fn unary<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, Status> {
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded("context deadline exceeded")),
        }
    }
}

/// A connection failure in crictl's words.
fn connect_failure(api: &str, endpoint: &str, err: ConnectError) -> CrictlError {
    let validate =
        format!("validate service connection: validate CRI v1 {api} API for endpoint {endpoint:?}");
    match err {
        ConnectError::Unreachable { path, source, .. } => {
            let dial = format!(
                "transport: Error while dialing: dial unix {}: connect: {}",
                path.display(),
                go_errno_text(&source)
            );
            CrictlError::failed(format!(
                "{validate}: rpc error: code = Unavailable desc = connection error: desc = {}",
                console::go_quote(&dial)
            ))
        }
        ConnectError::Timeout { .. } => CrictlError::failed(format!(
            "{validate}: rpc error: code = DeadlineExceeded desc = context deadline exceeded"
        )),
        other => CrictlError::failed(other.to_string()),
    }
}

/// An OS error as Go prints it: `no such file or directory`.
fn go_errno_text(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(end) => &text[..end],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `-o` values that print as the table.
fn is_table(output: Option<&str>) -> bool {
    matches!(output, None | Some("" | "table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_go_prints_them() {
        let err = io::Error::from_raw_os_error(2);
        assert_eq!(go_errno_text(&err), "no such file or directory");
        let err = io::Error::from_raw_os_error(111);
        assert_eq!(go_errno_text(&err), "connection refused");
    }

    #[test]
    fn arguments_parse_as_crictl_takes_them() {
        let args = CrictlArgs::try_parse_from([
            "crictl",
            "-r",
            "unix:///tmp/cri.sock",
            "-t",
            "5s",
            "-D",
            "images",
            "--digests",
            "-q",
            "busybox",
        ])
        .unwrap();
        assert_eq!(
            args.runtime_endpoint.as_deref(),
            Some("unix:///tmp/cri.sock")
        );
        assert_eq!(args.timeout.as_deref(), Some("5s"));
        assert!(args.debug);
        let Some(CrictlCommand::Images(images)) = args.command else {
            panic!("not images");
        };
        assert!(images.digests && images.quiet);
        assert_eq!(images.image.as_deref(), Some("busybox"));

        let args = CrictlArgs::try_parse_from(["crictl", "img"]).unwrap();
        assert!(matches!(args.command, Some(CrictlCommand::Images(_))));
        let args = CrictlArgs::try_parse_from(["crictl", "runp", "pod.json"]).unwrap();
        assert!(matches!(args.command, Some(CrictlCommand::Runp(_))));
        let args = CrictlArgs::try_parse_from(["crictl", "events", "-o", "json"]).unwrap();
        let Some(CrictlCommand::Other(words)) = args.command else {
            panic!("not other");
        };
        assert_eq!(words, ["events", "-o", "json"]);
    }

    #[tokio::test]
    async fn runtime_verbs_fail_clearly_and_unknown_ones_like_urfave() {
        let run = |argv: &'static [&'static str]| async move {
            let args = CrictlArgs::try_parse_from(argv).unwrap();
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = run_with(args, &mut out, &mut err, false).await;
            (code, String::from_utf8(err).unwrap())
        };
        let (code, err) = run(&["crictl", "-c", "/nonexistent-skiff-test/crictl.yaml", "ps"]).await;
        assert_eq!(code, 1);
        assert!(err.contains("load config file"), "{err}");

        let (code, err) = run(&["crictl", "events"]).await;
        assert_eq!(code, 1);
        assert!(err.contains("level=fatal"), "{err}");
        assert!(err.contains("not built yet"), "{err}");

        let (code, err) = run(&["crictl", "frobnicate"]).await;
        assert_eq!(code, 3);
        assert_eq!(err, "No help topic for 'frobnicate'\n");
    }
}
