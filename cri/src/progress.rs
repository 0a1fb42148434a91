//! The pull-progress side channel. CRI's PullImage is unary, so a client
//! that wants a progress bar picks a random pull id, opens
//! `skiff.images.v1.PullProgress/Watch` with it, then calls PullImage with
//! the gRPC metadata `skiff-pull-id: <id>`. Whichever of the two arrives
//! first registers the id in the [`PullTracker`]; the pull reports into the
//! shared [`PullProgress`] and the watch streams it until the pull is done.
//!
//! Nothing outlives its callers: a pull's entry goes when the pull ends
//! and nobody watches, a watch's entry when its stream is dropped, and a
//! watch whose pull never starts ends after [`UNCLAIMED_TTL`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skiff_images::progress::{LayerProgress, LayerState, PullProgress};
use tokio::time::Instant;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::CriService;
use crate::proto::{self, PullProgressUpdate, WatchRequest};

/// The gRPC metadata key that ties a PullImage call to a watch.
pub const PULL_ID_METADATA: &str = "skiff-pull-id";

/// How long a watch waits for its PullImage call before giving up.
pub const UNCLAIMED_TTL: Duration = Duration::from_secs(30);

/// How often a watch sends byte counts while layers download.
const TICK: Duration = Duration::from_millis(100);

/// Watches at once, so a misbehaving client cannot grow the table forever.
const MAX_TRACKED: usize = 1024;

/// Longest accepted pull id: ids are random tokens, not payloads.
const MAX_ID_LEN: usize = 128;

/// Pulls that a client asked to watch, by the client's pull id.
#[derive(Debug, Default)]
pub struct PullTracker {
    pulls: Mutex<HashMap<String, Tracked>>,
}

#[derive(Debug)]
struct Tracked {
    progress: Arc<PullProgress>,
    since: Instant,
    pulling: bool,
    watchers: usize,
}

impl Tracked {
    fn new() -> Self {
        Self {
            progress: Arc::new(PullProgress::new()),
            since: Instant::now(),
            pulling: false,
            watchers: 0,
        }
    }
}

/// A pull's hold on its tracked progress; dropping it ends the pull for
/// watchers, even when the PullImage call was cancelled half-way.
#[derive(Debug)]
pub struct PullTicket {
    tracker: Arc<PullTracker>,
    id: Option<String>,
    progress: Arc<PullProgress>,
}

impl PullTicket {
    /// Where the pull reports its progress.
    pub fn progress(&self) -> Arc<PullProgress> {
        self.progress.clone()
    }
}

impl Drop for PullTicket {
    fn drop(&mut self) {
        self.progress.finish();
        let Some(id) = &self.id else { return };
        let mut pulls = self.tracker.lock();
        if pulls.get(id).is_some_and(|t| t.watchers == 0) {
            pulls.remove(id);
        }
    }
}

/// A watcher's hold on a tracked pull; dropping it forgets the pull once
/// nothing else needs it.
#[derive(Debug)]
pub struct PullWatch {
    tracker: Arc<PullTracker>,
    id: String,
    progress: Arc<PullProgress>,
    since: Instant,
}

impl PullWatch {
    /// Whether a PullImage call has picked this pull id up.
    pub fn is_claimed(&self) -> bool {
        self.tracker
            .lock()
            .get(&self.id)
            .is_some_and(|tracked| tracked.pulling)
    }

    /// The pull's progress.
    pub fn progress(&self) -> &PullProgress {
        &self.progress
    }
}

impl Drop for PullWatch {
    fn drop(&mut self) {
        let mut pulls = self.tracker.lock();
        if let Some(tracked) = pulls.get_mut(&self.id) {
            tracked.watchers = tracked.watchers.saturating_sub(1);
            let pull_over = !tracked.pulling || tracked.progress.is_finished();
            if tracked.watchers == 0 && pull_over {
                pulls.remove(&self.id);
            }
        }
    }
}

impl PullTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracked>> {
        self.pulls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many pulls are tracked (for tests and debugging).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no pull is tracked.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Starts tracking a pull. With no id (a plain CRI client), or an id
    /// another pull already uses, the progress is private to this pull.
    pub fn start_pull(self: &Arc<Self>, id: Option<&str>) -> PullTicket {
        let untracked = || PullTicket {
            tracker: self.clone(),
            id: None,
            progress: Arc::new(PullProgress::new()),
        };
        let Some(id) = id.filter(|id| valid_id(id)) else {
            return untracked();
        };
        let mut pulls = self.lock();
        if !pulls.contains_key(id) && pulls.len() >= MAX_TRACKED {
            return untracked();
        }
        let tracked = pulls.entry(id.to_owned()).or_insert_with(Tracked::new);
        if tracked.pulling {
            tracing::debug!(pull_id = id, "pull id already in use; progress not shared");
            drop(pulls);
            return untracked();
        }
        tracked.pulling = true;
        PullTicket {
            tracker: self.clone(),
            id: Some(id.to_owned()),
            progress: tracked.progress.clone(),
        }
    }

    /// Starts watching the pull `id` (which may not have started yet).
    pub fn watch(self: &Arc<Self>, id: &str) -> Result<PullWatch, Status> {
        if !valid_id(id) {
            return Err(Status::invalid_argument(format!(
                "pull id must be 1 to {MAX_ID_LEN} characters of [A-Za-z0-9._-], got {id:?}"
            )));
        }
        let mut pulls = self.lock();
        if !pulls.contains_key(id) && pulls.len() >= MAX_TRACKED {
            return Err(Status::resource_exhausted(format!(
                "already tracking {MAX_TRACKED} pulls; try again later"
            )));
        }
        let tracked = pulls.entry(id.to_owned()).or_insert_with(Tracked::new);
        tracked.watchers += 1;
        Ok(PullWatch {
            tracker: self.clone(),
            id: id.to_owned(),
            progress: tracked.progress.clone(),
            since: tracked.since,
        })
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Follows a watched pull: an update whenever something changed (checked
/// every 100 ms or when a layer changes state), then a last one with
/// `done` set.
pub fn updates(watch: PullWatch) -> impl Stream<Item = Result<PullProgressUpdate, Status>> {
    async_stream::try_stream! {
        let mut last: Option<PullProgressUpdate> = None;
        loop {
            let done = watch.progress().is_finished();
            let update = PullProgressUpdate {
                layers: watch.progress().snapshot().iter().map(layer_message).collect(),
                done,
            };
            if last.as_ref() != Some(&update) {
                last = Some(update.clone());
                yield update;
            }
            if done {
                break;
            }
            if watch.since.elapsed() > UNCLAIMED_TTL && !watch.is_claimed() {
                Err(Status::deadline_exceeded(format!(
                    "no PullImage call with {PULL_ID_METADATA}: {} arrived within {}s",
                    watch.id,
                    UNCLAIMED_TTL.as_secs()
                )))?;
            }
            tokio::select! {
                _ = watch.progress().changed() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }
}

fn layer_message(layer: &LayerProgress) -> proto::LayerProgress {
    let state = match layer.state {
        LayerState::Waiting => proto::LayerState::Waiting,
        LayerState::Downloading => proto::LayerState::Downloading,
        LayerState::Exists => proto::LayerState::Exists,
        LayerState::Done => proto::LayerState::Done,
        LayerState::Failed => proto::LayerState::Failed,
    };
    proto::LayerProgress {
        digest: layer.digest.to_string(),
        current: layer.current,
        total: layer.total,
        state: state.into(),
    }
}

/// The stream a watch answers with.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<PullProgressUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl proto::pull_progress_server::PullProgress for CriService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let id = request.into_inner().pull_id;
        let watch = self.pulls().watch(&id)?;
        tracing::debug!(pull_id = %id, "watching pull progress");
        Ok(Response::new(Box::pin(updates(watch))))
    }
}

#[cfg(test)]
mod tests {
    use skiff_images::digest::Digest;
    use tokio_stream::StreamExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_watch_follows_its_pull_to_the_end_and_both_are_forgotten() {
        let tracker = Arc::new(PullTracker::new());
        let watch = tracker.watch("abc").unwrap();
        let mut stream = Box::pin(updates(watch));
        let first = stream.next().await.unwrap().unwrap();
        assert!(first.layers.is_empty() && !first.done);

        let ticket = tracker.start_pull(Some("abc"));
        let layer = Digest::sha256_of(b"layer");
        ticket.progress().set_layers([(layer.clone(), 10)]);
        ticket.progress().add_bytes(&layer, 4);
        let update = stream.next().await.unwrap().unwrap();
        assert_eq!(update.layers.len(), 1);
        assert_eq!(update.layers[0].digest, layer.to_string());
        assert_eq!(update.layers[0].total, 10);

        drop(ticket);
        let mut last = update;
        while let Some(update) = stream.next().await {
            last = update.unwrap();
        }
        assert!(last.done);
        drop(stream);
        assert!(tracker.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pull_nobody_watches_is_forgotten_when_it_ends() {
        let tracker = Arc::new(PullTracker::new());
        let ticket = tracker.start_pull(Some("lonely"));
        assert_eq!(tracker.len(), 1);
        drop(ticket);
        assert!(tracker.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unclaimed_watch_gives_up_and_is_forgotten() {
        let tracker = Arc::new(PullTracker::new());
        let mut stream = Box::pin(updates(tracker.watch("never").unwrap()));
        assert!(stream.next().await.unwrap().is_ok());
        let err = stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
        drop(stream);
        assert!(tracker.is_empty());
    }

    #[test]
    fn pulls_without_a_usable_id_are_not_tracked() {
        let tracker = Arc::new(PullTracker::new());
        let _plain = tracker.start_pull(None);
        let _bad = tracker.start_pull(Some("has space"));
        assert!(tracker.is_empty());
        assert!(tracker.watch("").is_err());
        assert!(tracker.watch(&"x".repeat(MAX_ID_LEN + 1)).is_err());
    }

    #[test]
    fn a_second_pull_with_the_same_id_keeps_its_progress_private() {
        let tracker = Arc::new(PullTracker::new());
        let first = tracker.start_pull(Some("dup"));
        let second = tracker.start_pull(Some("dup"));
        assert!(!Arc::ptr_eq(&first.progress(), &second.progress()));
        drop(second);
        assert_eq!(tracker.len(), 1);
        drop(first);
        assert!(tracker.is_empty());
    }
}
