//! Pulls from real registries through the CRI socket, and the image's
//! life afterwards: list, status, remove — over gRPC and with crictl.

use std::collections::HashMap;
use std::time::Duration;

use k8s_cri::v1::{
    AuthConfig, ImageFilter, ImageSpec, ImageStatusRequest, ListImagesRequest, PullImageRequest,
    RemoveImageRequest,
};
use skiff_cri::PULL_ID_METADATA;
use skiff_cri::proto::{LayerState, WatchRequest};
use skiff_tests::registry::{TEST_PASSWORD, TEST_USER};
use skiff_tests::{Fixture, RegistryKind, TestRegistry};
use tonic::Code;
use tonic::metadata::MetadataValue;

use crate::{Node, plain_http_mirrors};

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_owned(),
        ..ImageSpec::default()
    })
}

fn pull_request(image: &str, auth: Option<AuthConfig>) -> PullImageRequest {
    PullImageRequest {
        image: spec(image),
        auth,
        sandbox_config: None,
    }
}

async fn node_for(registry: &TestRegistry) -> Node {
    Node::start_with(Some(&plain_http_mirrors(&[registry.host()]))).await
}

#[tokio::test]
async fn a_pulled_image_lists_inspects_and_removes() {
    let registry = TestRegistry::start(RegistryKind::Open).expect("start registry");
    let mut node = node_for(&registry).await;
    let reference = Fixture::Busybox.reference(&registry);
    let repo_digest = Fixture::Busybox.digest_reference(&registry).unwrap();

    let pulled = node
        .client
        .images
        .pull_image(pull_request(&reference, None))
        .await
        .expect("pull")
        .into_inner();
    let record = node.store.get(&reference).expect("stored");
    assert_eq!(pulled.image_ref, record.id.to_string());

    let listed = node
        .client
        .images
        .list_images(ListImagesRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(listed.len(), 1);
    let image = &listed[0];
    assert_eq!(image.id, pulled.image_ref);
    assert_eq!(image.repo_tags, std::slice::from_ref(&reference));
    assert_eq!(image.repo_digests, std::slice::from_ref(&repo_digest));
    assert_eq!(image.size, record.size);
    assert!(image.size > 0);
    assert_eq!(image.spec.as_ref().unwrap().image, image.id);

    for (filter, expected) in [
        (reference.as_str(), 1),
        (repo_digest.as_str(), 1),
        ("nothing:here", 0),
    ] {
        let found = node
            .client
            .images
            .list_images(ListImagesRequest {
                filter: Some(ImageFilter {
                    image: spec(filter),
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .images;
        assert_eq!(found.len(), expected, "filter {filter}");
    }

    let status = node
        .client
        .images
        .image_status(ImageStatusRequest {
            image: spec(&image.id[7..19]),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.image.as_ref().unwrap().id,
        image.id,
        "found by ID prefix"
    );
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    let chain = skiff_cri::image::chain_id(record.layers.iter().map(|l| &l.diff_id)).unwrap();
    assert_eq!(info["chainID"], chain.to_string());
    let diff_ids = info["imageSpec"]["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), record.layers.len());

    node.client
        .images
        .remove_image(RemoveImageRequest {
            image: spec(&reference),
        })
        .await
        .expect("remove");
    assert!(node.store.list().is_empty());
    node.client
        .images
        .remove_image(RemoveImageRequest {
            image: spec(&reference),
        })
        .await
        .expect("removing again is fine");
}

#[tokio::test]
async fn a_non_root_image_reports_its_uid() {
    let registry = TestRegistry::start(RegistryKind::Open).expect("start registry");
    let mut node = node_for(&registry).await;
    let reference = Fixture::Nonroot.reference(&registry);
    node.client
        .images
        .pull_image(pull_request(&reference, None))
        .await
        .expect("pull");
    let status = node
        .client
        .images
        .image_status(ImageStatusRequest {
            image: spec(&reference),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    let image = status.image.unwrap();
    assert_eq!(image.uid.map(|u| u.value), Some(1000));
    assert_eq!(image.username, "");
    assert!(status.info.is_empty(), "info only when verbose");
}

#[tokio::test]
async fn credentials_come_from_the_request() {
    let registry = TestRegistry::start(RegistryKind::Basic).expect("start registry");
    let mut node = node_for(&registry).await;
    let reference = Fixture::Busybox.reference(&registry);

    let anonymous = node
        .client
        .images
        .pull_image(pull_request(&reference, None))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");

    let wrong = AuthConfig {
        username: TEST_USER.into(),
        password: "wrong".into(),
        ..AuthConfig::default()
    };
    let denied = node
        .client
        .images
        .pull_image(pull_request(&reference, Some(wrong)))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated, "{denied:?}");

    let right = AuthConfig {
        username: TEST_USER.into(),
        password: TEST_PASSWORD.into(),
        ..AuthConfig::default()
    };
    node.client
        .images
        .pull_image(pull_request(&reference, Some(right)))
        .await
        .expect("pull with username and password");
    node.client
        .images
        .remove_image(RemoveImageRequest {
            image: spec(&reference),
        })
        .await
        .unwrap();

    let (code, out, err) = node
        .crictl(&[
            "pull",
            "--creds",
            &format!("{TEST_USER}:{TEST_PASSWORD}"),
            &reference,
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Image is up to date for sha256:"), "{out}");
}

#[tokio::test]
async fn pull_progress_streams_over_the_socket() {
    let registry = TestRegistry::start(RegistryKind::Open).expect("start registry");
    let mut node = node_for(&registry).await;
    let reference = Fixture::ManyLayers.reference(&registry);

    let pull_id = "integration-test-pull";
    let mut updates = node
        .client
        .progress
        .watch(WatchRequest {
            pull_id: pull_id.into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let mut request = tonic::Request::new(pull_request(&reference, None));
    request
        .metadata_mut()
        .insert(PULL_ID_METADATA, MetadataValue::from_static(pull_id));
    let mut images = node.client.images.clone();
    let pull = tokio::spawn(async move { images.pull_image(request).await });

    let mut seen = Vec::new();
    while let Some(update) = tokio::time::timeout(Duration::from_secs(60), updates.message())
        .await
        .expect("an update within 60s")
        .expect("stream ok")
    {
        let done = update.done;
        seen.push(update);
        if done {
            break;
        }
    }
    pull.await.unwrap().expect("pull");
    let last = seen.last().expect("updates");
    assert!(last.done);
    assert!(!last.layers.is_empty());
    for layer in &last.layers {
        assert_eq!(layer.current, layer.total, "{layer:?}");
        assert!(
            matches!(
                LayerState::try_from(layer.state),
                Ok(LayerState::Done | LayerState::Exists)
            ),
            "{layer:?}"
        );
    }
    drop(updates);
    // The tracker forgets the pull once the pull and the watch are over.
    for _ in 0..50 {
        if node.service.pulls().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(node.service.pulls().is_empty());
}

#[tokio::test]
async fn crictl_pulls_lists_inspects_and_removes() {
    let registry = TestRegistry::start(RegistryKind::Open).expect("start registry");
    let node = node_for(&registry).await;
    let reference = Fixture::Busybox.reference(&registry);

    let (code, out, err) = node.crictl(&["pull", &reference]).await;
    assert_eq!(code, 0, "{err}");
    let id = node.store.get(&reference).unwrap().id;
    assert_eq!(out, format!("Image is up to date for {id}\n"));

    let (code, out, _) = node.crictl(&["images"]).await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    let repository = reference.rsplit_once(':').unwrap().0;
    assert_eq!(cells[..3], [repository, "latest", &id.hex()[..13]], "{out}");
    assert!(
        cells[3].ends_with("MB") || cells[3].ends_with("kB"),
        "{out}"
    );

    let (code, out, _) = node.crictl(&["images", "-q"]).await;
    assert_eq!((code, out), (0, format!("{id}\n")));

    let (code, out, _) = node.crictl(&["images", "--digests", "--no-trunc"]).await;
    assert_eq!(code, 0);
    let digest = Fixture::Busybox.digest().unwrap().to_string();
    assert!(out.lines().nth(1).unwrap().contains(&digest), "{out}");

    let (code, out, err) = node.crictl(&["images", "-o", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["images"][0]["id"], id.to_string());
    assert!(
        listed["images"][0]["size"].is_string(),
        "uint64 as a string"
    );
    // The busybox fixture's config names no user: neither uid nor username.
    assert!(listed["images"][0].get("uid").is_none(), "{out}");
    assert_eq!(listed["images"][0]["username"], "");

    let (code, out, err) = node.crictl(&["inspecti", &reference]).await;
    assert_eq!(code, 0, "{err}");
    let inspected: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inspected["status"]["id"], id.to_string());
    assert_eq!(inspected["status"]["repoTags"][0], reference);
    assert!(
        inspected["info"]["chainID"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(inspected["info"]["imageSpec"]["rootfs"].is_object());
    assert!(out.find("\"info\"").unwrap() < out.find("\"status\"").unwrap());

    let (code, out, _) = node
        .crictl(&["inspecti", "-q", &reference, &reference])
        .await;
    assert_eq!(code, 0);
    let both: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(both.as_array().map(Vec::len), Some(2));
    assert!(both[0].get("info").is_none());

    let (code, out, err) = node.crictl(&["rmi", &reference]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("Deleted: {reference}\n"));
    let (code, out, _) = node.crictl(&["images", "-q"]).await;
    assert_eq!((code, out.as_str()), (0, ""));
}

#[tokio::test]
async fn crictl_rmi_all_removes_every_image() {
    let registry = TestRegistry::start(RegistryKind::Open).expect("start registry");
    let node = node_for(&registry).await;
    let mut expected = HashMap::new();
    for fixture in [Fixture::BusyboxV1, Fixture::Nonroot] {
        let reference = fixture.reference(&registry);
        let (code, _, err) = node.crictl(&["pull", &reference]).await;
        assert_eq!(code, 0, "{err}");
        expected.insert(format!("Deleted: {reference}"), ());
    }
    let (code, out, err) = node.crictl(&["rmi", "-a"]).await;
    assert_eq!(code, 0, "{err}");
    let deleted: HashMap<String, ()> = out.lines().map(|l| (l.to_owned(), ())).collect();
    assert_eq!(deleted, expected);
    assert!(node.store.list().is_empty());
}

#[tokio::test]
async fn crictl_pull_on_a_terminal_watches_progress_and_cleans_up() {
    let registry = TestRegistry::start(RegistryKind::Open).expect("start registry");
    let node = node_for(&registry).await;
    let reference = Fixture::ManyLayers.reference(&registry);
    let (code, out, err) = node.crictl_with(&["pull", &reference], true).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Image is up to date for sha256:"), "{out}");
    for _ in 0..50 {
        if node.service.pulls().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        node.service.pulls().is_empty(),
        "the watch ended with the pull"
    );
}
