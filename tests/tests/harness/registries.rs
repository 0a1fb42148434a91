//! The test registries, checked with curl as an independent client.

use anyhow::{Context, Result, ensure};
use skiff_tests::oci::{
    Compression, Digest, ImageBuilder, LayerBuilder, TarEntry, media_type, signed_schema1_manifest,
};
use skiff_tests::registry::{TEST_PASSWORD, TEST_USER};
use skiff_tests::{Fixture, RegistryKind, TestRegistries, TestRegistry};

use crate::support::{ACCEPT_MANIFESTS, curl, ensure_digest};

fn user_password() -> String {
    format!("{TEST_USER}:{TEST_PASSWORD}")
}

#[test]
fn every_registry_answers_v2() -> Result<()> {
    let regs = TestRegistries::start()?;
    let open = curl(&[&format!("{}/v2/", regs.open.url())])?;
    ensure!(open.status == 200, "open: {}", open.status);
    ensure!(open.header("Docker-Distribution-Api-Version") == Some("registry/2.0"));

    let basic = curl(&[&format!("{}/v2/", regs.basic.url())])?;
    ensure!(
        basic.status == 401,
        "basic without credentials: {}",
        basic.status
    );
    ensure!(
        basic
            .header("WWW-Authenticate")
            .is_some_and(|h| h.starts_with("Basic"))
    );

    let ca = regs
        .tls
        .ca_pem_path()
        .context("no CA")?
        .to_str()
        .context("CA path")?;
    let tls = curl(&["--cacert", ca, &format!("{}/v2/", regs.tls.url())])?;
    ensure!(tls.status == 200, "tls: {}", tls.status);
    ensure!(regs.tls.url().starts_with("https://127.0.0.1:"));

    let token = curl(&[&format!("{}/v2/", regs.token.url())])?;
    ensure!(token.status == 401);
    ensure!(
        token
            .header("WWW-Authenticate")
            .is_some_and(|h| h.starts_with("Bearer realm="))
    );
    Ok(())
}

#[test]
fn open_registry_serves_fixtures_anonymously() -> Result<()> {
    let registry = TestRegistry::start(RegistryKind::Open)?;
    let image = Fixture::Busybox.load()?;
    let url = format!(
        "{}/v2/{}/manifests/{}",
        registry.url(),
        Fixture::Busybox.repository(),
        Fixture::Busybox.tag()
    );
    let manifest = curl(&["-H", ACCEPT_MANIFESTS, &url])?;
    ensure!(manifest.status == 200);
    ensure!(manifest.header("Docker-Content-Digest") == Some(image.digest().as_str()));
    ensure!(manifest.header("Content-Type") == Some(media_type::OCI_MANIFEST));
    ensure_digest(&manifest.body, image.digest())?;

    let layer = image.manifest()?.layers[0].clone();
    let url = format!(
        "{}/v2/{}/blobs/{}",
        registry.url(),
        Fixture::Busybox.repository(),
        layer.digest
    );
    let blob = curl(&["-L", &url])?;
    ensure!(blob.status == 200 && blob.body.len() as u64 == layer.size);
    ensure_digest(&blob.body, &layer.digest)?;
    ensure!(registry.blob_get_count(&layer.digest)? == 1);
    ensure!(registry.manifest_get_count("latest")? == 1);

    // Every fixture is there, by tag and by digest.
    for fixture in Fixture::ALL {
        let by_tag = registry
            .client()
            .get_manifest(fixture.repository(), fixture.tag())?;
        ensure!(
            by_tag.status == 200,
            "{} by tag: {}",
            fixture.name(),
            by_tag.status
        );
        let digest = fixture.digest()?;
        let by_digest = registry
            .client()
            .get_manifest(fixture.repository(), digest.as_str())?;
        ensure!(by_digest.status == 200 && Digest::of(&by_digest.body) == digest);
    }
    Ok(())
}

#[test]
fn basic_registry_wants_credentials() -> Result<()> {
    let registry = TestRegistry::start(RegistryKind::Basic)?;
    let url = format!(
        "{}/v2/{}/manifests/latest",
        registry.url(),
        Fixture::Nonroot.repository()
    );
    ensure!(curl(&["-H", ACCEPT_MANIFESTS, &url])?.status == 401);
    ensure!(curl(&["-u", "skiff:wrong", &url])?.status == 401);
    let ok = curl(&["-u", &user_password(), "-H", ACCEPT_MANIFESTS, &url])?;
    ensure!(ok.status == 200 && Digest::of(&ok.body) == Fixture::Nonroot.digest()?);
    ensure!(registry.credentials() == Some((TEST_USER, TEST_PASSWORD)));
    Ok(())
}

#[test]
fn tls_registry_needs_the_test_ca() -> Result<()> {
    let registry = TestRegistry::start(RegistryKind::Tls)?;
    let url = format!(
        "{}/v2/{}/manifests/latest",
        registry.url(),
        Fixture::Busybox.repository()
    );
    ensure!(curl(&[&url]).is_err(), "an unknown CA must be refused");
    let ca = registry
        .ca_pem_path()
        .context("no CA")?
        .to_str()
        .context("CA path")?;
    let ok = curl(&["--cacert", ca, "-H", ACCEPT_MANIFESTS, &url])?;
    ensure!(ok.status == 200 && Digest::of(&ok.body) == Fixture::Busybox.digest()?);
    let localhost = url.replace("127.0.0.1", "localhost");
    ensure!(curl(&["--cacert", ca, "-H", ACCEPT_MANIFESTS, &localhost])?.status == 200);
    let (cert, key) = registry.client_cert_paths().context("no client cert")?;
    ensure!(cert.exists() && key.exists());
    Ok(())
}

#[test]
fn token_registry_does_the_bearer_flow() -> Result<()> {
    let registry = TestRegistry::start(RegistryKind::Token)?;
    let repository = Fixture::Busybox.repository();
    let url = format!("{}/v2/{repository}/manifests/latest", registry.url());

    let challenge = curl(&["-H", ACCEPT_MANIFESTS, &url])?;
    ensure!(challenge.status == 401);
    let header = challenge
        .header("WWW-Authenticate")
        .context("no challenge")?
        .to_string();
    let params = skiff_tests::registry::parse_challenge(
        header.strip_prefix("Bearer ").context("not Bearer")?,
    );
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .context(k.to_string())
    };
    let (realm, service, scope) = (get("realm")?, get("service")?, get("scope")?);
    ensure!(
        scope == format!("repository:{repository}:pull"),
        "scope {scope}"
    );

    let token_url = format!("{realm}?service={service}&scope={scope}");
    ensure!(
        curl(&[&token_url])?.status == 401,
        "anonymous token request"
    );
    ensure!(curl(&["-u", "skiff:wrong", &token_url])?.status == 401);
    let token = curl(&["-u", &user_password(), &token_url])?;
    ensure!(token.status == 200, "token: {}", token.status);
    let token = token.json()?["token"]
        .as_str()
        .context("no token")?
        .to_string();

    let bearer = format!("Authorization: Bearer {token}");
    let manifest = curl(&["-H", ACCEPT_MANIFESTS, "-H", &bearer, &url])?;
    ensure!(
        manifest.status == 200,
        "manifest with token: {}",
        manifest.status
    );
    ensure!(Digest::of(&manifest.body) == Fixture::Busybox.digest()?);
    // The token covers only the scope asked for.
    let other = format!(
        "{}/v2/{}/manifests/latest",
        registry.url(),
        Fixture::Nonroot.repository()
    );
    ensure!(curl(&["-H", ACCEPT_MANIFESTS, "-H", &bearer, &other])?.status == 401);
    let server = registry.token_server().context("no token server")?;
    ensure!(server.requests() == 3 && server.tokens_issued() == 1);
    Ok(())
}

#[test]
fn token_server_speaks_oauth2_post() -> Result<()> {
    let registry = TestRegistry::start(RegistryKind::Token)?;
    let server = registry.token_server().context("no token server")?;
    let scope = format!("repository:{}:pull", Fixture::Busybox.repository());
    let form = format!(
        "grant_type=password&username={TEST_USER}&password={TEST_PASSWORD}&service={}&scope={scope}&client_id=skiff",
        server.service()
    );
    let granted = curl(&["--data", &form, &server.realm()])?;
    ensure!(granted.status == 200);
    let json = granted.json()?;
    let refresh = json["refresh_token"].as_str().context("no refresh token")?;
    ensure!(json["access_token"].is_string());
    let form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&service={}&scope={scope}",
        server.service()
    );
    let refreshed = curl(&["--data", &form, &server.realm()])?;
    ensure!(refreshed.status == 200 && refreshed.json()?["access_token"].is_string());
    let bad = curl(&[
        "--data",
        "grant_type=password&username=skiff&password=nope",
        &server.realm(),
    ])?;
    ensure!(bad.status == 401);
    // The harness's own client pushes through the token flow too.
    let image = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .file("hello", "hi\n")
                .build(Compression::Gzip),
        )
        .build();
    let digest = registry.push(&image, "adhoc/token:v1")?;
    ensure!(&digest == image.digest());
    Ok(())
}

#[test]
fn registries_share_storage_but_not_with_other_tests() -> Result<()> {
    let regs = TestRegistries::start()?;
    let image = ImageBuilder::new()
        .layer(
            LayerBuilder::new()
                .file("shared", "yes\n")
                .build(Compression::Gzip),
        )
        .build();
    regs.open.push(&image, "adhoc/shared:latest")?;
    for registry in regs.all() {
        let response = registry.client().get_manifest("adhoc/shared", "latest")?;
        ensure!(
            response.status == 200,
            "{:?} does not see the push",
            registry.kind()
        );
    }
    // The harness's client pushes through every kind (Basic, TLS, Bearer).
    for registry in regs.all() {
        let name = format!("adhoc/{}:latest", registry.kind());
        ensure!(&registry.push(&image, &name)? == image.digest());
    }
    let other = TestRegistry::start(RegistryKind::Open)?;
    ensure!(
        other
            .client()
            .get_manifest("adhoc/shared", "latest")?
            .status
            == 404
    );
    ensure!(regs.open.storage_dir() == regs.tls.storage_dir());
    ensure!(regs.open.storage_dir() != other.storage_dir());
    Ok(())
}

#[test]
fn hostile_and_corrupt_images_can_be_served() -> Result<()> {
    let registry = TestRegistry::start(RegistryKind::Open)?;
    let hostile = LayerBuilder::new()
        .file("../escape", "out\n")
        .file("/etc/absolute", "abs\n")
        .symlink("link", "/")
        .file("link/etc/evil", "evil\n")
        .build(Compression::Gzip);
    let good = LayerBuilder::new()
        .file("fine", "fine\n")
        .build(Compression::Gzip);
    let image = ImageBuilder::new()
        .layer(hostile.clone())
        .layer(good.corrupted())
        .build();
    registry.push(&image, "adhoc/hostile:latest")?;

    let blob = registry
        .client()
        .get_blob("adhoc/hostile", &hostile.blob.digest)?;
    let entries = crate::support::read_tar(&blob.body, Compression::Gzip)?;
    ensure!(entries.contains_key("../escape") && entries.contains_key("/etc/absolute"));
    ensure!(entries.contains_key("link/etc/evil"));

    // The corrupt layer is served under its declared digest.
    let corrupt = &image.layers[1].blob;
    let served = registry
        .client()
        .get_blob("adhoc/hostile", &corrupt.digest)?;
    ensure!(served.status == 200 && served.body == corrupt.bytes);
    ensure!(Digest::of(&served.body) != corrupt.digest);

    // A fixture blob can be corrupted in place.
    let layer = Fixture::Busybox.load()?.manifest()?.layers[1]
        .digest
        .clone();
    registry.corrupt_blob(&layer)?;
    let served = registry
        .client()
        .get_blob(Fixture::Busybox.repository(), &layer)?;
    ensure!(served.status == 200 && Digest::of(&served.body) != layer);
    Ok(())
}

#[test]
fn schema1_and_raw_manifests_can_be_pushed() -> Result<()> {
    let registry = TestRegistry::start(RegistryKind::Open)?;
    let layer = LayerBuilder::new()
        .entry(TarEntry::file("old", "schema1\n"))
        .build(Compression::Gzip);
    registry
        .client()
        .push_blob("adhoc/schema1", &layer.blob.digest, &layer.blob.bytes)?;
    let manifest = signed_schema1_manifest(
        "adhoc/schema1",
        "v1",
        "amd64",
        std::slice::from_ref(&layer.blob.digest),
    )?;
    let response = registry.client().put_manifest(
        "adhoc/schema1",
        "v1",
        &manifest.media_type,
        &manifest.bytes,
    )?;
    ensure!(
        response.status == 201,
        "schema 1 push: {} {}",
        response.status,
        response.text()
    );
    let url = format!("{}/v2/adhoc/schema1/manifests/v1", registry.url());
    let fetched = curl(&[
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v1+prettyjws",
        &url,
    ])?;
    ensure!(fetched.status == 200);
    ensure!(fetched.header("Content-Type") == Some(media_type::DOCKER_SCHEMA1_SIGNED));

    // Any bytes under any media type: the registry's answer is returned.
    let refused =
        registry
            .client()
            .put_manifest("adhoc/raw", "x", "application/x-nonsense", b"{}")?;
    ensure!(!refused.is_success());
    Ok(())
}

#[test]
fn registries_yaml_makes_every_kind_usable() -> Result<()> {
    let regs = TestRegistries::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("registries.yaml");
    regs.write_registries_yaml(&path)?;
    let yaml: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path)?)?;
    for registry in [&regs.open, &regs.basic, &regs.token] {
        let endpoint = &yaml["mirrors"][registry.host()]["endpoint"][0];
        ensure!(
            endpoint == &serde_json::json!(registry.url()),
            "{:?}",
            registry.kind()
        );
    }
    ensure!(yaml["mirrors"][regs.tls.host()].is_null());
    for registry in [&regs.basic, &regs.token] {
        ensure!(yaml["configs"][registry.host()]["auth"]["username"] == TEST_USER);
        ensure!(yaml["configs"][registry.host()]["auth"]["password"] == TEST_PASSWORD);
    }
    let ca = regs.tls.ca_pem_path().context("no CA")?;
    ensure!(yaml["configs"][regs.tls.host()]["tls"]["ca_file"] == ca.to_str().context("path")?);
    ensure!(yaml["configs"][regs.open.host()].is_null());
    Ok(())
}

#[test]
fn registries_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TestRegistries>();
    assert_send_sync::<TestRegistry>();
}

/// Set in the child process of `registries_die_with_a_killed_test_process`.
const ORPHAN_CHILD_ENV: &str = "SKIFF_HARNESS_ORPHAN_CHILD";

#[test]
fn registries_die_with_a_killed_test_process() -> Result<()> {
    use std::io::{BufRead, Write};

    if std::env::var_os(ORPHAN_CHILD_ENV).is_some() {
        // Child mode: start registries from this test thread, report them,
        // then wait to be SIGKILLed without any chance to clean up.
        let regs = TestRegistries::start()?;
        let pids: Vec<String> = regs.all().iter().map(|r| r.pid().to_string()).collect();
        let dir = regs.open.storage_dir().parent().context("no parent")?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "REGISTRIES {} {}", dir.display(), pids.join(" "))?;
        stdout.flush()?;
        std::thread::sleep(std::time::Duration::from_secs(60));
        return Ok(());
    }
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "registries::registries_die_with_a_killed_test_process",
            "--nocapture",
        ])
        .env(ORPHAN_CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("REGISTRIES "));
    child.kill()?;
    child.wait()?;
    let line = line.context("child did not start registries")?;
    let mut words = line.split(' ').skip(1);
    let dir = words.next().context("no dir")?.to_string();
    let pids: Vec<i32> = words.map(str::parse).collect::<Result<_, _>>()?;
    ensure!(pids.len() == 4);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // SAFETY: signal 0 only checks whether the pid exists.
    let alive = |pid: i32| unsafe { libc::kill(pid, 0) } == 0;
    while pids.iter().any(|&pid| alive(pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let orphans: Vec<i32> = pids.iter().copied().filter(|&pid| alive(pid)).collect();
    for &pid in &orphans {
        // SAFETY: plain syscall; these are the registries the child started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    // The killed process could not remove its temp dir.
    std::fs::remove_dir_all(&dir)?;
    ensure!(
        orphans.is_empty(),
        "registries {orphans:?} outlived their test process"
    );
    Ok(())
}

#[test]
fn registry_processes_die_with_their_guard() -> Result<()> {
    let registry = TestRegistry::start(RegistryKind::Open)?;
    let pid = i32::try_from(registry.pid())?;
    let storage = registry.storage_dir().to_path_buf();
    drop(registry);
    // SAFETY: signal 0 only checks whether the pid exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    ensure!(!alive, "registry {pid} outlived its guard");
    ensure!(!storage.exists(), "storage was not cleaned up");
    Ok(())
}
