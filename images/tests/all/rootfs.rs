//! Container root filesystems: overlay mounts of shared layer snapshots.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use skiff_images::ErrorKind;
use skiff_tests::Fixture;

use crate::{Env, mount};

#[tokio::test]
async fn whiteouts_opaque_dirs_and_special_files_show_through_the_overlay() {
    let env = Env::start().await;
    let reference = Fixture::Whiteouts.reference(&env.regs.open);
    env.store.pull(&reference, None).await.unwrap();
    let root = mount(&env.store, env.dir.path(), "w", &reference).await;

    assert!(root.path("/data/keep").is_file());
    assert!(!root.path("/data/remove-me").exists());
    assert!(!root.path("/data/dir-to-remove").exists());
    let mut opaque: Vec<String> = std::fs::read_dir(root.path("/opaque"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    opaque.sort();
    assert_eq!(opaque, vec!["new".to_string()]);

    let special =
        |name: &str| std::fs::symlink_metadata(root.path(&format!("/special/{name}"))).unwrap();
    assert_eq!(special("hardlink").ino(), special("target").ino());
    assert!(special("symlink").file_type().is_symlink());
    assert!(special("fifo").file_type().is_fifo());
    let setuid = special("setuid");
    assert_eq!(
        (setuid.mode() & 0o7777, setuid.uid(), setuid.gid()),
        (0o4755, 1000, 1000)
    );
    let xattr = xattr::get(root.path("/special/xattr"), "user.skiff").unwrap();
    assert_eq!(xattr.as_deref(), Some(&b"yes"[..]));
}

#[tokio::test]
async fn writes_land_in_the_container_layer_only() {
    let env = Env::start().await;
    let reference = Fixture::BusyboxV1.reference(&env.regs.open);
    env.store.pull(&reference, None).await.unwrap();
    let first = mount(&env.store, env.dir.path(), "one", &reference).await;
    let second = mount(&env.store, env.dir.path(), "two", &reference).await;
    std::fs::write(first.path("/etc/skiff-release"), "changed").unwrap();
    std::fs::remove_file(first.path("/bin/ls")).unwrap();
    assert_eq!(
        std::fs::read_to_string(second.path("/etc/skiff-release"))
            .unwrap()
            .trim(),
        "1.0"
    );
    assert!(second.path("/bin/ls").exists());
    let usage = env.store.snapshots().rootfs_usage("one").unwrap();
    assert!(usage.inodes >= 2, "{usage:?}");
    assert!(env.store.fs_usage().unwrap().used_bytes > 1_000_000);
}

#[tokio::test]
async fn an_image_with_many_layers_mounts_and_nonroot_ownership_is_kept() {
    let env = Env::start().await;
    let many = Fixture::ManyLayers.reference(&env.regs.open);
    let image = env.store.pull(&many, None).await.unwrap().image;
    assert!(image.layers.len() > 40);
    let root = mount(&env.store, env.dir.path(), "many", &many).await;
    for n in [1, 20, skiff_tests::fixtures::MANY_LAYERS_EXTRA] {
        assert!(root.path(&format!("/layers/{n}")).exists(), "layer {n}");
    }

    let nonroot = Fixture::Nonroot.reference(&env.regs.open);
    env.store.pull(&nonroot, None).await.unwrap();
    let root = mount(&env.store, env.dir.path(), "nonroot", &nonroot).await;
    let home = std::fs::metadata(root.path("/home/skiff")).unwrap();
    assert_eq!((home.uid(), home.gid()), (1000, 1000));
}

#[tokio::test]
async fn an_image_in_use_by_a_container_cannot_be_removed() {
    let env = Env::start().await;
    let reference = Fixture::BusyboxV2.reference(&env.regs.open);
    env.store.pull(&reference, None).await.unwrap();
    env.store.prepare_rootfs("c1", &reference).await.unwrap();
    let err = env.store.remove(&reference).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("c1"), "{err}");
    let again = env
        .store
        .prepare_rootfs("c1", &reference)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    env.store.remove_rootfs("c1").await.unwrap();
    env.store.remove(&reference).await.unwrap();
}
