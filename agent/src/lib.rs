//! Skiff's agent: kubelet, node registration, pod network, service proxy and
//! cluster DNS.
//!
//! `skiff server` runs the agent in its own process (unless
//! `--disable-agent`); `skiff agent --server URL --token T` for joining
//! nodes is not built yet and says so (it comes with multi-node clusters).
//!
//! # Layout
//!
//! - [`api_client`]: connecting to the apiserver as one component, with its
//!   own client certificate.
//! - [`config`]: the agent's configuration and k3s's flag formats
//!   (`--node-label`, `--node-taint`), and the default node IP.
//! - [`run`]: the agent role: node runtime, CRI socket, kubelet.
//! - [`kubelet`]: node registration, pod sync through the in-process CRI
//!   service, and the kubelet API.
//! - [`killall`]: `skiff killall`: the node's Skiff processes, pods and
//!   pod network stopped and removed.
#![deny(missing_docs)]

pub mod api_client;
pub mod config;
pub mod killall;
pub mod kubelet;
pub mod run;
