//! What makes an image a Wasm image, as the store and the runtime see it.
//!
//! A layer with one of [`WASM_LAYER_MEDIA_TYPES`] is not a tar: its blob is
//! the module (or component) itself. The store keeps it like any layer and
//! "unpacks" it to a snapshot holding one file, [`module_path`]
//! (`/<hex of the blob digest>.wasm`). Image configs of Wasm artifacts name
//! the platform `wasi/wasm` (or `wasip1`/`wasip2` on `wasm`/`wasm32`).

use crate::digest::Digest;
use crate::metadata::LayerRef;

/// Media types of raw Wasm layers: the blob is a Wasm module or component.
pub const WASM_LAYER_MEDIA_TYPES: [&str; 4] = [
    "application/wasm",
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];

/// The platform Wasm images declare in an index (`wasi/wasm`).
pub const WASM_PLATFORM: &str = "wasi/wasm";

/// Whether a layer with `media_type` is a raw Wasm module, not a tar.
/// Parameters (`; charset=...`) and case are ignored.
pub fn is_wasm_media_type(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    WASM_LAYER_MEDIA_TYPES
        .iter()
        .any(|m| m.eq_ignore_ascii_case(essence))
}

/// Whether an image config's `os`/`architecture` name a Wasm platform: os
/// `wasi` (or `wasip1`, `wasip2`, ...) or architecture `wasm`/`wasm32`.
pub fn is_wasm_platform(os: &str, architecture: &str) -> bool {
    let os = os.to_ascii_lowercase();
    let architecture = architecture.to_ascii_lowercase();
    os == "wasi" || os.starts_with("wasip") || matches!(architecture.as_str(), "wasm" | "wasm32")
}

/// The name of the one file a raw Wasm layer unpacks to: `<hex>.wasm`.
pub fn module_file_name(blob_digest: &Digest) -> String {
    format!("{}.wasm", blob_digest.hex())
}

/// Where a raw Wasm layer's module is in a container's root filesystem:
/// `/<hex of the blob digest>.wasm`.
pub fn module_path(blob_digest: &Digest) -> String {
    format!("/{}", module_file_name(blob_digest))
}

/// The module of an image's top-most raw Wasm layer, if it has any.
pub fn top_module(layers: &[LayerRef]) -> Option<String> {
    layers
        .iter()
        .rev()
        .find(|l| is_wasm_media_type(&l.media_type))
        .map(|l| module_path(&l.blob_digest))
}

#[cfg(test)]
mod tests;
