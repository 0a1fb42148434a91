//! The container's process: command line, environment, working directory,
//! terminal, OOM score and rlimits, merged from the image config and the
//! CRI request as kubelet expects and containerd does.

use k8s_cri::v1::ContainerConfig;
use oci_spec::image::Config as ImageConfig;
use oci_spec::runtime::{PosixRlimit, PosixRlimitBuilder, PosixRlimitType};

use super::{HostLimits, SpecError};

/// The `PATH` a container gets when neither the image nor the request sets one.
pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The argv: `command` replaces the image's Entrypoint and drops its Cmd;
/// `args` replace Cmd. Fails when nothing is left to run.
pub(crate) fn process_args(
    config: &ContainerConfig,
    image: Option<&ImageConfig>,
) -> Result<Vec<String>, SpecError> {
    let command = merged_command(config, image);
    if command.is_empty() {
        return Err(SpecError::invalid(
            "command",
            "no command specified: neither the request nor the image gives a command or args",
        ));
    }
    Ok(command)
}

/// The request's command and args merged with the image's Entrypoint and
/// Cmd, as [`process_args`] merges them; empty when nothing gives one.
pub(crate) fn merged_command(config: &ContainerConfig, image: Option<&ImageConfig>) -> Vec<String> {
    let mut command = config.command.clone();
    let mut args = config.args.clone();
    if command.is_empty() {
        if args.is_empty() {
            args = image.and_then(|i| i.cmd().clone()).unwrap_or_default();
        }
        let entrypoint = image
            .and_then(|i| i.entrypoint().clone())
            .unwrap_or_default();
        // Docker writes `[""]` to mean "no entrypoint".
        if !(entrypoint.len() == 1 && entrypoint[0].is_empty()) {
            command = entrypoint;
        }
    }
    command.extend(args);
    command
}

/// The environment: a default `PATH`, `TERM=xterm` with a TTY, `HOSTNAME`,
/// then the image's variables, then the request's; later ones replace
/// earlier ones of the same name in place, and an image entry without `=`
/// removes the variable.
pub(crate) fn process_env(
    config: &ContainerConfig,
    image: Option<&ImageConfig>,
    hostname: &str,
) -> Vec<String> {
    let mut env: Vec<String> = vec![DEFAULT_PATH.to_string()];
    if config.tty {
        env.push("TERM=xterm".to_string());
    }
    env.push(format!("HOSTNAME={hostname}"));
    let image_env = image.and_then(|i| i.env().clone()).unwrap_or_default();
    let request_env = config
        .envs
        .iter()
        .map(|kv| format!("{}={}", kv.key, kv.value));
    for entry in image_env.into_iter().chain(request_env) {
        let (key, set) = match entry.split_once('=') {
            Some((k, _)) => (k.to_string(), true),
            None => (entry.clone(), false),
        };
        let existing = env
            .iter()
            .position(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key);
        match (existing, set) {
            (Some(i), true) => env[i] = entry,
            (Some(i), false) => {
                env.remove(i);
            }
            (None, true) => env.push(entry),
            (None, false) => {}
        }
    }
    env
}

/// The working directory: the request's, else the image's, else `/`.
pub(crate) fn process_cwd(
    config: &ContainerConfig,
    image: Option<&ImageConfig>,
) -> Result<String, SpecError> {
    if !config.working_dir.is_empty() {
        if !config.working_dir.starts_with('/') {
            return Err(SpecError::invalid(
                "working_dir",
                format!("{:?} is not an absolute path", config.working_dir),
            ));
        }
        return Ok(config.working_dir.clone());
    }
    match image.and_then(|i| i.working_dir().clone()) {
        Some(dir) if dir.starts_with('/') => Ok(dir),
        // Docker resolves a relative WORKDIR against `/` at build time.
        Some(dir) if !dir.is_empty() => Ok(format!("/{dir}")),
        _ => Ok("/".to_string()),
    }
}

/// The OOM score adjustment, clamped to what the runtime may set: lowering
/// it below the runtime's own needs CAP_SYS_RESOURCE, which root lacks on
/// the hosts Skiff targets, so the container gets the runtime's value.
pub(crate) fn oom_score_adj(
    config: &ContainerConfig,
    limits: &HostLimits,
    container_id: &str,
) -> Result<Option<i32>, SpecError> {
    let Some(resources) = config.linux.as_ref().and_then(|l| l.resources.as_ref()) else {
        return Ok(None);
    };
    let wanted = resources.oom_score_adj;
    if !(-1000..=1000).contains(&wanted) {
        return Err(SpecError::invalid(
            "linux.resources.oom_score_adj",
            format!("{wanted} is outside -1000..=1000"),
        ));
    }
    let wanted = wanted as i32;
    if wanted < limits.min_oom_score_adj {
        tracing::warn!(
            container_id,
            wanted,
            applied = limits.min_oom_score_adj,
            "oom_score_adj below the runtime's own needs CAP_SYS_RESOURCE; clamped"
        );
        return Ok(Some(limits.min_oom_score_adj));
    }
    Ok(Some(wanted))
}

/// The rlimits: open files as containerd's containers see them, never above
/// the hard limit the runtime holds (raising it would fail with EPERM).
pub(crate) fn rlimits(limits: &HostLimits) -> Result<Vec<PosixRlimit>, SpecError> {
    let nofile = limits.container_nofile();
    let rlimit = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(nofile)
        .hard(nofile)
        .build()
        .map_err(|e| SpecError::invalid("rlimits", e.to_string()))?;
    Ok(vec![rlimit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::{KeyValue, LinuxContainerConfig, LinuxContainerResources};
    use oci_spec::image::ConfigBuilder;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        let mut b = ConfigBuilder::default();
        if !entrypoint.is_empty() {
            b = b.entrypoint(entrypoint.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
        if !cmd.is_empty() {
            b = b.cmd(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
        b.build().unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn args_merge_table() {
        type Argv<'a> = &'a [&'a str];
        // name, image entrypoint, image cmd, command, args, want
        let cases: Vec<(&str, Argv, Argv, Argv, Argv, Argv)> = vec![
            ("image only", &["/ep"], &["c1"], &[], &[], &["/ep", "c1"]),
            (
                "cmd only image",
                &[],
                &["sh", "-c", "x"],
                &[],
                &[],
                &["sh", "-c", "x"],
            ),
            (
                "args replace cmd",
                &["/ep"],
                &["c1"],
                &[],
                &["a1"],
                &["/ep", "a1"],
            ),
            (
                "command drops cmd",
                &["/ep"],
                &["c1"],
                &["/cmd"],
                &[],
                &["/cmd"],
            ),
            (
                "command and args",
                &["/ep"],
                &["c1"],
                &["/cmd"],
                &["a1"],
                &["/cmd", "a1"],
            ),
            ("empty entrypoint marker", &[""], &["c1"], &[], &[], &["c1"]),
            (
                "args without anything",
                &[],
                &[],
                &[],
                &["/bin/x"],
                &["/bin/x"],
            ),
        ];
        for (name, ep, cmd, command, args, want) in cases {
            let config = ContainerConfig {
                command: strings(command),
                args: strings(args),
                ..Default::default()
            };
            let got = process_args(&config, Some(&image(ep, cmd))).unwrap();
            assert_eq!(got, strings(want), "{name}");
        }
    }

    #[test]
    fn no_command_is_invalid() {
        let err = process_args(&ContainerConfig::default(), Some(&image(&[], &[]))).unwrap_err();
        assert_eq!(err.field(), Some("command"));
        assert!(process_args(&ContainerConfig::default(), None).is_err());
    }

    #[test]
    fn env_merge() {
        let img = ConfigBuilder::default()
            .env(strings(&["PATH=/img/bin", "A=1", "B=2", "DROPME"]))
            .build()
            .unwrap();
        let config = ContainerConfig {
            envs: vec![
                KeyValue {
                    key: "B".into(),
                    value: "from-cri".into(),
                },
                KeyValue {
                    key: "C".into(),
                    value: "x=y".into(),
                },
            ],
            tty: true,
            ..Default::default()
        };
        let env = process_env(&config, Some(&img), "pod-a");
        assert_eq!(
            env,
            strings(&[
                "PATH=/img/bin",
                "TERM=xterm",
                "HOSTNAME=pod-a",
                "A=1",
                "B=from-cri",
                "C=x=y"
            ])
        );
        // Without an image PATH, the default stays; an image entry without
        // `=` removes an earlier variable.
        let img = ConfigBuilder::default()
            .env(strings(&["HOSTNAME"]))
            .build()
            .unwrap();
        let env = process_env(&ContainerConfig::default(), Some(&img), "h");
        assert_eq!(env, strings(&[DEFAULT_PATH]));
    }

    #[test]
    fn cwd_precedence() {
        let img = ConfigBuilder::default()
            .working_dir("/srv")
            .build()
            .unwrap();
        let with = |dir: &str| ContainerConfig {
            working_dir: dir.into(),
            ..Default::default()
        };
        assert_eq!(process_cwd(&with("/w"), Some(&img)).unwrap(), "/w");
        assert_eq!(process_cwd(&with(""), Some(&img)).unwrap(), "/srv");
        assert_eq!(process_cwd(&with(""), None).unwrap(), "/");
        let rel = ConfigBuilder::default().working_dir("app").build().unwrap();
        assert_eq!(process_cwd(&with(""), Some(&rel)).unwrap(), "/app");
        let err = process_cwd(&with("rel"), Some(&img)).unwrap_err();
        assert_eq!(err.field(), Some("working_dir"));
    }

    #[test]
    fn oom_score_adj_is_clamped() {
        let config = |adj| ContainerConfig {
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    oom_score_adj: adj,
                    ..Default::default()
                }),
                security_context: None,
            }),
            ..Default::default()
        };
        let mut limits = HostLimits::unrestricted();
        limits.min_oom_score_adj = 0;
        assert_eq!(oom_score_adj(&config(-997), &limits, "c").unwrap(), Some(0));
        assert_eq!(
            oom_score_adj(&config(1000), &limits, "c").unwrap(),
            Some(1000)
        );
        assert_eq!(oom_score_adj(&config(0), &limits, "c").unwrap(), Some(0));
        limits.min_oom_score_adj = -1000;
        assert_eq!(
            oom_score_adj(&config(-997), &limits, "c").unwrap(),
            Some(-997)
        );
        assert_eq!(
            oom_score_adj(&ContainerConfig::default(), &limits, "c").unwrap(),
            None
        );
        let err = oom_score_adj(&config(1001), &limits, "c").unwrap_err();
        assert_eq!(err.field(), Some("linux.resources.oom_score_adj"));
    }

    #[test]
    fn nofile_never_exceeds_the_host() {
        let mut limits = HostLimits::unrestricted();
        limits.nofile_hard = 4096;
        let r = rlimits(&limits).unwrap();
        assert_eq!(r[0].typ(), PosixRlimitType::RlimitNofile);
        assert_eq!((r[0].soft(), r[0].hard()), (4096, 4096));
    }
}
