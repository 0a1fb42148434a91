//! The client against the in-process fake registry.

mod tls;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;

use super::fake_registry::{AuthMode, FakeRegistry, Request, Response, Server, serve};
use super::*;
use crate::registries::RegistriesConfig;

/// An image's blobs and manifest as a registry would hold them.
struct TestImage {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
}

impl TestImage {
    fn new(arch: &str) -> Self {
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        )
        .into_bytes();
        let layer: Vec<u8> = (0..5000u32)
            .map(|i| (i % 251) as u8)
            .chain(arch.bytes())
            .collect();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{}"}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":{},"digest":"{}"}}]}}"#,
            config.len(),
            Digest::sha256_of(&config),
            layer.len(),
            Digest::sha256_of(&layer),
        )
        .into_bytes();
        Self {
            config,
            layer,
            manifest,
        }
    }

    fn digest(&self) -> Digest {
        Digest::sha256_of(&self.manifest)
    }

    /// Stores blobs and the manifest (under `tag` too, if given).
    fn push(&self, registry: &FakeRegistry, repo: &str, tag: Option<&str>) -> Digest {
        registry.put_blob(&Digest::sha256_of(&self.config).to_string(), &self.config);
        registry.put_blob(&Digest::sha256_of(&self.layer).to_string(), &self.layer);
        registry.put_manifest(repo, tag, OCI_MANIFEST, &self.manifest)
    }
}

/// Pushes one image per platform and an index over them.
fn push_index(
    registry: &FakeRegistry,
    repo: &str,
    tag: &str,
    platforms: &[(&str, &TestImage)],
) -> Digest {
    let entries: Vec<String> = platforms
        .iter()
        .map(|(platform, image)| {
            image.push(registry, repo, None);
            let parts: Vec<&str> = platform.split('/').collect();
            let variant = parts.get(2).map(|v| format!(r#","variant":"{v}""#)).unwrap_or_default();
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","size":{},"digest":"{}","platform":{{"os":"{}","architecture":"{}"{variant}}}}}"#,
                image.manifest.len(),
                image.digest(),
                parts[0],
                parts[1]
            )
        })
        .collect();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    );
    registry.put_manifest(repo, Some(tag), OCI_INDEX, index.as_bytes())
}

fn client(yaml: &str) -> RegistryClient {
    client_for(yaml, "linux/amd64")
}

fn client_for(yaml: &str, platform: &str) -> RegistryClient {
    let config = RegistriesConfig::from_yaml(yaml, Path::new("registries.yaml")).unwrap();
    RegistryClient::new(
        config,
        PlatformMatcher::new(vec![platform.parse().unwrap()]),
    )
    .unwrap()
}

fn reference(server: &Server, name: &str) -> Reference {
    format!("{}/{name}", server.host()).parse().unwrap()
}

async fn read_all(mut stream: BlobStream) -> Result<Vec<u8>, RegistryError> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn assert_send<T: Send>(_: T) {}

fn basic(username: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: username.into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn anonymous_pull_of_manifest_config_and_layer() {
    let registry = FakeRegistry::new();
    let server = registry.serve();
    let image = TestImage::new("amd64");
    image.push(&registry, "team/app", Some("v1"));

    let client = client("");
    let resolved = client
        .resolve(&reference(&server, "team/app:v1"), None)
        .await
        .unwrap();
    assert_eq!(resolved.manifest_digest, image.digest());
    assert_eq!(
        resolved.repo_digest,
        image.digest(),
        "a single manifest is its own repo digest"
    );
    assert_eq!(resolved.manifest_media_type, OCI_MANIFEST);
    assert_eq!(resolved.manifest_bytes.as_ref(), image.manifest.as_slice());
    assert!(resolved.index.is_none());
    assert_eq!(resolved.config.as_ref(), image.config.as_slice());
    assert_eq!(resolved.config_descriptor.size(), image.config.len() as u64);
    assert!(
        resolved
            .endpoint()
            .url
            .as_str()
            .starts_with("http://127.0.0.1:")
    );
    assert_eq!(
        resolved.repo_digest_reference().to_string(),
        format!("{}/team/app@{}", server.host(), image.digest())
    );

    let layer = resolved.manifest.layers()[0].clone();
    // The CRI server runs these on a multi-threaded runtime.
    assert_send(client.resolve(&resolved.reference, None));
    assert_send(client.fetch_blob(&resolved, &layer, 0));
    let bytes = read_all(client.fetch_blob(&resolved, &layer, 0).await.unwrap())
        .await
        .unwrap();
    assert_eq!(bytes, image.layer);

    let requests = registry.requests();
    let manifest_request = requests
        .iter()
        .find(|r| r.path.contains("/manifests/"))
        .unwrap();
    let accept = manifest_request.header("accept").unwrap();
    assert!(
        accept.contains(OCI_INDEX)
            && accept.contains(DOCKER_MANIFEST_LIST)
            && !accept.contains("distribution.manifest.v1")
    );
    assert!(
        manifest_request
            .header("user-agent")
            .unwrap()
            .starts_with("skiff/")
    );
    assert!(
        manifest_request.query.is_empty(),
        "no ns= for the registry itself"
    );

    let by_digest = reference(&server, &format!("team/app:ignored@{}", image.digest()));
    let pinned = client.resolve(&by_digest, None).await.unwrap();
    assert_eq!(pinned.manifest_digest, image.digest());
}

#[tokio::test]
async fn index_resolves_to_this_platform() {
    let registry = FakeRegistry::new();
    let server = registry.serve();
    let (amd64, arm64) = (TestImage::new("amd64"), TestImage::new("arm64"));
    let index_digest = push_index(
        &registry,
        "app",
        "multi",
        &[("linux/arm64/v8", &arm64), ("linux/amd64", &amd64)],
    );

    let resolved = client("")
        .resolve(&reference(&server, "app:multi"), None)
        .await
        .unwrap();
    assert_eq!(resolved.repo_digest, index_digest);
    assert_eq!(resolved.manifest_digest, amd64.digest());
    assert_eq!(resolved.config.as_ref(), amd64.config.as_slice());
    let index = resolved.index.as_ref().unwrap();
    assert_eq!(index.media_type, OCI_INDEX);
    assert_eq!(Digest::sha256_of(&index.bytes), index_digest);

    let on_arm = client_for("", "linux/arm64")
        .resolve(&reference(&server, "app:multi"), None)
        .await
        .unwrap();
    assert_eq!(on_arm.manifest_digest, arm64.digest());

    let err = client_for("", "linux/s390x")
        .resolve(&reference(&server, "app:multi"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::NoMatchingPlatform { available, .. } if available == &["linux/arm64", "linux/amd64"]),
        "{err}"
    );
    assert!(
        err.to_string().contains(
            "no manifest for platform linux/s390x; the image has: linux/arm64, linux/amd64"
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

#[tokio::test]
async fn basic_challenge_with_caller_or_configured_credentials() {
    let registry = FakeRegistry::new();
    registry.set(|s| {
        s.auth = AuthMode::Basic {
            username: "u".into(),
            password: "p".into(),
        }
    });
    let server = registry.serve();
    let image = TestImage::new("amd64");
    image.push(&registry, "app", Some("v1"));
    let r = reference(&server, "app:v1");

    let client = client("");
    let resolved = client.resolve(&r, Some(&basic("u", "p"))).await.unwrap();
    let layer = resolved.manifest.layers()[0].clone();
    assert_eq!(
        read_all(client.fetch_blob(&resolved, &layer, 0).await.unwrap())
            .await
            .unwrap(),
        image.layer
    );
    let last = registry.requests().pop().unwrap();
    assert!(
        last.header("authorization").unwrap().starts_with("Basic "),
        "basic is sent up front once known"
    );

    let configured = format!(
        "configs:\n  \"{}\":\n    auth: {{ username: u, password: p }}\n",
        server.host()
    );
    assert!(self::client(&configured).resolve(&r, None).await.is_ok());

    let wrong = client
        .resolve(&r, Some(&basic("u", "nope")))
        .await
        .unwrap_err();
    assert!(
        matches!(&wrong, RegistryError::Unauthorized { message, .. } if message.contains("UNAUTHORIZED")),
        "{wrong}"
    );
    assert_eq!(wrong.kind(), ErrorKind::Unauthenticated);
    let none = self::client("").resolve(&r, None).await.unwrap_err();
    assert!(
        none.to_string().contains("no credentials were sent"),
        "{none}"
    );
}

#[tokio::test]
async fn bearer_token_is_fetched_once_and_cached() {
    let registry = FakeRegistry::new();
    registry.set(|s| {
        s.auth = AuthMode::Bearer {
            basic: None,
            refresh_token: None,
        }
    });
    let server = registry.serve();
    let image = TestImage::new("amd64");
    image.push(&registry, "team/app", Some("v1"));

    let client = client("");
    let resolved = client
        .resolve(&reference(&server, "team/app:v1"), None)
        .await
        .unwrap();
    let layer = resolved.manifest.layers()[0].clone();
    assert_eq!(
        read_all(client.fetch_blob(&resolved, &layer, 0).await.unwrap())
            .await
            .unwrap(),
        image.layer
    );
    client
        .clone()
        .resolve(&reference(&server, "team/app:v1"), None)
        .await
        .unwrap();
    assert_eq!(registry.token_requests.load(Ordering::SeqCst), 1);

    let token_request = registry
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert_eq!(token_request.method, "GET");
    assert_eq!(token_request.query("service"), ["fake-registry"]);
    assert_eq!(token_request.query("scope"), ["repository:team/app:pull"]);
    assert!(
        token_request.header("authorization").is_none(),
        "anonymous token"
    );
}

#[tokio::test]
async fn bearer_with_credentials_and_wrong_credentials() {
    let registry = FakeRegistry::new();
    registry.set(|s| {
        s.auth = AuthMode::Bearer {
            basic: Some(("u".into(), "p".into())),
            refresh_token: None,
        }
    });
    let server = registry.serve();
    TestImage::new("amd64").push(&registry, "app", Some("v1"));
    let r = reference(&server, "app:v1");

    let err = client("")
        .resolve(&r, Some(&basic("u", "wrong")))
        .await
        .unwrap_err();
    match &err {
        RegistryError::Unauthorized {
            registry: by,
            message,
            ..
        } => {
            assert!(by.starts_with("token server 127.0.0.1:"), "{by}");
            assert_eq!(message, "incorrect username or password");
        }
        other => panic!("{other}"),
    }
    client("")
        .resolve(&r, Some(&basic("u", "p")))
        .await
        .unwrap();
}

#[tokio::test]
async fn identity_token_posts_a_refresh_grant() {
    let registry = FakeRegistry::new();
    registry.set(|s| {
        s.auth = AuthMode::Bearer {
            basic: None,
            refresh_token: Some("refresh-me".into()),
        }
    });
    let server = registry.serve();
    TestImage::new("amd64").push(&registry, "app", Some("v1"));
    let r = reference(&server, "app:v1");

    let yaml = format!(
        "configs:\n  \"{}\":\n    auth:\n      identity_token: refresh-me\n",
        server.host()
    );
    client(&yaml).resolve(&r, None).await.unwrap();
    let post = registry
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert_eq!(post.method, "POST");
    let body = String::from_utf8(post.body).unwrap();
    assert!(
        body.contains("grant_type=refresh_token") && body.contains("scope=repository%3Aapp%3Apull"),
        "{body}"
    );

    let wrong = Credentials::IdentityToken("stale".into());
    assert!(matches!(
        client("").resolve(&r, Some(&wrong)).await,
        Err(RegistryError::Unauthorized { .. })
    ));
}

#[tokio::test]
async fn not_found_carries_the_registry_answer() {
    let registry = FakeRegistry::new();
    let server = registry.serve();
    let err = client("")
        .resolve(&reference(&server, "app:missing"), None)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    match &err {
        RegistryError::NotFound {
            message,
            registry: at,
            reference: what,
        } => {
            assert_eq!(message, "MANIFEST_UNKNOWN: manifest unknown");
            assert!(
                at.starts_with("http://127.0.0.1:"),
                "the plain-HTTP answer, not the failed TLS attempt"
            );
            assert!(what.ends_with("/app:missing"));
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn schema1_and_non_manifests_are_refused() {
    let registry = FakeRegistry::new();
    let server = registry.serve();
    let schema1 = br#"{"schemaVersion":1,"name":"old","tag":"1","fsLayers":[{"blobSum":"x"}]}"#;
    registry.put_manifest(
        "old",
        Some("1"),
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        schema1,
    );
    registry.put_manifest(
        "html",
        Some("1"),
        "text/html",
        b"<html>captive portal</html>",
    );

    let err = client("")
        .resolve(&reference(&server, "old:1"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Schema1 { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("schema 1, which is not supported; push it again")
    );
    let err = client("")
        .resolve(&reference(&server, "html:1"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::UnsupportedMediaType { media_type, .. } if media_type == "text/html"),
        "{err}"
    );
}

#[tokio::test]
async fn mirror_404_then_upstream_success() {
    let (mirror, upstream) = (FakeRegistry::new(), FakeRegistry::new());
    let (mirror_server, upstream_server) = (mirror.serve(), upstream.serve());
    let image = TestImage::new("amd64");
    image.push(&upstream, "app", Some("v1"));
    let yaml = format!(
        "mirrors:\n  \"{}\":\n    endpoint: [\"http://{}\"]\n",
        upstream_server.host(),
        mirror_server.host()
    );
    let resolved = client(&yaml)
        .resolve(&reference(&upstream_server, "app:v1"), None)
        .await
        .unwrap();
    assert!(!resolved.endpoint().mirror);
    assert_eq!(resolved.manifest_digest, image.digest());
    let asked = mirror.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].query("ns"),
        [upstream_server.host().as_str()],
        "mirrors learn the upstream via ns="
    );
}

#[tokio::test]
async fn mirror_rewrite_and_path_prefix() {
    let mirror = FakeRegistry::new();
    mirror.set(|s| s.prefix = Some("/some/prefix/".into()));
    let server = mirror.serve();
    let image = TestImage::new("amd64");
    image.push(&mirror, "mirror/team-images/app", Some("v1"));
    let yaml = format!(
        "mirrors:\n  registry.invalid:\n    endpoint: [\"http://{}/some/prefix\"]\n    rewrite:\n      \"^team/(.*)\": \"mirror/team-images/$1\"\n",
        server.host()
    );
    let config = RegistriesConfig::from_yaml(&yaml, Path::new("r.yaml"))
        .unwrap()
        .with_default_endpoint_disabled(true);
    let client = RegistryClient::new(
        config,
        PlatformMatcher::new(vec!["linux/amd64".parse().unwrap()]),
    )
    .unwrap();
    let r: Reference = "registry.invalid/team/app:v1".parse().unwrap();
    let resolved = client.resolve(&r, None).await.unwrap();
    assert!(resolved.endpoint().mirror);
    assert_eq!(resolved.reference, r, "the image keeps its own name");
    let layer = resolved.manifest.layers()[0].clone();
    assert_eq!(
        read_all(client.fetch_blob(&resolved, &layer, 0).await.unwrap())
            .await
            .unwrap(),
        image.layer
    );
    assert!(
        mirror
            .requests()
            .iter()
            .all(|q| q.path.starts_with("/some/prefix/mirror/team-images/app/"))
    );
}

#[tokio::test]
async fn digests_are_verified() {
    let registry = FakeRegistry::new();
    let server = registry.serve();
    let image = TestImage::new("amd64");
    image.push(&registry, "app", Some("v1"));
    let other = TestImage::new("arm64");

    registry.set(|s| s.announce_digest = Some(other.digest().to_string()));
    let err = client("")
        .resolve(&reference(&server, "app:v1"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::DigestMismatch { expected, .. } if *expected == other.digest()),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    registry.set(|s| s.announce_digest = None);

    // The registry serves other bytes for a digest than the digest names.
    registry.put_manifest_raw(
        "app",
        &other.digest().to_string(),
        OCI_MANIFEST,
        &image.manifest,
    );
    registry.set(|s| s.announce_digest = Some(other.digest().to_string()));
    let pinned = reference(&server, &format!("app@{}", other.digest()));
    let err = client("").resolve(&pinned, None).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::DigestMismatch { actual, .. } if *actual == image.digest()),
        "{err}"
    );
    registry.set(|s| s.announce_digest = None);

    registry.put_blob(
        &Digest::sha256_of(&image.config).to_string(),
        &other.config[..image.config.len()],
    );
    let err = client("")
        .resolve(&reference(&server, "app:v1"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::DigestMismatch { what, .. } if what.starts_with("config")),
        "{err}"
    );
}

#[tokio::test]
async fn blobs_larger_than_their_descriptor_fail() {
    let registry = FakeRegistry::new();
    let server = registry.serve();
    let image = TestImage::new("amd64");
    image.push(&registry, "app", Some("v1"));
    let client = client("");
    let resolved = client
        .resolve(&reference(&server, "app:v1"), None)
        .await
        .unwrap();
    let layer = resolved.manifest.layers()[0].clone();
    let mut bigger = image.layer.clone();
    bigger.extend_from_slice(b"extra");
    registry.put_blob(layer.digest().as_ref(), &bigger);

    let err = client.fetch_blob(&resolved, &layer, 0).await.err().unwrap();
    assert!(
        matches!(err, RegistryError::TooLarge { .. }),
        "announced length is checked: {err}"
    );

    registry.set(|s| s.blobs_without_length = true);
    let err = read_all(client.fetch_blob(&resolved, &layer, 0).await.unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::TooLarge { limit, .. } if limit == image.layer.len() as u64),
        "{err}"
    );

    registry.put_blob(layer.digest().as_ref(), &image.layer[..100]);
    let err = read_all(client.fetch_blob(&resolved, &layer, 0).await.unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::IncompleteBlob { received: 100, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn range_resume_with_and_without_server_support() {
    let registry = FakeRegistry::new();
    let server = registry.serve();
    let image = TestImage::new("amd64");
    image.push(&registry, "app", Some("v1"));
    let client = client("");
    let resolved = client
        .resolve(&reference(&server, "app:v1"), None)
        .await
        .unwrap();
    let layer = resolved.manifest.layers()[0].clone();

    let tail = read_all(client.fetch_blob(&resolved, &layer, 1234).await.unwrap())
        .await
        .unwrap();
    assert_eq!(tail, image.layer[1234..]);
    let last = registry.requests().pop().unwrap();
    assert_eq!(last.header("range"), Some("bytes=1234-"));

    registry.set(|s| s.ignore_range = true);
    let tail = read_all(client.fetch_blob(&resolved, &layer, 4000).await.unwrap())
        .await
        .unwrap();
    assert_eq!(tail, image.layer[4000..]);

    let end = read_all(
        client
            .fetch_blob(&resolved, &layer, layer.size())
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(end.is_empty());
    let err = client
        .fetch_blob(&resolved, &layer, layer.size() + 1)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, RegistryError::InvalidOffset { .. }), "{err}");
}

#[tokio::test]
async fn blob_redirects_drop_the_authorization_header() {
    let registry = FakeRegistry::new();
    registry.set(|s| {
        s.auth = AuthMode::Bearer {
            basic: None,
            refresh_token: None,
        }
    });
    let server = registry.serve();
    let image = TestImage::new("amd64");
    image.push(&registry, "app", Some("v1"));

    let seen: Arc<std::sync::Mutex<Vec<Request>>> = Arc::default();
    let (layer_bytes, log) = (image.layer.clone(), seen.clone());
    let cdn = serve(Arc::new(move |r: &Request| {
        log.lock().unwrap().push(r.clone());
        Response::new(200).body(layer_bytes.clone())
    }));
    let client = client("");
    let resolved = client
        .resolve(&reference(&server, "app:v1"), None)
        .await
        .unwrap();
    registry.set(|s| s.redirect_blobs = Some(format!("http://{}/cdn", cdn.host())));
    let layer = resolved.manifest.layers()[0].clone();
    let bytes = read_all(client.fetch_blob(&resolved, &layer, 0).await.unwrap())
        .await
        .unwrap();
    assert_eq!(bytes, image.layer);
    let cdn_requests = seen.lock().unwrap().clone();
    assert_eq!(cdn_requests.len(), 1);
    assert!(cdn_requests[0].path.starts_with("/cdn/sha256:"));
    assert!(
        cdn_requests[0].header("authorization").is_none(),
        "the token stays with the registry"
    );
}

#[tokio::test]
async fn the_most_informative_error_wins() {
    let (mirror, upstream) = (FakeRegistry::new(), FakeRegistry::new());
    let (mirror_server, upstream_server) = (mirror.serve(), upstream.serve());
    upstream.set(|s| s.fail_with = Some(503));
    // A port nobody listens on: bind, note the port, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = reference(&upstream_server, "app:v1");

    let yaml = format!(
        "mirrors:\n  \"{}\":\n    endpoint: [\"http://{closed}\"]\n",
        upstream_server.host()
    );
    let err = client(&yaml).resolve(&r, None).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Http { status: 503, .. }),
        "HTTP beats connect errors: {err}"
    );
    assert!(err.is_retryable());

    let yaml = format!(
        "mirrors:\n  \"{}\":\n    endpoint: [\"http://{closed}\", \"http://{}\"]\n",
        upstream_server.host(),
        mirror_server.host()
    );
    let err = client(&yaml).resolve(&r, None).await.unwrap_err();
    assert!(
        err.is_not_found(),
        "a registry's answer beats HTTP errors: {err}"
    );

    let only_closed: Reference = format!("{closed}/app:v1").parse().unwrap();
    let err = client("").resolve(&only_closed, None).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Connect { endpoint, .. } if endpoint.starts_with("https://")),
        "{err}"
    );
}

#[test]
fn unusable_registries_config_fails_client_creation() {
    let bad_auth = RegistriesConfig::from_yaml(
        "configs:\n  r.example:\n    auth: { auth: \"!!\" }\n",
        Path::new("r.yaml"),
    )
    .unwrap();
    let err = RegistryClient::new(bad_auth, PlatformMatcher::host()).unwrap_err();
    assert!(
        err.to_string().contains("configs.\"r.example\".auth"),
        "{err}"
    );
    let bad_ca = RegistriesConfig::from_yaml(
        "configs:\n  r.example:\n    tls: { ca_file: /nonexistent/ca.pem }\n",
        Path::new("r.yaml"),
    )
    .unwrap();
    let err = RegistryClient::new(bad_ca, PlatformMatcher::host()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misconfigured);
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
