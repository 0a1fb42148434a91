#!/usr/bin/env bash
# Sets up a Debian 12 machine (as root), builds skiff in release mode,
# installs it as /usr/local/bin/skiff and runs the main job in the
# foreground. Extra arguments go to that command.
#
# Until the server lands, the main job is the node runtime: the CRI v1
# image service on /run/skiff/cri.sock (try `skiff crictl pull busybox`).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/skiff-target}"
cargo build --release --locked --bin skiff
install -m 0755 "$CARGO_TARGET_DIR/release/skiff" /usr/local/bin/skiff
exec /usr/local/bin/skiff runtime "$@"
