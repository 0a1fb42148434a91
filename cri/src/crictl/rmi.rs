//! `crictl rmi`: removes images by ID, prefix, tag or digest; `-a` removes
//! all, `--prune` the unused ones. Prints `Deleted: <name>` per repo tag,
//! an `ERRO` line per image that fails, and fails at the end if any did.

use k8s_cri::v1::{ImageSpec, ListContainersRequest, ListImagesRequest, RemoveImageRequest};
use tonic::Code;

use super::console::{Level, rpc_error};
use super::inspecti::image_status;
use super::{CrictlError, Session};

/// `crictl rmi` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RmiArgs {
    /// Remove all images
    #[arg(short, long)]
    all: bool,
    /// Remove all unused images
    #[arg(short = 'q', long)]
    prune: bool,
    /// Images to remove (IMAGE-ID, NAME[:TAG] or NAME@DIGEST)
    #[arg(value_name = "IMAGE-ID", required_unless_present_any = ["all", "prune"])]
    images: Vec<String>,
}

pub(super) async fn run(args: &RmiArgs, session: &mut Session<'_, '_>) -> Result<(), CrictlError> {
    let mut client = session.image_client().await?;
    let mut ids: Vec<String> = Vec::new();
    let mut add = |id: &str| {
        if !ids.iter().any(|known| known == id) {
            ids.push(id.to_owned());
        }
    };
    for id in &args.images {
        add(id);
    }
    if args.all || args.prune {
        let images = session
            .unary(
                client
                    .images
                    .list_images(ListImagesRequest { filter: None }),
            )
            .await
            .map_err(|s| CrictlError::failed(rpc_error(&s)))?
            .images;
        for image in images {
            if args.prune && image.pinned {
                continue;
            }
            add(&image.id);
        }
    }
    if args.prune {
        let in_use = images_in_use(session).await?;
        ids.retain(|id| !in_use.contains(id));
    }
    if ids.is_empty() {
        session.console.log(Level::Info, "No images to remove");
        return Ok(());
    }

    let mut errored = false;
    for id in &ids {
        let status = match image_status(session, &mut client, id, false).await {
            Ok(status) => status,
            Err(s) => {
                let message = format!("image status request for {id:?} failed: {}", rpc_error(&s));
                session.console.log(Level::Error, &message);
                errored = true;
                continue;
            }
        };
        let Some(image) = status.image else {
            session
                .console
                .log(Level::Error, &format!("no such image {id}"));
            errored = true;
            continue;
        };
        let request = RemoveImageRequest {
            image: Some(ImageSpec {
                image: id.clone(),
                ..ImageSpec::default()
            }),
        };
        session.debug(format!("RemoveImageRequest: {request:?}"));
        if let Err(s) = session.unary(client.images.remove_image(request)).await {
            // Pruning races with pulls and new containers: skip quietly.
            if !args.prune {
                let message = format!("error of removing image {id:?}: {}", rpc_error(&s));
                session.console.log(Level::Error, &message);
                errored = true;
            }
            continue;
        }
        let names = if !image.repo_tags.is_empty() {
            image.repo_tags
        } else if !image.repo_digests.is_empty() {
            image.repo_digests
        } else {
            vec![image.id]
        };
        for name in names {
            session.console.print(&format!("Deleted: {name}\n"))?;
        }
    }
    if errored {
        return Err(CrictlError::failed("unable to remove the image(s)"));
    }
    Ok(())
}

/// The IDs of images containers use. Until the node runtime lands the
/// RuntimeService answers `Unimplemented`: then nothing is known to be in
/// use, and the image store itself refuses to remove an image a container
/// still has.
async fn images_in_use(session: &mut Session<'_, '_>) -> Result<Vec<String>, CrictlError> {
    let mut runtime = session.runtime_client().await?;
    let containers = match session
        .unary(
            runtime
                .runtime
                .list_containers(ListContainersRequest { filter: None }),
        )
        .await
    {
        Ok(response) => response.containers,
        Err(s) if s.code() == Code::Unimplemented => {
            session.debug(format!("ListContainers: {}", s.message()));
            return Ok(Vec::new());
        }
        Err(s) => return Err(CrictlError::failed(rpc_error(&s))),
    };
    let mut images = session.image_client().await?;
    let mut ids = Vec::new();
    for container in containers {
        let image = container.image.map(|spec| spec.image).unwrap_or_default();
        match image_status(session, &mut images, &image, false).await {
            Ok(status) => {
                if let Some(image) = status.image {
                    ids.push(image.id);
                }
            }
            Err(s) => {
                let message = format!(
                    "image status request for {image:?} failed: {}",
                    rpc_error(&s)
                );
                session.console.log(Level::Error, &message);
            }
        }
    }
    Ok(ids)
}
