//! The OCI distribution client.
