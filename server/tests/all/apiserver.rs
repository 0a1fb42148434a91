//! The apiserver's front door with the real kubectl: TLS, client
//! certificates, health and version, and the API behind them.

use std::path::{Path, PathBuf};
use std::process::Output;

use skiff_server::apiserver;
use skiff_server::kubeconfig::write_admin_kubeconfig;
use skiff_server::tls::ClusterTls;
use tokio_util::sync::CancellationToken;

/// A running front door and an admin kubeconfig for it.
struct Front {
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    /// The server CA's PEM file, for curl.
    ca: PathBuf,
    url: String,
    stop: CancellationToken,
    log: std::sync::Arc<skiff_server::datastore::SqliteLog>,
}

impl Front {
    async fn start() -> Front {
        let dir = tempfile::tempdir().unwrap();
        let tls = ClusterTls::load_or_create(&dir.path().join("tls"), &[]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let kubeconfig = dir.path().join("admin.yaml");
        write_admin_kubeconfig(&kubeconfig, 0o600, &tls, &url).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &tls.server_ca.cert_pem).unwrap();
        let stop = CancellationToken::new();
        let config = apiserver::tls_config(&tls).unwrap();
        let log = std::sync::Arc::new(
            skiff_server::datastore::SqliteLog::open(&dir.path().join("db/state.db")).unwrap(),
        );
        let api = std::sync::Arc::new(
            apiserver::Api::new(log.clone(), url.clone(), "10.43.0.0/16".parse().unwrap()).unwrap(),
        );
        apiserver::bootstrap(&api, "127.0.0.1:6443".parse().unwrap()).unwrap();
        tokio::spawn(apiserver::serve(listener, config, api, stop.clone()));
        Front {
            _dir: dir,
            kubeconfig,
            ca,
            url,
            stop,
            log,
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new("kubectl");
    command.arg("--kubeconfig").arg(kubeconfig).args(args);
    command.output().await.expect("kubectl on PATH")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_health_and_version_with_the_admin_certificate() {
    let front = Front::start().await;
    for path in ["/healthz", "/livez", "/readyz", "/readyz/ping"] {
        let out = kubectl(&front.kubeconfig, &["get", "--raw", path]).await;
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok");
    }
    let out = kubectl(&front.kubeconfig, &["version", "-o", "json"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let version: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(version["serverVersion"]["minor"], "32", "{text}");
    assert!(
        version["serverVersion"]["gitVersion"]
            .as_str()
            .unwrap()
            .contains("skiff")
    );
}

/// An anonymous GET with curl: (HTTP status, body).
async fn anonymous_get(front: &Front, path: &str) -> (String, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cacert"])
        .arg(&front.ca)
        .arg(format!("{}{path}", front.url))
        .output()
        .await
        .expect("curl on PATH");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_client_gets_health_but_not_the_api() {
    let front = Front::start().await;
    assert_eq!(
        anonymous_get(&front, "/healthz").await,
        ("200".into(), "ok".into())
    );
    let (code, body) = anonymous_get(&front, "/version").await;
    assert_eq!(code, "200", "{body}");
    let (code, body) = anonymous_get(&front, "/api").await;
    assert_eq!(code, "401", "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");
    // With the admin certificate: the API.
    let out = kubectl(&front.kubeconfig, &["get", "--raw", "/api"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let versions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(versions["versions"][0], "v1");
    let out = kubectl(&front.kubeconfig, &["get", "--raw", "/nothing/here"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("could not find the requested resource"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_namespaces_and_the_kubernetes_service_exist_at_start() {
    let front = Front::start().await;
    let out = kubectl(&front.kubeconfig, &["get", "namespaces", "-o", "name"]).await;
    let names = String::from_utf8_lossy(&out.stdout);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.contains(&format!("namespace/{ns}")), "{names}");
    }
    let out = kubectl(
        &front.kubeconfig,
        &[
            "get",
            "service",
            "kubernetes",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "10.43.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_at_a_compacted_resource_version_is_410_expired() {
    use skiff_server::datastore::RevisionLog;
    let front = Front::start().await;
    for name in ["a", "b", "c"] {
        let out = kubectl(&front.kubeconfig, &["create", "configmap", name]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let current = front.log.current_revision().unwrap();
    front.log.compact(current).unwrap();
    let out = kubectl(
        &front.kubeconfig,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/configmaps?resourceVersion=2&resourceVersionMatch=Exact",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(Expired)") && stderr.contains("provided list is too old"),
        "{stderr}"
    );
    // The latest state is still there.
    let out = kubectl(&front.kubeconfig, &["get", "configmaps", "-o", "name"]).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
}
