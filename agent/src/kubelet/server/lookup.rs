//! Finding a pod's sandbox and containers in the runtime by the labels
//! kubelet puts on them (`io.kubernetes.pod.name`, `.namespace`, `.uid`,
//! `io.kubernetes.container.name`).

use std::collections::HashMap;

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use skiff_cri::CriService;

/// The label naming a sandbox's or container's pod.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// The label naming its namespace.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The label naming its pod's UID.
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// The label naming a container.
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// A pod as the API names it.
#[derive(Debug, Clone, Copy)]
pub struct PodRef<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its UID, when the caller gave one.
    pub uid: Option<&'a str>,
}

impl PodRef<'_> {
    fn labels(&self) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (POD_NAME.to_owned(), self.name.to_owned()),
            (POD_NAMESPACE.to_owned(), self.namespace.to_owned()),
        ]);
        if let Some(uid) = self.uid {
            labels.insert(POD_UID.to_owned(), uid.to_owned());
        }
        labels
    }
}

/// The pod's current sandbox: a ready one before a stopped one, the
/// newest first.
pub async fn sandbox(
    cri: &CriService,
    pod: PodRef<'_>,
) -> Result<Option<cri::PodSandbox>, tonic::Status> {
    let request = cri::ListPodSandboxRequest {
        filter: Some(cri::PodSandboxFilter {
            label_selector: pod.labels(),
            ..Default::default()
        }),
    };
    let mut items = RuntimeService::list_pod_sandbox(cri, tonic::Request::new(request))
        .await?
        .into_inner()
        .items;
    let ready = cri::PodSandboxState::SandboxReady as i32;
    items.sort_by_key(|s| (s.state == ready, s.created_at));
    Ok(items.pop())
}

/// Every instance of `container` in the pod's current incarnation (the
/// UID of its current sandbox unless given), the latest attempt first.
pub async fn containers(
    cri: &CriService,
    pod: PodRef<'_>,
    container: &str,
) -> Result<Vec<cri::Container>, tonic::Status> {
    let uid = match pod.uid {
        Some(uid) => uid.to_owned(),
        None => match sandbox(cri, pod).await? {
            Some(sandbox) => sandbox.labels.get(POD_UID).cloned().unwrap_or_default(),
            None => return Ok(Vec::new()),
        },
    };
    let mut labels = PodRef {
        uid: (!uid.is_empty()).then_some(uid.as_str()),
        ..pod
    }
    .labels();
    labels.insert(CONTAINER_NAME.to_owned(), container.to_owned());
    let request = cri::ListContainersRequest {
        filter: Some(cri::ContainerFilter {
            label_selector: labels,
            ..Default::default()
        }),
    };
    let mut list = RuntimeService::list_containers(cri, tonic::Request::new(request))
        .await?
        .into_inner()
        .containers;
    list.sort_by_key(|c| {
        let attempt = c.metadata.as_ref().map_or(0, |m| m.attempt);
        std::cmp::Reverse((attempt, c.created_at))
    });
    Ok(list)
}

/// The container's status (log path, state) from the runtime.
pub async fn container_status(
    cri: &CriService,
    container_id: &str,
) -> Result<cri::ContainerStatus, tonic::Status> {
    let request = cri::ContainerStatusRequest {
        container_id: container_id.to_owned(),
        verbose: false,
    };
    RuntimeService::container_status(cri, tonic::Request::new(request))
        .await?
        .into_inner()
        .status
        .ok_or_else(|| {
            tonic::Status::not_found(format!("container {container_id:?} has no status"))
        })
}
