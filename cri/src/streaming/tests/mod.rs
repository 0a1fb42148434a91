//! Round trips through the real server with fake backends.
