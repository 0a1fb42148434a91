//! Wasm fixtures for networking, built at test time from WAT: a
//! `wasi:http/proxy` component answering every request, and a
//! `wasi:cli/command` component serving TCP through `wasi:sockets`.
//!
//! No Rust Wasm target is needed: each fixture is a core module in WAT that
//! imports the canonical-ABI lowerings of the WASI 0.2 functions it calls.
//! `wit-component` turns it into a component, with the WASI WIT files that
//! ship in the `wasmtime-wasi-http` crate's source (the exact WASI version
//! the shim's wasmtime implements).
//!
//! The core signatures below are the canonical ABI's flattening of the WIT
//! functions (`Resolve::wasm_signature`): results larger than one value are
//! written through a return pointer; a `result<own<T>, E>` there is a
//! discriminant byte at +0 and the handle at +4.

use std::path::{Path, PathBuf};

use wit_component::{ComponentEncoder, StringEncoding, embed_component_metadata};
use wit_parser::Resolve;

use crate::error::{HarnessError, Result};

/// The WASI 0.2 version of the WIT files used.
pub const WASI_VERSION: &str = "0.2.12";
/// The crate whose source holds those WIT files (the shim's wasi:http).
const WIT_CRATE: &str = "wasmtime-wasi-http-48.0.8";
/// Overrides where the WIT directory is looked for.
const WIT_DIR_ENV: &str = "SKIFF_WASI_WIT_DIR";

/// The body of every response of [`hello_http_component`] (status 200).
pub const HELLO_HTTP_BODY: &str = "hello from a wasi:http component\n";
/// What [`hello_http_component`] writes to stdout per request.
pub const HELLO_HTTP_LOG_LINE: &str = "handling a request";
/// What [`socket_server_component`] sends every TCP client.
pub const SOCKET_GREETING: &str = "hello over wasi:sockets\n";
/// What [`socket_server_component`] prints once it listens.
pub const SOCKET_READY_LINE: &str = "listening on tcp and udp";

/// A `wasi:http/proxy` component: each request gets status 200 and
/// [`HELLO_HTTP_BODY`], and leaves [`HELLO_HTTP_LOG_LINE`] on stdout.
/// It exports `wasi:http/incoming-handler` and not `wasi:cli/run`.
pub fn hello_http_component() -> Result<Vec<u8>> {
    proxy_component(&hello_http_wat())
}

/// A `wasi:http/proxy` component from a core module in WAT, whose imports
/// and exports carry the canonical ABI's names (e.g. an export
/// `wasi:http/incoming-handler@0.2.12#handle` taking `(param i32 i32)`).
pub fn proxy_component(wat: &str) -> Result<Vec<u8>> {
    encode("proxy", wat, &format!("wasi:http/proxy@{WASI_VERSION}"))
}

/// A `wasi:cli/command` component that binds TCP and UDP `0.0.0.0:port`
/// through `wasi:sockets`, prints [`SOCKET_READY_LINE`], then accepts TCP
/// clients forever, sending each [`SOCKET_GREETING`] and closing. A failed
/// step is named on stderr and `run` returns an error (exit code 1).
pub fn socket_server_component(port: u16) -> Result<Vec<u8>> {
    let wat = socket_server_wat(port);
    encode(
        "socket-server",
        &wat,
        &format!("wasi:cli/command@{WASI_VERSION}"),
    )
}

/// The WASI WIT directory: `$SKIFF_WASI_WIT_DIR`, else the `wit/` of
/// `wasmtime-wasi-http` in cargo's registry sources.
pub fn wit_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(WIT_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
    let sources = cargo_home.join("registry/src");
    let registries = std::fs::read_dir(&sources).map_err(|source| HarnessError::Io {
        action: "list",
        path: sources.clone(),
        source,
    })?;
    registries
        .flatten()
        .map(|registry| registry.path().join(WIT_CRATE).join("wit"))
        .find(|dir| dir.join("deps").is_dir())
        .ok_or_else(|| HarnessError::Wasm {
            what: "WASI WIT files".into(),
            reason: format!(
                "no {WIT_CRATE}/wit under {} (set {WIT_DIR_ENV})",
                sources.display()
            ),
        })
}

/// WAT → core module → component targeting `world` of the WASI WIT files.
fn encode(what: &str, wat: &str, world: &str) -> Result<Vec<u8>> {
    let error = |reason: String| HarnessError::Wasm {
        what: what.to_owned(),
        reason,
    };
    let mut module = wat::parse_str(wat).map_err(|err| error(err.to_string()))?;
    let dir = wit_dir()?;
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(&dir)
        .map_err(|err| error(format!("reading {}: {err:#}", dir.display())))?;
    let world = resolve
        .select_world(&[package], Some(world))
        .map_err(|err| error(format!("{err:#}")))?;
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .map_err(|err| error(format!("embedding the WIT world: {err:#}")))?;
    ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .map_err(|err| error(format!("{err:#}")))?
        .encode()
        .map_err(|err| error(format!("{err:#}")))
}

/// Imports shared by both fixtures: stdout, stderr and streams.
fn stream_imports() -> String {
    let v = WASI_VERSION;
    format!(
        r#"
  (import "wasi:cli/stdout@{v}" "get-stdout" (func $get-stdout (result i32)))
  (import "wasi:cli/stderr@{v}" "get-stderr" (func $get-stderr (result i32)))
  ;; (self, ptr, len, retptr) -> result<_, stream-error>
  (import "wasi:io/streams@{v}" "[method]output-stream.blocking-write-and-flush"
    (func $write-and-flush (param i32 i32 i32 i32)))
  (import "wasi:io/streams@{v}" "[resource-drop]output-stream" (func $drop-output-stream (param i32)))
  (import "wasi:io/streams@{v}" "[resource-drop]input-stream" (func $drop-input-stream (param i32)))"#
    )
}

/// `$print`: writes to stdout or stderr (after the imports, as WAT wants).
const PRINT: &str = r#"
  ;; Writes [ptr, ptr+len) to a new handle of stdout (fd 1) or stderr (2).
  (func $print (param $fd i32) (param $ptr i32) (param $len i32)
    (local $stream i32)
    (local.set $stream
      (if (result i32) (i32.eq (local.get $fd) (i32.const 1))
        (then (call $get-stdout)) (else (call $get-stderr))))
    (call $write-and-flush (local.get $stream) (local.get $ptr) (local.get $len) (i32.const 64))
    (call $drop-output-stream (local.get $stream)))"#;

/// `cabi_realloc`: a bump allocator (lowered `error-code`s may carry strings).
const BUMP_ALLOCATOR: &str = r#"
  (global $heap (mut i32) (i32.const 16384))
  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32)
        (param $size i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
      (then (if (i32.eq (memory.grow
                  (i32.add (i32.shr_u (local.get $end) (i32.const 16)) (i32.const 1)))
                (i32.const -1))
              (then unreachable))))
    (global.set $heap (local.get $end))
    (local.get $ptr))"#;

fn hello_http_wat() -> String {
    let v = WASI_VERSION;
    let imports = stream_imports();
    let body = wat_string(HELLO_HTTP_BODY);
    let body_len = HELLO_HTTP_BODY.len();
    let line = format!("{HELLO_HTTP_LOG_LINE}\n");
    let line_len = line.len();
    let line = wat_string(&line);
    format!(
        r#"(module
  {imports}
  (import "wasi:http/types@{v}" "[constructor]fields" (func $new-fields (result i32)))
  (import "wasi:http/types@{v}" "[constructor]outgoing-response"
    (func $new-response (param i32) (result i32)))
  ;; (self, retptr) -> result<own<outgoing-body>>
  (import "wasi:http/types@{v}" "[method]outgoing-response.body" (func $response-body (param i32 i32)))
  ;; (self, retptr) -> result<own<output-stream>>
  (import "wasi:http/types@{v}" "[method]outgoing-body.write" (func $body-write (param i32 i32)))
  ;; (body, option<trailers>: is-some + handle, retptr) -> result<_, error-code>
  (import "wasi:http/types@{v}" "[static]outgoing-body.finish" (func $body-finish (param i32 i32 i32 i32)))
  ;; (outparam, result<own<outgoing-response>, error-code> flattened: tag + 8 slots)
  (import "wasi:http/types@{v}" "[static]response-outparam.set"
    (func $outparam-set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@{v}" "[resource-drop]incoming-request" (func $drop-request (param i32)))
  (memory (export "memory") 1)
  {PRINT}
  (data (i32.const 1024) "{body}")
  (data (i32.const 2048) "{line}")
  {BUMP_ALLOCATOR}
  ;; Traps unless the result at the return area (64) is ok; returns its handle.
  (func $ok (result i32)
    (if (i32.load8_u (i32.const 64)) (then unreachable))
    (i32.load (i32.const 68)))
  (func (export "wasi:http/incoming-handler@{v}#handle") (param $request i32) (param $outparam i32)
    (local $response i32) (local $body i32) (local $stream i32)
    (call $print (i32.const 1) (i32.const 2048) (i32.const {line_len}))
    (call $drop-request (local.get $request))
    (local.set $response (call $new-response (call $new-fields)))
    (call $response-body (local.get $response) (i32.const 64))
    (local.set $body (call $ok))
    ;; Headers (status 200) go out now; the body streams after.
    (call $outparam-set (local.get $outparam) (i32.const 0) (local.get $response)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $body-write (local.get $body) (i32.const 64))
    (local.set $stream (call $ok))
    (call $write-and-flush (local.get $stream) (i32.const 1024) (i32.const {body_len}) (i32.const 64))
    (drop (call $ok))
    (call $drop-output-stream (local.get $stream))
    (call $body-finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 64))
    (drop (call $ok))))"#
    )
}

fn socket_server_wat(port: u16) -> String {
    let v = WASI_VERSION;
    let imports = stream_imports();
    let greeting = wat_string(SOCKET_GREETING);
    let greeting_len = SOCKET_GREETING.len();
    let ready = format!("{SOCKET_READY_LINE}\n");
    let ready_len = ready.len();
    let ready = wat_string(&ready);
    // One failure message per step, 32 bytes apart from 4096, each ending
    // in "??\n" where the error code's two digits go.
    let steps = [
        "create-tcp-socket failed: ",
        "tcp start-bind failed: ",
        "tcp finish-bind failed: ",
        "tcp start-listen failed: ",
        "tcp finish-listen failed: ",
        "create-udp-socket failed: ",
        "udp start-bind failed: ",
        "udp finish-bind failed: ",
        "accept failed: ",
    ];
    let messages: String = steps
        .iter()
        .enumerate()
        .map(|(i, text)| format!("(data (i32.const {}) \"{text}??\\n\")\n", 4096 + 32 * i))
        .collect();
    let lengths: Vec<u8> = steps
        .iter()
        .map(|text| u8::try_from(text.len() + 3).unwrap_or(u8::MAX))
        .collect();
    let lengths = wat_bytes(&lengths);
    // ip-socket-address ipv4 0.0.0.0:port: tag 0, then port, 4 octets and
    // 6 unused slots of the ipv6 case.
    let any = format!(
        "(i32.const 0) (i32.const {port}) {}",
        "(i32.const 0) ".repeat(10)
    );
    format!(
        r#"(module
  {imports}
  (import "wasi:sockets/instance-network@{v}" "instance-network" (func $network (result i32)))
  ;; (address-family, retptr) -> result<own<socket>, error-code>
  (import "wasi:sockets/tcp-create-socket@{v}" "create-tcp-socket" (func $create-tcp (param i32 i32)))
  (import "wasi:sockets/udp-create-socket@{v}" "create-udp-socket" (func $create-udp (param i32 i32)))
  ;; (self, network, ip-socket-address: tag + 11 slots, retptr) -> result<_, error-code>
  (import "wasi:sockets/tcp@{v}" "[method]tcp-socket.start-bind"
    (func $tcp-start-bind (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "wasi:sockets/tcp@{v}" "[method]tcp-socket.finish-bind" (func $tcp-finish-bind (param i32 i32)))
  (import "wasi:sockets/tcp@{v}" "[method]tcp-socket.start-listen" (func $tcp-start-listen (param i32 i32)))
  (import "wasi:sockets/tcp@{v}" "[method]tcp-socket.finish-listen" (func $tcp-finish-listen (param i32 i32)))
  (import "wasi:sockets/tcp@{v}" "[method]tcp-socket.subscribe" (func $tcp-subscribe (param i32) (result i32)))
  ;; (self, retptr) -> result<tuple<own<tcp-socket>, own<input-stream>, own<output-stream>>, error-code>
  (import "wasi:sockets/tcp@{v}" "[method]tcp-socket.accept" (func $tcp-accept (param i32 i32)))
  (import "wasi:sockets/tcp@{v}" "[resource-drop]tcp-socket" (func $drop-tcp (param i32)))
  (import "wasi:sockets/udp@{v}" "[method]udp-socket.start-bind"
    (func $udp-start-bind (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "wasi:sockets/udp@{v}" "[method]udp-socket.finish-bind" (func $udp-finish-bind (param i32 i32)))
  (import "wasi:io/poll@{v}" "[method]pollable.block" (func $block (param i32)))
  (import "wasi:io/poll@{v}" "[resource-drop]pollable" (func $drop-pollable (param i32)))
  (memory (export "memory") 1)
  {PRINT}
  (data (i32.const 1024) "{greeting}")
  (data (i32.const 2048) "{ready}")
  {messages}
  (global $lengths i32 (i32.const 8192))
  (data (i32.const 8192) "{lengths}")
  {BUMP_ALLOCATOR}
  ;; Whether the result at the return area (64) is an error; if so, names
  ;; step $step and its error code on stderr.
  (func $failed (param $step i32) (result i32)
    (local $msg i32) (local $len i32) (local $code i32)
    (if (i32.eqz (i32.load8_u (i32.const 64))) (then (return (i32.const 0))))
    (local.set $msg (i32.add (i32.const 4096) (i32.mul (local.get $step) (i32.const 32))))
    (local.set $len (i32.load8_u (i32.add (global.get $lengths) (local.get $step))))
    (local.set $code (i32.load8_u (i32.const 68)))
    (i32.store8 (i32.add (local.get $msg) (i32.sub (local.get $len) (i32.const 3)))
      (i32.add (i32.const 48) (i32.div_u (local.get $code) (i32.const 10))))
    (i32.store8 (i32.add (local.get $msg) (i32.sub (local.get $len) (i32.const 2)))
      (i32.add (i32.const 48) (i32.rem_u (local.get $code) (i32.const 10))))
    (call $print (i32.const 2) (local.get $msg) (local.get $len))
    (i32.const 1))
  (func (export "wasi:cli/run@{v}#run") (result i32)
    (local $net i32) (local $tcp i32) (local $udp i32) (local $ready i32) (local $client i32)
    (local.set $net (call $network))
    (call $create-tcp (i32.const 0) (i32.const 64))
    (if (call $failed (i32.const 0)) (then (return (i32.const 1))))
    (local.set $tcp (i32.load (i32.const 68)))
    (call $tcp-start-bind (local.get $tcp) (local.get $net) {any} (i32.const 64))
    (if (call $failed (i32.const 1)) (then (return (i32.const 1))))
    (call $tcp-finish-bind (local.get $tcp) (i32.const 64))
    (if (call $failed (i32.const 2)) (then (return (i32.const 1))))
    (call $tcp-start-listen (local.get $tcp) (i32.const 64))
    (if (call $failed (i32.const 3)) (then (return (i32.const 1))))
    (call $tcp-finish-listen (local.get $tcp) (i32.const 64))
    (if (call $failed (i32.const 4)) (then (return (i32.const 1))))
    (call $create-udp (i32.const 0) (i32.const 64))
    (if (call $failed (i32.const 5)) (then (return (i32.const 1))))
    (local.set $udp (i32.load (i32.const 68)))
    (call $udp-start-bind (local.get $udp) (local.get $net) {any} (i32.const 64))
    (if (call $failed (i32.const 6)) (then (return (i32.const 1))))
    (call $udp-finish-bind (local.get $udp) (i32.const 64))
    (if (call $failed (i32.const 7)) (then (return (i32.const 1))))
    (call $print (i32.const 1) (i32.const 2048) (i32.const {ready_len}))
    (local.set $ready (call $tcp-subscribe (local.get $tcp)))
    (loop $serve
      (call $block (local.get $ready))
      (call $tcp-accept (local.get $tcp) (i32.const 64))
      (if (call $failed (i32.const 8)) (then (return (i32.const 1))))
      ;; The tuple: socket at +4, input stream at +8, output stream at +12.
      (local.set $client (i32.load (i32.const 68)))
      (call $write-and-flush (i32.load (i32.const 76)) (i32.const 1024) (i32.const {greeting_len})
        (i32.const 256))
      (call $drop-output-stream (i32.load (i32.const 76)))
      (call $drop-input-stream (i32.load (i32.const 72)))
      (call $drop-tcp (local.get $client))
      (br $serve))
    (i32.const 0)))"#
    )
}

/// A WAT string literal's contents for `text`.
fn wat_string(text: &str) -> String {
    wat_bytes(text.as_bytes())
}

/// Bytes as WAT string escapes.
fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_component(bytes: &[u8]) -> bool {
        bytes.starts_with(b"\0asm\x0d\0\x01\0")
    }

    #[test]
    fn the_wit_files_are_found() {
        let dir = wit_dir().unwrap();
        assert!(dir.join("deps/http.wit").is_file(), "{}", dir.display());
    }

    #[test]
    fn fixtures_become_components() {
        assert!(is_component(&hello_http_component().unwrap()));
        assert!(is_component(&socket_server_component(9090).unwrap()));
    }

    #[test]
    fn escapes() {
        assert_eq!(wat_string("a\n"), "\\61\\0a");
    }
}
