//! ImageStatus: an image the store does not have is an empty response,
//! not an error (the CRI contract kubelet relies on to decide to pull).

use std::collections::HashMap;

use k8s_cri::v1::{ImageStatusRequest, ImageStatusResponse};
use tonic::{Request, Response, Status};

use super::convert::{cri_image, verbose_info};
use super::requested_image;
use crate::CriService;
use crate::status::image_error_status;

pub(super) fn handle(
    service: &CriService,
    request: Request<ImageStatusRequest>,
) -> Result<Response<ImageStatusResponse>, Status> {
    let request = request.into_inner();
    let query = requested_image(request.image);
    let Some(record) = service.images().get(&query) else {
        tracing::debug!(image = %query, "image status: not present");
        return Ok(Response::new(ImageStatusResponse::default()));
    };
    let mut info = HashMap::new();
    if request.verbose {
        let config = service
            .images()
            .image_config(&record.id)
            .map_err(image_error_status)?;
        let json = verbose_info(&record, &config).map_err(|e| {
            Status::internal(format!(
                "image {}: cannot encode its config: {e}",
                record.id
            ))
        })?;
        info.insert("info".to_owned(), json);
    }
    Ok(Response::new(ImageStatusResponse {
        image: Some(cri_image(&record)),
        info,
    }))
}
