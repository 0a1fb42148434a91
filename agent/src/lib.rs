//! Skiff's agent: kubelet, node registration, pod network, service proxy and
//! cluster DNS.
//!
//! Not built yet: arrives with the "first cluster" issue. `skiff agent` exits
//! with an error saying so.
//!
//! # Layout
//!
//! Empty until the agent lands.
