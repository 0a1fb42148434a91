//! [`Watch`]: the events of keys under a prefix after a revision — first
//! replayed from the log, then followed as they are committed.
//!
//! The watch subscribes before it reads the log, so no write falls between
//! the two; whatever both deliver is skipped by revision. A watch that falls
//! behind the live events reads the log again from where it was.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{DatastoreError, Event, Revision, RevisionLog};

/// Events read from the log at once.
const REPLAY_BATCH: usize = 1000;

/// A stream of events for keys under a prefix.
pub struct Watch {
    log: Arc<dyn RevisionLog>,
    live: broadcast::Receiver<Event>,
    prefix: String,
    /// Every event at or below this revision was delivered (or skipped).
    seen: Revision,
    backlog: VecDeque<Event>,
    /// Whether the log has nothing newer than `seen` for us: then live
    /// events follow on directly.
    caught_up: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("prefix", &self.prefix)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// Events for keys under `prefix` after revision `after`;
    /// [`DatastoreError::Compacted`] when events after it are gone.
    pub fn start(
        log: Arc<dyn RevisionLog>,
        prefix: &str,
        after: Revision,
    ) -> Result<Watch, DatastoreError> {
        let live = log.subscribe();
        let compacted = log.compact_revision()?;
        if after < compacted {
            return Err(DatastoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        Ok(Watch {
            log,
            live,
            prefix: prefix.to_owned(),
            seen: after,
            backlog: VecDeque::new(),
            caught_up: false,
        })
    }

    /// The next event, in revision order. Fails with
    /// [`DatastoreError::Compacted`] when the watch fell so far behind that
    /// the events it needs are compacted (the client must list again).
    pub async fn next(&mut self) -> Result<Event, DatastoreError> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                return Ok(event);
            }
            if !self.caught_up {
                self.replay()?;
                continue;
            }
            match self.live.recv().await {
                Ok(event) => {
                    if event.kv.mod_revision <= self.seen {
                        continue;
                    }
                    self.seen = event.kv.mod_revision;
                    if event.kv.key.starts_with(&self.prefix) {
                        return Ok(event);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.caught_up = false,
                Err(broadcast::error::RecvError::Closed) => {
                    // The log is gone; nothing more will come.
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Reads the log after `seen` into the backlog.
    fn replay(&mut self) -> Result<(), DatastoreError> {
        let current = self.log.current_revision()?;
        let events = self.log.events(&self.prefix, self.seen, REPLAY_BATCH)?;
        let full = events.len() == REPLAY_BATCH;
        if let Some(last) = events.last() {
            self.seen = self.seen.max(last.kv.mod_revision);
        }
        if !full {
            // Everything up to `current` is read: what the subscription
            // holds at or below it was delivered now.
            self.seen = self.seen.max(current);
            self.caught_up = true;
        }
        self.backlog.extend(events);
        Ok(())
    }
}
