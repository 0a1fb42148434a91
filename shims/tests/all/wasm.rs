//! Wasm containers in a real shim: WAT modules compiled at test time, in
//! bundles with the annotations the runtime writes, run by the shim's Wasm
//! engine in the pod's namespaces and cgroups.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{
    LinuxBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use skiff_shims::PodNamespace;
use skiff_shims::client::CreateOptions;
use skiff_shims::protocol::{ContainerStatus, ErrorKind, ExecProcess};

use crate::harness::{Pod, ns_inode};

/// A Wasm container: its module and what the bundle says around it.
#[derive(Debug, Clone)]
struct WasmContainer {
    wat: String,
    args: Vec<String>,
    env: Vec<String>,
    memory_limit: Option<i64>,
    uid: u32,
    /// Host directories bind-mounted at these destinations.
    volumes: Vec<(PathBuf, String)>,
    /// Files to put in the rootfs, beside the module.
    files: Vec<(String, String)>,
    image: String,
    tty: bool,
}

impl WasmContainer {
    fn new(wat: &str) -> Self {
        WasmContainer {
            wat: wat.to_owned(),
            args: vec!["/app.wasm".into()],
            env: vec!["PATH=/".into()],
            memory_limit: None,
            uid: 0,
            volumes: Vec::new(),
            files: Vec::new(),
            image: format!("sha256:{:064x}", next_image_id()),
            tty: false,
        }
    }
}

/// A different image id per container unless a test shares one.
fn next_image_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// The pod's compile cache.
fn cache_dir(pod: &Pod) -> PathBuf {
    pod.path().join("wasm-cache")
}

/// Writes a rootfs (world-readable: the guest may run as any user) and the
/// bundle of `container`; returns the bundle.
fn write_bundle(pod: &Pod, id: &str, container: &WasmContainer) -> Result<PathBuf> {
    let bundle = pod.path().join("containers").join(id);
    let rootfs = pod.path().join("wasm-rootfs").join(id);
    std::fs::create_dir_all(&bundle)?;
    std::fs::create_dir_all(&rootfs)?;
    for dir in [
        pod.path().to_path_buf(),
        pod.path().join("wasm-rootfs"),
        rootfs.clone(),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let wasm = wat::parse_str(&container.wat).context("assembling the fixture")?;
    std::fs::write(rootfs.join("app.wasm"), wasm)?;
    for (name, text) in &container.files {
        std::fs::write(rootfs.join(name), text)?;
    }
    spec(pod, id, container, &rootfs)?.save(bundle.join("config.json"))?;
    Ok(bundle)
}

fn spec(pod: &Pod, id: &str, container: &WasmContainer, rootfs: &Path) -> Result<Spec> {
    let process = ProcessBuilder::default()
        .args(container.args.clone())
        .env(container.env.clone())
        .cwd("/")
        .terminal(container.tty)
        .user(
            UserBuilder::default()
                .uid(container.uid)
                .gid(container.uid)
                .build()?,
        )
        .build()?;
    let mut namespaces = Vec::new();
    for (kind, typ) in [
        (PodNamespace::Net, LinuxNamespaceType::Network),
        (PodNamespace::Ipc, LinuxNamespaceType::Ipc),
        (PodNamespace::Uts, LinuxNamespaceType::Uts),
    ] {
        if pod.args.creates(kind) {
            namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(typ)
                    .path(pod.path().join("ns").join(kind.name()))
                    .build()?,
            );
        }
    }
    let mut resources = LinuxResourcesBuilder::default();
    if let Some(limit) = container.memory_limit {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(pod.cgroup_parent.join(id))
        .resources(resources.build()?)
        .build()?;
    let mut mounts = Vec::new();
    for (source, destination) in &container.volumes {
        mounts.push(
            MountBuilder::default()
                .destination(destination)
                .typ("bind")
                .source(source)
                .options(vec!["rbind".to_string(), "rw".to_string()])
                .build()?,
        );
    }
    let annotations: std::collections::HashMap<String, String> = [
        ("io.skiff.engine", "wasm".to_owned()),
        ("io.skiff.wasm.module", "/app.wasm".to_owned()),
        ("io.skiff.wasm.image", container.image.clone()),
        (
            "io.skiff.wasm.cache-dir",
            cache_dir(pod).display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Ok(SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(rootfs)
                .readonly(false)
                .build()?,
        )
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .annotations(annotations)
        .build()?)
}

async fn create(pod: &Pod, id: &str, container: &WasmContainer) -> Result<i32> {
    let bundle = write_bundle(pod, id, container)?;
    let options = CreateOptions {
        log_path: Some(pod.log_path(id)),
        tty: container.tty,
        ..CreateOptions::default()
    };
    Ok(pod.client.create(id, &bundle, &options).await?)
}

async fn run(pod: &Pod, id: &str, container: &WasmContainer) -> Result<i32> {
    create(pod, id, container).await?;
    Ok(pod.client.start(id).await?.0)
}

const FD_WRITE: &str = r#"(import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))"#;
const PROC_EXIT: &str = r#"(import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))"#;

/// A module writing `out` to stdout and `err` to stderr, then exiting
/// with `code` (returning from `_start` when 0).
fn printer(out: &str, err: &str, code: i32) -> String {
    let exit = if code == 0 {
        String::new()
    } else {
        format!("(call $proc_exit (i32.const {code}))")
    };
    format!(
        r#"(module {FD_WRITE} {PROC_EXIT}
            (memory (export "memory") 1)
            (data (i32.const 64) "{out}")
            (data (i32.const 1024) "{err}")
            (func $write (param $fd i32) (param $ptr i32) (param $len i32)
                (i32.store (i32.const 0) (local.get $ptr))
                (i32.store (i32.const 4) (local.get $len))
                (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
            (func (export "_start")
                (call $write (i32.const 1) (i32.const 64) (i32.const {out_len}))
                (call $write (i32.const 2) (i32.const 1024) (i32.const {err_len}))
                {exit}))"#,
        out = out.escape_default(),
        err = err.escape_default(),
        out_len = out.len(),
        err_len = err.len(),
    )
}

/// Prints its argv and environment (one per line), a file of the rootfs
/// (preopen fd 3, `/`) and one of the volume (fd 4, `/data`), and writes
/// `written.txt` into the volume. An error exits with 100 + errno.
const INSPECTOR: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "hello.txt")
  (data (i32.const 120) "greeting.txt")
  (data (i32.const 140) "written.txt")
  (data (i32.const 160) "from wasm\n")
  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $lines (param $ptr i32) (param $len i32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (if (i32.eqz (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (then (i32.store8 (i32.add (local.get $ptr) (local.get $i)) (i32.const 10))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next))))
  (func $check (param $errno i32)
    (if (local.get $errno) (then (call $proc_exit (i32.add (i32.const 100) (local.get $errno))))))
  (func $cat (param $dir i32) (param $path i32) (param $len i32)
    (call $check (call $path_open (local.get $dir) (i32.const 0) (local.get $path) (local.get $len)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 24)))
    (i32.store (i32.const 0) (i32.const 8192))
    (i32.store (i32.const 4) (i32.const 4096))
    (call $check (call $fd_read (i32.load (i32.const 24)) (i32.const 0) (i32.const 1) (i32.const 28)))
    (call $print (i32.const 8192) (i32.load (i32.const 28))))
  (func (export "_start")
    (call $check (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (call $check (call $args_get (i32.const 1024) (i32.const 4096)))
    (call $lines (i32.const 4096) (i32.load (i32.const 20)))
    (call $print (i32.const 4096) (i32.load (i32.const 20)))
    (call $check (call $environ_sizes_get (i32.const 16) (i32.const 20)))
    (call $check (call $environ_get (i32.const 1024) (i32.const 4096)))
    (call $lines (i32.const 4096) (i32.load (i32.const 20)))
    (call $print (i32.const 4096) (i32.load (i32.const 20)))
    (call $cat (i32.const 3) (i32.const 100) (i32.const 9))
    (call $cat (i32.const 4) (i32.const 120) (i32.const 12))
    (call $check (call $path_open (i32.const 4) (i32.const 0) (i32.const 140) (i32.const 11)
      (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 24)))
    (i32.store (i32.const 0) (i32.const 160))
    (i32.store (i32.const 4) (i32.const 10))
    (call $check (call $fd_write (i32.load (i32.const 24)) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Grows its memory 1 MiB at a time, forever.
const MEMORY_HOG: &str = r#"(module (memory 1)
  (func (export "_start")
    (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))))"#;

/// Spins.
const SPINNER: &str = r#"(module (func (export "_start") (loop $spin (br $spin))))"#;

/// Sleeps a minute in `poll_oneoff`: blocked in the host, never at an epoch check.
const SLEEPER: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 60000000000))
    (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))"#;

#[tokio::test]
async fn hello_logs_and_exit_codes() -> Result<()> {
    let pod = Pod::start().await?;
    run(
        &pod,
        "hello",
        &WasmContainer::new(&printer("hello from wasm\n", "to stderr\n", 0)),
    )
    .await?;
    let state = pod.wait_exit("hello").await?;
    assert_eq!(
        (state.exit_code, state.reason.as_deref()),
        (Some(0), Some("Completed"))
    );
    let mut records = pod.log_records("hello");
    records.sort();
    assert_eq!(records, ["stderr F to stderr", "stdout F hello from wasm"]);

    run(&pod, "three", &WasmContainer::new(&printer("bye\n", "", 3))).await?;
    let state = pod.wait_exit("three").await?;
    assert_eq!(
        (state.exit_code, state.reason.as_deref(), state.oom_killed),
        (Some(3), Some("Error"), false)
    );
    assert_eq!(pod.log_records("three"), ["stdout F bye"]);

    run(
        &pod,
        "trap",
        &WasmContainer::new(r#"(module (func (export "_start") unreachable))"#),
    )
    .await?;
    let state = pod.wait_exit("trap").await?;
    assert_eq!(state.exit_code, Some(134));
    assert!(!state.oom_killed);
    let log = pod.log("trap");
    assert!(
        log.contains("stderr") && log.contains("unreachable"),
        "{log}"
    );
    pod.teardown().await
}

#[tokio::test]
async fn args_env_and_preopened_directories() -> Result<()> {
    let pod = Pod::start().await?;
    let volume = pod.path().join("volume");
    std::fs::create_dir_all(&volume)?;
    std::fs::write(volume.join("greeting.txt"), "from the volume\n")?;
    let mut container = WasmContainer::new(INSPECTOR);
    container.args = vec!["/app.wasm".into(), "first arg".into(), "second".into()];
    container.env = vec!["GREETING=hi there".into(), "EMPTY=".into()];
    container.volumes = vec![(volume.clone(), "/data".into())];
    container.files = vec![("hello.txt".into(), "from the rootfs\n".into())];
    run(&pod, "inspect", &container).await?;
    let state = pod.wait_exit("inspect").await?;
    assert_eq!(state.exit_code, Some(0), "{:?}", pod.log("inspect"));
    assert_eq!(
        pod.log_records("inspect"),
        [
            "stdout F /app.wasm",
            "stdout F first arg",
            "stdout F second",
            "stdout F GREETING=hi there",
            "stdout F EMPTY=",
            "stdout F from the rootfs",
            "stdout F from the volume",
        ]
    );
    assert_eq!(
        std::fs::read_to_string(volume.join("written.txt"))?,
        "from wasm\n"
    );
    pod.teardown().await
}

#[tokio::test]
async fn over_the_memory_limit_is_oom_killed() -> Result<()> {
    let pod = Pod::start().await?;
    let mut hog = WasmContainer::new(MEMORY_HOG);
    hog.memory_limit = Some(64 << 20);
    // Not root: the OOM marker is left after dropping privileges.
    hog.uid = 1000;
    run(&pod, "hog", &hog).await?;
    let state = pod.wait_exit("hog").await?;
    assert_eq!(
        (state.exit_code, state.oom_killed, state.reason.as_deref()),
        (Some(137), true, Some("OOMKilled")),
        "{}",
        pod.log("hog")
    );
    assert!(
        pod.log("hog").contains("memory limit"),
        "{}",
        pod.log("hog")
    );

    let mut modest = WasmContainer::new(&printer("fine\n", "", 0));
    modest.memory_limit = Some(64 << 20);
    run(&pod, "modest", &modest).await?;
    let state = pod.wait_exit("modest").await?;
    assert_eq!(
        (state.exit_code, state.oom_killed, state.reason.as_deref()),
        (Some(0), false, Some("Completed"))
    );
    pod.teardown().await
}

#[tokio::test]
async fn sigterm_interrupts_a_spinning_guest() -> Result<()> {
    let pod = Pod::start().await?;
    run(&pod, "spin", &WasmContainer::new(SPINNER)).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        pod.client.state("spin").await?.status,
        ContainerStatus::Running
    );
    let asked = Instant::now();
    pod.client.signal("spin", libc::SIGTERM).await?;
    let state = pod.wait_exit("spin").await?;
    let took = asked.elapsed();
    assert_eq!(state.exit_code, Some(143));
    assert!(took < Duration::from_secs(1), "stopping took {took:?}");
    pod.teardown().await
}

#[tokio::test]
async fn sigterm_ends_a_guest_blocked_in_the_host() -> Result<()> {
    let pod = Pod::start().await?;
    run(&pod, "sleep", &WasmContainer::new(SLEEPER)).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    pod.client.signal("sleep", libc::SIGTERM).await?;
    let state = pod.wait_exit("sleep").await?;
    let took = asked.elapsed();
    assert_eq!(state.exit_code, Some(143));
    assert!(took < Duration::from_secs(1), "stopping took {took:?}");

    // A created guest that never ran ends at once.
    create(&pod, "idle", &WasmContainer::new(SPINNER)).await?;
    pod.client.signal("idle", libc::SIGTERM).await?;
    let state = pod.wait_exit("idle").await?;
    assert_eq!(state.exit_code, Some(143));
    pod.teardown().await
}

/// The one compiled file of the pod's cache, with its inode and mtime.
fn cached_file(pod: &Pod) -> Result<(PathBuf, u64, i64)> {
    let files: Vec<PathBuf> = std::fs::read_dir(cache_dir(pod))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    let [file] = files.as_slice() else {
        bail!("expected one file in the cache: {files:?}");
    };
    let meta = std::fs::metadata(file)?;
    Ok((
        file.clone(),
        meta.ino(),
        meta.mtime_nsec() + meta.mtime() * 1_000_000_000,
    ))
}

#[tokio::test]
async fn the_second_start_of_an_image_compiles_nothing() -> Result<()> {
    let pod = Pod::start().await?;
    let container = WasmContainer::new(&printer("cached\n", "", 0));
    run(&pod, "first", &container).await?;
    pod.wait_exit("first").await?;
    let (file, inode, mtime) = cached_file(&pod)?;
    assert!(file.extension().is_some_and(|e| e == "cwasm"), "{file:?}");
    pod.client.delete("first").await?;

    run(&pod, "second", &container).await?;
    let state = pod.wait_exit("second").await?;
    assert_eq!(state.exit_code, Some(0));
    assert_eq!(pod.log_records("second"), ["stdout F cached"]);
    assert_eq!(cached_file(&pod)?, (file.clone(), inode, mtime));
    let shim_log = std::fs::read_to_string(pod.path().join("shim.log"))?;
    assert!(
        shim_log.contains("cache=compiled") && shim_log.contains("cache=hit"),
        "{shim_log}"
    );

    // A corrupt file is compiled again and replaced.
    let garbage = pod.path().join("garbage");
    std::fs::write(&garbage, b"not compiled code")?;
    std::fs::rename(&garbage, &file)?;
    run(&pod, "third", &container).await?;
    let state = pod.wait_exit("third").await?;
    assert_eq!(state.exit_code, Some(0));
    let (again, new_inode, _) = cached_file(&pod)?;
    assert_eq!(again, file);
    assert_ne!(new_inode, inode);
    assert!(std::fs::read(&file)?.starts_with(b"\x7fELF"));
    pod.teardown().await
}

#[tokio::test]
async fn exec_is_refused_and_bad_modules_fail_create() -> Result<()> {
    let pod = Pod::start().await?;
    create(&pod, "guest", &WasmContainer::new(SPINNER)).await?;
    pod.client.start("guest").await?;
    let process = ExecProcess {
        args: vec!["sh".into()],
        ..ExecProcess::default()
    };
    let err = pod
        .client
        .exec("guest", "e1", &process, false, false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.to_string()
            .contains("exec is not supported for Wasm containers"),
        "{err}"
    );
    pod.client.signal("guest", libc::SIGKILL).await?;
    pod.wait_exit("guest").await?;

    // Not a module: create fails, leaving no container and no cgroup.
    let err = create(
        &pod,
        "junk",
        &WasmContainer::new("(module (func (export \"other\")))"),
    )
    .await
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("does not export \"_start\""), "{message}");
    assert_eq!(
        pod.client.state("junk").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    for root in ["/sys/fs/cgroup/memory", "/sys/fs/cgroup"] {
        let dir = Path::new(root).join(pod.cgroup_parent.strip_prefix("/")?.join("junk"));
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    pod.teardown().await
}

#[tokio::test]
async fn a_created_guest_is_in_the_pods_namespaces_and_cgroup_as_its_user() -> Result<()> {
    let pod = Pod::start().await?;
    let mut container = WasmContainer::new(SPINNER);
    container.uid = 1000;
    container.memory_limit = Some(64 << 20);
    let pid = create(&pod, "placed", &container).await?;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    for kind in [PodNamespace::Net, PodNamespace::Ipc, PodNamespace::Uts] {
        assert_eq!(
            ns_inode(&proc_dir.join("ns").join(kind.name()))?,
            ns_inode(&pod.path().join("ns").join(kind.name()))?,
            "{kind:?}"
        );
    }
    let cgroups = std::fs::read_to_string(proc_dir.join("cgroup"))?;
    let cgroup = pod.cgroup_parent.join("placed").display().to_string();
    assert!(cgroups.contains(&cgroup), "{cgroups}");
    let status = std::fs::read_to_string(proc_dir.join("status"))?;
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:\t1000\t1000\t1000")),
        "{status}"
    );
    assert!(status.lines().any(|l| l == "NoNewPrivs:\t1"), "{status}");
    // Nothing of the shim's: none of its sockets, not its log; only
    // /dev/null, the container's pipes and its own (WASI's tokio runtime
    // has a socket pair of its own).
    let fd_targets = |pid: i32| -> Result<Vec<String>> {
        let mut targets = Vec::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
            // The process may be closing a descriptor meanwhile.
            if let Ok(target) = std::fs::read_link(entry?.path()) {
                targets.push(target.display().to_string());
            }
        }
        Ok(targets)
    };
    let shim_sockets: Vec<String> = fd_targets(pod.shim_pid()?)?
        .into_iter()
        .filter(|t| t.starts_with("socket:"))
        .collect();
    assert!(!shim_sockets.is_empty());
    for target in fd_targets(pid)? {
        assert!(
            !shim_sockets.contains(&target) && !target.contains("shim.log"),
            "the guest holds {target}"
        );
    }
    // The cgroup has the container's limit, and update changes it.
    let limit_file = Path::new("/sys/fs/cgroup/memory")
        .join(pod.cgroup_parent.strip_prefix("/")?)
        .join("placed/memory.limit_in_bytes");
    assert_eq!(
        std::fs::read_to_string(&limit_file)?.trim(),
        (64 << 20).to_string()
    );
    let resources = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(128i64 << 20).build()?)
        .build()?;
    pod.client.update("placed", &resources).await?;
    assert_eq!(
        std::fs::read_to_string(&limit_file)?.trim(),
        (128 << 20).to_string()
    );
    pod.client.start("placed").await?;
    pod.client.signal("placed", libc::SIGKILL).await?;
    let state = pod.wait_exit("placed").await?;
    assert_eq!(state.exit_code, Some(137));
    assert!(!state.oom_killed);
    pod.teardown().await
}

#[tokio::test]
async fn a_guest_on_a_terminal() -> Result<()> {
    let pod = Pod::start().await?;
    let mut container = WasmContainer::new(&printer("on a tty\n", "", 0));
    container.tty = true;
    run(&pod, "tty", &container).await?;
    let state = pod.wait_exit("tty").await?;
    assert_eq!(state.exit_code, Some(0));
    pod.wait_log("tty", "on a tty").await?;
    pod.teardown().await
}

/// A `wasi:cli/command` component whose `run` returns `ok` or `err`.
fn command_component(ok: bool) -> String {
    let result = if ok { 0 } else { 1 };
    format!(
        r#"(component
            (core module $m (func (export "run") (result i32) (i32.const {result})))
            (core instance $i (instantiate $m))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $cli (export "run" (func $run)))
            (export "wasi:cli/run@0.2.0" (instance $cli)))"#
    )
}

#[tokio::test]
async fn command_components_run() -> Result<()> {
    let pod = Pod::start().await?;
    run(&pod, "ok", &WasmContainer::new(&command_component(true))).await?;
    run(&pod, "err", &WasmContainer::new(&command_component(false))).await?;
    let ok = pod.wait_exit("ok").await?;
    let err = pod.wait_exit("err").await?;
    assert_eq!((ok.exit_code, err.exit_code), (Some(0), Some(1)));
    pod.teardown().await
}
/// A `wasi:cli/command` component that writes a line through
/// `wasi:cli/stdout` and `wasi:io/streams` (WASI preview 2 proper).
const HELLO_COMPONENT: &str = r#"(component
  (type $error-instance (instance (export "error" (type (sub resource)))))
  (import "wasi:io/error@0.2.0" (instance $error (type $error-instance)))
  (alias export $error "error" (type $io-error))
  (type $streams-instance (instance
    (alias outer 1 $io-error (type $outer-error))
    (export "error" (type $error (eq $outer-error)))
    (type $own-error (own $error))
    (type $stream-error (variant (case "last-operation-failed" $own-error) (case "closed")))
    (export "stream-error" (type $exported-stream-error (eq $stream-error)))
    (export "output-stream" (type $output-stream (sub resource)))
    (type $write-result (result (error $exported-stream-error)))
    (export "[method]output-stream.blocking-write-and-flush"
      (func (param "self" (borrow $output-stream)) (param "contents" (list u8))
        (result $write-result)))))
  (import "wasi:io/streams@0.2.0" (instance $streams (type $streams-instance)))
  (alias export $streams "output-stream" (type $output-stream))
  (type $stdout-instance (instance
    (alias outer 1 $output-stream (type $outer-stream))
    (export "output-stream" (type $stream (eq $outer-stream)))
    (export "get-stdout" (func (result (own $stream))))))
  (import "wasi:cli/stdout@0.2.0" (instance $stdout (type $stdout-instance)))

  (core module $memory-module (memory (export "memory") 1))
  (core instance $memory-instance (instantiate $memory-module))
  (alias core export $memory-instance "memory" (core memory $memory))
  (alias export $stdout "get-stdout" (func $get-stdout))
  (core func $get-stdout-lowered (canon lower (func $get-stdout)))
  (alias export $streams "[method]output-stream.blocking-write-and-flush" (func $write))
  (core func $write-lowered (canon lower (func $write) (memory $memory)))
  (core module $main
    (import "host" "get-stdout" (func $get-stdout (result i32)))
    (import "host" "write" (func $write (param i32 i32 i32 i32)))
    (import "host" "memory" (memory 1))
    (data (i32.const 16) "hello from a component\n")
    (func (export "run") (result i32)
      (call $write (call $get-stdout) (i32.const 16) (i32.const 23) (i32.const 64))
      (i32.load8_u (i32.const 64))))
  (core instance $host (export "get-stdout" (func $get-stdout-lowered))
    (export "write" (func $write-lowered)) (export "memory" (memory $memory)))
  (core instance $main-instance (instantiate $main (with "host" (instance $host))))
  (func $run (result (result)) (canon lift (core func $main-instance "run")))
  (instance $cli (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $cli)))"#;

#[tokio::test]
async fn a_component_writes_through_wasi_streams() -> Result<()> {
    let pod = Pod::start().await?;
    run(&pod, "hello", &WasmContainer::new(HELLO_COMPONENT)).await?;
    let state = pod.wait_exit("hello").await?;
    assert_eq!(state.exit_code, Some(0), "{}", pod.log("hello"));
    assert_eq!(
        pod.log_records("hello"),
        ["stdout F hello from a component"]
    );
    pod.teardown().await
}
