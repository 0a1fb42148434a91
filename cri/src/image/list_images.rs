//! ListImages: every image, or with a filter the one image its reference
//! resolves to locally (as containerd does), or none.

use k8s_cri::v1::{ListImagesRequest, ListImagesResponse};
use tonic::{Request, Response, Status};

use super::{convert::cri_image, requested_image};
use crate::CriService;

pub(super) fn handle(
    service: &CriService,
    request: Request<ListImagesRequest>,
) -> Result<Response<ListImagesResponse>, Status> {
    let filter = requested_image(request.into_inner().filter.and_then(|f| f.image));
    let images = if filter.is_empty() {
        service.images().list().iter().map(cri_image).collect()
    } else {
        service
            .images()
            .get(&filter)
            .iter()
            .map(cri_image)
            .collect()
    };
    Ok(Response::new(ListImagesResponse { images }))
}
