#!/usr/bin/env bash
# Sets up a Debian 12 machine (as root), builds skiff in release mode,
# installs it as /usr/local/bin/skiff and runs the main job in the
# foreground. Extra arguments go to that command.
#
# The main job is `skiff server`: the apiserver on the embedded SQLite
# datastore, ready for kubectl (`skiff kubectl get namespaces` uses the admin
# kubeconfig it writes to /etc/skiff/skiff.yaml), the scheduler, the
# controllers and this machine's agent (kubelet + node runtime), so pods run
# here. The apiserver listens on 127.0.0.1 and the node registers with
# InternalIP 127.0.0.1 (its kubelet API on 127.0.0.1:10250) unless
# SKIFF_BIND_ADDRESS / SKIFF_NODE_IP say otherwise (k3s's defaults are
# 0.0.0.0 and the default route's address).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/skiff-target}"
cargo build --release --locked --bin skiff
install -m 0755 "$CARGO_TARGET_DIR/release/skiff" /usr/local/bin/skiff
exec /usr/local/bin/skiff server --bind-address "${SKIFF_BIND_ADDRESS:-127.0.0.1}" \
    --node-ip "${SKIFF_NODE_IP:-127.0.0.1}" "$@"
