//! A tiny in-process registry for tests: blocking HTTP/1.1 (optionally TLS)
//! on 127.0.0.1, one thread per connection, one response per connection.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use crate::digest::Digest;

/// A request as the handler sees it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A response; without `length` the body is delimited by closing the connection.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub length: bool,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            length: true,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn error(status: u16, code: &str, message: &str) -> Self {
        let body =
            format!(r#"{{"errors":[{{"code":"{code}","message":"{message}","detail":null}}]}}"#);
        Self::new(status)
            .header("Content-Type", "application/json")
            .body(body)
    }
}

pub(crate) type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// A listening test server (threads live until the test process exits).
pub(crate) struct Server {
    pub addr: SocketAddr,
}

impl Server {
    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

/// Serves plain HTTP.
pub(crate) fn serve(handler: Handler) -> Server {
    listen(move |stream| {
        let mut first = [0u8; 1];
        // A TLS hello to a plain server: hang up, as a confused server would.
        if stream
            .peek(&mut first)
            .map_or(true, |n| n == 0 || first[0] == 0x16)
        {
            return;
        }
        let mut stream = stream;
        exchange(&mut stream, &handler);
    })
}

/// Serves HTTPS with `config`.
pub(crate) fn serve_tls(config: Arc<rustls::ServerConfig>, handler: Handler) -> Server {
    listen(move |stream| {
        let Ok(connection) = rustls::ServerConnection::new(config.clone()) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(connection, stream);
        exchange(&mut tls, &handler);
        tls.conn.send_close_notify();
        let _ = tls.flush();
    })
}

fn listen(on_connection: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let on_connection = Arc::new(on_connection);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let on_connection = on_connection.clone();
            std::thread::spawn(move || on_connection(stream));
        }
    });
    Server { addr }
}

fn exchange(stream: &mut (impl Read + Write), handler: &Handler) {
    let Some(request) = read_request(stream) else {
        return;
    };
    let response = handler(&request);
    let _ = write_response(stream, &response);
}

fn read_request(stream: &mut impl Read) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = reqwest::Url::parse(&format!("http://x/?{query}"))
        .ok()?
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Some(Request {
        method,
        path: path.to_owned(),
        query,
        headers,
        body,
    })
}

fn write_response(stream: &mut impl Write, response: &Response) -> std::io::Result<()> {
    let reason = reqwest::StatusCode::from_u16(response.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Status");
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nConnection: close\r\n",
        response.status
    );
    if response.length {
        head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}

/// How the fake registry wants clients to authenticate.
#[derive(Debug, Clone, Default)]
pub(crate) enum AuthMode {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// Docker's token protocol with a token server at `/token` on the same host.
    Bearer {
        basic: Option<(String, String)>,
        refresh_token: Option<String>,
    },
}

const TOKEN: &str = "fake-token";

/// Registry behaviour a test can change while it runs.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    pub auth: AuthMode,
    /// The API root requests arrive under.
    pub prefix: Option<String>,
    pub ignore_range: bool,
    /// Announce this as `Docker-Content-Digest` instead of the real digest.
    pub announce_digest: Option<String>,
    /// Send blobs without Content-Length (close-delimited).
    pub blobs_without_length: bool,
    /// Redirect blob GETs to this base URL (`<base>/<digest>`).
    pub redirect_blobs: Option<String>,
    /// Answer every request with this status and a JSON error.
    pub fail_with: Option<u16>,
}

/// Manifests by (repository, tag or digest): media type and bytes.
type Manifests = HashMap<(String, String), (String, Vec<u8>)>;

/// A distribution API over in-memory manifests and blobs.
#[derive(Debug, Default)]
pub(crate) struct FakeRegistry {
    pub settings: Mutex<Settings>,
    manifests: Mutex<Manifests>,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    pub log: Mutex<Vec<Request>>,
    pub token_requests: AtomicUsize,
}

impl FakeRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Serves this registry over plain HTTP.
    pub fn serve(self: &Arc<Self>) -> Server {
        let this = self.clone();
        serve(Arc::new(move |r: &Request| this.handle(r)))
    }

    pub fn set(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.settings.lock().unwrap());
    }

    /// Stores a manifest under its digest and, if given, a tag.
    pub fn put_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        media_type: &str,
        body: &[u8],
    ) -> Digest {
        let digest = Digest::sha256_of(body);
        let mut manifests = self.manifests.lock().unwrap();
        let entry = (media_type.to_owned(), body.to_vec());
        manifests.insert((repo.to_owned(), digest.to_string()), entry.clone());
        if let Some(tag) = tag {
            manifests.insert((repo.to_owned(), tag.to_owned()), entry);
        }
        digest
    }

    /// Stores bytes under any key, e.g. a digest they do not match.
    pub fn put_manifest_raw(&self, repo: &str, key: &str, media_type: &str, body: &[u8]) {
        self.manifests.lock().unwrap().insert(
            (repo.to_owned(), key.to_owned()),
            (media_type.to_owned(), body.to_vec()),
        );
    }

    pub fn put_blob(&self, digest: &str, body: &[u8]) {
        self.blobs
            .lock()
            .unwrap()
            .insert(digest.to_owned(), body.to_vec());
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    pub fn handle(&self, request: &Request) -> Response {
        self.log.lock().unwrap().push(request.clone());
        let settings = self.settings.lock().unwrap();
        if let Some(status) = settings.fail_with {
            return Response::error(status, "UNAVAILABLE", "try again later");
        }
        if request.path == "/token" {
            return self.token(request, &settings.auth);
        }
        if let Err(refusal) = authorize(request, &settings.auth) {
            return refusal;
        }
        let prefix = settings.prefix.clone().unwrap_or_else(|| "/v2/".to_owned());
        let Some(rest) = request.path.strip_prefix(&prefix) else {
            return Response::error(404, "NOT_FOUND", "no such route");
        };
        if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
            let manifests = self.manifests.lock().unwrap();
            let Some((media_type, body)) = manifests.get(&(repo.to_owned(), reference.to_owned()))
            else {
                return Response::error(404, "MANIFEST_UNKNOWN", "manifest unknown");
            };
            let digest = settings
                .announce_digest
                .clone()
                .unwrap_or_else(|| Digest::sha256_of(body).to_string());
            return Response::new(200)
                .header("Content-Type", media_type)
                .header("Docker-Content-Digest", &digest)
                .body(body.clone());
        }
        if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
            if let Some(base) = &settings.redirect_blobs {
                return Response::new(307).header("Location", &format!("{base}/{digest}"));
            }
            let blobs = self.blobs.lock().unwrap();
            let Some(body) = blobs.get(digest) else {
                return Response::error(404, "BLOB_UNKNOWN", "blob unknown to registry");
            };
            return blob_response(
                request,
                body,
                settings.ignore_range,
                settings.blobs_without_length,
            );
        }
        Response::error(404, "NOT_FOUND", "no such route")
    }

    fn token(&self, request: &Request, auth: &AuthMode) -> Response {
        self.token_requests.fetch_add(1, Ordering::SeqCst);
        let AuthMode::Bearer {
            basic,
            refresh_token,
        } = auth
        else {
            return Response::new(404);
        };
        let refused = || Response::new(401).body(r#"{"details":"incorrect username or password"}"#);
        if request.method == "POST" {
            let form: HashMap<String, String> = reqwest::Url::parse(&format!(
                "http://x/?{}",
                String::from_utf8_lossy(&request.body)
            ))
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
            let ok = form.get("grant_type").map(String::as_str) == Some("refresh_token")
                && form.get("refresh_token") == refresh_token.as_ref();
            if !ok {
                return refused();
            }
            return Response::new(200)
                .body(format!(r#"{{"access_token":"{TOKEN}","expires_in":300}}"#));
        }
        if let Some((user, password)) = basic
            && basic_credentials(request) != Some((user.clone(), password.clone()))
        {
            return refused();
        }
        Response::new(200).body(format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#))
    }
}

/// A blob body honouring `Range: bytes=N-` unless told to ignore it.
pub(crate) fn blob_response(
    request: &Request,
    body: &[u8],
    ignore_range: bool,
    without_length: bool,
) -> Response {
    let start = request
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let mut response = match start {
        Some(start) if !ignore_range && start < body.len() => Response::new(206)
            .header(
                "Content-Range",
                &format!("bytes {start}-{}/{}", body.len() - 1, body.len()),
            )
            .body(&body[start..]),
        _ => Response::new(200).body(body),
    };
    response = response.header("Content-Type", "application/octet-stream");
    response.length = !without_length;
    response
}

fn basic_credentials(request: &Request) -> Option<(String, String)> {
    let encoded = request.header("authorization")?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn authorize(request: &Request, auth: &AuthMode) -> Result<(), Response> {
    let unauthorized = |challenge: String| {
        Err(
            Response::error(401, "UNAUTHORIZED", "authentication required")
                .header("WWW-Authenticate", &challenge),
        )
    };
    match auth {
        AuthMode::Anonymous => Ok(()),
        AuthMode::Basic { username, password } => {
            if basic_credentials(request) == Some((username.clone(), password.clone())) {
                Ok(())
            } else {
                unauthorized(r#"Basic realm="fake""#.to_owned())
            }
        }
        AuthMode::Bearer { .. } => {
            if request.header("authorization") == Some(&format!("Bearer {TOKEN}")) {
                return Ok(());
            }
            let host = request.header("host").unwrap_or("127.0.0.1");
            let repo = request
                .path
                .trim_start_matches("/v2/")
                .split("/manifests/")
                .next()
                .and_then(|r| r.split("/blobs/").next())
                .unwrap_or_default()
                .to_owned();
            unauthorized(format!(
                r#"Bearer realm="http://{host}/token",service="fake-registry",scope="repository:{repo}:pull""#
            ))
        }
    }
}
