//! Unpack tests: layers built in memory, unpacked as root into temp dirs.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::*;

const MTIME: u64 = 1_600_000_000;

/// A layer tar, built entry by entry.
struct Layer(tar::Builder<Vec<u8>>);

fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    header.set_size(0);
    header
}

impl Layer {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn with(mut self, mut header: tar::Header, path: &str, data: &[u8]) -> Self {
        header.set_size(data.len() as u64);
        self.0.append_data(&mut header, path, data).unwrap();
        self
    }

    fn dir(self, path: &str, mode: u32) -> Self {
        self.with(header(tar::EntryType::Directory, mode), path, b"")
    }

    fn file(self, path: &str, data: &str) -> Self {
        self.with(
            header(tar::EntryType::Regular, 0o644),
            path,
            data.as_bytes(),
        )
    }

    fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Self {
        self.0
            .append_link(&mut header(kind, 0o777), path, target)
            .unwrap();
        self
    }

    fn symlink(self, path: &str, target: &str) -> Self {
        self.link(tar::EntryType::Symlink, path, target)
    }

    /// An entry whose name and link name go in unchecked, as an attacker writes them.
    fn raw(self, kind: tar::EntryType, name: &str, link: &str, data: &[u8]) -> Self {
        self.named(header(kind, 0o644), name, link, data)
    }

    fn named(mut self, mut header: tar::Header, name: &str, link: &str, data: &[u8]) -> Self {
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        self.0
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    fn tar(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A temp dir holding the layer root `root/` and a bystander dir `outside/`
/// that no layer may touch.
struct Sandbox(tempfile::TempDir);

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        fs::create_dir(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("outside/secret"), "s3cret").unwrap();
        Self(dir)
    }

    fn root(&self) -> PathBuf {
        self.0.path().join("root")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
        unpack_layer(
            tar,
            Compression::None,
            &self.root(),
            &UnpackOptions::default(),
        )
    }

    fn assert_outside_untouched(&self) {
        let names: Vec<_> = fs::read_dir(self.0.path().join("outside"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret"]);
        assert_eq!(
            fs::read_to_string(self.0.path().join("outside/secret")).unwrap(),
            "s3cret"
        );
    }
}

fn lstat(path: impl AsRef<Path>) -> fs::Metadata {
    fs::symlink_metadata(path.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

fn device(kind: tar::EntryType, mode: u32, major: u32, minor: u32) -> tar::Header {
    let mut header = header(kind, mode);
    header.set_device_major(major).unwrap();
    header.set_device_minor(minor).unwrap();
    header
}

#[test]
fn every_entry_type_is_created() {
    let tar = Layer::new()
        .dir("./etc", 0o755)
        .raw(tar::EntryType::Regular, "./etc/passwd", "", b"root")
        .file("./etc/hosts", "127.0.0.1 localhost\n")
        .symlink("etc/link", "hosts")
        .link(tar::EntryType::Link, "etc/hard", "./etc/hosts")
        .with(device(tar::EntryType::Char, 0o666, 1, 3), "dev/null", b"")
        .with(device(tar::EntryType::Block, 0o660, 7, 0), "dev/loop0", b"")
        .with(header(tar::EntryType::Fifo, 0o600), "run/fifo", b"")
        .tar();
    let sandbox = Sandbox::new();
    let stats = sandbox.unpack(&tar).unwrap();

    assert_eq!(
        fs::read_to_string(sandbox.path("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
    assert_eq!(
        fs::read_to_string(sandbox.path("etc/passwd")).unwrap(),
        "root"
    );
    assert_eq!(
        fs::read_link(sandbox.path("etc/link")).unwrap(),
        Path::new("hosts")
    );
    let (hosts, hard) = (
        lstat(sandbox.path("etc/hosts")),
        lstat(sandbox.path("etc/hard")),
    );
    assert_eq!((hosts.ino(), hosts.nlink()), (hard.ino(), 2));
    let null = lstat(sandbox.path("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!((libc::major(null.rdev()), libc::minor(null.rdev())), (1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    let loop0 = lstat(sandbox.path("dev/loop0"));
    assert!(loop0.file_type().is_block_device());
    assert_eq!(
        (libc::major(loop0.rdev()), libc::minor(loop0.rdev())),
        (7, 0)
    );
    assert!(lstat(sandbox.path("run/fifo")).file_type().is_fifo());
    // Implied parents get 0755, like containerd's.
    assert_eq!(lstat(sandbox.path("dev")).mode() & 0o7777, 0o755);

    assert_eq!(stats.diff_id, Digest::sha256_of(&tar));
    assert_eq!(stats.tar_size, tar.len() as u64);
    assert_eq!(stats.disk_usage, 24);
    // etc, passwd, hosts, link, dev, null, loop0, run, fifo (a hard link is no inode).
    assert_eq!(stats.inodes, 9);
}

#[test]
fn ownership_modes_and_times_are_preserved() {
    let owned = |kind, mode, uid, gid| {
        let mut header = header(kind, mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header
    };
    let tar = Layer::new()
        .with(owned(tar::EntryType::Directory, 0o750, 5, 6), "srv", b"")
        .with(
            owned(tar::EntryType::Regular, 0o4755, 1000, 2000),
            "srv/suid",
            b"#!/bin/sh\n",
        )
        .with(
            owned(tar::EntryType::Regular, 0o2711, 0, 50),
            "srv/sgid",
            b"",
        )
        .with(owned(tar::EntryType::Directory, 0o1777, 0, 0), "tmp", b"")
        .with(owned(tar::EntryType::Directory, 0o555, 0, 0), "ro", b"")
        .file("ro/inside", "x")
        .with(owned(tar::EntryType::Fifo, 0o4640, 3, 4), "srv/fifo", b"")
        .link(tar::EntryType::Symlink, "srv/link", "suid")
        .tar();
    let sandbox = Sandbox::new();
    sandbox.unpack(&tar).unwrap();

    let check = |rel: &str, mode: u32, uid: u32, gid: u32| {
        let meta = lstat(sandbox.path(rel));
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (mode, uid, gid),
            "{rel}"
        );
        assert_eq!(
            (meta.mtime(), meta.mtime_nsec()),
            (MTIME as i64, 0),
            "{rel} mtime"
        );
    };
    check("srv", 0o750, 5, 6);
    check("srv/suid", 0o4755, 1000, 2000);
    check("srv/sgid", 0o2711, 0, 50);
    check("srv/fifo", 0o4640, 3, 4);
    check("tmp", 0o1777, 0, 0);
    // Directory mode and times come last, so a read-only dir still got its child.
    check("ro", 0o555, 0, 0);
    check("ro/inside", 0o644, 0, 0);
    let link = lstat(sandbox.path("srv/link"));
    assert!(link.file_type().is_symlink());
    assert_eq!(link.mtime(), MTIME as i64);
}

#[test]
fn ownership_is_left_alone_when_not_preserved() {
    let mut owned = header(tar::EntryType::Regular, 0o640);
    owned.set_uid(1234);
    let tar = Layer::new().with(owned, "f", b"x").tar();
    let sandbox = Sandbox::new();
    let options = UnpackOptions {
        preserve_ownership: false,
    };
    unpack_layer(&tar[..], Compression::None, &sandbox.root(), &options).unwrap();
    assert_eq!(
        lstat(sandbox.path("f")).uid(),
        nix::unistd::geteuid().as_raw()
    );
}

/// A v2 file capability granting CAP_NET_BIND_SERVICE (bit 10), effective.
const CAP_NET_BIND_SERVICE: [u8; 20] = [
    0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[test]
fn pax_records_override_header_fields_and_carry_xattrs() {
    let tar = Layer::new()
        .pax(&[
            ("uid", b"3000000"),
            ("gid", b"3000001"),
            ("mtime", b"1700000000.25"),
            ("atime", b"1600000001.5"),
            ("SCHILY.xattr.user.comment", b"hello"),
            ("SCHILY.xattr.security.capability", &CAP_NET_BIND_SERVICE),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ])
        .with(
            header(tar::EntryType::Regular, 0o755),
            "bin/ping",
            b"\x7fELF",
        )
        .pax(&[("SCHILY.xattr.trusted.note", b"on a symlink")])
        .symlink("bin/link", "ping")
        .pax(&[("SCHILY.xattr.user.dir", b"d"), ("mtime", b"1500000000")])
        .dir("bin", 0o755)
        .tar();
    let sandbox = Sandbox::new();
    sandbox.unpack(&tar).unwrap();

    let ping = sandbox.path("bin/ping");
    let meta = lstat(&ping);
    assert_eq!((meta.uid(), meta.gid()), (3_000_000, 3_000_001));
    assert_eq!(
        (meta.mtime(), meta.mtime_nsec()),
        (1_700_000_000, 250_000_000)
    );
    assert_eq!(
        (meta.atime(), meta.atime_nsec()),
        (1_600_000_001, 500_000_000)
    );
    assert_eq!(
        xattr::get(&ping, "user.comment").unwrap().unwrap(),
        b"hello"
    );
    // Set after chown, which would have dropped it.
    assert_eq!(
        xattr::get(&ping, "security.capability").unwrap().unwrap(),
        CAP_NET_BIND_SERVICE
    );
    // A layer cannot forge overlayfs metadata.
    assert_eq!(xattr::get(&ping, "trusted.overlay.opaque").unwrap(), None);
    let link = sandbox.path("bin/link");
    assert_eq!(
        xattr::get(&link, "trusted.note").unwrap().unwrap(),
        b"on a symlink"
    );
    let bin = sandbox.path("bin");
    assert_eq!(xattr::get(&bin, "user.dir").unwrap().unwrap(), b"d");
    assert_eq!(lstat(&bin).mtime(), 1_500_000_000);
}

#[test]
fn long_names_from_gnu_and_pax_headers() {
    let deep = format!("{}/file", ["a-fairly-long-directory-name"; 12].join("/"));
    let long_target = format!("../{}", "t".repeat(200));
    let pax_name = format!("pax/{}", "p".repeat(150));
    let tar = Layer::new()
        .file(&deep, "deep")
        .symlink("gnu-link", &long_target)
        .link(tar::EntryType::Link, "gnu-hard", &deep)
        .pax(&[("path", pax_name.as_bytes())])
        .file("short-name-replaced-by-pax", "pax")
        .pax(&[("path", b"pax-link"), ("linkpath", long_target.as_bytes())])
        .symlink("placeholder", "short")
        .tar();
    let sandbox = Sandbox::new();
    sandbox.unpack(&tar).unwrap();

    assert_eq!(fs::read_to_string(sandbox.path(&deep)).unwrap(), "deep");
    assert_eq!(
        fs::read_link(sandbox.path("gnu-link")).unwrap(),
        Path::new(&long_target)
    );
    assert_eq!(
        lstat(sandbox.path("gnu-hard")).ino(),
        lstat(sandbox.path(&deep)).ino()
    );
    assert_eq!(fs::read_to_string(sandbox.path(&pax_name)).unwrap(), "pax");
    assert!(!sandbox.path("short-name-replaced-by-pax").exists());
    assert_eq!(
        fs::read_link(sandbox.path("pax-link")).unwrap(),
        Path::new(&long_target)
    );
}

fn opaque(path: &Path) -> Option<Vec<u8>> {
    xattr::get(path, "trusted.overlay.opaque").unwrap()
}

fn assert_whiteout(path: &Path) {
    let meta = lstat(path);
    assert!(
        meta.file_type().is_char_device(),
        "{} is no whiteout",
        path.display()
    );
    assert_eq!(meta.rdev(), 0);
}

#[test]
fn whiteouts_become_overlayfs_whiteouts_and_opaque_dirs() {
    let tar = Layer::new()
        .file(".wh.gone", "")
        .dir("dir", 0o755)
        .file("dir/.wh..wh..opq", "")
        .file("dir/kept", "k")
        .file("new/.wh..wh..opq", "")
        .file("sub/.wh.x", "")
        .dir(".wh..wh.plnk", 0o700)
        .file(".wh..wh.plnk/1234.5678", "aufs")
        .file(".wh..wh.aufs", "")
        .tar();
    let sandbox = Sandbox::new();
    let stats = sandbox.unpack(&tar).unwrap();

    assert_whiteout(&sandbox.path("gone"));
    assert_whiteout(&sandbox.path("sub/x"));
    assert_eq!(opaque(&sandbox.path("dir")).as_deref(), Some(&b"y"[..]));
    assert_eq!(opaque(&sandbox.path("new")).as_deref(), Some(&b"y"[..]));
    assert_eq!(opaque(&sandbox.path("sub")), None);
    assert_eq!(fs::read_to_string(sandbox.path("dir/kept")).unwrap(), "k");
    let mut names: Vec<_> = fs::read_dir(sandbox.root())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["dir", "gone", "new", "sub"]);
    assert!(
        fs::read_dir(sandbox.path("dir"))
            .unwrap()
            .all(|e| e.unwrap().file_name() == "kept")
    );
    // gone, dir, kept, new, sub, x
    assert_eq!(stats.inodes, 6);
}

#[test]
fn whiteouts_hide_only_lower_layers() {
    let tar = Layer::new()
        // The file this layer adds stays; it hides the lower one anyway.
        .file("a", "mine")
        .file(".wh.a", "")
        // Deleted then re-created: the new dir must hide the lower content.
        .file(".wh.d", "")
        .dir("d", 0o755)
        .file("d/f", "new")
        .file(".wh.e", "")
        .file("e/implied", "")
        .dir("g", 0o755)
        .file("g/f", "")
        .file(".wh.g", "")
        .tar();
    let sandbox = Sandbox::new();
    sandbox.unpack(&tar).unwrap();
    assert_eq!(fs::read_to_string(sandbox.path("a")).unwrap(), "mine");
    for dir in ["d", "e", "g"] {
        assert!(lstat(sandbox.path(dir)).is_dir(), "{dir}");
        assert_eq!(
            opaque(&sandbox.path(dir)).as_deref(),
            Some(&b"y"[..]),
            "{dir}"
        );
    }
    assert!(sandbox.path("d/f").exists() && sandbox.path("e/implied").exists());
    assert!(sandbox.path("g/f").exists());
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tar = Layer::new()
        .file("x", "one")
        .file("x", "two")
        .dir("d", 0o755)
        .file("d/f", "12345")
        .file("d", "now a file")
        .file("e", "a file")
        .dir("e", 0o700)
        .file("e/g", "")
        .dir("m", 0o700)
        .file("m/a", "")
        .dir("m", 0o751)
        .file("m/b", "")
        .symlink("s", "x")
        .file("s", "not through the link")
        .tar();
    let sandbox = Sandbox::new();
    let stats = sandbox.unpack(&tar).unwrap();
    assert_eq!(fs::read_to_string(sandbox.path("x")).unwrap(), "two");
    assert_eq!(fs::read_to_string(sandbox.path("d")).unwrap(), "now a file");
    assert!(lstat(sandbox.path("e")).is_dir() && sandbox.path("e/g").exists());
    assert_eq!(lstat(sandbox.path("e")).mode() & 0o7777, 0o700);
    // A directory over a directory merges, and the later mode wins.
    assert!(sandbox.path("m/a").exists() && sandbox.path("m/b").exists());
    assert_eq!(lstat(sandbox.path("m")).mode() & 0o7777, 0o751);
    assert!(lstat(sandbox.path("s")).is_file());
    assert_eq!(
        fs::read_to_string(sandbox.path("s")).unwrap(),
        "not through the link"
    );
    // x(3) + d(10) + s(20); inodes x, d, e, g, m, a, b, s.
    assert_eq!((stats.disk_usage, stats.inodes), (33, 8));
}

#[test]
fn nothing_is_written_into_a_replaced_directory() {
    let tar = Layer::new()
        .file("a/b/f1", "")
        .file("a", "now a file")
        .file("a/b/f2", "")
        .tar();
    let err = Sandbox::new().unpack(&tar).unwrap_err();
    assert!(
        matches!(&err, UnpackError::Io { entry, source, .. }
            if entry == "a/b/f2" && source.raw_os_error() == Some(libc::ENOTDIR)),
        "{err}"
    );
}

#[test]
fn the_root_entry_sets_the_layer_roots_mode() {
    let root = header(tar::EntryType::Directory, 0o700);
    let tar = Layer::new().named(root, "./", "", b"").file("f", "").tar();
    let sandbox = Sandbox::new();
    sandbox.unpack(&tar).unwrap();
    let root = lstat(sandbox.root());
    assert_eq!((root.mode() & 0o7777, root.mtime()), (0o700, MTIME as i64));
}

/// Unpacks `tar` and expects it refused as unsafe, with nothing written outside.
fn assert_refused(tar: Vec<u8>, entry: &str) {
    assert_refused_in(&Sandbox::new(), tar, entry);
}

fn assert_refused_in(sandbox: &Sandbox, tar: Vec<u8>, entry: &str) {
    match sandbox.unpack(&tar) {
        Err(UnpackError::Unsafe { entry: got, reason }) => {
            assert_eq!(got, entry, "{reason}");
        }
        other => panic!("{entry}: expected an unsafe-entry error, got {other:?}"),
    }
    sandbox.assert_outside_untouched();
}

#[test]
fn absolute_and_climbing_paths_are_refused() {
    use tar::EntryType::{Link, Regular};
    assert_refused(
        Layer::new().raw(Regular, "/etc/passwd", "", b"x").tar(),
        "/etc/passwd",
    );
    assert_refused(
        Layer::new().raw(Regular, "../outside/evil", "", b"x").tar(),
        "../outside/evil",
    );
    let climb = "a/../../outside/evil";
    assert_refused(
        Layer::new()
            .file("a/f", "")
            .raw(Regular, climb, "", b"x")
            .tar(),
        climb,
    );
    assert_refused(
        Layer::new()
            .raw(Link, "stolen", "../outside/secret", b"")
            .tar(),
        "stolen",
    );
    assert_refused(
        Layer::new().raw(Link, "shadow", "/etc/shadow", b"").tar(),
        "shadow",
    );
    let pax = Layer::new()
        .pax(&[("path", b"../outside/evil")])
        .file("innocent", "x")
        .tar();
    assert_refused(pax, "../outside/evil");
    let pax_link = Layer::new()
        .pax(&[("linkpath", b"../../outside/secret")])
        .link(Link, "hard", "placeholder")
        .tar();
    assert_refused(pax_link, "hard");
}

#[test]
fn writes_through_symlinks_are_refused() {
    use tar::EntryType::{Directory, Link, Regular};
    let through = |target: &str, kind, name: &str, link: &str| {
        Layer::new()
            .symlink("link", target)
            .raw(kind, name, link, b"")
            .tar()
    };
    assert_refused(through("/", Regular, "link/etc/evil", ""), "link/etc/evil");
    assert_refused(through("../..", Regular, "link/evil", ""), "link/evil");
    assert_refused(through("../outside", Regular, "link/evil", ""), "link/evil");
    let sandbox = Sandbox::new();
    let outside = sandbox.0.path().join("outside");
    let absolute = through(outside.to_str().unwrap(), Regular, "link/evil", "");
    assert_refused_in(&sandbox, absolute, "link/evil");
    assert_refused(
        through("../outside", Directory, "link/newdir/", ""),
        "link/newdir/",
    );
    assert_refused(
        through("../outside", Regular, "link/.wh.secret", ""),
        "link/.wh.secret",
    );
    assert_refused(
        through("../outside", Regular, "link/.wh..wh..opq", ""),
        "link/.wh..wh..opq",
    );
    assert_refused(
        through("../outside", Link, "stolen", "link/secret"),
        "stolen",
    );
    let deeper = Layer::new()
        .dir("d", 0o755)
        .symlink("d/l", "/")
        .raw(Regular, "d/l/tmp/evil", "", b"x")
        .tar();
    assert_refused(deeper, "d/l/tmp/evil");
}

#[test]
fn symlinks_themselves_may_point_anywhere() {
    // Creating the links is harmless; only writing through them is refused.
    let tar = Layer::new()
        .symlink("root", "/")
        .symlink("up", "../../..")
        .tar();
    let sandbox = Sandbox::new();
    sandbox.unpack(&tar).unwrap();
    assert_eq!(
        fs::read_link(sandbox.path("up")).unwrap(),
        Path::new("../../..")
    );
    // A hard link to a symlink links the symlink, not its target.
    let tar = Layer::new()
        .symlink("s", "../outside/secret")
        .link(tar::EntryType::Link, "h", "s")
        .file("h", "replaced, not written through")
        .tar();
    let sandbox = Sandbox::new();
    sandbox.unpack(&tar).unwrap();
    assert!(lstat(sandbox.path("s")).file_type().is_symlink());
    sandbox.assert_outside_untouched();
}

#[test]
fn hard_links_must_name_an_earlier_entry() {
    for target in ["missing", "no/such/dir", "file/below-a-file"] {
        let tar = Layer::new()
            .file("file", "")
            .link(tar::EntryType::Link, "h", target)
            .tar();
        let err = Sandbox::new().unpack(&tar).unwrap_err();
        assert!(
            matches!(&err, UnpackError::Invalid { entry, .. } if entry == "h"),
            "{err}"
        );
        assert!(err.to_string().contains("not an earlier entry"), "{err}");
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn gzip_zstd_and_plain_layers_unpack_to_the_same_tree_and_diff_id() {
    let mut tar = Layer::new()
        .dir("d", 0o755)
        .file("d/f", &"data ".repeat(10_000))
        .tar();
    // Docker pads tars to 10 KiB records; the padding is part of the diff_id.
    tar.extend_from_slice(&[0; 10240]);
    let (first, rest) = tar.split_at(3000);
    let multi_member_gzip = [gzip(first), gzip(rest)].concat();
    let blobs = [
        (Compression::None, tar.clone()),
        (Compression::Gzip, gzip(&tar)),
        (Compression::Gzip, multi_member_gzip),
        (Compression::Zstd, zstd::encode_all(&tar[..], 3).unwrap()),
    ];
    for (compression, blob) in blobs {
        assert_eq!(Compression::sniff(&blob), compression);
        let sandbox = Sandbox::new();
        let stats = unpack_layer(
            &blob[..],
            compression,
            &sandbox.root(),
            &UnpackOptions::default(),
        )
        .unwrap();
        assert_eq!(stats.diff_id, Digest::sha256_of(&tar), "{compression:?}");
        assert_eq!(stats.tar_size, tar.len() as u64);
        assert_eq!(fs::read(sandbox.path("d/f")).unwrap().len(), 50_000);
    }
}

#[test]
fn media_types_map_to_compressions() {
    let of = |m: &str| Compression::from_media_type(m).ok();
    assert_eq!(
        of("application/vnd.oci.image.layer.v1.tar"),
        Some(Compression::None)
    );
    assert_eq!(
        of("application/vnd.oci.image.layer.v1.tar+gzip"),
        Some(Compression::Gzip)
    );
    assert_eq!(
        of("application/vnd.oci.image.layer.v1.tar+zstd"),
        Some(Compression::Zstd)
    );
    assert_eq!(
        of("application/vnd.docker.image.rootfs.diff.tar.gzip"),
        Some(Compression::Gzip)
    );
    // A raw Wasm layer has no compression: it is no tar at all.
    let err = Compression::from_media_type("application/vnd.wasm.content.layer.v1+wasm");
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("application/vnd.wasm.content.layer.v1+wasm")
    );
}

#[test]
fn media_types_map_to_layer_formats() {
    let of = |m: &str| LayerFormat::from_media_type(m).ok();
    assert_eq!(
        of("application/vnd.oci.image.layer.v1.tar+gzip"),
        Some(LayerFormat::Tar(Compression::Gzip))
    );
    assert_eq!(
        of("application/vnd.docker.image.rootfs.diff.tar"),
        Some(LayerFormat::Tar(Compression::None))
    );
    for wasm in crate::wasm::WASM_LAYER_MEDIA_TYPES {
        assert_eq!(of(wasm), Some(LayerFormat::WasmModule), "{wasm}");
    }
    let encrypted = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
    let err = LayerFormat::from_media_type(encrypted).unwrap_err();
    assert!(err.to_string().contains(encrypted), "{err}");
}

/// A tiny valid core module: the header and an empty custom section.
const MODULE: &[u8] = b"\0asm\x01\0\0\0\0\x05\x04skif";

#[test]
fn a_wasm_layer_unpacks_to_one_module_file() {
    let sandbox = Sandbox::new();
    let digest = Digest::sha256_of(MODULE);
    let stats =
        unpack_wasm_module(MODULE, &digest, &sandbox.root(), &UnpackOptions::default()).unwrap();
    assert_eq!(stats.diff_id, digest);
    assert_eq!(stats.tar_size, MODULE.len() as u64);
    assert_eq!(stats.disk_usage, MODULE.len() as u64);
    assert_eq!(stats.inodes, 1);
    let names: Vec<_> = fs::read_dir(sandbox.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [format!("{}.wasm", digest.hex())]);
    let file = sandbox.path(&names[0]);
    assert_eq!(fs::read(&file).unwrap(), MODULE);
    let meta = lstat(&file);
    assert!(meta.is_file());
    assert_eq!(meta.mode() & 0o7777, 0o644);
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    sandbox.assert_outside_untouched();
}

#[test]
fn a_wasm_layer_that_is_not_wasm_fails() {
    let digest = Digest::sha256_of(b"x");
    for blob in [&b"\x1f\x8b not wasm at all"[..], b"\0as", b""] {
        let sandbox = Sandbox::new();
        let err = unpack_wasm_module(blob, &digest, &sandbox.root(), &UnpackOptions::default())
            .unwrap_err();
        assert!(
            matches!(&err, UnpackError::Invalid { reason, .. } if reason.contains("WebAssembly")),
            "{err}"
        );
    }
    let sandbox = Sandbox::new();
    fs::write(sandbox.path("leftover"), "").unwrap();
    let err = unpack_wasm_module(MODULE, &digest, &sandbox.root(), &UnpackOptions::default())
        .unwrap_err();
    assert!(matches!(err, UnpackError::Destination { .. }), "{err}");
}

#[test]
fn a_wasm_layer_read_in_small_pieces_is_checked_and_copied_whole() {
    /// Hands out one byte per read, so the header check spans reads.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }
    let digest = Digest::sha256_of(MODULE);
    let sandbox = Sandbox::new();
    let stats = unpack_wasm_module(
        Trickle(MODULE),
        &digest,
        &sandbox.root(),
        &UnpackOptions::default(),
    )
    .unwrap();
    assert_eq!(stats.diff_id, digest);
    let bad = [b"\0asX".as_slice(), MODULE].concat();
    let err = unpack_wasm_module(
        Trickle(&bad),
        &digest,
        &Sandbox::new().root(),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Invalid { .. }), "{err}");
}

#[test]
fn broken_streams_and_entries_fail_the_unpack() {
    let tar = Layer::new().file("f", &"x".repeat(100_000)).tar();
    let truncated = gzip(&tar);
    let truncated = &truncated[..truncated.len() - 50];
    let sandbox = Sandbox::new();
    let err = unpack_layer(
        truncated,
        Compression::Gzip,
        &sandbox.root(),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Stream(_)), "{err}");

    let mut corrupt = Layer::new().file("f", "x").tar();
    corrupt[10] ^= 0xff;
    assert!(matches!(
        Sandbox::new().unpack(&corrupt),
        Err(UnpackError::Stream(_))
    ));

    let weird = Layer::new()
        .raw(tar::EntryType::new(b'V'), "volume", "", b"")
        .tar();
    assert!(matches!(
        Sandbox::new().unpack(&weird),
        Err(UnpackError::Invalid { .. })
    ));

    let not_a_tar = b"just some bytes that are not a tar header".repeat(20);
    assert!(Sandbox::new().unpack(&not_a_tar).is_err());
}

#[test]
fn the_destination_must_be_empty() {
    let sandbox = Sandbox::new();
    fs::write(sandbox.path("leftover"), "").unwrap();
    let err = sandbox
        .unpack(&Layer::new().file("f", "").tar())
        .unwrap_err();
    assert!(matches!(err, UnpackError::Destination { .. }), "{err}");
}

#[test]
fn a_full_filesystem_is_reported_as_no_space() {
    let sandbox = Sandbox::new();
    let root = sandbox.root();
    nix::mount::mount(
        Some("tmpfs"),
        &root,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=256k"),
    )
    .unwrap();
    let tar = Layer::new().file("big", &"x".repeat(1024 * 1024)).tar();
    let result = sandbox.unpack(&tar);
    nix::mount::umount2(&root, nix::mount::MntFlags::MNT_DETACH).unwrap();
    let err = result.unwrap_err();
    assert!(err.is_no_space(), "{err}");
    assert!(err.to_string().contains("\"big\""), "{err}");
    assert!(!UnpackError::UnsupportedMediaType("x".into()).is_no_space());
}
