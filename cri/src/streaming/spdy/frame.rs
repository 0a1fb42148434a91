//! SPDY/3.1 frames in memory and on the wire (SPDY/3.1 draft, section 2.2
//! and 2.6): a control bit, then either version and type (control frames)
//! or a stream id (DATA), then 8 bits of flags and a 24-bit length.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::compress::{HeaderCompressor, HeaderDecompressor};

/// The protocol version in every control frame.
pub(crate) const VERSION: u16 = 3;
/// The largest payload a frame's 24-bit length can describe.
pub(crate) const MAX_FRAME_LENGTH: usize = (1 << 24) - 1;
/// FLAG_FIN on DATA, SYN_STREAM, SYN_REPLY and HEADERS.
pub(crate) const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM.
pub(crate) const FLAG_UNIDIRECTIONAL: u8 = 0x02;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes (section 2.6.3).
pub(crate) mod rst {
    /// A generic error.
    pub(crate) const PROTOCOL_ERROR: u32 = 1;
    /// The stream was refused before any processing.
    pub(crate) const REFUSED_STREAM: u32 = 3;
    /// The stream is no longer needed (what spdystream's Reset sends).
    pub(crate) const CANCEL: u32 = 5;
}

/// What went wrong reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A control frame of a version other than 3.
    #[error("SPDY control frame of unsupported version {0}")]
    UnsupportedVersion(u16),
    /// A frame whose fixed fields do not fit its length.
    #[error("malformed SPDY {frame} frame: {reason}")]
    Malformed {
        /// The frame type.
        frame: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A header block that does not parse.
    #[error("malformed SPDY header block: {0}")]
    HeaderBlock(&'static str),
    /// A header block that inflates beyond the limit.
    #[error(
        "SPDY header block larger than {} bytes",
        super::compress::MAX_HEADER_BLOCK
    )]
    HeaderBlockTooLarge,
    /// zlib failed on a header block.
    #[error("SPDY header compression: {0}")]
    Compression(String),
    /// A payload larger than a frame can carry.
    #[error("SPDY frame payload of {0} bytes exceeds the 24-bit length")]
    TooLarge(usize),
}

/// A header block: lowercase names, each with one or more values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value; the name is lowercased, as SPDY requires.
    pub fn add(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.0.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The first value of `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every name and value, in order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The uncompressed block: a count of names, then each name and its
    /// values joined by NUL, every string with a 32-bit length.
    fn encode(&self, out: &mut Vec<u8>) {
        let mut names: Vec<(&str, Vec<&str>)> = Vec::new();
        for (name, value) in &self.0 {
            match names.iter_mut().find(|(n, _)| n == name) {
                Some((_, values)) => values.push(value),
                None => names.push((name, vec![value])),
            }
        }
        put_len(out, names.len());
        for (name, values) in names {
            put_len(out, name.len());
            out.extend_from_slice(name.as_bytes());
            let joined = values.join("\0");
            put_len(out, joined.len());
            out.extend_from_slice(joined.as_bytes());
        }
    }

    fn decode(mut block: &[u8]) -> Result<Self, FrameError> {
        let count = take_u32(&mut block)?;
        let mut headers = Headers::new();
        for _ in 0..count {
            let name = take_string(&mut block)?;
            if name.is_empty() {
                return Err(FrameError::HeaderBlock("empty header name"));
            }
            let value = take_string(&mut block)?;
            for part in value.split('\0') {
                headers.add(&name, part);
            }
        }
        if !block.is_empty() {
            return Err(FrameError::HeaderBlock("bytes after the last header"));
        }
        Ok(headers)
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

fn take_u32(block: &mut &[u8]) -> Result<u32, FrameError> {
    if block.len() < 4 {
        return Err(FrameError::HeaderBlock("truncated length"));
    }
    Ok(block.get_u32())
}

fn take_string(block: &mut &[u8]) -> Result<String, FrameError> {
    let len = take_u32(block)? as usize;
    if block.len() < len {
        return Err(FrameError::HeaderBlock("truncated string"));
    }
    let (s, rest) = block.split_at(len);
    *block = rest;
    String::from_utf8(s.to_vec()).map_err(|_| FrameError::HeaderBlock("header is not UTF-8"))
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream's id: odd from clients, even from servers.
        stream_id: u32,
        /// A stream this one belongs to, or 0.
        associated_to: u32,
        /// 0 (highest) to 7.
        priority: u8,
        /// The sender sends nothing more on this stream.
        fin: bool,
        /// The receiver may not send on this stream.
        unidirectional: bool,
        /// The stream's headers.
        headers: Headers,
    },
    /// Accepts a stream the peer opened.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// The sender sends nothing more on this stream.
        fin: bool,
        /// Reply headers.
        headers: Headers,
    },
    /// Aborts a stream.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why (see [`rst`]).
        status: u32,
    },
    /// Connection parameters, which this implementation only reads past.
    Settings {
        /// (flags, id, value) triples.
        entries: Vec<(u8, u32, u32)>,
    },
    /// A liveness check, echoed by the side that did not send it.
    Ping {
        /// Odd from clients, even from servers.
        id: u32,
    },
    /// The sender accepts no new streams.
    GoAway {
        /// The last stream the sender accepted.
        last_good_stream_id: u32,
        /// 0 OK, 1 protocol error, 2 internal error.
        status: u32,
    },
    /// More headers on a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// The sender sends nothing more on this stream.
        fin: bool,
        /// The headers.
        headers: Headers,
    },
    /// Flow-control credit, which Go's spdystream never sends nor honours.
    WindowUpdate {
        /// The stream.
        stream_id: u32,
        /// Bytes of credit.
        delta: u32,
    },
    /// Payload on a stream.
    Data {
        /// The stream.
        stream_id: u32,
        /// The sender sends nothing more on this stream.
        fin: bool,
        /// The bytes.
        data: Bytes,
    },
    /// A control frame type this implementation ignores (NOOP, CREDENTIAL,
    /// or one from the future), as the spec asks.
    Unknown {
        /// Its type.
        frame_type: u16,
    },
}

/// Turns frames into bytes, owning the sending side's compression state.
#[derive(Debug)]
pub(crate) struct FrameEncoder {
    headers: HeaderCompressor,
    scratch: Vec<u8>,
}

impl FrameEncoder {
    pub(crate) fn new() -> Result<Self, FrameError> {
        Ok(Self {
            headers: HeaderCompressor::new()?,
            scratch: Vec::new(),
        })
    }

    /// Appends `frame` to `out`.
    pub(crate) fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                let block = self.header_block(headers)?;
                let flags = flag(*fin, FLAG_FIN) | flag(*unidirectional, FLAG_UNIDIRECTIONAL);
                control_header(out, TYPE_SYN_STREAM, flags, 10 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(associated_to & 0x7fff_ffff);
                out.put_u8((priority & 0x07) << 5);
                out.put_u8(0); // credential slot, unused
                out.put_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => self.stream_headers(out, TYPE_SYN_REPLY, *stream_id, *fin, headers)?,
            Frame::Headers {
                stream_id,
                fin,
                headers,
            } => self.stream_headers(out, TYPE_HEADERS, *stream_id, *fin, headers)?,
            Frame::RstStream { stream_id, status } => {
                control_header(out, TYPE_RST_STREAM, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Settings { entries } => {
                control_header(out, TYPE_SETTINGS, 0, 4 + 8 * entries.len())?;
                out.put_u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
                for (flags, id, value) in entries {
                    out.put_u32((u32::from(*flags) << 24) | (id & 0x00ff_ffff));
                    out.put_u32(*value);
                }
            }
            Frame::Ping { id } => {
                control_header(out, TYPE_PING, 0, 4)?;
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control_header(out, TYPE_GOAWAY, 0, 8)?;
                out.put_u32(last_good_stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_header(out, TYPE_WINDOW_UPDATE, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(delta & 0x7fff_ffff);
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(length_word(flag(*fin, FLAG_FIN), data.len())?);
                out.put_slice(data);
            }
            Frame::Unknown { frame_type } => control_header(out, *frame_type, 0, 0)?,
        }
        Ok(())
    }

    fn stream_headers(
        &mut self,
        out: &mut BytesMut,
        frame_type: u16,
        stream_id: u32,
        fin: bool,
        headers: &Headers,
    ) -> Result<(), FrameError> {
        let block = self.header_block(headers)?;
        control_header(out, frame_type, flag(fin, FLAG_FIN), 4 + block.len())?;
        out.put_u32(stream_id & 0x7fff_ffff);
        out.put_slice(&block);
        Ok(())
    }

    fn header_block(&mut self, headers: &Headers) -> Result<Vec<u8>, FrameError> {
        self.scratch.clear();
        headers.encode(&mut self.scratch);
        let mut compressed = Vec::new();
        self.headers.compress(&self.scratch, &mut compressed)?;
        Ok(compressed)
    }
}

fn flag(set: bool, bit: u8) -> u8 {
    if set { bit } else { 0 }
}

fn length_word(flags: u8, len: usize) -> Result<u32, FrameError> {
    if len > MAX_FRAME_LENGTH {
        return Err(FrameError::TooLarge(len));
    }
    Ok((u32::from(flags) << 24) | len as u32)
}

fn control_header(
    out: &mut BytesMut,
    frame_type: u16,
    flags: u8,
    len: usize,
) -> Result<(), FrameError> {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(frame_type);
    out.put_u32(length_word(flags, len)?);
    Ok(())
}

/// Turns bytes into frames, owning the receiving side's compression state.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    headers: HeaderDecompressor,
}

impl FrameDecoder {
    pub(crate) fn new() -> Self {
        Self {
            headers: HeaderDecompressor::new(),
        }
    }

    /// Takes one whole frame off the front of `buf`, or `None` if `buf`
    /// does not hold a whole frame yet.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let flags = buf[4];
        let len = (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
        if buf.len() < 8 + len {
            buf.reserve(8 + len - buf.len());
            return Ok(None);
        }
        buf.advance(8);
        let mut payload = buf.split_to(len).freeze();
        let fin = flags & FLAG_FIN != 0;
        if word & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: word,
                fin,
                data: payload,
            }));
        }
        let version = ((word >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let frame = match (word & 0xffff) as u16 {
            TYPE_SYN_STREAM => {
                need(&payload, 10, "SYN_STREAM")?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                let associated_to = payload.get_u32() & 0x7fff_ffff;
                let priority = payload.get_u8() >> 5;
                let _slot = payload.get_u8();
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.header_block(&payload)?,
                }
            }
            TYPE_SYN_REPLY => {
                need(&payload, 4, "SYN_REPLY")?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers: self.header_block(&payload)?,
                }
            }
            TYPE_HEADERS => {
                need(&payload, 4, "HEADERS")?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                Frame::Headers {
                    stream_id,
                    fin,
                    headers: self.header_block(&payload)?,
                }
            }
            TYPE_RST_STREAM => {
                exactly(&payload, 8, "RST_STREAM")?;
                Frame::RstStream {
                    stream_id: payload.get_u32() & 0x7fff_ffff,
                    status: payload.get_u32(),
                }
            }
            TYPE_SETTINGS => {
                need(&payload, 4, "SETTINGS")?;
                let count = payload.get_u32() as usize;
                if payload.len() != count.saturating_mul(8) {
                    return Err(FrameError::Malformed {
                        frame: "SETTINGS",
                        reason: "length does not match the number of entries",
                    });
                }
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    let id = payload.get_u32();
                    entries.push(((id >> 24) as u8, id & 0x00ff_ffff, payload.get_u32()));
                }
                Frame::Settings { entries }
            }
            TYPE_PING => {
                exactly(&payload, 4, "PING")?;
                Frame::Ping {
                    id: payload.get_u32(),
                }
            }
            TYPE_GOAWAY => {
                // SPDY/2 GOAWAY had no status; accept both shapes.
                need(&payload, 4, "GOAWAY")?;
                let last_good_stream_id = payload.get_u32() & 0x7fff_ffff;
                let status = if payload.len() >= 4 {
                    payload.get_u32()
                } else {
                    0
                };
                Frame::GoAway {
                    last_good_stream_id,
                    status,
                }
            }
            TYPE_WINDOW_UPDATE => {
                exactly(&payload, 8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream_id: payload.get_u32() & 0x7fff_ffff,
                    delta: payload.get_u32() & 0x7fff_ffff,
                }
            }
            frame_type => Frame::Unknown { frame_type },
        };
        Ok(Some(frame))
    }

    fn header_block(&mut self, compressed: &[u8]) -> Result<Headers, FrameError> {
        let block = self.headers.decompress(compressed)?;
        Headers::decode(&block)
    }
}

fn need(payload: &Bytes, len: usize, frame: &'static str) -> Result<(), FrameError> {
    if payload.len() < len {
        return Err(FrameError::Malformed {
            frame,
            reason: "shorter than its fixed fields",
        });
    }
    Ok(())
}

fn exactly(payload: &Bytes, len: usize, frame: &'static str) -> Result<(), FrameError> {
    if payload.len() != len {
        return Err(FrameError::Malformed {
            frame,
            reason: "wrong length",
        });
    }
    Ok(())
}
