//! Service-account tokens with the real kubectl: `kubectl create token`,
//! the token as a bearer credential (`kubectl --token`), tokens bound to
//! pods, refused tokens, and the issuer's OIDC discovery documents.

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::TestServer;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new("kubectl");
    command.arg("--kubeconfig").arg(kubeconfig).args(args);
    command.output().await.expect("kubectl on PATH")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "kubectl succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The claims of a JWT.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A kubeconfig with the server and its CA but no user credentials (the
/// tests pass `--token`; without any, kubectl would prompt for a password).
fn anonymous_kubeconfig(server: &TestServer) -> PathBuf {
    let text = std::fs::read_to_string(&server.kubeconfig).unwrap();
    let admin: Value = serde_yaml_ng::from_str(&text).unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "skiff", "cluster": {
            "server": cluster["server"],
            "certificate-authority-data": cluster["certificate-authority-data"],
        } }],
        "users": [{ "name": "nobody", "user": {} }],
        "contexts": [{ "name": "skiff", "context": { "cluster": "skiff", "user": "nobody" } }],
        "current-context": "skiff",
    });
    let path = server.dir.path().join("anonymous.yaml");
    std::fs::write(&path, kubeconfig.to_string()).unwrap();
    path
}

async fn create_token(server: &TestServer, args: &[&str]) -> String {
    let mut all = vec!["create", "token"];
    all.extend_from_slice(args);
    stdout(&kubectl(&server.kubeconfig, &all).await)
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_token_issues_a_jwt_kubectl_can_use() {
    let server = TestServer::apiserver_only().await;
    stdout(&kubectl(&server.kubeconfig, &["create", "serviceaccount", "builder"]).await);
    let uid = stdout(
        &kubectl(
            &server.kubeconfig,
            &["get", "sa", "builder", "-o", "jsonpath={.metadata.uid}"],
        )
        .await,
    );
    let token = create_token(&server, &["builder"]).await;
    let claims = claims(&token);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "system:serviceaccount:default:builder");
    assert_eq!(claims["aud"], json!([ISSUER]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
    assert_eq!(
        claims["kubernetes.io"],
        json!({ "namespace": "default", "serviceaccount": { "name": "builder", "uid": uid } })
    );

    // The token alone authenticates, as the service account.
    let anonymous = anonymous_kubeconfig(&server);
    let out = kubectl(&anonymous, &["--token", &token, "get", "pods"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("No resources found"));
    let whoami = stdout(
        &kubectl(
            &anonymous,
            &["--token", &token, "auth", "whoami", "-o", "json"],
        )
        .await,
    );
    let whoami: Value = serde_json::from_str(&whoami).unwrap();
    let user = &whoami["status"]["userInfo"];
    assert_eq!(user["username"], "system:serviceaccount:default:builder");
    assert_eq!(user["uid"], uid);
    assert_eq!(
        user["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/credential-id"],
        json!([format!("JTI={}", claims["jti"].as_str().unwrap())])
    );

    // Audiences and durations as asked.
    let token = create_token(
        &server,
        &[
            "builder",
            "--duration",
            "2h",
            "--audience",
            ISSUER,
            "--audience",
            "vault",
        ],
    )
    .await;
    let claims = self::claims(&token);
    assert_eq!(claims["aud"], json!([ISSUER, "vault"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        7200
    );
    // A token for another audience only is not for the API.
    let token = create_token(&server, &["builder", "--audience", "vault"]).await;
    let out = kubectl(&anonymous, &["--token", &token, "get", "pods"]).await;
    assert!(stderr(&out).contains("Unauthorized"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_requests_are_refused_as_kube_apiserver_refuses_them() {
    let server = TestServer::apiserver_only().await;
    let out = kubectl(&server.kubeconfig, &["create", "token", "nosuch"]).await;
    assert_eq!(
        stderr(&out).trim(),
        "error: failed to create token: serviceaccounts \"nosuch\" not found"
    );
    stdout(&kubectl(&server.kubeconfig, &["create", "serviceaccount", "builder"]).await);
    let out = kubectl(
        &server.kubeconfig,
        &["create", "token", "builder", "--duration", "1m"],
    )
    .await;
    assert!(
        stderr(&out).contains(
            "TokenRequest.authentication.k8s.io \"builder\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
        ),
        "{}",
        stderr(&out)
    );
    let out = kubectl(
        &server.kubeconfig,
        &[
            "create",
            "token",
            "builder",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "gone",
        ],
    )
    .await;
    assert!(
        stderr(&out).contains("pods \"gone\" not found"),
        "{}",
        stderr(&out)
    );
    let out = kubectl(
        &server.kubeconfig,
        &[
            "create",
            "token",
            "builder",
            "--bound-object-kind",
            "Secret",
            "--bound-object-name",
            "s",
            "--bound-object-uid",
            "nope",
        ],
    )
    .await;
    assert!(
        stderr(&out).contains("secrets \"s\" not found"),
        "{}",
        stderr(&out)
    );
    stdout(&kubectl(&server.kubeconfig, &["create", "secret", "generic", "s"]).await);
    let out = kubectl(
        &server.kubeconfig,
        &[
            "create",
            "token",
            "builder",
            "--bound-object-kind",
            "Secret",
            "--bound-object-name",
            "s",
            "--bound-object-uid",
            "nope",
        ],
    )
    .await;
    assert!(
        stderr(&out).contains(
            "the UID in the bound object reference (nope) does not match the UID in record"
        ),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_tokens_last_as_long_as_their_pod() {
    let server = TestServer::apiserver_only().await;
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "web" },
        "spec": { "serviceAccountName": "default", "containers": [{ "name": "web", "image": "busybox" }] },
    });
    stdout(&kubectl(&server.kubeconfig, &["create", "serviceaccount", "default"]).await);
    let manifest = server.dir.path().join("pod.json");
    std::fs::write(&manifest, pod.to_string()).unwrap();
    stdout(
        &kubectl(
            &server.kubeconfig,
            &["create", "-f", manifest.to_str().unwrap()],
        )
        .await,
    );
    let pod_uid = stdout(
        &kubectl(
            &server.kubeconfig,
            &["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"],
        )
        .await,
    );
    let token = create_token(
        &server,
        &[
            "default",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "web",
        ],
    )
    .await;
    let claims = claims(&token);
    assert_eq!(
        claims["kubernetes.io"]["pod"],
        json!({ "name": "web", "uid": pod_uid })
    );

    let anonymous = anonymous_kubeconfig(&server);
    let whoami = stdout(
        &kubectl(
            &anonymous,
            &["--token", &token, "auth", "whoami", "-o", "json"],
        )
        .await,
    );
    let whoami: Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(
        whoami["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-uid"],
        json!([pod_uid])
    );

    // A second token, never used, dies with the pod (the first is cached
    // for ten seconds, as kube-apiserver caches successes).
    let unused = create_token(
        &server,
        &[
            "default",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "web",
        ],
    )
    .await;
    stdout(
        &kubectl(
            &server.kubeconfig,
            &["delete", "pod", "web", "--wait=false"],
        )
        .await,
    );
    let out = kubectl(&anonymous, &["--token", &unused, "get", "pods"]).await;
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
    // A pod-bound token must name the pod's service account.
    std::fs::write(&manifest, pod.to_string()).unwrap();
    stdout(
        &kubectl(
            &server.kubeconfig,
            &["create", "-f", manifest.to_str().unwrap()],
        )
        .await,
    );
    stdout(&kubectl(&server.kubeconfig, &["create", "serviceaccount", "other"]).await);
    let out = kubectl(
        &server.kubeconfig,
        &[
            "create",
            "token",
            "other",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "web",
        ],
    )
    .await;
    assert!(
        stderr(&out).contains(
            "cannot bind token for serviceaccount \"other\" to pod running with different serviceaccount name."
        ),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_foreign_tokens_are_unauthorized() {
    let server = TestServer::apiserver_only().await;
    stdout(&kubectl(&server.kubeconfig, &["create", "serviceaccount", "builder"]).await);
    let token = create_token(&server, &["builder"]).await;
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged_claims = claims(&token);
    forged_claims["sub"] = json!("system:serviceaccount:kube-system:admin");
    forged_claims["kubernetes.io"]["serviceaccount"]["name"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged_claims.to_string()),
        parts[2]
    );
    let anonymous = anonymous_kubeconfig(&server);
    for bad in [forged.as_str(), "not-a-jwt", "a.b.c"] {
        let out = kubectl(
            &anonymous,
            &["--token", bad, "get", "--raw", "/api/v1/namespaces"],
        )
        .await;
        assert!(
            stderr(&out).contains("Unauthorized"),
            "{bad}: {}",
            stderr(&out)
        );
    }
    // The Status body of a refused token is kube-apiserver's.
    let text = std::fs::read_to_string(&server.kubeconfig).unwrap();
    let admin: Value = serde_yaml_ng::from_str(&text).unwrap();
    let url = admin["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_owned();
    let ca = server.dir.path().join("ca.pem");
    let ca_data = admin["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .unwrap();
    std::fs::write(
        &ca,
        base64::engine::general_purpose::STANDARD
            .decode(ca_data)
            .unwrap(),
    )
    .unwrap();
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--cacert", ca.to_str().unwrap(), "-H"])
        .arg(format!("Authorization: Bearer {forged}"))
        .arg(format!("{url}/healthz"))
        .output()
        .await
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        status,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401 })
    );
    // A token whose service account is gone is refused.
    let unused = create_token(&server, &["builder"]).await;
    stdout(&kubectl(&server.kubeconfig, &["delete", "serviceaccount", "builder"]).await);
    let out = kubectl(&anonymous, &["--token", &unused, "get", "pods"]).await;
    assert!(stderr(&out).contains("Unauthorized"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_publishes_its_keys_and_the_token_subresource_is_discoverable() {
    let server = TestServer::apiserver_only().await;
    let config = stdout(
        &kubectl(
            &server.kubeconfig,
            &["get", "--raw", "/.well-known/openid-configuration"],
        )
        .await,
    );
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["issuer"], ISSUER);
    assert!(
        config["jwks_uri"]
            .as_str()
            .unwrap()
            .ends_with("/openid/v1/jwks")
    );
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    let jwks = stdout(&kubectl(&server.kubeconfig, &["get", "--raw", "/openid/v1/jwks"]).await);
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    stdout(&kubectl(&server.kubeconfig, &["create", "serviceaccount", "builder"]).await);
    let token = create_token(&server, &["builder"]).await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);
    // The key is made once, 0600, beside the certificates.
    let key = server.dir.path().join("data/server/tls/service.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let resources = stdout(&kubectl(&server.kubeconfig, &["get", "--raw", "/api/v1"]).await);
    let resources: Value = serde_json::from_str(&resources).unwrap();
    let token_resource = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "serviceaccounts/token")
        .expect("serviceaccounts/token is listed");
    assert_eq!(token_resource["group"], "authentication.k8s.io");
    assert_eq!(token_resource["kind"], "TokenRequest");
    assert_eq!(token_resource["verbs"], json!(["create"]));
}
