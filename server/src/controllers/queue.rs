//! The plumbing the controllers share: an informer (a watcher feeding a
//! reflector store) per resource, per-object error back-off as client-go's
//! default controller rate limiter computes it, object keys, and reading
//! the apiserver's errors.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

use futures::Stream;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;

/// The first retry after a failure (client-go's 5 ms).
const BACKOFF_BASE: Duration = Duration::from_millis(5);
/// The longest wait between retries (client-go's 1000 s).
const BACKOFF_MAX: Duration = Duration::from_secs(1000);

/// The events of one informer's watch; its store fills while this is polled.
pub(crate) type WatchEvents<K> = std::pin::Pin<
    Box<dyn Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static>,
>;

/// A cache of the `K`s `api` serves, and the stream of watch events that
/// keeps it filled (the store only fills while the stream is polled).
/// The watch re-connects with back-off.
pub(crate) fn informer<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, WatchEvents<K>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let events = reflector::reflector(writer, watcher(api, config).default_backoff());
    (reader, Box::pin(events))
}

/// Per-object retry delays after failed reconciles: 5 ms doubling up to
/// 1000 s, reset by a success (client-go's per-item exponential limiter).
#[derive(Debug, Default)]
pub(crate) struct ErrorBackoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl ErrorBackoff {
    /// Counts a failure of `key` and says how long to wait before retrying.
    pub(crate) fn next_delay(&self, key: &str) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = failures.entry(key.to_owned()).or_insert(0);
        let delay = BACKOFF_BASE
            .checked_mul(1u32.checked_shl(*count).unwrap_or(u32::MAX))
            .map_or(BACKOFF_MAX, |d| d.min(BACKOFF_MAX));
        *count = count.saturating_add(1);
        delay
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub(crate) fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// The `namespace/name` key of an object, as client-go's queues key them.
pub(crate) fn object_key(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> String {
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
        _ => meta.name.clone().unwrap_or_default(),
    }
}

/// [`object_key`] of any object.
pub(crate) fn key_of<K: Resource>(obj: &K) -> String {
    object_key(obj.meta())
}

/// Whether a create failed because the namespace is being deleted (the
/// apiserver refuses new objects there for as long as it terminates).
pub(crate) fn namespace_terminating(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status)
        if status.code == 403 && status.message.contains("because it is being terminated"))
}

/// An error as a Go client prints it: the API's message when there is one.
pub(crate) fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_5ms_caps_at_1000s_and_resets() {
        let backoff = ErrorBackoff::default();
        assert_eq!(backoff.next_delay("a"), Duration::from_millis(5));
        assert_eq!(backoff.next_delay("a"), Duration::from_millis(10));
        assert_eq!(backoff.next_delay("a"), Duration::from_millis(20));
        assert_eq!(backoff.next_delay("b"), Duration::from_millis(5));
        for _ in 0..40 {
            backoff.next_delay("a");
        }
        assert_eq!(backoff.next_delay("a"), BACKOFF_MAX);
        backoff.reset("a");
        assert_eq!(backoff.next_delay("a"), Duration::from_millis(5));
    }
}
