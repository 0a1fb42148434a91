//! Integration tests of skiff-server, one module per area.

mod apiserver;
mod components;
mod datastore;
mod scheduler;
mod support;
mod tls;
