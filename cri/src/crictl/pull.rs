//! `crictl pull`: PullImage with the credentials given, printing
//! `Image is up to date for <image id>`. On a terminal a progress bar
//! follows the pull through Skiff's pull-progress side channel (absent on
//! other runtimes: then there is simply no bar).

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Read};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use k8s_cri::v1::{AuthConfig, ImageSpec, PullImageRequest};
use tonic::metadata::MetadataValue;

use super::config::parse_go_duration;
use super::console::rpc_error;
use super::{CrictlError, Session};
use crate::client::CriClient;
use crate::progress::PULL_ID_METADATA;
use crate::proto::{LayerState, PullProgressUpdate, WatchRequest};

/// `crictl pull` options.
#[derive(Debug, Clone, clap::Args)]
pub struct PullArgs {
    /// Use USERNAME[:PASSWORD] for accessing the registry
    #[arg(long, env = "CRICTL_CREDS", value_name = "USERNAME[:PASSWORD]")]
    creds: Option<String>,
    /// Use AUTH_STRING (base64 of USERNAME[:PASSWORD]) for accessing the registry
    #[arg(long, env = "CRICTL_AUTH", value_name = "AUTH_STRING")]
    auth: Option<String>,
    /// Use USERNAME for accessing the registry; the password is asked for unless --password is given
    #[arg(short, long, value_name = "USERNAME")]
    username: Option<String>,
    /// The password for --username
    #[arg(long, value_name = "PASSWORD", requires = "username")]
    password: Option<String>,
    /// Annotation to be set on the pulled image
    #[arg(short, long, value_name = "KEY=VALUE")]
    annotation: Vec<String>,
    /// Maximum time to be used for pulling the image, disabled if set to 0s
    #[arg(
        long,
        visible_alias = "pt",
        env = "CRICTL_PULL_TIMEOUT",
        value_name = "DURATION"
    )]
    pull_timeout: Option<String>,
    /// The image to pull
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    image: String,
}

pub(super) async fn run(args: &PullArgs, session: &mut Session<'_, '_>) -> Result<(), CrictlError> {
    if args.image.is_empty() {
        return Err(CrictlError::failed("Image name cannot be empty"));
    }
    let mut client = session.image_client().await?;
    let auth = auth_config(args, session)?;
    let annotations = parse_annotations(&args.annotation)?;
    let timeout = match &args.pull_timeout {
        Some(text) => parse_go_duration(text).map_err(|e| {
            CrictlError::failed(format!(
                "invalid value {text:?} for flag -pull-timeout: {e}"
            ))
        })?,
        None => Duration::ZERO,
    };

    let pull_id = random_id();
    let bar = if session.console.is_terminal() {
        watch_progress(&mut client, &pull_id, &args.image).await
    } else {
        None
    };
    let mut request = tonic::Request::new(PullImageRequest {
        image: Some(ImageSpec {
            image: args.image.clone(),
            annotations,
            ..ImageSpec::default()
        }),
        auth,
        sandbox_config: None,
    });
    if let Ok(value) = MetadataValue::try_from(pull_id.as_str()) {
        request.metadata_mut().insert(PULL_ID_METADATA, value);
    }
    session.debug(format!("PullImageRequest: image {:?}", args.image));
    let call = client.images.pull_image(request);
    let result = if timeout.is_zero() {
        call.await.map(tonic::Response::into_inner)
    } else {
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded(
                "context deadline exceeded",
            )),
        }
    };
    if let Some(bar) = bar {
        bar.stop();
    }
    let response =
        result.map_err(|s| CrictlError::failed(format!("pulling image: {}", rpc_error(&s))))?;
    session.debug(format!("PullImageResponse: {response:?}"));
    session
        .console
        .print(&format!("Image is up to date for {}\n", response.image_ref))?;
    Ok(())
}

/// The AuthConfig crictl sends: `--username` (with a prompted or given
/// password), else `--creds`, else `--auth`.
fn auth_config(
    args: &PullArgs,
    session: &mut Session<'_, '_>,
) -> Result<Option<AuthConfig>, CrictlError> {
    if let Some(username) = args.username.as_ref().filter(|u| !u.is_empty()) {
        let password = match &args.password {
            Some(password) => password.clone(),
            None => {
                session.console.print("Enter Password:")?;
                session.console.out.flush()?;
                let password = read_password()?;
                session.console.print("\n")?;
                password
            }
        };
        return Ok(Some(AuthConfig {
            username: username.clone(),
            password,
            ..AuthConfig::default()
        }));
    }
    let creds = args.creds.as_deref().filter(|c| !c.is_empty());
    let auth = args.auth.as_deref().filter(|a| !a.is_empty());
    match (creds, auth) {
        (Some(_), Some(_)) => Err(CrictlError::failed(
            "both `--creds` and `--auth` are specified",
        )),
        (Some(creds), None) => {
            let (username, password) = parse_creds(creds)?;
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

/// `USERNAME[:PASSWORD]`, as crictl splits it.
pub(super) fn parse_creds(creds: &str) -> Result<(String, String), CrictlError> {
    match creds.split_once(':') {
        None => Ok((creds.to_owned(), String::new())),
        Some(("", _)) => Err(CrictlError::failed("username can't be empty")),
        Some((user, password)) => Ok((user.to_owned(), password.to_owned())),
    }
}

fn parse_annotations(values: &[String]) -> Result<HashMap<String, String>, CrictlError> {
    values
        .iter()
        .map(|value| {
            let parts: Vec<&str> = value.split('=').collect();
            match parts.as_slice() {
                [key, value] => Ok(((*key).to_owned(), (*value).to_owned())),
                _ => Err(CrictlError::failed(format!(
                    "incorrectly specified label: {value}"
                ))),
            }
        })
        .collect()
}

/// Reads a line from stdin without echoing it when stdin is a terminal.
pub(super) fn read_password() -> Result<String, CrictlError> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = if stdin.is_terminal() {
        tcgetattr(&stdin).ok()
    } else {
        None
    };
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, saved);
    }
    read.map_err(|e| CrictlError::failed(format!("read password: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// A random pull id: 16 bytes from the kernel, in hex.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Unique enough for one machine: the id only pairs two calls of ours.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes[..8].copy_from_slice(&(nanos as u64).to_le_bytes());
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A progress bar fed by the watch stream, removed when stopped.
struct PullBar {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl PullBar {
    fn stop(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

/// Opens the watch before the pull starts so no progress is missed; a
/// runtime without the side channel just gets no bar.
async fn watch_progress(client: &mut CriClient, pull_id: &str, image: &str) -> Option<PullBar> {
    let request = WatchRequest {
        pull_id: pull_id.to_owned(),
    };
    let mut stream = match client.progress.watch(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            tracing::debug!(%status, "no pull progress from this runtime");
            return None;
        }
    };
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(spinner_style());
    bar.set_message(format!("Resolving {image}"));
    bar.enable_steady_tick(Duration::from_millis(120));
    let image = image.to_owned();
    let shown = bar.clone();
    let task = tokio::spawn(async move {
        let mut sized = false;
        while let Ok(Some(update)) = stream.message().await {
            show(&shown, &update, &image);
            if !update.layers.is_empty() && !sized {
                shown.set_style(bar_style());
                sized = true;
            }
            if update.done {
                break;
            }
        }
    });
    Some(PullBar { bar, task })
}

fn show(bar: &ProgressBar, update: &PullProgressUpdate, image: &str) {
    if update.layers.is_empty() {
        return;
    }
    let total: u64 = update.layers.iter().map(|l| l.total).sum();
    let current: u64 = update.layers.iter().map(|l| l.current.min(l.total)).sum();
    let finished = update
        .layers
        .iter()
        .filter(|l| {
            matches!(
                LayerState::try_from(l.state),
                Ok(LayerState::Done | LayerState::Exists)
            )
        })
        .count();
    bar.set_message(format!(
        "Pulling {image} ({finished}/{} layers)",
        update.layers.len()
    ));
    bar.set_length(total);
    bar.set_position(current);
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_split_as_crictl_splits_them() {
        assert_eq!(
            parse_creds("alice").unwrap(),
            ("alice".into(), String::new())
        );
        assert_eq!(
            parse_creds("alice:s3:cret").unwrap(),
            ("alice".into(), "s3:cret".into())
        );
        assert!(parse_creds(":pw").is_err());
    }

    #[test]
    fn annotations_are_key_value_pairs() {
        let parsed = parse_annotations(&["a=b".into()]).unwrap();
        assert_eq!(parsed.get("a").map(String::as_str), Some("b"));
        assert!(parse_annotations(&["a".into()]).is_err());
        assert!(parse_annotations(&["a=b=c".into()]).is_err());
    }

    #[test]
    fn pull_ids_are_random_hex() {
        let (a, b) = (random_id(), random_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
