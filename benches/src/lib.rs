//! Skiff's benchmarks.
