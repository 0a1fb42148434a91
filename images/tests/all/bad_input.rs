//! Bad input: each gets a clear error and leaves nothing behind.

use std::sync::Arc;
use std::time::Duration;

use skiff_images::distribution::Credentials;
use skiff_images::metadata::{Metadata, SnapshotKind};
use skiff_images::progress::{LayerState, PullProgress};
use skiff_images::{ErrorKind, ImageError};
use skiff_tests::oci::{self, Compression, ImageBuilder, LayerBuilder, TarEntry};
use skiff_tests::{Fixture, TestRegistry};

use crate::{Env, assert_each_fetched_once, open_store, snapshot_dirs, store_root};

fn assert_nothing_stored(env: &Env) {
    assert!(env.store.list().is_empty(), "{:?}", env.store.list());
    assert!(env.store.snapshots().list().unwrap().is_empty());
    assert!(
        snapshot_dirs(&env.store).is_empty(),
        "{:?}",
        snapshot_dirs(&env.store)
    );
}

#[tokio::test]
async fn an_unknown_tag_or_repository_is_not_found_with_the_registry_answer() {
    let env = Env::start().await;
    let tag = format!("{}/skiff-test/busybox:no-such-tag", env.regs.open.host());
    let err = env.store.pull(&tag, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("MANIFEST_UNKNOWN"), "{err}");
    let repo = format!("{}/no/such-repository:latest", env.regs.open.host());
    let err = env.store.pull(&repo, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    // docker-registry answers MANIFEST_UNKNOWN for unknown repositories too.
    assert!(err.to_string().contains("UNKNOWN"), "{err}");
    assert_nothing_stored(&env);
}

#[tokio::test]
async fn wrong_credentials_are_an_authentication_error() {
    let env = Env::start().await;
    let wrong = Credentials::Basic {
        username: "skiff".into(),
        password: "wrong".into(),
    };
    for registry in [&env.regs.basic, &env.regs.token] {
        let reference = Fixture::Busybox.reference(registry);
        let err = env.store.pull(&reference, Some(&wrong)).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Unauthenticated,
            "{:?}: {err}",
            registry.kind()
        );
    }
    // The credentials in the request win over registries.yaml; right ones work.
    let (user, password) = env.regs.basic.credentials().unwrap();
    let right = Credentials::Basic {
        username: user.into(),
        password: password.into(),
    };
    env.store
        .pull(&Fixture::Busybox.reference(&env.regs.token), Some(&right))
        .await
        .unwrap();
}

#[tokio::test]
async fn https_is_the_default_and_an_unknown_ca_is_refused() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    // No registries.yaml: the TLS registry's certificate is not trusted.
    let store =
        skiff_images::ImageStore::open(skiff_images::StoreConfig::new(dir.path().join("s")))
            .await
            .unwrap();
    let err = store
        .pull(&Fixture::Busybox.reference(&env.regs.tls), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

async fn push(registry: &TestRegistry, image: &oci::Image, name: &str) -> String {
    registry.push(image, name).unwrap();
    format!("{}/{name}", registry.host())
}

#[tokio::test]
async fn a_corrupted_blob_fails_the_pull_and_stores_nothing() {
    let env = Env::start().await;
    let image = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .file("a", "first layer")
                .build(Compression::Gzip),
        )
        .layer(
            LayerBuilder::new()
                .file("b", vec![7u8; 100_000])
                .build(Compression::Gzip),
        )
        .build();
    let reference = push(&env.regs.open, &image, "bad/corrupt:v1").await;
    env.regs
        .open
        .corrupt_blob(&image.layers[1].descriptor().digest)
        .unwrap();
    let err = env.store.pull(&reference, None).await.unwrap_err();
    assert!(
        matches!(err, ImageError::LayerDigestMismatch { .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::DataLoss);
    // The good layer may stay for the next pull; no image and no corrupt layer do.
    assert!(env.store.list().is_empty());
    assert!(env.store.snapshots().list().unwrap().len() <= 1);
}

#[tokio::test]
async fn malicious_layers_are_rejected_and_nothing_escapes() {
    let env = Env::start().await;
    let outside = env.dir.path().join("outside");
    let attacks: Vec<(&str, Vec<TarEntry>)> = vec![
        (
            "dotdot",
            vec![TarEntry::file(
                "../../../../../../tmp/skiff-escape-dotdot",
                "x",
            )],
        ),
        (
            "absolute",
            vec![TarEntry::file("/tmp/skiff-escape-absolute", "x")],
        ),
        (
            "symlink",
            vec![
                TarEntry::symlink("link", outside.to_str().unwrap()),
                TarEntry::file("link/evil", "x"),
            ],
        ),
        (
            "hardlink",
            vec![TarEntry::hardlink("passwd", "../../../../../etc/passwd")],
        ),
    ];
    std::fs::create_dir_all(&outside).unwrap();
    for (name, entries) in attacks {
        let layer = oci::Layer::from_tar(&oci::write_tar(&entries), Compression::Gzip, name);
        let image = ImageBuilder::new().layer(layer).build();
        let reference = push(&env.regs.open, &image, &format!("bad/{name}:v1")).await;
        let err = env.store.pull(&reference, None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DataLoss, "{name}: {err}");
        assert!(
            err.to_string().contains("unsafe") || err.to_string().contains("refusing"),
            "{name}: {err}"
        );
    }
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    assert!(!std::path::Path::new("/tmp/skiff-escape-dotdot").exists());
    assert!(!std::path::Path::new("/tmp/skiff-escape-absolute").exists());
    assert_nothing_stored(&env);
}

#[tokio::test]
async fn docker_schema_1_is_refused_with_a_clear_error() {
    let env = Env::start().await;
    let layer = LayerBuilder::new().file("a", "a").build(Compression::Gzip);
    let image = ImageBuilder::new().layer(layer.clone()).build();
    env.regs.open.push(&image, "old/schema1:base").unwrap();
    let manifest = oci::signed_schema1_manifest(
        "old/schema1",
        "v1",
        "amd64",
        &[layer.descriptor().digest.clone()],
    )
    .unwrap();
    let answer = env
        .regs
        .open
        .client()
        .put_manifest("old/schema1", "v1", &manifest.media_type, &manifest.bytes)
        .unwrap();
    assert!(
        answer.status < 300,
        "registry refused the schema 1 push: {answer:?}"
    );
    let err = env
        .store
        .pull(&format!("{}/old/schema1:v1", env.regs.open.host()), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("schema 1"), "{err}");
}

#[tokio::test]
async fn a_full_disk_mid_pull_is_a_clear_error_and_leaves_no_image() {
    let env = Env::start().await;
    let small = env.dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &small,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=3m"),
    )
    .unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _unmount = Unmount(small.clone());
    let store = open_store(&env.regs, &store_root(&small), |_| {}).await;
    let err = store
        .pull(&Fixture::BenchA.reference(&env.regs.open), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ResourceExhausted, "{err}");
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert!(store.list().is_empty());
    // Only complete layers remain: every snapshot on disk is a ready one.
    let ready = store.snapshots().list().unwrap();
    assert!(
        ready
            .iter()
            .all(|s| s.kind == SnapshotKind::Layer && s.ready)
    );
    assert_eq!(snapshot_dirs(&store).len(), ready.len());
    // With room again, the same store pulls the image.
    drop(store);
    nix::mount::mount(
        None::<&str>,
        &small,
        None::<&str>,
        nix::mount::MsFlags::MS_REMOUNT,
        Some("size=64m"),
    )
    .unwrap();
    let store = open_store(&env.regs, &store_root(&small), |_| {}).await;
    store
        .pull(&Fixture::BenchA.reference(&env.regs.open), None)
        .await
        .unwrap();
}

/// A TCP proxy to `upstream` that sends responses at `bytes_per_second`,
/// so a pull is slow enough to interrupt at a chosen point.
async fn throttled_proxy(upstream: String, bytes_per_second: u64) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let mut buf = vec![0u8; 16 << 10];
                while let Ok(n) = server_read.read(&mut buf).await {
                    if n == 0 || client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let pause = Duration::from_secs_f64(n as f64 / bytes_per_second as f64);
                    tokio::time::sleep(pause).await;
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn an_interrupted_pull_leaves_no_image_and_the_next_reuses_finished_layers() {
    let env = Env::start().await;
    let proxy = throttled_proxy(env.regs.open.host(), 4 << 20).await;
    let yaml = env.dir.path().join("slow.yaml");
    let host = env.regs.open.host();
    std::fs::write(
        &yaml,
        format!("mirrors:\n  \"{host}\":\n    endpoint: [\"http://{proxy}\"]\n"),
    )
    .unwrap();
    let mut config = skiff_images::StoreConfig::new(env.dir.path().join("slow-store"));
    config.registries = skiff_images::registries::RegistriesConfig::load(&yaml).unwrap();
    config.max_concurrent_downloads = 1;
    let store = skiff_images::ImageStore::open(config).await.unwrap();

    let reference = Fixture::BenchA.reference(&env.regs.open);
    let progress = Arc::new(PullProgress::new());
    let pull = {
        let (store, reference, progress) = (store.clone(), reference.clone(), progress.clone());
        tokio::spawn(async move { store.pull_with_progress(&reference, None, progress).await })
    };
    // Interrupt as soon as the first layer is in; the others take a second more.
    tokio::time::timeout(Duration::from_secs(30), async {
        while !progress
            .snapshot()
            .iter()
            .any(|l| l.state == LayerState::Done)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap();
    pull.abort();
    assert!(pull.await.unwrap_err().is_cancelled());
    assert!(
        store.list().is_empty(),
        "an interrupted pull must not show an image"
    );

    let outcome = store.pull(&reference, None).await.unwrap();
    assert!(outcome.layers_reused >= 1, "{outcome:?}");
    assert_each_fetched_once(&env.regs.open, &outcome.image.layers);
}

#[tokio::test]
async fn a_crash_mid_unpack_leaves_nothing_visible_after_restart() {
    let env = Env::start().await;
    env.store
        .pull(&Fixture::BusyboxV1.reference(&env.regs.open), None)
        .await
        .unwrap();
    let root = env.store.root().to_path_buf();
    let env = {
        // What a kill -9 during an unpack leaves: an unready row, a half
        // directory, a stray directory and an unfinished blob.
        let Env { regs, dir, store } = env;
        drop(store);
        let meta = Metadata::open(&root.join("metadata.db")).unwrap();
        let id = meta
            .begin_snapshot(SnapshotKind::Layer, "sha256:half", None)
            .unwrap();
        std::fs::create_dir_all(root.join(format!("snapshots/{id}/fs/bin"))).unwrap();
        std::fs::create_dir_all(root.join("snapshots/stray/fs")).unwrap();
        std::fs::write(root.join("content/ingest/abc.1"), "half").unwrap();
        drop(meta);
        let store = open_store(&regs, &root, |_| {}).await;
        Env { regs, dir, store }
    };
    assert_eq!(env.store.list().len(), 1);
    let snaps = env.store.snapshots().list().unwrap();
    assert!(snaps.iter().all(|s| s.ready));
    assert_eq!(snapshot_dirs(&env.store).len(), snaps.len());
    assert!(
        std::fs::read_dir(root.join("content/ingest"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn a_second_store_on_the_same_directory_is_refused() {
    let env = Env::start().await;
    let mut config = skiff_images::StoreConfig::new(env.store.root());
    config.gc = Default::default();
    let err = skiff_images::ImageStore::open(config).await.unwrap_err();
    assert!(matches!(err, ImageError::Locked(_)), "{err}");
}
