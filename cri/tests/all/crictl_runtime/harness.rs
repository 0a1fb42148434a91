//! The fake runtime served on a temp unix socket beside a fake
//! ImageService and a real streaming server whose "processes" are
//! scripted, so `skiff crictl`'s runtime verbs run end to end.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::{ImageService, ImageServiceServer};
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use skiff_cri::crictl::CrictlArgs;
use skiff_cri::streaming::{
    ProcessIo, Stdio, StreamError, StreamingBackend, StreamingConfig, StreamingServer,
};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixListener};
use tokio::sync::oneshot;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::fake::{FakeRuntime, IMAGE_ID, IMAGE_TAG, Reply, State};

/// An ImageService that knows one image, under any reference but
/// `missing*`, and records pulls.
#[derive(Debug, Clone)]
pub struct FakeImages {
    state: Arc<Mutex<State>>,
}

fn fake_image(reference: &str) -> Option<cri::Image> {
    if reference.starts_with("missing") {
        return None;
    }
    Some(cri::Image {
        id: IMAGE_ID.into(),
        repo_tags: vec![IMAGE_TAG.into()],
        repo_digests: vec![],
        size: 2_155_345,
        uid: None,
        username: String::new(),
        spec: None,
        pinned: false,
    })
}

#[tonic::async_trait]
impl ImageService for FakeImages {
    async fn list_images(
        &self,
        _r: Request<cri::ListImagesRequest>,
    ) -> Reply<cri::ListImagesResponse> {
        Ok(Response::new(cri::ListImagesResponse {
            images: fake_image("busybox").into_iter().collect(),
        }))
    }

    async fn image_status(
        &self,
        r: Request<cri::ImageStatusRequest>,
    ) -> Reply<cri::ImageStatusResponse> {
        let image = r.into_inner().image.unwrap_or_default().image;
        Ok(Response::new(cri::ImageStatusResponse {
            image: fake_image(&image),
            info: HashMap::new(),
        }))
    }

    async fn pull_image(&self, r: Request<cri::PullImageRequest>) -> Reply<cri::PullImageResponse> {
        let r = r.into_inner();
        let image = r.image.unwrap_or_default().image;
        if image.starts_with("missing") {
            return Err(Status::not_found(format!("{image}: not found")));
        }
        let auth = r.auth.map(|a| a.username).unwrap_or_default();
        let uid = r
            .sandbox_config
            .and_then(|c| c.metadata)
            .map(|m| m.uid)
            .unwrap_or_default();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .pulled
            .push(format!("{image} auth={auth} sandbox_uid={uid}"));
        Ok(Response::new(cri::PullImageResponse {
            image_ref: IMAGE_ID.into(),
        }))
    }

    async fn remove_image(
        &self,
        _r: Request<cri::RemoveImageRequest>,
    ) -> Reply<cri::RemoveImageResponse> {
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _r: Request<cri::ImageFsInfoRequest>,
    ) -> Reply<cri::ImageFsInfoResponse> {
        Ok(Response::new(cri::ImageFsInfoResponse::default()))
    }
}

/// Scripted processes for the streaming server: `exec` prints its command
/// on stdout and `oops` on stderr (a terminal gets both on stdout) and
/// exits with the number after `exit`, if any; `attach` prints
/// `attached`; port-forward connects to 127.0.0.1 on the host.
#[derive(Debug, Default)]
struct ScriptedBackend;

async fn feed(text: String) -> Box<dyn tokio::io::AsyncRead + Send + Unpin> {
    let (mut writer, reader) = tokio::io::duplex(4096);
    tokio::spawn(async move {
        let _ = writer.write_all(text.as_bytes()).await;
    });
    Box::new(reader)
}

fn scripted(
    out: String,
    err: String,
    stdio: Stdio,
    code: i32,
) -> BoxFuture<'static, Result<ProcessIo, StreamError>> {
    async move {
        let (stdout, stderr) = if stdio.tty {
            (Some(feed(format!("{out}{err}")).await), None)
        } else {
            (
                stdio.stdout.then_some(feed(out).await),
                if stdio.stderr {
                    Some(feed(err).await)
                } else {
                    None
                },
            )
        };
        Ok(ProcessIo {
            stdin: None,
            stdout,
            stderr,
            resize: None,
            exit: async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(code)
            }
            .boxed(),
        })
    }
    .boxed()
}

impl StreamingBackend for ScriptedBackend {
    fn exec<'a>(
        &'a self,
        _container_id: &'a str,
        cmd: Vec<String>,
        stdio: Stdio,
    ) -> BoxFuture<'a, Result<ProcessIo, StreamError>> {
        let code = match cmd.as_slice() {
            [first, code] if first == "exit" => code.parse().unwrap_or(1),
            _ => 0,
        };
        scripted(
            format!("ran {}\n", cmd.join(" ")),
            "oops\n".into(),
            stdio,
            code,
        )
    }

    fn attach<'a>(
        &'a self,
        _container_id: &'a str,
        stdio: Stdio,
    ) -> BoxFuture<'a, Result<ProcessIo, StreamError>> {
        scripted("attached\n".into(), "bye\n".into(), stdio, 0)
    }

    fn port_forward<'a>(
        &'a self,
        _sandbox_id: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<TcpStream, StreamError>> {
        async move {
            TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|source| StreamError::Io {
                    op: format!("connect to port {port}"),
                    source,
                })
        }
        .boxed()
    }
}

async fn run_crictl(argv: Vec<String>) -> (i32, String, String) {
    let parsed = <CrictlArgs as clap::Parser>::try_parse_from(&argv).expect("crictl arguments");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = skiff_cri::crictl::run_with(parsed, &mut out, &mut err, false).await;
    (
        code,
        String::from_utf8(out).expect("utf-8 stdout"),
        String::from_utf8(err).expect("utf-8 stderr"),
    )
}

/// The fake served on a socket, with a crictl config file beside it.
pub struct Harness {
    pub dir: TempDir,
    pub state: Arc<Mutex<State>>,
    endpoint: String,
    config: PathBuf,
    stop: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Harness {
    pub async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("cri.sock");
        let listener = UnixListener::bind(&socket).expect("bind the fake CRI socket");
        let stop = CancellationToken::new();
        let streaming =
            StreamingServer::bind(StreamingConfig::default(), Arc::new(ScriptedBackend))
                .await
                .expect("bind the streaming server");
        let state = Arc::new(Mutex::new(State::default()));
        let runtime = FakeRuntime {
            state: state.clone(),
            urls: streaming.urls(),
        };
        let images = FakeImages {
            state: state.clone(),
        };
        tokio::spawn(streaming.serve(stop.clone()));
        let shutdown = stop.clone();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(RuntimeServiceServer::new(runtime))
                .add_service(ImageServiceServer::new(images))
                .serve_with_incoming_shutdown(
                    UnixListenerStream::new(listener),
                    shutdown.cancelled_owned(),
                )
                .await;
        });
        let config = dir.path().join("crictl.yaml");
        std::fs::write(&config, "").expect("write crictl.yaml");
        Harness {
            endpoint: format!("unix://{}", socket.display()),
            config,
            dir,
            state,
            stop,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec![
            "crictl".to_owned(),
            "-c".to_owned(),
            self.config.display().to_string(),
            "-r".to_owned(),
            self.endpoint.clone(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }

    /// Runs `skiff crictl`; (exit code, stdout, stderr).
    pub async fn crictl(&self, args: &[&str]) -> (i32, String, String) {
        run_crictl(self.argv(args)).await
    }

    /// Runs `skiff crictl` on a thread of its own (its future is not
    /// `Send`), for commands that run until stopped; the result arrives
    /// on the receiver.
    pub fn crictl_in_background(&self, args: &[&str]) -> oneshot::Receiver<(i32, String, String)> {
        let argv = self.argv(args);
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for crictl");
            let _ = tx.send(runtime.block_on(run_crictl(argv)));
        });
        rx
    }

    /// Writes a file in the harness directory; its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&path, text).expect("write file");
        path.display().to_string()
    }
}
