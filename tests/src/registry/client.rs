//! A tiny blocking registry client: raw requests with Basic and Bearer
//! challenge handling, blob and manifest pushes.
//!
//! The harness uses it to seed registries; tests use it to push ad-hoc
//! images or raw manifests. It is deliberately independent of Skiff's own
//! distribution client, which is the code under test.

use std::fmt;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::http::{HttpRequest, HttpResponse, send};
use crate::error::{HarnessError, Result};
use crate::oci::{Digest, ImageSource, media_type, reachable};

/// Every manifest media type, for `Accept`.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.v1+prettyjws";

#[derive(Debug, Clone)]
enum AuthState {
    Anonymous,
    Basic,
    Bearer(String),
}

/// A client for one registry (`http(s)://127.0.0.1:PORT`).
pub struct RegistryClient {
    base: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    credentials: Option<(String, String)>,
    auth: Mutex<AuthState>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .field("tls", &self.tls.is_some())
            .field("credentials", &self.credentials.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl RegistryClient {
    /// A client for `base` (`http://127.0.0.1:5000`), trusting `tls` roots
    /// for https and answering challenges with `credentials`.
    pub fn new(
        base: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        credentials: Option<(String, String)>,
    ) -> RegistryClient {
        RegistryClient {
            base: base.trim_end_matches('/').to_string(),
            tls,
            credentials,
            auth: Mutex::new(AuthState::Anonymous),
        }
    }

    /// Sends a request to `path` (or an absolute URL), answering one auth
    /// challenge if the registry asks. Any status is returned as is.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut retried = false;
        loop {
            let mut all_headers: Vec<(String, String)> = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            if let Some(value) = self.authorization()? {
                all_headers.push(("Authorization".to_string(), value));
            }
            let request = HttpRequest {
                method,
                url: &url,
                headers: all_headers,
                body,
            };
            let response = send(&request, self.tls.as_ref())?;
            if response.status != 401 || retried {
                return Ok(response);
            }
            let Some(challenge) = response.header("www-authenticate").map(str::to_string) else {
                return Ok(response);
            };
            if self.credentials.is_none() && !challenge.starts_with("Bearer") {
                return Ok(response);
            }
            self.answer_challenge(&challenge)?;
            retried = true;
        }
    }

    fn authorization(&self) -> Result<Option<String>> {
        let state = self.auth.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(match state {
            AuthState::Anonymous => None,
            AuthState::Basic => self
                .credentials
                .as_ref()
                .map(|(user, password)| basic_header(user, password)),
            AuthState::Bearer(token) => Some(format!("Bearer {token}")),
        })
    }

    fn answer_challenge(&self, challenge: &str) -> Result<()> {
        let new_state = if let Some(params) = challenge.strip_prefix("Bearer ") {
            AuthState::Bearer(self.fetch_token(&parse_challenge(params))?)
        } else {
            AuthState::Basic
        };
        *self.auth.lock().unwrap_or_else(|e| e.into_inner()) = new_state;
        Ok(())
    }

    /// GETs a token from the challenge's realm with Basic credentials.
    fn fetch_token(&self, params: &[(String, String)]) -> Result<String> {
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let realm = get("realm").ok_or_else(|| HarnessError::MalformedHttp {
            url: self.base.clone(),
            reason: "Bearer challenge without realm".to_string(),
        })?;
        let mut query = Vec::new();
        for key in ["service", "scope"] {
            if let Some(value) = get(key) {
                query.push(format!("{key}={}", percent_encode(value)));
            }
        }
        let url = format!("{realm}?{}", query.join("&"));
        let mut headers = Vec::new();
        if let Some((user, password)) = &self.credentials {
            headers.push(("Authorization".to_string(), basic_header(user, password)));
        }
        let response = send(
            &HttpRequest {
                method: "GET",
                url: &url,
                headers,
                body: &[],
            },
            self.tls.as_ref(),
        )?;
        let response = expect_success("GET", &url, response)?;
        let json: serde_json::Value = serde_json::from_slice(&response.body).map_err(
            crate::error::json_error(format!("token response from {url}")),
        )?;
        json["token"]
            .as_str()
            .or_else(|| json["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| HarnessError::MalformedHttp {
                url,
                reason: "token response has no token".to_string(),
            })
    }

    /// GETs a manifest, accepting every manifest media type.
    pub fn get_manifest(&self, repository: &str, reference: &str) -> Result<HttpResponse> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        self.request("GET", &path, &[("Accept", MANIFEST_ACCEPT)], &[])
    }

    /// GETs a blob.
    pub fn get_blob(&self, repository: &str, digest: &Digest) -> Result<HttpResponse> {
        self.request("GET", &format!("/v2/{repository}/blobs/{digest}"), &[], &[])
    }

    /// True when the registry has the blob in `repository`.
    pub fn blob_exists(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        Ok(self.request("HEAD", &path, &[], &[])?.status == 200)
    }

    /// Uploads a blob monolithically (POST, then PUT with the digest).
    /// The registry refuses bytes that do not match `digest`.
    pub fn push_blob(&self, repository: &str, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let path = format!("/v2/{repository}/blobs/uploads/");
        let started = expect_success("POST", &path, self.request("POST", &path, &[], &[])?)?;
        let location = started
            .header("location")
            .ok_or_else(|| HarnessError::MalformedHttp {
                url: path.clone(),
                reason: "upload started without a Location".to_string(),
            })?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        let headers = [("Content-Type", "application/octet-stream")];
        expect_success("PUT", &put, self.request("PUT", &put, &headers, bytes)?)?;
        Ok(())
    }

    /// PUTs raw manifest bytes with any media type and returns the answer
    /// whatever its status (to test what registries refuse).
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<HttpResponse> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        self.request("PUT", &path, &[("Content-Type", media_type)], bytes)
    }

    /// Pushes everything `source` holds into `repository`: blobs first, then
    /// manifests by digest, then the root by `tag` if given. Returns the
    /// root digest.
    pub fn push(
        &self,
        source: &dyn ImageSource,
        repository: &str,
        tag: Option<&str>,
    ) -> Result<Digest> {
        let root = source.root();
        for desc in reachable(source)? {
            let bytes = source.blob(&desc.digest)?;
            if is_manifest(&desc.media_type) {
                let path = format!("/v2/{repository}/manifests/{}", desc.digest);
                let response =
                    self.put_manifest(repository, desc.digest.as_str(), &desc.media_type, &bytes)?;
                expect_success("PUT", &path, response)?;
            } else if !self.blob_exists(repository, &desc.digest)? {
                self.push_blob(repository, &desc.digest, &bytes)?;
            }
        }
        if let Some(tag) = tag {
            let bytes = source.blob(&root.digest)?;
            let path = format!("/v2/{repository}/manifests/{tag}");
            let response = self.put_manifest(repository, tag, &root.media_type, &bytes)?;
            expect_success("PUT", &path, response)?;
        }
        Ok(root.digest)
    }
}

/// True for manifest and index media types (pushed to `/manifests/`).
pub(crate) fn is_manifest(media_type: &str) -> bool {
    matches!(
        media_type,
        media_type::OCI_MANIFEST
            | media_type::OCI_INDEX
            | media_type::DOCKER_MANIFEST
            | media_type::DOCKER_MANIFEST_LIST
            | media_type::DOCKER_SCHEMA1
            | media_type::DOCKER_SCHEMA1_SIGNED
    )
}

/// `Basic base64(user:password)`.
pub(crate) fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// Turns a non-2xx response into an error.
pub(crate) fn expect_success(
    method: &str,
    url: &str,
    response: HttpResponse,
) -> Result<HttpResponse> {
    if response.is_success() {
        return Ok(response);
    }
    let mut body = response.text();
    body.truncate(500);
    Err(HarnessError::UnexpectedStatus {
        method: method.to_string(),
        url: url.to_string(),
        status: response.status,
        body,
    })
}

/// Parses `key="value",key2="v,2"` (quotes may hide commas).
pub fn parse_challenge(params: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (quoted[..end].to_string(), &quoted[end + 1..]),
                None => (quoted.to_string(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_string(), &after[end..]),
                None => (after.trim().to_string(), ""),
            }
        };
        out.push((key, value));
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` and `+` in a query component.
pub(crate) fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_keep_commas_inside_quotes() {
        let params = parse_challenge(
            r#"realm="http://127.0.0.1:1/token",service="reg",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            params[0],
            ("realm".into(), "http://127.0.0.1:1/token".into())
        );
        assert_eq!(
            params[2],
            ("scope".into(), "repository:a/b:pull,push".into())
        );
    }

    #[test]
    fn percent_encoding_round_trips() {
        let scope = "repository:skiff-test/busybox:pull,push";
        assert_eq!(percent_decode(&percent_encode(scope)), scope);
    }
}
