//! The shim's command line (`skiff shim ...`), built by the runtime and
//! parsed by the shim.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Arguments of `skiff shim`: which pod, and which namespaces to create for it.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ShimArgs {
    /// The pod directory (`<run-dir>/pods/<sandbox-id>`); must exist.
    #[arg(long)]
    pub pod_dir: PathBuf,
    /// The pod sandbox id.
    #[arg(long)]
    pub sandbox_id: String,
    /// Namespaces to create and pin under `<pod-dir>/ns/` (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub namespaces: Vec<PodNamespace>,
    /// Hostname of the pod's UTS namespace (with `uts`).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Cgroup (cgroupfs path, e.g. `/kubepods/besteffort/pod<uid>`) of the
    /// pod's PID-1 process (with `pid`).
    #[arg(long)]
    pub cgroup_parent: Option<PathBuf>,
    /// Log at debug level to `shim.log`.
    #[arg(long)]
    pub debug: bool,
}

/// A namespace a shim creates for its pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum PodNamespace {
    /// Network (unless the pod uses the host network).
    Net,
    /// IPC (unless the pod uses the host IPC).
    Ipc,
    /// UTS, with the pod hostname (unless the pod uses the host network).
    Uts,
    /// PID, shared by the pod's containers, with a PID-1 reaper kept by the shim.
    Pid,
}

impl PodNamespace {
    /// The name under `/proc/<pid>/ns/` and `<pod-dir>/ns/`.
    pub fn name(self) -> &'static str {
        match self {
            PodNamespace::Net => "net",
            PodNamespace::Ipc => "ipc",
            PodNamespace::Uts => "uts",
            PodNamespace::Pid => "pid",
        }
    }

    /// Every kind, in pinning order.
    pub const ALL: [PodNamespace; 4] = [
        PodNamespace::Net,
        PodNamespace::Ipc,
        PodNamespace::Uts,
        PodNamespace::Pid,
    ];
}

impl ShimArgs {
    /// Arguments for a new pod that creates `namespaces`.
    pub fn new(pod_dir: impl Into<PathBuf>, sandbox_id: impl Into<String>) -> Self {
        ShimArgs {
            pod_dir: pod_dir.into(),
            sandbox_id: sandbox_id.into(),
            namespaces: Vec::new(),
            hostname: None,
            cgroup_parent: None,
            debug: false,
        }
    }

    /// The command-line form, after `shim` (what [`ShimArgs`] parses back).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--pod-dir".into(),
            self.pod_dir.clone().into(),
            "--sandbox-id".into(),
            self.sandbox_id.clone().into(),
        ];
        if !self.namespaces.is_empty() {
            let names: Vec<&str> = self.namespaces.iter().map(|ns| ns.name()).collect();
            args.push("--namespaces".into());
            args.push(names.join(",").into());
        }
        if let Some(hostname) = &self.hostname {
            args.push("--hostname".into());
            args.push(hostname.clone().into());
        }
        if let Some(parent) = &self.cgroup_parent {
            args.push("--cgroup-parent".into());
            args.push(parent.clone().into());
        }
        if self.debug {
            args.push("--debug".into());
        }
        args
    }

    /// Whether the pod gets its own namespace of this kind.
    pub fn creates(&self, namespace: PodNamespace) -> bool {
        self.namespaces.contains(&namespace)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        shim: ShimArgs,
    }

    #[test]
    fn to_args_parses_back() {
        let mut args = ShimArgs::new("/run/skiff/pods/abc", "abc");
        args.namespaces = vec![PodNamespace::Net, PodNamespace::Uts, PodNamespace::Pid];
        args.hostname = Some("web-0".into());
        args.cgroup_parent = Some("/kubepods/podx".into());
        args.debug = true;
        let mut argv: Vec<OsString> = vec!["shim".into()];
        argv.extend(args.to_args());
        let parsed = Cli::try_parse_from(argv).unwrap();
        assert_eq!(parsed.shim, args);
    }

    #[test]
    fn minimal_args_parse() {
        let parsed = Cli::try_parse_from(["shim", "--pod-dir", "/p", "--sandbox-id", "s"]).unwrap();
        assert_eq!(parsed.shim, ShimArgs::new("/p", "s"));
        assert!(!parsed.shim.creates(PodNamespace::Net));
    }
}
