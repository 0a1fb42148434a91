//! The CRI `Image` message and the verbose image info, filled from a
//! store record exactly as containerd's CRI plugin fills them.

use k8s_cri::v1::{Image, ImageSpec, Int64Value};
use oci_spec::image::ImageConfiguration;
use skiff_images::ImageRecord;
use skiff_images::digest::Digest;

/// The CRI view of a stored image: names with a digest are repo digests,
/// the rest repo tags; the user comes from the config's `User`.
pub fn cri_image(record: &ImageRecord) -> Image {
    let (repo_digests, repo_tags) = record
        .names
        .iter()
        .cloned()
        .partition::<Vec<_>, _>(|name| name.contains('@'));
    let (uid, username) = user_from_image(&record.user);
    let id = record.id.to_string();
    Image {
        spec: Some(ImageSpec {
            image: id.clone(),
            ..ImageSpec::default()
        }),
        id,
        repo_tags,
        repo_digests,
        size: record.size,
        uid: uid.map(|value| Int64Value { value }),
        username,
        pinned: record.pinned,
    }
}

/// Splits an image config's `User` as containerd does: only the part
/// before `:` counts; a number is a UID, anything else a user name, and
/// an empty user is neither.
pub fn user_from_image(user: &str) -> (Option<i64>, String) {
    if user.is_empty() {
        return (None, String::new());
    }
    let user = user.split(':').next().unwrap_or_default();
    match user.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, user.to_owned()),
    }
}

/// The OCI chain ID of a layer stack: the first diff ID, then
/// `sha256(parent + " " + diff_id)` for each layer above it.
pub fn chain_id<'a>(diff_ids: impl IntoIterator<Item = &'a Digest>) -> Option<Digest> {
    diff_ids.into_iter().fold(None, |parent, diff_id| {
        Some(match parent {
            None => diff_id.clone(),
            Some(parent) => Digest::sha256_of(format!("{parent} {diff_id}").as_bytes()),
        })
    })
}

/// ImageStatus's verbose `info["info"]`: containerd's
/// `{"chainID": …, "imageSpec": <config>}`.
pub fn verbose_info(
    record: &ImageRecord,
    config: &ImageConfiguration,
) -> Result<String, serde_json::Error> {
    let chain = chain_id(record.layers.iter().map(|layer| &layer.diff_id))
        .map(|digest| digest.to_string())
        .unwrap_or_default();
    let info = serde_json::json!({
        "chainID": chain,
        "imageSpec": serde_json::to_value(config)?,
    });
    serde_json::to_string(&info)
}

#[cfg(test)]
mod tests {
    use skiff_images::metadata::LayerRef;

    use super::*;

    fn record(names: &[&str], user: &str) -> ImageRecord {
        let layer = |data: &[u8]| LayerRef {
            blob_digest: Digest::sha256_of(data),
            blob_size: 10,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            diff_id: Digest::sha256_of(&[data, b"-diff"].concat()),
        };
        ImageRecord {
            id: Digest::sha256_of(b"config"),
            manifest_digest: Digest::sha256_of(b"manifest"),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            layers: vec![layer(b"a"), layer(b"b")],
            size: 2_155_345,
            user: user.into(),
            pinned: false,
            created_at: 0,
            last_used: 0,
        }
    }

    #[test]
    fn users_split_as_containerd_does() {
        assert_eq!(user_from_image(""), (None, String::new()));
        assert_eq!(user_from_image("0"), (Some(0), String::new()));
        assert_eq!(user_from_image("1000:1000"), (Some(1000), String::new()));
        assert_eq!(user_from_image("nobody"), (None, "nobody".into()));
        assert_eq!(user_from_image("nobody:nogroup"), (None, "nobody".into()));
        assert_eq!(user_from_image("1000:staff"), (Some(1000), String::new()));
    }

    #[test]
    fn names_with_a_digest_are_repo_digests() {
        let digest_name = format!(
            "127.0.0.1:5000/skiff-test/busybox@{}",
            Digest::sha256_of(b"m")
        );
        let image = cri_image(&record(
            &["127.0.0.1:5000/skiff-test/busybox:latest", &digest_name],
            "1000:1000",
        ));
        assert_eq!(image.id, Digest::sha256_of(b"config").to_string());
        assert_eq!(
            image.repo_tags,
            ["127.0.0.1:5000/skiff-test/busybox:latest"]
        );
        assert_eq!(image.repo_digests, [digest_name]);
        assert_eq!(image.size, 2_155_345);
        assert_eq!(image.uid, Some(Int64Value { value: 1000 }));
        assert_eq!(image.username, "");
        assert_eq!(image.spec.unwrap().image, image.id);
        assert!(!image.pinned);
    }

    #[test]
    fn a_named_user_is_a_username_not_a_uid() {
        let image = cri_image(&record(&[], "nobody"));
        assert_eq!(image.uid, None);
        assert_eq!(image.username, "nobody");
        assert!(image.repo_tags.is_empty() && image.repo_digests.is_empty());
    }

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        assert_eq!(chain_id([]), None);
        assert_eq!(chain_id([&a]), Some(a.clone()));
        let expected = Digest::sha256_of(format!("{a} {b}").as_bytes());
        assert_eq!(chain_id([&a, &b]), Some(expected));
    }

    #[test]
    fn verbose_info_holds_the_chain_id_and_the_config() {
        let config: ImageConfiguration = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{"User":"nobody","Cmd":["sh"]},
                "rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let record = record(&[], "nobody");
        let info: serde_json::Value =
            serde_json::from_str(&verbose_info(&record, &config).unwrap()).unwrap();
        let expected = chain_id(record.layers.iter().map(|l| &l.diff_id)).unwrap();
        assert_eq!(info["chainID"], expected.to_string());
        assert_eq!(info["imageSpec"]["config"]["User"], "nobody");
        assert_eq!(info["imageSpec"]["architecture"], "amd64");
    }
}
