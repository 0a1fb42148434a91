//! The pod CIDRs of a cluster CIDR cut into equal node subnets (upstream's
//! `cidrset.CidrSet`): the next free subnet after the last one handed out
//! (wrapping around), marking subnets nodes already have, and releasing.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The most subnet bits a cluster CIDR may be cut into (upstream's 16).
const MAX_SUBNET_BITS: u8 = 16;

/// Why a subnet could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrSetError {
    /// Every subnet is taken.
    #[error(
        "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
    )]
    Exhausted,
    /// The node subnet is larger than the cluster CIDR or cuts it too fine.
    #[error("New CIDR set failed; the node CIDR size is too big")]
    SubnetSize,
    /// The CIDR lies outside the cluster CIDR.
    #[error("cidr {cidr} is out the range of cluster cidr {cluster}")]
    OutOfRange {
        /// The CIDR asked about.
        cidr: Ipv4Net,
        /// The cluster CIDR.
        cluster: Ipv4Net,
    },
}

/// Which node subnets of the cluster CIDR are taken.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Ipv4Net,
    node_prefix: u8,
    used: Vec<bool>,
    allocated: usize,
    next_candidate: usize,
}

impl CidrSet {
    /// The subnets of prefix `node_prefix` in `cluster`, all free.
    pub fn new(cluster: Ipv4Net, node_prefix: u8) -> Result<Self, CidrSetError> {
        let cluster = cluster.trunc();
        if node_prefix < cluster.prefix_len()
            || node_prefix > 32
            || node_prefix - cluster.prefix_len() > MAX_SUBNET_BITS
        {
            return Err(CidrSetError::SubnetSize);
        }
        let count = 1usize << (node_prefix - cluster.prefix_len());
        Ok(Self {
            cluster,
            node_prefix,
            used: vec![false; count],
            allocated: 0,
            next_candidate: 0,
        })
    }

    /// Takes the next free subnet.
    pub fn allocate_next(&mut self) -> Result<Ipv4Net, CidrSetError> {
        if self.allocated == self.used.len() {
            return Err(CidrSetError::Exhausted);
        }
        let count = self.used.len();
        let mut candidate = self.next_candidate;
        for _ in 0..count {
            if !self.used[candidate] {
                break;
            }
            candidate = (candidate + 1) % count;
        }
        self.next_candidate = (candidate + 1) % count;
        self.used[candidate] = true;
        self.allocated += 1;
        Ok(self.subnet(candidate))
    }

    /// Marks every subnet `cidr` overlaps as taken.
    pub fn occupy(&mut self, cidr: Ipv4Net) -> Result<(), CidrSetError> {
        let (begin, end) = self.indices(cidr)?;
        for index in begin..=end {
            if !self.used[index] {
                self.used[index] = true;
                self.allocated += 1;
            }
        }
        Ok(())
    }

    /// Frees every subnet `cidr` overlaps.
    pub fn release(&mut self, cidr: Ipv4Net) -> Result<(), CidrSetError> {
        let (begin, end) = self.indices(cidr)?;
        for index in begin..=end {
            if self.used[index] {
                self.used[index] = false;
                self.allocated -= 1;
            }
        }
        Ok(())
    }

    /// The subnet at `index`.
    fn subnet(&self, index: usize) -> Ipv4Net {
        let step = 1u64 << (32 - u32::from(self.node_prefix));
        let base = u64::from(u32::from(self.cluster.network()));
        let address = u32::try_from(base + step * index as u64).unwrap_or(u32::MAX);
        Ipv4Net::new(Ipv4Addr::from(address), self.node_prefix).unwrap_or(self.cluster)
    }

    /// The first and last subnet indices `cidr` overlaps.
    fn indices(&self, cidr: Ipv4Net) -> Result<(usize, usize), CidrSetError> {
        let cidr = cidr.trunc();
        let out_of_range = CidrSetError::OutOfRange {
            cidr,
            cluster: self.cluster,
        };
        if !self.cluster.contains(&cidr) && !cidr.contains(&self.cluster) {
            return Err(out_of_range);
        }
        if cidr.prefix_len() <= self.cluster.prefix_len() {
            return Ok((0, self.used.len() - 1));
        }
        let index = |address: Ipv4Addr| -> usize {
            let offset = u32::from(address) - u32::from(self.cluster.network());
            (offset >> (32 - u32::from(self.node_prefix))) as usize
        };
        Ok((index(cidr.network()), index(cidr.broadcast())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn hands_out_slash_24s_in_order() {
        let mut set = CidrSet::new(net("10.42.0.0/16"), 24).unwrap();
        assert_eq!(set.allocate_next(), Ok(net("10.42.0.0/24")));
        assert_eq!(set.allocate_next(), Ok(net("10.42.1.0/24")));
        assert_eq!(set.allocate_next(), Ok(net("10.42.2.0/24")));
    }

    #[test]
    fn occupied_subnets_are_skipped_and_released_ones_reused_after_wrapping() {
        let mut set = CidrSet::new(net("10.42.0.0/30"), 31).unwrap();
        set.occupy(net("10.42.0.0/31")).unwrap();
        assert_eq!(set.allocate_next(), Ok(net("10.42.0.2/31")));
        assert_eq!(set.allocate_next(), Err(CidrSetError::Exhausted));
        set.release(net("10.42.0.0/31")).unwrap();
        assert_eq!(set.allocate_next(), Ok(net("10.42.0.0/31")));
        assert_eq!(
            CidrSetError::Exhausted.to_string(),
            "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
        );
    }

    #[test]
    fn occupying_is_idempotent_and_counts_once() {
        let mut set = CidrSet::new(net("10.42.0.0/23"), 24).unwrap();
        set.occupy(net("10.42.1.0/24")).unwrap();
        set.occupy(net("10.42.1.0/24")).unwrap();
        assert_eq!(set.allocate_next(), Ok(net("10.42.0.0/24")));
        assert_eq!(set.allocate_next(), Err(CidrSetError::Exhausted));
    }

    #[test]
    fn cidrs_outside_the_cluster_are_refused() {
        let mut set = CidrSet::new(net("10.42.0.0/16"), 24).unwrap();
        assert!(matches!(
            set.occupy(net("10.43.0.0/24")),
            Err(CidrSetError::OutOfRange { .. })
        ));
        assert_eq!(
            set.occupy(net("192.168.0.0/24")).unwrap_err().to_string(),
            "cidr 192.168.0.0/24 is out the range of cluster cidr 10.42.0.0/16"
        );
    }

    #[test]
    fn larger_and_smaller_cidrs_cover_their_subnets() {
        let mut set = CidrSet::new(net("10.42.0.0/22"), 24).unwrap();
        set.occupy(net("10.42.2.0/23")).unwrap();
        set.occupy(net("10.42.0.128/25")).unwrap();
        assert_eq!(set.allocate_next(), Ok(net("10.42.1.0/24")));
        assert_eq!(set.allocate_next(), Err(CidrSetError::Exhausted));
    }

    #[test]
    fn subnet_sizes_are_checked() {
        assert_eq!(
            CidrSet::new(net("10.42.0.0/16"), 8).unwrap_err(),
            CidrSetError::SubnetSize
        );
        assert_eq!(
            CidrSet::new(net("10.0.0.0/8"), 25).unwrap_err(),
            CidrSetError::SubnetSize
        );
    }
}
