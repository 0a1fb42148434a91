//! Wasm images: the pure rules, then pulls from the in-process fake
//! registry and air-gap imports into a real store in a temp dir.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::distribution::fake_registry::FakeRegistry;
use crate::distribution::{OCI_INDEX, OCI_MANIFEST};
use crate::overlay::RecordingMounter;
use crate::{ImageError, ImageStore, StoreConfig};

fn layer(media_type: &str, content: &[u8]) -> LayerRef {
    let digest = Digest::sha256_of(content);
    LayerRef {
        blob_digest: digest.clone(),
        blob_size: content.len() as u64,
        media_type: media_type.into(),
        diff_id: digest,
    }
}

#[test]
fn wasm_media_types_are_recognized() {
    for media_type in WASM_LAYER_MEDIA_TYPES {
        assert!(is_wasm_media_type(media_type), "{media_type}");
    }
    assert!(is_wasm_media_type("Application/Wasm; foo=bar"));
    for other in [
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/wasm+tar",
        "",
    ] {
        assert!(!is_wasm_media_type(other), "{other}");
    }
}

#[test]
fn wasm_platforms_are_recognized() {
    assert!(is_wasm_platform("wasi", "wasm"));
    assert!(is_wasm_platform("wasip2", "wasm32"));
    assert!(is_wasm_platform("linux", "wasm"));
    assert!(is_wasm_platform("WASI", "amd64"));
    assert!(!is_wasm_platform("linux", "amd64"));
    assert!(!is_wasm_platform("", ""));
}

#[test]
fn the_top_most_wasm_layer_is_the_module() {
    let tar = layer("application/vnd.oci.image.layer.v1.tar", b"tar");
    let first = layer("application/wasm", b"\0asm one");
    let second = layer(WASM_LAYER_MEDIA_TYPES[2], b"\0asm two");
    assert_eq!(top_module(std::slice::from_ref(&tar)), None);
    let module = top_module(&[first, second.clone(), tar]).unwrap();
    assert_eq!(module, format!("/{}.wasm", second.blob_digest.hex()));
    assert_eq!(module, module_path(&second.blob_digest));
}

// --- Pulls and imports of Wasm images ---

/// A tiny valid core module: the header and an empty custom section.
const MODULE: &[u8] = b"\0asm\x01\0\0\0\0\x05\x04skif";
const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Blobs and a manifest, as a registry or an OCI layout holds them.
struct Artifact {
    blobs: Vec<Vec<u8>>,
    manifest: Vec<u8>,
}

fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    json!({
        "mediaType": media_type,
        "digest": Digest::sha256_of(blob).to_string(),
        "size": blob.len(),
    })
}

impl Artifact {
    /// An image of `layers` (media type, blob) with `config`.
    fn new(config: serde_json::Value, config_type: &str, layers: &[(&str, &[u8])]) -> Self {
        let config = serde_json::to_vec(&config).unwrap();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.wasm.config.v0+json",
            "config": descriptor(config_type, &config),
            "layers": layers.iter().map(|(t, b)| descriptor(t, b)).collect::<Vec<_>>(),
        });
        let mut blobs = vec![config];
        blobs.extend(layers.iter().map(|(_, b)| b.to_vec()));
        Self {
            blobs,
            manifest: serde_json::to_vec(&manifest).unwrap(),
        }
    }

    /// A Wasm OCI artifact as `wkg oci push` writes it: no `rootfs`.
    fn wasm_artifact(module: &[u8]) -> Self {
        let config = json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": "wasm",
            "os": "wasip1",
            "layerDigests": [Digest::sha256_of(module).to_string()],
        });
        Self::new(config, WASM_CONFIG, &[("application/wasm", module)])
    }

    /// An index whose only entry is this artifact's manifest, for `wasi/wasm`.
    fn wasi_index(&self) -> Vec<u8> {
        let mut entry = descriptor(OCI_MANIFEST, &self.manifest);
        entry["platform"] = json!({"os": "wasi", "architecture": "wasm"});
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [entry],
        }))
        .unwrap()
    }

    fn push(&self, registry: &FakeRegistry, repo: &str, tag: Option<&str>) -> Digest {
        for blob in &self.blobs {
            registry.put_blob(&Digest::sha256_of(blob).to_string(), blob);
        }
        registry.put_manifest(repo, tag, OCI_MANIFEST, &self.manifest)
    }
}

async fn store(dir: &Path) -> ImageStore {
    let mut config = StoreConfig::new(dir.join("store"));
    config.mounter = Arc::new(RecordingMounter::new());
    ImageStore::open(config).await.unwrap()
}

/// The files of the image's layer snapshots, top-most layer first.
async fn layer_files(store: &ImageStore, image: &str) -> Vec<Vec<String>> {
    let rootfs = store.prepare_rootfs("probe", image).await.unwrap();
    let files = rootfs
        .overlay
        .lower
        .iter()
        .map(|dir| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        })
        .collect();
    store.remove_rootfs("probe").await.unwrap();
    files
}

fn assert_module_file(dir: &Path, module: &[u8]) {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(module_file_name(&Digest::sha256_of(module)));
    assert_eq!(std::fs::read(&path).unwrap(), module);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o644);
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
}

#[tokio::test]
async fn a_wasm_artifact_behind_a_wasi_only_index_is_pulled_as_one_module_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let registry = FakeRegistry::new();
    let server = registry.serve();
    let artifact = Artifact::wasm_artifact(MODULE);
    artifact.push(&registry, "wasm/hello", None);
    registry.put_manifest("wasm/hello", Some("v1"), OCI_INDEX, &artifact.wasi_index());

    let name = format!("{}/wasm/hello:v1", server.host());
    let outcome = store.pull(&name, None).await.unwrap();
    let image = outcome.image;
    let module_digest = Digest::sha256_of(MODULE);
    assert_eq!(image.layers.len(), 1);
    assert_eq!(image.layers[0].media_type, "application/wasm");
    assert_eq!(image.layers[0].blob_digest, module_digest);
    assert_eq!(image.layers[0].diff_id, module_digest);
    assert_eq!(image.manifest_digest, Digest::sha256_of(&artifact.manifest));
    assert_eq!(top_module(&image.layers), Some(module_path(&module_digest)));

    let config = store.image_config(&image.id).unwrap();
    assert!(is_wasm_platform(
        &config.os().to_string(),
        &config.architecture().to_string()
    ));
    assert_eq!(
        layer_files(&store, &name).await,
        [vec![module_file_name(&module_digest)]]
    );
    let rootfs = store.prepare_rootfs("c1", &name).await.unwrap();
    assert_module_file(&rootfs.overlay.lower[0], MODULE);

    // A second pull finds the layer unpacked.
    let again = store.pull(&name, None).await.unwrap();
    assert_eq!((again.layers_fetched, again.layers_reused), (0, 1));
}

#[tokio::test]
async fn an_image_with_tar_and_wasm_layers_pairs_the_listed_diff_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let registry = FakeRegistry::new();
    let server = registry.serve();
    let tar = {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "etc/app.conf", &b"hello"[..])
            .unwrap();
        builder.into_inner().unwrap()
    };
    let component = b"\0asm\x0d\0\x01\0";
    let config = json!({
        "architecture": "wasm",
        "os": "wasi",
        "config": {"Entrypoint": ["/app.wasm"]},
        "rootfs": {"type": "layers", "diff_ids": [
            Digest::sha256_of(&tar).to_string(),
            Digest::sha256_of(component).to_string(),
        ]},
    });
    let layers: [(&str, &[u8]); 2] = [
        ("application/vnd.oci.image.layer.v1.tar", &tar),
        (WASM_LAYER_MEDIA_TYPES[1], component),
    ];
    let artifact = Artifact::new(config, OCI_CONFIG, &layers);
    artifact.push(&registry, "wasm/mixed", Some("v1"));

    let name = format!("{}/wasm/mixed:v1", server.host());
    let image = store.pull(&name, None).await.unwrap().image;
    assert_eq!(image.layers[1].diff_id, Digest::sha256_of(component));
    let files = layer_files(&store, &name).await;
    assert_eq!(
        files,
        [
            vec![module_file_name(&Digest::sha256_of(component))],
            vec!["etc".to_string()],
        ]
    );
}

#[tokio::test]
async fn a_wasm_layer_that_is_not_wasm_fails_the_pull_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let registry = FakeRegistry::new();
    let server = registry.serve();
    let artifact = Artifact::wasm_artifact(b"#!/bin/sh\necho not wasm\n");
    artifact.push(&registry, "wasm/bad", Some("v1"));

    let name = format!("{}/wasm/bad:v1", server.host());
    let err = store.pull(&name, None).await.unwrap_err();
    assert!(
        matches!(&err, ImageError::Unpack { .. }) && err.to_string().contains("WebAssembly"),
        "{err}"
    );
    assert!(store.list().is_empty());
    assert!(store.snapshots().list().unwrap().is_empty());
}

/// Writes an OCI-layout tarball of `artifact` named `name`, whose
/// `index.json` points at a nested index with only a `wasi/wasm` entry.
fn write_wasi_layout(path: &Path, artifact: &Artifact, name: &str) {
    let index = artifact.wasi_index();
    let mut top = descriptor(OCI_INDEX, &index);
    top["annotations"] = json!({ "io.containerd.image.name": name });
    let index_json = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [top],
    }))
    .unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: String, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, data).unwrap();
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json".into(), &index_json);
    for blob in artifact.blobs.iter().chain([&artifact.manifest, &index]) {
        add(
            format!("blobs/sha256/{}", Digest::sha256_of(blob).hex()),
            blob,
        );
    }
    let mut file = std::fs::File::create(path).unwrap();
    file.write_all(&builder.into_inner().unwrap()).unwrap();
}

#[tokio::test]
async fn an_air_gap_archive_of_a_wasm_artifact_imports() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let archive = dir.path().join("hello-wasm.tar");
    let artifact = Artifact::wasm_artifact(MODULE);
    write_wasi_layout(&archive, &artifact, "registry.example/wasm/hello:v1");

    let images = store.import_archive(&archive).await.unwrap();
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert!(image.pinned);
    assert_eq!(image.layers[0].diff_id, Digest::sha256_of(MODULE));
    assert!(
        image
            .names
            .contains(&"registry.example/wasm/hello:v1".to_string()),
        "{:?}",
        image.names
    );
    let rootfs = store
        .prepare_rootfs("c1", "registry.example/wasm/hello:v1")
        .await
        .unwrap();
    assert_module_file(&rootfs.overlay.lower[0], MODULE);
}
