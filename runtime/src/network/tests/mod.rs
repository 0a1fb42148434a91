//! Tests of the pod network: bookkeeping with fakes (no root), and the real
//! bridge network against the kernel (root, each test in its own namespaces).

mod bookkeeping;
mod fixture;
mod kernel;
