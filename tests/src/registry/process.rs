//! One `docker-registry serve` process: its config file, its logs, and
//! waiting until it listens.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::child::GuardedChild;
use crate::error::{HarnessError, Result, io_error};

/// Environment variable overriding the registry binary.
pub const REGISTRY_BIN_ENV: &str = "SKIFF_TEST_REGISTRY_BIN";
/// Debian's `docker-registry` package installs it here.
const DEFAULT_REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// How long a registry may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How a registry authenticates clients.
#[derive(Debug, Clone)]
pub(crate) enum RegistryAuth {
    /// Anonymous access.
    None,
    /// Basic auth against a bcrypt htpasswd file.
    Htpasswd(PathBuf),
    /// Bearer tokens from a token server.
    Token {
        realm: String,
        service: String,
        issuer: String,
        root_cert_bundle: PathBuf,
    },
}

/// What one registry process serves and how.
#[derive(Debug, Clone)]
pub(crate) struct RegistryConfig {
    /// Label for logs and errors (`open`, `basic`, ...).
    pub kind: String,
    /// Where the config file and logs go.
    pub dir: PathBuf,
    /// The storage root, possibly shared with other registry processes.
    pub storage: PathBuf,
    /// Certificate and key for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Client authentication.
    pub auth: RegistryAuth,
}

/// A started registry process, not yet known to listen.
#[derive(Debug)]
pub(crate) struct StartingRegistry {
    config: RegistryConfig,
    child: GuardedChild,
    log: PathBuf,
    access_log: PathBuf,
}

/// A listening registry process; killed on drop.
#[derive(Debug)]
pub(crate) struct RegistryProcess {
    pub child: GuardedChild,
    pub addr: SocketAddr,
    /// The registry's own log (stderr).
    pub log: PathBuf,
    /// The combined-format access log (stdout).
    pub access_log: PathBuf,
}

fn config_yaml(config: &RegistryConfig) -> Result<String> {
    let mut yaml = json!({
        "version": 0.1,
        "log": {
            "level": "info",
            "formatter": "text",
            "accesslog": { "disabled": false },
        },
        "storage": {
            "filesystem": { "rootdirectory": config.storage },
            "delete": { "enabled": true },
            // No background purge of uploads: other processes share the storage.
            "maintenance": { "uploadpurging": { "enabled": false } },
            // No `cache:` section: a blob descriptor cache in one process
            // would go stale when another process writes the shared storage.
        },
        "http": {
            // Port 0: the kernel picks a free port and the registry logs it,
            // so there is no race with other tests for the port.
            "addr": "127.0.0.1:0",
            // Shared by all processes so an upload started on one could
            // finish on another.
            "secret": "skiff-test-http-secret",
        },
        // Lets tests push signed schema 1 manifests (to check that Skiff
        // refuses them); reads and schema 2 conversions do not depend on it.
        "compatibility": { "schema1": { "enabled": true } },
    });
    if let Some((cert, key)) = &config.tls {
        yaml["http"]["tls"] = json!({ "certificate": cert, "key": key });
    }
    match &config.auth {
        RegistryAuth::None => {}
        RegistryAuth::Htpasswd(path) => {
            yaml["auth"] = json!({ "htpasswd": { "realm": "skiff-test", "path": path } });
        }
        RegistryAuth::Token {
            realm,
            service,
            issuer,
            root_cert_bundle,
        } => {
            yaml["auth"] = json!({ "token": {
                "realm": realm,
                "service": service,
                "issuer": issuer,
                "rootcertbundle": root_cert_bundle,
            }});
        }
    }
    serde_yaml_ng::to_string(&yaml)
        .map_err(|e| HarnessError::InvalidContent(format!("registry config: {e}")))
}

/// Writes the config and starts `docker-registry serve`.
pub(crate) fn spawn(config: RegistryConfig) -> Result<StartingRegistry> {
    fs::create_dir_all(&config.dir).map_err(io_error("create directory", &config.dir))?;
    let config_path = config.dir.join("config.yml");
    fs::write(&config_path, config_yaml(&config)?).map_err(io_error("write", &config_path))?;
    let log = config.dir.join("registry.log");
    let access_log = config.dir.join("access.log");
    let stderr = File::create(&log).map_err(io_error("create", &log))?;
    let stdout = File::create(&access_log).map_err(io_error("create", &access_log))?;
    let binary = std::env::var_os(REGISTRY_BIN_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRY_BIN));
    if !binary.is_file() {
        return Err(HarnessError::RegistryStart {
            kind: config.kind,
            reason: format!(
                "{} not found: install Debian's docker-registry (scripts/setup.sh) or set {REGISTRY_BIN_ENV}",
                binary.display()
            ),
            log_tail: String::new(),
        });
    }
    let mut command = Command::new(&binary);
    command
        .arg("serve")
        .arg(&config_path)
        .current_dir(&config.dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // The registry reads REGISTRY_* variables as config overrides.
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let child = GuardedChild::spawn(
        &format!("{} registry ({})", config.kind, binary.display()),
        command,
    )?;
    Ok(StartingRegistry {
        config,
        child,
        log,
        access_log,
    })
}

impl StartingRegistry {
    /// Waits until the registry logs `listening on 127.0.0.1:PORT`.
    pub(crate) fn wait_ready(mut self) -> Result<RegistryProcess> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(addr) = listening_addr(&log) {
                tracing::debug!(kind = %self.config.kind, %addr, pid = self.child.id(), "registry listening");
                return Ok(RegistryProcess {
                    child: self.child,
                    addr,
                    log: self.log,
                    access_log: self.access_log,
                });
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(self.failure(format!("docker-registry exited with {status}")));
            }
            if Instant::now() >= deadline {
                return Err(self.failure(format!("not listening after {START_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn failure(&self, reason: String) -> HarnessError {
        HarnessError::RegistryStart {
            kind: self.config.kind.clone(),
            reason,
            log_tail: log_tail(&self.log, 20),
        }
    }
}

/// Parses `msg="listening on 127.0.0.1:41234"` (TLS adds `, tls`).
fn listening_addr(log: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        let rest = &line[line.find("listening on ")? + "listening on ".len()..];
        let end = rest.find(['"', ',', ' ']).unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

/// The last `lines` lines of a log file.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_gives_the_port() {
        let log = r#"time="x" level=info msg="listening on 127.0.0.1:38805" go.version=go1.19.8"#;
        assert_eq!(listening_addr(log).map(|a| a.port()), Some(38805));
        let tls = r#"time="x" level=info msg="listening on 127.0.0.1:40001, tls" go.version=go1"#;
        assert_eq!(listening_addr(tls).map(|a| a.port()), Some(40001));
    }
}
