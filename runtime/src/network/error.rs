//! What can go wrong while attaching pods to the network.

use std::io;
use std::path::PathBuf;

use ipnet::IpNet;

/// A pod network operation that failed, and on what.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Neither the configuration nor UpdateRuntimeConfig gave a pod CIDR yet.
    #[error("no pod CIDR is known yet: configure one (--pod-cidr) or wait for UpdateRuntimeConfig")]
    NoPodCidr,

    /// The pod CIDR cannot hold a gateway and pods, or is not IPv4.
    #[error("pod CIDR {cidr} is not usable: {reason}")]
    InvalidPodCidr {
        /// The CIDR refused.
        cidr: IpNet,
        /// Why.
        reason: &'static str,
    },

    /// A netlink request failed.
    #[error("netlink: {op} {interface} failed: {source}")]
    Netlink {
        /// The operation, e.g. "create veth".
        op: &'static str,
        /// The interface it was about (or the namespace file for pod-side steps).
        interface: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },

    /// A netlink socket could not be opened or driven.
    #[error("netlink socket for {netns}: {source}")]
    NetlinkSocket {
        /// The namespace the socket was for ("node" for the caller's own).
        netns: String,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// The pod's network namespace file could not be entered.
    #[error("cannot enter network namespace {path}: {source}")]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// An interface the operation needs does not exist.
    #[error("interface {interface} not found in {netns}")]
    InterfaceNotFound {
        /// The interface name.
        interface: String,
        /// The namespace looked in ("node" for the caller's own).
        netns: String,
    },

    /// A sysctl could not be read or written.
    #[error("sysctl {path}: {source}")]
    Sysctl {
        /// The file under /proc/sys.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// `nft` could not be run at all (not installed?).
    #[error("cannot run `{program} {args}`: {source} (is the nftables package installed?)")]
    NftExec {
        /// The program.
        program: String,
        /// Its arguments.
        args: String,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// `nft` ran and refused the command.
    #[error("`nft {args}` failed while {doing}: {stderr}")]
    Nft {
        /// Its arguments.
        args: String,
        /// What the command was for.
        doing: String,
        /// What nft printed on stderr.
        stderr: String,
    },

    /// `nft -j` printed something that is not the expected JSON.
    #[error("`nft {args}` printed unexpected JSON: {source}")]
    NftOutput {
        /// Its arguments.
        args: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// The IPAM state on disk could not be read or written.
    #[error("IPAM: cannot {op} {path}: {source}")]
    Ipam {
        /// What was being done ("create", "read", "lock"...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// Every address of the pod CIDR is taken.
    #[error("IPAM: no free address left in {cidr} (allocations in {dir})")]
    AddressesExhausted {
        /// The pod CIDR.
        cidr: IpNet,
        /// The IPAM directory holding one file per allocated address.
        dir: PathBuf,
    },

    /// A port mapping cannot be honoured as written.
    #[error("invalid port mapping {mapping}: {reason}")]
    InvalidPortMapping {
        /// The mapping.
        mapping: String,
        /// Why.
        reason: &'static str,
    },

    /// Another pod already forwards this hostPort.
    #[error("hostPort {mapping} is already used by sandbox {owner}")]
    HostPortInUse {
        /// The mapping asked for.
        mapping: String,
        /// The sandbox holding it.
        owner: String,
    },

    /// CNI plugin chains are not implemented: only the built-in bridge is.
    #[error(
        "CNI plugin chains are not supported yet (asked to load {conf_dir}); \
         Skiff's built-in bridge network is the only pod network for now"
    )]
    CniUnsupported {
        /// The CNI configuration directory asked for.
        conf_dir: PathBuf,
    },
}

impl NetworkError {
    /// The errno of a failed netlink request, if it was one.
    pub fn netlink_errno(&self) -> Option<i32> {
        match self {
            NetworkError::Netlink { source, .. } => errno(source),
            _ => None,
        }
    }
}

/// The (positive) errno a netlink error message carries.
pub(crate) fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|code| -code.get()),
        _ => None,
    }
}
