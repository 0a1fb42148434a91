//! `skiff runtime` + `skiff crictl`: the image commands end to end.

use skiff_tests::oci::Compression;
use skiff_tests::{Fixture, RuntimeOptions, SkiffRuntime, TestRegistries};

use crate::{failed, ok};

struct Setup {
    regs: TestRegistries,
    dir: tempfile::TempDir,
    options: RuntimeOptions,
}

fn setup() -> Setup {
    let regs = TestRegistries::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("registries.yaml");
    regs.write_registries_yaml(&yaml).unwrap();
    let options = RuntimeOptions {
        registries: Some(yaml),
        ..Default::default()
    };
    Setup { regs, dir, options }
}

#[test]
fn crictl_pulls_lists_inspects_and_removes_images() {
    let s = setup();
    let runtime = SkiffRuntime::start(&s.dir.path().join("node"), &s.options).unwrap();
    let reference = Fixture::BusyboxV1.reference(&s.regs.basic);

    let pulled = ok(runtime.crictl(&["pull", &reference]).unwrap());
    assert!(
        pulled.starts_with("Image is up to date for sha256:"),
        "{pulled}"
    );
    let id = pulled.trim().rsplit(' ').next().unwrap().to_string();

    let images = ok(runtime.crictl(&["images"]).unwrap());
    let header = images.lines().next().unwrap();
    for column in ["IMAGE", "TAG", "IMAGE ID", "SIZE"] {
        assert!(header.contains(column), "{images}");
    }
    let row = images
        .lines()
        .find(|l| l.contains("skiff-test/busybox"))
        .expect(&images);
    assert!(
        row.contains("1.0") && row.contains(&id["sha256:".len()..][..13]),
        "{row}"
    );

    let quiet = ok(runtime.crictl(&["images", "-q"]).unwrap());
    assert_eq!(quiet.trim(), id);

    let inspect = ok(runtime.crictl(&["inspecti", &reference]).unwrap());
    let json: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(json["status"]["id"], id.as_str());
    assert!(
        json["info"]["imageSpec"]["rootfs"]["diff_ids"].is_array(),
        "{inspect}"
    );

    let fsinfo = ok(runtime.crictl(&["imagefsinfo"]).unwrap());
    let json: serde_json::Value = serde_json::from_str(&fsinfo).unwrap();
    let used = &json["status"]["imageFilesystems"][0]["usedBytes"]["value"];
    assert!(
        used.as_str().unwrap().parse::<u64>().unwrap() > 1_000_000,
        "{fsinfo}"
    );

    let removed = ok(runtime.crictl(&["rmi", &reference]).unwrap());
    assert!(removed.contains("Deleted: "), "{removed}");
    let images = ok(runtime.crictl(&["images", "-q"]).unwrap());
    assert!(images.trim().is_empty(), "{images}");
    runtime.stop().unwrap();
}

#[test]
fn crictl_reports_unknown_images_and_wrong_credentials() {
    let s = setup();
    let runtime = SkiffRuntime::start(&s.dir.path().join("node"), &s.options).unwrap();
    let unknown = format!("{}/skiff-test/busybox:9.9", s.regs.open.host());
    let stderr = failed(runtime.crictl(&["pull", &unknown]).unwrap());
    assert!(
        stderr.contains("NotFound") && stderr.contains("manifest unknown"),
        "{stderr}"
    );

    let reference = Fixture::Busybox.reference(&s.regs.basic);
    let stderr = failed(
        runtime
            .crictl(&["pull", "--creds", "skiff:wrong", &reference])
            .unwrap(),
    );
    assert!(stderr.contains("Unauthenticated"), "{stderr}");

    let stderr = failed(runtime.crictl(&["inspecti", "never/pulled:1"]).unwrap());
    assert!(stderr.contains("no such image"), "{stderr}");
    assert!(
        ok(runtime.crictl(&["images", "-q"]).unwrap())
            .trim()
            .is_empty()
    );
}

#[test]
fn air_gap_archives_are_imported_at_start_and_pinned() {
    let s = setup();
    let node = s.dir.path().join("node");
    let airgap = node.join("data/agent/images");
    std::fs::create_dir_all(&airgap).unwrap();
    Fixture::BusyboxV2
        .write_oci_archive(&airgap.join("busybox.tar.zst"), Compression::Zstd)
        .unwrap();
    Fixture::Nonroot
        .write_docker_archive(&airgap.join("nonroot.tar.gz"), Compression::Gzip)
        .unwrap();

    let runtime = SkiffRuntime::start(&node, &s.options).unwrap();
    let json = ok(runtime.crictl(&["images", "-o", "json"]).unwrap());
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{json}");
    assert!(images.iter().all(|i| i["pinned"] == true), "{json}");
    let tags: Vec<&str> = images
        .iter()
        .flat_map(|i| i["repoTags"].as_array().unwrap())
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        tags.contains(&"docker.io/skiff-test/busybox:2.0"),
        "{tags:?}"
    );
    assert!(
        tags.contains(&"docker.io/skiff-test/nonroot:latest"),
        "{tags:?}"
    );
}

#[test]
fn images_survive_a_kill_9_and_a_restart() {
    let s = setup();
    let node = s.dir.path().join("node");
    let runtime = SkiffRuntime::start(&node, &s.options).unwrap();
    ok(runtime
        .crictl(&["pull", &Fixture::BenchA.reference(&s.regs.open)])
        .unwrap());
    ok(runtime
        .crictl(&["pull", &Fixture::Whiteouts.reference(&s.regs.tls)])
        .unwrap());
    let before = ok(runtime.crictl(&["images"]).unwrap());
    runtime.kill();

    let runtime = SkiffRuntime::start(&node, &s.options).unwrap();
    assert_eq!(ok(runtime.crictl(&["images"]).unwrap()), before);
    // Nothing is fetched again: every layer is still there.
    let again = ok(runtime
        .crictl(&["pull", &Fixture::BenchA.reference(&s.regs.open)])
        .unwrap());
    assert!(again.starts_with("Image is up to date"), "{again}");
    for layer in Fixture::BenchA.load().unwrap().manifest().unwrap().layers {
        assert_eq!(s.regs.open.blob_get_count(&layer.digest).unwrap(), 1);
    }
}

#[test]
fn a_second_runtime_on_the_same_socket_or_data_dir_is_refused() {
    let s = setup();
    let node = s.dir.path().join("node");
    let first = SkiffRuntime::start(&node, &s.options).unwrap();
    let run = |data_dir: &std::path::Path| {
        skiff_tests::skiff::skiff_command()
            .unwrap()
            .args(["runtime", "--config", "/dev/null", "--data-dir"])
            .arg(data_dir)
            .arg("--cri-socket")
            .arg(first.socket())
            .output()
            .unwrap()
    };
    let stderr = failed(run(&first.data_dir()));
    assert!(
        stderr.contains("in use by another skiff process"),
        "{stderr}"
    );
    let stderr = failed(run(&s.dir.path().join("other-data")));
    assert!(stderr.contains("cri.sock"), "{stderr}");
    // The first one is unharmed.
    ok(first.crictl(&["images"]).unwrap());
}
