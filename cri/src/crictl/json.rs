//! JSON as crictl prints it. Two printers matter: Go's protojson
//! (`images -o json`: fields in proto order, camelCase, 64-bit integers as
//! strings, default values included) and Go's `encoding/json` after a
//! round-trip through `map[string]any` (`inspecti`, `imagefsinfo`: keys
//! sorted, `<`, `>` and `&` escaped). A small ordered tree serves both,
//! whatever order `serde_json`'s map keeps.

use std::collections::HashMap;
use std::fmt::Write as _;

use k8s_cri::v1::{FilesystemUsage, Image, ImageFsInfoResponse, ImageSpec, ListImagesResponse};

/// A JSON value whose objects keep the order they were built in.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, in field order.
    Object(Vec<(String, Json)>),
}

/// How strings are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// protojson: quotes, backslashes and control characters only.
    Protojson,
    /// Go's `json.Marshal`: also `<`, `>`, `&`, U+2028 and U+2029.
    GoHtmlSafe,
}

impl Json {
    /// A string value.
    pub fn str(value: impl Into<String>) -> Self {
        Self::String(value.into())
    }

    /// A 64-bit integer as protojson writes it: a string.
    pub fn int64(value: impl std::fmt::Display) -> Self {
        Self::String(value.to_string())
    }

    /// An object from fields in order.
    pub fn object<'a>(fields: impl IntoIterator<Item = (&'a str, Json)>) -> Self {
        Self::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// A string array.
    pub fn strings(values: &[String]) -> Self {
        Self::Array(values.iter().cloned().map(Self::String).collect())
    }

    /// The same value with every object's keys sorted, as Go's maps print.
    pub fn sorted(self) -> Self {
        match self {
            Self::Array(items) => Self::Array(items.into_iter().map(Self::sorted).collect()),
            Self::Object(mut fields) => {
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Self::Object(fields.into_iter().map(|(k, v)| (k, v.sorted())).collect())
            }
            other => other,
        }
    }

    /// Converts a parsed `serde_json` value, keeping its map's order.
    pub fn from_serde(value: &serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(b) => Self::Bool(*b),
            serde_json::Value::Number(n) => Self::Number(n.to_string()),
            serde_json::Value::String(s) => Self::String(s.clone()),
            serde_json::Value::Array(items) => {
                Self::Array(items.iter().map(Self::from_serde).collect())
            }
            serde_json::Value::Object(map) => Self::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::from_serde(v)))
                    .collect(),
            ),
        }
    }

    /// Multi-line JSON with two-space indents, as `json.Indent` and
    /// protojson's `Indent: "  "` write it.
    pub fn pretty(&self, escape: Escape) -> String {
        let mut out = String::new();
        self.write(&mut out, 0, escape);
        out
    }

    fn write(&self, out: &mut String, depth: usize, escape: Escape) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Number(n) => out.push_str(n),
            Self::String(s) => write_string(out, s, escape),
            Self::Array(items) if items.is_empty() => out.push_str("[]"),
            Self::Object(fields) if fields.is_empty() => out.push_str("{}"),
            Self::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    out.push_str(if i == 0 { "\n" } else { ",\n" });
                    indent(out, depth + 1);
                    item.write(out, depth + 1, escape);
                }
                out.push('\n');
                indent(out, depth);
                out.push(']');
            }
            Self::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    out.push_str(if i == 0 { "\n" } else { ",\n" });
                    indent(out, depth + 1);
                    write_string(out, key, escape);
                    out.push_str(": ");
                    value.write(out, depth + 1, escape);
                }
                out.push('\n');
                indent(out, depth);
                out.push('}');
            }
        }
    }

    /// The value as YAML, keys sorted as `sigs.k8s.io/yaml` prints them.
    pub fn to_yaml(&self) -> String {
        let text = serde_yaml_ng::to_string(&self.clone().sorted().yaml_value())
            .unwrap_or_else(|e| format!("# cannot encode as YAML: {e}\n"));
        text.strip_prefix("---\n")
            .map(str::to_owned)
            .unwrap_or(text)
    }

    fn yaml_value(&self) -> serde_yaml_ng::Value {
        use serde_yaml_ng::Value;
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => n
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| n.parse::<u64>().map(Value::from))
                .or_else(|_| n.parse::<f64>().map(Value::from))
                .unwrap_or_else(|_| Value::String(n.clone())),
            Self::String(s) => Value::String(s.clone()),
            Self::Array(items) => Value::Sequence(items.iter().map(Self::yaml_value).collect()),
            Self::Object(fields) => Value::Mapping(
                fields
                    .iter()
                    .map(|(k, v)| (Value::String(k.clone()), v.yaml_value()))
                    .collect(),
            ),
        }
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_string(out: &mut String, s: &str, escape: Escape) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if escape == Escape::GoHtmlSafe => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A protobuf map as protojson writes it: keys sorted.
fn string_map(map: &HashMap<String, String>) -> Json {
    let mut fields: Vec<_> = map.iter().collect();
    fields.sort();
    Json::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.clone(), Json::str(v.clone())))
            .collect(),
    )
}

fn image_spec(spec: &ImageSpec) -> Json {
    Json::object([
        ("image", Json::str(spec.image.clone())),
        ("annotations", string_map(&spec.annotations)),
        (
            "userSpecifiedImage",
            Json::str(spec.user_specified_image.clone()),
        ),
        ("runtimeHandler", Json::str(spec.runtime_handler.clone())),
    ])
}

/// A CRI `Image` in protojson form.
pub fn image(image: &Image) -> Json {
    let mut fields = vec![
        ("id", Json::str(image.id.clone())),
        ("repoTags", Json::strings(&image.repo_tags)),
        ("repoDigests", Json::strings(&image.repo_digests)),
        ("size", Json::int64(image.size)),
    ];
    if let Some(uid) = &image.uid {
        fields.push(("uid", Json::object([("value", Json::int64(uid.value))])));
    }
    fields.push(("username", Json::str(image.username.clone())));
    if let Some(spec) = &image.spec {
        fields.push(("spec", image_spec(spec)));
    }
    fields.push(("pinned", Json::Bool(image.pinned)));
    Json::object(fields)
}

/// A `ListImagesResponse` in protojson form.
pub fn list_images(response: &ListImagesResponse) -> Json {
    Json::object([(
        "images",
        Json::Array(response.images.iter().map(image).collect()),
    )])
}

fn filesystem_usage(usage: &FilesystemUsage) -> Json {
    let mut fields = vec![("timestamp", Json::int64(usage.timestamp))];
    if let Some(fs_id) = &usage.fs_id {
        fields.push((
            "fsId",
            Json::object([("mountpoint", Json::str(fs_id.mountpoint.clone()))]),
        ));
    }
    if let Some(used) = &usage.used_bytes {
        fields.push((
            "usedBytes",
            Json::object([("value", Json::int64(used.value))]),
        ));
    }
    if let Some(inodes) = &usage.inodes_used {
        fields.push((
            "inodesUsed",
            Json::object([("value", Json::int64(inodes.value))]),
        ));
    }
    Json::object(fields)
}

/// An `ImageFsInfoResponse` in protojson form.
pub fn image_fs_info(response: &ImageFsInfoResponse) -> Json {
    let list =
        |items: &[FilesystemUsage]| Json::Array(items.iter().map(filesystem_usage).collect());
    Json::object([
        ("imageFilesystems", list(&response.image_filesystems)),
        (
            "containerFilesystems",
            list(&response.container_filesystems),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::{FilesystemIdentifier, Int64Value, UInt64Value};

    use super::*;

    fn busybox() -> Image {
        Image {
            id: "sha256:aaaa".into(),
            repo_tags: vec!["docker.io/library/busybox:latest".into()],
            repo_digests: vec![],
            size: 2_155_345,
            uid: Some(Int64Value { value: 0 }),
            username: String::new(),
            spec: Some(ImageSpec {
                image: "sha256:aaaa".into(),
                ..ImageSpec::default()
            }),
            pinned: false,
        }
    }

    #[test]
    fn images_print_as_protojson_does() {
        let response = ListImagesResponse {
            images: vec![busybox()],
        };
        let expected = r#"{
  "images": [
    {
      "id": "sha256:aaaa",
      "repoTags": [
        "docker.io/library/busybox:latest"
      ],
      "repoDigests": [],
      "size": "2155345",
      "uid": {
        "value": "0"
      },
      "username": "",
      "spec": {
        "image": "sha256:aaaa",
        "annotations": {},
        "userSpecifiedImage": "",
        "runtimeHandler": ""
      },
      "pinned": false
    }
  ]
}"#;
        assert_eq!(list_images(&response).pretty(Escape::Protojson), expected);
        let empty = ListImagesResponse { images: vec![] };
        assert_eq!(
            list_images(&empty).pretty(Escape::Protojson),
            "{\n  \"images\": []\n}"
        );
    }

    #[test]
    fn an_image_without_uid_has_no_uid_field() {
        let mut image = busybox();
        image.uid = None;
        image.username = "nobody".into();
        let Json::Object(fields) = super::image(&image) else {
            panic!("not an object")
        };
        let keys: Vec<_> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "id",
                "repoTags",
                "repoDigests",
                "size",
                "username",
                "spec",
                "pinned"
            ]
        );
    }

    #[test]
    fn go_maps_print_sorted_and_html_safe() {
        let response = ImageFsInfoResponse {
            image_filesystems: vec![FilesystemUsage {
                timestamp: 1_700_000_000_000_000_000,
                fs_id: Some(FilesystemIdentifier {
                    mountpoint: "/var/lib/skiff/<store>&".into(),
                }),
                used_bytes: Some(UInt64Value { value: 42 }),
                inodes_used: Some(UInt64Value { value: 7 }),
            }],
            container_filesystems: vec![],
        };
        let status = Json::object([("status", image_fs_info(&response))]).sorted();
        let expected = r#"{
  "status": {
    "containerFilesystems": [],
    "imageFilesystems": [
      {
        "fsId": {
          "mountpoint": "/var/lib/skiff/\u003cstore\u003e\u0026"
        },
        "inodesUsed": {
          "value": "7"
        },
        "timestamp": "1700000000000000000",
        "usedBytes": {
          "value": "42"
        }
      }
    ]
  }
}"#;
        assert_eq!(status.pretty(Escape::GoHtmlSafe), expected);
    }

    #[test]
    fn control_characters_are_escaped() {
        let value = Json::str("a\"b\\c\nd\u{1}");
        assert_eq!(value.pretty(Escape::Protojson), r#""a\"b\\c\nd\u0001""#);
    }

    #[test]
    fn yaml_keys_are_sorted() {
        let value = Json::object([
            ("b", Json::int64(5)),
            ("a", Json::Array(vec![Json::str("x")])),
            ("c", Json::Array(vec![])),
        ]);
        assert_eq!(value.to_yaml(), "a:\n- x\nb: '5'\nc: []\n");
    }
}
