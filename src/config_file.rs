//! `/etc/skiff/config.yaml`: a YAML map whose keys are flag names, as k3s
//! reads its config.yaml. Its entries become flags placed right after the
//! subcommand, so flags given on the command line (later) win.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The default config file.
pub const DEFAULT_PATH: &str = "/etc/skiff/config.yaml";
/// Subcommands that read the config file.
const READERS: [&str; 3] = ["server", "agent", "runtime"];

/// Returns `args` with the config file's entries inserted after the
/// subcommand. The file is `--config`/`-c` from the command line, else
/// `$SKIFF_CONFIG_FILE`, else [`DEFAULT_PATH`]; a missing default file is no
/// config, a missing named file is an error.
pub fn expand(args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    // Only the subcommand itself (argv[1]) counts: a later argument that
    // happens to read "server" (a pod named so, given to `skiff shim`) does not.
    let position = 1;
    if !args
        .get(position)
        .is_some_and(|a| READERS.iter().any(|r| a == *r))
    {
        return Ok(args);
    }
    let named = named_config(&args[position + 1..])
        .or_else(|| std::env::var_os("SKIFF_CONFIG_FILE").map(PathBuf::from));
    let path = named.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && named.is_none() => {
            return Ok(args);
        }
        Err(err) => {
            return Err(err).with_context(|| format!("reading config file {}", path.display()));
        }
    };
    let flags = flags_from_yaml(&text, &path)?;
    let mut expanded = args;
    expanded.splice(position + 1..position + 1, flags);
    Ok(expanded)
}

fn named_config(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let arg = arg.to_str()?;
        if arg == "--config" || arg == "-c" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
    }
    None
}

/// `key: value` → `--key=value`; `key: true` → `--key`; lists repeat the flag.
fn flags_from_yaml(text: &str, path: &Path) -> anyhow::Result<Vec<OsString>> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .with_context(|| format!("config file {} is not valid YAML", path.display()))?;
    let map = match value {
        serde_yaml_ng::Value::Null => return Ok(Vec::new()),
        serde_yaml_ng::Value::Mapping(map) => map,
        _ => bail!(
            "config file {}: expected a map of flag names to values",
            path.display()
        ),
    };
    let mut flags = Vec::new();
    for (key, value) in map {
        let Some(key) = key.as_str() else {
            bail!("config file {}: keys must be flag names", path.display());
        };
        if key == "config" {
            continue;
        }
        let items = match value {
            serde_yaml_ng::Value::Sequence(items) => items,
            other => vec![other],
        };
        for item in items {
            match item {
                serde_yaml_ng::Value::Bool(true) => flags.push(format!("--{key}").into()),
                serde_yaml_ng::Value::Bool(false) | serde_yaml_ng::Value::Null => {}
                serde_yaml_ng::Value::String(s) => flags.push(format!("--{key}={s}").into()),
                serde_yaml_ng::Value::Number(n) => flags.push(format!("--{key}={n}").into()),
                _ => bail!(
                    "config file {}: {key}: expected a scalar or a list",
                    path.display()
                ),
            }
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn entries_become_flags_after_the_subcommand_so_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "data-dir: /srv/skiff\ndebug: true\nnode-label: [a=1, b=2]\nimage-gc-high-threshold: 90\n")
            .unwrap();
        let args = os(&[
            "skiff",
            "runtime",
            "--config",
            path.to_str().unwrap(),
            "--data-dir=/x",
        ]);
        let expanded = expand(args).unwrap();
        let strings: Vec<_> = expanded.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            &strings[..7],
            [
                "skiff",
                "runtime",
                "--data-dir=/srv/skiff",
                "--debug",
                "--node-label=a=1",
                "--node-label=b=2",
                "--image-gc-high-threshold=90"
            ]
        );
        assert_eq!(strings.last(), Some(&"--data-dir=/x"));
    }

    #[test]
    fn a_named_config_file_must_exist_and_be_a_map() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.yaml");
        let err = expand(os(&["skiff", "runtime", "-c", missing.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("missing.yaml"), "{err:#}");
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "- a\n- b\n").unwrap();
        let err = expand(os(&["skiff", "runtime", "-c", bad.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("expected a map"), "{err:#}");
    }

    #[test]
    fn other_subcommands_ignore_it() {
        let args = os(&["skiff", "crictl", "images"]);
        assert_eq!(expand(args.clone()).unwrap(), args);
        let shim = os(&[
            "skiff",
            "shim",
            "--hostname",
            "server",
            "--config",
            "/nonexistent",
        ]);
        assert_eq!(expand(shim.clone()).unwrap(), shim);
    }
}
