//! `/etc/skiff/registries.yaml`: registry mirrors, rewrites, credentials and
//! TLS settings, read exactly as k3s reads `/etc/rancher/k3s/registries.yaml`.
//!
//! For a registry host the endpoints tried are its mirror's endpoints in order
//! (the `"*"` mirror's when it has no entry of its own), then the registry
//! itself (`https://<host>/v2`; `https://registry-1.docker.io/v2` for
//! docker.io). Rewrites apply to mirror endpoints only. A mirror endpoint with
//! a path other than `/v2` uses that path as its API root, as k3s (containerd
//! `override_path`) does, so `https://harbor.example.com/v2/proxy-hub` works.
//! A registry on the loopback interface is also tried over plain HTTP, as
//! containerd does.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use regex::Regex;
use reqwest::Url;
use serde::{Deserialize, Deserializer};

/// Where Skiff reads registry configuration by default.
pub const DEFAULT_REGISTRIES_PATH: &str = "/etc/skiff/registries.yaml";
/// The `mirrors`/`configs` key that applies to registries without their own.
pub const WILDCARD: &str = "*";
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ENDPOINT_HOST: &str = "registry-1.docker.io";
const DOCKER_HUB_ALIASES: [&str; 2] = ["registry-1.docker.io", "index.docker.io"];

/// Why registry configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    /// The file exists but could not be read.
    #[error("cannot read registries config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not valid YAML of the expected shape, or a value in it is wrong.
    #[error("invalid registries config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and where.
        message: String,
    },
    /// A `configs.<host>.tls` setting cannot be used (unreadable or bad PEM file, ...).
    #[error("registries config: tls settings for {key:?}: {message}")]
    Tls {
        /// The `configs` key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole registries file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistriesConfig {
    /// Mirrors by registry host (or `"*"`).
    #[serde(default, deserialize_with = "nullable_map")]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Credentials and TLS settings by endpoint host[:port] (or `"*"`).
    #[serde(default, deserialize_with = "nullable_map")]
    pub configs: BTreeMap<String, RegistryConfig>,
    /// Never fall back to a registry's own endpoint when it has a mirror entry
    /// (k3s `--disable-default-registry-endpoint`; not read from the file).
    #[serde(skip)]
    pub disable_default_endpoint: bool,
}

/// One `mirrors.<registry>` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Mirror {
    /// Endpoint URLs, tried in order.
    #[serde(default, deserialize_with = "nullable")]
    pub endpoint: Vec<String>,
    /// Repository rewrites for the mirror endpoints, in file order.
    #[serde(default, deserialize_with = "ordered_rewrites")]
    pub rewrite: Vec<Rewrite>,
}

/// A repository rewrite: a regular expression and its replacement (`$1`...).
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// The pattern matched against the repository (e.g. `^rancher/(.*)`).
    pub pattern: Regex,
    /// The replacement, with `$1`-style group references.
    pub replacement: String,
}

/// One `configs.<host>` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistryConfig {
    /// Credentials for the host.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS settings for the host.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// `configs.<host>.auth`: username/password, a base64 `user:pass`, an
/// identity (refresh) token or a registry bearer token.
#[derive(Clone, Default, Deserialize)]
pub struct AuthConfig {
    /// Basic auth user.
    pub username: Option<String>,
    /// Basic auth password.
    pub password: Option<String>,
    /// Base64 of `username:password`, as in docker's config.json.
    pub auth: Option<String>,
    /// An OAuth2 refresh token exchanged at the token server.
    pub identity_token: Option<String>,
    /// A bearer token sent to the registry as is.
    pub token: Option<String>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &set(&self.password))
            .field("auth", &set(&self.auth))
            .field("identity_token", &set(&self.identity_token))
            .field("token", &set(&self.token))
            .finish()
    }
}

/// `configs.<host>.tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TlsConfig {
    /// PEM CA certificates trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One place to try an image: a mirror or the registry itself.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The API root: requests go to `<url>/<repository>/manifests/<ref>`.
    pub url: Url,
    /// host[:port] as written, the key `configs` are looked up by.
    pub host: String,
    /// The registry whose images this endpoint serves (e.g. `docker.io`).
    pub registry: String,
    /// Whether this is a mirror rather than the registry's own endpoint.
    pub mirror: bool,
    /// The `configs` key that applies to this endpoint, if any.
    pub config_key: Option<String>,
    /// An implicit plain-HTTP attempt at a loopback registry: when every
    /// endpoint fails, its error is the least interesting.
    pub plain_http_fallback: bool,
    rewrites: Vec<Rewrite>,
}

impl Endpoint {
    /// The repository to ask this endpoint for: the first rewrite that changes
    /// the name wins; the registry's own endpoint never rewrites.
    pub fn repository(&self, repository: &str) -> String {
        self.rewrites
            .iter()
            .map(|r| {
                r.pattern
                    .replace_all(repository, r.replacement.as_str())
                    .into_owned()
            })
            .find(|rewritten| rewritten != repository)
            .unwrap_or_else(|| repository.to_owned())
    }

    /// `<root>/<repository>/manifests/<target>` (with `?ns=<registry>` on mirrors,
    /// as containerd sends it, so pull-through caches know the upstream).
    pub fn manifest_url(&self, repository: &str, target: &str) -> Url {
        self.api_url(&format!("{repository}/manifests/{target}"))
    }

    /// `<root>/<repository>/blobs/<digest>`.
    pub fn blob_url(&self, repository: &str, digest: &str) -> Url {
        self.api_url(&format!("{repository}/blobs/{digest}"))
    }

    fn api_url(&self, path: &str) -> Url {
        let mut url = self.url.clone();
        let root = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{root}/{path}"));
        if self.mirror {
            url.query_pairs_mut().append_pair("ns", &self.registry);
        }
        url
    }

    /// Whether the applicable `configs` entry names this endpoint's host
    /// (rather than being the `"*"` default).
    pub fn has_own_config(&self) -> bool {
        self.config_key.as_deref().is_some_and(|k| k != WILDCARD)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str().trim_end_matches('/'))
    }
}

impl RegistriesConfig {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<Self, RegistriesError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let config = Self::from_yaml(&text, path)?;
                tracing::info!(path = %path.display(), mirrors = config.mirrors.len(), configs = config.configs.len(), "using registries config");
                Ok(config)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!(path = %path.display(), "no registries config; using registry defaults");
                Ok(Self::default())
            }
            Err(source) => Err(RegistriesError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses registries YAML; `path` names the source in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, RegistriesError> {
        let invalid = |message: String| RegistriesError::Invalid {
            path: path.to_owned(),
            message,
        };
        let config: Option<Self> =
            serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let config = config.unwrap_or_default();
        for (registry, mirror) in &config.mirrors {
            for (i, raw) in mirror.endpoint.iter().enumerate() {
                parse_endpoint(raw).map_err(|reason| {
                    invalid(format!(
                        "mirrors.{registry:?}.endpoint[{i}]: invalid endpoint {raw:?}: {reason}"
                    ))
                })?;
            }
        }
        Ok(config)
    }

    /// Sets [`Self::disable_default_endpoint`].
    pub fn with_default_endpoint_disabled(mut self, disabled: bool) -> Self {
        self.disable_default_endpoint = disabled;
        self
    }

    /// The endpoints to try for images of `registry` (host[:port]), in order.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mirror = self.mirror_for(registry);
        let default = default_endpoint(registry);
        let mut out: Vec<Endpoint> = Vec::new();
        for raw in mirror.map(|m| m.endpoint.as_slice()).unwrap_or_default() {
            // Validated on load; a config built in code may still hold junk.
            let Ok((url, host)) = parse_endpoint(raw) else {
                tracing::warn!(registry, endpoint = %raw, "ignoring invalid mirror endpoint");
                continue;
            };
            let same_as_default = url == default.0 && host == default.1;
            if same_as_default || out.iter().any(|e| e.url == url && e.host == host) {
                continue;
            }
            let alias = DOCKER_HUB_ALIASES
                .contains(&host.as_str())
                .then_some(DOCKER_HUB);
            let config_key = self.config_key(&[Some(host.as_str()), alias]);
            out.push(Endpoint {
                url,
                host,
                registry: registry.to_owned(),
                mirror: true,
                config_key,
                plain_http_fallback: false,
                rewrites: mirror.map(|m| m.rewrite.clone()).unwrap_or_default(),
            });
        }
        if mirror.is_some() && self.disable_default_endpoint {
            return out;
        }
        let (url, host) = default;
        let config_key = self.config_key(&[Some(host.as_str()), Some(registry)]);
        let upstream = |url: Url, plain_http_fallback: bool| Endpoint {
            url,
            host: host.clone(),
            registry: registry.to_owned(),
            mirror: false,
            config_key: config_key.clone(),
            plain_http_fallback,
            rewrites: Vec::new(),
        };
        // Like containerd, registries on the loopback interface may speak plain
        // HTTP: nothing on the network can intercept that traffic. Plain HTTP
        // goes first because a TLS server answers it at once with a 400, while
        // a plain server may wait for the end of a TLS hello that never comes.
        if is_loopback(&url) {
            let mut http = url.clone();
            if http.set_scheme("http").is_ok() {
                out.push(upstream(http, true));
            }
        }
        out.push(upstream(url, false));
        out
    }

    /// The `configs` entry an endpoint uses.
    pub fn config(&self, endpoint: &Endpoint) -> Option<&RegistryConfig> {
        endpoint
            .config_key
            .as_ref()
            .and_then(|k| self.configs.get(k))
    }

    fn mirror_for(&self, registry: &str) -> Option<&Mirror> {
        let aliases: &[&str] = if registry == DOCKER_HUB {
            &DOCKER_HUB_ALIASES
        } else {
            &[]
        };
        std::iter::once(registry)
            .chain(aliases.iter().copied())
            .chain(std::iter::once(WILDCARD))
            .find_map(|k| self.mirrors.get(k))
    }

    fn config_key(&self, keys: &[Option<&str>]) -> Option<String> {
        keys.iter()
            .flatten()
            .copied()
            .chain(std::iter::once(WILDCARD))
            .find(|k| self.configs.contains_key(*k))
            .map(str::to_owned)
    }
}

fn default_endpoint(registry: &str) -> (Url, String) {
    let host = if registry == DOCKER_HUB {
        DOCKER_HUB_ENDPOINT_HOST
    } else {
        registry
    };
    // A registry name that is not a valid host cannot come from a parsed
    // reference; fall back to something that fails visibly on connect.
    let url = Url::parse(&format!("https://{host}/v2"))
        .unwrap_or_else(|_| Url::parse("https://invalid.invalid/v2").expect("static URL parses"));
    (url, host.to_ascii_lowercase())
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some(host) => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

/// Parses a mirror endpoint as k3s does: no scheme means https (http for
/// localhost on a port other than 443); an empty, `/` or `/v2` path means
/// `/v2`; any other path is the API root as written.
/// Returns the URL and the host[:port] as written.
fn parse_endpoint(raw: &str) -> Result<(Url, String), String> {
    let raw = raw.trim();
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, raw),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err("no host".into());
    }
    if authority.contains('@') {
        return Err("credentials belong in configs.<host>.auth, not in the URL".into());
    }
    let scheme = match scheme.as_deref() {
        Some(s @ ("http" | "https")) => s,
        Some(other) => {
            return Err(format!(
                "unsupported scheme {other:?}: use http:// or https://"
            ));
        }
        None => {
            let probe = Url::parse(&format!("https://{rest}")).map_err(|e| e.to_string())?;
            let port = probe.port();
            if is_loopback(&probe) && port.is_some() {
                "http"
            } else {
                "https"
            }
        }
    };
    let mut url = Url::parse(&format!("{scheme}://{rest}")).map_err(|e| e.to_string())?;
    match url.path().trim_end_matches('/') {
        "" | "/v2" => url.set_path("/v2"),
        path => {
            let path = path.to_owned();
            url.set_path(&path);
        }
    }
    url.set_query(None);
    url.set_fragment(None);
    // Keep an explicit :443 distinct from the default endpoint, as k3s does.
    Ok((url, authority.to_ascii_lowercase()))
}

fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn nullable_map<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let map = Option::<BTreeMap<String, Option<T>>>::deserialize(d)?.unwrap_or_default();
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

fn ordered_rewrites<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Rewrite>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<Rewrite>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of regular expressions to replacements")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((pattern, replacement)) = map.next_entry::<String, String>()? {
                let compiled = Regex::new(&pattern).map_err(|e| {
                    serde::de::Error::custom(format!("invalid rewrite pattern {pattern:?}: {e}"))
                })?;
                out.push(Rewrite {
                    pattern: compiled,
                    replacement,
                });
            }
            Ok(out)
        }
    }
    d.deserialize_any(Visitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> RegistriesConfig {
        RegistriesConfig::from_yaml(yaml, Path::new("/etc/skiff/registries.yaml")).unwrap()
    }

    fn urls(endpoints: &[Endpoint]) -> Vec<String> {
        endpoints.iter().map(ToString::to_string).collect()
    }

    const FULL: &str = r#"
mirrors:
  docker.io:
    endpoint: ["https://mirror.example.com:5000", "http://10.0.0.1:5000/some/prefix", "mirror.example.com:5000"]
    rewrite:
      "^rancher/(.*)": "mirror/rancher-images/$1"
      "^library/(.*)": "hub/$1"
  "*":
    endpoint: ["https://fallback.example.com"]
  registry.example.com:
    endpoint: ["https://registry.example.com", "https://registry.example.com:443"]
configs:
  "mirror.example.com:5000":
    auth: { username: u, password: p }
    tls: { ca_file: /path/ca.pem, cert_file: /path/c.pem, key_file: /path/k.pem, insecure_skip_verify: false }
  "10.0.0.1:5000":
    auth: { auth: dTpw }
  docker.io:
    auth: { identity_token: refresh }
  "*":
    tls:
      insecure_skip_verify: true
"#;

    #[test]
    fn mirror_endpoints_come_first_then_the_registry_itself() {
        let config = parse(FULL);
        let hub = config.endpoints("docker.io");
        assert_eq!(
            urls(&hub),
            [
                "https://mirror.example.com:5000/v2",
                "http://10.0.0.1:5000/some/prefix",
                "https://registry-1.docker.io/v2"
            ],
            "duplicates dropped, a path other than /v2 is the API root"
        );
        assert_eq!(
            hub.iter().map(|e| e.mirror).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(hub[0].host, "mirror.example.com:5000");
        assert_eq!(
            hub[0].config_key.as_deref(),
            Some("mirror.example.com:5000")
        );
        assert_eq!(hub[1].config_key.as_deref(), Some("10.0.0.1:5000"));
        assert_eq!(
            hub[2].config_key.as_deref(),
            Some("docker.io"),
            "docker hub's endpoint uses configs.docker.io"
        );
        assert!(hub[0].has_own_config());
        let cfg = config.config(&hub[0]).unwrap();
        assert_eq!(cfg.auth.as_ref().unwrap().username.as_deref(), Some("u"));
        assert_eq!(
            cfg.tls.as_ref().unwrap().ca_file.as_deref(),
            Some(Path::new("/path/ca.pem"))
        );
    }

    #[test]
    fn wildcard_mirror_and_config_apply_to_other_registries() {
        let config = parse(FULL);
        let quay = config.endpoints("quay.io");
        assert_eq!(
            urls(&quay),
            ["https://fallback.example.com/v2", "https://quay.io/v2"]
        );
        assert_eq!(quay[0].config_key.as_deref(), Some("*"));
        assert!(!quay[0].has_own_config());
        assert_eq!(quay[1].config_key.as_deref(), Some("*"));
    }

    #[test]
    fn mirror_equal_to_the_default_endpoint_is_dropped_but_explicit_443_is_kept() {
        let config = parse(FULL);
        let own = config.endpoints("registry.example.com");
        assert_eq!(
            urls(&own),
            [
                "https://registry.example.com/v2",
                "https://registry.example.com/v2"
            ]
        );
        assert!(own[0].mirror && !own[1].mirror);
        assert_eq!(own[0].host, "registry.example.com:443");
    }

    #[test]
    fn rewrites_apply_to_mirrors_only_first_match_wins() {
        let config = parse(FULL);
        let hub = config.endpoints("docker.io");
        assert_eq!(
            hub[0].repository("rancher/mirrored-pause"),
            "mirror/rancher-images/mirrored-pause"
        );
        assert_eq!(hub[0].repository("library/busybox"), "hub/busybox");
        assert_eq!(hub[0].repository("user/app"), "user/app");
        assert_eq!(
            hub[2].repository("rancher/mirrored-pause"),
            "rancher/mirrored-pause"
        );
    }

    #[test]
    fn request_urls_carry_the_namespace_on_mirrors() {
        let config = parse(FULL);
        let hub = config.endpoints("docker.io");
        assert_eq!(
            hub[1].manifest_url("library/busybox", "latest").as_str(),
            "http://10.0.0.1:5000/some/prefix/library/busybox/manifests/latest?ns=docker.io"
        );
        assert_eq!(
            hub[2].blob_url("library/busybox", "sha256:abc").as_str(),
            "https://registry-1.docker.io/v2/library/busybox/blobs/sha256:abc"
        );
    }

    #[test]
    fn no_config_means_the_registry_alone_over_https() {
        let config = RegistriesConfig::default();
        assert_eq!(urls(&config.endpoints("ghcr.io")), ["https://ghcr.io/v2"]);
        assert_eq!(
            urls(&config.endpoints("docker.io")),
            ["https://registry-1.docker.io/v2"]
        );
        assert_eq!(
            urls(&config.endpoints("reg.example.com:5000")),
            ["https://reg.example.com:5000/v2"]
        );
        assert_eq!(config.endpoints("ghcr.io")[0].config_key, None);
    }

    #[test]
    fn loopback_registries_fall_back_to_plain_http() {
        let config = RegistriesConfig::default();
        assert_eq!(
            urls(&config.endpoints("127.0.0.1:5000")),
            ["http://127.0.0.1:5000/v2", "https://127.0.0.1:5000/v2"]
        );
        assert_eq!(urls(&config.endpoints("localhost:5000")).len(), 2);
    }

    #[test]
    fn endpoint_scheme_and_path_rules() {
        for (raw, want) in [
            ("https://a.example.com", "https://a.example.com/v2"),
            ("https://a.example.com/", "https://a.example.com/v2"),
            ("https://a.example.com/v2/", "https://a.example.com/v2"),
            ("a.example.com:5000", "https://a.example.com:5000/v2"),
            ("localhost:5000", "http://localhost:5000/v2"),
            ("127.0.0.1:5000", "http://127.0.0.1:5000/v2"),
            ("localhost", "https://localhost/v2"),
            (
                "http://a.example.com/v2/proxy-hub/",
                "http://a.example.com/v2/proxy-hub",
            ),
            ("HTTP://a.example.com:80", "http://a.example.com/v2"),
        ] {
            assert_eq!(parse_endpoint(raw).unwrap().0.as_str(), want, "{raw}");
        }
        for bad in ["ftp://a", "https://", "https://u:p@a.example.com", ""] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn disabling_the_default_endpoint_only_affects_mirrored_registries() {
        let config = parse("mirrors:\n  docker.io:\n    endpoint: [\"https://m.example.com\"]\n")
            .with_default_endpoint_disabled(true);
        assert_eq!(
            urls(&config.endpoints("docker.io")),
            ["https://m.example.com/v2"]
        );
        assert_eq!(urls(&config.endpoints("quay.io")), ["https://quay.io/v2"]);
    }

    #[test]
    fn empty_null_and_sparse_files_are_fine() {
        for yaml in [
            "",
            "# nothing\n",
            "mirrors:\nconfigs:\n",
            "configs:\n  docker.io:\n  \"*\":\n    tls:\n      insecure_skip_verify: true\n",
        ] {
            let config = parse(yaml);
            assert!(config.mirrors.is_empty(), "{yaml}");
        }
        let config =
            parse("configs:\n  docker.io:\n  \"*\":\n    tls:\n      insecure_skip_verify: true\n");
        let hub = config.endpoints("docker.io");
        assert_eq!(
            hub[0].config_key.as_deref(),
            Some("docker.io"),
            "an empty specific entry beats *"
        );
        assert!(config.config(&hub[0]).unwrap().tls.is_none());
    }

    #[test]
    fn malformed_files_name_the_file_and_the_problem() {
        let path = Path::new("/etc/skiff/registries.yaml");
        for (yaml, needle) in [
            ("mirrors: [1, 2]", "invalid type"),
            (
                "mirrors:\n  docker.io:\n    endpoint: \"https://x\"\n",
                "expected a sequence",
            ),
            (
                "mirrors:\n  docker.io:\n    rewrite:\n      \"(\": x\n",
                "invalid rewrite pattern",
            ),
            (
                "mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n",
                "mirrors.\"docker.io\".endpoint[0]",
            ),
            (
                "configs:\n  a:\n    tls:\n      insecure_skip_verify: maybe\n",
                "invalid type",
            ),
            ("mirrors: {\n", "line"),
        ] {
            let err = RegistriesConfig::from_yaml(yaml, path)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("invalid registries config /etc/skiff/registries.yaml: "),
                "{err}"
            );
            assert!(err.contains(needle), "{yaml:?}: {err}");
        }
    }

    #[test]
    fn load_treats_a_missing_file_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let missing = RegistriesConfig::load(&dir.path().join("registries.yaml")).unwrap();
        assert!(missing.mirrors.is_empty() && missing.configs.is_empty());
        let path = dir.path().join("r.yaml");
        std::fs::write(&path, FULL).unwrap();
        assert_eq!(RegistriesConfig::load(&path).unwrap().mirrors.len(), 3);
        std::fs::write(&path, "mirrors: [").unwrap();
        let err = RegistriesConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let config = parse(FULL);
        let text = format!("{:?}", config.configs);
        assert!(
            !text.contains("dTpw") && !text.contains("refresh") && text.contains("<set>"),
            "{text}"
        );
    }
}
