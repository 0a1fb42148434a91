//! `crictl images`: the `IMAGE  TAG  IMAGE ID  SIZE` table (one row per
//! repo tag), `-q` IDs, `-v` details, or the ListImagesResponse as
//! protobuf JSON / YAML.

use std::cmp::Ordering;

use k8s_cri::v1::{Image, ImageFilter, ImageSpec, ListImagesRequest};
use regex::Regex;

use super::console::rpc_error;
use super::json::{self, Escape};
use super::table::{Table, human_size};
use super::{CrictlError, Session, is_table};

/// How many hex digits of an ID crictl shows.
const TRUNCATED_ID_LEN: usize = 13;

/// `crictl images` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ImagesArgs {
    /// Show verbose info for images
    #[arg(short, long)]
    pub verbose: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on provided conditions: dangling=(true|false),
    /// reference=/regular expression/, before=<image>, since=<image>
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Output format, One of: json|yaml|table
    #[arg(short, long, value_name = "FORMAT")]
    pub output: Option<String>,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Show output without truncating the ID
    #[arg(long)]
    pub no_trunc: bool,
    /// Show whether the image is pinned or not
    #[arg(long)]
    pub pinned: bool,
    /// Accepted for docker habits: crictl always lists every image
    #[arg(short, long, hide = true)]
    pub all: bool,
    /// Only images this reference resolves to
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub image: Option<String>,
}

pub(super) async fn run(
    args: &ImagesArgs,
    session: &mut Session<'_, '_>,
) -> Result<(), CrictlError> {
    let mut client = session.image_client().await?;
    let request = ListImagesRequest {
        filter: Some(ImageFilter {
            image: Some(ImageSpec {
                image: args.image.clone().unwrap_or_default(),
                ..ImageSpec::default()
            }),
        }),
    };
    session.debug(format!("ListImagesRequest: {request:?}"));
    let mut response = session
        .unary(client.images.list_images(request))
        .await
        .map_err(|s| CrictlError::failed(format!("listing images: {}", rpc_error(&s))))?;
    session.debug(format!("ListImagesResponse: {response:?}"));
    response.images.sort_by(by_ref);
    if !args.filter.is_empty() && !response.images.is_empty() {
        response.images = filter_images(std::mem::take(&mut response.images), &args.filter)
            .map_err(|e| CrictlError::failed(format!("listing images: {e}")))?;
    }
    match args.output.as_deref() {
        Some("json") => {
            let text = json::list_images(&response).pretty(Escape::Protojson);
            session.console.print(&format!("{text}\n"))?;
            return Ok(());
        }
        Some("yaml") => {
            let text = json::list_images(&response).to_yaml();
            session.console.print(&format!("{text}\n"))?;
            return Ok(());
        }
        output if !is_table(output) => {
            // crictl falls back to the table for formats it does not know.
        }
        _ => {}
    }
    let text = render(&response.images, args);
    session.console.print(&text)?;
    Ok(())
}

/// crictl's image order: by first repo tag, else first repo digest, else ID.
fn by_ref(a: &Image, b: &Image) -> Ordering {
    if let (Some(x), Some(y)) = (a.repo_tags.first(), b.repo_tags.first()) {
        return x.cmp(y);
    }
    if let (Some(x), Some(y)) = (a.repo_digests.first(), b.repo_digests.first()) {
        return x.cmp(y);
    }
    a.id.cmp(&b.id)
}

/// The table, `-q` or `-v` text.
pub(crate) fn render(images: &[Image], args: &ImagesArgs) -> String {
    let mut out = String::new();
    let mut table = Table::default();
    if !args.verbose && !args.quiet {
        let mut header = vec!["IMAGE".to_owned(), "TAG".to_owned()];
        if args.digests {
            header.push("DIGEST".to_owned());
        }
        header.extend(["IMAGE ID".to_owned(), "SIZE".to_owned()]);
        if args.pinned {
            header.push("PINNED".to_owned());
        }
        table.row(header);
    }
    for image in images {
        if args.quiet {
            out.push_str(&format!("{}\n", image.id));
            continue;
        }
        if args.verbose {
            out.push_str(&verbose(image));
            continue;
        }
        let (name, mut digest) = repo_digest_parts(&image.repo_digests);
        let size = human_size(image.size as f64, 3);
        let mut id = image.id.clone();
        if !args.no_trunc {
            id = truncated_id(&id);
            digest = truncated_id(&digest);
        }
        for (repo, tag) in repo_tag_pairs(&image.repo_tags, &name) {
            let mut row = vec![repo, tag];
            if args.digests {
                row.push(digest.clone());
            }
            row.extend([id.clone(), size.clone()]);
            if args.pinned {
                row.push(image.pinned.to_string());
            }
            table.row(row);
        }
    }
    out.push_str(&table.render());
    out
}

fn verbose(image: &Image) -> String {
    let mut out = format!("ID: {}\n", image.id);
    for tag in &image.repo_tags {
        out.push_str(&format!("RepoTags: {tag}\n"));
    }
    for digest in &image.repo_digests {
        out.push_str(&format!("RepoDigests: {digest}\n"));
    }
    if image.size != 0 {
        out.push_str(&format!("Size: {}\n", image.size));
    }
    if let Some(uid) = &image.uid {
        // Go prints the message in prototext form.
        out.push_str(&format!("Uid: value:{}\n", uid.value));
    }
    if !image.username.is_empty() {
        out.push_str(&format!("Username: {}\n", image.username));
    }
    if image.pinned {
        out.push_str("Pinned: true\n");
    }
    out.push('\n');
    out
}

/// The repository and digest of the first repo digest (`<none>` twice
/// when there is none).
fn repo_digest_parts(repo_digests: &[String]) -> (String, String) {
    let Some(first) = repo_digests.first() else {
        return ("<none>".to_owned(), "<none>".to_owned());
    };
    let parts: Vec<&str> = first.split('@').collect();
    match parts.as_slice() {
        [name, digest] => ((*name).to_owned(), (*digest).to_owned()),
        _ => ("errorName".to_owned(), "errorRepoDigest".to_owned()),
    }
}

/// `(repository, tag)` per repo tag; an untagged image shows its
/// repository from the repo digest and the tag `<none>`.
fn repo_tag_pairs(repo_tags: &[String], image_name: &str) -> Vec<(String, String)> {
    const NONE: &str = "<none>";
    if repo_tags.is_empty() {
        return vec![(image_name.to_owned(), NONE.to_owned())];
    }
    repo_tags
        .iter()
        .map(|repo_tag| match repo_tag.rsplit_once(':') {
            Some((name, tag)) => {
                let name = if name == NONE { image_name } else { name };
                (name.to_owned(), tag.to_owned())
            }
            None => ("errorRepoTag".to_owned(), "errorRepoTag".to_owned()),
        })
        .collect()
}

fn truncated_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(TRUNCATED_ID_LEN).collect()
}

/// crictl's `--filter` conditions, applied in order.
fn filter_images(mut images: Vec<Image>, filters: &[String]) -> Result<Vec<Image>, String> {
    for filter in filters {
        images = if let Some(value) = filter.strip_prefix("before=") {
            images.reverse();
            let mut kept = before_or_since(value, images);
            kept.reverse();
            kept
        } else if let Some(value) = filter.strip_prefix("since=") {
            before_or_since(value, images)
        } else if let Some(value) = filter.strip_prefix("dangling=") {
            images
                .into_iter()
                .filter(|image| match value {
                    "true" => image.repo_tags.is_empty(),
                    "false" => !image.repo_tags.is_empty(),
                    _ => false,
                })
                .collect()
        } else if let Some(value) = filter.strip_prefix("reference=") {
            let re = Regex::new(value).map_err(|e| e.to_string())?;
            images
                .into_iter()
                .filter(|image| {
                    let (name, _) = repo_digest_parts(&image.repo_digests);
                    re.is_match(&name) || name == value
                })
                .collect()
        } else {
            return Err(format!("unknown filter flag: {filter}"));
        };
    }
    Ok(images)
}

/// The images listed before the one `value` names (crictl's `since`
/// walks the list in order, `before` walks it reversed).
fn before_or_since(value: &str, images: Vec<Image>) -> Vec<Image> {
    let by_tag = value.contains(':') && !value.contains('@');
    let by_id = !value.contains(':') && !value.contains('@');
    let by_digest = value.contains(':') && value.contains('@');
    let mut kept = Vec::new();
    for image in images {
        if by_tag {
            let (name, _) = repo_digest_parts(&image.repo_digests);
            let pairs = repo_tag_pairs(&image.repo_tags, &name);
            if format!("{}:{}", pairs[0].0, pairs[0].1) == value {
                break;
            }
        } else if by_id {
            if image.id.starts_with(value) {
                break;
            }
        } else if by_digest {
            match image.repo_digests.first() {
                Some(digest) if digest.starts_with(value) => break,
                Some(_) => {}
                None => continue,
            }
        }
        kept.push(image);
    }
    kept
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::Int64Value;

    use super::*;

    const ID: &str = "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741";

    fn image(tags: &[&str], digests: &[&str], size: u64) -> Image {
        Image {
            id: ID.to_owned(),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            size,
            uid: Some(Int64Value { value: 0 }),
            username: String::new(),
            spec: None,
            pinned: false,
        }
    }

    fn args() -> ImagesArgs {
        ImagesArgs {
            verbose: false,
            quiet: false,
            filter: vec![],
            output: None,
            digests: false,
            no_trunc: false,
            pinned: false,
            all: false,
            image: None,
        }
    }

    #[test]
    fn the_table_has_one_row_per_tag_and_none_for_untagged() {
        let digest = "127.0.0.1:5000/skiff-test/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let images = [
            image(
                &[
                    "127.0.0.1:5000/skiff-test/busybox:1.36",
                    "127.0.0.1:5000/skiff-test/busybox:latest",
                ],
                &[digest],
                2_155_345,
            ),
            image(&[], &[digest], 999),
        ];
        let expected = "\
IMAGE                               TAG                 IMAGE ID            SIZE
127.0.0.1:5000/skiff-test/busybox   1.36                3f57d9401f8d4       2.16MB
127.0.0.1:5000/skiff-test/busybox   latest              3f57d9401f8d4       2.16MB
127.0.0.1:5000/skiff-test/busybox   <none>              3f57d9401f8d4       999B
";
        assert_eq!(render(&images, &args()), expected);

        let with_digests = ImagesArgs {
            digests: true,
            no_trunc: true,
            ..args()
        };
        let text = render(&images[1..], &with_digests);
        let row = text.lines().nth(1).unwrap();
        let cells: Vec<_> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "127.0.0.1:5000/skiff-test/busybox",
                "<none>",
                "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                ID,
                "999B"
            ]
        );
        assert!(text.starts_with("IMAGE"));
        assert!(text.lines().next().unwrap().contains("DIGEST"));
    }

    #[test]
    fn quiet_prints_full_ids_and_verbose_prints_details() {
        let images = [image(&["docker.io/library/busybox:latest"], &[], 10)];
        let quiet = ImagesArgs {
            quiet: true,
            ..args()
        };
        assert_eq!(render(&images, &quiet), format!("{ID}\n"));
        let verbose = ImagesArgs {
            verbose: true,
            ..args()
        };
        assert_eq!(
            render(&images, &verbose),
            format!(
                "ID: {ID}\nRepoTags: docker.io/library/busybox:latest\nSize: 10\nUid: value:0\n\n"
            )
        );
    }

    #[test]
    fn images_sort_by_tag_then_digest_then_id() {
        let mut images = [image(&["b:1"], &[], 1), image(&["a:1"], &[], 1)];
        images.sort_by(by_ref);
        assert_eq!(images[0].repo_tags[0], "a:1");
    }

    #[test]
    fn filters_select_as_crictl_does() {
        let tagged = image(
            &["docker.io/library/busybox:latest"],
            &["docker.io/library/busybox@sha256:aa"],
            1,
        );
        let dangling = image(&[], &["docker.io/library/alpine@sha256:bb"], 1);
        let images = vec![tagged.clone(), dangling.clone()];
        let only = |filter: &str| filter_images(images.clone(), &[filter.to_owned()]).unwrap();
        assert_eq!(only("dangling=true"), std::slice::from_ref(&dangling));
        assert_eq!(only("dangling=false"), std::slice::from_ref(&tagged));
        assert_eq!(only("reference=alpine"), std::slice::from_ref(&dangling));
        assert_eq!(
            only("since=docker.io/library/alpine:<none>"),
            std::slice::from_ref(&tagged)
        );
        assert_eq!(
            only("before=docker.io/library/alpine@sha256:bb"),
            Vec::<Image>::new()
        );
        assert!(filter_images(images, &["bogus=1".to_owned()]).is_err());
    }
}
