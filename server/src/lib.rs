//! Skiff's server: apiserver, datastore, scheduler and controllers.
//!
//! Being built: the datastore is here; the apiserver comes next. `skiff
//! server` exits with an error saying it is not built yet.
//!
//! # Layout
//!
//! - `apiserver`: the HTTPS front door (client-certificate authentication,
//!   health and version endpoints); the API itself is being built.
//! - `datastore`: the revisioned key-value log the apiserver stores API
//!   objects in ([`datastore::RevisionLog`]), on SQLite by default.
//! - `tls`: the cluster's CAs and certificates ([`tls::ClusterTls`]).
//! - `kubeconfig`: the admin kubeconfig kubectl uses.

#![deny(missing_docs)]

pub mod apiserver;
pub mod datastore;
pub mod kubeconfig;
pub mod run;
pub mod tls;
