//! Registry authentication: credentials, `WWW-Authenticate` challenges, and
//! the bearer tokens of docker's token protocol, cached until they expire.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::digest::Digest;
use crate::registries::AuthConfig;

use super::RegistryError;

/// Tokens live at least this long when the server does not say (docker's token spec).
const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Renew a little before the server's expiry, so a token never dies in flight.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// Credentials for one registry, from a CRI pull request or `registries.yaml`.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A username and password, sent as HTTP basic auth or to the token server.
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token exchanged for access tokens at the token server.
    IdentityToken(String),
    /// A bearer token sent to the registry as it is.
    RegistryToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Self::RegistryToken(_) => f.write_str("RegistryToken(<redacted>)"),
        }
    }
}

impl Credentials {
    /// Credentials from the fields of a `registries.yaml` `auth` block (or a
    /// CRI `AuthConfig`, which has the same fields): username/password win,
    /// then an identity token, then base64 `auth`, then a registry token.
    /// `None` when no field is set.
    pub fn from_auth_config(auth: &AuthConfig) -> Result<Option<Self>, RegistryError> {
        let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        if let Some(username) = non_empty(&auth.username) {
            let password = auth.password.clone().unwrap_or_default();
            return Ok(Some(Self::Basic { username, password }));
        }
        if let Some(token) = non_empty(&auth.identity_token) {
            return Ok(Some(Self::IdentityToken(token)));
        }
        if let Some(encoded) = non_empty(&auth.auth) {
            return Self::from_base64(&encoded).map(Some);
        }
        Ok(non_empty(&auth.token).map(Self::RegistryToken))
    }

    /// Decodes docker's `auth` field: base64 of `username:password`.
    pub fn from_base64(encoded: &str) -> Result<Self, RegistryError> {
        let invalid = |why: &str| RegistryError::InvalidCredentials {
            message: format!("auth must be base64 of username:password: {why}"),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| invalid(&e.to_string()))?;
        let text = String::from_utf8(decoded).map_err(|_| invalid("not UTF-8"))?;
        let (username, password) = text.split_once(':').ok_or_else(|| invalid("no ':'"))?;
        Ok(Self::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }

    /// A value that tells credentials apart in cache keys without holding them.
    pub(crate) fn fingerprint(&self) -> String {
        let text = match self {
            Self::Basic { username, password } => format!("basic\0{username}\0{password}"),
            Self::IdentityToken(t) => format!("identity\0{t}"),
            Self::RegistryToken(t) => format!("registry\0{t}"),
        };
        Digest::sha256_of(text.as_bytes()).short().to_owned()
    }

    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Self::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            _ => None,
        }
    }
}

/// One challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// HTTP basic auth.
    Basic,
    /// Docker's token protocol.
    Bearer {
        /// The token server URL.
        realm: String,
        /// The `service` to name at the token server.
        service: Option<String>,
        /// The scope the registry asked for, if it said.
        scope: Option<String>,
    },
}

/// Parses `WWW-Authenticate` values; several challenges may share one value
/// (`Basic realm="x", Bearer realm="y",service="z"`). Unknown schemes are skipped.
pub(crate) fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in values {
        for (scheme, params) in split_challenges(value) {
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            match scheme.to_ascii_lowercase().as_str() {
                "basic" => out.push(Challenge::Basic),
                "bearer" => {
                    if let Some(realm) = param("realm") {
                        out.push(Challenge::Bearer {
                            realm,
                            service: param("service"),
                            scope: param("scope"),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    out
}

type Params = Vec<(String, String)>;

/// A small tokenizer for RFC 7235 challenges: `scheme k=v, k="quoted", scheme2 ...`.
fn split_challenges(value: &str) -> Vec<(String, Params)> {
    let mut out: Vec<(String, Params)> = Vec::new();
    let chars: Vec<char> = value.chars().collect();
    let mut i = 0;
    let skip_ws_commas = |i: &mut usize| {
        while *i < chars.len() && (chars[*i].is_whitespace() || chars[*i] == ',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && !chars[*i].is_whitespace() && !matches!(chars[*i], ',' | '=') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    loop {
        skip_ws_commas(&mut i);
        if i >= chars.len() {
            break;
        }
        let word = token(&mut i);
        let mut j = i;
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        if j < chars.len() && chars[j] == '=' && !out.is_empty() {
            // A parameter of the current challenge.
            i = j + 1;
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
            let value = if i < chars.len() && chars[i] == '"' {
                i += 1;
                let mut v = String::new();
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    v.push(chars[i]);
                    i += 1;
                }
                i += 1;
                v
            } else {
                token(&mut i)
            };
            if let Some((_, params)) = out.last_mut() {
                params.push((word, value));
            }
        } else if !word.is_empty() {
            out.push((word, Vec::new()));
        } else {
            i += 1;
        }
    }
    out
}

/// A token server's answer (docker's token spec; OAuth2 servers use `access_token`).
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long to keep using it.
    pub(crate) fn into_token(self) -> Option<(String, Duration)> {
        let token = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        let lifetime = self
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(MIN_TOKEN_LIFETIME)
            .max(MIN_TOKEN_LIFETIME);
        Some((token, lifetime.saturating_sub(TOKEN_EXPIRY_MARGIN)))
    }
}

/// Where a token may be reused: one endpoint, one repository, one set of credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub endpoint: String,
    pub repository: String,
    pub credentials: Option<String>,
}

/// Bearer tokens and the endpoints known to want basic auth, shared by every
/// clone of a client.
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    tokens: Mutex<HashMap<TokenKey, (String, Instant)>>,
    basic_endpoints: Mutex<HashSet<String>>,
}

impl AuthCache {
    /// A token that has not expired yet.
    pub(crate) fn token(&self, key: &TokenKey) -> Option<String> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        match tokens.get(key) {
            Some((token, expires)) if Instant::now() < *expires => Some(token.clone()),
            Some(_) => {
                tokens.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn store_token(&self, key: TokenKey, token: String, lifetime: Duration) {
        let expires = Instant::now() + lifetime;
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, (_, e)| Instant::now() < *e);
        tokens.insert(key, (token, expires));
    }

    pub(crate) fn wants_basic(&self, endpoint: &str) -> bool {
        self.basic_endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(endpoint)
    }

    pub(crate) fn remember_basic(&self, endpoint: &str) {
        self.basic_endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(endpoint.to_owned());
    }
}

/// `application/x-www-form-urlencoded` text for the token POST (reqwest's
/// `form` feature is not enabled; the URL serializer does the same encoding).
pub(crate) fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://form.invalid/").expect("static URL parses");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_bearer_challenge() {
        let got = parse_challenges([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        ]);
        assert_eq!(
            got,
            [Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            }]
        );
    }

    #[test]
    fn several_challenges_odd_spacing_and_escapes() {
        let got = parse_challenges([
            r#"Basic realm="Registry Realm", bearer  realm = "https://t.example/tok\"en" , service=svc"#,
            "Negotiate",
            "Bearer service=\"no realm\"",
        ]);
        assert_eq!(
            got,
            [
                Challenge::Basic,
                Challenge::Bearer {
                    realm: "https://t.example/tok\"en".into(),
                    service: Some("svc".into()),
                    scope: None,
                },
            ]
        );
        assert_eq!(parse_challenges(["Basic"]), [Challenge::Basic]);
        assert!(parse_challenges([""]).is_empty());
    }

    #[test]
    fn credentials_from_registries_yaml_fields() {
        let auth = |f: fn(&mut AuthConfig)| {
            let mut a = AuthConfig::default();
            f(&mut a);
            Credentials::from_auth_config(&a).unwrap()
        };
        assert_eq!(auth(|_| {}), None);
        assert_eq!(
            auth(|a| {
                a.username = Some("u".into());
                a.password = Some("p".into());
                a.identity_token = Some("ignored".into());
            }),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(
            auth(|a| a.auth = Some("dTpwOmFzcw==".into())),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "p:ass".into()
            })
        );
        assert_eq!(
            auth(|a| a.identity_token = Some("refresh".into())),
            Some(Credentials::IdentityToken("refresh".into()))
        );
        assert_eq!(
            auth(|a| a.token = Some("bearer".into())),
            Some(Credentials::RegistryToken("bearer".into()))
        );
        let bad = AuthConfig {
            auth: Some("!!!".into()),
            ..Default::default()
        };
        assert!(Credentials::from_auth_config(&bad).is_err());
        let no_colon = AuthConfig {
            auth: Some("dXNlcg==".into()),
            ..Default::default()
        };
        assert!(
            Credentials::from_auth_config(&no_colon)
                .unwrap_err()
                .to_string()
                .contains("':'")
        );
    }

    #[test]
    fn token_lifetimes_have_a_floor_and_a_margin() {
        let parse = |json: &str| {
            serde_json::from_str::<TokenResponse>(json)
                .unwrap()
                .into_token()
        };
        assert_eq!(
            parse(r#"{"token":"t","expires_in":300}"#),
            Some(("t".into(), Duration::from_secs(290)))
        );
        assert_eq!(
            parse(r#"{"access_token":"a","expires_in":5}"#),
            Some(("a".into(), Duration::from_secs(50)))
        );
        assert_eq!(
            parse(r#"{"token":"t"}"#),
            Some(("t".into(), Duration::from_secs(50)))
        );
        assert_eq!(parse(r#"{"token":""}"#), None);
    }

    #[test]
    fn cache_forgets_expired_tokens() {
        let cache = AuthCache::default();
        let key = TokenKey {
            endpoint: "e".into(),
            repository: "r".into(),
            credentials: None,
        };
        cache.store_token(key.clone(), "t".into(), Duration::from_secs(60));
        assert_eq!(cache.token(&key).as_deref(), Some("t"));
        cache.store_token(key.clone(), "old".into(), Duration::ZERO);
        assert_eq!(cache.token(&key), None);
        let other = TokenKey {
            credentials: Some("x".into()),
            ..key
        };
        assert_eq!(cache.token(&other), None);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::IdentityToken("tok".into())).contains("tok"));
        assert_eq!(
            form_encode(&[("a", "b c"), ("s", "x:y/z")]),
            "a=b+c&s=x%3Ay%2Fz"
        );
    }
}
