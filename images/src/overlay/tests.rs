//! Overlay mount tests (as root).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::*;
use crate::unpack::{Compression, UnpackOptions, unpack_layer};

/// Unmounts on drop, so that a failing test leaves no mount behind.
struct Mounted(PathBuf);

impl Mounted {
    fn at(spec: &OverlaySpec, target: &Path) -> Self {
        fs::create_dir_all(target).unwrap();
        KernelMounter.mount_overlay(spec, target).unwrap();
        Self(target.into())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

fn file_header(size: usize) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(size as u64);
    header
}

/// Unpacks a layer of `files` (empty content = directory) into `dir`.
fn layer(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = file_header(data.len());
        if data.is_empty() && !path.contains(".wh.") {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
        }
        tar.append_data(&mut header, path, data.as_bytes()).unwrap();
    }
    fs::create_dir_all(dir).unwrap();
    let tar = tar.into_inner().unwrap();
    unpack_layer(&tar[..], Compression::None, dir, &UnpackOptions::default()).unwrap();
    dir.into()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A base layer and a layer above it that deletes `a` and empties `d`.
fn two_layers(root: &Path) -> Vec<PathBuf> {
    let base = layer(
        &root.join("base"),
        &[
            ("a", "A"),
            ("b", "B"),
            ("d", ""),
            ("d/x", "X"),
            ("d/y", "Y"),
            ("e/f", "F"),
        ],
    );
    let top = layer(
        &root.join("top"),
        &[(".wh.a", ""), ("d/.wh..wh..opq", ""), ("d/z", "Z")],
    );
    vec![top, base]
}

fn writable(root: &Path, lower: &[PathBuf], name: &str) -> OverlaySpec {
    let (upper, work) = (root.join(name).join("upper"), root.join(name).join("work"));
    fs::create_dir_all(&upper).unwrap();
    fs::create_dir_all(&work).unwrap();
    OverlaySpec {
        lower: lower.to_vec(),
        upper: Some(upper),
        work: Some(work),
    }
}

#[test]
fn merged_view_honours_whiteouts_and_opaque_dirs_and_writes_go_up() {
    let tmp = tempfile::tempdir().unwrap();
    let lower = two_layers(tmp.path());
    let spec = writable(tmp.path(), &lower, "c1");
    let merged = tmp.path().join("merged");
    let mount = Mounted::at(&spec, &merged);

    assert_eq!(names(&merged), ["b", "d", "e"]);
    assert_eq!(names(&merged.join("d")), ["z"]);
    assert_eq!(fs::read_to_string(merged.join("e/f")).unwrap(), "F");

    let upper = spec.upper.clone().unwrap();
    fs::write(merged.join("new"), "written").unwrap();
    assert_eq!(fs::read_to_string(upper.join("new")).unwrap(), "written");
    fs::remove_file(merged.join("b")).unwrap();
    let whiteout = fs::symlink_metadata(upper.join("b")).unwrap();
    assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
    // The layers themselves are untouched.
    assert_eq!(fs::read_to_string(lower[1].join("b")).unwrap(), "B");

    KernelMounter.unmount(&merged).unwrap();
    assert!(names(&merged).is_empty());
    // Unmounting what is not mounted (or does not exist) is fine.
    KernelMounter.unmount(&merged).unwrap();
    KernelMounter.unmount(&tmp.path().join("missing")).unwrap();
    drop(mount);
}

#[test]
fn overlays_share_lower_dirs_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let lower = two_layers(tmp.path());
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let _one = Mounted::at(&writable(tmp.path(), &lower, "c1"), &one);
    let _two = Mounted::at(&writable(tmp.path(), &lower, "c2"), &two);
    fs::write(one.join("b"), "one's").unwrap();
    fs::write(two.join("b"), "two's").unwrap();
    assert_eq!(fs::read_to_string(one.join("b")).unwrap(), "one's");
    assert_eq!(fs::read_to_string(two.join("b")).unwrap(), "two's");
    assert_eq!(names(&two.join("d")), ["z"]);
    // A third, read-only view of the same layers while both are mounted.
    let three = tmp.path().join("three");
    let _three = Mounted::at(&OverlaySpec::read_only(lower), &three);
    assert_eq!(fs::read_to_string(three.join("b")).unwrap(), "B");
}

#[test]
fn read_only_views_of_one_or_more_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let lower = two_layers(tmp.path());
    for (name, lower) in [("single", vec![lower[1].clone()]), ("both", lower.clone())] {
        let target = tmp.path().join(name);
        let _mount = Mounted::at(&OverlaySpec::read_only(lower), &target);
        assert_eq!(fs::read_to_string(target.join("b")).unwrap(), "B");
        let err = fs::write(target.join("new"), "x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{name}");
    }
}

#[test]
fn an_image_without_layers_mounts_its_upper_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = writable(tmp.path(), &[], "c1");
    let target = tmp.path().join("rootfs");
    let _mount = Mounted::at(&spec, &target);
    fs::write(target.join("f"), "x").unwrap();
    assert!(spec.upper.unwrap().join("f").exists());
}

/// 150 layers whose absolute paths are far longer than one page of options.
fn many_layers(root: &Path) -> Vec<PathBuf> {
    let base = root.join("a-very-long-directory-name-for-layer-snapshots-".repeat(4));
    (0..150)
        .map(|i| {
            let dir = base.join(format!("snapshot-{i:03}")).join("fs");
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(format!("f-{i:03}")), "").unwrap();
            fs::write(dir.join("top"), format!("{i:03}")).unwrap();
            dir
        })
        .collect()
}

fn assert_many_layers_merged(target: &Path) {
    assert_eq!(names(target).len(), 151);
    assert_eq!(fs::read_to_string(target.join("top")).unwrap(), "000");
    assert!(target.join("f-149").exists());
}

#[test]
fn many_layers_under_a_long_path_still_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let lower = many_layers(tmp.path());
    let spec = writable(tmp.path(), &lower, "c1");
    assert!(spec.options(None).unwrap().len() > 4 * page_size());
    let target = tmp.path().join("rootfs");
    let mount = Mounted::at(&spec, &target);
    assert_many_layers_merged(&target);
    fs::write(target.join("written"), "").unwrap();
    assert!(spec.upper.unwrap().join("written").exists());
    drop(mount);

    // The new mount API names the lower dir it could not use.
    let missing = tmp.path().join("missing");
    let spec = OverlaySpec {
        lower: vec![missing, tmp.path().into()],
        ..Default::default()
    };
    match mount_with_fsconfig(&spec, &target) {
        Err(FsconfigError::Failed(err)) => {
            assert!(err.to_string().contains("missing"), "{err}")
        }
        // Kernels before 6.8: the relative fallback is tested below.
        Err(FsconfigError::Unsupported(why)) => tracing::warn!(%why, "no lowerdir+"),
        Ok(()) => panic!("a missing lower dir must fail"),
    }
}

#[test]
fn relative_lower_dirs_mount_without_touching_the_process_cwd() {
    let tmp = tempfile::tempdir().unwrap();
    let lower = many_layers(tmp.path());
    let spec = writable(tmp.path(), &lower, "c1");
    let base = common_parent(&spec.lower);
    assert_eq!(base, lower[0].parent().unwrap().parent().unwrap());
    let options = spec.options(Some(&base)).unwrap();
    assert!(
        options.starts_with("lowerdir=snapshot-000/fs:snapshot-001/fs:"),
        "{options}"
    );
    assert!(options.len() < page_size());
    let target = tmp.path().join("rootfs");
    fs::create_dir_all(&target).unwrap();
    let cwd = std::env::current_dir().unwrap();
    mount_relative(&options, &base, &target, lower.len()).unwrap();
    let _mount = Mounted(target.clone());
    assert_eq!(std::env::current_dir().unwrap(), cwd);
    assert_many_layers_merged(&target);
}

#[test]
fn options_name_every_dir_and_turn_the_index_off() {
    let spec = OverlaySpec {
        lower: vec!["/s/2/fs".into(), "/s/1/fs".into()],
        upper: Some("/s/3/fs".into()),
        work: Some("/s/3/work".into()),
    };
    assert_eq!(
        spec.options(None).unwrap(),
        "lowerdir=/s/2/fs:/s/1/fs,upperdir=/s/3/fs,workdir=/s/3/work,index=off"
    );
    let odd = OverlaySpec {
        lower: vec!["/a:b".into(), "/c".into()],
        ..Default::default()
    };
    assert!(odd.options(None).is_err());
    assert_eq!(common_parent(&odd.lower), Path::new("/"));
}

#[test]
fn bad_specs_are_refused_before_any_syscall() {
    let target = Path::new("/mnt/rootfs");
    let refused = |spec: OverlaySpec| {
        let err = RecordingMounter::new()
            .mount_overlay(&spec, target)
            .unwrap_err();
        assert!(matches!(err, MountError::InvalidSpec { .. }), "{err}");
    };
    refused(OverlaySpec::default());
    refused(OverlaySpec {
        lower: vec!["/l".into()],
        upper: Some("/u".into()),
        work: None,
    });
    refused(OverlaySpec {
        lower: vec!["relative".into(), "/l".into()],
        ..Default::default()
    });
    let spec = OverlaySpec::read_only(vec!["/l".into()]);
    assert!(
        KernelMounter
            .mount_overlay(&spec, Path::new("rel"))
            .is_err()
    );
}

#[test]
fn recording_mounter_records_and_fails_on_demand() {
    let mounter = RecordingMounter::new();
    let spec = OverlaySpec::read_only(vec!["/l".into()]);
    let (a, b) = (Path::new("/run/a"), Path::new("/run/b"));
    mounter.mount_overlay(&spec, a).unwrap();
    mounter.mount_overlay(&spec, b).unwrap();
    mounter.unmount(a).unwrap();
    assert_eq!(mounter.mounted(), [b]);
    mounter.fail_next(libc::EBUSY);
    assert!(mounter.unmount(b).unwrap_err().is_busy());
    assert_eq!(mounter.mounted(), [b]);
    assert_eq!(mounter.calls().len(), 4);
    assert_eq!(
        mounter.calls()[0],
        MountCall::Mount {
            spec,
            target: a.into()
        }
    );
}
