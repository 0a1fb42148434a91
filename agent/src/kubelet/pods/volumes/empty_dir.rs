//! emptyDir volumes: a directory under the pod's volumes (mode 0777, as
//! kubelet makes it), or a tmpfs of at most `sizeLimit` for `medium:
//! Memory`. A restarted kubelet finds them as they were.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::EmptyDirVolumeSource;

use super::mounts;
use crate::kubelet::pods::resources::Amount;

/// Makes the emptyDir at `dir`.
pub fn setup(dir: &Path, source: &EmptyDirVolumeSource) -> Result<(), String> {
    let shown = dir.display();
    match source.medium.as_deref().unwrap_or_default() {
        "" => {
            if !dir.exists() {
                fs::create_dir_all(dir).map_err(|e| format!("creating {shown}: {e}"))?;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o777))
                    .map_err(|e| format!("chmod {shown}: {e}"))?;
            }
            Ok(())
        }
        "Memory" => {
            let size = source
                .size_limit
                .as_ref()
                .and_then(Amount::of)
                .map(Amount::value);
            let fresh = !mounts::is_mount_point(dir);
            mounts::ensure_tmpfs(dir, size)
                .map_err(|e| format!("mounting a tmpfs on {shown}: {e}"))?;
            if fresh {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o777))
                    .map_err(|e| format!("chmod {shown}: {e}"))?;
            }
            Ok(())
        }
        other => Err(format!("emptyDir medium {other:?} is not supported")),
    }
}
