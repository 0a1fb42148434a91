//! PullImage: pulls with the request's credentials and answers with the
//! image ID. A `skiff-pull-id` in the metadata shares the pull's progress
//! with a watcher (see [`crate::progress`]).

use k8s_cri::v1::{AuthConfig, PullImageRequest, PullImageResponse};
use skiff_images::distribution::Credentials;
use skiff_images::registries;
use tonic::{Request, Response, Status};

use super::requested_image;
use crate::CriService;
use crate::progress::PULL_ID_METADATA;
use crate::status::image_error_status;

pub(super) async fn handle(
    service: &CriService,
    request: Request<PullImageRequest>,
) -> Result<Response<PullImageResponse>, Status> {
    let pull_id = request
        .metadata()
        .get(PULL_ID_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request = request.into_inner();
    let reference = requested_image(request.image);
    if reference.is_empty() {
        return Err(Status::invalid_argument("PullImage: no image given"));
    }
    let credentials = credentials(request.auth)?;
    let ticket = service.pulls().start_pull(pull_id.as_deref());
    tracing::info!(image = %reference, pull_id = ?pull_id, "pulling image");
    let outcome = service
        .images()
        .pull_with_progress(&reference, credentials.as_ref(), ticket.progress())
        .await
        .map_err(|err| {
            let status = image_error_status(err);
            Status::new(
                status.code(),
                format!("failed to pull image {reference:?}: {}", status.message()),
            )
        })?;
    drop(ticket);
    // The image store logs the pull at info level.
    tracing::debug!(
        image = %reference,
        id = %outcome.image.id,
        layers_fetched = outcome.layers_fetched,
        layers_reused = outcome.layers_reused,
        bytes = outcome.bytes_fetched,
        "pulled image"
    );
    Ok(Response::new(PullImageResponse {
        image_ref: outcome.image.id.to_string(),
    }))
}

/// Registry credentials from a CRI `AuthConfig`, in containerd's order:
/// username/password, identity token, base64 `auth`, registry token.
/// `server_address` is not checked: kubelet only sends the credentials it
/// matched to this image.
pub fn credentials(auth: Option<AuthConfig>) -> Result<Option<Credentials>, Status> {
    let Some(auth) = auth else {
        return Ok(None);
    };
    let set = |value: String| Some(value).filter(|v| !v.is_empty());
    let config = registries::AuthConfig {
        username: set(auth.username),
        password: set(auth.password),
        auth: set(auth.auth),
        identity_token: set(auth.identity_token),
        token: set(auth.registry_token),
    };
    Credentials::from_auth_config(&config)
        .map_err(|e| Status::invalid_argument(format!("PullImage auth: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_every_auth_field() {
        assert_eq!(credentials(None).unwrap(), None);
        assert_eq!(credentials(Some(AuthConfig::default())).unwrap(), None);
        let basic = |username: &str, password: &str| Credentials::Basic {
            username: username.into(),
            password: password.into(),
        };
        let with = |f: fn(&mut AuthConfig)| {
            let mut auth = AuthConfig::default();
            f(&mut auth);
            credentials(Some(auth))
        };
        assert_eq!(
            with(|a| {
                a.username = "u".into();
                a.password = "p".into();
            })
            .unwrap(),
            Some(basic("u", "p"))
        );
        // base64("alice:s3cret")
        assert_eq!(
            with(|a| a.auth = "YWxpY2U6czNjcmV0".into()).unwrap(),
            Some(basic("alice", "s3cret"))
        );
        assert_eq!(
            with(|a| a.identity_token = "refresh".into()).unwrap(),
            Some(Credentials::IdentityToken("refresh".into()))
        );
        assert_eq!(
            with(|a| a.registry_token = "bearer".into()).unwrap(),
            Some(Credentials::RegistryToken("bearer".into()))
        );
        let bad = with(|a| a.auth = "not base64!".into()).unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    }
}
