//! Skiff's server: apiserver, datastore, scheduler and controllers.
//!
//! Not built yet: arrives with the apiserver issue. `skiff server` exits with
//! an error saying so.
//!
//! # Layout
//!
//! Empty until the server lands.
