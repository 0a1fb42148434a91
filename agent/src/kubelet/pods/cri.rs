//! The CRI calls the pod sync makes, straight on the in-process
//! [`CriService`] (its tonic traits, no socket), with kubelet's labels as
//! filters.

use std::collections::HashMap;
use std::pin::Pin;

use futures::Stream;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use skiff_cri::CriService;
use tonic::{Request, Status};

/// Label of sandboxes and containers: the pod's name.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
/// Label: the pod's namespace.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Label: the pod's UID.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
/// Label of containers: the container's name.
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";

/// Container events, as GetContainerEvents streams them.
pub type EventStream =
    Pin<Box<dyn Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>>;

/// The node runtime, called in-process.
#[derive(Clone)]
pub struct Cri {
    service: CriService,
}

impl std::fmt::Debug for Cri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cri").finish_non_exhaustive()
    }
}

fn uid_selector(uid: Option<&str>) -> HashMap<String, String> {
    uid.map(|uid| HashMap::from([(POD_UID_LABEL.to_owned(), uid.to_owned())]))
        .unwrap_or_default()
}

impl Cri {
    /// Calls `service`.
    pub fn new(service: CriService) -> Self {
        Self { service }
    }

    /// The runtime's name (`skiff`), for container IDs `skiff://<id>`.
    pub async fn runtime_name(&self) -> String {
        let request = Request::new(cri::VersionRequest {
            version: "v1".into(),
        });
        RuntimeService::version(&self.service, request)
            .await
            .map(|r| r.into_inner().runtime_name)
            .unwrap_or_else(|_| "skiff".into())
    }

    /// Why pods on the pod network cannot start yet, as kubelet words it
    /// (`container runtime network not ready: NetworkReady=false ...`);
    /// None when the network is ready.
    pub async fn network_not_ready(&self) -> Option<String> {
        let request = Request::new(cri::StatusRequest { verbose: false });
        let status = RuntimeService::status(&self.service, request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| go_error(&status));
        crate::kubelet::node::status::runtime_problems(status.as_ref().map_err(Clone::clone))
            .into_iter()
            .find(|problem| problem.starts_with("container runtime network not ready"))
    }

    /// RunPodSandbox; the sandbox ID.
    pub async fn run_pod_sandbox(
        &self,
        config: cri::PodSandboxConfig,
        runtime_handler: String,
    ) -> Result<String, Status> {
        let request = Request::new(cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler,
        });
        Ok(RuntimeService::run_pod_sandbox(&self.service, request)
            .await?
            .into_inner()
            .pod_sandbox_id)
    }

    /// StopPodSandbox.
    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<(), Status> {
        let request = Request::new(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        });
        RuntimeService::stop_pod_sandbox(&self.service, request).await?;
        Ok(())
    }

    /// RemovePodSandbox.
    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<(), Status> {
        let request = Request::new(cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        });
        RuntimeService::remove_pod_sandbox(&self.service, request).await?;
        Ok(())
    }

    /// PodSandboxStatus.
    pub async fn pod_sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus, Status> {
        let request = Request::new(cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_owned(),
            verbose: false,
        });
        RuntimeService::pod_sandbox_status(&self.service, request)
            .await?
            .into_inner()
            .status
            .ok_or_else(|| Status::internal(format!("PodSandboxStatus of {id}: no status")))
    }

    /// ListPodSandbox: the pod's sandboxes, or every kubelet sandbox.
    pub async fn list_pod_sandboxes(
        &self,
        uid: Option<&str>,
    ) -> Result<Vec<cri::PodSandbox>, Status> {
        let request = Request::new(cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                label_selector: uid_selector(uid),
                ..Default::default()
            }),
        });
        Ok(RuntimeService::list_pod_sandbox(&self.service, request)
            .await?
            .into_inner()
            .items)
    }

    /// ListContainers of the pod with `uid`.
    pub async fn list_containers(&self, uid: &str) -> Result<Vec<cri::Container>, Status> {
        let request = Request::new(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                label_selector: uid_selector(Some(uid)),
                ..Default::default()
            }),
        });
        Ok(RuntimeService::list_containers(&self.service, request)
            .await?
            .into_inner()
            .containers)
    }

    /// ContainerStatus.
    pub async fn container_status(&self, id: &str) -> Result<cri::ContainerStatus, Status> {
        let request = Request::new(cri::ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: false,
        });
        RuntimeService::container_status(&self.service, request)
            .await?
            .into_inner()
            .status
            .ok_or_else(|| Status::internal(format!("ContainerStatus of {id}: no status")))
    }

    /// CreateContainer; the container ID.
    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String, Status> {
        let request = Request::new(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_owned(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        });
        Ok(RuntimeService::create_container(&self.service, request)
            .await?
            .into_inner()
            .container_id)
    }

    /// StartContainer.
    pub async fn start_container(&self, id: &str) -> Result<(), Status> {
        let request = Request::new(cri::StartContainerRequest {
            container_id: id.to_owned(),
        });
        RuntimeService::start_container(&self.service, request).await?;
        Ok(())
    }

    /// StopContainer: the stop signal, then SIGKILL after `timeout` seconds.
    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), Status> {
        let request = Request::new(cri::StopContainerRequest {
            container_id: id.to_owned(),
            timeout,
        });
        RuntimeService::stop_container(&self.service, request).await?;
        Ok(())
    }

    /// RemoveContainer.
    pub async fn remove_container(&self, id: &str) -> Result<(), Status> {
        let request = Request::new(cri::RemoveContainerRequest {
            container_id: id.to_owned(),
        });
        RuntimeService::remove_container(&self.service, request).await?;
        Ok(())
    }

    /// ExecSync with a timeout in seconds.
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: i64,
    ) -> Result<cri::ExecSyncResponse, Status> {
        let request = Request::new(cri::ExecSyncRequest {
            container_id: id.to_owned(),
            cmd,
            timeout,
        });
        Ok(RuntimeService::exec_sync(&self.service, request)
            .await?
            .into_inner())
    }

    /// GetContainerEvents.
    pub async fn container_events(&self) -> Result<EventStream, Status> {
        let request = Request::new(cri::GetEventsRequest {});
        let stream = RuntimeService::get_container_events(&self.service, request)
            .await?
            .into_inner();
        Ok(Box::pin(stream))
    }

    /// PullImage; the image reference (ID) the runtime pulled.
    pub async fn pull_image(
        &self,
        image: cri::ImageSpec,
        auth: Option<cri::AuthConfig>,
        sandbox_config: Option<cri::PodSandboxConfig>,
    ) -> Result<String, Status> {
        let request = Request::new(cri::PullImageRequest {
            image: Some(image),
            auth,
            sandbox_config,
        });
        Ok(ImageService::pull_image(&self.service, request)
            .await?
            .into_inner()
            .image_ref)
    }

    /// ImageStatus: the image if present.
    pub async fn image_status(&self, image: cri::ImageSpec) -> Result<Option<cri::Image>, Status> {
        let request = Request::new(cri::ImageStatusRequest {
            image: Some(image),
            verbose: false,
        });
        Ok(ImageService::image_status(&self.service, request)
            .await?
            .into_inner()
            .image)
    }
}

/// A gRPC error as Go's grpc-go prints it (`rpc error: code = NotFound
/// desc = ...`), the form kubelet's messages carry.
pub fn go_error(status: &Status) -> String {
    format!(
        "rpc error: code = {} desc = {}",
        code_name(status.code()),
        status.message()
    )
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_grpc_go_prints_them() {
        let status = Status::not_found("image \"x\" not found");
        assert_eq!(
            go_error(&status),
            "rpc error: code = NotFound desc = image \"x\" not found"
        );
        assert_eq!(
            go_error(&Status::cancelled("gone")),
            "rpc error: code = Canceled desc = gone"
        );
    }
}
