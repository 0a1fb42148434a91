//! Integration tests of skiff-server, one module per area.

mod apiserver;
mod datastore;
mod tls;
