//! `crictl imagefsinfo`.

use k8s_cri::v1::{FilesystemUsage, ImageFsInfoRequest};

use super::console::rpc_error;
use super::inspecti::{StatusData, output_status_data};
use super::json;
use super::table::human_size;
use super::{CrictlError, Session};

/// `crictl imagefsinfo` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ImageFsInfoArgs {
    /// Output format, One of: json|yaml|table
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<String>,
    /// The template string is only used when output is go-template
    #[arg(long, hide = true)]
    template: Option<String>,
}

pub(super) async fn run(
    args: &ImageFsInfoArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    let mut client = session.image_client().await?;
    let response = session
        .unary(client.images.image_fs_info(ImageFsInfoRequest {}))
        .await
        .map_err(|s| {
            CrictlError::failed(format!("image filesystem info request: {}", rpc_error(&s)))
        })?;
    session.debug(format!("ImageFsInfoResponse: {response:?}"));
    let output = args.output.as_deref().unwrap_or("json");
    if output == "table" {
        let mut text = table_section("Container", &response.container_filesystems);
        text.push_str(&table_section("Image", &response.image_filesystems));
        session.console.print(&text)?;
        return Ok(());
    }
    let status = StatusData {
        status: json::image_fs_info(&response),
        info: Default::default(),
    };
    output_status_data(session, vec![status], output)
}

fn table_section(label: &str, filesystems: &[FilesystemUsage]) -> String {
    let mut text = format!("{label} Filesystem \n");
    for (i, fs) in filesystems.iter().enumerate() {
        let used = fs.used_bytes.as_ref().map_or(0, |v| v.value);
        let inodes = fs.inodes_used.as_ref().map_or(0, |v| v.value);
        let mountpoint = fs.fs_id.as_ref().map_or("", |id| id.mountpoint.as_str());
        text.push_str(&format!(
            "TimeStamp[{i}]: {}\nDisk[{i}]: {}\nInodes[{i}]: {inodes}\nMountpoint[{i}]: {mountpoint}\n",
            fs.timestamp,
            human_size(used as f64, 4),
        ));
    }
    text
}
