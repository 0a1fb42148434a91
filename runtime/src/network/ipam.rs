//! Pod addresses from the node's pod CIDR, persisted on disk the way CNI's
//! host-local plugin does it.
//!
//! The state directory holds one file per allocated address, named after
//! it (`10.42.0.7`), created with `O_EXCL` and holding the owner's sandbox ID
//! and the CIDR it came from. `last_reserved_ip` is a cursor: allocation
//! continues after it, so an address just released is not handed out again
//! at once (connections to the old pod fail instead of reaching a new one).
//! An exclusive `flock` on `lock` serialises allocations between threads and
//! processes; `O_EXCL` would catch a double allocation even without it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net};

use super::NetworkError;

const LOCK_FILE: &str = "lock";
const CURSOR_FILE: &str = "last_reserved_ip";

/// One address held by one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// The pod CIDR the address came from (its network address and prefix).
    pub cidr: Ipv4Net,
    /// The sandbox owning it.
    pub owner: String,
}

/// The allocator over one state directory.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
}

impl Ipam {
    /// An allocator keeping its state in `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Ipam { dir: dir.into() }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The address of `owner`: the one it already holds (in any CIDR), or a
    /// free one of `cidr`.
    pub fn allocate(&self, cidr: Ipv4Net, owner: &str) -> Result<Allocation, NetworkError> {
        let cidr = cidr.trunc();
        let _lock = self.lock()?;
        if let Some(held) = self.scan()?.into_iter().find(|a| a.owner == owner) {
            return Ok(held);
        }
        let (first, last) = pod_range(cidr).ok_or(NetworkError::InvalidPodCidr {
            cidr: IpNet::V4(cidr),
            reason: "it has no room for a gateway and a pod (at most /30)",
        })?;
        let (first, last) = (u32::from(first), u32::from(last));
        let size = last - first + 1;
        let start = match self.read_cursor()? {
            Some(cursor) if (first..last).contains(&u32::from(cursor)) => u32::from(cursor) + 1,
            _ => first,
        };
        for step in 0..size {
            let ip = Ipv4Addr::from(first + (start - first + step) % size);
            if self.try_claim(ip, cidr, owner)? {
                self.write_cursor(ip)?;
                return Ok(Allocation {
                    ip,
                    cidr,
                    owner: owner.to_owned(),
                });
            }
        }
        Err(NetworkError::AddressesExhausted {
            cidr: IpNet::V4(cidr),
            dir: self.dir.clone(),
        })
    }

    /// Frees every address `owner` holds; returns them (empty when none).
    pub fn release(&self, owner: &str) -> Result<Vec<Ipv4Addr>, NetworkError> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        let mut released = Vec::new();
        for allocation in self.scan()?.into_iter().filter(|a| a.owner == owner) {
            let path = self.dir.join(allocation.ip.to_string());
            match fs::remove_file(&path) {
                Ok(()) => released.push(allocation.ip),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(NetworkError::Ipam {
                        op: "remove",
                        path,
                        source,
                    });
                }
            }
        }
        Ok(released)
    }

    /// Every address currently allocated, in address order.
    pub fn allocations(&self) -> Result<Vec<Allocation>, NetworkError> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        let mut all = self.scan()?;
        all.sort_by_key(|a| a.ip);
        Ok(all)
    }

    fn lock(&self) -> Result<File, NetworkError> {
        fs::create_dir_all(&self.dir).map_err(|source| NetworkError::Ipam {
            op: "create directory",
            path: self.dir.clone(),
            source,
        })?;
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| NetworkError::Ipam {
                op: "open",
                path: path.clone(),
                source,
            })?;
        // Released when the file is closed, i.e. when the guard drops.
        file.lock().map_err(|source| NetworkError::Ipam {
            op: "lock",
            path,
            source,
        })?;
        Ok(file)
    }

    /// All allocation files (callers hold the lock).
    fn scan(&self) -> Result<Vec<Allocation>, NetworkError> {
        let entries = fs::read_dir(&self.dir).map_err(|source| NetworkError::Ipam {
            op: "list",
            path: self.dir.clone(),
            source,
        })?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| NetworkError::Ipam {
                op: "list",
                path: self.dir.clone(),
                source,
            })?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(NetworkError::Ipam {
                        op: "read",
                        path,
                        source,
                    });
                }
            };
            let mut lines = text.lines();
            let owner = lines.next().unwrap_or_default().trim().to_owned();
            let cidr = lines
                .next()
                .and_then(|line| line.trim().parse::<Ipv4Net>().ok())
                .unwrap_or_else(|| Ipv4Net::from(ip));
            found.push(Allocation { ip, cidr, owner });
        }
        Ok(found)
    }

    /// Creates the address's file; false when another owner holds it.
    fn try_claim(&self, ip: Ipv4Addr, cidr: Ipv4Net, owner: &str) -> Result<bool, NetworkError> {
        let path = self.dir.join(ip.to_string());
        let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(source) => {
                return Err(NetworkError::Ipam {
                    op: "create",
                    path,
                    source,
                });
            }
        };
        if let Err(source) = file.write_all(format!("{owner}\n{cidr}\n").as_bytes()) {
            let _ = fs::remove_file(&path);
            return Err(NetworkError::Ipam {
                op: "write",
                path,
                source,
            });
        }
        Ok(true)
    }

    fn read_cursor(&self) -> Result<Option<Ipv4Addr>, NetworkError> {
        let path = self.dir.join(CURSOR_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(NetworkError::Ipam {
                op: "read",
                path,
                source,
            }),
        }
    }

    fn write_cursor(&self, ip: Ipv4Addr) -> Result<(), NetworkError> {
        let path = self.dir.join(CURSOR_FILE);
        fs::write(&path, ip.to_string()).map_err(|source| NetworkError::Ipam {
            op: "write",
            path,
            source,
        })
    }
}

/// The gateway of a pod CIDR: its first usable address.
pub fn gateway(cidr: Ipv4Net) -> Option<Ipv4Addr> {
    (cidr.prefix_len() <= 30).then(|| Ipv4Addr::from(u32::from(cidr.network()) + 1))
}

/// The addresses pods get: after the gateway, before the broadcast address.
pub fn pod_range(cidr: Ipv4Net) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let gateway = gateway(cidr)?;
    Some((
        Ipv4Addr::from(u32::from(gateway) + 1),
        Ipv4Addr::from(u32::from(cidr.broadcast()) - 1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn gateway_and_range_leave_out_network_gateway_and_broadcast() {
        assert_eq!(
            gateway(net("10.42.0.0/24")),
            Some("10.42.0.1".parse().unwrap())
        );
        assert_eq!(
            pod_range(net("10.42.0.0/24")),
            Some(("10.42.0.2".parse().unwrap(), "10.42.0.254".parse().unwrap()))
        );
        assert_eq!(
            pod_range(net("10.0.0.0/30")),
            Some(("10.0.0.2".parse().unwrap(), "10.0.0.2".parse().unwrap()))
        );
        assert_eq!(pod_range(net("10.0.0.0/31")), None);
    }

    #[test]
    fn allocation_is_idempotent_per_owner_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(dir.path());
        let a = ipam.allocate(net("10.42.0.0/24"), "a").unwrap();
        assert_eq!(a.ip, "10.42.0.2".parse::<Ipv4Addr>().unwrap());
        assert_eq!(a.cidr, net("10.42.0.0/24"));
        assert_eq!(ipam.allocate(net("10.42.0.0/24"), "a").unwrap(), a);
        let b = Ipam::new(dir.path())
            .allocate(net("10.42.0.0/24"), "b")
            .unwrap();
        assert_eq!(b.ip, "10.42.0.3".parse::<Ipv4Addr>().unwrap());
        let text = fs::read_to_string(dir.path().join("10.42.0.3")).unwrap();
        assert_eq!(text, "b\n10.42.0.0/24\n");
    }

    #[test]
    fn released_addresses_are_not_reused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(dir.path());
        let cidr = net("10.42.0.0/29"); // pods get .2 to .6
        let a = ipam.allocate(cidr, "a").unwrap();
        assert_eq!(ipam.release("a").unwrap(), vec![a.ip]);
        assert_eq!(ipam.release("a").unwrap(), Vec::<Ipv4Addr>::new());
        let ips: Vec<String> = ["b", "c", "d", "e", "f"]
            .iter()
            .map(|owner| ipam.allocate(cidr, owner).unwrap().ip.to_string())
            .collect();
        assert_eq!(
            ips,
            [
                "10.42.0.3",
                "10.42.0.4",
                "10.42.0.5",
                "10.42.0.6",
                "10.42.0.2"
            ]
        );
    }

    #[test]
    fn a_full_cidr_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(dir.path());
        let cidr = net("10.0.0.0/30");
        ipam.allocate(cidr, "a").unwrap();
        let err = ipam.allocate(cidr, "b").unwrap_err();
        assert!(
            matches!(err, NetworkError::AddressesExhausted { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("no free address left in 10.0.0.0/30"),
            "{err}"
        );
        let err = ipam.allocate(net("10.0.0.0/31"), "c").unwrap_err();
        assert!(matches!(err, NetworkError::InvalidPodCidr { .. }), "{err}");
    }

    #[test]
    fn an_owner_keeps_its_address_when_the_cidr_changes() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(dir.path());
        let old = ipam.allocate(net("10.42.0.0/24"), "a").unwrap();
        let again = ipam.allocate(net("10.42.1.0/24"), "a").unwrap();
        assert_eq!(again, old);
        let new = ipam.allocate(net("10.42.1.0/24"), "b").unwrap();
        assert_eq!(new.ip, "10.42.1.2".parse::<Ipv4Addr>().unwrap());
        assert_eq!(new.cidr, net("10.42.1.0/24"));
        let all = ipam.allocations().unwrap();
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn concurrent_allocations_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let cidr = net("10.42.0.0/24");
        let ips: Vec<Ipv4Addr> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..64)
                .map(|i| {
                    let ipam = Ipam::new(dir.path());
                    s.spawn(move || ipam.allocate(cidr, &format!("pod-{i}")).unwrap().ip)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut unique = ips.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ips.len());
    }
}
