//! gRPC probes: `grpc.health.v1.Health/Check` on the pod's IP, over plain
//! HTTP/2 as kubelet's prober calls it (`User-Agent: kube-probe/1.32`),
//! with its wording of every failure. Success is `SERVING`.

use std::time::Duration;

use tonic::Code;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Checks `service` ("" for the whole server) at `host:port` within
/// `timeout`; Err says why it is not healthy.
pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Result<(), String> {
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let seconds = format!("{}s", timeout.as_secs());
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .and_then(|e| e.user_agent("kube-probe/1.32"))
        .map_err(|err| format!("error: failed to connect service at {address:?}: {err}"))?
        .connect_timeout(timeout);
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(err)) => {
            return Err(format!(
                "error: failed to connect service at {address:?}: {}",
                error_chain(&err)
            ));
        }
        Err(_) => {
            return Err(format!(
                "timeout: failed to connect service {address:?} within {seconds}: context deadline exceeded"
            ));
        }
    };
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let mut client = HealthClient::new(channel);
    let call = client.check(request);
    let response = match tokio::time::timeout(timeout, call).await {
        Err(_) => {
            return Err(format!(
                "timeout: health rpc did not complete within {seconds}"
            ));
        }
        Ok(Err(status)) => {
            return Err(match status.code() {
                Code::Unimplemented => format!(
                    "this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                    status.message()
                ),
                Code::DeadlineExceeded => {
                    format!("timeout: health rpc did not complete within {seconds}")
                }
                code => format!(
                    "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                    status.message()
                ),
            });
        }
        Ok(Ok(response)) => response.into_inner(),
    };
    match ServingStatus::try_from(response.status) {
        Ok(ServingStatus::Serving) => Ok(()),
        Ok(other) => Err(format!(
            "service unhealthy (responded with {:?})",
            other.as_str_name()
        )),
        Err(_) => Err(format!(
            "service unhealthy (responded with \"{}\")",
            response.status
        )),
    }
}

/// An error with its causes, as Go's `%+v` of a wrapped error reads.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::wrappers::TcpListenerStream;

    async fn serve(status: tonic_health::ServingStatus) -> u16 {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter.set_service_status("", status).await;
        reporter.set_service_status("app", status).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        port
    }

    #[tokio::test]
    async fn serving_passes_and_other_answers_fail_as_kubelet_words_them() {
        let timeout = Duration::from_secs(2);
        let port = serve(tonic_health::ServingStatus::Serving).await;
        check("127.0.0.1", port, "", timeout).await.unwrap();
        check("127.0.0.1", port, "app", timeout).await.unwrap();
        let err = check("127.0.0.1", port, "other", timeout)
            .await
            .unwrap_err();
        assert!(
            err.starts_with("error: health rpc probe failed: rpc error: code = NotFound"),
            "{err}"
        );

        let port = serve(tonic_health::ServingStatus::NotServing).await;
        let err = check("127.0.0.1", port, "", timeout).await.unwrap_err();
        assert_eq!(err, "service unhealthy (responded with \"NOT_SERVING\")");
    }

    #[tokio::test]
    async fn a_closed_port_fails_to_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = check("127.0.0.1", port, "", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            err.starts_with(&format!(
                "error: failed to connect service at \"127.0.0.1:{port}\""
            )),
            "{err}"
        );
    }
}
