//! Air-gap import of OCI-layout and docker-archive tarballs.

use skiff_images::ErrorKind;
use skiff_tests::Fixture;
use skiff_tests::oci::Compression;

use crate::{Env, mount};

#[tokio::test]
async fn oci_and_docker_archives_import_in_every_compression() {
    let env = Env::start().await;
    let dir = env.dir.path().join("airgap");
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (Fixture::BusyboxV1, "v1-oci.tar", Compression::None, true),
        (Fixture::BusyboxV2, "v2-oci.tar.gz", Compression::Gzip, true),
        (
            Fixture::Multiarch,
            "multiarch-oci.tar.zst",
            Compression::Zstd,
            true,
        ),
        (
            Fixture::Nonroot,
            "nonroot-docker.tar",
            Compression::None,
            false,
        ),
        (
            Fixture::Whiteouts,
            "whiteouts-docker.tgz",
            Compression::Gzip,
            false,
        ),
        (
            Fixture::BenchA,
            "bench-docker.tar.zst",
            Compression::Zstd,
            false,
        ),
    ];
    for (fixture, file, compression, oci) in cases {
        let path = dir.join(file);
        if oci {
            fixture.write_oci_archive(&path, compression).unwrap();
        } else {
            fixture.write_docker_archive(&path, compression).unwrap();
        }
    }
    std::fs::write(dir.join("notes.txt"), "not an archive").unwrap();
    std::fs::write(dir.join("garbage.tar"), "this is no tarball").unwrap();

    let report = env.store.import_dir(&dir).await;
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert!(report.failed[0].0.ends_with("garbage.tar"));
    assert_eq!(report.failed[0].1.kind(), ErrorKind::InvalidArgument);
    assert_eq!(report.imported.len(), cases.len());

    for (fixture, ..) in cases {
        let name = format!("docker.io/{}", fixture.name());
        let image = env
            .store
            .get(&name)
            .unwrap_or_else(|| panic!("{name} not imported"));
        assert!(image.pinned, "air-gap images are pinned");
        let root = mount(&env.store, env.dir.path(), &format!("{fixture:?}"), &name).await;
        assert!(
            root.path("/bin/busybox").exists() || fixture == Fixture::Multiarch,
            "{fixture:?}"
        );
    }

    // Importing again changes nothing and unpacks nothing new.
    let snapshots = env.store.snapshots().list().unwrap().len();
    let again = env.store.import_dir(&dir).await;
    assert_eq!(again.imported.len(), cases.len());
    assert_eq!(env.store.snapshots().list().unwrap().len(), snapshots);
}

#[tokio::test]
async fn an_imported_image_shares_layers_with_a_pulled_one() {
    let env = Env::start().await;
    let pulled = env
        .store
        .pull(&Fixture::BusyboxV1.reference(&env.regs.open), None)
        .await
        .unwrap();
    let layers = env.store.snapshots().list().unwrap().len();
    let path = env.dir.path().join("v1.tar.gz");
    Fixture::BusyboxV1
        .write_oci_archive(&path, Compression::Gzip)
        .unwrap();
    let imported = env.store.import_archive(&path).await.unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].id, pulled.image.id);
    assert_eq!(env.store.snapshots().list().unwrap().len(), layers);
    assert!(env.store.get(&pulled.image.id.to_string()).unwrap().pinned);
}

#[tokio::test]
async fn a_truncated_archive_imports_nothing() {
    let env = Env::start().await;
    let path = env.dir.path().join("cut.tar");
    Fixture::BenchA
        .write_oci_archive(&path, Compression::None)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = env.store.import_archive(&path).await.unwrap_err();
    assert!(err.to_string().contains("cut.tar"), "{err}");
    assert!(env.store.list().is_empty());
}
