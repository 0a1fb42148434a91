//! Raw Wasm layers: the blob is the module itself, so "unpacking" writes
//! it as the snapshot's one file, `<hex of the blob digest>.wasm`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::tree::{self, c_name, io_err};
use super::{BUFFER_SIZE, UnpackError, UnpackOptions, UnpackStats};
use crate::digest::{Digest, HashingReader};

/// Every Wasm binary (core module or component) starts with these bytes.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Writes the Wasm module read from `blob` into the empty directory `dest`
/// as `<hex of blob_digest>.wasm` (mode 0644, owned by root when
/// `options.preserve_ownership`). The stats' `diff_id` is the digest of what
/// was read: a raw layer is uncompressed, so it equals the blob digest when
/// the blob is intact. Fails when the blob is not a Wasm binary.
pub fn unpack_wasm_module(
    blob: impl Read,
    blob_digest: &Digest,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let destination_err = |source| UnpackError::Destination {
        path: dest.into(),
        source,
    };
    let root: OwnedFd = File::open(dest).map_err(destination_err)?.into();
    if !tree::is_empty_dir(root.as_fd()).map_err(destination_err)? {
        return Err(destination_err(io::ErrorKind::DirectoryNotEmpty.into()));
    }
    let name = crate::wasm::module_file_name(blob_digest);
    let entry = name.as_str();
    let err = |op| move |e: io::Error| io_err(entry, op, e);
    let c_file = c_name(OsStr::new(entry)).map_err(err("create"))?;
    let mut file = tree::create_file(root.as_fd(), &c_file).map_err(err("create"))?;

    let mut stream = HashingReader::new(BufReader::with_capacity(BUFFER_SIZE, blob));
    let mut buf = vec![0; BUFFER_SIZE];
    let mut written: u64 = 0;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(UnpackError::Stream(e)),
        };
        let start = written as usize;
        if start < WASM_MAGIC.len() {
            let end = (start + n).min(WASM_MAGIC.len());
            if buf[..end - start] != WASM_MAGIC[start..end] {
                return Err(not_wasm(&name));
            }
        }
        file.write_all(&buf[..n]).map_err(err("write"))?;
        written += n as u64;
    }
    if written < WASM_MAGIC.len() as u64 {
        return Err(not_wasm(&name));
    }
    let (diff_id, size) = stream.finish().map_err(UnpackError::Stream)?;
    if options.preserve_ownership {
        std::os::unix::fs::fchown(&file, Some(0), Some(0)).map_err(err("chown"))?;
    }
    tree::fchmod(file.as_fd(), 0o644).map_err(err("chmod"))?;
    tracing::debug!(dest = %dest.display(), %diff_id, size, "unpacked Wasm layer");
    Ok(UnpackStats {
        diff_id,
        tar_size: size,
        disk_usage: size,
        inodes: 1,
    })
}

fn not_wasm(name: &str) -> UnpackError {
    UnpackError::Invalid {
        entry: name.to_string(),
        reason: "a layer with a Wasm media type must be a WebAssembly binary (\\0asm header)"
            .into(),
    }
}
