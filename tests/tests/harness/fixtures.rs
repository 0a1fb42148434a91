//! The fixture images: content, media types, reproducibility.

use anyhow::{Context, Result, ensure};
use skiff_tests::Fixture;
use skiff_tests::fixtures::{self, MANY_LAYERS_EXTRA};
use skiff_tests::oci::{Compression, EPOCH_SECONDS, Platform, REF_NAME, media_type};

use crate::support::{ReadEntry, read_tar};

fn layer_entries(
    fixture: Fixture,
    index: usize,
) -> Result<std::collections::BTreeMap<String, ReadEntry>> {
    let image = fixture.load()?;
    let manifest = image.manifest()?;
    let layer = manifest.layers.get(index).context("no such layer")?;
    let blob = image.blob(&layer.digest)?;
    read_tar(&blob, Compression::of_layer_media_type(&layer.media_type))
}

#[test]
fn fixture_builds_are_reproducible() -> Result<()> {
    let cached = fixtures::layout()?.read_index()?;
    let dir = tempfile::tempdir()?;
    let fresh = fixtures::build_layout_uncached(dir.path())?.read_index()?;
    ensure!(cached.len() == Fixture::ALL.len());
    for (a, b) in cached.iter().zip(&fresh) {
        ensure!(
            a.digest == b.digest,
            "{:?} differs between builds",
            a.annotations
        );
    }
    Ok(())
}

#[test]
fn every_fixture_is_named_in_the_layout() -> Result<()> {
    let index = fixtures::layout()?.read_index()?;
    for fixture in Fixture::ALL {
        let entry = index
            .iter()
            .find(|d| {
                d.annotations
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .map(String::as_str)
                    == Some(fixture.name())
            })
            .with_context(|| format!("{} missing from index.json", fixture.name()))?;
        ensure!(entry.digest == fixture.digest()?);
    }
    Ok(())
}

#[test]
fn busybox_base_layer_has_the_binary_applets_and_users() -> Result<()> {
    let entries = layer_entries(Fixture::Busybox, 0)?;
    let busybox = entries.get("bin/busybox").context("no bin/busybox")?;
    ensure!(busybox.mode == 0o755 && busybox.data.len() > 500_000);
    for applet in [
        "sh", "ls", "cat", "sleep", "httpd", "nc", "wget", "ip", "mount", "true",
    ] {
        let entry = entries
            .get(&format!("bin/{applet}"))
            .with_context(|| format!("no {applet}"))?;
        ensure!(entry.kind == tar::EntryType::Symlink && entry.link.as_deref() == Some("busybox"));
    }
    ensure!(
        entries.get("tmp/").map(|e| e.mode) == Some(0o1777),
        "tmp is not 1777"
    );
    ensure!(entries.get("root/").map(|e| e.mode) == Some(0o700));
    let passwd = String::from_utf8(entries.get("etc/passwd").context("no passwd")?.data.clone())?;
    ensure!(passwd.contains("root:x:0:0") && passwd.contains("nobody:x:65534"));
    ensure!(!passwd.contains("skiff"));
    for (path, entry) in &entries {
        ensure!(
            entry.mtime == EPOCH_SECONDS && entry.uid == 0 && entry.gid == 0,
            "{path}"
        );
    }
    let paths: Vec<&String> = entries.keys().collect();
    ensure!(
        paths.windows(2).all(|w| w[0] < w[1]),
        "entries are not sorted"
    );
    Ok(())
}

#[test]
fn busybox_tags_differ_by_release_file() -> Result<()> {
    ensure!(Fixture::Busybox.digest()? == Fixture::BusyboxV2.digest()?);
    ensure!(Fixture::BusyboxV1.digest()? != Fixture::BusyboxV2.digest()?);
    for (fixture, version) in [(Fixture::BusyboxV1, "1.0\n"), (Fixture::BusyboxV2, "2.0\n")] {
        let entries = layer_entries(fixture, 1)?;
        let release = entries
            .get("etc/skiff-release")
            .context("no release file")?;
        ensure!(release.data == version.as_bytes());
    }
    let v1 = Fixture::BusyboxV1.load()?.manifest()?;
    let v2 = Fixture::BusyboxV2.load()?.manifest()?;
    ensure!(
        v1.layers[0] == v2.layers[0],
        "the base layer should be shared"
    );
    let config = &v2.config_json;
    ensure!(config["config"]["Cmd"] == serde_json::json!(["sh"]));
    ensure!(
        config["config"]["Env"][0]
            .as_str()
            .is_some_and(|e| e.starts_with("PATH=/usr/local/sbin"))
    );
    ensure!(config["architecture"] == Platform::host().architecture.as_str());
    ensure!(config["history"].as_array().map(Vec::len) == Some(2));
    ensure!(v2.diff_ids.len() == 2);
    Ok(())
}

#[test]
fn multiarch_index_lists_three_platforms() -> Result<()> {
    for (fixture, index_type, manifest_type) in [
        (
            Fixture::Multiarch,
            media_type::OCI_INDEX,
            media_type::OCI_MANIFEST,
        ),
        (
            Fixture::MultiarchDocker,
            media_type::DOCKER_MANIFEST_LIST,
            media_type::DOCKER_MANIFEST,
        ),
    ] {
        let image = fixture.load()?;
        ensure!(image.is_index()? && image.descriptor().media_type == index_type);
        let entries = image.index_entries()?;
        let mut platforms: Vec<String> = entries
            .iter()
            .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
            .collect();
        platforms.sort();
        ensure!(
            platforms == ["linux/amd64", "linux/arm/v7", "linux/arm64"],
            "{platforms:?}"
        );
        ensure!(entries.iter().all(|d| d.media_type == manifest_type));
        for platform in entries.iter().filter_map(|d| d.platform.clone()) {
            let manifest = image.manifest_for(&platform)?;
            ensure!(
                manifest.platform == platform,
                "config platform of {platform}"
            );
            let top = manifest.layers.last().context("no layers")?;
            let tar = read_tar(&image.blob(&top.digest)?, Compression::Gzip)?;
            let text = &tar.get("platform.txt").context("no platform.txt")?.data;
            ensure!(text == format!("{platform}\n").as_bytes());
        }
        ensure!(
            image.manifest()?.layers.len() == 2,
            "the host image runs busybox"
        );
    }
    Ok(())
}

#[test]
fn nonroot_runs_as_1000_in_its_home() -> Result<()> {
    let manifest = Fixture::Nonroot.load()?.manifest()?;
    ensure!(manifest.config_json["config"]["User"] == "1000:1000");
    ensure!(manifest.config_json["config"]["WorkingDir"] == "/home/skiff");
    let entries = layer_entries(Fixture::Nonroot, 1)?;
    let home = entries.get("home/skiff/").context("no home")?;
    ensure!(home.uid == 1000 && home.gid == 1000);
    let passwd = String::from_utf8(entries.get("etc/passwd").context("no passwd")?.data.clone())?;
    ensure!(passwd.contains("skiff:x:1000:1000") && passwd.contains("root:x:0:0"));
    Ok(())
}

#[test]
fn manylayers_stacks_more_than_forty_layers() -> Result<()> {
    let manifest = Fixture::ManyLayers.load()?.manifest()?;
    ensure!(manifest.layers.len() == MANY_LAYERS_EXTRA + 1 && manifest.layers.len() > 40);
    let last = layer_entries(Fixture::ManyLayers, MANY_LAYERS_EXTRA)?;
    ensure!(last.contains_key(&format!("layers/{MANY_LAYERS_EXTRA}")));
    Ok(())
}

#[test]
fn whiteouts_fixture_has_markers_and_special_files() -> Result<()> {
    let upper = layer_entries(Fixture::Whiteouts, 2)?;
    for path in [
        "data/.wh.remove-me",
        "data/.wh.dir-to-remove",
        "opaque/.wh..wh..opq",
        "opaque/new",
    ] {
        ensure!(upper.contains_key(path), "{path} missing");
    }
    let special = layer_entries(Fixture::Whiteouts, 3)?;
    let get = |p: &str| special.get(p).with_context(|| format!("{p} missing"));
    let hardlink = get("special/hardlink")?;
    ensure!(
        hardlink.kind == tar::EntryType::Link && hardlink.link.as_deref() == Some("special/target")
    );
    ensure!(get("special/symlink")?.kind == tar::EntryType::Symlink);
    ensure!(get("special/fifo")?.kind == tar::EntryType::Fifo);
    ensure!(
        get("special/xattr")?
            .xattrs
            .get("user.skiff")
            .map(Vec::as_slice)
            == Some(b"yes".as_slice())
    );
    let setuid = get("special/setuid")?;
    ensure!(setuid.mode == 0o4755 && setuid.uid == 1000 && setuid.gid == 1000);
    Ok(())
}

#[test]
fn compression_variants_use_their_media_types() -> Result<()> {
    let reference = Fixture::Busybox.load()?.manifest()?;
    for (fixture, layer_type) in [
        (Fixture::Busybox, media_type::OCI_LAYER_GZIP),
        (Fixture::BusyboxZstd, media_type::OCI_LAYER_ZSTD),
        (Fixture::BusyboxUncompressed, media_type::OCI_LAYER_TAR),
        (Fixture::BusyboxDocker, media_type::DOCKER_LAYER_GZIP),
    ] {
        let image = fixture.load()?;
        let manifest = image.manifest()?;
        ensure!(
            manifest.layers.iter().all(|l| l.media_type == layer_type),
            "{fixture:?}"
        );
        ensure!(
            manifest.diff_ids == reference.diff_ids,
            "{fixture:?} unpacks differently"
        );
        let entries = read_tar(
            &image.blob(&manifest.layers[0].digest)?,
            Compression::of_layer_media_type(layer_type),
        )?;
        ensure!(entries.contains_key("bin/busybox"));
    }
    let docker = Fixture::BusyboxDocker.load()?.manifest()?;
    ensure!(docker.descriptor.media_type == media_type::DOCKER_MANIFEST);
    ensure!(docker.config.media_type == media_type::DOCKER_CONFIG);
    Ok(())
}

#[test]
fn bench_images_share_their_first_two_layers() -> Result<()> {
    let a = Fixture::BenchA.load()?.manifest()?;
    let b = Fixture::BenchB.load()?.manifest()?;
    ensure!(a.layers.len() == 3 && b.layers.len() == 3);
    ensure!(a.layers[..2] == b.layers[..2] && a.layers[2] != b.layers[2]);
    let total: u64 = a.layers.iter().map(|l| l.size).sum();
    ensure!(
        (4_500_000..6_500_000).contains(&total),
        "bench-a is {total} bytes"
    );
    Ok(())
}
