//! An informer: a watch of every object of one kind kept in a reflector
//! store, calling back after each change is applied to the store (as
//! client-go's shared informer calls its handlers), so a handler that
//! triggers a reconcile never lets the reconcile read a store older than
//! the event.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// One change of the store, as an informer handler sees it.
#[derive(Debug)]
pub(crate) enum Change<K> {
    /// Added (`old` None) or updated.
    Applied {
        /// The object before, when the store had it.
        old: Option<Arc<K>>,
        /// The object now.
        new: Arc<K>,
    },
    /// Deleted (or gone from a relist); the last state seen.
    Deleted(Arc<K>),
}

/// Watches `api` into `writer` until `shutdown`, calling `on_change` after
/// every change is in the store. After a relist, objects that changed or
/// appeared are reported as applied and vanished ones as deleted.
pub(crate) async fn inform<K, F>(
    api: Api<K>,
    mut writer: Writer<K>,
    mut on_change: F,
    shutdown: CancellationToken,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: FnMut(Change<K>) + Send,
{
    let store: Store<K> = writer.as_reader();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut before_relist: Option<HashMap<ObjectRef<K>, Arc<K>>> = None;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = stream.next() => event,
        };
        let event = match event {
            None => return,
            Some(Err(err)) => {
                tracing::warn!(kind = %K::kind(&()), %err, "watch failed; retrying");
                continue;
            }
            Some(Ok(event)) => event,
        };
        match &event {
            watcher::Event::Apply(obj) => {
                let old = store.get(&ObjectRef::from_obj(obj));
                writer.apply_watcher_event(&event);
                if let Some(new) = store.get(&ObjectRef::from_obj(obj)) {
                    on_change(Change::Applied { old, new });
                }
            }
            watcher::Event::Delete(obj) => {
                let last = store
                    .get(&ObjectRef::from_obj(obj))
                    .unwrap_or_else(|| Arc::new(obj.clone()));
                writer.apply_watcher_event(&event);
                on_change(Change::Deleted(last));
            }
            watcher::Event::Init => {
                before_relist = Some(
                    store
                        .state()
                        .into_iter()
                        .map(|obj| (ObjectRef::from_obj(&*obj), obj))
                        .collect(),
                );
                writer.apply_watcher_event(&event);
            }
            watcher::Event::InitApply(_) => writer.apply_watcher_event(&event),
            watcher::Event::InitDone => {
                writer.apply_watcher_event(&event);
                let mut before = before_relist.take().unwrap_or_default();
                for new in store.state() {
                    let old = before.remove(&ObjectRef::from_obj(&*new));
                    let unchanged = old.as_ref().is_some_and(|old| {
                        old.meta().resource_version == new.meta().resource_version
                    });
                    if !unchanged {
                        on_change(Change::Applied { old, new });
                    }
                }
                for (_, gone) in before {
                    on_change(Change::Deleted(gone));
                }
            }
        }
    }
}
