//! Bad input to the runtime: the right gRPC code, a message naming what is
//! wrong, and nothing left behind.

use k8s_cri::v1 as cri;
use tonic::Code;

use crate::node::Node;

#[tokio::test]
async fn bad_requests_get_the_codes_containerd_gives() {
    let node = Node::start().await;
    let mut rt = node.cri.runtime.clone();

    // Unknown IDs → NotFound.
    let unknown = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_string();
    let err = rt
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: unknown.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let err = rt
        .container_status(cri::ContainerStatusRequest {
            container_id: unknown.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let err = rt
        .start_container(cri::StartContainerRequest {
            container_id: unknown.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    // Removing what is not there is fine (CRI: idempotent).
    rt.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: unknown.clone(),
    })
    .await
    .unwrap();

    // The same name, namespace, uid and attempt twice → AlreadyExists.
    let pod = node.pod("dup");
    let pod_id = node.run_pod(pod.clone()).await;
    let err = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err}");

    // An image that is not present → NotFound naming it.
    let mut config = node.container("ghost", "true");
    config.image.as_mut().unwrap().image = "127.0.0.1:1/not/pulled:1".into();
    let err = create(&mut rt, &pod_id, &pod, config).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    assert!(err.message().contains("127.0.0.1:1/not/pulled:1"), "{err}");

    // A relative mount path → InvalidArgument naming the field.
    let mut config = node.container("mounts", "true");
    config.mounts = vec![cri::Mount {
        container_path: "relative/path".into(),
        host_path: "/tmp".into(),
        ..Default::default()
    }];
    let err = create(&mut rt, &pod_id, &pod, config).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("mounts[0].container_path"), "{err}");

    // A missing Localhost seccomp profile → InvalidArgument naming the field.
    let mut config = node.container("seccomp", "true");
    config.linux.as_mut().unwrap().security_context = Some(cri::LinuxContainerSecurityContext {
        seccomp: Some(cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::Localhost as i32,
            localhost_ref: "/no/such/profile.json".into(),
        }),
        ..Default::default()
    });
    let err = create(&mut rt, &pod_id, &pod, config).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("seccomp"), "{err}");

    // An unknown runtime handler → InvalidArgument.
    let err = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(node.pod("handler")),
            runtime_handler: "kata".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    // Creating in a stopped sandbox → FailedPrecondition.
    rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod_id.clone(),
    })
    .await
    .unwrap();
    let err = create(&mut rt, &pod_id, &pod, node.container("late", "true"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");

    node.remove_pod(&pod_id).await;
    node.assert_no_leaks();
}

async fn create(
    rt: &mut k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>,
    pod_id: &str,
    pod: &cri::PodSandboxConfig,
    config: cri::ContainerConfig,
) -> Result<String, tonic::Status> {
    rt.create_container(cri::CreateContainerRequest {
        pod_sandbox_id: pod_id.into(),
        config: Some(config),
        sandbox_config: Some(pod.clone()),
    })
    .await
    .map(|r| r.into_inner().container_id)
}
