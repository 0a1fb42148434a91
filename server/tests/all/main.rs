//! Integration tests of skiff-server, one module per area.

mod apiserver;
mod components;
mod datastore;
mod deployments;
mod endpoints;
mod garbage_collection;
mod jobs;
mod kubelet_proxy;
mod node_lifecycle;
mod scheduler;
mod service_accounts;
mod support;
mod tls;
mod tokens;
