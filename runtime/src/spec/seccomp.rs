//! Seccomp: which profile a container gets, and the reading of profiles.
//!
//! Profiles are JSON in the format Docker, containerd and kubelet's
//! Localhost profiles use: `defaultAction`, `architectures` or `archMap`,
//! and `syscalls` rules that may be conditional on the architecture
//! (`includes`/`excludes.arches`, Go names such as `amd64`), on the
//! container's capabilities (`caps`) and on the kernel (`minKernel`).
//! RuntimeDefault is such a profile, embedded (`seccomp_default.json`): an
//! allow-list modelled on Docker's and containerd's default — everything a
//! normal program needs, namespace and mount operations only with
//! CAP_SYS_ADMIN, `clone3` answering ENOSYS without it so that libc falls
//! back to `clone`, whose namespace flags are then filtered.
//!
//! Choice (containerd's): privileged → none; the `seccomp` field, else the
//! deprecated `seccomp_profile_path` (`runtime/default`, `docker/default`,
//! `unconfined`, `localhost/<path>`; empty = unconfined).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use k8s_cri::v1::LinuxContainerSecurityContext;
use k8s_cri::v1::security_profile::ProfileType;
use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg,
    LinuxSeccompFilterFlag, LinuxSyscall,
};
use serde::Deserialize;

use super::SpecError;

const SC: &str = "linux.security_context";

/// The embedded RuntimeDefault profile.
const DEFAULT_PROFILE: &str = include_str!("seccomp_default.json");

/// The native seccomp architecture and Go's name for it (used by profiles).
#[cfg(target_arch = "x86_64")]
const NATIVE: (&str, &str) = ("SCMP_ARCH_X86_64", "amd64");
#[cfg(target_arch = "aarch64")]
const NATIVE: (&str, &str) = ("SCMP_ARCH_AARCH64", "arm64");
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const NATIVE: (&str, &str) = ("SCMP_ARCH_NATIVE", "unknown");

/// The profile the request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Choice {
    Unconfined,
    RuntimeDefault,
    Localhost { path: PathBuf, field: String },
}

/// The container's seccomp filter, `None` for unconfined.
pub(crate) fn container_seccomp(
    sc: Option<&LinuxContainerSecurityContext>,
    caps: &Capabilities,
    profile_root: &Path,
) -> Result<Option<LinuxSeccomp>, SpecError> {
    let Some(sc) = sc else {
        return Ok(None);
    };
    if sc.privileged {
        return Ok(None);
    }
    match choice(sc, profile_root)? {
        Choice::Unconfined => Ok(None),
        Choice::RuntimeDefault => {
            profile_to_oci(DEFAULT_PROFILE, caps, kernel_release().as_deref())
                .map(Some)
                .map_err(|e| {
                    SpecError::invalid(format!("{SC}.seccomp"), format!("built-in profile: {e}"))
                })
        }
        Choice::Localhost { path, field } => {
            let text = fs::read_to_string(&path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => SpecError::invalid(
                    field.clone(),
                    format!("seccomp profile {} not found", path.display()),
                ),
                _ => SpecError::io("read seccomp profile", &path, e),
            })?;
            profile_to_oci(&text, caps, kernel_release().as_deref())
                .map(Some)
                .map_err(|e| {
                    SpecError::invalid(field, format!("seccomp profile {}: {e}", path.display()))
                })
        }
    }
}

fn choice(sc: &LinuxContainerSecurityContext, profile_root: &Path) -> Result<Choice, SpecError> {
    if let Some(profile) = &sc.seccomp {
        let field = format!("{SC}.seccomp.localhost_ref");
        let kind = ProfileType::try_from(profile.profile_type).map_err(|_| {
            SpecError::invalid(
                format!("{SC}.seccomp.profile_type"),
                format!("unknown profile type {}", profile.profile_type),
            )
        })?;
        if kind != ProfileType::Localhost && !profile.localhost_ref.is_empty() {
            return Err(SpecError::invalid(
                field,
                "localhost_ref must only be set when profile_type is Localhost",
            ));
        }
        return Ok(match kind {
            ProfileType::Unconfined => Choice::Unconfined,
            ProfileType::RuntimeDefault => Choice::RuntimeDefault,
            ProfileType::Localhost => {
                let reference = profile
                    .localhost_ref
                    .strip_prefix("localhost/")
                    .unwrap_or(&profile.localhost_ref);
                localhost(reference, profile_root, field)?
            }
        });
    }
    #[allow(deprecated)]
    let path = sc.seccomp_profile_path.as_str();
    let field = format!("{SC}.seccomp_profile_path");
    match path {
        "" | "unconfined" => Ok(Choice::Unconfined),
        "runtime/default" | "docker/default" => Ok(Choice::RuntimeDefault),
        other => match other.strip_prefix("localhost/") {
            Some(reference) => localhost(reference, profile_root, field),
            None => Err(SpecError::invalid(
                field,
                format!("unknown seccomp profile {other:?}"),
            )),
        },
    }
}

/// A Localhost profile: an absolute path, or one relative to the seccomp root.
fn localhost(reference: &str, profile_root: &Path, field: String) -> Result<Choice, SpecError> {
    if reference.is_empty() {
        return Err(SpecError::invalid(
            field,
            "a Localhost profile needs a path",
        ));
    }
    let path = Path::new(reference);
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        profile_root.join(path)
    };
    Ok(Choice::Localhost { path, field })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    /// Docker's oldest format names one syscall per rule.
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// Turns a profile into the OCI filter for a container holding `caps` on a
/// kernel of release `kernel` (`None`: assume new enough).
fn profile_to_oci(
    text: &str,
    caps: &Capabilities,
    kernel: Option<&str>,
) -> Result<LinuxSeccomp, String> {
    let profile: Profile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let arch_names: Vec<String> = if !profile.architectures.is_empty() {
        profile.architectures.clone()
    } else {
        profile
            .arch_map
            .iter()
            .filter(|m| m.architecture == NATIVE.0)
            .flat_map(|m| {
                std::iter::once(m.architecture.clone()).chain(m.sub_architectures.clone())
            })
            .collect()
    };
    let mut arches: Vec<Arch> = Vec::with_capacity(arch_names.len());
    for name in &arch_names {
        match serde_json::from_value::<Arch>(serde_json::Value::String(name.clone())) {
            Ok(a) => arches.push(a),
            Err(_) => tracing::warn!(arch = %name, "unknown seccomp architecture skipped"),
        }
    }

    let mut syscalls = Vec::with_capacity(profile.syscalls.len());
    for rule in profile.syscalls {
        if !applies(&rule, caps, kernel)? {
            continue;
        }
        let mut names = rule.names;
        names.extend(rule.name);
        if names.is_empty() {
            continue;
        }
        let mut s = LinuxSyscall::default();
        s.set_names(names);
        s.set_action(rule.action);
        s.set_errno_ret(rule.errno_ret);
        s.set_args(rule.args.filter(|a| !a.is_empty()));
        syscalls.push(s);
    }

    let mut out = LinuxSeccomp::default();
    out.set_default_action(profile.default_action);
    out.set_default_errno_ret(profile.default_errno_ret);
    out.set_architectures((!arches.is_empty()).then_some(arches));
    out.set_flags((!profile.flags.is_empty()).then_some(profile.flags));
    out.set_syscalls(Some(syscalls));
    Ok(out)
}

/// Whether a rule's `includes` hold and its `excludes` do not.
fn applies(rule: &Rule, caps: &Capabilities, kernel: Option<&str>) -> Result<bool, String> {
    let has_cap = |name: &String| -> Result<bool, String> {
        let bare = name.trim_start_matches("CAP_");
        let cap: Capability = bare
            .parse()
            .map_err(|_| format!("unknown capability {name:?} in a rule"))?;
        Ok(caps.contains(&cap))
    };
    let inc = &rule.includes;
    if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == NATIVE.1) {
        return Ok(false);
    }
    for cap in &inc.caps {
        if !has_cap(cap)? {
            return Ok(false);
        }
    }
    if let (Some(min), Some(kernel)) = (&inc.min_kernel, kernel)
        && version(kernel) < version(min)
    {
        return Ok(false);
    }
    let exc = &rule.excludes;
    if exc.arches.iter().any(|a| a == NATIVE.1) {
        return Ok(false);
    }
    for cap in &exc.caps {
        if has_cap(cap)? {
            return Ok(false);
        }
    }
    if let (Some(min), Some(kernel)) = (&exc.min_kernel, kernel)
        && version(kernel) >= version(min)
    {
        return Ok(false);
    }
    Ok(true)
}

/// `6.18.0-1-amd64` → (6, 18).
fn version(release: &str) -> (u32, u32) {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

fn kernel_release() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::SecurityProfile;

    fn with_profile(kind: ProfileType, localhost_ref: &str) -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext {
            seccomp: Some(SecurityProfile {
                profile_type: kind as i32,
                localhost_ref: localhost_ref.into(),
            }),
            ..Default::default()
        }
    }

    #[allow(deprecated)]
    fn with_path(path: &str) -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext {
            seccomp_profile_path: path.into(),
            ..Default::default()
        }
    }

    fn default_caps() -> Capabilities {
        super::super::security::DEFAULT_CAPABILITIES
            .into_iter()
            .collect()
    }

    /// Names allowed (action ALLOW, no argument filter) by a filter.
    fn allowed(s: &LinuxSeccomp) -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
            .flat_map(|r| r.names().clone())
            .collect()
    }

    const PROFILE: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": []},
            {"name": "exit", "action": "SCMP_ACT_ALLOW"},
            {"names": ["new_thing"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
            {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_KILL"]}}
        ]
    }"#;

    #[test]
    fn profile_choice_table() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("mine.json"), PROFILE).unwrap();
        let abs = root.path().join("mine.json").to_string_lossy().into_owned();
        let caps = default_caps();
        let confined = |sc: &LinuxContainerSecurityContext| {
            container_seccomp(Some(sc), &caps, root.path())
                .unwrap_or_else(|e| panic!("{sc:?}: {e}"))
                .is_some()
        };
        assert!(
            container_seccomp(None, &caps, root.path())
                .unwrap()
                .is_none()
        );
        assert!(confined(&with_profile(ProfileType::RuntimeDefault, "")));
        assert!(!confined(&with_profile(ProfileType::Unconfined, "")));
        assert!(confined(&with_profile(ProfileType::Localhost, &abs)));
        assert!(confined(&with_profile(ProfileType::Localhost, "mine.json")));
        assert!(confined(&with_profile(
            ProfileType::Localhost,
            "localhost/mine.json"
        )));
        assert!(!confined(&with_path("")));
        assert!(!confined(&with_path("unconfined")));
        assert!(confined(&with_path("runtime/default")));
        assert!(confined(&with_path("docker/default")));
        assert!(confined(&with_path(&format!("localhost/{abs}"))));
        let privileged = LinuxContainerSecurityContext {
            privileged: true,
            ..with_profile(ProfileType::RuntimeDefault, "")
        };
        assert!(!confined(&privileged));
    }

    #[test]
    fn bad_profiles_name_the_field() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("broken.json"), "{not json").unwrap();
        let caps = default_caps();
        let cases = [
            (
                with_profile(ProfileType::Localhost, "missing.json"),
                "linux.security_context.seccomp.localhost_ref",
                "not found",
            ),
            (
                with_profile(ProfileType::Localhost, "/nowhere/x.json"),
                "linux.security_context.seccomp.localhost_ref",
                "/nowhere/x.json",
            ),
            (
                with_profile(ProfileType::Localhost, "broken.json"),
                "linux.security_context.seccomp.localhost_ref",
                "broken.json",
            ),
            (
                with_profile(ProfileType::Localhost, ""),
                "linux.security_context.seccomp.localhost_ref",
                "needs a path",
            ),
            (
                with_profile(ProfileType::RuntimeDefault, "x.json"),
                "linux.security_context.seccomp.localhost_ref",
                "only",
            ),
            (
                LinuxContainerSecurityContext {
                    seccomp: Some(SecurityProfile {
                        profile_type: 9,
                        localhost_ref: String::new(),
                    }),
                    ..Default::default()
                },
                "linux.security_context.seccomp.profile_type",
                "9",
            ),
            (
                with_path("localhost/missing.json"),
                "linux.security_context.seccomp_profile_path",
                "not found",
            ),
            (
                with_path("weird"),
                "linux.security_context.seccomp_profile_path",
                "weird",
            ),
        ];
        for (sc, field, needle) in cases {
            let err = container_seccomp(Some(&sc), &caps, root.path()).unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }

    #[test]
    fn runtime_default_depends_on_capabilities() {
        let plain = profile_to_oci(DEFAULT_PROFILE, &default_caps(), Some("6.18.0")).unwrap();
        assert_eq!(plain.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(plain.default_errno_ret(), Some(1));
        let names = allowed(&plain);
        for needed in [
            "read",
            "execve",
            "openat",
            "clone3",
            "epoll_pwait",
            "rseq",
            "socket",
            "chroot",
        ] {
            if needed == "clone3" {
                assert!(
                    !names.iter().any(|n| n == needed),
                    "clone3 must not be allowed"
                );
            } else {
                assert!(names.iter().any(|n| n == needed), "{needed} missing");
            }
        }
        for forbidden in [
            "mount",
            "unshare",
            "setns",
            "ptrace",
            "reboot",
            "bpf",
            "init_module",
            "kexec_load",
        ] {
            assert!(!names.iter().any(|n| n == forbidden), "{forbidden} allowed");
        }
        let rules = plain.syscalls().clone().unwrap();
        let clone3 = rules
            .iter()
            .find(|r| r.names() == &["clone3".to_string()])
            .unwrap();
        assert_eq!(
            (clone3.action(), clone3.errno_ret()),
            (LinuxSeccompAction::ScmpActErrno, Some(38))
        );
        let clone = rules
            .iter()
            .find(|r| r.names() == &["clone".to_string()] && r.args().is_some())
            .unwrap();
        assert_eq!(clone.args().as_ref().unwrap()[0].value(), 0x7E02_0000);

        let mut admin = default_caps();
        admin.insert(Capability::SysAdmin);
        admin.insert(Capability::SysPtrace);
        let names = allowed(&profile_to_oci(DEFAULT_PROFILE, &admin, None).unwrap());
        for now_allowed in ["mount", "unshare", "setns", "clone", "clone3", "ptrace"] {
            assert!(
                names.iter().any(|n| n == now_allowed),
                "{now_allowed} not allowed"
            );
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn runtime_default_architectures() {
        let s = profile_to_oci(DEFAULT_PROFILE, &default_caps(), None).unwrap();
        assert_eq!(
            s.architectures().clone().unwrap(),
            vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
        );
        assert!(allowed(&s).iter().any(|n| n == "arch_prctl"));
        assert!(!allowed(&s).iter().any(|n| n == "set_tls"));
    }

    #[test]
    fn docker_format_details() {
        let s = profile_to_oci(PROFILE, &default_caps(), Some("6.1.0")).unwrap();
        // The unknown architecture is skipped; flags pass through.
        assert_eq!(
            s.architectures().clone().unwrap(),
            vec![Arch::ScmpArchX86_64]
        );
        assert_eq!(
            s.flags().clone().unwrap(),
            vec![LinuxSeccompFilterFlag::SeccompFilterFlagLog]
        );
        let names = allowed(&s);
        assert_eq!(names, vec!["read", "write", "exit"]);
        let newer = profile_to_oci(PROFILE, &Capabilities::new(), Some("100.1")).unwrap();
        assert_eq!(
            allowed(&newer),
            vec!["read", "write", "exit", "new_thing", "kill"]
        );
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(version("6.18.0-1-amd64"), (6, 18));
        assert_eq!(version("5.4"), (5, 4));
        assert!(version("6.2") > version("5.19"));
    }
}
