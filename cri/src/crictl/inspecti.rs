//! `crictl inspecti`: ImageStatus with `verbose`, printed as crictl does —
//! `{"info": {...}, "status": <image>}` with Go's sorted keys, an array
//! when several images are asked for.

use std::collections::HashMap;

use k8s_cri::v1::{ImageSpec, ImageStatusRequest, ImageStatusResponse};

use super::console::rpc_error;
use super::json::{self, Escape, Json};
use super::table::human_size;
use super::{CrictlError, Session};

/// `crictl inspecti` options.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectiArgs {
    /// Output format, One of: json|yaml|table
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<String>,
    /// Do not show verbose information
    #[arg(short, long)]
    quiet: bool,
    /// The template string is only used when output is go-template
    #[arg(long, hide = true)]
    template: Option<String>,
    /// Images to inspect (IMAGE-ID, NAME[:TAG] or NAME@DIGEST)
    #[arg(value_name = "IMAGE-ID", required = true)]
    images: Vec<String>,
}

/// One status crictl prints: the message and the `info` map.
#[derive(Debug)]
pub(super) struct StatusData {
    pub status: Json,
    pub info: HashMap<String, String>,
}

pub(super) async fn run(
    args: &InspectiArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    let mut client = session.image_client().await?;
    let verbose = !args.quiet;
    let output = args.output.as_deref().unwrap_or("json");
    let mut statuses = Vec::new();
    for id in &args.images {
        let response = image_status(session, &mut client, id, verbose)
            .await
            .map_err(|s| {
                CrictlError::failed(format!(
                    "image status for {id:?} request: {}",
                    rpc_error(&s)
                ))
            })?;
        let Some(image) = &response.image else {
            return Err(CrictlError::failed(format!("no such image {id:?} present")));
        };
        if output == "table" {
            let text = status_table(&response, verbose);
            session.console.print(&text)?;
        } else {
            statuses.push(StatusData {
                status: json::image(image),
                info: response.info.clone(),
            });
        }
    }
    output_status_data(session, statuses, output)
}

/// ImageStatus as crictl calls it.
pub(super) async fn image_status(
    session: &mut Session<'_, '_>,
    client: &mut crate::client::CriClient,
    image: &str,
    verbose: bool,
) -> Result<ImageStatusResponse, tonic::Status> {
    let request = ImageStatusRequest {
        image: Some(ImageSpec {
            image: image.to_owned(),
            ..ImageSpec::default()
        }),
        verbose,
    };
    session.debug(format!("ImageStatusRequest: {request:?}"));
    let response = session.unary(client.images.image_status(request)).await?;
    session.debug(format!("ImageStatusResponse: {response:?}"));
    Ok(response)
}

fn status_table(response: &ImageStatusResponse, verbose: bool) -> String {
    let Some(image) = &response.image else {
        return String::new();
    };
    let mut text = format!("ID: {}\n", image.id);
    for tag in &image.repo_tags {
        text.push_str(&format!("Tag: {tag}\n"));
    }
    for digest in &image.repo_digests {
        text.push_str(&format!("Digest: {digest}\n"));
    }
    text.push_str(&format!("Size: {}\n", human_size(image.size as f64, 3)));
    if verbose {
        // Go's %v of a map: `map[k:v k2:v2]`, keys sorted.
        let mut entries: Vec<_> = response.info.iter().collect();
        entries.sort();
        let inner: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        text.push_str(&format!("Info: map[{}]\n", inner.join(" ")));
    }
    text
}

/// crictl's `outputStatusData`: each status with its info values parsed
/// (JSON objects as objects, anything else as a string without quotes),
/// keys sorted as Go's maps print.
pub(super) fn output_status_data(
    session: &mut Session<'_, '_>,
    statuses: Vec<StatusData>,
    format: &str,
) -> Result<(), CrictlError> {
    if statuses.is_empty() {
        return Ok(());
    }
    let mut results = Vec::with_capacity(statuses.len());
    for data in statuses {
        let mut fields = vec![("status".to_owned(), data.status)];
        for (key, value) in data.info {
            let parsed = if value.starts_with('{') {
                let parsed: serde_json::Value = serde_json::from_str(&value)
                    .map_err(|e| CrictlError::failed(format!("unmarshal status info JSON: {e}")))?;
                Json::from_serde(&parsed)
            } else {
                Json::String(value.trim_matches('"').to_owned())
            };
            fields.push((key, parsed));
        }
        results.push(Json::Object(fields).sorted());
    }
    let result = if results.len() == 1 {
        results.remove(0)
    } else {
        Json::Array(results)
    };
    let text = match format {
        "yaml" => format!("{}\n", result.to_yaml()),
        "json" => format!("{}\n", result.pretty(Escape::GoHtmlSafe)),
        "go-template" => {
            return Err(CrictlError::failed(
                "go-template output is not supported by skiff crictl; use -o json",
            ));
        }
        other => {
            return Err(CrictlError::failed(format!(
                "unsupported format: {other:?}"
            )));
        }
    };
    session.console.print(&text)?;
    Ok(())
}
