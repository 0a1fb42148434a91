//! Integration tests of skiff-server, one module per area.

mod datastore;
mod tls;
