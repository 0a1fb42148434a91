//! Events expire: kube-apiserver keeps them for `--event-ttl` (one hour),
//! so a busy cluster's datastore does not grow with them.

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Api;
use super::error::ApiError;
use super::object::meta_str;

/// How long an event is kept after it was last seen (kube-apiserver's default).
pub const EVENT_TTL: Duration = Duration::from_secs(3600);

/// When an event was last seen: lastTimestamp, eventTime, the series'
/// lastObservedTime, or its creation.
fn last_seen(event: &Value) -> Option<OffsetDateTime> {
    [
        &event["series"]["lastObservedTime"],
        &event["lastTimestamp"],
        &event["eventTime"],
        &event["metadata"]["creationTimestamp"],
    ]
    .iter()
    .filter_map(|v| v.as_str())
    .filter_map(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    .max()
}

/// Deletes events last seen more than `ttl` ago; returns how many.
pub fn expire(api: &Api, ttl: Duration, now: OffsetDateTime) -> Result<usize, ApiError> {
    let mut removed = 0;
    for rt in api.resources.all() {
        // Core events only: events.k8s.io events are the same objects.
        if rt.plural != "events" || !rt.group.is_empty() {
            continue;
        }
        let mut start_after = None;
        loop {
            let page = api.store.list(&rt, "", 0, start_after.take(), 500)?;
            for event in &page.items {
                let expired = last_seen(event).is_none_or(|at| now - at > ttl);
                if !expired {
                    continue;
                }
                let namespace = meta_str(event, "namespace");
                let name = meta_str(event, "name");
                match api
                    .store
                    .delete(&rt, namespace, name, super::store::resource_version(event))
                {
                    Ok(_) => removed += 1,
                    Err(err) if err.reason == "Conflict" || err.reason == "NotFound" => {}
                    Err(err) => return Err(err),
                }
            }
            match page.continue_after {
                Some(key) => start_after = Some(key),
                None => break,
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_last_seen_at_its_latest_time() {
        let event = serde_json::json!({
            "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
            "lastTimestamp": "2026-01-01T02:00:00Z",
        });
        let at = last_seen(&event).unwrap();
        assert_eq!(
            at,
            OffsetDateTime::parse("2026-01-01T02:00:00Z", &Rfc3339).unwrap()
        );
        assert!(last_seen(&serde_json::json!({})).is_none());
    }
}

/// Fields of `events.k8s.io/v1` Event and their `v1` Event names: both
/// versions are one stored object, as in kube-apiserver.
const FIELD_NAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Whether a resource type is `events.k8s.io` events (stored as core events).
pub fn is_new_events(group: &str, plural: &str) -> bool {
    group == "events.k8s.io" && plural == "events"
}

/// A stored (`v1`) Event as `events.k8s.io/v1`.
pub fn to_events_v1(core: &Value) -> Value {
    rename(core, "events.k8s.io/v1", |name| {
        FIELD_NAMES
            .iter()
            .find(|(_, old)| *old == name)
            .map(|(new, _)| *new)
    })
}

/// An `events.k8s.io/v1` Event as the stored `v1` Event.
pub fn to_core(new: &Value) -> Value {
    rename(new, "v1", |name| {
        FIELD_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, old)| *old)
    })
}

fn rename(event: &Value, api_version: &str, map: impl Fn(&str) -> Option<&'static str>) -> Value {
    let Some(fields) = event.as_object() else {
        return event.clone();
    };
    let mut out = serde_json::Map::new();
    for (name, value) in fields {
        let name = map(name).map_or_else(|| name.clone(), str::to_owned);
        out.insert(name, value.clone());
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

#[cfg(test)]
mod conversion_tests {
    use super::*;

    #[test]
    fn both_event_versions_are_one_object() {
        let core = serde_json::json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "pulled", "reason": "Pulled",
            "source": {"component": "kubelet"}, "count": 2, "reportingComponent": "kubelet",
        });
        let new = to_events_v1(&core);
        assert_eq!(new["apiVersion"], "events.k8s.io/v1");
        assert_eq!(new["regarding"]["name"], "p");
        assert_eq!(new["note"], "pulled");
        assert_eq!(new["deprecatedCount"], 2);
        assert_eq!(to_core(&new), core);
    }
}
