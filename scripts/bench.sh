#!/usr/bin/env bash
# Builds skiff in release mode and runs the benchmarks in benches/, printing
# the figures closing notes report. As root, like the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

# The runtime benchmark measures Debian's containerd + runc (with the CNI
# plugins for their pod network) beside skiff; only benchmarks need them.
bench_packages=(containerd runc containernetworking-plugins)
missing=()
for p in "${bench_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } ||
    echo "bench: could not install ${missing[*]}; the runtime bench reports skiff alone" >&2
fi
# The package enables a system containerd; the bench starts its own on a
# private socket and root, so keep the system one off.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now containerd >/dev/null 2>&1 || true
fi
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/skiff-target}"
cargo build --release --locked --bin skiff
cargo bench --locked -p skiff-benches "$@"
