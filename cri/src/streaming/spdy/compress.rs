//! SPDY/3 header compression: one zlib stream per direction for the whole
//! connection, seeded with the SPDY dictionary, each header block ending in
//! a sync flush so the peer can decode it without the next one.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::DICTIONARY;
use super::frame::FrameError;

/// A decompressed header block larger than this is refused: real blocks
/// hold a handful of short headers, and zlib can inflate a small frame
/// into gigabytes.
pub(crate) const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// Compresses the header blocks one side of a connection sends.
pub(crate) struct HeaderCompressor {
    zlib: Compress,
}

impl std::fmt::Debug for HeaderCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderCompressor").finish_non_exhaustive()
    }
}

impl HeaderCompressor {
    /// A compressor whose zlib stream starts with the SPDY dictionary.
    pub(crate) fn new() -> Result<Self, FrameError> {
        // Level 9 as Go's spdy framer uses; header blocks are tiny.
        let mut zlib = Compress::new(Compression::best(), true);
        zlib.set_dictionary(&DICTIONARY)
            .map_err(|e| FrameError::Compression(e.to_string()))?;
        Ok(Self { zlib })
    }

    /// Appends the compressed form of `block` to `out`, sync-flushed.
    pub(crate) fn compress(&mut self, block: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let start_in = self.zlib.total_in();
        loop {
            let consumed = usize::try_from(self.zlib.total_in() - start_in).unwrap_or(usize::MAX);
            out.reserve(block.len() - consumed + 64);
            let before_out = out.len();
            self.zlib
                .compress_vec(&block[consumed..], out, FlushCompress::Sync)
                .map_err(|e| FrameError::Compression(e.to_string()))?;
            let consumed = usize::try_from(self.zlib.total_in() - start_in).unwrap_or(usize::MAX);
            // zlib has flushed everything once it stops short of filling
            // the space it was given.
            if consumed == block.len() && out.len() < out.capacity() && out.len() >= before_out {
                return Ok(());
            }
        }
    }
}

/// Decompresses the header blocks the other side sends.
pub(crate) struct HeaderDecompressor {
    zlib: Decompress,
}

impl std::fmt::Debug for HeaderDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDecompressor").finish_non_exhaustive()
    }
}

impl HeaderDecompressor {
    /// A decompressor that supplies the SPDY dictionary when the stream asks.
    pub(crate) fn new() -> Self {
        Self {
            zlib: Decompress::new(true),
        }
    }

    /// Inflates one header block, which must be complete (sync-flushed).
    pub(crate) fn decompress(&mut self, block: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let start_in = self.zlib.total_in();
        loop {
            let consumed = usize::try_from(self.zlib.total_in() - start_in).unwrap_or(usize::MAX);
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(256));
            }
            let status = match self
                .zlib
                .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(status) => status,
                Err(e) => match e.needs_dictionary() {
                    Some(_) => {
                        // zlib checks the dictionary's Adler-32 against the
                        // stream's DICTID, so a peer using another
                        // dictionary fails here rather than with garbage.
                        self.zlib
                            .set_dictionary(&DICTIONARY)
                            .map_err(|e| FrameError::Compression(e.to_string()))?;
                        continue;
                    }
                    None => return Err(FrameError::Compression(e.to_string())),
                },
            };
            if out.len() > MAX_HEADER_BLOCK {
                return Err(FrameError::HeaderBlockTooLarge);
            }
            let consumed = usize::try_from(self.zlib.total_in() - start_in).unwrap_or(usize::MAX);
            match status {
                Status::StreamEnd => {
                    return Err(FrameError::Compression(
                        "peer ended its header compression stream".into(),
                    ));
                }
                _ if consumed == block.len() && out.len() < out.capacity() => return Ok(out),
                Status::BufError if consumed == block.len() => return Ok(out),
                _ => {}
            }
        }
    }
}
