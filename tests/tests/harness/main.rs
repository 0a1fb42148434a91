//! Tests of the harness itself: fixture images, archives and registries.

mod archives;
mod fixtures;
mod registries;
mod support;
