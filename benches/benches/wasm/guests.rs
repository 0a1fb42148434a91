//! The Wasm guests the benchmark runs, packed as OCI images and pushed to
//! the open test registry.

use skiff_tests::TestRegistries;
use skiff_tests::oci::media_type::{WASM_COMPONENT_LAYER, WASM_LAYER};
use skiff_tests::{wasm, wasm_http};

/// Prints "sleeping" once, then sleeps in `poll_oneoff` an hour at a time,
/// forever: an idle guest.
const SLEEPER_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 300) "sleeping\n")
  (func (export "_start")
    (i32.store (i32.const 400) (i32.const 300))
    (i32.store (i32.const 404) (i32.const 9))
    (drop (call $fd_write (i32.const 1) (i32.const 400) (i32.const 1) (i32.const 408)))
    ;; One subscription at 0: a relative monotonic clock of one hour.
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 3600000000000))
    (loop $forever
      (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))
      (br $forever))))
"#;

/// One guest image.
#[derive(Debug, Clone)]
pub struct Guest {
    /// A short name for reports.
    pub name: &'static str,
    /// What it is, for the header.
    pub what: &'static str,
    /// The pulled image reference.
    pub image: String,
    /// Size of the Wasm module, in bytes.
    pub module_bytes: usize,
    /// The first line the guest writes to stdout.
    pub first_line: &'static str,
}

/// The benchmark's guests.
#[derive(Debug)]
pub struct Guests {
    /// `HELLO_WAT`: its first action writes "hello from wasm".
    pub hello: Guest,
    /// `tests/wasm/echo.c` compiled with wasi-libc: prints its arguments.
    pub echo: Guest,
    /// [`SLEEPER_WAT`]: prints "sleeping" and sleeps.
    pub sleeper: Guest,
    /// `wasm_http::hello_http_component`: a `wasi:http/proxy` component
    /// answering every request with status 200 and a short body.
    pub http: Guest,
}

impl Guests {
    /// Every image, to pull.
    pub fn images(&self) -> [&str; 4] {
        [
            &self.hello.image,
            &self.echo.image,
            &self.sleeper.image,
            &self.http.image,
        ]
    }
}

/// Builds the modules and their images and pushes them.
pub fn push(regs: &TestRegistries) -> anyhow::Result<Guests> {
    let hello = wasm::wat(wasm::HELLO_WAT)?;
    let echo = wasm::c_program("echo", wasm::ECHO_C)?;
    let sleeper = wasm::wat(SLEEPER_WAT)?;
    let http = wasm_http::hello_http_component()?;
    let push = |image: &skiff_tests::oci::Image, name: &str| -> anyhow::Result<String> {
        regs.open.push(image, name)?;
        Ok(regs.open.reference(name))
    };
    Ok(Guests {
        hello: Guest {
            name: "hello.wat",
            what: "WAT, writes one line with fd_write as its first action; \
                   wasi/wasm artifact image",
            image: push(
                &wasm::artifact_image(&hello, WASM_LAYER),
                "bench-wasm/hello:v1",
            )?,
            module_bytes: hello.len(),
            first_line: "hello from wasm",
        },
        echo: Guest {
            name: "echo.c",
            what: "C with wasi-libc (clang -O2), printf of its arguments (stdout is \
                   flushed at exit, microseconds later); rootfs image, /app/echo.wasm",
            image: push(
                &wasm::rootfs_image(&echo, "/app/echo.wasm"),
                "bench-wasm/echo:v1",
            )?,
            module_bytes: echo.len(),
            first_line: "arg 0=/app/echo.wasm",
        },
        sleeper: Guest {
            name: "sleeper.wat",
            what: "WAT, prints \"sleeping\", then poll_oneoff for an hour at a time; \
                   wasi/wasm artifact image",
            image: push(
                &wasm::artifact_image(&sleeper, WASM_LAYER),
                "bench-wasm/sleeper:v1",
            )?,
            module_bytes: sleeper.len(),
            first_line: "sleeping",
        },
        http: Guest {
            name: "hello-http",
            what: "wasi:http/proxy component (WAT), answers every request 200 with one \
                   line (chunked), logs one line per request; component artifact image",
            image: push(
                &wasm::artifact_image(&http, WASM_COMPONENT_LAYER),
                "bench-wasm/http:v1",
            )?,
            module_bytes: http.len(),
            first_line: wasm_http::HELLO_HTTP_LOG_LINE,
        },
    })
}
