//! `skiff crictl` against a served store, without registries.

use crate::Node;

#[tokio::test]
async fn version_prints_as_crictl() {
    let node = Node::start().await;
    let (code, out, err) = node.crictl(&["version"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "Version:  0.1.0\nRuntimeName:  skiff\nRuntimeVersion:  {}\nRuntimeApiVersion:  v1\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[tokio::test]
async fn an_empty_store_prints_the_header_and_empty_json() {
    let node = Node::start().await;
    let (code, out, _) = node.crictl(&["images"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "IMAGE               TAG                 IMAGE ID            SIZE\n"
    );
    let (code, out, _) = node.crictl(&["images", "-o", "json"]).await;
    assert_eq!(code, 0);
    assert_eq!(out, "{\n  \"images\": []\n}\n");
    let (code, out, _) = node.crictl(&["images", "-q"]).await;
    assert_eq!((code, out.as_str()), (0, ""));
}

#[tokio::test]
async fn missing_images_fail_as_crictl_fails() {
    let node = Node::start().await;
    let (code, out, err) = node.crictl(&["inspecti", "busybox"]).await;
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains(r#"level=fatal msg="no such image \"busybox\" present""#),
        "{err}"
    );

    let (code, out, err) = node.crictl(&["rmi", "busybox"]).await;
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains(r#"level=error msg="no such image busybox""#),
        "{err}"
    );
    assert!(
        err.contains(r#"level=fatal msg="unable to remove the image(s)""#),
        "{err}"
    );
}

#[tokio::test]
async fn imagefsinfo_prints_sorted_status_json() {
    let node = Node::start().await;
    let (code, out, err) = node.crictl(&["imagefsinfo"]).await;
    assert_eq!(code, 0, "{err}");
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    let fs = &value["status"]["imageFilesystems"][0];
    assert!(fs["timestamp"].is_string(), "int64 as a string: {out}");
    assert!(fs["usedBytes"]["value"].is_string());
    assert!(
        value["status"]["containerFilesystems"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let container_at = out.find("containerFilesystems").unwrap();
    let image_at = out.find("imageFilesystems").unwrap();
    assert!(
        container_at < image_at,
        "keys sorted as Go prints maps: {out}"
    );
}

#[tokio::test]
async fn a_pull_from_nowhere_reports_the_grpc_error() {
    let node = Node::start().await;
    let (code, out, err) = node
        .crictl(&["pull", "127.0.0.1:1/skiff-test/busybox:latest"])
        .await;
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("pulling image: rpc error: code = Unavailable desc = "),
        "{err}"
    );
}

#[tokio::test]
async fn runtime_verbs_are_not_built_yet() {
    let node = Node::start().await;
    let (code, _, err) = node.crictl(&["events"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("not built yet"), "{err}");
}

#[tokio::test]
async fn an_absent_socket_fails_like_crictl() {
    let node = Node::start().await;
    let (socket, dir) = node.shutdown().await;
    let config = dir.path().join("crictl.yaml");
    std::fs::write(&config, "").unwrap();
    let endpoint = format!("unix://{}", socket.display());
    let args = <skiff_cri::crictl::CrictlArgs as clap::Parser>::try_parse_from([
        "crictl",
        "-c",
        config.to_str().unwrap(),
        "-i",
        &endpoint,
        "images",
    ])
    .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = skiff_cri::crictl::run_with(args, &mut out, &mut err, false).await;
    let err = String::from_utf8(err).unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("connect: no such file or directory"), "{err}");
    assert!(err.contains("validate CRI v1 image API"), "{err}");
}
