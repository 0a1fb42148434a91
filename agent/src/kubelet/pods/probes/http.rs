//! A minimal HTTP/1.1 GET for httpGet probes and hooks, from the node to
//! the pod's IP, as kubelet's prober sends it (`User-Agent:
//! kube-probe/1.32`): 200–399 is success. HTTPS is spoken without checking
//! the server's certificate, as kubelet's prober does.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use skiff_images::distribution::AcceptAnyServerCert;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

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

/// How the probe talks to the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS, the server's certificate not verified.
    Https,
}

/// A connection, plain or TLS.
trait Connection: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Connection for T {}

/// Redirects to the same host followed at most (Go's client default).
const MAX_REDIRECTS: usize = 10;

/// GETs `<scheme>://host:port/path` with `headers` within `timeout`.
/// Redirects to the same host are followed, as kubelet's prober follows
/// them; a redirect elsewhere is a success (kubelet: "Probe terminated
/// redirects").
pub async fn get(
    scheme: Scheme,
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
    let text = match scheme {
        Scheme::Http => format!("http://{authority}{path}"),
        Scheme::Https => format!("https://{authority}{path}"),
    };
    let start = Url::parse(&text).map_err(|err| HttpError::Transport {
        url: text.clone(),
        reason: format!("invalid URL: {err}"),
    })?;
    let deadline = Instant::now() + timeout;
    let mut url = start.clone();
    let mut redirects = 0;
    loop {
        let transport = |reason: String| HttpError::Transport {
            url: url.to_string(),
            reason,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let (status, location) = match tokio::time::timeout(left, exchange(&url, headers)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(reason)) => return Err(transport(reason)),
            Err(_) => {
                return Err(transport(
                    "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                        .into(),
                ));
            }
        };
        let next = location
            .filter(|_| (300..400).contains(&status))
            .and_then(|location| url.join(&location).ok());
        let Some(next) = next.filter(|next| next.host_str() == start.host_str()) else {
            return if (200..400).contains(&status) {
                Ok(status)
            } else {
                Err(HttpError::Status(status))
            };
        };
        if redirects == MAX_REDIRECTS {
            return Err(HttpError::Transport {
                url: next.to_string(),
                reason: format!("stopped after {MAX_REDIRECTS} redirects"),
            });
        }
        redirects += 1;
        url = next;
    }
}

/// One GET of `url`: its status and `Location` header.
async fn exchange(
    url: &Url,
    headers: &[(String, String)],
) -> Result<(u16, Option<String>), String> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let authority = format!("{host}:{port}");
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let tcp = TcpStream::connect(&authority)
        .await
        .map_err(|e| format!("dial tcp {authority}: connect: {}", go_errno(&e)))?;
    let mut stream: Box<dyn Connection> = if url.scheme() == "https" {
        let name = host.trim_start_matches('[').trim_end_matches(']');
        Box::new(
            tls_connector()?
                .connect(server_name(name)?, tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?,
        )
    } else {
        Box::new(tcp)
    };
    let mut request = format!("GET {target} HTTP/1.1\r\n");
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
    while !response.windows(4).any(|w| w == b"\r\n\r\n") && response.len() < MAX_RESPONSE {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&response);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| "malformed HTTP response".to_owned())?;
    let location = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("location"))
        .map(|(_, value)| value.trim().to_owned());
    Ok((status, location))
}

/// The TLS client of HTTPS probes: any server certificate accepted.
fn tls_connector() -> Result<&'static TlsConnector, String> {
    static CONNECTOR: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("tls: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(provider)))
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(TlsConnector::from(Arc::new(config)))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The name the TLS handshake sends: the IP, or the host name.
fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => ServerName::try_from(host.to_owned())
            .map_err(|e| format!("tls: invalid server name {host:?}: {e}")),
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
            get(
                Scheme::Http,
                "127.0.0.1",
                port,
                "/healthz",
                &[],
                Duration::from_secs(2)
            )
            .await,
            Ok(204)
        );
        let port = serve("HTTP/1.1 500 Oops\r\n\r\n").await;
        assert_eq!(
            get(
                Scheme::Http,
                "127.0.0.1",
                port,
                "/",
                &[],
                Duration::from_secs(2)
            )
            .await,
            Err(HttpError::Status(500))
        );
        let err = HttpError::Status(500).to_string();
        assert_eq!(err, "HTTP probe failed with statuscode: 500");
    }

    #[tokio::test]
    async fn https_is_spoken_without_verifying_the_certificate() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let dir = tempfile::tempdir().unwrap();
        let tls = skiff_server::tls::ClusterTls::load_or_create(dir.path(), &[]).unwrap();
        // Signed by a CA the prober has never seen.
        let pair = tls.serving_for("pod", &["127.0.0.1".into()]).unwrap();
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
                let _ = s.shutdown().await;
            }
        });
        let timeout = Duration::from_secs(5);
        assert_eq!(
            get(Scheme::Https, "127.0.0.1", port, "/", &[], timeout).await,
            Ok(200)
        );
        // Plain HTTP to a TLS port gets no HTTP answer.
        assert!(
            get(Scheme::Http, "127.0.0.1", port, "/", &[], timeout)
                .await
                .is_err()
        );
    }

    /// Answers every request with `answer(path)`.
    async fn serve_paths(answer: fn(&str) -> String) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let _ = s.write_all(answer(&path).as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn redirects_to_the_same_host_are_followed_and_others_end_the_probe() {
        let timeout = Duration::from_secs(2);
        let port = serve_paths(|path| match path {
            "/old" => "HTTP/1.1 301 Moved\r\nLocation: /broken\r\n\r\n".into(),
            "/broken" => "HTTP/1.1 500 Oops\r\n\r\n".into(),
            "/away" => "HTTP/1.1 302 Found\r\nLocation: http://example.invalid/\r\n\r\n".into(),
            "/loop" => "HTTP/1.1 302 Found\r\nlocation: /loop\r\n\r\n".into(),
            _ => "HTTP/1.1 200 OK\r\n\r\n".into(),
        })
        .await;
        let get = |path: &'static str| get(Scheme::Http, "127.0.0.1", port, path, &[], timeout);
        assert_eq!(get("/old").await, Err(HttpError::Status(500)));
        assert_eq!(get("/away").await, Ok(302));
        let err = get("/loop").await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!("Get \"http://127.0.0.1:{port}/loop\": stopped after 10 redirects")
        );
    }

    #[tokio::test]
    async fn refused_connections_read_as_go_prints_them() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = get(
            Scheme::Http,
            "127.0.0.1",
            port,
            "/",
            &[],
            Duration::from_secs(2),
        )
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
