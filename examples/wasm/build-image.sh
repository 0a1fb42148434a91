#!/usr/bin/env bash
# Builds hello.wasm with Debian's clang, lld and wasi-libc, and packs it as
# a Wasm OCI artifact (platform wasi/wasm, the module itself as the only
# layer) in an OCI image-layout tarball named IMAGE.
#
#   apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32
#   ./build-image.sh [IMAGE [TARBALL]]
#
# IMAGE defaults to example.local/hello-wasm:v1, TARBALL to hello-wasm.tar.
#
# Ship it by copying the tarball into the node's air-gap directory
# (/var/lib/skiff/agent/images/; Skiff imports it when it starts), or push
# the layout to a registry with any OCI tool (skopeo copy oci-archive:...).
set -euo pipefail
cd "$(dirname "$0")"
image=${1:-example.local/hello-wasm:v1}
out=$(realpath "${2:-hello-wasm.tar}")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/blobs/sha256"
module="$work/hello.wasm"
clang --target=wasm32-wasi -O2 -Wl,--strip-all -o "$module" hello.c

# put FILE MEDIA-TYPE: stores FILE as a blob, prints its descriptor.
put() {
  local digest size
  digest=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  cp "$1" "$work/blobs/sha256/$digest"
  printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$2" "$digest" "$size"
}

module_digest=$(sha256sum "$module" | cut -d' ' -f1)
layer=$(put "$module" application/vnd.wasm.content.layer.v1+wasm)
printf '{"architecture":"wasm","os":"wasi","config":{"Env":["NAME=skiff"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$module_digest" > "$work/config.json"
config=$(put "$work/config.json" application/vnd.oci.image.config.v1+json)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' \
  "$config" "$layer" > "$work/manifest.json"
manifest=$(put "$work/manifest.json" application/vnd.oci.image.manifest.v1+json)
printf '{"schemaVersion":2,"manifests":[%s]}' \
  "${manifest%\}},\"annotations\":{\"io.containerd.image.name\":\"$image\",\"org.opencontainers.image.ref.name\":\"${image##*:}\"}}" \
  > "$work/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$work/oci-layout"
rm -f "$work/config.json" "$work/manifest.json" "$module"
tar -C "$work" -cf "$out" oci-layout index.json blobs
echo "wrote $out: $image (module sha256:$module_digest)"
