//! The admin kubeconfig (`/etc/skiff/skiff.yaml` by default): the server CA,
//! the admin client certificate and key, inline, for a cluster, user and
//! context all named `default`, as k3s writes it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use skiff_agent::api_client::ApiEndpoint;

use crate::tls::ClusterTls;

/// The kubeconfig text for `server` (e.g. `https://127.0.0.1:6443`).
pub fn admin_kubeconfig(tls: &ClusterTls, server: &str) -> String {
    ApiEndpoint {
        url: server.to_owned(),
        ca_pem: tls.server_ca.cert_pem.clone(),
        cert_pem: tls.admin.cert_pem.clone(),
        key_pem: tls.admin.key_pem.clone(),
    }
    .kubeconfig()
}

/// Writes the admin kubeconfig to `path` with `mode` (the file holds the
/// admin's key: 0600 unless the user asks otherwise), replacing it
/// atomically; its directory is created when missing.
pub fn write_admin_kubeconfig(
    path: &Path,
    mode: u32,
    tls: &ClusterTls,
    server: &str,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(admin_kubeconfig(tls, server).as_bytes())?;
    // The umask may have narrowed the mode asked for.
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
