//! The guest in wasmtime: the engine's configuration, a store with WASI
//! (preview 1 for core modules, preview 2 for components) prepared before
//! the container starts, and the run that turns the guest's end into an
//! exit code. A component exporting `wasi:http/incoming-handler` and not
//! `wasi:cli/run` is a server instead (see `http`).
//!
//! Exit codes follow the wasmtime CLI and the kernel's conventions:
//! `proc_exit(n)` (or `wasi:cli/exit`) gives `n`, returning from `_start`
//! gives 0, a `wasi:cli/run` returning an error gives 1, a trap gives 134
//! (abort) with the trap on stderr, and hitting the memory limit gives 137
//! (as the kernel's OOM killer would).

use std::io::Write;

use wasmtime::component::{self, Component, ResourceTable};
use wasmtime::{Config, Engine, ExternType, InstancePre, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bundle::Preopen;
use super::cache::Compiled;
use super::http::{self, HttpServer};
use super::limits::GuestLimiter;

/// The exit code of a trap (SIGABRT's, as the wasmtime CLI reports it).
pub const TRAP_EXIT_CODE: i32 = 134;
/// The exit code of a guest over its memory limit (SIGKILL's, as an OOM kill).
pub const OOM_EXIT_CODE: i32 = 137;
/// A core module's entry point.
const START: &str = "_start";
/// A reactor's initializer, called before a named function.
const INITIALIZE: &str = "_initialize";
/// A command component's entry point.
const CLI_RUN: &str = "wasi:cli/run";

/// The engine every guest runs in: epoch interruption for stopping, the
/// default (on-demand) allocator for a single instance.
pub fn engine() -> Result<Engine, String> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    Engine::new(&config).map_err(|err| format!("configuring wasmtime: {err:#}"))
}

/// What the guest gets besides its code.
#[derive(Debug, Clone, Default)]
pub struct GuestSpec {
    /// argv.
    pub args: Vec<String>,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// Initial working directory (preview 2).
    pub cwd: String,
    /// Directories.
    pub preopens: Vec<Preopen>,
    /// Bytes per linear memory.
    pub memory_limit: Option<u64>,
    /// The export to call instead of the default.
    pub function: Option<String>,
    /// The TCP port a `wasi:http` component is served on.
    pub http_port: u16,
}

/// How a guest ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this code.
    Exited(i32),
    /// It trapped (or could not be run): the error.
    Trapped(String),
    /// It went past its memory limit: the error.
    OutOfMemory(String),
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(code) => *code,
            Outcome::Trapped(_) => TRAP_EXIT_CODE,
            Outcome::OutOfMemory(_) => OOM_EXIT_CODE,
        }
    }

    /// Classifies a run's result; `oom` when the limiter refused growth.
    pub fn of(result: wasmtime::Result<i32>, oom: bool) -> Self {
        match result {
            Ok(code) => Outcome::Exited(code),
            Err(err) => {
                if let Some(exit) = err.downcast_ref::<I32Exit>() {
                    Outcome::Exited(exit.0)
                } else if oom {
                    Outcome::OutOfMemory(format!("{err:?}"))
                } else {
                    Outcome::Trapped(format!("{err:?}"))
                }
            }
        }
    }
}

/// A core module's store data.
pub struct CoreState {
    wasi: WasiP1Ctx,
    limits: GuestLimiter,
}

/// A component's store data.
pub struct ComponentState {
    ctx: WasiCtx,
    table: ResourceTable,
    limits: GuestLimiter,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// A guest linked and ready to instantiate.
pub enum Prepared {
    /// A core module calling `function`.
    Core {
        /// Its store.
        store: Store<CoreState>,
        /// Its linked module.
        pre: InstancePre<CoreState>,
        /// The export to call.
        function: String,
    },
    /// A `wasi:cli/command` component.
    Command {
        /// Its store.
        store: Store<ComponentState>,
        /// Its linked component.
        pre: CommandPre<ComponentState>,
    },
    /// A `wasi:http/proxy` component, served over HTTP.
    Http(HttpServer),
    /// A component calling a named function.
    ComponentFunction {
        /// Its store.
        store: Store<ComponentState>,
        /// Its linked component.
        pre: component::InstancePre<ComponentState>,
        /// The export to call.
        function: String,
    },
}

/// The WASI context: argv, env, stdio inherited from fds 0-2, preopens,
/// the pod network (the guest is in the pod's network namespace: any
/// address, TCP, UDP and name lookups).
pub(super) fn wasi_builder(spec: &GuestSpec) -> Result<WasiCtxBuilder, String> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .args(&spec.args)
        .envs(&spec.env)
        .inherit_stdio()
        .inherit_network()
        .allow_tcp(true)
        .allow_udp(true)
        .allow_ip_name_lookup(true);
    if !spec.cwd.is_empty() {
        builder.initial_cwd(&spec.cwd);
    }
    for preopen in &spec.preopens {
        let perms = if preopen.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        builder
            .preopened_dir(&preopen.host, &preopen.guest, perms)
            .map_err(|err| {
                format!(
                    "preopening {} as {}: {err:#}",
                    preopen.host.display(),
                    preopen.guest
                )
            })?;
    }
    Ok(builder)
}

/// A store that the next epoch increment (a SIGTERM) interrupts.
pub(super) fn new_store<T: 'static>(engine: &Engine, data: T) -> Store<T> {
    let mut store = Store::new(engine, data);
    // One tick: the first epoch increment (a SIGTERM) interrupts the guest.
    store.set_epoch_deadline(1);
    store.epoch_deadline_trap();
    store
}

/// Links the guest and makes its store: everything but running it.
pub fn prepare(engine: &Engine, compiled: Compiled, spec: &GuestSpec) -> Result<Prepared, String> {
    if let Compiled::Component(component) = &compiled
        && spec.function.is_none()
        && http::is_proxy(engine, component)
    {
        return HttpServer::new(engine, component, spec).map(Prepared::Http);
    }
    let limits = GuestLimiter::new(spec.memory_limit);
    let mut wasi = wasi_builder(spec)?;
    // The guest is the process's one thread of work: WASI may block it.
    wasi.allow_blocking_current_thread(true);
    match compiled {
        Compiled::Module(module) => {
            let function = spec.function.clone().unwrap_or_else(|| START.to_owned());
            check_core_export(&module, &function)?;
            let mut linker = Linker::new(engine);
            wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut CoreState| {
                &mut state.wasi
            })
            .map_err(|err| format!("linking WASI preview 1: {err:#}"))?;
            let pre = linker
                .instantiate_pre(&module)
                .map_err(|err| format!("linking the module: {err:#}"))?;
            let mut store = new_store(
                engine,
                CoreState {
                    wasi: wasi.build_p1(),
                    limits,
                },
            );
            store.limiter(|state| &mut state.limits);
            Ok(Prepared::Core {
                store,
                pre,
                function,
            })
        }
        Compiled::Component(component) => {
            let mut linker = component::Linker::new(engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
                .map_err(|err| format!("linking WASI preview 2: {err:#}"))?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(|err| format!("linking the component: {err:#}"))?;
            let mut store = new_store(
                engine,
                ComponentState {
                    ctx: wasi.build(),
                    table: ResourceTable::new(),
                    limits,
                },
            );
            store.limiter(|state| &mut state.limits);
            match spec.function.as_deref() {
                None | Some(CLI_RUN) => {
                    let pre = CommandPre::new(pre).map_err(|err| {
                        format!("the component is not a wasi:cli/command: {err:#}")
                    })?;
                    Ok(Prepared::Command { store, pre })
                }
                Some(function) => {
                    check_component_export(&component, function)?;
                    Ok(Prepared::ComponentFunction {
                        store,
                        pre,
                        function: function.to_owned(),
                    })
                }
            }
        }
    }
}

/// A core module must export `function` taking no parameters.
fn check_core_export(module: &Module, function: &str) -> Result<(), String> {
    match module.get_export(function) {
        Some(ExternType::Func(ty)) if ty.params().len() == 0 => Ok(()),
        Some(ExternType::Func(_)) => {
            Err(format!("the module's export {function:?} takes parameters"))
        }
        Some(_) => Err(format!(
            "the module's export {function:?} is not a function"
        )),
        None => Err(format!("the module does not export {function:?}")),
    }
}

fn check_component_export(component: &Component, function: &str) -> Result<(), String> {
    match component.get_export_index(None, function) {
        Some(_) => Ok(()),
        None => Err(format!("the component does not export {function:?}")),
    }
}

impl Prepared {
    /// Instantiates and runs the guest to its end.
    pub fn run(self) -> Outcome {
        match self {
            Prepared::Core {
                mut store,
                pre,
                function,
            } => {
                let result = run_core(&mut store, &pre, &function);
                Outcome::of(result, store.data().limits.exceeded())
            }
            Prepared::Command { mut store, pre } => {
                let result = pre.instantiate(&mut store).and_then(|command| {
                    let ran = command.wasi_cli_run().call_run(&mut store)?;
                    Ok(if ran.is_ok() { 0 } else { 1 })
                });
                Outcome::of(result, store.data().limits.exceeded())
            }
            Prepared::Http(server) => server.run(),
            Prepared::ComponentFunction {
                mut store,
                pre,
                function,
            } => {
                let result = run_component_function(&mut store, &pre, &function);
                Outcome::of(result, store.data().limits.exceeded())
            }
        }
    }
}

fn run_core(
    store: &mut Store<CoreState>,
    pre: &InstancePre<CoreState>,
    function: &str,
) -> wasmtime::Result<i32> {
    let instance = pre.instantiate(&mut *store)?;
    if function != START
        && function != INITIALIZE
        && let Ok(init) = instance.get_typed_func::<(), ()>(&mut *store, INITIALIZE)
    {
        init.call(&mut *store, ())?;
    }
    let func = instance
        .get_func(&mut *store, function)
        .ok_or_else(|| wasmtime::Error::msg(format!("no export {function:?}")))?;
    let mut results = func
        .ty(&*store)
        .results()
        .map(|ty| {
            wasmtime::Val::default_for_ty(&ty)
                .ok_or_else(|| wasmtime::Error::msg("a result type without a default"))
        })
        .collect::<wasmtime::Result<Vec<_>>>()?;
    func.call(&mut *store, &[], &mut results)?;
    Ok(0)
}

fn run_component_function(
    store: &mut Store<ComponentState>,
    pre: &component::InstancePre<ComponentState>,
    function: &str,
) -> wasmtime::Result<i32> {
    let instance = pre.instantiate(&mut *store)?;
    let func = instance
        .get_func(&mut *store, function)
        .ok_or_else(|| wasmtime::Error::msg(format!("no export {function:?}")))?;
    if let Ok(typed) = func.typed::<(), ()>(&*store) {
        typed.call(&mut *store, ())?;
        return Ok(0);
    }
    let typed = func.typed::<(), (Result<(), ()>,)>(&*store)?;
    let (result,) = typed.call(&mut *store, ())?;
    Ok(if result.is_ok() { 0 } else { 1 })
}

/// Tells the container's stderr why the guest ended, when it did not exit.
pub fn report(outcome: &Outcome) {
    let mut stderr = std::io::stderr();
    let _ = match outcome {
        Outcome::Exited(_) => Ok(()),
        Outcome::Trapped(err) => writeln!(stderr, "Error: {err}"),
        Outcome::OutOfMemory(err) => writeln!(stderr, "Error: out of memory: {err}"),
    };
    let _ = stderr.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::wasm::cache::{Compiled, deserialize, precompile};

    fn compile(engine: &Engine, wat: &str) -> Compiled {
        let wasm = wat::parse_str(wat).unwrap();
        let serialized = precompile(engine, &wasm).unwrap();
        deserialize(engine, &wasm, &serialized).unwrap()
    }

    fn run(wat: &str, spec: &GuestSpec) -> Outcome {
        let engine = engine().unwrap();
        let compiled = compile(&engine, wat);
        prepare(&engine, compiled, spec).unwrap().run()
    }

    const PROC_EXIT: &str =
        r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#;

    #[test]
    fn exit_codes() {
        let spec = GuestSpec::default();
        assert_eq!(
            run(r#"(module (func (export "_start")))"#, &spec),
            Outcome::Exited(0)
        );
        let exits = format!(
            r#"(module {PROC_EXIT} (memory (export "memory") 1)
                (func (export "_start") (call $exit (i32.const 3))))"#
        );
        assert_eq!(run(&exits, &spec), Outcome::Exited(3));
        let trap = run(r#"(module (func (export "_start") unreachable))"#, &spec);
        assert_eq!(trap.exit_code(), 134, "{trap:?}");
        assert!(matches!(&trap, Outcome::Trapped(err) if err.contains("unreachable")));
    }

    #[test]
    fn named_functions_and_reactors() {
        let wat = format!(
            r#"(module {PROC_EXIT} (memory (export "memory") 1)
                (global $ready (mut i32) (i32.const 0))
                (func (export "_initialize") (global.set $ready (i32.const 7)))
                (func (export "go") (result i32)
                    (call $exit (global.get $ready)) (i32.const 0)))"#
        );
        let spec = GuestSpec {
            function: Some("go".into()),
            ..GuestSpec::default()
        };
        assert_eq!(run(&wat, &spec), Outcome::Exited(7));

        let engine = engine().unwrap();
        let missing = prepare(
            &engine,
            compile(&engine, r#"(module (func (export "f") (param i32)))"#),
            &GuestSpec::default(),
        );
        assert!(matches!(missing, Err(err) if err.contains("does not export \"_start\"")));
        let with_params = prepare(
            &engine,
            compile(&engine, r#"(module (func (export "f") (param i32)))"#),
            &spec_with_function("f"),
        );
        assert!(matches!(with_params, Err(err) if err.contains("takes parameters")));
    }

    fn spec_with_function(name: &str) -> GuestSpec {
        GuestSpec {
            function: Some(name.into()),
            ..GuestSpec::default()
        }
    }

    #[test]
    fn the_memory_limit_is_an_oom() {
        let spec = GuestSpec {
            memory_limit: Some(4 << 20),
            ..GuestSpec::default()
        };
        let grow = r#"(module (memory 1)
            (func (export "_start") (drop (memory.grow (i32.const 1000)))))"#;
        let outcome = run(grow, &spec);
        assert_eq!(outcome.exit_code(), 137, "{outcome:?}");
        // Within the limit, growing is fine.
        let small = r#"(module (memory 1)
            (func (export "_start") (drop (memory.grow (i32.const 10)))))"#;
        assert_eq!(run(small, &spec), Outcome::Exited(0));
        // A module whose initial memory is past the limit fails the same way.
        let big = r#"(module (memory 100) (func (export "_start")))"#;
        assert_eq!(run(big, &spec).exit_code(), 137);
    }

    #[test]
    fn epoch_interruption_traps_a_loop() {
        let engine = engine().unwrap();
        let compiled = compile(
            &engine,
            r#"(module (func (export "_start") (loop (br 0))))"#,
        );
        let prepared = prepare(&engine, compiled, &GuestSpec::default()).unwrap();
        let ticker = engine.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            ticker.increment_epoch();
        });
        let outcome = prepared.run();
        assert!(
            matches!(&outcome, Outcome::Trapped(err) if err.contains("interrupt")),
            "{outcome:?}"
        );
    }

    #[test]
    fn command_components_run() {
        let ok = r#"(component
            (core module $m (func (export "run") (result i32) (i32.const 0)))
            (core instance $i (instantiate $m))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $cli (export "run" (func $run)))
            (export "wasi:cli/run@0.2.0" (instance $cli)))"#;
        assert_eq!(run(ok, &GuestSpec::default()), Outcome::Exited(0));
        let err = ok.replace("(i32.const 0)", "(i32.const 1)");
        assert_eq!(run(&err, &GuestSpec::default()), Outcome::Exited(1));
        let engine = engine().unwrap();
        let not_a_command = prepare(
            &engine,
            compile(&engine, "(component)"),
            &GuestSpec::default(),
        );
        assert!(matches!(not_a_command, Err(err) if err.contains("wasi:cli/command")));
    }
}
