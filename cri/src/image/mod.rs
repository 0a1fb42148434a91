//! The CRI v1 ImageService over Skiff's [`ImageStore`](skiff_images::ImageStore),
//! answering as containerd's CRI plugin does. One file per RPC; [`convert`]
//! builds the CRI `Image` message.

use k8s_cri::v1::image_service_server::ImageService;
use k8s_cri::v1::{
    ImageFsInfoRequest, ImageFsInfoResponse, ImageStatusRequest, ImageStatusResponse,
    ListImagesRequest, ListImagesResponse, PullImageRequest, PullImageResponse, RemoveImageRequest,
    RemoveImageResponse,
};
use tonic::{Request, Response, Status};

use crate::CriService;

pub mod convert;
mod image_fs_info;
mod image_status;
mod list_images;
mod pull_image;
mod remove_image;

pub use convert::{chain_id, cri_image, user_from_image};
pub use pull_image::credentials;

#[tonic::async_trait]
impl ImageService for CriService {
    async fn list_images(
        &self,
        request: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        list_images::handle(self, request)
    }

    async fn image_status(
        &self,
        request: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        image_status::handle(self, request)
    }

    async fn pull_image(
        &self,
        request: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        pull_image::handle(self, request).await
    }

    async fn remove_image(
        &self,
        request: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        remove_image::handle(self, request).await
    }

    async fn image_fs_info(
        &self,
        request: Request<ImageFsInfoRequest>,
    ) -> Result<Response<ImageFsInfoResponse>, Status> {
        image_fs_info::handle(self, request).await
    }
}

/// The image a request's `ImageSpec` names (empty when it names none).
fn requested_image(spec: Option<k8s_cri::v1::ImageSpec>) -> String {
    spec.map(|spec| spec.image).unwrap_or_default()
}
