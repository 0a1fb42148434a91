//! The `skiff` binary: parses the command line and runs one role.

// The CLI is where errors meet the user.
#![allow(clippy::print_stderr)]

mod config_file;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

/// Lightweight Kubernetes in a single binary.
#[derive(Debug, Parser)]
#[command(name = "skiff", version, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane (apiserver, scheduler, controllers) and an agent.
    Server(ServerArgs),
    /// Run a node agent that joins a server.
    Agent(NotBuilt),
    /// Run the node runtime alone: the CRI v1 service on a unix socket.
    Runtime(RuntimeArgs),
    /// Run the system kubectl with the admin kubeconfig.
    Kubectl(Passthrough),
    /// A crictl-compatible client for the CRI socket.
    Crictl(skiff_cri::crictl::CrictlArgs),
    /// Check this machine's kernel and tools for what Skiff needs.
    CheckConfig(NotBuilt),
    /// Manage join tokens.
    Token(NotBuilt),
    /// Stop this node's Skiff processes and pods, unmount everything, and remove the pod network.
    Killall(KillallArgs),
    /// Internal: a pod's shim process.
    #[command(hide = true)]
    Shim(skiff_shims::ShimArgs),
}

/// Arguments of a command that is not built yet, accepted so the error is
/// about the command, not its flags.
#[derive(Debug, Args)]
struct NotBuilt {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<OsString>,
}

#[derive(Debug, Args)]
struct Passthrough {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// Skiff's data directory.
    #[arg(
        long,
        short = 'd',
        env = "SKIFF_DATA_DIR",
        default_value = "/var/lib/skiff"
    )]
    data_dir: PathBuf,
    /// Address the apiserver listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: std::net::IpAddr,
    /// The apiserver's port.
    #[arg(long, default_value_t = 6443)]
    https_listen_port: u16,
    /// Another hostname or IP for the serving certificate (repeatable).
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// Where the admin kubeconfig is written.
    #[arg(
        long,
        short = 'o',
        env = "SKIFF_KUBECONFIG_OUTPUT",
        default_value = "/etc/skiff/skiff.yaml"
    )]
    write_kubeconfig: PathBuf,
    /// The admin kubeconfig's file mode (octal, e.g. 644).
    #[arg(long, env = "SKIFF_KUBECONFIG_MODE", default_value = "600", value_parser = parse_mode)]
    write_kubeconfig_mode: u32,
    /// The service CIDR cluster IPs come from.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: ipnet::Ipv4Net,
    /// The pod CIDR nodes' ranges come from.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    /// Run the control plane without this machine's node agent.
    #[arg(long)]
    disable_agent: bool,
    #[command(flatten)]
    node: NodeArgs,
    /// Do not run the scheduler.
    #[arg(long)]
    disable_scheduler: bool,
    /// Do not run the controller-manager.
    #[arg(long)]
    disable_controller_manager: bool,
    /// Config file whose keys are these flags' names.
    #[arg(long, short = 'c', env = "SKIFF_CONFIG_FILE", default_value = config_file::DEFAULT_PATH)]
    config: PathBuf,
    /// Log at debug level.
    #[arg(long)]
    debug: bool,
}

/// How this machine's node agent runs (`skiff server` without
/// `--disable-agent`).
#[derive(Debug, Args)]
struct NodeArgs {
    /// The node's name (default: the hostname).
    #[arg(long, env = "SKIFF_NODE_NAME")]
    node_name: Option<String>,
    /// The node's InternalIP (default: the address of the default route's
    /// interface).
    #[arg(long)]
    node_ip: Option<std::net::IpAddr>,
    /// A label `key=value` the node registers with (repeatable).
    #[arg(long = "node-label")]
    node_label: Vec<String>,
    /// A taint `key=value:Effect` the node registers with (repeatable).
    #[arg(long = "node-taint")]
    node_taint: Vec<String>,
    /// The cluster DNS address written to pods' resolv.conf.
    #[arg(long, default_value = "10.43.0.10")]
    cluster_dns: std::net::IpAddr,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The CRI socket the node runtime serves (for crictl).
    #[arg(long, env = "SKIFF_CRI_SOCKET", default_value = "/run/skiff/cri.sock")]
    cri_socket: PathBuf,
    /// Volatile state: pod directories, bundles and shim sockets.
    #[arg(long, env = "SKIFF_RUN_DIR", default_value = "/run/skiff")]
    run_dir: PathBuf,
    /// The pod bridge.
    #[arg(long, default_value = "skiff0")]
    bridge: String,
    /// Registry mirrors and credentials.
    #[arg(long, default_value = "/etc/skiff/registries.yaml")]
    private_registry: PathBuf,
    /// The kubelet API's port (0: the kernel picks one, and the node
    /// reports it).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("{text:?} is not an octal file mode such as 600 or 644"))
}

#[derive(Debug, Args)]
struct RuntimeArgs {
    /// Skiff's data directory.
    #[arg(
        long,
        short = 'd',
        env = "SKIFF_DATA_DIR",
        default_value = "/var/lib/skiff"
    )]
    data_dir: PathBuf,
    /// The CRI socket to serve.
    #[arg(long, env = "SKIFF_CRI_SOCKET", default_value = "/run/skiff/cri.sock")]
    cri_socket: PathBuf,
    /// Volatile state: pod directories, bundles and shim sockets.
    #[arg(long, env = "SKIFF_RUN_DIR", default_value = "/run/skiff")]
    run_dir: PathBuf,
    /// The node's pod CIDR (UpdateRuntimeConfig may change it).
    #[arg(long, default_value = "10.42.0.0/24")]
    pod_cidr: ipnet::IpNet,
    /// The bridge pods attach to.
    #[arg(long, default_value = "skiff0")]
    bridge: String,
    /// Where the exec/attach/port-forward streaming server listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    streaming_address: std::net::SocketAddr,
    /// Private registry configuration (k3s registries.yaml format).
    #[arg(long, default_value = "/etc/skiff/registries.yaml")]
    private_registry: PathBuf,
    /// Image filesystem usage (percent) above which unused images are removed.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    image_gc_high_threshold: u8,
    /// Image filesystem usage (percent) that garbage collection brings it down to.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    image_gc_low_threshold: u8,
    /// Config file whose keys are these flags' names.
    #[arg(long, short = 'c', env = "SKIFF_CONFIG_FILE", default_value = config_file::DEFAULT_PATH)]
    config: PathBuf,
    /// Log at debug level.
    #[arg(long)]
    debug: bool,
}

#[derive(Debug, Args)]
struct KillallArgs {
    /// Skiff's data directory (of the node to stop).
    #[arg(
        long,
        short = 'd',
        env = "SKIFF_DATA_DIR",
        default_value = "/var/lib/skiff"
    )]
    data_dir: PathBuf,
    /// Volatile state: pod directories, bundles and shim sockets.
    #[arg(long, env = "SKIFF_RUN_DIR", default_value = "/run/skiff")]
    run_dir: PathBuf,
    /// The bridge pods attach to.
    #[arg(long, default_value = "skiff0")]
    bridge: String,
    /// Log at debug level.
    #[arg(long)]
    debug: bool,
}

/// Where each not-yet-built command will come from.
fn not_built(command: &str) -> &'static str {
    match command {
        "agent" => "multi-node clusters",
        "token" => "node joining",
        _ => "a later issue",
    }
}

fn main() -> ExitCode {
    let args = match config_file::expand(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("skiff: {err:#}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("skiff: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (name, unbuilt) = match cli.command {
        Command::Runtime(args) => return runtime(args),
        Command::Crictl(args) => {
            init_tracing(args.debug, "warn");
            let code = tokio_runtime()?.block_on(skiff_cri::crictl::run(args));
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        Command::Kubectl(args) => return kubectl(args.args),
        Command::Server(args) => return server(args),
        Command::Agent(_) => ("agent", true),
        Command::CheckConfig(_) => ("check-config", true),
        Command::Token(_) => ("token", true),
        Command::Killall(args) => return killall(args),
        Command::Shim(args) => return Ok(skiff_shims::run(args)),
    };
    debug_assert!(unbuilt);
    eprintln!(
        "skiff {name}: not built yet: it arrives with {}.",
        not_built(name)
    );
    Ok(ExitCode::from(2))
}

fn runtime(args: RuntimeArgs) -> anyhow::Result<ExitCode> {
    init_tracing(args.debug, "info");
    anyhow::ensure!(
        args.image_gc_low_threshold < args.image_gc_high_threshold,
        "--image-gc-low-threshold ({}) must be below --image-gc-high-threshold ({})",
        args.image_gc_low_threshold,
        args.image_gc_high_threshold
    );
    let config = skiff_cri::node::NodeConfig {
        data_dir: args.data_dir,
        cri_socket: args.cri_socket,
        run_dir: args.run_dir,
        bridge: args.bridge,
        pod_cidr: Some(args.pod_cidr),
        streaming_address: args.streaming_address,
        shim_binary: std::env::current_exe().context("finding the skiff binary (for shims)")?,
        registries: args.private_registry,
        gc: skiff_images::gc::GcPolicy {
            high_threshold_percent: args.image_gc_high_threshold,
            low_threshold_percent: args.image_gc_low_threshold,
            ..Default::default()
        },
    };
    tokio_runtime()?.block_on(skiff_cri::node::run(config, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}

fn killall(args: KillallArgs) -> anyhow::Result<ExitCode> {
    init_tracing(args.debug, "info");
    let config = skiff_cri::node::NodeConfig {
        cri_socket: args.run_dir.join("cri.sock"),
        registries: PathBuf::from("/etc/skiff/registries.yaml"),
        gc: skiff_images::gc::GcPolicy::default(),
        run_dir: args.run_dir,
        bridge: args.bridge,
        pod_cidr: None,
        streaming_address: ([127, 0, 0, 1], 0).into(),
        shim_binary: std::env::current_exe().context("finding the skiff binary (for shims)")?,
        data_dir: args.data_dir,
    };
    let report = tokio_runtime()?.block_on(skiff_agent::killall::killall(&config))?;
    let _ = writeln!(
        std::io::stdout().lock(),
        "stopped {} skiff process(es), removed {} pod(s), killed {} leftover shim(s); pod network {} removed",
        report.stopped.len(),
        report.pods_removed,
        report.shims_killed,
        config.bridge
    );
    for (pod, err) in &report.pod_failures {
        eprintln!("skiff killall: pod {pod} not removed: {err}");
    }
    Ok(if report.pod_failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn server(args: ServerArgs) -> anyhow::Result<ExitCode> {
    init_tracing(args.debug, "info");
    let agent = if args.disable_agent {
        None
    } else {
        let node = args.node;
        Some(skiff_server::run::AgentOptions {
            node_name: match node.node_name {
                Some(name) => name,
                None => hostname()?,
            },
            node_ip: node.node_ip,
            node_labels: node.node_label,
            node_taints: node.node_taint,
            cluster_dns: node.cluster_dns,
            cluster_domain: node.cluster_domain,
            cri_socket: node.cri_socket,
            run_dir: node.run_dir,
            bridge: node.bridge,
            private_registry: node.private_registry,
            kubelet_port: node.kubelet_port,
            shim_binary: std::env::current_exe().context("finding the skiff binary (for shims)")?,
        })
    };
    let config = skiff_server::run::ServerConfig {
        data_dir: args.data_dir,
        bind_address: args.bind_address,
        https_port: args.https_listen_port,
        tls_sans: args.tls_san,
        write_kubeconfig: args.write_kubeconfig,
        write_kubeconfig_mode: args.write_kubeconfig_mode,
        service_cidr: args.service_cidr,
        components: skiff_server::run::Components {
            scheduler: !args.disable_scheduler,
            controller_manager: !args.disable_controller_manager,
        },
        cluster_cidr: args.cluster_cidr,
        agent,
    };
    tokio_runtime()?.block_on(skiff_server::run::run(config, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}

/// This machine's hostname, lowercased as a node name must be.
fn hostname() -> anyhow::Result<String> {
    let name = nix::unistd::gethostname().context("reading the hostname")?;
    Ok(name.to_string_lossy().to_lowercase())
}

/// Runs the system kubectl with the admin kubeconfig unless KUBECONFIG is set.
fn kubectl(args: Vec<OsString>) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("kubectl");
    command.args(args);
    let kubeconfig = PathBuf::from("/etc/skiff/skiff.yaml");
    if std::env::var_os("KUBECONFIG").is_none() && kubeconfig.exists() {
        command.env("KUBECONFIG", kubeconfig);
    }
    let err = command.exec();
    Err(err).context("running kubectl (is it installed and on PATH?)")
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn init_tracing(debug: bool, default: &str) {
    let level = if debug { "debug" } else { default };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
