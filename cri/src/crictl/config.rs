//! crictl's settings: flags and environment variables win over the config
//! file (`/etc/crictl.yaml`, or `--config` / `CRI_CONFIG_FILE`), which wins
//! over the defaults — the precedence crictl applies.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml_ng::Value;

use crate::client::DEFAULT_ENDPOINT;

/// crictl's default config file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/crictl.yaml";

/// crictl's default timeout for connecting and unary calls.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the config file sets (keys crictl knows; others are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    /// `runtime-endpoint`.
    pub runtime_endpoint: Option<String>,
    /// `image-endpoint`.
    pub image_endpoint: Option<String>,
    /// `timeout`, in seconds (or a Go duration string).
    pub timeout: Option<Duration>,
    /// `debug`.
    pub debug: Option<bool>,
    /// `pull-image-on-create`: `create` pulls the image first.
    pub pull_image_on_create: Option<bool>,
    /// `disable-pull-on-run`: `run` does not pull the image first.
    pub disable_pull_on_run: Option<bool>,
}

/// Global options as given on the command line or in the environment.
#[derive(Debug, Clone, Default)]
pub struct GlobalFlags {
    /// `--config` / `CRI_CONFIG_FILE`.
    pub config: Option<PathBuf>,
    /// `--runtime-endpoint` / `CONTAINER_RUNTIME_ENDPOINT`.
    pub runtime_endpoint: Option<String>,
    /// `--image-endpoint` / `IMAGE_SERVICE_ENDPOINT`.
    pub image_endpoint: Option<String>,
    /// `--timeout`, a Go duration (`2s`, `500ms`).
    pub timeout: Option<String>,
    /// `--debug`.
    pub debug: bool,
}

/// The settings a command runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where the RuntimeService is.
    pub runtime_endpoint: String,
    /// Where the ImageService is.
    pub image_endpoint: String,
    /// Limit for connecting and for unary calls (not for pulls).
    pub timeout: Duration,
    /// Show debug lines.
    pub debug: bool,
    /// `create` pulls the image first (`pull-image-on-create`).
    pub pull_image_on_create: bool,
    /// `run` does not pull the image first (`disable-pull-on-run`).
    pub disable_pull_on_run: bool,
}

/// Reads the config file. A missing default file is no config; a file
/// named explicitly must be readable and valid.
pub fn load(flags: &GlobalFlags) -> Result<Option<ConfigFile>, String> {
    let (path, explicit) = match &flags.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text)
            .map(Some)
            .map_err(|e| format!("load config file {}: {e}", path.display())),
        Err(_) if !explicit => Ok(None),
        Err(e) => Err(format!("load config file {}: {e}", path.display())),
    }
}

/// Parses crictl.yaml text.
pub fn parse(text: &str) -> Result<ConfigFile, String> {
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let map = match value {
        Value::Null => return Ok(ConfigFile::default()),
        Value::Mapping(map) => map,
        _ => return Err("expected a map of settings".to_owned()),
    };
    let mut config = ConfigFile::default();
    for (key, value) in map {
        let Some(key) = key.as_str() else { continue };
        match key {
            "runtime-endpoint" => config.runtime_endpoint = Some(string(key, &value)?),
            "image-endpoint" => config.image_endpoint = Some(string(key, &value)?),
            "timeout" => config.timeout = Some(timeout(&value)?),
            "debug" => config.debug = Some(boolean(key, &value)?),
            "pull-image-on-create" => config.pull_image_on_create = Some(boolean(key, &value)?),
            "disable-pull-on-run" => config.disable_pull_on_run = Some(boolean(key, &value)?),
            _ => {}
        }
    }
    Ok(config)
}

fn boolean(key: &str, value: &Value) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| format!("{key}: expected true or false, got {value:?}"))
}

fn string(key: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        other => Err(format!("{key}: expected a string, got {other:?}")),
    }
}

fn timeout(value: &Value) -> Result<Duration, String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(Duration::from_secs)
            .or_else(|| n.as_i64().map(|_| Duration::ZERO))
            .ok_or_else(|| format!("timeout: expected whole seconds, got {n}")),
        Value::String(s) => s
            .parse::<u64>()
            .map(Duration::from_secs)
            .or_else(|_| parse_go_duration(s))
            .map_err(|e| format!("timeout: {e}")),
        Value::Null => Ok(Duration::ZERO),
        other => Err(format!("timeout: expected seconds, got {other:?}")),
    }
}

/// Merges flags, the config file and the defaults.
pub fn resolve(flags: &GlobalFlags, file: Option<&ConfigFile>) -> Result<Settings, String> {
    let from_file = |get: fn(&ConfigFile) -> Option<&String>| {
        file.and_then(get).filter(|s| !s.is_empty()).cloned()
    };
    let runtime_endpoint = match &flags.runtime_endpoint {
        Some(endpoint) if endpoint.is_empty() => {
            return Err("--runtime-endpoint is not set".to_owned());
        }
        Some(endpoint) => endpoint.clone(),
        None => from_file(|f| f.runtime_endpoint.as_ref())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
    };
    let image_endpoint = flags
        .image_endpoint
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| from_file(|f| f.image_endpoint.as_ref()))
        .unwrap_or_else(|| runtime_endpoint.clone());
    let timeout = match &flags.timeout {
        Some(text) => {
            let parsed = parse_go_duration(text)
                .map_err(|e| format!("invalid value {text:?} for flag -timeout: {e}"))?;
            if parsed.is_zero() {
                DEFAULT_TIMEOUT
            } else {
                parsed
            }
        }
        None => file
            .and_then(|f| f.timeout)
            .filter(|t| !t.is_zero())
            .unwrap_or(DEFAULT_TIMEOUT),
    };
    let debug = flags.debug || file.and_then(|f| f.debug).unwrap_or(false);
    Ok(Settings {
        runtime_endpoint,
        image_endpoint,
        timeout,
        debug,
        pull_image_on_create: file.and_then(|f| f.pull_image_on_create).unwrap_or(false),
        disable_pull_on_run: file.and_then(|f| f.disable_pull_on_run).unwrap_or(false),
    })
}

/// Parses a Go duration (`300ms`, `1.5s`, `2m30s`, `0`); negative
/// durations become zero, which callers treat as "use the default".
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {text:?}"))?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            unit => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    if negative {
        return Ok(Duration::ZERO);
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

/// The config file a run would read (for messages).
pub fn config_path(flags: &GlobalFlags) -> &Path {
    flags
        .config
        .as_deref()
        .unwrap_or(Path::new(DEFAULT_CONFIG_PATH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let settings = resolve(&GlobalFlags::default(), None).unwrap();
        assert_eq!(
            settings,
            Settings {
                runtime_endpoint: "unix:///run/skiff/cri.sock".into(),
                image_endpoint: "unix:///run/skiff/cri.sock".into(),
                timeout: Duration::from_secs(2),
                debug: false,
                pull_image_on_create: false,
                disable_pull_on_run: false,
            }
        );
    }

    #[test]
    fn the_file_wins_over_defaults_and_flags_win_over_the_file() {
        let file = parse(
            "runtime-endpoint: unix:///file/runtime.sock\n\
             image-endpoint: unix:///file/image.sock\n\
             timeout: 10\n\
             debug: true\n\
             pull-image-on-create: false\n",
        )
        .unwrap();
        let from_file = resolve(&GlobalFlags::default(), Some(&file)).unwrap();
        assert_eq!(from_file.runtime_endpoint, "unix:///file/runtime.sock");
        assert_eq!(from_file.image_endpoint, "unix:///file/image.sock");
        assert_eq!(from_file.timeout, Duration::from_secs(10));
        assert!(from_file.debug);
        assert!(!from_file.pull_image_on_create);
        assert!(!from_file.disable_pull_on_run);

        let flags = GlobalFlags {
            runtime_endpoint: Some("unix:///flag/runtime.sock".into()),
            image_endpoint: Some("/flag/image.sock".into()),
            timeout: Some("500ms".into()),
            ..GlobalFlags::default()
        };
        let from_flags = resolve(&flags, Some(&file)).unwrap();
        assert_eq!(from_flags.runtime_endpoint, "unix:///flag/runtime.sock");
        assert_eq!(from_flags.image_endpoint, "/flag/image.sock");
        assert_eq!(from_flags.timeout, Duration::from_millis(500));
        assert!(from_flags.debug, "debug stays on from the file");
    }

    #[test]
    fn the_image_endpoint_falls_back_to_the_runtime_endpoint() {
        let file = parse("runtime-endpoint: unix:///file/runtime.sock\n").unwrap();
        let settings = resolve(&GlobalFlags::default(), Some(&file)).unwrap();
        assert_eq!(settings.image_endpoint, "unix:///file/runtime.sock");
        let flags = GlobalFlags {
            runtime_endpoint: Some("/flag.sock".into()),
            ..GlobalFlags::default()
        };
        assert_eq!(
            resolve(&flags, Some(&file)).unwrap().image_endpoint,
            "/flag.sock"
        );
    }

    #[test]
    fn zero_timeouts_mean_the_default() {
        let file = parse("timeout: 0\n").unwrap();
        assert_eq!(
            resolve(&GlobalFlags::default(), Some(&file))
                .unwrap()
                .timeout,
            DEFAULT_TIMEOUT
        );
        let flags = GlobalFlags {
            timeout: Some("0s".into()),
            ..GlobalFlags::default()
        };
        assert_eq!(resolve(&flags, None).unwrap().timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn an_empty_runtime_endpoint_flag_is_an_error() {
        let flags = GlobalFlags {
            runtime_endpoint: Some(String::new()),
            ..GlobalFlags::default()
        };
        assert_eq!(
            resolve(&flags, None).unwrap_err(),
            "--runtime-endpoint is not set"
        );
    }

    #[test]
    fn a_missing_default_file_is_fine_but_a_named_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let flags = GlobalFlags {
            config: Some(dir.path().join("missing.yaml")),
            ..GlobalFlags::default()
        };
        assert!(load(&flags).unwrap_err().contains("missing.yaml"));
        let path = dir.path().join("crictl.yaml");
        std::fs::write(&path, "image-endpoint: unix:///x.sock\ntimeout: 3s\n").unwrap();
        let flags = GlobalFlags {
            config: Some(path),
            ..GlobalFlags::default()
        };
        let file = load(&flags).unwrap().unwrap();
        assert_eq!(file.image_endpoint.as_deref(), Some("unix:///x.sock"));
        assert_eq!(file.timeout, Some(Duration::from_secs(3)));
        assert!(parse("- a\n").is_err());
        assert_eq!(parse("").unwrap(), ConfigFile::default());
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_go_duration("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("-3s").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("2").is_err());
        assert!(parse_go_duration("2x").is_err());
        assert!(parse_go_duration("").is_err());
    }
}
