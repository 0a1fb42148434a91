//! Whole-spec tests: a realistic request through [`container_spec`], the
//! spec's JSON round trip, and libcontainer's own validation.

use std::fs;
use std::path::{Path, PathBuf};

use k8s_cri::v1::{
    Capability as CriCaps, ContainerConfig, ContainerMetadata, ImageSpec, Int64Value, KeyValue,
    LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount as CriMount, NamespaceMode,
    NamespaceOption, PodSandboxConfig, PodSandboxMetadata, SecurityProfile,
    security_profile::ProfileType,
};
use oci_spec::image::{ConfigBuilder, ImageConfiguration, ImageConfigurationBuilder};
use oci_spec::runtime::{Capability, LinuxNamespaceType, Spec};

use super::*;

/// A pod with one container, its rootfs and pod files in a tempdir.
struct Fixture {
    dir: tempfile::TempDir,
    config: ContainerConfig,
    sandbox: PodSandboxConfig,
    ctx: SandboxContext,
    image: ImageConfiguration,
    limits: HostLimits,
    target_pidns: Option<PathBuf>,
    args: Option<Vec<String>>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            root.join("etc/group"),
            "root:x:0:\nwww:x:33:\nlogs:x:4:www\n",
        )
        .unwrap();
        let pod = dir.path().join("pod");
        fs::create_dir_all(pod.join("shm")).unwrap();
        for f in ["hostname", "hosts", "resolv.conf"] {
            fs::write(pod.join(f), "x\n").unwrap();
        }
        let ctx = SandboxContext {
            sandbox_id: "sb1".into(),
            hostname: "web-0".into(),
            netns: Some(pod.join("ns/net")),
            ipcns: Some(pod.join("ns/ipc")),
            utsns: Some(pod.join("ns/uts")),
            pidns: None,
            hostname_file: Some(pod.join("hostname")),
            hosts_file: Some(pod.join("hosts")),
            resolv_conf: Some(pod.join("resolv.conf")),
            shm: Some(pod.join("shm")),
            cgroup_parent: "/kubepods/besteffort/pod-uid-1".into(),
        };
        let sandbox = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web-0".into(),
                uid: "pod-uid-1".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: "web-0".into(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: "/kubepods/besteffort/pod-uid-1".into(),
                security_context: Some(LinuxSandboxSecurityContext::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "httpd".into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: "sha256:feed".into(),
                ..Default::default()
            }),
            args: vec!["-f".into(), "-p".into(), "8080".into()],
            envs: vec![KeyValue {
                key: "MODE".into(),
                value: "test".into(),
            }],
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    cpu_shares: 256,
                    memory_limit_in_bytes: 32 << 20,
                    oom_score_adj: 1000,
                    ..Default::default()
                }),
                security_context: Some(LinuxContainerSecurityContext {
                    run_as_username: "www".into(),
                    namespace_options: Some(NamespaceOption {
                        pid: NamespaceMode::Container as i32,
                        ..Default::default()
                    }),
                    seccomp: Some(SecurityProfile {
                        profile_type: ProfileType::RuntimeDefault as i32,
                        localhost_ref: String::new(),
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let image = ImageConfigurationBuilder::default()
            .config(
                ConfigBuilder::default()
                    .entrypoint(vec!["/bin/httpd".to_string()])
                    .cmd(vec!["-h".to_string(), "/www".to_string()])
                    .env(vec!["PATH=/bin".to_string()])
                    .working_dir("/www")
                    .volumes(vec!["/var/cache".to_string()])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let mut limits = HostLimits::unrestricted();
        limits.min_oom_score_adj = 0;
        Self {
            dir,
            config,
            sandbox,
            ctx,
            image,
            limits,
            target_pidns: None,
            args: None,
        }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn sc(&mut self) -> &mut LinuxContainerSecurityContext {
        self.config
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap()
    }

    fn spec(&self) -> Result<Spec, SpecError> {
        let rootfs = self.rootfs();
        container_spec(&SpecInput {
            container_id: "c0ffee",
            config: &self.config,
            sandbox: &self.sandbox,
            ctx: &self.ctx,
            image: &self.image,
            image_name: "registry.local/httpd:1",
            rootfs: &rootfs,
            target_pidns: self.target_pidns.as_deref(),
            seccomp_profile_root: self.dir.path(),
            limits: &self.limits,
            args: self.args.as_deref(),
        })
    }
}

#[test]
fn a_typical_container() {
    let f = Fixture::new();
    let spec = f.spec().unwrap();
    let process = spec.process().as_ref().unwrap();
    assert_eq!(
        process.args().clone().unwrap(),
        vec!["/bin/httpd", "-f", "-p", "8080"]
    );
    assert_eq!(
        process.env().clone().unwrap(),
        vec!["PATH=/bin", "HOSTNAME=web-0", "MODE=test"]
    );
    assert_eq!(process.cwd(), Path::new("/www"));
    assert_eq!(process.terminal(), Some(false));
    assert_eq!(process.no_new_privileges(), None);
    let user = process.user();
    assert_eq!((user.uid(), user.gid()), (33, 33));
    assert_eq!(user.additional_gids().clone().unwrap(), vec![4, 33]);
    assert_eq!(process.oom_score_adj(), Some(1000));
    let caps = process.capabilities().as_ref().unwrap();
    assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
    assert_eq!(process.rlimits().as_ref().unwrap().len(), 1);

    assert_eq!(spec.hostname(), &None);
    let root = spec.root().as_ref().unwrap();
    assert_eq!(root.path(), &f.rootfs());
    assert_eq!(root.readonly(), Some(false));

    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(Path::new("/kubepods/besteffort/pod-uid-1/c0ffee"))
    );
    let types: Vec<LinuxNamespaceType> = linux
        .namespaces()
        .iter()
        .flatten()
        .map(|n| n.typ())
        .collect();
    assert_eq!(
        types,
        vec![
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Pid
        ]
    );
    assert!(linux.seccomp().is_some());
    assert_eq!(linux.masked_paths().as_ref().unwrap().len(), 11);
    let resources = linux.resources().as_ref().unwrap();
    assert_eq!(resources.cpu().as_ref().unwrap().shares(), Some(256));
    assert_eq!(resources.memory().as_ref().unwrap().limit(), Some(32 << 20));

    let dsts: Vec<String> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().to_string_lossy().into_owned())
        .collect();
    for dst in [
        "/proc",
        "/dev",
        "/sys/fs/cgroup",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/dev/shm",
    ] {
        assert!(dsts.iter().any(|d| d == dst), "{dst} missing from {dsts:?}");
    }
    // The image's volume became a directory in the rootfs.
    assert!(f.rootfs().join("var/cache").is_dir());

    let a = spec.annotations().as_ref().unwrap();
    assert_eq!(a[annotations::CONTAINER_TYPE], "container");
    assert_eq!(a[annotations::SANDBOX_ID], "sb1");
    assert_eq!(a[annotations::SANDBOX_NAME], "web-0");
    assert_eq!(a[annotations::SANDBOX_NAMESPACE], "default");
    assert_eq!(a[annotations::SANDBOX_UID], "pod-uid-1");
    assert_eq!(a[annotations::CONTAINER_NAME], "httpd");
    assert_eq!(a[annotations::IMAGE_NAME], "registry.local/httpd:1");
}

#[test]
fn the_spec_round_trips_through_json_and_file() {
    let f = Fixture::new();
    let spec = f.spec().unwrap();
    let json = serde_json::to_string_pretty(&spec).unwrap();
    let back: Spec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);
    let path = f.dir.path().join("config.json");
    spec.save(&path).unwrap();
    assert_eq!(Spec::load(&path).unwrap(), spec);
    // What libcontainer reads: camelCase keys, capabilities with prefixes.
    assert!(json.contains("\"cgroupsPath\""), "{json}");
    assert!(json.contains("\"CAP_CHOWN\""));
    assert!(json.contains("\"SCMP_ACT_ERRNO\""));
}

#[test]
fn libcontainer_accepts_the_specs() {
    let mut variants: Vec<(&str, Fixture)> = Vec::new();
    variants.push(("typical", Fixture::new()));

    let mut host_network = Fixture::new();
    host_network.ctx.netns = None;
    host_network.ctx.utsns = None;
    host_network.sandbox.linux.as_mut().unwrap().sysctls =
        [("kernel.shm_rmid_forced".to_string(), "1".to_string())].into();
    variants.push(("host network with an IPC sysctl", host_network));

    let mut privileged = Fixture::new();
    privileged.sc().privileged = true;
    privileged
        .sandbox
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .privileged = true;
    variants.push(("privileged", privileged));

    let mut restricted = Fixture::new();
    let sc = restricted.sc();
    sc.readonly_rootfs = true;
    sc.no_new_privs = true;
    sc.run_as_user = Some(Int64Value { value: 1000 });
    sc.run_as_username = String::new();
    sc.capabilities = Some(CriCaps {
        drop_capabilities: vec!["ALL".into()],
        ..Default::default()
    });
    restricted.config.tty = true;
    variants.push(("restricted", restricted));

    for (name, f) in variants {
        let spec = f.spec().unwrap_or_else(|e| panic!("{name}: {e}"));
        libcontainer::validator::Validator::validate_spec(&spec)
            .unwrap_or_else(|e| panic!("{name}: libcontainer refuses the spec: {e:?}"));
    }
}

#[test]
fn security_variants() {
    let mut f = Fixture::new();
    let sc = f.sc();
    sc.readonly_rootfs = true;
    sc.no_new_privs = true;
    sc.capabilities = Some(CriCaps {
        add_capabilities: vec!["NET_ADMIN".into()],
        drop_capabilities: vec!["NET_RAW".into()],
        ..Default::default()
    });
    f.config.tty = true;
    let spec = f.spec().unwrap();
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.terminal(), Some(true));
    assert_eq!(process.no_new_privileges(), Some(true));
    assert!(
        process
            .env()
            .as_ref()
            .unwrap()
            .contains(&"TERM=xterm".to_string())
    );
    let caps = process
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .clone()
        .unwrap();
    assert!(caps.contains(&Capability::NetAdmin) && !caps.contains(&Capability::NetRaw));
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    let hosts = spec
        .mounts()
        .iter()
        .flatten()
        .find(|m| m.destination() == Path::new("/etc/hosts"))
        .unwrap();
    assert!(
        hosts
            .options()
            .as_ref()
            .unwrap()
            .contains(&"ro".to_string())
    );

    // Privileged: no seccomp, no masked paths, all devices.
    let mut f = Fixture::new();
    f.sc().privileged = true;
    f.sandbox
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .privileged = true;
    let spec = f.spec().unwrap();
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none());
    assert!(linux.masked_paths().as_ref().unwrap().is_empty());
    assert!(linux.readonly_paths().as_ref().unwrap().is_empty());
    assert!(linux.devices().as_ref().unwrap().len() > 3);
}

#[test]
fn oom_score_adj_is_clamped_end_to_end() {
    let mut f = Fixture::new();
    f.config
        .linux
        .as_mut()
        .unwrap()
        .resources
        .as_mut()
        .unwrap()
        .oom_score_adj = -997;
    let spec = f.spec().unwrap();
    assert_eq!(spec.process().as_ref().unwrap().oom_score_adj(), Some(0));
}

#[test]
fn target_pid_namespace() {
    let mut f = Fixture::new();
    f.sc().namespace_options.as_mut().unwrap().pid = NamespaceMode::Target as i32;
    f.sc().namespace_options.as_mut().unwrap().target_id = "other".into();
    assert!(f.spec().is_err());
    f.target_pidns = Some("/proc/77/ns/pid".into());
    let spec = f.spec().unwrap();
    let pid = spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::Pid)
        .unwrap()
        .clone();
    assert_eq!(pid.path().as_deref(), Some(Path::new("/proc/77/ns/pid")));
}

#[test]
fn user_specified_image_names_the_image() {
    let mut f = Fixture::new();
    f.config.image.as_mut().unwrap().user_specified_image = "httpd:latest".into();
    let spec = f.spec().unwrap();
    assert_eq!(
        spec.annotations().as_ref().unwrap()[annotations::IMAGE_NAME],
        "httpd:latest"
    );
}

#[test]
fn bad_requests_name_the_field() {
    type Breaker = fn(&mut Fixture);
    let cases: Vec<(Breaker, &str)> = vec![
        (|f| f.config.metadata = None, "metadata"),
        (
            |f| f.sc().privileged = true,
            "linux.security_context.privileged",
        ),
        (
            |f| {
                f.config.mounts = vec![CriMount {
                    container_path: "data".into(),
                    host_path: "/tmp".into(),
                    ..Default::default()
                }]
            },
            "mounts[0].container_path",
        ),
        (
            |f| {
                f.sc().seccomp = Some(SecurityProfile {
                    profile_type: ProfileType::Localhost as i32,
                    localhost_ref: "profiles/missing.json".into(),
                })
            },
            "linux.security_context.seccomp.localhost_ref",
        ),
        (
            |f| f.sc().run_as_username = "nobody-here".into(),
            "linux.security_context.run_as_username",
        ),
        (
            |f| {
                f.sandbox.linux.as_mut().unwrap().sysctls =
                    [("kernel.panic".to_string(), "1".to_string())].into()
            },
            "sandbox_config.linux.sysctls[\"kernel.panic\"]",
        ),
        (
            |f| {
                f.config.command.clear();
                f.config.args.clear();
                f.image = ImageConfiguration::default();
            },
            "command",
        ),
    ];
    for (breaker, field) in cases {
        let mut f = Fixture::new();
        breaker(&mut f);
        let err = f.spec().unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
        assert!(matches!(err, SpecError::InvalidArgument { .. }), "{err}");
    }
}

#[test]
fn args_decided_by_the_caller_replace_the_merged_command() {
    let mut f = Fixture::new();
    f.config.command.clear();
    f.config.args.clear();
    f.image = ImageConfiguration::default();
    assert!(merged_command(&f.config, &f.image).is_empty());
    f.args = Some(vec!["/4f2a.wasm".into(), "--verbose".into()]);
    let spec = f.spec().unwrap();
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.args().clone().unwrap(), ["/4f2a.wasm", "--verbose"]);

    let f = Fixture::new();
    assert_eq!(
        merged_command(&f.config, &f.image),
        ["/bin/httpd", "-f", "-p", "8080"]
    );
}
