//! A SPDY/3.1 session over any byte stream, as moby/spdystream runs one for
//! kubectl, crictl and kubelet: a reader task that turns frames into
//! per-stream byte channels, and a writer task that owns the socket's write
//! half and the header compressor. Flow control is off, as in spdystream
//! (it neither sends nor honours WINDOW_UPDATE), so back-pressure is TCP's:
//! a stream whose reader stalls stalls the connection.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::frame::{Frame, FrameDecoder, FrameEncoder, FrameError, Headers, rst};

/// Largest DATA frame this side sends; Go reads any size, but small frames
/// keep one busy stream from delaying the others for long.
const MAX_DATA_FRAME: usize = 32 * 1024;
/// Frames queued for the writer before senders wait.
const OUTGOING_QUEUE: usize = 64;
/// Chunks queued per stream before the reader waits.
const STREAM_QUEUE: usize = 64;

/// Which end of the connection this is: clients open odd streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

/// The session failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpdyError {
    #[error("SPDY connection closed")]
    Closed,
    #[error("SPDY stream {0} was reset by the peer")]
    Reset(u32),
    #[error("no SPDY reply for stream {0} within {1:?}")]
    ReplyTimeout(u32, Duration),
}

impl From<SpdyError> for io::Error {
    fn from(e: SpdyError) -> Self {
        let kind = match e {
            SpdyError::Closed | SpdyError::Reset(_) => io::ErrorKind::BrokenPipe,
            SpdyError::ReplyTimeout(..) => io::ErrorKind::TimedOut,
        };
        io::Error::new(kind, e)
    }
}

enum Outgoing {
    Frame(Frame),
    /// Flush what is queued, close the write half, then say so.
    Shutdown(oneshot::Sender<()>),
}

struct Entry {
    /// Where the stream's DATA goes; `None` once the peer finished.
    data: Option<mpsc::Sender<Bytes>>,
    /// Resolved by SYN_REPLY (or RST_STREAM) on streams this side opened.
    reply: Option<oneshot::Sender<bool>>,
    reset: Arc<AtomicBool>,
    local_done: bool,
}

struct Shared {
    role: Role,
    out: mpsc::Sender<Outgoing>,
    streams: Mutex<HashMap<u32, Entry>>,
    next_stream_id: AtomicU32,
    last_peer_stream_id: AtomicU32,
    /// Serialises opening streams so SYN_STREAM ids go out in order.
    open_lock: tokio::sync::Mutex<()>,
    /// Cancelled when the reader stops: peer gone, protocol error or idle.
    closed: CancellationToken,
    /// Cancelled when the connection handle is dropped: both tasks stop
    /// at once, closing the socket.
    stop: CancellationToken,
    go_away_sent: AtomicBool,
    started: Instant,
    last_activity_ms: AtomicU64,
}

impl Shared {
    fn streams(&self) -> MutexGuard<'_, HashMap<u32, Entry>> {
        // A panic while holding the map leaves nothing half-updated that
        // matters more than losing the session, so take the data anyway.
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    async fn send(&self, frame: Frame) -> Result<(), SpdyError> {
        self.out
            .send(Outgoing::Frame(frame))
            .await
            .map_err(|_| SpdyError::Closed)
    }

    /// Notes that this side finished (FIN or RST) and forgets the stream
    /// once both sides have.
    fn local_finished(&self, id: u32) {
        let mut streams = self.streams();
        if let Some(entry) = streams.get_mut(&id) {
            entry.local_done = true;
            if entry.data.is_none() {
                streams.remove(&id);
            }
        }
    }
}

/// A stream: its headers and its two halves.
pub(crate) struct SpdyStream {
    pub(crate) id: u32,
    pub(crate) headers: Headers,
    pub(crate) recv: StreamRecv,
    pub(crate) send: StreamSend,
}

impl std::fmt::Debug for SpdyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpdyStream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// The receiving half of a stream: the peer's DATA, ending at its FIN, a
/// reset, or the connection's end.
pub(crate) struct StreamRecv {
    rx: mpsc::Receiver<Bytes>,
}

impl StreamRecv {
    /// The next chunk, or `None` at the end.
    #[cfg(test)]
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        self.rx.recv().await
    }

    /// The channel behind the half.
    pub(crate) fn into_channel(self) -> mpsc::Receiver<Bytes> {
        self.rx
    }
}

/// The sending half of a stream; clones share it.
#[derive(Clone)]
pub(crate) struct StreamSend {
    id: u32,
    shared: Arc<Shared>,
    reset: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
}

impl StreamSend {
    /// Accepts a stream the peer opened; must come before any DATA on it,
    /// since spdystream drops data on streams it has no reply for.
    pub(crate) async fn reply(&self) -> Result<(), SpdyError> {
        self.shared
            .send(Frame::SynReply {
                stream_id: self.id,
                fin: false,
                headers: Headers::new(),
            })
            .await
    }

    /// Sends `data`, split into frames of at most 32 KiB.
    pub(crate) async fn write(&self, mut data: Bytes) -> Result<(), SpdyError> {
        while !data.is_empty() {
            if self.reset.load(Ordering::Acquire) {
                return Err(SpdyError::Reset(self.id));
            }
            if self.finished.load(Ordering::Acquire) {
                return Err(SpdyError::Closed);
            }
            let chunk = data.split_to(data.len().min(MAX_DATA_FRAME));
            self.shared
                .send(Frame::Data {
                    stream_id: self.id,
                    fin: false,
                    data: chunk,
                })
                .await?;
        }
        Ok(())
    }

    /// Half-closes: an empty DATA frame with FIN. Later calls do nothing.
    pub(crate) async fn close(&self) -> Result<(), SpdyError> {
        if self.finished.swap(true, Ordering::AcqRel) || self.reset.load(Ordering::Acquire) {
            return Ok(());
        }
        let sent = self
            .shared
            .send(Frame::Data {
                stream_id: self.id,
                fin: true,
                data: Bytes::new(),
            })
            .await;
        self.shared.local_finished(self.id);
        sent
    }

    /// Aborts the stream in both directions.
    pub(crate) async fn reset(&self, status: u32) -> Result<(), SpdyError> {
        if self.reset.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.finished.store(true, Ordering::Release);
        self.shared.streams().remove(&self.id);
        self.shared
            .send(Frame::RstStream {
                stream_id: self.id,
                status,
            })
            .await
    }

    /// Whether the peer reset the stream.
    pub(crate) fn is_reset(&self) -> bool {
        self.reset.load(Ordering::Acquire)
    }
}

/// One SPDY session.
pub(crate) struct SpdyConnection {
    shared: Arc<Shared>,
    incoming: mpsc::Receiver<SpdyStream>,
}

impl std::fmt::Debug for SpdyConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpdyConnection")
            .field("role", &self.shared.role)
            .finish_non_exhaustive()
    }
}

impl SpdyConnection {
    /// Starts the session's reader and writer tasks on `io`; `initial`
    /// holds bytes already read past the HTTP upgrade.
    pub(crate) fn start<IO>(
        io: IO,
        initial: BytesMut,
        role: Role,
        idle_timeout: Duration,
    ) -> Result<Self, FrameError>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let encoder = FrameEncoder::new()?;
        let (out_tx, out_rx) = mpsc::channel(OUTGOING_QUEUE);
        let (incoming_tx, incoming) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            role,
            out: out_tx,
            streams: Mutex::new(HashMap::new()),
            next_stream_id: AtomicU32::new(if role == Role::Client { 1 } else { 2 }),
            last_peer_stream_id: AtomicU32::new(0),
            open_lock: tokio::sync::Mutex::new(()),
            closed: CancellationToken::new(),
            stop: CancellationToken::new(),
            go_away_sent: AtomicBool::new(false),
            started: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
        });
        let (reader, writer) = tokio::io::split(io);
        tokio::spawn(write_loop(writer, out_rx, encoder, shared.clone()));
        tokio::spawn(read_loop(
            reader,
            initial,
            shared.clone(),
            incoming_tx,
            idle_timeout,
        ));
        Ok(Self { shared, incoming })
    }

    /// The next stream the peer opened, or `None` once the session is over.
    pub(crate) async fn accept(&mut self) -> Option<SpdyStream> {
        tokio::select! {
            stream = self.incoming.recv() => stream,
            () = self.shared.closed.cancelled() => None,
        }
    }

    /// Refuses every stream the peer opens from now on (RST_STREAM
    /// REFUSED_STREAM), so nobody has to keep accepting.
    pub(crate) fn refuse_new_streams(&mut self) {
        self.incoming.close();
    }

    /// Opens a stream and waits up to `timeout` for the peer's reply.
    pub(crate) async fn open(
        &self,
        headers: Headers,
        timeout: Duration,
    ) -> Result<SpdyStream, SpdyError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let stream = {
            let _order = self.shared.open_lock.lock().await;
            let id = self.shared.next_stream_id.fetch_add(2, Ordering::Relaxed);
            let stream = new_stream(&self.shared, id, headers.clone(), Some(reply_tx));
            self.shared
                .send(Frame::SynStream {
                    stream_id: id,
                    associated_to: 0,
                    priority: 0,
                    fin: false,
                    unidirectional: false,
                    headers,
                })
                .await?;
            stream
        };
        match tokio::time::timeout(timeout, reply_rx).await {
            Ok(Ok(true)) => Ok(stream),
            Ok(Ok(false)) => Err(SpdyError::Reset(stream.id)),
            Ok(Err(_)) => Err(SpdyError::Closed),
            Err(_) => Err(SpdyError::ReplyTimeout(stream.id, timeout)),
        }
    }

    /// Tells the peer no more streams will be accepted.
    pub(crate) async fn go_away(&self) {
        if self.shared.go_away_sent.swap(true, Ordering::AcqRel) {
            return;
        }
        let last = self.shared.last_peer_stream_id.load(Ordering::Acquire);
        let _ = self
            .shared
            .send(Frame::GoAway {
                last_good_stream_id: last,
                status: 0,
            })
            .await;
    }

    /// Flushes every queued frame and closes the write half.
    pub(crate) async fn shutdown(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self
            .shared
            .out
            .send(Outgoing::Shutdown(done_tx))
            .await
            .is_ok()
        {
            let _ = done_rx.await;
        }
    }

    /// Resolves when the peer is gone (or the session failed).
    pub(crate) fn closed(&self) -> CancellationToken {
        self.shared.closed.clone()
    }
}

impl Drop for SpdyConnection {
    fn drop(&mut self) {
        // Streams still held elsewhere fail from now on; call shutdown()
        // first for a graceful end.
        self.shared.stop.cancel();
    }
}

fn new_stream(
    shared: &Arc<Shared>,
    id: u32,
    headers: Headers,
    reply: Option<oneshot::Sender<bool>>,
) -> SpdyStream {
    let (data_tx, data_rx) = mpsc::channel(STREAM_QUEUE);
    let reset = Arc::new(AtomicBool::new(false));
    shared.streams().insert(
        id,
        Entry {
            data: Some(data_tx),
            reply,
            reset: reset.clone(),
            local_done: false,
        },
    );
    SpdyStream {
        id,
        headers,
        recv: StreamRecv { rx: data_rx },
        send: StreamSend {
            id,
            shared: shared.clone(),
            reset,
            finished: Arc::new(AtomicBool::new(false)),
        },
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Outgoing>,
    mut encoder: FrameEncoder,
    shared: Arc<Shared>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut done = None;
    loop {
        let first = tokio::select! {
            item = rx.recv() => item,
            () = shared.stop.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut next = Some(first);
        // Coalesce what is already queued into one write.
        while let Some(item) = next.take() {
            match item {
                Outgoing::Frame(frame) => {
                    if let Err(e) = encoder.encode(&frame, &mut buf) {
                        tracing::warn!(error = %e, "encoding SPDY frame");
                        shared.closed.cancel();
                        return;
                    }
                }
                Outgoing::Shutdown(ack) => {
                    done = Some(ack);
                    break;
                }
            }
            if buf.len() < 256 * 1024 {
                next = rx.try_recv().ok();
            }
        }
        if !buf.is_empty() {
            if let Err(e) = writer.write_all(&buf).await {
                tracing::debug!(error = %e, "writing SPDY frames");
                shared.closed.cancel();
                return;
            }
            buf.clear();
            shared.touch();
        }
        if writer.flush().await.is_err() {
            shared.closed.cancel();
            return;
        }
        if done.is_some() {
            break;
        }
    }
    let _ = writer.shutdown().await;
    if let Some(ack) = done {
        let _ = ack.send(());
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    mut buf: BytesMut,
    shared: Arc<Shared>,
    incoming: mpsc::Sender<SpdyStream>,
    idle_timeout: Duration,
) {
    let mut decoder = FrameDecoder::new();
    let result: Result<(), String> = async {
        loop {
            while let Some(frame) = decoder.decode(&mut buf).map_err(|e| e.to_string())? {
                handle_frame(&shared, &incoming, frame).await;
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            let read = tokio::select! {
                read = reader.read_buf(&mut buf) => read,
                () = tokio::time::sleep(idle_timeout) => {
                    if shared.idle_for() >= idle_timeout {
                        return Err(format!("idle for {idle_timeout:?}"));
                    }
                    continue;
                }
                () = shared.closed.cancelled() => return Ok(()),
                () = shared.stop.cancelled() => return Ok(()),
            };
            match read {
                Ok(0) => return Ok(()),
                Ok(_) => shared.touch(),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    .await;
    if let Err(reason) = result {
        tracing::debug!(%reason, "SPDY session ended");
    }
    shared.closed.cancel();
    // Dropping every entry ends every stream's reader and fails waiters.
    shared.streams().clear();
}

async fn handle_frame(shared: &Arc<Shared>, incoming: &mpsc::Sender<SpdyStream>, frame: Frame) {
    match frame {
        Frame::SynStream {
            stream_id,
            fin,
            headers,
            ..
        } => {
            let peer_parity = if shared.role == Role::Server { 1 } else { 0 };
            let last = shared.last_peer_stream_id.load(Ordering::Acquire);
            if stream_id % 2 != peer_parity || stream_id <= last {
                let _ = shared
                    .send(Frame::RstStream {
                        stream_id,
                        status: rst::PROTOCOL_ERROR,
                    })
                    .await;
                return;
            }
            shared
                .last_peer_stream_id
                .store(stream_id, Ordering::Release);
            if shared.go_away_sent.load(Ordering::Acquire) {
                let _ = shared
                    .send(Frame::RstStream {
                        stream_id,
                        status: rst::REFUSED_STREAM,
                    })
                    .await;
                return;
            }
            let stream = new_stream(shared, stream_id, headers, None);
            if fin {
                remote_finished(shared, stream_id);
            }
            if let Err(mpsc::error::SendError(stream)) = incoming.send(stream).await {
                let _ = stream.send.reset(rst::REFUSED_STREAM).await;
            }
        }
        Frame::SynReply { stream_id, fin, .. } => {
            let reply = shared
                .streams()
                .get_mut(&stream_id)
                .and_then(|e| e.reply.take());
            if let Some(reply) = reply {
                let _ = reply.send(true);
            }
            if fin {
                remote_finished(shared, stream_id);
            }
        }
        Frame::Data {
            stream_id,
            fin,
            data,
        } => {
            let tx = shared
                .streams()
                .get(&stream_id)
                .and_then(|e| e.data.clone());
            if let Some(tx) = tx
                && !data.is_empty()
            {
                // A reader that went away just means the data is unwanted.
                let _ = tx.send(data).await;
            }
            if fin {
                remote_finished(shared, stream_id);
            }
        }
        Frame::RstStream { stream_id, status } => {
            tracing::trace!(stream_id, status, "SPDY stream reset by peer");
            if let Some(entry) = shared.streams().remove(&stream_id) {
                entry.reset.store(true, Ordering::Release);
                if let Some(reply) = entry.reply {
                    let _ = reply.send(false);
                }
            }
        }
        Frame::Ping { id } => {
            // Each side pings with its own parity; echo only the peer's.
            let ours = if shared.role == Role::Client { 1 } else { 0 };
            if id % 2 != ours {
                let _ = shared.send(Frame::Ping { id }).await;
            }
        }
        Frame::GoAway { .. } => {
            tracing::trace!("SPDY peer sent GOAWAY");
        }
        Frame::Headers { fin, stream_id, .. } => {
            if fin {
                remote_finished(shared, stream_id);
            }
        }
        Frame::Settings { .. } | Frame::WindowUpdate { .. } | Frame::Unknown { .. } => {}
    }
}

fn remote_finished(shared: &Shared, id: u32) {
    let mut streams = shared.streams();
    if let Some(entry) = streams.get_mut(&id) {
        entry.data = None;
        if entry.local_done {
            streams.remove(&id);
        }
    }
}
