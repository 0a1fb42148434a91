//! `watch`: a chunked stream of `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR,
//! "object": ...}` events, one JSON document per line, from a
//! resourceVersion (or the current state, sent as ADDED events first).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::body::Wanted;
use super::context::Call;
use super::error::ApiError;
use super::output::{self, Filter};
use super::store::{self, Store};
use super::{Api, Body};
use crate::datastore::{EventKind, Revision, Watch};

/// Longest a watch stays open unless `timeoutSeconds` says otherwise
/// (kube-apiserver's default request timeout).
const MAX_WATCH: Duration = Duration::from_secs(1800);
/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// Starts a watch and answers with its stream.
pub fn watch(api: Arc<Api>, call: Call) -> Result<Response<Body>, ApiError> {
    let rt = call.rt.clone();
    let filter = Filter::from_query(&rt, &call.query)?;
    let name = call.name().to_owned();
    let prefix = if name.is_empty() {
        Store::prefix(&rt, call.namespace())
    } else {
        Store::key(&rt, call.namespace(), &name)
    };
    let rv = call.query.str("resourceVersion").to_owned();
    let send_initial = call.query.flag("sendInitialEvents");
    let bookmarks = call.query.flag("allowWatchBookmarks");
    let timeout = call
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(MAX_WATCH)
        .min(MAX_WATCH);

    let mut initial = Vec::new();
    let start: Revision;
    let mut expired = None;
    if rv.is_empty() || rv == "0" || send_initial {
        let page = api.store.list(&rt, call.namespace(), 0, None, 0)?;
        start = page.revision;
        initial = page
            .items
            .into_iter()
            .filter(|item| name.is_empty() || store::namespace_and_name(item).1 == name)
            .collect();
    } else {
        start = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?;
        let compacted = api.store.log().compact_revision()?;
        if start < compacted {
            expired = Some(ApiError::expired(format!(
                "too old resource version: {start} ({compacted})"
            )));
        }
    }

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let stream_api = api.clone();
    tokio::spawn(async move {
        let send = |event: Value| {
            let tx = tx.clone();
            async move {
                let mut line = event.to_string().into_bytes();
                line.push(b'\n');
                tx.send(Bytes::from(line)).await.is_ok()
            }
        };
        if let Some(err) = expired {
            let _ = send(json!({ "type": "ERROR", "object": err.status() })).await;
            return;
        }
        let mut first = true;
        for item in initial {
            if !matches!(filter.matches(&item), Ok(true)) {
                continue;
            }
            if !send(event_json(&stream_api, &call, "ADDED", item, first)).await {
                return;
            }
            first = false;
        }
        if send_initial && bookmarks {
            let bookmark = bookmark_json(&call, start, true);
            if !send(bookmark).await {
                return;
            }
        }
        let mut watch = match Watch::start(stream_api.store.log().clone(), &prefix, start) {
            Ok(watch) => watch,
            Err(err) => {
                let _ =
                    send(json!({ "type": "ERROR", "object": ApiError::from(err).status() })).await;
                return;
            }
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        let mut seen = start;
        loop {
            tokio::select! {
                () = &mut deadline => return,
                () = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if !send(bookmark_json(&call, seen, false)).await {
                        return;
                    }
                }
                next = watch.next() => {
                    let event = match next {
                        Ok(event) => event,
                        Err(err) => {
                            let _ = send(json!({ "type": "ERROR", "object": ApiError::from(err).status() })).await;
                            return;
                        }
                    };
                    seen = event.kv.mod_revision;
                    if !name.is_empty() && event.kv.key != prefix {
                        continue;
                    }
                    let Some((kind, obj)) = classify(&stream_api, &call, &filter, &event) else {
                        continue;
                    };
                    if !send(event_json(&stream_api, &call, kind, obj, first)).await {
                        return;
                    }
                    first = false;
                }
            }
        }
    });

    let frames =
        tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), |bytes| {
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes))
        });
    let mut response = Response::new(super::stream(frames));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The event type a client sees for a write, given its selectors: an
/// object that starts matching is ADDED, one that stops is DELETED.
fn classify(
    api: &Api,
    call: &Call,
    filter: &Filter,
    event: &crate::datastore::Event,
) -> Option<(&'static str, Value)> {
    let obj = Store::decode(&call.rt, &event.kv).ok()?;
    let now = filter.matches(&obj).unwrap_or(false);
    match event.kind {
        EventKind::Create => now.then_some(("ADDED", obj)),
        EventKind::Delete => now.then_some(("DELETED", obj)),
        EventKind::Update => {
            if filter.is_everything() {
                return Some(("MODIFIED", obj));
            }
            let before = api
                .store
                .log()
                .get(&event.kv.key, event.prev_revision)
                .ok()
                .flatten()
                .and_then(|kv| Store::decode(&call.rt, &kv).ok())
                .map(|old| filter.matches(&old).unwrap_or(false))
                .unwrap_or(false);
            match (before, now) {
                (true, true) => Some(("MODIFIED", obj)),
                (false, true) => Some(("ADDED", obj)),
                (true, false) => Some(("DELETED", obj)),
                (false, false) => None,
            }
        }
    }
}

fn event_json(api: &Api, call: &Call, kind: &str, obj: Value, first: bool) -> Value {
    let object = match call.wanted {
        Wanted::Object => obj,
        _ => output::one_with(api, call, obj, !first).unwrap_or_else(|err| err.status()),
    };
    json!({ "type": kind, "object": object })
}

fn bookmark_json(call: &Call, revision: Revision, initial_end: bool) -> Value {
    let mut metadata = json!({ "resourceVersion": revision.to_string() });
    if initial_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    json!({
        "type": "BOOKMARK",
        "object": {
            "kind": call.rt.kind,
            "apiVersion": call.rt.api_version(),
            "metadata": metadata,
        },
    })
}
