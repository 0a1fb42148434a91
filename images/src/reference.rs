//! Image references (`busybox`, `ghcr.io/org/app:v1@sha256:…`), parsed by the
//! distribution reference grammar and normalized as containerd and docker do.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

use crate::digest::Digest;

/// The registry that names without a registry component belong to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag added when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
const OFFICIAL_NAMESPACE: &str = "library/";
const MAX_NAME_LEN: usize = 255;

static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    let label = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
    let host = format!(r"(?:{label}(?:\.{label})*|\[[a-fA-F0-9:]+\])");
    Regex::new(&format!(r"^{host}(?::[0-9]+)?$")).expect("domain pattern is valid")
});
static PATH_COMPONENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").expect("path component pattern is valid")
});
static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("tag pattern is valid")
});
static IDENTIFIER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-f0-9]{64}$").expect("identifier pattern is valid"));

/// Why an image reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    input: String,
    reason: String,
}

impl ReferenceError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        Self {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }

    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A fully qualified image reference.
///
/// Parsing normalizes as docker does: `busybox` is
/// `docker.io/library/busybox:latest`. When both a tag and a digest are given
/// the digest decides what is pulled; the tag is kept for display.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path within the registry, e.g. `library/busybox`.
    pub repository: String,
    /// Tag, if any (`latest` is added when neither tag nor digest is given).
    pub tag: Option<String>,
    /// Digest, if the reference pins one.
    pub digest: Option<Digest>,
}

impl Reference {
    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn target(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !TAG.is_match(tag) {
            return Err(ReferenceError::new(
                tag,
                "invalid tag: must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
            ));
        }
        Ok(Self {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest`, without a tag (as containerd
    /// records repo digests: `name@sha256:…`).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The short form docker prints: `busybox:latest`, `user/app:v1`,
    /// `ghcr.io/org/app:v1` (registries other than docker.io stay).
    pub fn familiar(&self) -> String {
        let mut out = if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix(OFFICIAL_NAMESPACE) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        };
        push_target(&mut out, self);
        out
    }
}

fn push_target(out: &mut String, reference: &Reference) {
    if let Some(tag) = &reference.tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = &reference.digest {
        out.push('@');
        out.push_str(&digest.to_string());
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        push_target(&mut out, self);
        f.write_str(&out)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| ReferenceError::new(input, reason);
        if input.is_empty() {
            return Err(fail("must not be empty"));
        }
        if IDENTIFIER.is_match(input) {
            return Err(fail(
                "a 64-character hexadecimal string is an image ID, not a repository name",
            ));
        }

        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                let digest = digest.parse::<Digest>().map_err(|e| fail(&e.to_string()))?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A ':' after the last '/' separates the tag; an earlier one is a port.
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if rest[colon..].find('/').is_none() => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        if let Some(tag) = tag
            && !TAG.is_match(tag)
        {
            return Err(fail(&format!(
                "invalid tag {tag:?}: must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
            )));
        }

        let (registry, remote) = split_registry(name);
        if registry.is_empty() || remote.is_empty() {
            return Err(fail("invalid reference format"));
        }
        if !DOMAIN.is_match(registry) {
            return Err(fail(&format!("invalid registry host {registry:?}")));
        }
        let registry = if registry == LEGACY_DEFAULT_REGISTRY {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !remote.contains('/') {
            format!("{OFFICIAL_NAMESPACE}{remote}")
        } else {
            remote.to_owned()
        };
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(fail("repository name must be lowercase"));
        }
        if let Some(bad) = repository.split('/').find(|c| !PATH_COMPONENT.is_match(c)) {
            return Err(fail(&format!(
                "invalid repository path component {bad:?}: use lowercase letters, digits and single separators (. _ __ -)"
            )));
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(fail(&format!(
                "repository name must not be longer than {MAX_NAME_LEN} characters"
            )));
        }

        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_owned()),
        };
        Ok(Self {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }
}

/// Splits `name` into (registry, remote name) by docker's rule: the first
/// component is a registry when it looks like a host (has `.` or `:`, is
/// `localhost`, or has upper-case letters, which repositories may not).
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn valid_references_normalize_like_docker() {
        let d = format!("sha256:{HEX}");
        let cases: Vec<(String, String, &str)> = vec![
            (
                "busybox".into(),
                "docker.io/library/busybox:latest".into(),
                "busybox:latest",
            ),
            (
                "busybox:1.36".into(),
                "docker.io/library/busybox:1.36".into(),
                "busybox:1.36",
            ),
            (
                "user/app".into(),
                "docker.io/user/app:latest".into(),
                "user/app:latest",
            ),
            (
                "docker.io/busybox".into(),
                "docker.io/library/busybox:latest".into(),
                "busybox:latest",
            ),
            (
                "index.docker.io/user/app:v1".into(),
                "docker.io/user/app:v1".into(),
                "user/app:v1",
            ),
            (
                "library/busybox".into(),
                "docker.io/library/busybox:latest".into(),
                "busybox:latest",
            ),
            (
                "127.0.0.1:5000/x/y:tag".into(),
                "127.0.0.1:5000/x/y:tag".into(),
                "127.0.0.1:5000/x/y:tag",
            ),
            (
                "localhost/a".into(),
                "localhost/a:latest".into(),
                "localhost/a:latest",
            ),
            (
                "localhost:5000/a/b".into(),
                "localhost:5000/a/b:latest".into(),
                "localhost:5000/a/b:latest",
            ),
            (
                "ghcr.io/org/deep/path/app:v1.2_3-rc".into(),
                "ghcr.io/org/deep/path/app:v1.2_3-rc".into(),
                "ghcr.io/org/deep/path/app:v1.2_3-rc",
            ),
            (
                format!("busybox@{d}"),
                format!("docker.io/library/busybox@{d}"),
                "busybox@",
            ),
            (
                format!("busybox:1.36@{d}"),
                format!("docker.io/library/busybox:1.36@{d}"),
                "busybox:1.36@",
            ),
            (
                "[::1]:5000/app".into(),
                "[::1]:5000/app:latest".into(),
                "[::1]:5000/app:latest",
            ),
            (
                "ab_c__d--e/f.g".into(),
                "docker.io/ab_c__d--e/f.g:latest".into(),
                "ab_c__d--e/f.g:latest",
            ),
        ];
        for (input, want, familiar) in cases {
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want, "{input}");
            assert!(
                r.familiar().starts_with(familiar),
                "{input}: familiar {}",
                r.familiar()
            );
            assert_eq!(
                r.to_string().parse::<Reference>().unwrap(),
                r,
                "{input} round-trips"
            );
        }
    }

    #[test]
    fn fields_and_helpers() {
        let r: Reference = format!("ghcr.io/org/app:v1@sha256:{HEX}").parse().unwrap();
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.repository, "org/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.name(), "ghcr.io/org/app");
        assert_eq!(
            r.target(),
            format!("sha256:{HEX}"),
            "the digest wins for resolution"
        );

        let plain: Reference = "busybox".parse().unwrap();
        assert_eq!(plain.target(), "latest");
        assert_eq!(
            plain.with_tag("musl").unwrap().to_string(),
            "docker.io/library/busybox:musl"
        );
        assert!(plain.with_tag("-bad").is_err());
        let pinned = plain.with_digest(hex_digest());
        assert_eq!(
            pinned.to_string(),
            format!("docker.io/library/busybox@sha256:{HEX}")
        );
        assert_eq!(pinned.familiar(), format!("busybox@sha256:{HEX}"));
        let nested: Reference = "library/x/y".parse().unwrap();
        assert_eq!(nested.familiar(), "library/x/y:latest");
    }

    fn hex_digest() -> Digest {
        format!("sha256:{HEX}").parse().unwrap()
    }

    #[test]
    fn invalid_references_are_refused_with_a_reason() {
        let long = format!("a/{}", "b".repeat(260));
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "must not be empty"),
            ("Foo".into(), "repository name must be lowercase"),
            (
                "docker.io/Library/busybox".into(),
                "repository name must be lowercase",
            ),
            ("busybox:".into(), "invalid tag"),
            ("busybox:-x".into(), "invalid tag"),
            (format!("busybox:{}", "t".repeat(129)), "invalid tag"),
            ("busybox@sha256:abc".into(), "invalid digest"),
            (
                format!("busybox@sha512:{HEX}"),
                "unsupported digest algorithm",
            ),
            ("a//b".into(), "invalid repository path component"),
            ("a/b_/c".into(), "invalid repository path component"),
            ("-a/b".into(), "invalid repository path component"),
            ("reg.io/".into(), "invalid reference format"),
            ("/busybox".into(), "invalid repository path component"),
            ("bad_host.io/app".into(), "invalid registry host"),
            ("ex ample".into(), "invalid repository path component"),
            (HEX.into(), "image ID"),
            (long, "longer than 255"),
        ];
        for (input, reason) in cases {
            let err = input.parse::<Reference>().expect_err(&input);
            assert!(err.to_string().contains(reason), "{input:?}: got {err}");
            assert_eq!(err.input(), input);
        }
        let err = "Foo".parse::<Reference>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid image reference \"Foo\": repository name must be lowercase"
        );
    }

    #[test]
    fn upper_case_first_component_is_a_registry() {
        let r: Reference = "Registry/app".parse().unwrap();
        assert_eq!(r.registry, "Registry");
        assert_eq!(r.repository, "app");
    }
}
