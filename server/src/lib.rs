//! Skiff's server: apiserver, datastore, scheduler and controllers.
//!
//! Built: the datastore, certificates and the apiserver (`skiff server
//! --disable-agent`). Being built: the scheduler (its decision logic is
//! here), controllers and the built-in agent.
//!
//! # Layout
//!
//! - `apiserver`: the Kubernetes API over HTTPS (client-certificate
//!   authentication, discovery, OpenAPI, every verb) on the datastore.
//! - `run`: the `skiff server` role.
//! - `scheduler`: where a pending pod goes, or kube-scheduler's reason why
//!   nowhere ([`scheduler::schedule`]), and the loop that binds pods
//!   ([`scheduler::run`]).
//! - `controllers`: kube-controller-manager's part, reconcile loops over
//!   informer caches ([`controllers::run`]).
//! - `datastore`: the revisioned key-value log the apiserver stores API
//!   objects in ([`datastore::RevisionLog`]), on SQLite by default.
//! - `tls`: the cluster's CAs and certificates ([`tls::ClusterTls`]).
//! - `kubeconfig`: the admin kubeconfig kubectl uses.

#![deny(missing_docs)]

pub mod apiserver;
pub mod controllers;
pub mod datastore;
pub mod kubeconfig;
pub mod run;
pub mod scheduler;
pub mod tls;
