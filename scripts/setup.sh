#!/usr/bin/env bash
# Installs everything Skiff's build and tests need on Debian 12, as root.
# Idempotent: re-running only installs what is missing.
set -euo pipefail

packages=(
  build-essential pkg-config ca-certificates curl git
  protobuf-compiler   # protoc, for the CRI v1 protobuf definitions
  docker-registry     # the real registry the tests push to and pull from
  busybox-static      # the test images are built from it
  iproute2 util-linux # ip, mount, nsenter for tests
  libseccomp-dev      # seccomp profiles for containers (libcontainer)
  nftables            # pod masquerade and hostPort forwarding
  clang lld wasi-libc libclang-rt-14-dev-wasm32  # Wasm test fixtures from C
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The docker-registry package enables a service listening on :5000 on all
# interfaces; Skiff's tests start their own registries on 127.0.0.1 only.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing the Rust toolchain with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi
