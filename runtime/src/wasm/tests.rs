//! The Wasm decision as a pure function, the port rule and the annotations.

use std::collections::HashMap;

use oci_spec::runtime::ProcessBuilder;
use skiff_images::digest::Digest;

use super::*;

const TAR: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn config(os: &str, architecture: &str) -> ImageConfiguration {
    serde_json::from_value(serde_json::json!({
        "os": os,
        "architecture": architecture,
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap()
}

fn linux() -> ImageConfiguration {
    config("linux", "amd64")
}

fn layer(media_type: &str, content: &str) -> LayerRef {
    let digest = Digest::sha256_of(content.as_bytes());
    LayerRef {
        blob_digest: digest.clone(),
        blob_size: content.len() as u64,
        media_type: media_type.into(),
        diff_id: digest,
    }
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn detect_with(
    image: &ImageConfiguration,
    layers: &[LayerRef],
    args: &[&str],
) -> Result<Option<WasmEntry>, WasmError> {
    detect("registry.local/app:1", image, layers, &argv(args))
}

#[test]
fn a_linux_image_with_a_linux_command_is_not_wasm() {
    let layers = [layer(TAR, "rootfs")];
    for args in [&["/bin/sh", "-c", "run hello.wasm"][..], &[], &["wasm"]] {
        assert_eq!(detect_with(&linux(), &layers, args), Ok(None), "{args:?}");
    }
}

#[test]
fn an_ordinary_image_whose_argv0_is_a_wasm_file_is_wasm() {
    let layers = [layer(TAR, "rootfs")];
    let entry = detect_with(&linux(), &layers, &["/app/hello.wasm", "a", "b"])
        .unwrap()
        .unwrap();
    assert_eq!(
        entry,
        WasmEntry {
            module: "/app/hello.wasm".into(),
            function: None,
            args: argv(&["/app/hello.wasm", "a", "b"]),
            reason: WasmReason::Argv,
        }
    );

    // runwasi's `file.wasm#function`: the function leaves argv[0].
    let entry = detect_with(&linux(), &layers, &["lib.wasm#serve", "x"])
        .unwrap()
        .unwrap();
    assert_eq!(entry.module, "lib.wasm");
    assert_eq!(entry.function.as_deref(), Some("serve"));
    assert_eq!(entry.args, argv(&["lib.wasm", "x"]));
    let entry = detect_with(&linux(), &layers, &["lib.wasm#"])
        .unwrap()
        .unwrap();
    assert_eq!((entry.module.as_str(), entry.function), ("lib.wasm", None));
}

#[test]
fn a_wasm_layer_is_the_module_and_the_command_line_its_arguments() {
    let module = layer("application/wasm", "\0asm module");
    let module_path = format!("/{}.wasm", module.blob_digest.hex());
    let layers = [layer(TAR, "files"), module.clone()];

    // No entrypoint at all: argv is just the module.
    let entry = detect_with(&linux(), &layers, &[]).unwrap().unwrap();
    assert_eq!(entry.reason, WasmReason::WasmLayer);
    assert_eq!(entry.module, module_path);
    assert_eq!(entry.args, argv(&[&module_path]));
    assert_eq!(entry.function, None);

    let entry = detect_with(&linux(), &layers, &["--port", "80"])
        .unwrap()
        .unwrap();
    assert_eq!(entry.args, argv(&[&module_path, "--port", "80"]));

    let entry = detect_with(&linux(), &layers, &["#serve", "x"])
        .unwrap()
        .unwrap();
    assert_eq!(entry.function.as_deref(), Some("serve"));
    assert_eq!(entry.args, argv(&[&module_path, "x"]));

    // A `.wasm` argv[0] wins over the layer.
    let entry = detect_with(&linux(), &layers, &["/other.wasm"])
        .unwrap()
        .unwrap();
    assert_eq!(entry.module, "/other.wasm");
    assert_eq!(entry.reason, WasmReason::WasmLayer);
}

#[test]
fn the_top_most_of_several_wasm_layers_is_the_module() {
    let low = layer("application/vnd.wasm.content.layer.v1+wasm", "\0asm low");
    let high = layer(
        "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
        "\0asm high",
    );
    let entry = detect_with(&config("wasi", "wasm"), &[low, high.clone()], &[])
        .unwrap()
        .unwrap();
    assert_eq!(entry.module, format!("/{}.wasm", high.blob_digest.hex()));
    assert_eq!(entry.reason, WasmReason::Platform);
}

#[test]
fn a_wasi_platform_image_runs_the_module_its_entrypoint_names() {
    for (os, arch) in [("wasi", "wasm"), ("wasip1", "wasm32"), ("linux", "wasm")] {
        let image = config(os, arch);
        let entry = detect_with(&image, &[layer(TAR, "files")], &["/hello.wasm"])
            .unwrap()
            .unwrap();
        assert_eq!(entry.reason, WasmReason::Platform, "{os}/{arch}");
        assert_eq!(entry.module, "/hello.wasm");
    }
}

#[test]
fn a_wasm_image_that_names_no_module_is_refused_clearly() {
    let image = config("wasi", "wasm");
    for args in [&[][..], &["/bin/hello"]] {
        let err = detect_with(&image, &[layer(TAR, "files")], args).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image registry.local/app:1 is a Wasm image but names no module: \
             set an entrypoint ending in .wasm or ship a Wasm layer"
        );
        let err = RuntimeError::from(err);
        assert!(matches!(err, RuntimeError::InvalidArgument(_)), "{err}");
    }
}

#[test]
fn relative_modules_resolve_against_the_working_directory_within_the_rootfs() {
    let entry = |module: &str| WasmEntry {
        module: module.into(),
        function: None,
        args: vec![module.into()],
        reason: WasmReason::Argv,
    };
    assert_eq!(entry("/app/x.wasm").module_in_rootfs("/srv"), "/app/x.wasm");
    assert_eq!(entry("x.wasm").module_in_rootfs("/srv"), "/srv/x.wasm");
    assert_eq!(entry("./bin/x.wasm").module_in_rootfs("/"), "/bin/x.wasm");
    assert_eq!(entry("x.wasm").module_in_rootfs(""), "/x.wasm");
    assert_eq!(
        entry("../../../../etc/x.wasm").module_in_rootfs("/srv/app"),
        "/etc/x.wasm"
    );
    assert_eq!(entry("/a//b/../x.wasm").module_in_rootfs("/"), "/a/x.wasm");
}

#[test]
fn the_http_port_is_the_first_declared_tcp_port() {
    let with_ports = |json: &str| cri::ContainerConfig {
        annotations: HashMap::from([(KUBELET_PORTS_ANNOTATION.to_string(), json.to_string())]),
        ..Default::default()
    };
    let pod = cri::PodSandboxConfig::default();
    assert_eq!(
        http_port(&cri::ContainerConfig::default(), &pod),
        DEFAULT_HTTP_PORT
    );
    let declared = with_ports(
        r#"[{"name":"dns","containerPort":53,"protocol":"UDP"},{"containerPort":3000,"protocol":"TCP"}]"#,
    );
    assert_eq!(http_port(&declared, &pod), 3000);
    assert_eq!(http_port(&with_ports("not json"), &pod), DEFAULT_HTTP_PORT);

    let mapped = cri::PodSandboxConfig {
        port_mappings: vec![
            cri::PortMapping {
                protocol: cri::Protocol::Udp as i32,
                container_port: 53,
                ..Default::default()
            },
            cri::PortMapping {
                protocol: cri::Protocol::Tcp as i32,
                container_port: 9000,
                host_port: 8081,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    assert_eq!(http_port(&cri::ContainerConfig::default(), &mapped), 9000);
    assert_eq!(http_port(&declared, &mapped), 3000);
}

#[test]
fn annotations_carry_the_decision_to_the_shim() {
    let mut spec = Spec::default();
    spec.set_process(Some(
        ProcessBuilder::default()
            .cwd("/srv")
            .args(vec!["app.wasm".to_string()])
            .build()
            .unwrap(),
    ));
    spec.set_annotations(Some(HashMap::from([(
        "io.kubernetes.cri.container-type".to_string(),
        "container".to_string(),
    )])));
    let entry = WasmEntry {
        module: "app.wasm".into(),
        function: Some("serve".into()),
        args: vec!["app.wasm".into()],
        reason: WasmReason::Argv,
    };
    let bundle = WasmBundle {
        image_id: "sha256:feed",
        cache_dir: Path::new("/var/lib/skiff/agent/wasm-cache"),
        port: 8080,
    };
    annotate(&mut spec, &entry, &bundle);
    let got = spec.annotations().clone().unwrap();
    let want = [
        ("io.kubernetes.cri.container-type", "container"),
        (annotations::ENGINE, "wasm"),
        (annotations::MODULE, "/srv/app.wasm"),
        (annotations::FUNCTION, "serve"),
        (annotations::IMAGE, "sha256:feed"),
        (annotations::CACHE_DIR, "/var/lib/skiff/agent/wasm-cache"),
        (annotations::PORT, "8080"),
    ];
    assert_eq!(
        got,
        want.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>()
    );

    let mut spec = Spec::default();
    annotate(
        &mut spec,
        &WasmEntry {
            function: None,
            ..entry
        },
        &bundle,
    );
    let got = spec.annotations().clone().unwrap();
    assert!(!got.contains_key(annotations::FUNCTION));
    assert_eq!(got[annotations::MODULE], "/app.wasm");
}

#[test]
fn the_cache_dir_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("data/agent/wasm-cache");
    ensure_cache_dir(&cache).unwrap();
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    ensure_cache_dir(&cache).unwrap();
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}
