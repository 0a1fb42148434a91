//! Image pull secrets: `kubernetes.io/dockerconfigjson` and `dockercfg`
//! Secrets become CRI `AuthConfig`s for the images whose registry (and
//! path prefix) they name, most specific first, as kubelet's keyring
//! matches them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_cri::v1::AuthConfig;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

/// One registry entry of a docker config.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The key as written (`https://index.docker.io/v1/`, `reg:5000/team`).
    key: String,
    username: String,
    password: String,
    auth: String,
}

/// The entries of a pull secret (unknown types and bad JSON give none).
fn entries(secret: &Secret) -> Vec<Entry> {
    let (key, nested) = match secret.type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") => (".dockerconfigjson", true),
        Some("kubernetes.io/dockercfg") => (".dockercfg", false),
        _ => return Vec::new(),
    };
    // `stringData` too: an apiserver that has not merged it into `data`.
    let json = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.clone().into_bytes())
        });
    let Some(value) = json.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) else {
        return Vec::new();
    };
    let map = if nested { &value["auths"] } else { &value };
    let Some(map) = map.as_object() else {
        return Vec::new();
    };
    map.iter()
        .map(|(key, entry)| {
            let field = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
            let mut e = Entry {
                key: key.clone(),
                username: field("username"),
                password: field("password"),
                auth: field("auth"),
            };
            if e.username.is_empty()
                && let Ok(decoded) = STANDARD.decode(e.auth.as_bytes())
                && let Ok(text) = String::from_utf8(decoded)
                && let Some((user, password)) = text.split_once(':')
            {
                e.username = user.to_owned();
                e.password = password.to_owned();
            }
            e
        })
        .collect()
}

/// (host, path) of a registry key: scheme and the `/v1/`, `/v2/` API
/// suffixes dropped; Docker Hub's names become `index.docker.io`.
fn parse_key(key: &str) -> (String, String) {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    let key = key
        .strip_suffix("/v1")
        .or_else(|| key.strip_suffix("/v2"))
        .unwrap_or(key);
    let (host, path) = key.split_once('/').unwrap_or((key, ""));
    (docker_hub(host), path.to_owned())
}

fn docker_hub(host: &str) -> String {
    match host {
        "docker.io" | "registry-1.docker.io" => "index.docker.io".to_owned(),
        other => other.to_owned(),
    }
}

/// (registry host, repository path) of an image reference.
fn parse_image(image: &str) -> (String, String) {
    let name = image.split('@').next().unwrap_or(image);
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let is_host = first.contains('.') || first.contains(':') || first == "localhost";
    let (host, path) = if is_host {
        (first.to_owned(), rest.to_owned())
    } else if first.is_empty() {
        ("docker.io".to_owned(), format!("library/{rest}"))
    } else {
        ("docker.io".to_owned(), format!("{first}/{rest}"))
    };
    // Drop the tag (a colon after the last slash).
    let path = match path.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_owned(),
        _ => path,
    };
    (docker_hub(&host), path)
}

/// Whether host pattern `glob` (`*.example.com` style, per label) matches
/// `host`; ports must be equal.
fn host_matches(glob: &str, host: &str) -> bool {
    let (glob_name, glob_port) = glob.split_once(':').unwrap_or((glob, ""));
    let (name, port) = host.split_once(':').unwrap_or((host, ""));
    if glob_port != port {
        return false;
    }
    let glob_labels: Vec<&str> = glob_name.split('.').collect();
    let labels: Vec<&str> = name.split('.').collect();
    glob_labels.len() == labels.len()
        && glob_labels
            .iter()
            .zip(&labels)
            .all(|(g, l)| label_matches(g, l))
}

fn label_matches(glob: &str, label: &str) -> bool {
    match glob.split_once('*') {
        None => glob == label,
        Some((prefix, suffix)) => {
            label.len() >= prefix.len() + suffix.len()
                && label.starts_with(prefix)
                && label.ends_with(suffix)
        }
    }
}

fn path_matches(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The credentials `secrets` hold for `image`, most specific key first.
pub fn for_image(image: &str, secrets: &[Secret]) -> Vec<AuthConfig> {
    let (host, path) = parse_image(image);
    let mut matches: Vec<(usize, Entry)> = secrets
        .iter()
        .flat_map(entries)
        .filter_map(|entry| {
            let (key_host, key_path) = parse_key(&entry.key);
            (host_matches(&key_host, &host) && path_matches(&key_path, &path))
                .then(|| (key_host.len() + key_path.len(), entry))
        })
        .collect();
    matches.sort_by_key(|m| std::cmp::Reverse(m.0));
    let mut auths: Vec<AuthConfig> = Vec::new();
    for (_, entry) in matches {
        let auth = AuthConfig {
            username: entry.username,
            password: entry.password,
            auth: entry.auth,
            server_address: parse_key(&entry.key).0,
            ..Default::default()
        };
        if !auths.contains(&auth) {
            auths.push(auth);
        }
    }
    auths
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(type_: &str, key: &str, json: &str) -> Secret {
        Secret {
            type_: Some(type_.into()),
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(json.as_bytes().to_vec()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn dockerconfigjson_matches_the_registry_of_the_image() {
        let s = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            r#"{"auths":{"127.0.0.1:5000":{"username":"u","password":"p"},
                "other.example.com":{"auth":"eDp5"}}}"#,
        );
        let auths = for_image("127.0.0.1:5000/team/app:1.0", std::slice::from_ref(&s));
        assert_eq!(auths.len(), 1);
        assert_eq!(auths[0].username, "u");
        assert_eq!(auths[0].password, "p");
        assert_eq!(auths[0].server_address, "127.0.0.1:5000");
        let auths = for_image("other.example.com/app", std::slice::from_ref(&s));
        assert_eq!(
            (auths[0].username.as_str(), auths[0].password.as_str()),
            ("x", "y")
        );
        assert!(
            for_image("127.0.0.1:5001/app", &[s]).is_empty(),
            "ports differ"
        );
    }

    #[test]
    fn docker_hub_keys_match_short_names() {
        let s = secret(
            "kubernetes.io/dockercfg",
            ".dockercfg",
            r#"{"https://index.docker.io/v1/":{"username":"hub","password":"pw"}}"#,
        );
        assert_eq!(for_image("busybox", std::slice::from_ref(&s)).len(), 1);
        assert_eq!(for_image("docker.io/library/busybox:1.36", &[s]).len(), 1);
    }

    #[test]
    fn globs_and_paths_are_matched_most_specific_first() {
        let s = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            r#"{"auths":{"*.example.com":{"username":"wild","password":"1"},
                "reg.example.com/team":{"username":"team","password":"2"},
                "reg.example.com/other":{"username":"other","password":"3"}}}"#,
        );
        let users: Vec<String> = for_image("reg.example.com/team/app:v1", &[s])
            .into_iter()
            .map(|a| a.username)
            .collect();
        assert_eq!(users, ["team", "wild"]);
        assert!(for_image("example.com/app", &[]).is_empty());
    }

    #[test]
    fn other_secret_types_hold_no_credentials() {
        let s = secret("Opaque", ".dockerconfigjson", r#"{"auths":{"a.b":{}}}"#);
        assert!(for_image("a.b/app", &[s]).is_empty());
    }
}
