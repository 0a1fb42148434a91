//! What the node says about the machine it runs on, read from the kernel
//! and the OS the way cAdvisor reads it for kubelet: CPUs this process may
//! run on, `MemTotal`, huge pages, the size of the kubelet's filesystem,
//! the OS image, kernel release and the machine, system and boot IDs.

use std::path::Path;

/// The machine's facts, read once when the kubelet starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineInfo {
    /// CPUs the kubelet may run on (sched_getaffinity, as `nproc`).
    pub cpus: u64,
    /// Physical memory in bytes (`MemTotal`).
    pub memory_bytes: u64,
    /// Huge pages per page size: (`2Mi`, bytes reserved).
    pub hugepages: Vec<(String, u64)>,
    /// Size in bytes of the filesystem holding the kubelet's directory.
    pub ephemeral_storage_bytes: u64,
    /// `PRETTY_NAME` from `/etc/os-release`.
    pub os_image: String,
    /// The kernel release (`uname -r`).
    pub kernel_version: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// The firmware's system UUID.
    pub system_uuid: String,
    /// This boot's ID.
    pub boot_id: String,
    /// `amd64`, `arm64`, ... as Go names architectures.
    pub architecture: &'static str,
}

impl MachineInfo {
    /// Reads the facts; what cannot be read is left empty (and logged), as
    /// cAdvisor does, so a container or an odd board still registers.
    pub fn read(kubelet_dir: &Path) -> MachineInfo {
        MachineInfo {
            cpus: cpus(),
            memory_bytes: read_text("/proc/meminfo")
                .and_then(|text| mem_total_bytes(&text))
                .unwrap_or(0),
            hugepages: hugepages(Path::new("/sys/kernel/mm/hugepages")),
            ephemeral_storage_bytes: filesystem_size(kubelet_dir),
            os_image: read_text("/etc/os-release")
                .and_then(|text| pretty_name(&text))
                .unwrap_or_else(|| "Linux".to_owned()),
            kernel_version: read_text("/proc/sys/kernel/osrelease").unwrap_or_default(),
            machine_id: read_text("/etc/machine-id")
                .or_else(|| read_text("/var/lib/dbus/machine-id"))
                .unwrap_or_default(),
            system_uuid: read_text("/sys/class/dmi/id/product_uuid").unwrap_or_default(),
            boot_id: read_text("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            architecture: go_arch(std::env::consts::ARCH),
        }
    }
}

fn read_text(path: &str) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text.trim().to_owned()),
        Err(err) => {
            tracing::debug!(path, %err, "machine information not available");
            None
        }
    }
}

fn cpus() -> u64 {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|cpu| set.is_set(*cpu).unwrap_or(false))
            .count() as u64,
        Err(err) => {
            tracing::warn!(%err, "reading the CPU affinity; counting available parallelism");
            std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => Some(value * 1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// `PRETTY_NAME` of an os-release file, unquoted.
fn pretty_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .find_map(|l| l.trim().strip_prefix("PRETTY_NAME="))?;
    let value = value.trim();
    let unquoted = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some(unquoted.to_owned()).filter(|v| !v.is_empty())
}

/// Reserved huge pages per size, from `hugepages-<n>kB/nr_hugepages`.
fn hugepages(dir: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut sizes: Vec<(u64, u64)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name();
            let kib: u64 = name
                .to_str()?
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let pages: u64 = std::fs::read_to_string(entry.path().join("nr_hugepages"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((kib * 1024, pages))
        })
        .collect();
    sizes.sort_unstable();
    sizes
        .into_iter()
        .map(|(size, pages)| (super::quantity::binary_si(size).0, size * pages))
        .collect()
}

/// Bytes of the filesystem holding `dir` (created if missing).
fn filesystem_size(dir: &Path) -> u64 {
    if let Err(err) = std::fs::create_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), %err, "creating the kubelet directory");
    }
    match nix::sys::statvfs::statvfs(dir) {
        // The field types are narrower on some 32-bit targets.
        #[allow(clippy::unnecessary_cast)]
        Ok(stat) => (stat.blocks() as u64).saturating_mul(stat.fragment_size() as u64),
        Err(err) => {
            tracing::warn!(dir = %dir.display(), %err, "reading the kubelet filesystem's size");
            0
        }
    }
}

/// Go's `GOARCH` for Rust's architecture name.
fn go_arch(arch: &'static str) -> &'static str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_is_in_bytes() {
        let text = "MemTotal:       16374860 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total_bytes(text), Some(16_374_860 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn os_release_pretty_name_is_unquoted() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(
            pretty_name("PRETTY_NAME=Alpine\n").as_deref(),
            Some("Alpine")
        );
        assert_eq!(pretty_name("NAME=x\n"), None);
    }

    #[test]
    fn architectures_have_go_names() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
    }

    #[test]
    fn hugepage_sizes_are_named_as_resources() {
        let dir = tempfile::tempdir().unwrap();
        for (name, pages) in [("hugepages-2048kB", "3"), ("hugepages-1048576kB", "0")] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("nr_hugepages"), pages).unwrap();
        }
        assert_eq!(
            hugepages(dir.path()),
            [("2Mi".to_owned(), 3 * 2048 * 1024), ("1Gi".to_owned(), 0)]
        );
    }

    #[test]
    fn this_machine_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let info = MachineInfo::read(dir.path());
        assert!(info.cpus >= 1);
        assert!(info.memory_bytes > 0);
        assert!(info.ephemeral_storage_bytes > 0);
        assert!(!info.kernel_version.is_empty());
    }
}
