//! The CRI RPCs that need no registry, over the socket.

use k8s_cri::v1::{
    ImageFilter, ImageFsInfoRequest, ImageSpec, ImageStatusRequest, ListContainersRequest,
    ListImagesRequest, PullImageRequest, RemoveImageRequest, RunPodSandboxRequest, StatusRequest,
    VersionRequest,
};
use tonic::Code;

use crate::Node;

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_owned(),
        ..ImageSpec::default()
    })
}

#[tokio::test]
async fn an_empty_store_lists_no_images() {
    let mut node = Node::start().await;
    let all = node
        .client
        .images
        .list_images(ListImagesRequest { filter: None })
        .await
        .unwrap()
        .into_inner();
    assert!(all.images.is_empty());
    let filtered = node
        .client
        .images
        .list_images(ListImagesRequest {
            filter: Some(ImageFilter {
                image: spec("busybox"),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(filtered.images.is_empty());
}

#[tokio::test]
async fn the_status_of_an_unknown_image_is_empty_not_an_error() {
    let mut node = Node::start().await;
    for image in ["busybox", "sha256:0123456789abcdef", "NOT A REFERENCE", ""] {
        let response = node
            .client
            .images
            .image_status(ImageStatusRequest {
                image: spec(image),
                verbose: true,
            })
            .await
            .unwrap_or_else(|s| panic!("{image:?}: {s}"))
            .into_inner();
        assert!(response.image.is_none(), "{image:?}");
        assert!(response.info.is_empty(), "{image:?}");
    }
}

#[tokio::test]
async fn removing_an_unknown_image_succeeds() {
    let mut node = Node::start().await;
    node.client
        .images
        .remove_image(RemoveImageRequest {
            image: spec("docker.io/library/busybox:latest"),
        })
        .await
        .expect("RemoveImage is idempotent");
}

#[tokio::test]
async fn image_fs_info_reports_the_store() {
    let mut node = Node::start().await;
    let response = node
        .client
        .images
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.image_filesystems.len(), 1);
    let fs = &response.image_filesystems[0];
    assert!(
        fs.timestamp > 1_600_000_000_000_000_000,
        "nanoseconds: {}",
        fs.timestamp
    );
    let mountpoint = &fs.fs_id.as_ref().unwrap().mountpoint;
    assert!(
        mountpoint.starts_with(node.store.root().to_str().unwrap()),
        "{mountpoint}"
    );
    assert!(fs.used_bytes.is_some() && fs.inodes_used.is_some());
    assert!(response.container_filesystems.is_empty());
}

#[tokio::test]
async fn pulls_fail_with_the_code_of_what_went_wrong() {
    let mut node = Node::start().await;
    // Nothing listens on port 1 of loopback: the registry is unreachable.
    let unreachable = node
        .client
        .images
        .pull_image(PullImageRequest {
            image: spec("127.0.0.1:1/skiff-test/busybox:latest"),
            auth: None,
            sandbox_config: None,
        })
        .await
        .unwrap_err();
    assert_eq!(unreachable.code(), Code::Unavailable, "{unreachable:?}");
    assert!(
        unreachable.message().contains("127.0.0.1:1"),
        "{}",
        unreachable.message()
    );

    let invalid = node
        .client
        .images
        .pull_image(PullImageRequest {
            // Invalid before any network: a tag cannot hold spaces.
            image: spec("busybox:not a tag"),
            auth: None,
            sandbox_config: None,
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument, "{invalid:?}");

    let empty = node
        .client
        .images
        .pull_image(PullImageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn version_answers_for_skiff() {
    let mut node = Node::start().await;
    let version = node
        .client
        .runtime
        .version(VersionRequest {
            version: "v1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.version, "0.1.0");
    assert_eq!(version.runtime_name, "skiff");
    assert_eq!(version.runtime_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(version.runtime_api_version, "v1");
}

#[tokio::test]
async fn runtime_rpcs_say_the_node_runtime_is_not_built_yet() {
    let mut node = Node::start().await;
    let status = node
        .client
        .runtime
        .run_pod_sandbox(RunPodSandboxRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(
        status.message(),
        "RunPodSandbox: this CRI service has no node runtime behind it; only the image service is available"
    );
    let status = node
        .client
        .runtime
        .list_containers(ListContainersRequest { filter: None })
        .await
        .unwrap_err();
    assert!(
        status.message().starts_with("ListContainers: "),
        "{status:?}"
    );
    let status = node
        .client
        .runtime
        .status(StatusRequest { verbose: false })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

#[tokio::test]
async fn shutdown_removes_the_socket_and_a_second_server_is_refused_meanwhile() {
    let node = Node::start().await;
    let err = skiff_cri::server::CriSocket::bind(&node.socket).unwrap_err();
    assert!(matches!(err, skiff_cri::ServeError::InUse { .. }), "{err}");
    let (socket, _dir) = node.shutdown().await;
    assert!(!socket.exists(), "socket removed on shutdown");
}
