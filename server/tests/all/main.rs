//! Integration tests of skiff-server, one module per area.

mod apiserver;
mod components;
mod datastore;
mod kubelet_proxy;
mod scheduler;
mod support;
mod tls;
mod tokens;
