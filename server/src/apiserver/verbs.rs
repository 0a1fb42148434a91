//! The verbs on stored objects: get, list, create, update, patch, delete,
//! deletecollection, and the status subresource, with kube-apiserver's
//! metadata rules (uid, creationTimestamp, generation, resourceVersion
//! preconditions, finalizers and deletionTimestamp).

use hyper::StatusCode;
use serde_json::{Value, json};

use super::Api;
use super::body;
use super::context::{Call, Reply};
use super::error::{ApiError, StatusCause};
use super::object::{self, meta_mut, meta_str};
use super::output;
use super::resources::ResourceType;
use super::store::{self, Store};
use crate::datastore::Revision;

/// How many names a create tries for a `generateName` before giving up.
const GENERATE_ATTEMPTS: usize = 8;

/// Kinds an update may create when the object does not exist.
const CREATE_ON_UPDATE: &[&str] = &["endpoints", "leases", "events", "endpointslices"];

/// Whether the request concerns only the status subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object (its status kept as stored, for kinds with a status subresource).
    Main,
    /// `/status`: only the status changes.
    Status,
}

/// `get`.
pub fn get(api: &Api, call: &Call) -> Result<Reply, ApiError> {
    let obj = api.store.get(&call.rt, call.namespace(), call.name(), 0)?;
    Ok(Reply::ok(output::one(api, call, obj)?))
}

/// `list`, with selectors and `limit`/`continue`.
pub fn list(api: &Api, call: &Call) -> Result<Reply, ApiError> {
    let rt = &call.rt;
    let filter = output::Filter::from_query(rt, &call.query)?;
    let limit: usize = match call.query.get("limit") {
        None | Some("") => 0,
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {text:?}")))?,
    };
    let prefix = Store::prefix(rt, call.namespace());
    let (mut revision, mut start_after) = match call.query.get("continue").filter(|c| !c.is_empty())
    {
        Some(token) => {
            let (revision, key) = output::decode_continue(token, &prefix)?;
            (revision, Some(key))
        }
        None => (list_revision(api, call)?, None),
    };
    if filter.is_everything()
        && call.wanted == super::body::Wanted::Object
        && !super::events::is_new_events(&rt.group, &rt.plural)
    {
        return list_raw(api, call, revision, start_after, limit, &prefix);
    }
    let mut items = Vec::new();
    let mut next = None;
    loop {
        let want = if limit == 0 { 0 } else { limit - items.len() };
        let page = api
            .store
            .list(rt, call.namespace(), revision, start_after.take(), want)
            .map_err(|err| continue_expired(err, call))?;
        revision = page.revision;
        for item in page.items {
            if filter.matches(&item)? {
                items.push(item);
            }
        }
        match page.continue_after {
            Some(key) if limit > 0 && items.len() >= limit => {
                next = Some(output::encode_continue(revision, &key, &prefix));
                break;
            }
            Some(key) => start_after = Some(key),
            None => break,
        }
    }
    Ok(Reply::ok(output::many(api, call, items, revision, next)?))
}

/// A list without selectors, as JSON: the stored objects are copied into
/// the answer, not decoded and encoded again.
fn list_raw(
    api: &Api,
    call: &Call,
    revision: Revision,
    start_after: Option<String>,
    limit: usize,
    prefix: &str,
) -> Result<Reply, ApiError> {
    let page = api
        .store
        .list_raw(&call.rt, call.namespace(), revision, start_after, limit)
        .map_err(|err| continue_expired(err, call))?;
    let mut metadata = json!({ "resourceVersion": page.revision.to_string() });
    if let Some(key) = &page.continue_after {
        metadata["continue"] = json!(output::encode_continue(page.revision, key, prefix));
    }
    let head = json!({
        "kind": format!("{}List", call.rt.kind),
        "apiVersion": call.rt.api_version(),
        "metadata": metadata,
    })
    .to_string();
    let size = head.len() + page.items.iter().map(|i| i.len() + 1).sum::<usize>() + 16;
    let mut out = Vec::with_capacity(size);
    // `{"apiVersion":...,"metadata":{...}` then `,"items":[...]}`.
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    let mut reply = Reply::ok(Value::Null);
    reply.raw = Some(out);
    Ok(reply)
}

fn continue_expired(err: ApiError, call: &Call) -> ApiError {
    if err.code == StatusCode::GONE && call.query.get("continue").is_some() {
        ApiError::expired(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        )
    } else if err.code == StatusCode::GONE {
        ApiError::expired("The resourceVersion for the provided list is too old.")
    } else {
        err
    }
}

/// The revision a list reads at: the latest, or exactly the asked one for
/// `resourceVersionMatch=Exact`.
fn list_revision(api: &Api, call: &Call) -> Result<Revision, ApiError> {
    let rv = call.query.str("resourceVersion");
    let matching = call.query.str("resourceVersionMatch");
    if rv.is_empty() || rv == "0" {
        if matching == "Exact" {
            return Err(ApiError::bad_request(
                "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
        return Ok(0);
    }
    let asked: Revision = rv
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?;
    let current = api.store.current_revision()?;
    match matching {
        "Exact" => Ok(asked),
        "" | "NotOlderThan" if asked > current => Err(ApiError::from(
            crate::datastore::DatastoreError::FutureRevision {
                requested: asked,
                current,
            },
        )),
        "" | "NotOlderThan" => Ok(0),
        other => Err(ApiError::bad_request(format!(
            "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
        ))),
    }
}

/// `create` (POST on a collection).
pub fn create(api: &Api, call: &Call, bytes: &[u8]) -> Result<Reply, ApiError> {
    if super::reviews::is_review(&call.rt.group, &call.rt.plural) {
        return super::reviews::answer(call, bytes);
    }
    let mut obj = body::decode_object(&call.headers, bytes)?;
    let warnings = api.check_fields(call, &mut obj)?;
    let rt = &call.rt;
    set_namespace(rt, call, &mut obj)?;
    let created = create_object(api, call, obj)?;
    let mut reply = Reply::with(StatusCode::CREATED, output::one(api, call, created)?);
    reply.warnings = warnings;
    Ok(reply)
}

/// Creates `obj` (already decoded, typed and namespaced).
pub fn create_object(api: &Api, call: &Call, original: Value) -> Result<Value, ApiError> {
    let rt = &call.rt;
    let generate =
        meta_str(&original, "name").is_empty() && !meta_str(&original, "generateName").is_empty();
    if rt.namespaced {
        api.namespace_accepts_content(meta_str(&original, "namespace"))?;
    }
    for attempt in 0.. {
        let mut obj = original.clone();
        if generate {
            let name = object::generate_name(meta_str(&obj, "generateName"));
            meta_mut(&mut obj).insert("name".into(), json!(name));
        }
        prepare_create(rt, &mut obj);
        api.admit(call, &mut obj, None)?;
        if let Err(err) = api.validate(rt, &obj, None) {
            api.release(rt, &obj);
            return Err(err);
        }
        api.record_fields(call, None, &mut obj);
        if call.dry_run() {
            api.release(rt, &obj);
            return Ok(obj);
        }
        match api.store.create(rt, &obj, api.lease_of(rt)) {
            Err(err) => {
                api.release(rt, &obj);
                if generate && err.reason == "AlreadyExists" && attempt < GENERATE_ATTEMPTS {
                    continue;
                }
                return Err(err);
            }
            Ok(created) => {
                api.created(rt, &created);
                return Ok(created);
            }
        }
    }
    unreachable!("the loop returns")
}

/// The metadata a new object gets: uid, creationTimestamp, generation;
/// fields a client may not set are cleared; status starts empty for kinds
/// with a status subresource.
pub fn prepare_create(rt: &ResourceType, obj: &mut Value) {
    let custom = rt.custom;
    {
        let meta = meta_mut(obj);
        meta.insert("uid".into(), json!(object::new_uid()));
        meta.insert("creationTimestamp".into(), json!(object::now()));
        for field in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(field);
        }
        if object::has_generation(&rt.plural, custom) {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    if rt.has_subresource("status")
        && rt.plural != "namespaces"
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
}

/// Fills the object's namespace from the path; a mismatch is a 400.
fn set_namespace(rt: &ResourceType, call: &Call, obj: &mut Value) -> Result<(), ApiError> {
    let in_body = meta_str(obj, "namespace").to_owned();
    if !rt.namespaced {
        if !in_body.is_empty() {
            meta_mut(obj).remove("namespace");
        }
        return Ok(());
    }
    if call.namespace().is_empty() {
        return Err(ApiError::no_resource());
    }
    if !in_body.is_empty() && in_body != call.namespace() {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    meta_mut(obj).insert("namespace".into(), json!(call.namespace()));
    Ok(())
}

/// Checks a body's apiVersion and kind against the resource (filling them
/// when absent).
pub fn check_type(rt: &ResourceType, obj: &mut Value, expected_kind: &str) -> Result<(), ApiError> {
    let api_version = rt.api_version();
    match obj["apiVersion"].as_str() {
        None | Some("") => obj["apiVersion"] = json!(api_version),
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match obj["kind"].as_str() {
        None | Some("") => obj["kind"] = json!(expected_kind),
        Some(k) if k == expected_kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({expected_kind})"
            )));
        }
    }
    Ok(())
}

/// `update` (PUT on an object or its status).
pub fn update(api: &Api, call: &Call, bytes: &[u8], part: Part) -> Result<Reply, ApiError> {
    let mut new = body::decode_object(&call.headers, bytes)?;
    let warnings = api.check_fields(call, &mut new)?;
    let rt = &call.rt;
    if meta_str(&new, "name") != call.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            meta_str(&new, "name"),
            call.name()
        )));
    }
    set_namespace(rt, call, &mut new)?;
    let explicit = store::resource_version(&new);
    let (code, value) = loop {
        let Some(old) = api.store.try_get(rt, call.namespace(), call.name(), 0)? else {
            if explicit == 0 && part == Part::Main && CREATE_ON_UPDATE.contains(&rt.plural.as_str())
            {
                break (StatusCode::CREATED, create_object(api, call, new.clone())?);
            }
            return Err(ApiError::not_found(&rt.group, &rt.plural, call.name()));
        };
        match write_update(api, call, &old, new.clone(), explicit, part) {
            Err(err) if err.reason == "Conflict" && explicit == 0 => continue,
            other => break (StatusCode::OK, other?),
        }
    };
    let mut reply = Reply::with(code, output::one(api, call, value)?);
    reply.warnings = warnings;
    Ok(reply)
}

/// Writes `new` over `old`: metadata the server owns kept, status or the
/// rest kept by `part`, generation bumped on a spec change, defaults,
/// validation; `expected` is the client's resourceVersion (0: `old`'s).
pub fn write_update(
    api: &Api,
    call: &Call,
    old: &Value,
    mut new: Value,
    expected: Revision,
    part: Part,
) -> Result<Value, ApiError> {
    let rt = &call.rt;
    let old_revision = store::resource_version(old);
    if expected != 0 && expected != old_revision {
        return Err(ApiError::modified(&rt.group, &rt.plural, call.name()));
    }
    prepare_update(rt, old, &mut new, part);
    api.admit(call, &mut new, Some(old))?;
    if let Err(err) = api.validate(rt, &new, Some(old)) {
        api.abandoned_update(rt, old, &new);
        return Err(err);
    }
    api.record_fields(call, Some(old), &mut new);
    if unchanged(old, &new) {
        return Ok(old.clone());
    }
    if call.dry_run() {
        api.abandoned_update(rt, old, &new);
        return Ok(new);
    }
    let written = match api.store.update(rt, &new, old_revision, api.lease_of(rt)) {
        Ok(written) => written,
        Err(err) => {
            api.abandoned_update(rt, old, &new);
            return Err(err);
        }
    };
    api.updated(rt, old, &written);
    if !meta_str(&written, "deletionTimestamp").is_empty()
        && object::finalizers(&written).is_empty()
        && written["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0)
            == 0
    {
        // The last finalizer is gone and no grace period runs (a pod's
        // kubelet is still stopping it otherwise): the object goes now.
        if let Ok((gone, _)) = api.store.delete(
            rt,
            meta_str(&written, "namespace"),
            meta_str(&written, "name"),
            store::resource_version(&written),
        ) {
            api.deleted(rt, &gone);
        }
    }
    Ok(written)
}

fn unchanged(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
        v
    };
    strip(old) == strip(new)
}

/// Keeps what a client may not change on update.
pub fn prepare_update(rt: &ResourceType, old: &Value, new: &mut Value, part: Part) {
    let has_status = rt.has_subresource("status");
    match part {
        Part::Main => {
            if has_status {
                match old.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
        }
        Part::Status => {
            // Everything but the status (and labels/annotations
            // controllers set) comes from the stored object.
            let status = new.get("status").cloned();
            let mut merged = old.clone();
            match status {
                Some(status) => merged["status"] = status,
                None => {
                    if let Some(map) = merged.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            merged["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"].clone();
            if let Some(managed) = new["metadata"].get("managedFields").cloned() {
                merged["metadata"]["managedFields"] = managed;
            }
            *new = merged;
        }
    }
    let keep = [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ];
    let old_meta = old["metadata"].as_object().cloned().unwrap_or_default();
    let meta = meta_mut(new);
    for field in keep {
        match old_meta.get(field) {
            Some(value) => {
                meta.insert(field.into(), value.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
    meta.remove("selfLink");
    if object::has_generation(&rt.plural, rt.custom) && object::spec_of(old) != object::spec_of(new)
    {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        meta_mut(new).insert("generation".into(), json!(generation));
    }
}

/// Options of a delete, from the body (`DeleteOptions`) or the query.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace: Option<i64>,
    /// `propagationPolicy`: Orphan, Background, Foreground.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

impl DeleteOptions {
    /// Reads the options of a delete request.
    pub fn read(call: &Call, bytes: &[u8]) -> Result<Self, ApiError> {
        let mut options = DeleteOptions::default();
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            let value = body::decode_object(&call.headers, bytes)?;
            options.grace = value["gracePeriodSeconds"].as_i64();
            options.propagation = value["propagationPolicy"].as_str().map(str::to_owned);
            if value["orphanDependents"].as_bool() == Some(true) && options.propagation.is_none() {
                options.propagation = Some("Orphan".into());
            }
            options.uid = value["preconditions"]["uid"].as_str().map(str::to_owned);
            options.resource_version = value["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_owned);
        }
        if let Some(grace) = call.query.get("gracePeriodSeconds") {
            options.grace = Some(grace.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid gracePeriodSeconds {grace:?}"))
            })?);
        }
        if let Some(policy) = call.query.get("propagationPolicy") {
            options.propagation = Some(policy.to_owned());
        }
        if let Some(policy) = &options.propagation
            && !matches!(policy.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::invalid(
                "",
                "DeleteOptions",
                "",
                format!(
                    "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {policy:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                ),
                &[StatusCause {
                    reason: "FieldValueNotSupported".into(),
                    message: format!("Unsupported value: {policy:?}"),
                    field: "propagationPolicy".into(),
                }],
            ));
        }
        Ok(options)
    }

    /// Applies the kind's default propagation when the request names none:
    /// batch/v1 Jobs orphan their pods (upstream keeps that default for
    /// compatibility, and warns). Returns the warning to send.
    fn default_propagation(&mut self, rt: &ResourceType) -> Option<String> {
        if self.propagation.is_some() || rt.custom || rt.group != "batch" || rt.plural != "jobs" {
            return None;
        }
        self.propagation = Some("Orphan".into());
        Some(JOB_ORPHAN_WARNING.to_owned())
    }
}

/// kube-apiserver's warning when a Job delete names no propagation policy.
const JOB_ORPHAN_WARNING: &str = "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning";

/// `delete`: gone at once, or marked with deletionTimestamp while
/// finalizers (or a node's kubelet, for a bound pod) finish it.
pub fn delete(api: &Api, call: &Call, bytes: &[u8]) -> Result<Reply, ApiError> {
    let mut options = DeleteOptions::read(call, bytes)?;
    let warning = options.default_propagation(&call.rt);
    let mut reply = delete_reply(api, call, &options)?;
    reply.warnings.extend(warning);
    Ok(reply)
}

fn delete_reply(api: &Api, call: &Call, options: &DeleteOptions) -> Result<Reply, ApiError> {
    let (obj, gone) = delete_object(api, call, call.namespace(), call.name(), options)?;
    let rt = &call.rt;
    if !gone {
        return Ok(Reply::with(
            StatusCode::ACCEPTED,
            output::one(api, call, obj)?,
        ));
    }
    if rt.plural == "pods" || rt.custom {
        return Ok(Reply::ok(output::one(api, call, obj)?));
    }
    let mut details =
        json!({ "name": call.name(), "kind": rt.plural, "uid": meta_str(&obj, "uid") });
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    Ok(Reply::ok(json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })))
}

/// The finalizers an object being deleted keeps, with the garbage
/// collector's set by the propagation policy (upstream's
/// `deletionFinalizersForGarbageCollection`): Orphan wants `orphan`,
/// Foreground `foregroundDeletion`, Background neither; no policy leaves
/// them as they are.
fn gc_finalizers(mut finalizers: Vec<String>, propagation: Option<&str>) -> Vec<String> {
    let wanted = match propagation {
        Some("Orphan") => Some("orphan"),
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Background") => None,
        _ => return finalizers,
    };
    finalizers.retain(|f| {
        !matches!(f.as_str(), "orphan" | "foregroundDeletion") || Some(f.as_str()) == wanted
    });
    if let Some(wanted) = wanted
        && !finalizers.iter().any(|f| f == wanted)
    {
        finalizers.push(wanted.to_owned());
    }
    finalizers
}

/// Deletes one object; returns its last value and whether it is gone (else
/// it is marked for deletion).
pub fn delete_object(
    api: &Api,
    call: &Call,
    namespace: &str,
    name: &str,
    options: &DeleteOptions,
) -> Result<(Value, bool), ApiError> {
    let rt = &call.rt;
    for _ in 0..16 {
        let old = api.store.get(rt, namespace, name, 0)?;
        if let Some(uid) = &options.uid
            && uid != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid")
                ),
            ));
        }
        if let Some(rv) = &options.resource_version
            && rv != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion")
                ),
            ));
        }
        let finalizers = gc_finalizers(object::finalizers(&old), options.propagation.as_deref());
        let graceful = api.deletion_grace(rt, &old, options.grace);
        let namespace_lifecycle = rt.plural == "namespaces" && !rt.custom;
        if finalizers.is_empty() && graceful.is_none() && !namespace_lifecycle {
            if call.dry_run() {
                return Ok((old, true));
            }
            match api
                .store
                .delete(rt, namespace, name, store::resource_version(&old))
            {
                Ok((gone, _)) => {
                    api.deleted(rt, &gone);
                    return Ok((gone, true));
                }
                Err(err) if err.reason == "Conflict" => continue,
                Err(err) => return Err(err),
            }
        }
        let mut grace = graceful.unwrap_or(0);
        let already = !meta_str(&old, "deletionTimestamp").is_empty();
        if already {
            // Already being deleted: a shorter grace period (the kubelet's
            // final DELETE with 0) or a new finalizer still applies; a
            // grace period is never extended.
            let current = old["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0);
            if grace >= current && finalizers == object::finalizers(&old) {
                return Ok((old, false));
            }
            grace = grace.min(current);
        }
        let mut marked = old.clone();
        if !already
            || grace
                < old["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(0)
        {
            let meta = meta_mut(&mut marked);
            let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(grace);
            meta.insert("deletionTimestamp".into(), json!(object::timestamp(at)));
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        if !finalizers.is_empty() {
            meta_mut(&mut marked).insert("finalizers".into(), json!(finalizers));
        }
        if !already && object::has_generation(&rt.plural, rt.custom) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut marked).insert("generation".into(), json!(generation));
        }
        if namespace_lifecycle {
            marked["status"]["phase"] = json!("Terminating");
        }
        if call.dry_run() {
            return Ok((marked, false));
        }
        match api
            .store
            .update(rt, &marked, store::resource_version(&old), 0)
        {
            Ok(written) => {
                api.updated(rt, &old, &written);
                return Ok((written, false));
            }
            Err(err) if err.reason == "Conflict" => continue,
            Err(err) => return Err(err),
        }
    }
    Err(ApiError::modified(&rt.group, &rt.plural, name))
}

/// `deletecollection`: deletes what a list with the same selectors finds.
pub fn delete_collection(api: &Api, call: &Call, bytes: &[u8]) -> Result<Reply, ApiError> {
    let mut options = DeleteOptions::read(call, bytes)?;
    let warning = options.default_propagation(&call.rt);
    let rt = &call.rt;
    let filter = output::Filter::from_query(rt, &call.query)?;
    let page = api.store.list(rt, call.namespace(), 0, None, 0)?;
    let mut deleted = Vec::new();
    for item in page.items {
        if !filter.matches(&item)? {
            continue;
        }
        let (namespace, name) = store::namespace_and_name(&item);
        match delete_object(api, call, &namespace, &name, &options) {
            Ok((obj, _)) => deleted.push(obj),
            Err(err) if err.code == StatusCode::NOT_FOUND => {}
            Err(err) => return Err(err),
        }
    }
    let revision = api.store.current_revision()?;
    let mut reply = Reply::ok(output::many(api, call, deleted, revision, None)?);
    reply.warnings.extend(warning);
    Ok(reply)
}

/// `patch`: JSON, merge and strategic merge patches, and server-side apply.
pub fn patch(api: &Api, call: &Call, bytes: &[u8], part: Part) -> Result<Reply, ApiError> {
    use super::patch::{PatchType, apply_patch};
    let rt = &call.rt;
    let media = body::content_type(&call.headers);
    let patch_type = PatchType::from_content_type(&media).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {media})"
        ))
    })?;
    let root = api.root_definition(rt);
    if patch_type == PatchType::Apply {
        return apply(api, call, bytes, part);
    }
    if patch_type == PatchType::StrategicMerge && rt.custom {
        return Err(ApiError::unsupported_media_type(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        ));
    }
    let mut warnings;
    let written = loop {
        let old = api.store.get(rt, call.namespace(), call.name(), 0)?;
        let mut new = apply_patch(
            patch_type,
            &old,
            bytes,
            root.as_deref(),
            api.openapi.as_ref(),
        )
        .map_err(|e| api.patch_error(call, e))?;
        warnings = api.check_fields(call, &mut new)?;
        if meta_str(&new, "name") != call.name() {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({})",
                meta_str(&new, "name"),
                call.name()
            )));
        }
        if rt.namespaced && meta_str(&new, "namespace") != call.namespace() {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        // A resourceVersion in the patch is a precondition.
        let explicit = match store::resource_version(&new) {
            rv if rv == store::resource_version(&old) => 0,
            rv => rv,
        };
        match write_update(api, call, &old, new, explicit, part) {
            Err(err) if err.reason == "Conflict" && explicit == 0 => continue,
            other => break other?,
        }
    };
    let mut reply = Reply::ok(output::one(api, call, written)?);
    reply.warnings = warnings;
    Ok(reply)
}

/// Server-side apply (`application/apply-patch+yaml`): creates the object
/// when absent, else merges the applied configuration by field ownership.
fn apply(api: &Api, call: &Call, bytes: &[u8], part: Part) -> Result<Reply, ApiError> {
    let rt = &call.rt;
    let mut applied = body::decode_yaml(bytes)?;
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    }
    let Some(manager) = call.query.get("fieldManager").filter(|m| !m.is_empty()) else {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    };
    let force = call.query.flag("force");
    super::apply::check_applied_type(&applied, &rt.api_version(), &rt.kind)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let warnings = api.check_fields(call, &mut applied)?;
    if meta_str(&applied, "name") != call.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            meta_str(&applied, "name"),
            call.name()
        )));
    }
    set_namespace(rt, call, &mut applied)?;
    let (code, written) = loop {
        let live = api.store.try_get(rt, call.namespace(), call.name(), 0)?;
        let merged = api.server_side_apply(call, live.as_ref(), &applied, manager, force)?;
        match live {
            None => {
                if part == Part::Status {
                    return Err(ApiError::not_found(&rt.group, &rt.plural, call.name()));
                }
                match create_object(api, call, merged) {
                    Err(err) if err.reason == "AlreadyExists" => continue,
                    other => break (StatusCode::CREATED, other?),
                }
            }
            Some(old) => match write_update(api, call, &old, merged, 0, part) {
                Err(err) if err.reason == "Conflict" => continue,
                other => break (StatusCode::OK, other?),
            },
        }
    };
    let mut reply = Reply::with(code, output::one(api, call, written)?);
    reply.warnings = warnings;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::gc_finalizers;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_policy_sets_the_collectors_finalizers_and_keeps_others() {
        let start = names(&["example.com/hold", "orphan"]);
        assert_eq!(
            gc_finalizers(start.clone(), Some("Foreground")),
            names(&["example.com/hold", "foregroundDeletion"])
        );
        assert_eq!(
            gc_finalizers(start.clone(), Some("Background")),
            names(&["example.com/hold"])
        );
        assert_eq!(gc_finalizers(start.clone(), Some("Orphan")), start);
        assert_eq!(gc_finalizers(start.clone(), None), start);
        assert_eq!(
            gc_finalizers(Vec::new(), Some("Orphan")),
            names(&["orphan"])
        );
    }
}
