//! `GET /containerLogs/{namespace}/{pod}/{container}`: the container's
//! CRI log file, as `kubectl logs` gets it through the apiserver. Errors
//! found before anything is sent are answered as kubelet answers them
//! (404 for an unknown pod or container, 400 for a container without
//! logs yet); the log itself streams in a chunked body.

use std::convert::Infallible;
use std::path::Path;

use bytes::Bytes;
use futures::FutureExt;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode, header};
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::logfile::{IsRunning, LogOptions, LogReader};
use super::lookup::{self, PodRef};
use super::query::Query;
use super::{Body, Failure, text};
use crate::kubelet::Kubelet;

/// The container log request's options, from its query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    /// How to read.
    pub options: LogOptions,
    /// The previous instance's log.
    pub previous: bool,
}

impl LogRequest {
    /// Reads `PodLogOptions` from the query, as kubelet decodes them.
    pub fn from_query(query: &Query, now: Timestamp) -> Result<LogRequest, String> {
        let tail = query.integer("tailLines")?;
        let since_seconds = query.integer("sinceSeconds")?;
        let since_time = query.get("sinceTime").filter(|t| !t.is_empty());
        if since_seconds.is_some() && since_time.is_some() {
            return Err("at most one of `sinceTime` or `sinceSeconds` may be specified".into());
        }
        let since = match (since_seconds, since_time) {
            (Some(seconds), _) => {
                if seconds < 1 {
                    return Err("sinceSeconds must be greater than 0".into());
                }
                now.checked_sub(SignedDuration::from_secs(seconds)).ok()
            }
            (None, Some(time)) => Some(
                time.parse::<Timestamp>()
                    .map_err(|e| format!("invalid sinceTime {time:?}: {e}"))?,
            ),
            (None, None) => None,
        };
        let limit_bytes = query.integer("limitBytes")?;
        if limit_bytes.is_some_and(|l| l < 1) {
            return Err("limitBytes must be greater than 0".into());
        }
        if tail.is_some_and(|t| t < 0) {
            return Err("tailLines must be greater than or equal to 0".into());
        }
        Ok(LogRequest {
            options: LogOptions {
                follow: query.flag("follow")?,
                tail: tail.map(|t| t as u64),
                since,
                timestamps: query.flag("timestamps")?,
                limit_bytes: limit_bytes.map(|l| l as u64),
            },
            previous: query.flag("previous")?,
        })
    }
}

/// Answers a container log request.
pub async fn container_logs(
    kubelet: &Kubelet,
    request: &Request<Incoming>,
    namespace: &str,
    pod: &str,
    container: &str,
    shutdown: CancellationToken,
) -> Response<Body> {
    let query = Query::parse(request.uri().query());
    let log_request = match LogRequest::from_query(&query, Timestamp::now()) {
        Ok(r) => r,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let pod_ref = PodRef {
        namespace,
        name: pod,
        uid: None,
    };
    let instance = match choose_instance(kubelet, pod_ref, container, log_request.previous).await {
        Ok(instance) => instance,
        Err(refusal) => return refusal.response(),
    };
    let status = match lookup::container_status(&kubelet.cri, &instance.id).await {
        Ok(status) => status,
        Err(status) => return text(StatusCode::BAD_REQUEST, status.message()),
    };
    if status.log_path.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod:?} has no log file"),
        );
    }
    let reader = match LogReader::open(Path::new(&status.log_path), log_request.options).await {
        Ok(reader) => reader,
        Err(err) => return text(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let running = is_running(kubelet, &instance.id);
    let path = status.log_path.clone();
    tokio::spawn(async move {
        if let Err(err) = reader.send(tx, running, shutdown).await {
            tracing::debug!(%path, %err, "reading container logs");
        }
    });
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        let bytes = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = Response::new(http_body_util::StreamBody::new(frames).boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

/// The container instance whose log is asked for: the newest, or with
/// `previous` the one before the current (the newest itself while the
/// container waits to restart, as `lastState` then names it).
async fn choose_instance(
    kubelet: &Kubelet,
    pod: PodRef<'_>,
    container: &str,
    previous: bool,
) -> Result<cri::Container, Failure> {
    let instances = lookup::containers(&kubelet.cri, pod, container)
        .await
        .map_err(|s| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, s.message()))?;
    let Some(newest) = instances.first() else {
        return Err(not_started(kubelet, pod, container).await);
    };
    if !previous {
        return Ok(newest.clone());
    }
    let exited = newest.state == cri::ContainerState::ContainerExited as i32;
    let newest_is_current =
        !exited || terminated_for_good(kubelet, pod, container, &newest.id).await;
    let chosen = if newest_is_current {
        instances.get(1)
    } else {
        Some(newest)
    };
    chosen.cloned().ok_or_else(|| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            format!(
                "previous terminated container {container:?} in pod {:?} not found",
                pod.name
            ),
        )
    })
}

/// Whether the pod's status says the container `id` is its terminated
/// current state (it will not restart), rather than the last state of a
/// container waiting to restart.
async fn terminated_for_good(
    kubelet: &Kubelet,
    pod: PodRef<'_>,
    container: &str,
    id: &str,
) -> bool {
    let Some(status) = api_container_status(kubelet, pod, container).await else {
        return false;
    };
    status
        .state
        .and_then(|s| s.terminated)
        .and_then(|t| t.container_id)
        .is_some_and(|cid| cid.ends_with(id))
}

async fn api_pod(kubelet: &Kubelet, pod: PodRef<'_>) -> Result<Option<Pod>, kube::Error> {
    Api::<Pod>::namespaced(kubelet.client.clone(), pod.namespace)
        .get_opt(pod.name)
        .await
}

async fn api_container_status(
    kubelet: &Kubelet,
    pod: PodRef<'_>,
    container: &str,
) -> Option<ContainerStatus> {
    let status = api_pod(kubelet, pod).await.ok()??.status?;
    [
        status.container_statuses,
        status.init_container_statuses,
        status.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .find(|s| s.name == container)
}

/// The answer when the runtime has no instance of the container: as
/// kubelet says it from the pod (unknown pod or container: 404; else why
/// the container is not started: 400).
async fn not_started(kubelet: &Kubelet, pod: PodRef<'_>, container: &str) -> Failure {
    let name = pod.name;
    let found = match api_pod(kubelet, pod).await {
        Ok(found) => found,
        Err(err) => {
            tracing::debug!(pod = %name, %err, "reading the pod for a log request");
            None
        }
    };
    let Some(found) = found else {
        return Failure::new(
            StatusCode::NOT_FOUND,
            format!("pod {name:?} does not exist"),
        );
    };
    let in_spec = found.spec.as_ref().is_some_and(|spec| {
        spec.containers.iter().any(|c| c.name == container)
            || spec
                .init_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
            || spec
                .ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
    });
    if !in_spec {
        return Failure::new(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {name:?}"),
        );
    }
    let reason = api_container_status(kubelet, pod, container)
        .await
        .and_then(|s| s.state?.waiting?.reason)
        .unwrap_or_else(|| "ContainerCreating".to_owned());
    let why = match reason.as_str() {
        "ErrImagePull" => "image can't be pulled".to_owned(),
        "ImagePullBackOff" => "trying and failing to pull image".to_owned(),
        other => other.to_owned(),
    };
    Failure::new(
        StatusCode::BAD_REQUEST,
        format!("container {container:?} in pod {name:?} is waiting to start: {why}"),
    )
}

/// Asks the runtime whether the container runs.
fn is_running(kubelet: &Kubelet, container_id: &str) -> IsRunning {
    let cri = kubelet.cri.clone();
    let id = container_id.to_owned();
    Box::new(move || {
        let cri = cri.clone();
        let id = id.clone();
        async move {
            lookup::container_status(&cri, &id)
                .await
                .is_ok_and(|s| s.state == cri::ContainerState::ContainerRunning as i32)
        }
        .boxed()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<LogRequest, String> {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        LogRequest::from_query(&Query::parse(Some(query)), now)
    }

    #[test]
    fn log_options_come_from_the_query() {
        let request =
            parse("follow=true&tailLines=10&timestamps=1&limitBytes=100&previous=true").unwrap();
        assert_eq!(
            request,
            LogRequest {
                options: LogOptions {
                    follow: true,
                    tail: Some(10),
                    since: None,
                    timestamps: true,
                    limit_bytes: Some(100),
                },
                previous: true,
            }
        );
        let since = parse("sinceSeconds=60").unwrap().options.since.unwrap();
        assert_eq!(since.as_second(), 1_700_000_000 - 60);
        let since = parse("sinceTime=2023-11-14T22:13:20Z")
            .unwrap()
            .options
            .since
            .unwrap();
        assert_eq!(since.as_second(), 1_700_000_000);
        assert!(parse("sinceSeconds=1&sinceTime=2023-11-14T22:13:20Z").is_err());
        assert!(parse("sinceTime=yesterday").is_err());
        assert!(parse("tailLines=-1").is_err());
        assert!(parse("limitBytes=0").is_err());
        assert_eq!(parse("").unwrap(), LogRequest::default());
    }
}
