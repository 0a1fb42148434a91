//! SPDY/3.1, the multiplexing protocol kubectl, crictl and kubelet still
//! use for exec, attach and port-forward (through moby/spdystream). There
//! is no maintained Rust implementation, so this is a small one: frames
//! ([`frame`]), zlib header compression with the SPDY dictionary
//! ([`compress`], [`dictionary`]) and a session with streams ([`conn`]).
//! It implements what spdystream does, no more: no flow control, no
//! server push, no priorities.

pub(crate) mod compress;
pub(crate) mod conn;
pub(crate) mod dictionary;
pub(crate) mod frame;

pub(crate) use conn::{Role, SpdyConnection, SpdyError, SpdyStream, StreamSend};
pub(crate) use frame::Headers;

#[cfg(test)]
mod tests;
