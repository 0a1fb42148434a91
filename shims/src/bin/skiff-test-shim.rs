//! A stand-in for the `skiff` binary's `shim` subcommand, for this crate's
//! tests and benchmarks: `skiff-test-shim shim <ShimArgs>` runs the same
//! [`skiff_shims::run`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pod's shim.
    Shim(skiff_shims::ShimArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Shim(args) => skiff_shims::run(args),
    }
}
