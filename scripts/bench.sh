#!/usr/bin/env bash
# Builds skiff in release mode and runs the benchmarks in benches/, printing
# the figures closing notes report. As root, like the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/skiff-target}"
cargo build --release --locked --bin skiff
cargo bench --locked -p skiff-benches "$@"
