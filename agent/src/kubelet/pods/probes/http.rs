//! A minimal HTTP/1.1 GET for httpGet probes and hooks, from the node to
//! the pod's IP, as kubelet's prober sends it (`User-Agent:
//! kube-probe/1.32`): 200–399 is success.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of a response kubelet reads (10 KiB).
const MAX_RESPONSE: usize = 10 * 1024;

/// Why a GET did not answer with a success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// It answered with a failing status code.
    #[error("HTTP probe failed with statuscode: {0}")]
    Status(u16),
    /// It could not be reached or did not answer in time.
    #[error("Get {url:?}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// Why, as Go's net/http words it.
        reason: String,
    },
}

/// GETs `http://host:port/path` with `headers` within `timeout`.
pub async fn get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<u16, HttpError> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let url = format!("http://{authority}{path}");
    let transport = |reason: String| HttpError::Transport {
        url: url.clone(),
        reason,
    };
    let exchange = async {
        let mut stream = TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("dial tcp {authority}: connect: {}", go_errno(&e)))?;
        let mut request = format!("GET {path} HTTP/1.1\r\n");
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !has("host") {
            request.push_str(&format!("Host: {authority}\r\n"));
        }
        if !has("user-agent") {
            request.push_str("User-Agent: kube-probe/1.32\r\n");
        }
        if !has("accept") {
            request.push_str("Accept: */*\r\n");
        }
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("Connection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        let mut buf = [0u8; 2048];
        while !response.windows(2).any(|w| w == b"\r\n") && response.len() < MAX_RESPONSE {
            let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&response);
        let status = line
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| "malformed HTTP response".to_owned())?;
        Ok::<u16, String>(status)
    };
    let status = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(status)) => status,
        Ok(Err(reason)) => return Err(transport(reason)),
        Err(_) => {
            return Err(transport(
                "context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into(),
            ));
        }
    };
    if (200..400).contains(&status) {
        Ok(status)
    } else {
        Err(HttpError::Status(status))
    }
}

/// An I/O error as Go prints the errno (`connection refused`).
pub fn go_errno(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve(answer: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(answer.as_bytes()).await;
        });
        port
    }

    #[tokio::test]
    async fn statuses_decide_success() {
        let port = serve("HTTP/1.1 204 No Content\r\n\r\n").await;
        assert_eq!(
            get("127.0.0.1", port, "/healthz", &[], Duration::from_secs(2)).await,
            Ok(204)
        );
        let port = serve("HTTP/1.1 500 Oops\r\n\r\n").await;
        assert_eq!(
            get("127.0.0.1", port, "/", &[], Duration::from_secs(2)).await,
            Err(HttpError::Status(500))
        );
        let err = HttpError::Status(500).to_string();
        assert_eq!(err, "HTTP probe failed with statuscode: 500");
    }

    #[tokio::test]
    async fn refused_connections_read_as_go_prints_them() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = get("127.0.0.1", port, "/", &[], Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Get \"http://127.0.0.1:{port}/\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        );
    }
}
