//! Garbage collection between the high and low disk thresholds.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use skiff_images::gc::{FsCapacity, FsStats, GcPolicy};
use skiff_tests::Fixture;
use skiff_tests::oci::Compression;

use crate::{Env, open_store, store_root};

/// A filesystem that always looks 95% full.
#[derive(Debug)]
struct AlmostFull;

impl FsStats for AlmostFull {
    fn capacity(&self, _: &Path) -> io::Result<FsCapacity> {
        Ok(FsCapacity {
            capacity: 100 << 30,
            available: 5 << 30,
        })
    }
}

#[tokio::test]
async fn over_the_high_threshold_unused_images_go_and_used_pinned_ones_stay() {
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&env.regs, &store_root(dir.path()), |config| {
        config.fs_stats = Arc::new(AlmostFull);
        config.gc = GcPolicy {
            min_age: Duration::ZERO,
            ..GcPolicy::default()
        };
    })
    .await;
    let unused = store
        .pull(&Fixture::BenchA.reference(&env.regs.open), None)
        .await
        .unwrap()
        .image;
    let used = store
        .pull(&Fixture::BusyboxV1.reference(&env.regs.open), None)
        .await
        .unwrap()
        .image;
    let kept = store
        .pull(&Fixture::BusyboxV2.reference(&env.regs.open), None)
        .await
        .unwrap()
        .image;
    store
        .prepare_rootfs("container", &used.id.to_string())
        .await
        .unwrap();
    let archive = dir.path().join("nonroot.tar");
    Fixture::Nonroot
        .write_oci_archive(&archive, Compression::None)
        .unwrap();
    let pinned = store.import_archive(&archive).await.unwrap().remove(0);

    let report = store
        .garbage_collect(&HashSet::from([kept.id.clone()]))
        .await
        .unwrap();
    assert_eq!(report.used_percent_before, 95);
    assert_eq!(report.images_removed, vec![unused.id.clone()]);
    assert!(store.get(&unused.id.to_string()).is_none());
    for image in [&used, &kept, &pinned] {
        assert!(
            store.get(&image.id.to_string()).is_some(),
            "{:?} was collected",
            image.names
        );
    }
}

#[tokio::test]
async fn under_the_high_threshold_nothing_is_collected() {
    let env = Env::start().await;
    let image = env
        .store
        .pull(&Fixture::BenchA.reference(&env.regs.open), None)
        .await
        .unwrap();
    let report = env.store.garbage_collect(&HashSet::new()).await.unwrap();
    assert!(report.images_removed.is_empty(), "{report:?}");
    assert_eq!(report.layers_removed, 0);
    assert!(env.store.get(&image.image.id.to_string()).is_some());
}
