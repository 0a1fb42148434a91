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
            let consumed = consumed_since(self.zlib.total_in(), start_in);
            out.reserve(block.len() - consumed + 64);
            self.zlib
                .compress_vec(&block[consumed..], out, FlushCompress::Sync)
                .map_err(|e| FrameError::Compression(e.to_string()))?;
            // zlib has flushed everything once all input is in and it
            // stopped short of filling the space it was given.
            let consumed = consumed_since(self.zlib.total_in(), start_in);
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }
}

fn consumed_since(total_in: u64, start: u64) -> usize {
    usize::try_from(total_in - start).unwrap_or(usize::MAX)
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
            let consumed = consumed_since(self.zlib.total_in(), start_in);
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(256));
            }
            let produced_before = out.len();
            let status =
                match self
                    .zlib
                    .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync)
                {
                    Ok(status) => status,
                    Err(e) if e.needs_dictionary().is_some() => {
                        // zlib checks the dictionary's Adler-32 against the
                        // stream's DICTID, so a peer using another dictionary
                        // fails here rather than with garbage.
                        self.zlib
                            .set_dictionary(&DICTIONARY)
                            .map_err(|e| FrameError::Compression(e.to_string()))?;
                        continue;
                    }
                    Err(e) => return Err(FrameError::Compression(e.to_string())),
                };
            if out.len() > MAX_HEADER_BLOCK {
                return Err(FrameError::HeaderBlockTooLarge);
            }
            let now_consumed = consumed_since(self.zlib.total_in(), start_in);
            if status == Status::StreamEnd {
                return Err(FrameError::Compression(
                    "peer ended its header compression stream".into(),
                ));
            }
            if now_consumed == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if now_consumed == consumed && out.len() == produced_before {
                // No progress with room to spare: the block is truncated.
                if now_consumed == block.len() {
                    return Ok(out);
                }
                return Err(FrameError::Compression(
                    "header block does not inflate".into(),
                ));
            }
        }
    }
}
