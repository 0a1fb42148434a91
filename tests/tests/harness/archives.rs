//! OCI-layout and docker-archive tarballs for air-gap import.

use anyhow::{Context, Result, ensure};
use skiff_tests::Fixture;
use skiff_tests::oci::{Compression, Digest, ImageSource, write_docker_archive};

use crate::support::{ensure_digest, read_tar};

const COMPRESSIONS: [(Compression, &str); 3] = [
    (Compression::None, "tar"),
    (Compression::Gzip, "tar.gz"),
    (Compression::Zstd, "tar.zst"),
];

#[test]
fn oci_archives_are_complete_layouts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for fixture in [Fixture::Busybox, Fixture::Multiarch] {
        for (compression, extension) in COMPRESSIONS {
            let path = dir.path().join(format!("image.{extension}"));
            fixture.write_oci_archive(&path, compression)?;
            let entries = read_tar(&std::fs::read(&path)?, compression)?;
            let layout: serde_json::Value =
                serde_json::from_slice(&entries.get("oci-layout").context("no oci-layout")?.data)?;
            ensure!(layout["imageLayoutVersion"] == "1.0.0");
            let index: serde_json::Value =
                serde_json::from_slice(&entries.get("index.json").context("no index.json")?.data)?;
            let entry = &index["manifests"][0];
            ensure!(entry["digest"] == fixture.digest()?.as_str());
            ensure!(entry["annotations"]["io.containerd.image.name"] == fixture.name());
            ensure!(entry["annotations"]["org.opencontainers.image.ref.name"] == fixture.tag());
            // Every blob is present and matches its name.
            let blobs: Vec<_> = entries
                .iter()
                .filter(|(p, _)| p.starts_with("blobs/sha256/") && p.len() > 13)
                .collect();
            ensure!(!blobs.is_empty());
            for (path, entry) in blobs {
                ensure_digest(
                    &entry.data,
                    &Digest::parse(&format!("sha256:{}", &path[13..]))?,
                )?;
            }
            let image = fixture.load()?;
            for layer in image.manifest()?.layers {
                ensure!(entries.contains_key(&format!("blobs/sha256/{}", layer.digest.hex())));
            }
        }
    }
    Ok(())
}

#[test]
fn docker_archives_match_docker_save() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for fixture in [Fixture::BusyboxZstd, Fixture::Multiarch] {
        for (compression, extension) in COMPRESSIONS {
            let path = dir.path().join(format!("image.{extension}"));
            fixture.write_docker_archive(&path, compression)?;
            let entries = read_tar(&std::fs::read(&path)?, compression)?;
            let manifest: serde_json::Value = serde_json::from_slice(
                &entries
                    .get("manifest.json")
                    .context("no manifest.json")?
                    .data,
            )?;
            let image = &manifest[0];
            ensure!(image["RepoTags"] == serde_json::json!([fixture.name()]));
            let info = fixture.load()?.manifest()?;
            let config_path = image["Config"].as_str().context("no Config")?;
            ensure_digest(
                &entries.get(config_path).context("config missing")?.data,
                &info.config.digest,
            )?;
            let layers = image["Layers"].as_array().context("no Layers")?;
            ensure!(layers.len() == info.diff_ids.len());
            for (layer, diff_id) in layers.iter().zip(&info.diff_ids) {
                let tar = &entries
                    .get(layer.as_str().context("layer path")?)
                    .context("layer missing")?
                    .data;
                // Layers are stored uncompressed, so they hash to the diff_id.
                ensure_digest(tar, diff_id)?;
            }
        }
    }
    Ok(())
}

#[test]
fn archives_can_hold_several_images() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let a = Fixture::BusyboxV1.load()?;
    let b = Fixture::Nonroot.load()?;
    let path = dir.path().join("two.tar");
    let images: [(&dyn ImageSource, &str); 2] = [
        (&a, "docker.io/skiff-test/busybox:1.0"),
        (&b, "skiff-test/nonroot:latest"),
    ];
    write_docker_archive(&path, &images, Compression::None)?;
    let entries = read_tar(&std::fs::read(&path)?, Compression::None)?;
    let manifest: serde_json::Value = serde_json::from_slice(&entries["manifest.json"].data)?;
    ensure!(manifest.as_array().map(Vec::len) == Some(2));
    // The shared base layer is stored once.
    let layer_files = entries.keys().filter(|p| p.ends_with("/layer.tar")).count();
    ensure!(layer_files == 3, "{layer_files} layer files");
    Ok(())
}
