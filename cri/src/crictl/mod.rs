//! `skiff crictl` (work in progress).
