//! RemoveImage: idempotent, as the CRI spec demands — an image already gone
//! is success; an image a container uses is refused (FailedPrecondition).

use k8s_cri::v1::{RemoveImageRequest, RemoveImageResponse};
use skiff_images::ImageError;
use tonic::{Request, Response, Status};

use super::requested_image;
use crate::CriService;
use crate::status::image_error_status;

pub(super) async fn handle(
    service: &CriService,
    request: Request<RemoveImageRequest>,
) -> Result<Response<RemoveImageResponse>, Status> {
    let query = requested_image(request.into_inner().image);
    match service.images().remove(&query).await {
        Ok(image) => tracing::info!(image = %image.id, query = %query, "image removed"),
        Err(ImageError::NotFound(_)) => {
            tracing::debug!(image = %query, "remove: image already gone");
        }
        Err(err) => return Err(image_error_status(err)),
    }
    Ok(Response::new(RemoveImageResponse {}))
}
