//! A blob body as a stream that holds the server to the descriptor's size.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

use crate::digest::Digest;

use super::RegistryError;

/// A blob body: chunks as they arrive, failing if the server sends more bytes
/// than the descriptor's size or fewer before the body ends.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Counts a body against the blob's size, dropping a prefix the server sent
/// although a Range asked it not to.
pub(crate) struct SizedBlob {
    body: Body,
    digest: Digest,
    endpoint: String,
    /// Bytes still to drop from the front of the body.
    skip: u64,
    /// Blob offset of the next byte handed out.
    position: u64,
    size: u64,
    done: bool,
}

impl SizedBlob {
    pub(crate) fn new(
        body: Body,
        digest: Digest,
        endpoint: String,
        skip: u64,
        offset: u64,
        size: u64,
    ) -> Self {
        Self {
            body,
            digest,
            endpoint,
            skip,
            position: offset,
            size,
            done: false,
        }
    }
}

impl Stream for SizedBlob {
    type Item = Result<Bytes, RegistryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(source))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(RegistryError::Transfer {
                        endpoint: this.endpoint.clone(),
                        source,
                    })));
                }
                Poll::Ready(Some(Ok(mut chunk))) => {
                    if this.skip > 0 {
                        let drop = this.skip.min(chunk.len() as u64);
                        this.skip -= drop;
                        chunk = chunk.slice(drop as usize..);
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    if this.position + chunk.len() as u64 > this.size {
                        this.done = true;
                        return Poll::Ready(Some(Err(RegistryError::TooLarge {
                            what: format!("blob {}", this.digest),
                            endpoint: this.endpoint.clone(),
                            limit: this.size,
                        })));
                    }
                    this.position += chunk.len() as u64;
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if this.position < this.size {
                        return Poll::Ready(Some(Err(RegistryError::IncompleteBlob {
                            digest: this.digest.clone(),
                            endpoint: this.endpoint.clone(),
                            received: this.position,
                            expected: this.size,
                        })));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn body(chunks: &[&'static [u8]]) -> Body {
        Box::pin(futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        ))
    }

    async fn collect(blob: SizedBlob) -> (Vec<u8>, Option<RegistryError>) {
        let mut data = Vec::new();
        let mut blob = Box::pin(blob);
        while let Some(item) = blob.next().await {
            match item {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(e) => return (data, Some(e)),
            }
        }
        (data, None)
    }

    fn digest() -> Digest {
        Digest::sha256_of(b"x")
    }

    #[tokio::test]
    async fn exact_size_passes_through() {
        let (data, err) = collect(SizedBlob::new(
            body(&[b"he", b"llo"]),
            digest(),
            "e".into(),
            0,
            0,
            5,
        ))
        .await;
        assert_eq!(data, b"hello");
        assert!(err.is_none());
    }

    #[tokio::test]
    async fn more_than_the_descriptor_fails() {
        let (data, err) = collect(SizedBlob::new(
            body(&[b"hel", b"lo!"]),
            digest(),
            "e".into(),
            0,
            0,
            5,
        ))
        .await;
        assert_eq!(data, b"hel");
        assert!(
            matches!(err, Some(RegistryError::TooLarge { limit: 5, .. })),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn early_end_reports_how_far_it_got() {
        let (_, err) = collect(SizedBlob::new(
            body(&[b"he"]),
            digest(),
            "e".into(),
            0,
            1,
            5,
        ))
        .await;
        assert!(
            matches!(
                err,
                Some(RegistryError::IncompleteBlob {
                    received: 3,
                    expected: 5,
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn an_ignored_range_is_skipped() {
        let (data, err) = collect(SizedBlob::new(
            body(&[b"h", b"el", b"lo"]),
            digest(),
            "e".into(),
            2,
            2,
            5,
        ))
        .await;
        assert_eq!(data, b"llo");
        assert!(err.is_none());
    }
}
