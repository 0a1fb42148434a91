//! Platforms (`linux/arm64`, `linux/arm/v7`) and choosing the manifest of a
//! multi-platform image that this node can run, by containerd's rules.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::Descriptor;

/// An OS/architecture/variant triple, normalized as containerd normalizes it
/// (`aarch64` → `arm64`, `arm64/v8` → `arm64`, `arm` → `arm/v7`, ...).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, e.g. `linux`, `wasi`.
    pub os: String,
    /// CPU architecture in GOARCH spelling, e.g. `amd64`, `arm64`, `wasm`.
    pub architecture: String,
    /// CPU variant, e.g. `v7` for 32-bit ARM; `None` where the default applies.
    pub variant: Option<String>,
}

/// Why a platform string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/architecture[/variant]")]
pub struct PlatformParseError(String);

impl Platform {
    /// A normalized platform.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let os = match os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            other => other.to_owned(),
        };
        let architecture = architecture.to_ascii_lowercase();
        let variant = variant
            .map(str::to_ascii_lowercase)
            .filter(|v| !v.is_empty());
        let (architecture, variant) = normalize_arch(&architecture, variant.as_deref());
        Self {
            os,
            architecture,
            variant,
        }
    }

    /// The platform of this node (the binary's target).
    pub fn host() -> Self {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Self::new(std::env::consts::OS, arch, variant)
    }

    /// The platform an OCI index entry declares.
    pub fn from_oci(platform: &oci_spec::image::Platform) -> Self {
        Self::new(
            &platform.os().to_string(),
            &platform.architecture().to_string(),
            platform.variant().as_deref(),
        )
    }

    /// The platforms this one can also run, best first, starting with itself
    /// (containerd's `platforms.Only`): older amd64 levels and 386 on amd64,
    /// older ARM variants on ARM, 32-bit ARM on arm64.
    fn compatible(&self) -> Vec<Platform> {
        let mut out = vec![self.clone()];
        let version = |v: &Option<String>| {
            v.as_deref()
                .and_then(|v| v.strip_prefix('v')?.parse::<u32>().ok())
        };
        let with = |arch: &str, variant: Option<String>| Platform {
            os: self.os.clone(),
            architecture: arch.to_owned(),
            variant,
        };
        match self.architecture.as_str() {
            "amd64" => {
                if let Some(level) = version(&self.variant) {
                    for lower in (1..level).rev() {
                        out.push(Platform::new(&self.os, "amd64", Some(&format!("v{lower}"))));
                    }
                }
                out.push(with("386", None));
            }
            "arm" => {
                if let Some(level) = version(&self.variant) {
                    for lower in (5..level).rev() {
                        out.push(with("arm", Some(format!("v{lower}"))));
                    }
                }
            }
            "arm64" => {
                let variant = self.variant.clone().unwrap_or_else(|| "v8".to_owned());
                out.extend(with("arm", Some(variant)).compatible());
            }
            _ => {}
        }
        out
    }
}

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let owned = |v: &str| Some(v.to_owned());
    match arch {
        "i386" | "386" => ("386".to_owned(), variant.map(str::to_owned)),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64".to_owned(),
            variant.filter(|v| *v != "v1").map(str::to_owned),
        ),
        "aarch64" | "arm64" => {
            let variant = match variant {
                None | Some("8" | "v8" | "v8.0") => None,
                Some("9" | "9.0" | "v9.0") => owned("v9"),
                Some(v) => Some(if v.starts_with('v') {
                    v.to_owned()
                } else {
                    format!("v{v}")
                }),
            };
            ("arm64".to_owned(), variant)
        }
        "armhf" => ("arm".to_owned(), owned("v7")),
        "armel" => ("arm".to_owned(), owned("v6")),
        "arm" => {
            let variant = match variant {
                None | Some("7" | "v7") => owned("v7"),
                Some(v @ ("5" | "6" | "8")) => Some(format!("v{v}")),
                Some(v) => owned(v),
            };
            ("arm".to_owned(), variant)
        }
        other => (other.to_owned(), variant.map(str::to_owned)),
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Platform({self})")
    }
}

impl FromStr for Platform {
    type Err = PlatformParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(PlatformParseError(s.to_owned()));
        }
        match parts.as_slice() {
            [os, arch] => Ok(Self::new(os, arch, None)),
            [os, arch, variant] => Ok(Self::new(os, arch, Some(variant))),
            _ => Err(PlatformParseError(s.to_owned())),
        }
    }
}

/// Picks, from an image index, the manifest this node should run.
///
/// Holds the accepted platforms in order of preference; each is expanded with
/// the platforms it can also run (see containerd's `platforms.Only`).
/// [`PlatformMatcher::node`] accepts Wasm images after the host's own.
#[derive(Clone, PartialEq, Eq)]
pub struct PlatformMatcher {
    preferred: Vec<Platform>,
    accepted: Vec<Platform>,
}

impl PlatformMatcher {
    /// Accepts `preferred` platforms (best first) and what each can also run.
    pub fn new(preferred: Vec<Platform>) -> Self {
        let mut accepted: Vec<Platform> = Vec::new();
        for platform in &preferred {
            for candidate in platform.compatible() {
                if !accepted.contains(&candidate) {
                    accepted.push(candidate);
                }
            }
        }
        Self {
            preferred,
            accepted,
        }
    }

    /// Accepts what this node's CPU and OS run.
    pub fn host() -> Self {
        Self::new(vec![Platform::host()])
    }

    /// Accepts what a Skiff node runs: the host's platforms first, then
    /// `wasi/wasm` (the shim runs Wasm with wasmtime). So an index picks the
    /// node's own manifest when it has one, and its Wasm manifest otherwise.
    pub fn node() -> Self {
        Self::new(vec![Platform::host(), Platform::new("wasi", "wasm", None)])
    }

    /// The platforms asked for, best first (without the implied ones).
    pub fn preferred(&self) -> &[Platform] {
        &self.preferred
    }

    /// How good a match `platform` is: 0 is best, `None` is no match.
    pub fn rank(&self, platform: &Platform) -> Option<usize> {
        self.accepted.iter().position(|p| p == platform)
    }

    /// Whether `platform` can run here.
    pub fn matches(&self, platform: &Platform) -> bool {
        self.rank(platform).is_some()
    }

    /// The best entry of an index's `manifests`: the lowest rank, the first
    /// listed among equals. Entries without a platform are taken only when no
    /// entry declares a matching one (as containerd does).
    pub fn select<'a>(&self, manifests: &'a [Descriptor]) -> Option<&'a Descriptor> {
        let unranked = self.accepted.len();
        manifests
            .iter()
            .filter_map(|d| match d.platform() {
                Some(p) => self.rank(&Platform::from_oci(p)).map(|rank| (rank, d)),
                None => Some((unranked, d)),
            })
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, d)| d)
    }
}

impl Default for PlatformMatcher {
    fn default() -> Self {
        Self::host()
    }
}

impl fmt::Debug for PlatformMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.accepted.iter().map(ToString::to_string))
            .finish()
    }
}

impl fmt::Display for PlatformMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.preferred.iter().map(ToString::to_string).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::image::{DescriptorBuilder, MediaType, PlatformBuilder};

    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    fn entry(platform: Option<&str>, n: u8) -> Descriptor {
        let digest = format!("sha256:{}", format!("{n:02x}").repeat(32));
        let mut builder = DescriptorBuilder::default()
            .media_type(MediaType::ImageManifest)
            .size(1u64)
            .digest(oci_spec::image::Digest::from_str(&digest).unwrap());
        if let Some(platform) = platform {
            let parts: Vec<&str> = platform.split('/').collect();
            let mut pb = PlatformBuilder::default()
                .os(parts[0])
                .architecture(parts[1]);
            if let Some(variant) = parts.get(2) {
                pb = pb.variant(*variant);
            }
            builder = builder.platform(pb.build().unwrap());
        }
        builder.build().unwrap()
    }

    fn pick(matcher: &PlatformMatcher, entries: &[Descriptor]) -> Option<usize> {
        matcher
            .select(entries)
            .map(|d| entries.iter().position(|e| e == d).unwrap())
    }

    #[test]
    fn normalization_matches_containerd() {
        for (input, want) in [
            ("linux/x86_64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm64/8", "linux/arm64"),
            ("linux/arm64/v9.0", "linux/arm64/v9"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm/6", "linux/arm/v6"),
            ("Linux/AMD64", "linux/amd64"),
            ("linux/i386", "linux/386"),
            ("wasi/wasm", "wasi/wasm"),
        ] {
            assert_eq!(p(input).to_string(), want, "{input}");
        }
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn host_platform_is_normalized() {
        let host = Platform::host();
        assert_eq!(host.os, std::env::consts::OS);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.to_string(), "linux/amd64");
        }
        if cfg!(target_arch = "aarch64") {
            assert_eq!(host.to_string(), "linux/arm64");
        }
    }

    #[test]
    fn arm64_accepts_v8_or_no_variant_then_32_bit_arm() {
        let m = PlatformMatcher::new(vec![p("linux/arm64")]);
        assert!(m.matches(&p("linux/arm64/v8")));
        assert!(m.matches(&p("linux/arm64")));
        assert!(!m.matches(&p("linux/arm64/v9")));
        assert!(!m.matches(&p("linux/amd64")));
        assert!(m.rank(&p("linux/arm64")) < m.rank(&p("linux/arm/v7")));
        assert!(m.rank(&p("linux/arm/v7")) < m.rank(&p("linux/arm/v6")));
        assert!(m.matches(&p("linux/arm/v5")));

        let entries = [
            entry(Some("linux/amd64"), 1),
            entry(Some("linux/arm/v7"), 2),
            entry(Some("linux/arm64/v8"), 3),
        ];
        assert_eq!(pick(&m, &entries), Some(2));
    }

    #[test]
    fn arm_v7_falls_back_to_v6_then_v5() {
        let m = PlatformMatcher::new(vec![p("linux/arm/v7")]);
        let entries = [
            entry(Some("linux/arm/v5"), 1),
            entry(Some("linux/arm/v6"), 2),
            entry(Some("linux/arm64"), 3),
        ];
        assert_eq!(pick(&m, &entries), Some(1));
        assert_eq!(pick(&m, &entries[..1]), Some(0));
        assert!(!m.matches(&p("linux/arm/v8")));
        assert!(!m.matches(&p("linux/arm64")));
        let v6 = PlatformMatcher::new(vec![p("linux/arm/v6")]);
        assert!(!v6.matches(&p("linux/arm/v7")));
    }

    #[test]
    fn amd64_prefers_exact_then_386_and_ignores_unknown_entries() {
        let m = PlatformMatcher::new(vec![p("linux/amd64")]);
        let entries = [
            entry(Some("linux/386"), 1),
            entry(Some("unknown/unknown"), 2),
            entry(Some("linux/amd64"), 3),
            entry(Some("linux/amd64"), 4),
        ];
        assert_eq!(
            pick(&m, &entries),
            Some(2),
            "exact match wins, first among equals"
        );
        assert_eq!(pick(&m, &entries[..2]), Some(0));
        assert_eq!(pick(&m, &entries[1..2]), None);
        assert!(!m.matches(&p("windows/amd64")));
        let v3 = PlatformMatcher::new(vec![p("linux/amd64/v3")]);
        assert!(v3.rank(&p("linux/amd64/v2")) < v3.rank(&p("linux/amd64")));
    }

    #[test]
    fn entries_without_platform_are_a_last_resort() {
        let m = PlatformMatcher::new(vec![p("linux/amd64")]);
        let entries = [entry(None, 1), entry(Some("linux/386"), 2)];
        assert_eq!(pick(&m, &entries), Some(1));
        assert_eq!(pick(&m, &entries[..1]), Some(0));
    }

    #[test]
    fn a_node_prefers_its_own_platform_then_takes_wasm() {
        let m = PlatformMatcher::node();
        assert_eq!(m.preferred(), [Platform::host(), p("wasi/wasm")]);
        let host = Platform::host().to_string();
        let wasm_then_host = [entry(Some("wasi/wasm"), 1), entry(Some(&host), 2)];
        assert_eq!(pick(&m, &wasm_then_host), Some(1));
        let only_wasm = [entry(Some("wasi/wasm"), 1)];
        assert_eq!(pick(&m, &only_wasm), Some(0));
        let foreign_and_wasm = [entry(Some("windows/amd64"), 1), entry(Some("wasi/wasm"), 2)];
        assert_eq!(pick(&m, &foreign_and_wasm), Some(1));
        assert_eq!(pick(&m, &foreign_and_wasm[..1]), None);
        assert!(!PlatformMatcher::host().matches(&p("wasi/wasm")));
    }

    #[test]
    fn extra_platforms_come_after_the_first_in_preference() {
        let m = PlatformMatcher::new(vec![p("linux/amd64"), p("wasi/wasm")]);
        let entries = [entry(Some("wasi/wasm"), 1), entry(Some("linux/amd64"), 2)];
        assert_eq!(pick(&m, &entries), Some(1));
        assert_eq!(pick(&m, &entries[..1]), Some(0));
        assert_eq!(m.to_string(), "linux/amd64, wasi/wasm");
        assert!(m.rank(&p("linux/386")) < m.rank(&p("wasi/wasm")));
    }
}
