//! Unpacking OCI/Docker layer tars into overlayfs lower directories.
//!
//! Each layer is unpacked once, into an empty directory of its own, and
//! container root filesystems stack those directories with overlayfs. So the
//! layer's whiteouts are converted to overlayfs's on-disk format while
//! unpacking: `.wh.<name>` becomes a character device 0:0 called `<name>`, and
//! `.wh..wh..opq` becomes `trusted.overlay.opaque=y` on its directory.
//!
//! Layers come from registries and are untrusted. Every entry is created
//! relative to a descriptor of its parent directory, opened without following
//! symlinks (see `tree`), and paths that are absolute or climb out with `..`
//! are refused, so no tar can write outside the destination.
//!
//! A raw Wasm layer is no tar: its blob is the module, written as the
//! snapshot's one file by [`unpack_wasm_module`] (see [`LayerFormat`]).

mod entry;
mod module;
mod tree;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod throughput;

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::digest::{Digest, HashingReader};
use entry::{EntryMeta, Kind, Timestamp};
use tree::{Missing, Tree, Usage, c_name, io_err};

pub use module::unpack_wasm_module;

/// Read and write buffer size: large enough that syscalls and decoder calls
/// are noise next to the disk.
const BUFFER_SIZE: usize = 128 * 1024;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (possibly several members, as `pigz` writes).
    Gzip,
    /// zstd (possibly several frames).
    Zstd,
}

impl Compression {
    /// From an OCI or Docker tar layer media type; any other media type
    /// (raw Wasm content, encrypted layers, ...) is an error naming it: see
    /// [`LayerFormat::from_media_type`] for layers that may be Wasm.
    pub fn from_media_type(media_type: &str) -> Result<Self, UnpackError> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Self::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Self::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Ok(Self::Zstd),
            other => Err(UnpackError::UnsupportedMediaType(other.into())),
        }
    }

    /// From the first bytes of a blob (for docker-archive layers, which have
    /// no media type): gzip and zstd by their magic numbers, else a tar.
    pub fn sniff(prefix: &[u8]) -> Self {
        if prefix.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }

    fn decoder<'a, R: Read + 'a>(self, compressed: R) -> io::Result<Box<dyn Read + 'a>> {
        let input = BufReader::with_capacity(BUFFER_SIZE, compressed);
        Ok(match self {
            Self::None => Box::new(input),
            Self::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            Self::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        })
    }
}

/// What a layer blob holds, by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerFormat {
    /// A tar, compressed so: unpacked with [`unpack_layer`].
    Tar(Compression),
    /// A raw Wasm module or component (one of
    /// [`crate::wasm::WASM_LAYER_MEDIA_TYPES`]): kept as one file by
    /// [`unpack_wasm_module`].
    WasmModule,
}

impl LayerFormat {
    /// From an OCI or Docker layer media type, or a Wasm one; any other
    /// media type (encrypted layers, ...) is an error naming it.
    pub fn from_media_type(media_type: &str) -> Result<Self, UnpackError> {
        if crate::wasm::is_wasm_media_type(media_type) {
            return Ok(Self::WasmModule);
        }
        Compression::from_media_type(media_type).map(Self::Tar)
    }
}

/// How to unpack.
///
/// Unpacking does not sync: the caller flushes the filesystem once (syncfs)
/// before it records the layer as unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Give entries the owners the tar records (needs `CAP_CHOWN`); when
    /// false, everything belongs to the unpacking process.
    pub preserve_ownership: bool,
}

impl Default for UnpackOptions {
    /// As root: preserve ownership.
    fn default() -> Self {
        Self {
            preserve_ownership: true,
        }
    }
}

/// What an unpack produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// sha256 of the uncompressed tar stream, trailing padding included (of
    /// the module, for a raw Wasm layer): the image config's
    /// `rootfs.diff_ids` entry for this layer.
    pub diff_id: Digest,
    /// Length of the uncompressed tar stream (of the module, for a raw Wasm layer).
    pub tar_size: u64,
    /// Bytes in regular files (each hard-linked inode once).
    pub disk_usage: u64,
    /// Inodes created (files, directories, links, devices, whiteouts).
    pub inodes: u64,
}

/// Why a layer could not be unpacked. The destination is then left
/// half-written: the caller deletes it.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer's media type is not a tar layer Skiff can unpack.
    #[error("unsupported layer media type {0:?}")]
    UnsupportedMediaType(String),
    /// The destination directory cannot be used.
    #[error("cannot unpack into {}: {source}", path.display())]
    Destination {
        /// The destination directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// The blob could not be decompressed or is not a valid tar.
    #[error("cannot read layer stream: {0}")]
    Stream(#[source] io::Error),
    /// An entry tried to reach outside the destination (absolute path, `..`
    /// out of the root, a path or hard link through a symlink).
    #[error("refusing layer: entry {entry:?} is unsafe: {reason}")]
    Unsafe {
        /// The entry's name in the tar.
        entry: String,
        /// What makes it unsafe.
        reason: String,
    },
    /// An entry Skiff cannot represent (unsupported type, bad field, hard link
    /// to nothing).
    #[error("invalid layer entry {entry:?}: {reason}")]
    Invalid {
        /// The entry's name in the tar.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A filesystem operation failed while creating an entry.
    #[error("layer entry {entry:?}: cannot {op}{}: {source}", on_path(.path))]
    Io {
        /// The entry's name in the tar.
        entry: String,
        /// The operation that failed (`create`, `write`, `chown`, ...).
        op: &'static str,
        /// The path it failed on, when not the entry itself (a parent).
        path: Option<PathBuf>,
        /// The error, with its errno.
        #[source]
        source: io::Error,
    },
}

fn on_path(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

impl UnpackError {
    /// Whether the filesystem ran out of space (or quota), so that the caller
    /// can free some (image GC) and retry rather than report a bad layer.
    pub fn is_no_space(&self) -> bool {
        let source = match self {
            Self::Destination { source, .. } | Self::Stream(source) | Self::Io { source, .. } => {
                source
            }
            Self::UnsupportedMediaType(_) | Self::Unsafe { .. } | Self::Invalid { .. } => {
                return false;
            }
        };
        matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
    }
}

/// Unpacks `compressed` (a layer blob) into the empty directory `dest`.
///
/// On error `dest` holds part of the layer; the caller removes it.
pub fn unpack_layer(
    compressed: impl Read,
    compression: Compression,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let started = Instant::now();
    let destination_err = |source| UnpackError::Destination {
        path: dest.into(),
        source,
    };
    let root: OwnedFd = File::open(dest).map_err(destination_err)?.into();
    if !tree::is_empty_dir(root.as_fd()).map_err(destination_err)? {
        return Err(destination_err(io::ErrorKind::DirectoryNotEmpty.into()));
    }
    let stream = HashingReader::new(
        compression
            .decoder(compressed)
            .map_err(UnpackError::Stream)?,
    );
    let mut archive = tar::Archive::new(BufReader::with_capacity(BUFFER_SIZE, stream));
    let mut unpacker = Unpacker {
        tree: Tree::new(root),
        options,
        usage: Usage::default(),
        dirs: HashMap::new(),
        buf: vec![0; BUFFER_SIZE],
    };
    for entry in archive.entries().map_err(UnpackError::Stream)? {
        unpacker.apply(&mut entry.map_err(UnpackError::Stream)?)?;
    }
    // Reading on past the end-of-archive blocks hashes the padding too, and
    // checks the gzip trailer.
    let (diff_id, tar_size) = archive
        .into_inner()
        .into_inner()
        .finish()
        .map_err(UnpackError::Stream)?;
    let usage = unpacker.finish()?;
    let elapsed = started.elapsed();
    tracing::debug!(
        dest = %dest.display(),
        %diff_id,
        tar_size,
        inodes = usage.inodes,
        elapsed_ms = elapsed.as_millis() as u64,
        mb_per_s = tar_size as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9),
        "unpacked layer"
    );
    Ok(UnpackStats {
        diff_id,
        tar_size,
        disk_usage: usage.bytes,
        inodes: usage.inodes,
    })
}

/// A directory's mode and times, applied once all its children exist:
/// creating them would bump the mtime, and a read-only mode would stop an
/// unprivileged unpack from creating them.
#[derive(Debug, Clone, Copy)]
struct DirMeta {
    mode: u32,
    atime: Timestamp,
    mtime: Timestamp,
}

impl DirMeta {
    fn of(meta: &EntryMeta) -> Self {
        Self {
            mode: meta.mode,
            atime: meta.atime,
            mtime: meta.mtime,
        }
    }
}

/// What a name means in overlayfs terms.
enum Whiteout<'a> {
    /// An ordinary entry.
    No,
    /// `.wh.<name>`: hide `<name>` of lower layers.
    Hide(&'a [u8]),
    /// `.wh..wh..opq`: hide all lower-layer content of the directory.
    Opaque,
    /// AUFS bookkeeping (`.wh..wh.plnk`, ...) that overlayfs has no use for.
    AufsMeta,
}

impl<'a> Whiteout<'a> {
    fn classify(path: &'a Path) -> Self {
        let mut components = path.iter().map(OsStr::as_bytes).rev();
        let Some(name) = components.next() else {
            return Self::No;
        };
        if components.any(|parent| parent.starts_with(b".wh..wh.")) {
            return Self::AufsMeta;
        }
        match name.strip_prefix(b".wh.") {
            None => Self::No,
            Some(b".wh..opq") => Self::Opaque,
            Some(meta) if meta.starts_with(b".wh.") => Self::AufsMeta,
            Some(hidden) => Self::Hide(hidden),
        }
    }
}

struct Unpacker<'o> {
    tree: Tree,
    options: &'o UnpackOptions,
    usage: Usage,
    dirs: HashMap<PathBuf, DirMeta>,
    buf: Vec<u8>,
}

impl Unpacker<'_> {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let Some(meta) = EntryMeta::parse(entry)? else {
            return Ok(());
        };
        let parent = meta.path.parent().unwrap_or(Path::new(""));
        let Some(name) = meta.path.file_name() else {
            return self.root_dir(&meta);
        };
        match Whiteout::classify(&meta.path) {
            Whiteout::No => {}
            Whiteout::Hide(hidden) => return self.whiteout(&meta, parent, hidden),
            Whiteout::Opaque => {
                let dir = self
                    .tree
                    .dir(parent, Missing::Create, &mut self.usage, &meta.name)?;
                return tree::set_opaque(dir).map_err(|e| io_err(&meta.name, "mark opaque", e));
            }
            Whiteout::AufsMeta => {
                tracing::debug!(entry = %meta.name, "skipping AUFS metadata entry");
                return Ok(());
            }
        }
        let name = c_name(name).map_err(|e| io_err(&meta.name, "create", e))?;
        match &meta.kind {
            Kind::Dir => self.make_dir(&meta, parent, &name),
            Kind::File => self.write_file(&meta, parent, &name, entry),
            Kind::Symlink(target) => {
                let target = c_name(target).map_err(|e| io_err(&meta.name, "create symlink", e))?;
                self.make_node(&meta, parent, &name, |dir| {
                    tree::symlinkat(&target, dir, &name)
                })
            }
            Kind::HardLink(target) => self.hard_link(&meta, parent, &name, target),
            Kind::CharDevice(dev) => self.make_node(&meta, parent, &name, |dir| {
                tree::mknodat(dir, &name, libc::S_IFCHR | (meta.mode & 0o777), *dev)
            }),
            Kind::BlockDevice(dev) => self.make_node(&meta, parent, &name, |dir| {
                tree::mknodat(dir, &name, libc::S_IFBLK | (meta.mode & 0o777), *dev)
            }),
            Kind::Fifo => self.make_node(&meta, parent, &name, |dir| {
                tree::mknodat(dir, &name, libc::S_IFIFO | (meta.mode & 0o777), 0)
            }),
        }
    }

    /// A `./` entry: the layer root's own owner, xattrs, mode and times.
    fn root_dir(&mut self, meta: &EntryMeta) -> Result<(), UnpackError> {
        let root = self.tree.root();
        if self.options.preserve_ownership {
            std::os::unix::fs::fchown(root, Some(meta.uid), Some(meta.gid))
                .map_err(|e| io_err(&meta.name, "chown", e))?;
        }
        set_xattrs(meta, |name, value| tree::fsetxattr(root, name, value))?;
        self.dirs.insert(meta.path.clone(), DirMeta::of(meta));
        Ok(())
    }

    fn make_dir(
        &mut self,
        meta: &EntryMeta,
        parent: &Path,
        name: &CStr,
    ) -> Result<(), UnpackError> {
        let Self {
            tree,
            usage,
            dirs,
            options,
            ..
        } = self;
        let dir = tree.dir(parent, Missing::Create, usage, &meta.name)?;
        let err = |op| move |e: io::Error| io_err(&meta.name, op, e);
        match tree::mkdirat(dir, name, 0o755) {
            Ok(()) => usage.inodes += 1,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let existing = tree::lstatat(dir, name).map_err(err("stat"))?;
                // A directory over a directory merges; anything else is replaced.
                if !tree::is_dir(&existing) {
                    usage.remove(tree::remove_at(dir, name).map_err(err("replace"))?);
                    tree::mkdirat(dir, name, 0o755).map_err(err("create directory"))?;
                    usage.inodes += 1;
                    if tree::is_whiteout(&existing) {
                        // This layer deleted the directory, then made it anew:
                        // lower layers' content must stay hidden.
                        let fd = tree::open_subdir(dir, name).map_err(err("open directory"))?;
                        tree::set_opaque(fd.as_fd()).map_err(err("mark opaque"))?;
                    }
                }
            }
            Err(e) => return Err(err("create directory")(e)),
        }
        if options.preserve_ownership {
            tree::lchownat(dir, name, meta.uid, meta.gid).map_err(err("chown"))?;
        }
        if !meta.xattrs.is_empty() {
            let fd = tree::open_subdir(dir, name).map_err(err("open directory"))?;
            set_xattrs(meta, |xattr, value| {
                tree::fsetxattr(fd.as_fd(), xattr, value)
            })?;
        }
        dirs.insert(meta.path.clone(), DirMeta::of(meta));
        Ok(())
    }

    fn write_file(
        &mut self,
        meta: &EntryMeta,
        parent: &Path,
        name: &CStr,
        data: &mut impl Read,
    ) -> Result<(), UnpackError> {
        let Self {
            tree,
            usage,
            dirs,
            options,
            buf,
        } = self;
        let dir = tree.dir(parent, Missing::Create, usage, &meta.name)?;
        let err = |op| move |e: io::Error| io_err(&meta.name, op, e);
        let mut file = replacing(dir, name, &meta.path, usage, dirs, || {
            tree::create_file(dir, name)
        })
        .map_err(err("create"))?;
        usage.inodes += 1;
        loop {
            let n = match data.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(UnpackError::Stream(e)),
            };
            file.write_all(&buf[..n]).map_err(err("write"))?;
            usage.bytes += n as u64;
        }
        // chown clears setuid/setgid and write clears security.capability, so
        // data, then owner, then xattrs, then mode.
        if options.preserve_ownership {
            std::os::unix::fs::fchown(&file, Some(meta.uid), Some(meta.gid))
                .map_err(err("chown"))?;
        }
        set_xattrs(meta, |xattr, value| {
            tree::fsetxattr(file.as_fd(), xattr, value)
        })?;
        tree::fchmod(file.as_fd(), meta.mode).map_err(err("chmod"))?;
        tree::futimens(file.as_fd(), meta.atime, meta.mtime).map_err(err("set times"))
    }

    /// Creates a symlink, device or fifo with `create` (replacing whatever
    /// was at its path), then applies owner, xattrs, mode and times.
    fn make_node(
        &mut self,
        meta: &EntryMeta,
        parent: &Path,
        name: &CStr,
        create: impl Fn(BorrowedFd<'_>) -> io::Result<()>,
    ) -> Result<(), UnpackError> {
        let Self {
            tree,
            usage,
            dirs,
            options,
            ..
        } = self;
        let dir = tree.dir(parent, Missing::Create, usage, &meta.name)?;
        let err = |op| move |e: io::Error| io_err(&meta.name, op, e);
        replacing(dir, name, &meta.path, usage, dirs, || create(dir)).map_err(err("create"))?;
        usage.inodes += 1;
        if options.preserve_ownership {
            tree::lchownat(dir, name, meta.uid, meta.gid).map_err(err("chown"))?;
        }
        set_xattrs(meta, |xattr, value| {
            tree::lsetxattrat(dir, name, xattr, value)
        })?;
        if !matches!(meta.kind, Kind::Symlink(_)) {
            tree::chmodat(dir, name, meta.mode).map_err(err("chmod"))?;
        }
        tree::utimesat(dir, name, meta.atime, meta.mtime).map_err(err("set times"))
    }

    fn hard_link(
        &mut self,
        meta: &EntryMeta,
        parent: &Path,
        name: &CStr,
        target: &Path,
    ) -> Result<(), UnpackError> {
        if target == meta.path {
            tracing::debug!(entry = %meta.name, "skipping hard link to itself");
            return Ok(());
        }
        let invalid = |reason: String| UnpackError::Invalid {
            entry: meta.name.clone(),
            reason,
        };
        let (Some(target_name), Some(target_parent)) = (target.file_name(), target.parent()) else {
            return Err(invalid("hard link to the layer root".into()));
        };
        let target_name = c_name(target_name).map_err(|e| io_err(&meta.name, "link", e))?;
        let Self {
            tree, usage, dirs, ..
        } = self;
        let missing = || {
            let target = target.display();
            invalid(format!(
                "hard link target {target} is not an earlier entry of this layer"
            ))
        };
        let is_missing =
            |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR));
        let target_dir = match tree.open_dir(target_parent, Missing::Fail, usage, &meta.name) {
            Err(UnpackError::Io { source, .. }) if is_missing(&source) => return Err(missing()),
            result => result?,
        };
        let dir = tree.dir(parent, Missing::Create, usage, &meta.name)?;
        let link = || tree::linkat(target_dir.as_fd(), &target_name, dir, name);
        match replacing(dir, name, &meta.path, usage, dirs, link) {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Err(missing()),
            Err(e) => Err(io_err(&meta.name, "link", e)),
        }
    }

    fn whiteout(
        &mut self,
        meta: &EntryMeta,
        parent: &Path,
        hidden: &[u8],
    ) -> Result<(), UnpackError> {
        if matches!(hidden, b"" | b"." | b"..") {
            let reason = "whiteout names no file".into();
            return Err(UnpackError::Invalid {
                entry: meta.name.clone(),
                reason,
            });
        }
        let Self {
            tree,
            usage,
            options,
            ..
        } = self;
        let dir = tree.dir(parent, Missing::Create, usage, &meta.name)?;
        let err = |op| move |e: io::Error| io_err(&meta.name, op, e);
        let hidden = c_name(OsStr::from_bytes(hidden)).map_err(err("create whiteout"))?;
        match tree::lstatat(dir, &hidden) {
            // Whiteouts hide lower layers only: a directory this layer made
            // keeps its own content but must hide the lower ones'.
            Ok(st) if tree::is_dir(&st) => {
                let fd = tree::open_subdir(dir, &hidden).map_err(err("open directory"))?;
                tree::set_opaque(fd.as_fd()).map_err(err("mark opaque"))
            }
            Ok(_) => {
                tracing::debug!(entry = %meta.name, "whiteout of a file this layer adds; kept the file");
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                tree::mknodat(dir, &hidden, libc::S_IFCHR, 0).map_err(err("create whiteout"))?;
                usage.inodes += 1;
                if options.preserve_ownership {
                    tree::lchownat(dir, &hidden, meta.uid, meta.gid).map_err(err("chown"))?;
                }
                Ok(())
            }
            Err(e) => Err(err("stat")(e)),
        }
    }

    /// Applies directories' deferred mode and times.
    fn finish(mut self) -> Result<Usage, UnpackError> {
        for (path, meta) in std::mem::take(&mut self.dirs) {
            let name = path.to_string_lossy();
            let fd = self
                .tree
                .open_dir(&path, Missing::Fail, &mut self.usage, &name)?;
            tree::fchmod(fd.as_fd(), meta.mode).map_err(|e| io_err(&name, "chmod", e))?;
            tree::futimens(fd.as_fd(), meta.atime, meta.mtime)
                .map_err(|e| io_err(&name, "set times", e))?;
        }
        Ok(self.usage)
    }
}

/// Runs `create`; if something already has the entry's name (an earlier
/// entry of this layer), removes it and runs `create` again.
fn replacing<T>(
    dir: BorrowedFd<'_>,
    name: &CStr,
    path: &Path,
    usage: &mut Usage,
    dirs: &mut HashMap<PathBuf, DirMeta>,
    mut create: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    match create() {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            usage.remove(tree::remove_at(dir, name)?);
            dirs.retain(|dir, _| !dir.starts_with(path));
            create()
        }
        result => result,
    }
}

/// Applies the entry's `SCHILY.xattr.*` records with `set`.
fn set_xattrs(
    meta: &EntryMeta,
    mut set: impl FnMut(&CStr, &[u8]) -> io::Result<()>,
) -> Result<(), UnpackError> {
    for (name, value) in &meta.xattrs {
        let bytes = name.as_bytes();
        // Overlay's own xattrs would let a layer forge whiteouts, redirects or
        // metacopy files; only this unpacker writes those.
        if bytes.starts_with(b"trusted.overlay.") || bytes.starts_with(b"user.overlay.") {
            tracing::warn!(entry = %meta.name, xattr = %name.to_string_lossy(), "ignoring overlayfs xattr in layer");
            continue;
        }
        let c_xattr = CString::new(bytes).map_err(|_| UnpackError::Invalid {
            entry: meta.name.clone(),
            reason: "NUL byte in xattr name".into(),
        })?;
        match set(&c_xattr, value) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                tracing::warn!(entry = %meta.name, xattr = %name.to_string_lossy(), "filesystem does not support xattr; skipped");
            }
            Err(e) => return Err(io_err(&meta.name, "set xattr", e)),
        }
    }
    Ok(())
}
