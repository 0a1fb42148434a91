//! A token server for docker-registry's `auth: token:` mode.
//!
//! Clients that get `401` with `WWW-Authenticate: Bearer realm=...` ask the
//! realm for a JWT: `GET /token?service=..&scope=..` with Basic credentials,
//! or `POST /token` with an OAuth2 form (`grant_type=password` or
//! `refresh_token`). The JWT is ES256-signed and names its signing
//! certificate in `x5c`; the registry checks that chain against its
//! `rootcertbundle` (the token CA of [`TestPki`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

use super::client::percent_decode;
use super::pki::TestPki;
use crate::error::{HarnessError, Result};

/// How long issued tokens are valid.
const TOKEN_LIFETIME_SECS: u64 = 300;

struct TokenState {
    service: String,
    issuer: String,
    credentials: (String, String),
    signer_der: Vec<u8>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    requests: AtomicUsize,
    issued: AtomicUsize,
    refresh_tokens: Mutex<Vec<String>>,
}

/// The running token server; stopped on drop.
pub struct TokenServer {
    addr: SocketAddr,
    state: Arc<TokenState>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("addr", &self.addr)
            .field("service", &self.state.service)
            .finish()
    }
}

impl TokenServer {
    /// Starts serving on 127.0.0.1 (a free port); accepts only `credentials`.
    pub fn start(pki: &TestPki, credentials: (String, String)) -> Result<TokenServer> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pki.token_signer_pkcs8,
            &rng,
        )
        .map_err(|e| HarnessError::Crypto(format!("loading the token signing key: {e}")))?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(crate::error::io_error("bind", "127.0.0.1:0 (token server)"))?;
        let addr = listener.local_addr().map_err(crate::error::io_error(
            "read address of",
            "token server socket",
        ))?;
        let state = Arc::new(TokenState {
            service: "skiff-test-registry".to_string(),
            issuer: "skiff-test-token-issuer".to_string(),
            credentials,
            signer_der: pki.token_signer_der.clone(),
            key,
            rng,
            requests: AtomicUsize::new(0),
            issued: AtomicUsize::new(0),
            refresh_tokens: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("skiff-token-server".to_string())
                .spawn(move || serve(listener, state, stop))
                .map_err(|source| HarnessError::Spawn {
                    program: "token server thread".to_string(),
                    source,
                })?
        };
        Ok(TokenServer {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// The realm URL the registry sends clients to.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The `service` (JWT audience) the registry expects.
    pub fn service(&self) -> &str {
        &self.state.service
    }

    /// The JWT issuer the registry trusts.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// How many requests reached `/token` (granted or not).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: TcpListener, state: Arc<TokenState>, stop: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let state = Arc::clone(&state);
        // One thread per connection so a slow client cannot stall others.
        let _ = std::thread::Builder::new()
            .name("skiff-token-conn".to_string())
            .spawn(move || {
                if let Err(error) = handle(stream, &state) {
                    tracing::debug!(%error, "token server connection failed");
                }
            });
    }
}

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    authorization: Option<String>,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut authorization = None;
    let mut content_length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim().to_string();
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value);
            } else if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; content_length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Ok(Request {
        method,
        path: path.to_string(),
        query: parse_form(query),
        authorization,
        body,
    })
}

fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn handle(mut stream: TcpStream, state: &TokenState) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = read_request(&stream)?;
    let (status, body) = respond(&request, state);
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 401 {
        head.push_str("WWW-Authenticate: Basic realm=\"skiff-test-token\"\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

fn error_body(message: &str) -> String {
    json!({ "errors": [{ "code": "UNAUTHORIZED", "message": message }] }).to_string()
}

fn respond(request: &Request, state: &TokenState) -> (u16, String) {
    if request.path != "/token" {
        return (404, error_body("not found"));
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    let (params, user, oauth) = match request.method.as_str() {
        "GET" => {
            let user = request
                .authorization
                .as_deref()
                .and_then(|h| h.strip_prefix("Basic "))
                .and_then(|b| STANDARD.decode(b.trim()).ok())
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|pair| {
                    pair.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                })
                .filter(|creds| *creds == state.credentials)
                .map(|(u, _)| u);
            (request.query.clone(), user, false)
        }
        "POST" => {
            let form = parse_form(&String::from_utf8_lossy(&request.body));
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let user = match get("grant_type").as_deref() {
                Some("password") => {
                    let creds = (
                        get("username").unwrap_or_default(),
                        get("password").unwrap_or_default(),
                    );
                    (creds == state.credentials).then_some(creds.0)
                }
                Some("refresh_token") => {
                    let token = get("refresh_token").unwrap_or_default();
                    let known = state
                        .refresh_tokens
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    known.contains(&token).then(|| state.credentials.0.clone())
                }
                _ => return (400, error_body("unsupported grant_type")),
            };
            (form, user, true)
        }
        _ => return (404, error_body("method not allowed")),
    };
    let Some(user) = user else {
        return (401, error_body("invalid credentials"));
    };
    let service = params
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.as_str());
    if service.is_some_and(|s| s != state.service) {
        return (400, error_body("unknown service"));
    }
    // GET repeats `scope=`; the OAuth2 form joins scopes with spaces.
    let scopes: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' '))
        .filter(|s| !s.is_empty())
        .collect();
    let token = match issue(state, &user, &scopes) {
        Ok(token) => token,
        Err(error) => return (500, error_body(&error.to_string())),
    };
    state.issued.fetch_add(1, Ordering::SeqCst);
    let mut body = json!({
        "token": token,
        "access_token": token,
        "expires_in": TOKEN_LIFETIME_SECS,
        "issued_at": rfc3339(now()),
    });
    if oauth {
        let refresh = random_hex(state, 16);
        state
            .refresh_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(refresh.clone());
        body["refresh_token"] = json!(refresh);
        body["scope"] = json!(scopes.join(" "));
    }
    (200, body.to_string())
}

/// `repository:name:pull,push` -> `{type, name, actions}`; names may
/// contain `:` only in the middle part.
fn access_entry(scope: &str) -> Option<Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let kind = kind.split('(').next().unwrap_or(kind);
    Some(json!({
        "type": kind,
        "name": name,
        "actions": actions.split(',').filter(|a| !a.is_empty()).collect::<Vec<_>>(),
    }))
}

fn issue(state: &TokenState, user: &str, scopes: &[&str]) -> Result<String> {
    let now = now();
    let header = json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [STANDARD.encode(&state.signer_der)],
    });
    let claims = json!({
        "iss": state.issuer,
        "sub": user,
        // docker distribution 2.8 reads `aud` as a single string.
        "aud": state.service,
        "exp": now + TOKEN_LIFETIME_SECS,
        "nbf": now.saturating_sub(10),
        "iat": now,
        "jti": random_hex(state, 16),
        "access": scopes.iter().filter_map(|s| access_entry(s)).collect::<Vec<_>>(),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = state
        .key
        .sign(&state.rng, signing_input.as_bytes())
        .map_err(|e| HarnessError::Crypto(format!("signing a registry token: {e}")))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

fn random_hex(state: &TokenState, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // SystemRandom only fails if the OS has no randomness at all.
    let _ = state.rng.fill(&mut buf);
    hex::encode(buf)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (proleptic Gregorian), era-based.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        (rem % 3_600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_the_fixture_epoch() {
        assert_eq!(
            rfc3339(crate::oci::EPOCH_SECONDS),
            crate::oci::EPOCH_RFC3339
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn scopes_become_access_entries() {
        let entry = access_entry("repository:skiff-test/busybox:pull,push");
        assert_eq!(
            entry,
            Some(
                json!({"type": "repository", "name": "skiff-test/busybox", "actions": ["pull", "push"]})
            )
        );
        assert_eq!(
            access_entry("registry:catalog:*").map(|e| e["name"].clone()),
            Some(json!("catalog"))
        );
    }
}
