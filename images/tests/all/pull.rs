//! Pulling from every kind of registry and every image format.

use std::collections::HashSet;

use skiff_images::progress::{LayerState, PullProgress};
use skiff_tests::Fixture;

use crate::{Env, assert_each_fetched_once, harness_digest, mount};

#[tokio::test]
async fn pulls_from_open_basic_tls_and_token_registries() {
    let env = Env::start().await;
    for registry in env.regs.all() {
        let reference = Fixture::Busybox.reference(registry);
        let outcome = env.store.pull(&reference, None).await.unwrap_or_else(|e| {
            panic!("pull from the {:?} registry: {e}", registry.kind());
        });
        assert!(
            outcome.image.names.contains(&reference),
            "{:?}",
            outcome.image.names
        );
        let repo_digest = Fixture::Busybox.digest_reference(registry).unwrap();
        assert!(
            outcome.image.names.contains(&repo_digest),
            "{:?}",
            outcome.image.names
        );
    }
    // Same image from four registries: one image, one set of layers.
    assert_eq!(env.store.list().len(), 1);
    assert_eq!(env.store.list()[0].names.len(), 8);
}

#[tokio::test]
async fn a_pull_by_digest_records_only_the_repo_digest() {
    let env = Env::start().await;
    let reference = Fixture::BusyboxV1.digest_reference(&env.regs.open).unwrap();
    let image = env.store.pull(&reference, None).await.unwrap().image;
    assert_eq!(image.names, vec![reference.clone()]);
    assert_eq!(env.store.get(&reference).unwrap().id, image.id);
}

#[tokio::test]
async fn tags_of_one_repository_are_separate_images_and_latest_shares_one() {
    let env = Env::start().await;
    let v1 = env
        .store
        .pull(&Fixture::BusyboxV1.reference(&env.regs.open), None)
        .await
        .unwrap();
    let v2 = env
        .store
        .pull(&Fixture::BusyboxV2.reference(&env.regs.open), None)
        .await
        .unwrap();
    let latest = env
        .store
        .pull(&Fixture::Busybox.reference(&env.regs.open), None)
        .await
        .unwrap();
    assert_ne!(v1.image.id, v2.image.id);
    assert_eq!(latest.image.id, v2.image.id);
    assert_eq!(latest.layers_fetched, 0, "latest is 2.0: nothing to fetch");
    assert_eq!(env.store.list().len(), 2);
    let tags = &env.store.get(&v2.image.id.to_string()).unwrap().names;
    assert!(
        tags.iter().any(|n| n.ends_with(":2.0")) && tags.iter().any(|n| n.ends_with(":latest"))
    );

    // Lookups as crictl makes them: ID, short ID, tag, repo digest.
    let short = &v1.image.id.hex()[..12];
    assert_eq!(env.store.get(short).unwrap().id, v1.image.id);
    let repo_digest = Fixture::BusyboxV1.digest_reference(&env.regs.open).unwrap();
    assert_eq!(env.store.get(&repo_digest).unwrap().id, v1.image.id);
    assert!(env.store.get("skiff-test/never-pulled").is_none());
}

#[tokio::test]
async fn image_indexes_and_manifest_lists_resolve_to_this_node() {
    let env = Env::start().await;
    for fixture in [Fixture::Multiarch, Fixture::MultiarchDocker] {
        let reference = fixture.reference(&env.regs.open);
        let image = env.store.pull(&reference, None).await.unwrap().image;
        // The repo digest is the index's, as containerd records it.
        let index_digest = fixture.digest_reference(&env.regs.open).unwrap();
        assert!(
            image.names.contains(&index_digest),
            "{fixture:?}: {:?}",
            image.names
        );
        let host = fixture.load().unwrap().manifest().unwrap();
        assert_eq!(
            harness_digest(&image.manifest_digest),
            host.descriptor.digest,
            "{fixture:?}"
        );
        let mounted = mount(
            &env.store,
            env.dir.path(),
            &format!("{fixture:?}"),
            &reference,
        )
        .await;
        let platform = std::fs::read_to_string(mounted.path("/platform.txt")).unwrap();
        assert!(
            platform.contains(std::env::consts::ARCH) || platform.contains("amd64"),
            "{platform}"
        );
    }
}

#[tokio::test]
async fn gzip_zstd_uncompressed_and_docker_schema2_layers_all_unpack() {
    let env = Env::start().await;
    for fixture in [
        Fixture::Busybox,
        Fixture::BusyboxZstd,
        Fixture::BusyboxUncompressed,
        Fixture::BusyboxDocker,
    ] {
        let reference = fixture.reference(&env.regs.open);
        let image = env.store.pull(&reference, None).await.unwrap().image;
        let mounted = mount(
            &env.store,
            env.dir.path(),
            &format!("{fixture:?}"),
            &reference,
        )
        .await;
        assert!(mounted.path("/bin/busybox").is_file(), "{fixture:?}");
        assert!(mounted.path("/bin/sh").is_symlink(), "{fixture:?}");
        assert!(!image.layers.is_empty());
    }
    // The same uncompressed content arrives in three compressions: the
    // snapshots are shared by diff ID, so only the first pull unpacked it.
    let diff_ids: HashSet<_> = env
        .store
        .list()
        .iter()
        .flat_map(|i| i.layers.iter().map(|l| l.diff_id.clone()))
        .collect();
    let layer_snapshots = env.store.snapshots().list().unwrap().len() - 4;
    assert_eq!(layer_snapshots, diff_ids.len());
}

#[tokio::test]
async fn layers_shared_between_images_are_fetched_once() {
    let env = Env::start().await;
    let a = env
        .store
        .pull(&Fixture::BenchA.reference(&env.regs.open), None)
        .await
        .unwrap();
    assert_eq!((a.layers_fetched, a.layers_reused), (3, 0));
    let b = env
        .store
        .pull(&Fixture::BenchB.reference(&env.regs.open), None)
        .await
        .unwrap();
    assert_eq!((b.layers_fetched, b.layers_reused), (1, 2));
    assert_each_fetched_once(&env.regs.open, a.image.layers.iter().chain(&b.image.layers));
}

#[tokio::test]
async fn concurrent_pulls_of_images_sharing_layers_fetch_each_layer_once() {
    let env = Env::start().await;
    let a = Fixture::BenchA.reference(&env.regs.open);
    let b = Fixture::BenchB.reference(&env.regs.open);
    let (ra, rb, ra2) = tokio::join!(
        env.store.pull(&a, None),
        env.store.pull(&b, None),
        env.store.pull(&a, None)
    );
    let (ra, rb, ra2) = (ra.unwrap(), rb.unwrap(), ra2.unwrap());
    assert_eq!(ra.image.id, ra2.image.id);
    assert_eq!(
        ra.layers_fetched + rb.layers_fetched + ra2.layers_fetched,
        4
    );
    assert_each_fetched_once(
        &env.regs.open,
        ra.image.layers.iter().chain(&rb.image.layers),
    );
}

#[tokio::test]
async fn progress_reports_every_layer_done() {
    let env = Env::start().await;
    let progress = std::sync::Arc::new(PullProgress::new());
    let reference = Fixture::BenchA.reference(&env.regs.open);
    env.store
        .pull_with_progress(&reference, None, progress.clone())
        .await
        .unwrap();
    assert!(progress.is_finished());
    let layers = progress.snapshot();
    assert_eq!(layers.len(), 3);
    assert!(
        layers
            .iter()
            .all(|l| l.state == LayerState::Done && l.current == l.total)
    );
    assert!(progress.bytes_received() > 4_000_000);
}

#[tokio::test]
async fn images_and_layers_survive_a_restart() {
    let env = Env::start().await;
    let image = env
        .store
        .pull(&Fixture::Nonroot.reference(&env.regs.open), None)
        .await
        .unwrap()
        .image;
    assert_eq!(image.user, "1000:1000");
    let env = env.reopen().await;
    assert_eq!(env.store.list().as_slice(), std::slice::from_ref(&image));
    let again = env
        .store
        .pull(&Fixture::Nonroot.reference(&env.regs.open), None)
        .await
        .unwrap();
    assert_eq!(again.layers_fetched, 0);
    let config = env.store.image_config(&image.id).unwrap();
    assert_eq!(
        config.config().as_ref().unwrap().working_dir().as_deref(),
        Some("/home/skiff")
    );
}

#[tokio::test]
async fn removing_an_image_keeps_the_layers_another_image_uses() {
    let env = Env::start().await;
    let a = env
        .store
        .pull(&Fixture::BenchA.reference(&env.regs.open), None)
        .await
        .unwrap()
        .image;
    let b = env
        .store
        .pull(&Fixture::BenchB.reference(&env.regs.open), None)
        .await
        .unwrap()
        .image;
    let removed = env
        .store
        .remove(&Fixture::BenchA.reference(&env.regs.open))
        .await
        .unwrap();
    assert_eq!(removed.id, a.id);
    assert!(env.store.get(&a.id.to_string()).is_none());
    assert_eq!(
        env.store.snapshots().list().unwrap().len(),
        3,
        "bench-b's three layers stay"
    );
    let mounted = mount(&env.store, env.dir.path(), "b", &b.id.to_string()).await;
    assert!(mounted.path("/bin/busybox").is_file());
    drop(mounted);
    env.store.remove_rootfs("b").await.unwrap();
    env.store.remove(&b.id.to_string()).await.unwrap();
    assert!(env.store.snapshots().list().unwrap().is_empty());
    assert!(crate::snapshot_dirs(&env.store).is_empty());
    // Content (configs, manifests) of removed images goes too.
    assert!(env.store.read_blob(&a.id).is_err() && env.store.read_blob(&b.id).is_err());
}

#[tokio::test]
async fn a_docker_io_mirror_with_a_rewrite_serves_short_names() {
    let env = Env::start().await;
    let open = env.regs.open.host();
    let basic = env.regs.basic.host();
    let (user, password) = env.regs.basic.credentials().unwrap();
    // docker.io pulls go to the basic-auth registry first (which lacks the
    // rewritten name), then to the open one; the default endpoint
    // (registry-1.docker.io) is disabled so nothing leaves the machine.
    let yaml = format!(
        "mirrors:\n  docker.io:\n    endpoint: [\"http://{basic}/missing-prefix\", \"http://{open}\"]\n    \
         rewrite:\n      \"^library/(.*)\": \"skiff-test/$1\"\n\
         configs:\n  \"{basic}\":\n    auth: {{ username: {user}, password: {password} }}\n"
    );
    let path = env.dir.path().join("mirror.yaml");
    std::fs::write(&path, yaml).unwrap();
    let registries = skiff_images::registries::RegistriesConfig::load(&path)
        .unwrap()
        .with_default_endpoint_disabled(true);
    let root = env.dir.path().join("mirror-store");
    let store = crate::open_store(&env.regs, &root, |config| config.registries = registries).await;

    let image = store.pull("busybox:1.0", None).await.unwrap().image;
    assert!(
        image
            .names
            .contains(&"docker.io/library/busybox:1.0".to_string()),
        "{:?}",
        image.names
    );
    assert_eq!(store.get("busybox:1.0").unwrap().id, image.id);
    let v1 = Fixture::BusyboxV1.load().unwrap().manifest().unwrap();
    assert_eq!(harness_digest(&image.manifest_digest), v1.descriptor.digest);
}
