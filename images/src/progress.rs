//! Pull progress, shared between the pull and whoever watches it (the
//! `skiff crictl pull` progress bar, through the CRI socket).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::digest::Digest;

/// Where one layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    /// Not started.
    Waiting,
    /// Bytes are arriving.
    Downloading,
    /// Already unpacked on this node: nothing to fetch.
    Exists,
    /// Fetched and unpacked by this pull.
    Done,
    /// Failed.
    Failed,
}

/// One layer's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerProgress {
    /// The layer blob's digest.
    pub digest: Digest,
    /// Bytes received.
    pub current: u64,
    /// The blob's size.
    pub total: u64,
    /// Its state.
    pub state: LayerState,
}

/// A whole pull's progress, updated by the pull, read by watchers.
#[derive(Debug, Default)]
pub struct PullProgress {
    layers: Mutex<Vec<LayerProgress>>,
    received: AtomicU64,
    finished: AtomicBool,
    changed: Notify,
}

impl PullProgress {
    /// A progress record for a pull that has not resolved its image yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the layers once the manifest is known.
    pub fn set_layers(&self, layers: impl IntoIterator<Item = (Digest, u64)>) {
        let mut guard = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        *guard = layers
            .into_iter()
            .map(|(digest, total)| LayerProgress {
                digest,
                current: 0,
                total,
                state: LayerState::Waiting,
            })
            .collect();
        drop(guard);
        self.changed.notify_waiters();
    }

    /// Records `n` more bytes received for layer `digest`.
    pub fn add_bytes(&self, digest: &Digest, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
        self.update(digest, |layer| {
            layer.current += n;
            layer.state = LayerState::Downloading;
        });
    }

    /// Sets layer `digest`'s state.
    pub fn set_state(&self, digest: &Digest, state: LayerState) {
        self.update(digest, |layer| {
            if state == LayerState::Exists || state == LayerState::Done {
                layer.current = layer.total;
            }
            layer.state = state;
        });
        self.changed.notify_waiters();
    }

    fn update(&self, digest: &Digest, f: impl Fn(&mut LayerProgress)) {
        let mut guard = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        guard.iter_mut().filter(|l| &l.digest == digest).for_each(f);
    }

    /// Marks the pull over (successful or not).
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Whether the pull is over.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Bytes received over the network by this pull so far.
    pub fn bytes_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// A copy of every layer's progress.
    pub fn snapshot(&self) -> Vec<LayerProgress> {
        self.layers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until a layer changes state or the pull finishes.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}
