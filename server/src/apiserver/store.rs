//! API objects over the revision log: keys, JSON encoding, and the
//! resourceVersion, which is the revision of the object's last write (it is
//! not stored in the value; reads set it, as kube-apiserver's etcd3 store).

use std::sync::Arc;

use serde_json::Value;

use super::error::ApiError;
use super::events;
use super::resources::ResourceType;
use crate::datastore::{DatastoreError, KeyValue, ListOptions, Revision, RevisionLog};

/// How many times a read-modify-write is retried on a concurrent write.
const UPDATE_ATTEMPTS: usize = 16;

/// A page of a list.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The objects, in key order.
    pub items: Vec<Value>,
    /// The revision the page was read at.
    pub revision: Revision,
    /// The last key read, when more remain.
    pub continue_after: Option<String>,
}

/// A page of a list as stored JSON (resourceVersion spliced in), for
/// answers that need no decoding.
#[derive(Debug, Clone, Default)]
pub struct RawPage {
    /// The objects' JSON, in key order.
    pub items: Vec<Vec<u8>>,
    /// The revision the page was read at.
    pub revision: Revision,
    /// The last key read, when more remain.
    pub continue_after: Option<String>,
}

/// Objects by resource type, namespace and name.
#[derive(Clone)]
pub struct Store {
    log: Arc<dyn RevisionLog>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// A store over `log`.
    pub fn new(log: Arc<dyn RevisionLog>) -> Self {
        Self { log }
    }

    /// The revision log.
    pub fn log(&self) -> &Arc<dyn RevisionLog> {
        &self.log
    }

    /// The key of an object.
    pub fn key(rt: &ResourceType, namespace: &str, name: &str) -> String {
        if rt.namespaced {
            format!("{}{namespace}/{name}", rt.key_prefix())
        } else {
            format!("{}{name}", rt.key_prefix())
        }
    }

    /// The prefix of a namespace's objects of a type (all of them for "").
    pub fn prefix(rt: &ResourceType, namespace: &str) -> String {
        if rt.namespaced && !namespace.is_empty() {
            format!("{}{namespace}/", rt.key_prefix())
        } else {
            rt.key_prefix()
        }
    }

    /// Decodes a stored value as `rt` serves it, setting its resourceVersion.
    pub fn decode(rt: &ResourceType, kv: &KeyValue) -> Result<Value, ApiError> {
        let mut obj: Value = serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
        if events::is_new_events(&rt.group, &rt.plural) {
            obj = events::to_events_v1(&obj);
        }
        set_resource_version(&mut obj, kv.mod_revision);
        Ok(obj)
    }

    fn encode(rt: &ResourceType, obj: &Value) -> Result<Vec<u8>, ApiError> {
        let mut obj = if events::is_new_events(&rt.group, &rt.plural) {
            events::to_core(obj)
        } else {
            obj.clone()
        };
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        serde_json::to_vec(&obj).map_err(|e| ApiError::internal(format!("encoding: {e}")))
    }

    /// The object, at `revision` (0: the latest); `None` when absent.
    pub fn try_get(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        revision: Revision,
    ) -> Result<Option<Value>, ApiError> {
        let key = Self::key(rt, namespace, name);
        match self.log.get(&key, revision)? {
            Some(kv) => Ok(Some(Self::decode(rt, &kv)?)),
            None => Ok(None),
        }
    }

    /// The object, 404 when absent.
    pub fn get(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        revision: Revision,
    ) -> Result<Value, ApiError> {
        self.try_get(rt, namespace, name, revision)?
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Stores a new object; 409 AlreadyExists when the name is taken.
    pub fn create(&self, rt: &ResourceType, obj: &Value, lease: i64) -> Result<Value, ApiError> {
        let (namespace, name) = namespace_and_name(obj);
        let key = Self::key(rt, &namespace, &name);
        let value = Self::encode(rt, obj)?;
        match self.log.create(&key, &value, lease) {
            Ok(revision) => {
                let mut obj = obj.clone();
                set_resource_version(&mut obj, revision);
                Ok(obj)
            }
            Err(DatastoreError::AlreadyExists(_)) => {
                Err(ApiError::already_exists(&rt.group, &rt.plural, &name))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Replaces an object written at `expected`; 409 Conflict when it was
    /// written since, 404 when it is gone.
    pub fn update(
        &self,
        rt: &ResourceType,
        obj: &Value,
        expected: Revision,
        lease: i64,
    ) -> Result<Value, ApiError> {
        let (namespace, name) = namespace_and_name(obj);
        let key = Self::key(rt, &namespace, &name);
        let value = Self::encode(rt, obj)?;
        match self.log.update(&key, &value, expected, lease) {
            Ok(kv) => {
                let mut obj = obj.clone();
                set_resource_version(&mut obj, kv.mod_revision);
                Ok(obj)
            }
            Err(DatastoreError::Conflict { .. }) => {
                Err(ApiError::modified(&rt.group, &rt.plural, &name))
            }
            Err(DatastoreError::NotFound(_)) => {
                Err(ApiError::not_found(&rt.group, &rt.plural, &name))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Reads the object, lets `change` make its new value (`None`: leave it
    /// as is) and writes it, retrying when another write came between.
    pub fn update_with(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        mut change: impl FnMut(Value) -> Result<Option<Value>, ApiError>,
    ) -> Result<Value, ApiError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.get(rt, namespace, name, 0)?;
            let revision = resource_version(&current);
            let Some(new) = change(current.clone())? else {
                return Ok(current);
            };
            match self.update(rt, &new, revision, 0) {
                Err(err) if err.reason == "Conflict" => continue,
                other => return other,
            }
        }
        Err(ApiError::modified(&rt.group, &rt.plural, name))
    }

    /// Deletes the object if it is still at `expected` (0: any revision);
    /// returns its last value.
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        expected: Revision,
    ) -> Result<(Value, Revision), ApiError> {
        let key = Self::key(rt, namespace, name);
        match self.log.delete(&key, expected) {
            Ok((kv, revision)) => Ok((Self::decode(rt, &kv)?, revision)),
            Err(DatastoreError::Conflict { .. }) => {
                Err(ApiError::modified(&rt.group, &rt.plural, name))
            }
            Err(DatastoreError::NotFound(_)) => {
                Err(ApiError::not_found(&rt.group, &rt.plural, name))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The stored key-values of a page: (values, revision read at, the last
    /// key when more remain).
    fn read_page(
        &self,
        rt: &ResourceType,
        namespace: &str,
        revision: Revision,
        start_after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<KeyValue>, Revision, Option<String>), ApiError> {
        let result = self.log.list(&ListOptions {
            prefix: Self::prefix(rt, namespace),
            start_after,
            revision,
            limit,
        })?;
        let continue_after = if result.more {
            result.kvs.last().map(|kv| kv.key.clone())
        } else {
            None
        };
        Ok((result.kvs, result.revision, continue_after))
    }

    /// A page of a namespace's objects (every namespace for ""), at
    /// `revision` (0: the latest), after the key `start_after`.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: &str,
        revision: Revision,
        start_after: Option<String>,
        limit: usize,
    ) -> Result<Page, ApiError> {
        let (kvs, revision, continue_after) =
            self.read_page(rt, namespace, revision, start_after, limit)?;
        let items = kvs
            .iter()
            .map(|kv| Self::decode(rt, kv))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            revision,
            continue_after,
        })
    }

    /// Like [`Store::list`], but the objects stay the JSON bytes they are
    /// stored as, with their resourceVersion spliced into `metadata`
    /// (no decoding: a plain list of thousands of objects costs copies, not
    /// parses). Only for types stored in the shape they are served in.
    pub fn list_raw(
        &self,
        rt: &ResourceType,
        namespace: &str,
        revision: Revision,
        start_after: Option<String>,
        limit: usize,
    ) -> Result<RawPage, ApiError> {
        let (kvs, revision, continue_after) =
            self.read_page(rt, namespace, revision, start_after, limit)?;
        let mut items = Vec::with_capacity(kvs.len());
        for kv in &kvs {
            match splice_resource_version(&kv.value, kv.mod_revision) {
                Some(bytes) => items.push(bytes),
                None => items.push(Self::decode(rt, kv)?.to_string().into_bytes()),
            }
        }
        Ok(RawPage {
            items,
            revision,
            continue_after,
        })
    }

    /// The latest revision.
    pub fn current_revision(&self) -> Result<Revision, ApiError> {
        Ok(self.log.current_revision()?)
    }
}

/// Inserts `"resourceVersion":"<revision>"` at the start of the top-level
/// `metadata` object of stored JSON; `None` when there is none.
pub fn splice_resource_version(json: &[u8], revision: Revision) -> Option<Vec<u8>> {
    let skip_space = |mut j: usize| {
        while json.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        j
    };
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i + 1;
                let mut end = start;
                while end < json.len() && json[end] != b'"' {
                    end += if json[end] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 && json.get(start..end) == Some(b"metadata".as_slice()) {
                    let colon = skip_space(end + 1);
                    if json.get(colon) == Some(&b':') {
                        let open = skip_space(colon + 1);
                        if json.get(open) == Some(&b'{') {
                            let field = format!("\"resourceVersion\":\"{revision}\"");
                            let empty = json.get(skip_space(open + 1)) == Some(&b'}');
                            let mut out = Vec::with_capacity(json.len() + field.len() + 1);
                            out.extend_from_slice(&json[..=open]);
                            out.extend_from_slice(field.as_bytes());
                            if !empty {
                                out.push(b',');
                            }
                            out.extend_from_slice(&json[open + 1..]);
                            return Some(out);
                        }
                    }
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// An object's namespace and name.
pub fn namespace_and_name(obj: &Value) -> (String, String) {
    let meta = &obj["metadata"];
    (
        meta["namespace"].as_str().unwrap_or("").to_owned(),
        meta["name"].as_str().unwrap_or("").to_owned(),
    )
}

/// An object's resourceVersion as a revision (0 when absent or malformed).
pub fn resource_version(obj: &Value) -> Revision {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, revision: Revision) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_version_goes_into_the_top_level_metadata() {
        let stored =
            br#"{"a":{"metadata":{"x":1}},"data":{"k":"\"metadata\":{"},"metadata":{"name":"n"}}"#;
        let spliced = splice_resource_version(stored, 42).unwrap();
        let value: Value = serde_json::from_slice(&spliced).unwrap();
        assert_eq!(value["metadata"]["resourceVersion"], "42");
        assert_eq!(value["metadata"]["name"], "n");
        assert!(value["a"]["metadata"].get("resourceVersion").is_none());
        let empty = splice_resource_version(br#"{"metadata": { }}"#, 7).unwrap();
        let value: Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(value["metadata"]["resourceVersion"], "7");
        assert!(splice_resource_version(br#"{"spec":{}}"#, 1).is_none());
    }
}
