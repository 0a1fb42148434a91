#!/usr/bin/env bash
# Sets up a Debian 12 machine (as root) and runs every check and test:
# rustfmt, clippy -D warnings, then all tests with cargo-nextest.
# Tests use real parts: docker-registry processes on 127.0.0.1, overlayfs
# mounts, the real skiff binary. They need root.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# Outside the clone, so a warm machine reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/skiff-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== build"
cargo build --workspace --locked --bins
echo "== tests"
cargo nextest run --workspace --locked --profile ci "$@"
