//! The seam where a CNI plugin chain would replace the built-in bridge.
//!
//! A CNI-backed [`PodNetwork`] would map its calls onto the CNI protocol:
//! `setup` to ADD (with `CNI_CONTAINERID` = sandbox ID, `CNI_NETNS` = the
//! namespace file, `CNI_IFNAME` = `eth0`, and the port mappings as the
//! `portMappings` runtime config), `teardown` to DEL, `status` to the
//! configuration being loaded (or STATUS on CNI 1.1), `set_pod_cidr` to the
//! `podCIDR`-style runtime config host-local reads, and `stats` to the same
//! netlink counters the bridge reads. None of it is implemented yet, so the
//! constructor refuses instead of pretending.

use std::path::{Path, PathBuf};

use super::{InterfaceStats, NetworkError, NetworkStatus, PodAddresses, PodAttachment, PodNetwork};

/// A pod network driven by CNI plugins (not supported yet).
#[derive(Debug)]
pub struct CniNetwork {
    conf_dir: PathBuf,
}

impl CniNetwork {
    /// Would load the network configuration from `conf_dir` and run plugins
    /// from `bin_dirs`; for now always fails with
    /// [`NetworkError::CniUnsupported`].
    pub fn new(conf_dir: impl Into<PathBuf>, bin_dirs: &[PathBuf]) -> Result<Self, NetworkError> {
        let conf_dir = conf_dir.into();
        tracing::debug!(conf_dir = %conf_dir.display(), ?bin_dirs, "CNI requested");
        Err(NetworkError::CniUnsupported { conf_dir })
    }

    fn unsupported(&self) -> NetworkError {
        NetworkError::CniUnsupported {
            conf_dir: self.conf_dir.clone(),
        }
    }
}

impl PodNetwork for CniNetwork {
    fn setup(&self, _pod: &PodAttachment) -> Result<PodAddresses, NetworkError> {
        Err(self.unsupported())
    }

    fn teardown(&self, _pod: &PodAttachment) -> Result<(), NetworkError> {
        Err(self.unsupported())
    }

    fn status(&self) -> NetworkStatus {
        NetworkStatus::not_ready("CNIUnsupported", self.unsupported().to_string())
    }

    fn set_pod_cidr(&self, _cidr: ipnet::IpNet) -> Result<(), NetworkError> {
        Err(self.unsupported())
    }

    fn stats(&self, _netns: &Path) -> Result<InterfaceStats, NetworkError> {
        Err(self.unsupported())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_is_refused_clearly() {
        let err = CniNetwork::new("/etc/cni/net.d", &[PathBuf::from("/opt/cni/bin")]).unwrap_err();
        assert!(matches!(err, NetworkError::CniUnsupported { .. }));
        assert!(
            err.to_string()
                .contains("CNI plugin chains are not supported yet"),
            "{err}"
        );
        assert!(err.to_string().contains("/etc/cni/net.d"), "{err}");
    }
}
