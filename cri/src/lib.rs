//! Skiff's CRI v1 service.
//!
//! # Layout
//!
//! Filled by the image service work in progress.
