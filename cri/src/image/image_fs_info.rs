//! ImageFsInfo: the bytes and inodes the image store uses, for kubelet's
//! image garbage collection and eviction.

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_cri::v1::{
    FilesystemIdentifier, FilesystemUsage, ImageFsInfoRequest, ImageFsInfoResponse, UInt64Value,
};
use tonic::{Request, Response, Status};

use crate::CriService;
use crate::status::image_error_status;

pub(super) async fn handle(
    service: &CriService,
    _request: Request<ImageFsInfoRequest>,
) -> Result<Response<ImageFsInfoResponse>, Status> {
    let store = service.images().clone();
    // Measuring walks the container layers: keep it off the async workers.
    let usage = tokio::task::spawn_blocking(move || store.fs_usage())
        .await
        .map_err(|e| Status::internal(format!("image filesystem usage task failed: {e}")))?
        .map_err(image_error_status)?;
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Ok(Response::new(ImageFsInfoResponse {
        image_filesystems: vec![FilesystemUsage {
            timestamp,
            fs_id: Some(FilesystemIdentifier {
                mountpoint: usage.mountpoint.to_string_lossy().into_owned(),
            }),
            used_bytes: Some(UInt64Value {
                value: usage.used_bytes,
            }),
            inodes_used: Some(UInt64Value {
                value: usage.inodes_used,
            }),
        }],
        container_filesystems: Vec::new(),
    }))
}
