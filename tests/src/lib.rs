//! Skiff's end-to-end test harness.
