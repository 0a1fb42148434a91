//! `wasi:http/proxy` components, served over HTTP/1.1 as `wasmtime serve`
//! does: one pre-instantiated component, a fresh store (and instance) per
//! request, on the container's port on every address of the pod's network
//! namespace (the child joined it before loading the guest).
//!
//! Each request's store has the container's memory limit and the epoch
//! deadline of any guest: SIGTERM (see `interrupt`) traps requests in flight
//! and stops the accept loop through a hook, and the child exits 143. A
//! request that traps gets a 500 and its error on the container's stderr;
//! one that goes past the memory limit ends the container as OOMKilled, as
//! the kernel would end a Linux server. Outgoing requests
//! (`wasi:http/outgoing-handler`) are refused: `HTTP-request-denied`.

use std::convert::Infallible;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::guest::{self, GuestSpec, Outcome};
use super::interrupt;
use super::limits::GuestLimiter;

/// The export that makes a component an HTTP handler.
const INCOMING_HANDLER: &str = "wasi:http/incoming-handler";
/// The export that makes a component a command.
const CLI_RUN: &str = "wasi:cli/run";
/// At most this many threads run requests.
const MAX_WORKERS: usize = 4;
/// The pause after a failed accept (out of descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Whether `component` is served over HTTP: it exports
/// `wasi:http/incoming-handler` (any 0.2 version) and not `wasi:cli/run`.
pub fn is_proxy(engine: &Engine, component: &Component) -> bool {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let exports_interface = |interface: &str| {
        exports.iter().any(|name| {
            name.strip_prefix(interface)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('@'))
        })
    };
    exports_interface(INCOMING_HANDLER) && !exports_interface(CLI_RUN)
}

/// Why serving ended.
#[derive(Debug)]
enum Stop {
    /// SIGTERM or SIGINT.
    Interrupted,
    /// A request went past the memory limit: the error.
    OutOfMemory(String),
}

/// A linked `wasi:http/proxy` component and what each request's store gets.
pub struct HttpServer {
    pre: ProxyPre<RequestState>,
    spec: GuestSpec,
}

impl HttpServer {
    /// Links `component` with WASI and `wasi:http` (async, as requests run
    /// on tokio) and checks that a request's WASI context can be made.
    pub fn new(engine: &Engine, component: &Component, spec: &GuestSpec) -> Result<Self, String> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|err| format!("linking WASI preview 2: {err:#}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|err| format!("linking wasi:http: {err:#}"))?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(|err| format!("linking the component: {err:#}"))?;
        let pre = ProxyPre::new(pre)
            .map_err(|err| format!("the component is not a wasi:http/proxy: {err:#}"))?;
        // A bad preopen fails create, not every request.
        RequestState::new(spec)?;
        Ok(HttpServer {
            pre,
            spec: spec.clone(),
        })
    }

    /// Serves on the spec's port until SIGTERM or a request out of memory.
    pub fn run(self) -> Outcome {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers())
            .thread_name("wasm-http")
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => return failed(&format!("starting the HTTP server's runtime: {err}")),
        };
        let outcome = runtime.block_on(async {
            let (stopper, stop) = mpsc::unbounded_channel();
            let interrupted = stopper.clone();
            interrupt::on_interrupt(move || {
                let _ = interrupted.send(Stop::Interrupted);
            });
            if interrupt::requested().is_some() {
                return Outcome::Exited(0);
            }
            let port = self.spec.http_port;
            let listener = match bind(port).await {
                Ok(listener) => listener,
                Err(err) => return failed(&format!("listening on port {port}: {err}")),
            };
            announce(&listener);
            self.serve(listener, stopper, stop).await
        });
        // Requests still running are the process's to end, not to wait for.
        runtime.shutdown_background();
        outcome
    }

    /// Accepts connections on `listener` until told to `stop`; `stopper`
    /// is how requests stop the server.
    async fn serve(
        self,
        listener: TcpListener,
        stopper: mpsc::UnboundedSender<Stop>,
        mut stop: mpsc::UnboundedReceiver<Stop>,
    ) -> Outcome {
        let server = Arc::new(Shared {
            pre: self.pre,
            spec: self.spec,
            stopper,
        });
        loop {
            tokio::select! {
                why = stop.recv() => return match why {
                    Some(Stop::OutOfMemory(err)) => Outcome::OutOfMemory(err),
                    Some(Stop::Interrupted) | None => Outcome::Exited(0),
                },
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(serve_connection(server.clone(), stream));
                    }
                    Err(err) => {
                        log(&format!("accepting a connection: {err}"));
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
    }
}

/// Threads for requests: the CPUs the cgroup allows, within reason.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_WORKERS)
}

/// Listens on every address: `[::]` (IPv4 too, as `bindv6only` is 0 in a
/// fresh namespace), or `0.0.0.0` where IPv6 is missing.
async fn bind(port: u16) -> std::io::Result<TcpListener> {
    match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).await {
        Ok(listener) => Ok(listener),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => Err(err),
        Err(_) => TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await,
    }
}

/// One line in the container's log per server start.
fn announce(listener: &TcpListener) {
    let address = listener
        .local_addr()
        .map_or_else(|err| format!("?({err})"), |addr| addr.to_string());
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "Serving HTTP on http://{address}/");
}

/// A line on the container's stderr.
fn log(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "Error: {message}");
}

/// Ends the guest with exit code 1 after saying why.
fn failed(message: &str) -> Outcome {
    log(message);
    Outcome::Exited(1)
}

/// What every connection shares.
struct Shared {
    pre: ProxyPre<RequestState>,
    spec: GuestSpec,
    stopper: mpsc::UnboundedSender<Stop>,
}

async fn serve_connection(server: Arc<Shared>, stream: TcpStream) {
    let service = service_fn(move |request| {
        let server = server.clone();
        async move { Ok::<_, Infallible>(server.handle(request).await) }
    });
    // A client going away mid-request is not the guest's error.
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

impl Shared {
    /// The guest's response, or a 500 when it has none.
    async fn handle(&self, request: Request<Incoming>) -> Response<HyperOutgoingBody> {
        match self.call_guest(request).await {
            Ok(response) => response,
            Err(message) => {
                if let Some(message) = message {
                    log(&message);
                }
                internal_error()
            }
        }
    }

    /// Runs the guest's handler in a fresh store; `Err` holds what to log
    /// (`None`: logged already).
    async fn call_guest(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<HyperOutgoingBody>, Option<String>> {
        let state = RequestState::new(&self.spec).map_err(Some)?;
        let mut store = guest::new_store(self.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        let (sender, receiver) = oneshot::channel();
        let mut http = store.data_mut().http();
        let request = http
            .new_incoming_request(Scheme::Http, request)
            .map_err(|err| Some(format!("reading the request: {err:#}")))?;
        let outparam = http
            .new_response_outparam(sender)
            .map_err(|err| Some(format!("preparing the response: {err:#}")))?;
        let pre = self.pre.clone();
        let stopper = self.stopper.clone();
        // Its own task: the guest may go on writing the body after it set
        // the response.
        let task = tokio::spawn(async move {
            let result = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, outparam)
                    .await
            }
            .await;
            if let Err(err) = result {
                match Outcome::of(Err(err), store.data().limits.exceeded()) {
                    Outcome::OutOfMemory(err) => {
                        let _ = stopper.send(Stop::OutOfMemory(err));
                    }
                    outcome => guest::report(&outcome),
                }
            }
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(Some(format!("the guest answered with an error: {code:?}"))),
            Err(_) => {
                // The store is gone: the task ended (and said why).
                let _ = task.await;
                Err(None)
            }
        }
    }
}

fn internal_error() -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from_static(b"internal server error\n"))
        .map_err(Into::into)
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// One request's store data.
struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: RefuseOutgoing,
    limits: GuestLimiter,
}

impl RequestState {
    fn new(spec: &GuestSpec) -> Result<Self, String> {
        Ok(RequestState {
            wasi: guest::wasi_builder(spec)?.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: RefuseOutgoing,
            limits: GuestLimiter::new(spec.memory_limit),
        })
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// `wasi:http` without outgoing requests (no HTTP client, no TLS stack).
struct RefuseOutgoing;

type SendResult = wasmtime_wasi_http::Result<(
    hyper::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for RefuseOutgoing {
    fn send_request(
        &mut self,
        _request: hyper::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        Box::new(std::future::ready(Err(
            wasmtime_wasi_http::Error::HttpRequestDenied,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::wasm::cache::{Compiled, deserialize, precompile};
    use skiff_tests::wasm_http::{HELLO_HTTP_BODY, hello_http_component, proxy_component};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn component(engine: &Engine, wasm: &[u8]) -> Component {
        let serialized = precompile(engine, wasm).unwrap();
        match deserialize(engine, wasm, &serialized).unwrap() {
            Compiled::Component(component) => component,
            Compiled::Module(_) => panic!("not a component"),
        }
    }

    /// A handler that grows its memory by 64 MiB, then traps.
    const GREEDY: &str = r#"(module (memory 1)
        (func (export "wasi:http/incoming-handler@0.2.12#handle") (param i32 i32)
            (drop (memory.grow (i32.const 1024))) unreachable))"#;

    #[test]
    fn proxies_are_told_from_commands() {
        let engine = guest::engine().unwrap();
        let hello = component(&engine, &hello_http_component().unwrap());
        assert!(is_proxy(&engine, &hello));
        let command = component(
            &engine,
            &wat::parse_str(
                r#"(component
                (core module $m (func (export "run") (result i32) (i32.const 0)))
                (core instance $i (instantiate $m))
                (func $run (result (result)) (canon lift (core func $i "run")))
                (instance $cli (export "run" (func $run)))
                (export "wasi:cli/run@0.2.0" (instance $cli)))"#,
            )
            .unwrap(),
        );
        assert!(!is_proxy(&engine, &command));
    }

    /// A server for `wasm` on 127.0.0.1: its address, its stopper and the
    /// task that ends with its outcome.
    async fn start(
        wasm: &[u8],
        spec: GuestSpec,
    ) -> (
        std::net::SocketAddr,
        mpsc::UnboundedSender<Stop>,
        tokio::task::JoinHandle<Outcome>,
    ) {
        let engine = guest::engine().unwrap();
        let server = HttpServer::new(&engine, &component(&engine, wasm), &spec).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stopper, stop) = mpsc::unbounded_channel();
        let task = tokio::spawn(server.serve(listener, stopper.clone(), stop));
        (address, stopper, task)
    }

    /// One request on its own connection: the whole response.
    async fn get(address: std::net::SocketAddr) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /x HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_request_gets_the_guests_answer() {
        let (address, stopper, task) =
            start(&hello_http_component().unwrap(), GuestSpec::default()).await;
        for _ in 0..3 {
            let response = get(address).await;
            assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
            // Chunked: the guest sets no content-length.
            assert!(response.contains(HELLO_HTTP_BODY), "{response}");
        }
        stopper.send(Stop::Interrupted).unwrap();
        assert_eq!(task.await.unwrap(), Outcome::Exited(0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trap_is_a_500_and_the_memory_limit_ends_serving() {
        let greedy = proxy_component(GREEDY).unwrap();
        let (address, stopper, task) = start(&greedy, GuestSpec::default()).await;
        for _ in 0..2 {
            let response = get(address).await;
            assert!(response.starts_with("HTTP/1.1 500 "), "{response}");
        }
        stopper.send(Stop::Interrupted).unwrap();
        assert_eq!(task.await.unwrap(), Outcome::Exited(0));

        let limited = GuestSpec {
            memory_limit: Some(16 << 20),
            ..GuestSpec::default()
        };
        let (address, _stopper, task) = start(&greedy, limited).await;
        let response = get(address).await;
        assert!(response.starts_with("HTTP/1.1 500 "), "{response}");
        let outcome = task.await.unwrap();
        assert!(
            matches!(&outcome, Outcome::OutOfMemory(err) if err.contains("memory limit")),
            "{outcome:?}"
        );
    }
}
