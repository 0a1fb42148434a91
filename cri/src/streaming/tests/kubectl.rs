//! The real kubectl 1.32 against the streaming server, through a fake
//! apiserver: it serves discovery and one Running pod, and proxies the
//! pod's exec, attach and portforward subresources byte for byte to a
//! fresh streaming URL, so kubectl's own WebSocket and SPDY code talks to
//! the server. Skipped when kubectl is not installed.

// A skipped test says so on stderr, where cargo test shows it.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Stdio as StdStdio;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use super::{echo_server, fixture, within};
use crate::streaming::StreamingUrls;
use crate::streaming::http::{self, RequestHead};

fn kubectl() -> Option<PathBuf> {
    let pinned = Path::new("/usr/lib/google-cloud-sdk/bin/kubectl.1.32");
    if pinned.exists() {
        return Some(pinned.to_owned());
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("kubectl"))
        .find(|p| p.exists())
}

/// A kubeconfig pointing at the fake apiserver, in a temp HOME.
struct Kube {
    bin: PathBuf,
    home: tempfile::TempDir,
    /// How each proxied upgrade asked: "<Upgrade> <protocols offered>".
    upgrades: Upgrades,
}

type Upgrades = Arc<Mutex<Vec<String>>>;

impl Kube {
    async fn start(urls: StreamingUrls) -> Option<Self> {
        let Some(bin) = kubectl() else {
            eprintln!("kubectl not installed; skipping");
            return None;
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let upgrades = Upgrades::default();
        let recorded = upgrades.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve_api(tcp, urls.clone(), port, recorded.clone()));
            }
        });
        let home = tempfile::tempdir().expect("home");
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
        );
        std::fs::write(home.path().join("config"), config).expect("kubeconfig");
        Some(Self {
            bin,
            home,
            upgrades,
        })
    }

    fn command(&self, websockets: bool, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env_clear()
            .envs(self.env(websockets))
            .kill_on_drop(true);
        cmd
    }

    /// A clean environment: the temp HOME, the kubeconfig, no proxies,
    /// and the transport chosen with kubectl's feature variables.
    fn env(&self, websockets: bool) -> Vec<(&'static str, std::ffi::OsString)> {
        let flag = if websockets { "true" } else { "false" };
        vec![
            ("HOME", self.home.path().into()),
            ("KUBECONFIG", self.home.path().join("config").into()),
            ("NO_PROXY", "*".into()),
            ("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", flag.into()),
            ("KUBECTL_PORT_FORWARD_WEBSOCKETS", flag.into()),
        ]
    }

    /// The upgrades proxied since the last call.
    fn take_upgrades(&self) -> Vec<String> {
        std::mem::take(&mut *self.upgrades.lock().expect("upgrades"))
    }

    async fn run(&self, websockets: bool, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
        let mut child = self
            .command(websockets, args)
            .stdin(StdStdio::piped())
            .stdout(StdStdio::piped())
            .stderr(StdStdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin).await.expect("write stdin");
        drop(input);
        let out = within("kubectl", child.wait_with_output())
            .await
            .expect("kubectl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

const POD: &str = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"demo","namespace":"default","uid":"5d1f0c1e-0000-4000-8000-000000000001"},"spec":{"containers":[{"name":"c1","image":"busybox","stdin":true}]},"status":{"phase":"Running"}}"#;

fn discovery(path: &str, port: u16) -> Option<String> {
    Some(match path {
        "/api" => format!(
            r#"{{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:{port}"}}]}}"#
        ),
        "/apis" => r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#.to_owned(),
        "/api/v1" => {
            let sub = |name: &str, kind: &str| {
                format!(
                    r#"{{"name":"pods/{name}","singularName":"","namespaced":true,"kind":"{kind}","verbs":["create","get"]}}"#
                )
            };
            format!(
                r#"{{"kind":"APIResourceList","groupVersion":"v1","resources":[{{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]}},{},{},{}]}}"#,
                sub("attach", "PodAttachOptions"),
                sub("exec", "PodExecOptions"),
                sub("portforward", "PodPortForwardOptions")
            )
        }
        "/version" => r#"{"major":"1","minor":"32","gitVersion":"v1.32.0"}"#.to_owned(),
        "/api/v1/namespaces/default/pods/demo" => POD.to_owned(),
        _ => return None,
    })
}

async fn serve_api(mut tcp: TcpStream, urls: StreamingUrls, port: u16, upgrades: Upgrades) {
    let mut buf = BytesMut::new();
    loop {
        let Ok(head) = http::read_request(&mut tcp, &mut buf).await else {
            return;
        };
        if let Some(sub) = head
            .path
            .strip_prefix("/api/v1/namespaces/default/pods/demo/")
        {
            let flag = |name: &str| head.query_values(name).any(|v| v == "true" || v == "1");
            let url = match sub {
                "exec" => urls.exec_url(&ExecRequest {
                    container_id: "c1".into(),
                    cmd: head.query_values("command").map(str::to_owned).collect(),
                    tty: flag("tty"),
                    stdin: flag("stdin"),
                    stdout: flag("stdout"),
                    stderr: flag("stderr") && !flag("tty"),
                }),
                "attach" => urls.attach_url(&AttachRequest {
                    container_id: "c1".into(),
                    stdin: flag("stdin"),
                    tty: flag("tty"),
                    stdout: flag("stdout"),
                    stderr: flag("stderr") && !flag("tty"),
                }),
                _ => urls.port_forward_url(&PortForwardRequest {
                    pod_sandbox_id: "sandbox1".into(),
                    port: vec![],
                }),
            }
            .expect("streaming url");
            let offered = match head.header("upgrade") {
                Some(u) if u.eq_ignore_ascii_case("websocket") => {
                    head.header_list("sec-websocket-protocol").join(",")
                }
                _ => head.header_list("x-stream-protocol-version").join(","),
            };
            let upgrade = head.header("upgrade").unwrap_or("none");
            upgrades
                .lock()
                .expect("upgrades")
                .push(format!("{upgrade} {offered}"));
            proxy(tcp, buf, &head, &url).await;
            return;
        }
        let (status, body) = match discovery(&head.path, port) {
            Some(body) => ("200 OK", body),
            None => (
                "404 Not Found",
                r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#
                    .to_owned(),
            ),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if tcp.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Replays the request to the streaming URL, then splices the sockets.
async fn proxy(mut client: TcpStream, leftover: BytesMut, head: &RequestHead, url: &str) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (authority, path) = rest.split_at(rest.find('/').expect("path"));
    let mut upstream = TcpStream::connect(authority)
        .await
        .expect("connect upstream");
    let mut req = format!("{} {path} HTTP/1.1\r\nHost: {authority}\r\n", head.method);
    for (name, value) in &head.headers {
        if !name.eq_ignore_ascii_case("host") {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    req.push_str("\r\n");
    upstream.write_all(req.as_bytes()).await.expect("replay");
    upstream.write_all(&leftover).await.expect("replay body");
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

#[tokio::test]
async fn kubectl_exec_over_websocket_and_spdy() {
    let f = fixture().await;
    let Some(kube) = Kube::start(f.urls.clone()).await else {
        return;
    };
    for websockets in [true, false] {
        let (code, out, err) = kube
            .run(
                websockets,
                &[
                    "exec",
                    "demo",
                    "--",
                    "sh",
                    "-c",
                    "echo out; echo err >&2; exit 3",
                ],
                b"",
            )
            .await;
        assert_eq!(code, 3, "websockets={websockets}: {err}");
        assert_eq!(out, "out\n", "websockets={websockets}");
        assert!(err.starts_with("err\n"), "websockets={websockets}: {err}");
        assert!(
            err.contains("command terminated with exit code 3"),
            "websockets={websockets}: {err}"
        );
        // One upgrade, no fallback: v5 WebSocket, or SPDY offering v5..v1.
        let expected = if websockets {
            "websocket v5.channel.k8s.io"
        } else {
            "SPDY/3.1 v5.channel.k8s.io,v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io"
        };
        assert_eq!(kube.take_upgrades(), [expected]);

        // stdin reaches cat and its end ends cat: v5's close signal over
        // WebSocket, a FIN over SPDY.
        let (code, out, err) = kube
            .run(
                websockets,
                &["exec", "-i", "demo", "--", "cat"],
                b"hello\nkubectl\n",
            )
            .await;
        assert_eq!((code, out.as_str()), (0, "hello\nkubectl\n"), "{err}");
        assert_eq!(kube.take_upgrades().len(), 1);
    }
}

#[tokio::test]
async fn kubectl_attach_and_cp() {
    let f = fixture().await;
    let Some(kube) = Kube::start(f.urls.clone()).await else {
        return;
    };
    for websockets in [true, false] {
        let (code, out, err) = kube
            .run(websockets, &["attach", "-i", "demo", "-c", "c1"], b"hi\n")
            .await;
        assert_eq!(code, 0, "websockets={websockets}: {err}");
        assert_eq!(out, "attached\ngot hi\n", "websockets={websockets}: {err}");
    }
    // kubectl cp streams a tar archive through exec's stdout.
    let src = tempfile::tempdir().expect("src");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(src.path().join("blob"), &payload).expect("write blob");
    let dest = kube.home.path().join("copied");
    let remote = format!("demo:{}", src.path().join("blob").display());
    let (code, _, err) = kube
        .run(true, &["cp", &remote, dest.to_str().expect("utf-8")], b"")
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&dest).expect("copied"), payload);
}

#[tokio::test]
async fn kubectl_port_forward_over_the_websocket_tunnel_and_spdy() {
    let f = fixture().await;
    let Some(kube) = Kube::start(f.urls.clone()).await else {
        return;
    };
    let echo = echo_server().await;
    for websockets in [true, false] {
        let target = format!(":{echo}");
        let mut child = kube
            .command(websockets, &["port-forward", "pod/demo", &target])
            .stdout(StdStdio::piped())
            .stderr(StdStdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // "Forwarding from 127.0.0.1:40123 -> 8080"
        let local: u16 = loop {
            let line = within("forwarding line", lines.next_line())
                .await
                .expect("read")
                .unwrap_or_else(|| panic!("kubectl port-forward exited (websockets={websockets})"));
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                break rest
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("local port");
            }
        };
        for round in 0..3 {
            let mut conn = TcpStream::connect(("127.0.0.1", local))
                .await
                .expect("connect");
            let payload = format!("round {round} via websockets={websockets}\n").repeat(1000);
            conn.write_all(payload.as_bytes()).await.expect("write");
            conn.shutdown().await.expect("half-close");
            let mut back = Vec::new();
            within("echo", conn.read_to_end(&mut back))
                .await
                .expect("read");
            assert_eq!(
                back,
                payload.as_bytes(),
                "websockets={websockets} round {round}"
            );
        }
        let upgrades = kube.take_upgrades();
        let expected = if websockets {
            "websocket SPDY/3.1+portforward.k8s.io"
        } else {
            "SPDY/3.1 portforward.k8s.io"
        };
        assert_eq!(upgrades, [expected], "one session for every connection");
        child.start_kill().expect("stop kubectl");
        let _ = child.wait().await;
    }
}

#[tokio::test]
async fn kubectl_exec_with_a_terminal_sends_its_size() {
    let f = fixture().await;
    let Some(kube) = Kube::start(f.urls.clone()).await else {
        return;
    };
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("script(1) not installed; skipping");
        return;
    }
    // The remote shell waits until the resize event has reached its pty.
    let remote = "for i in $(seq 100); do s=$(stty size); [ \"$s\" != \"0 0\" ] && break; sleep 0.05; done; echo \"size=$s\"";
    for websockets in [true, false] {
        let inner = format!(
            "stty cols 123 rows 45; {} exec -it demo -- sh -c '{remote}'",
            kube.bin.display()
        );
        // script(1) gives kubectl a terminal, as a user's shell would.
        let mut script = Command::new("/usr/bin/script");
        script
            .args(["-qefc", &inner, "/dev/null"])
            .env_clear()
            .envs(kube.env(websockets))
            .env("PATH", "/usr/bin:/bin")
            .env("SHELL", "/bin/sh")
            .env("TERM", "xterm")
            .stdin(StdStdio::piped())
            .stdout(StdStdio::piped())
            .stderr(StdStdio::piped())
            .kill_on_drop(true);
        let out = within("kubectl exec -it", script.output())
            .await
            .expect("script");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("size=45 123"),
            "websockets={websockets}: {text:?}"
        );
        let upgrades = kube.take_upgrades();
        assert_eq!(upgrades.len(), 1, "{upgrades:?}");
    }
}
