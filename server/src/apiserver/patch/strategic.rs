//! Kubernetes' strategic merge patch, applied server-side as apimachinery's
//! `strategicpatch.StrategicMergeMapPatch` does, with the field metadata of
//! [`PatchSchema`] in place of Go struct tags.
//!
//! - Maps merge recursively; `null` deletes a key.
//! - Lists whose field has strategy `merge` merge: items of maps by the
//!   field's merge key (matching items merge, new ones are added), lists of
//!   scalars by union; other lists are replaced.
//! - Directives: `$patch: replace|delete` on a map or as an item of a
//!   merging list, `$retainKeys`, `$setElementOrder/<field>`,
//!   `$deleteFromPrimitiveList/<field>`.
//! - Order of a merged list: patch items in patch order, interleaved with
//!   the server's other items in their server order, patch items first where
//!   the server's order says nothing (so a new item lands before the
//!   remaining server items); `$setElementOrder` overrides it.
//! - Fields the schema does not know (and everything under them) are
//!   patched as a JSON merge patch would, directives still honoured.
//!
//! Values taken from the patch as they are (a new key, a replaced list)
//! lose their `null` members and any directive keys; upstream leaves them
//! for the typed decoding that follows to drop.

use serde_json::{Map, Value};

use super::{FieldMeta, PatchError, PatchSchema, go_json_kind, gofmt, parse_json};

mod element_order;

use element_order::{
    find_by_key, normalize_element_order, partition, server_order_after_merge,
    validate_patch_with_order,
};

type Object = Map<String, Value>;

const DIRECTIVE_MARKER: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

const BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";

/// Applies the strategic merge patch `body` to a copy of `original`, whose
/// kind's OpenAPI definition is `root`.
pub(super) fn apply(
    original: &Value,
    body: &[u8],
    root: &str,
    schema: &dyn PatchSchema,
) -> Result<Value, PatchError> {
    let patch = match parse_json(body)? {
        Value::Object(patch) => patch,
        other => {
            return Err(PatchError::Malformed {
                message: format!(
                    "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                    go_json_kind(&other)
                ),
            });
        }
    };
    let original = original.as_object().cloned().unwrap_or_default();
    let merger = Merger { schema };
    Ok(Value::Object(merger.merge_map(
        original,
        patch,
        Some(root),
        "",
    )?))
}

/// How a field's value is patched, from its `x-kubernetes-patch-strategy`
/// (`retainKeys` aside, which only matters to the client building `$retainKeys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// Maps merge, lists are replaced.
    Default,
    /// Lists merge.
    Merge,
    /// The value is replaced whole.
    Replace,
}

/// The kind of a list's items, which must all be the same
/// (`sliceElementType` upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemKind {
    Map,
    String,
    Int,
    Float,
    Bool,
    Null,
}

/// Strategic merge against one schema.
struct Merger<'a> {
    schema: &'a dyn PatchSchema,
}

impl Merger<'_> {
    fn meta(&self, definition: Option<&str>, field: &str) -> FieldMeta {
        definition
            .and_then(|d| self.schema.field(d, field))
            .unwrap_or_default()
    }

    /// Merges `patch` into `original`, both objects of type `definition`
    /// (`None`: untyped), at field path `path`.
    fn merge_map(
        &self,
        mut original: Object,
        mut patch: Object,
        definition: Option<&str>,
        path: &str,
    ) -> Result<Object, PatchError> {
        if let Some(directive) = patch.remove(DIRECTIVE_MARKER) {
            return match directive.as_str() {
                Some("replace") => Ok(clean_map(patch)),
                Some("delete") => Ok(Object::new()),
                _ => {
                    patch.insert(DIRECTIVE_MARKER.to_string(), directive.clone());
                    Err(bad_patch_type(&directive, &patch, path))
                }
            };
        }
        apply_retain_keys(&mut original, &mut patch, path)?;
        self.merge_element_orders(&mut original, &mut patch, definition, path)?;

        // Parallel deletion lists go last so they see the merged list.
        let mut deletions = Vec::new();
        for (key, value) in patch {
            if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
                deletions.push((key, value));
            } else {
                self.merge_field(&mut original, key, value, false, definition, path)?;
            }
        }
        for (key, value) in deletions {
            let field = extract_key(&key, DELETE_FROM_PRIMITIVE_LIST, path)?;
            self.merge_field(&mut original, field, value, true, definition, path)?;
        }
        Ok(original)
    }

    /// Merges one key of a patch map into `original` (`mergeMap`'s loop).
    fn merge_field(
        &self,
        original: &mut Object,
        key: String,
        value: Value,
        is_delete_list: bool,
        definition: Option<&str>,
        path: &str,
    ) -> Result<(), PatchError> {
        if value.is_null() {
            original.remove(&key);
            return Ok(());
        }
        let field_path = child(path, &key);
        let Some(current) = original.get_mut(&key) else {
            if !is_delete_list && let Some(value) = clean(value) {
                original.insert(key, value);
            }
            return Ok(());
        };
        if !same_kind(current, &value) {
            if !is_delete_list {
                match clean(value) {
                    Some(value) => *current = value,
                    None => {
                        original.remove(&key);
                    }
                }
            }
            return Ok(());
        }
        match (current, value) {
            (Value::Object(current), Value::Object(patch)) => {
                let meta = self.meta(definition, &key);
                let taken = std::mem::take(current);
                *current = match strategy(&meta, &field_path)? {
                    Strategy::Replace => clean_map(patch),
                    _ => self.merge_map(taken, patch, meta.definition.as_deref(), &field_path)?,
                };
            }
            (Value::Array(current), Value::Array(patch)) => {
                let meta = self.meta(definition, &key);
                let strategy = strategy(&meta, &field_path)?;
                let merge_key = meta.merge_key.as_deref().unwrap_or("");
                let taken = std::mem::take(current);
                *current = self.merge_list_field(
                    taken,
                    patch,
                    meta.definition.as_deref(),
                    strategy,
                    merge_key,
                    is_delete_list,
                    &field_path,
                )?;
            }
            (current, value) => *current = value,
        }
        Ok(())
    }

    /// `mergeSliceHandler`: merging lists (and deletion lists) merge, the
    /// rest are replaced by the patch's list.
    #[allow(clippy::too_many_arguments)]
    fn merge_list_field(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        item_definition: Option<&str>,
        strategy: Strategy,
        merge_key: &str,
        is_delete_list: bool,
        path: &str,
    ) -> Result<Vec<Value>, PatchError> {
        if strategy == Strategy::Merge || is_delete_list {
            self.merge_list(
                original,
                patch,
                item_definition,
                merge_key,
                is_delete_list,
                path,
            )
        } else {
            Ok(clean_list(patch))
        }
    }

    /// `mergeSlice`: merges a merging list.
    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        item_definition: Option<&str>,
        merge_key: &str,
        is_delete_list: bool,
        path: &str,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let kind = item_kind(&[&original, &patch], path)?;
        let (original, patch, merged) = if kind != ItemKind::Map {
            if is_delete_list {
                return Ok(original
                    .into_iter()
                    .filter(|v| !patch.contains(v))
                    .collect());
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for item in original.iter().chain(&patch) {
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
            (original, patch, merged)
        } else {
            if merge_key.is_empty() {
                return Err(PatchError::StrategicMerge {
                    path: path.to_string(),
                    message: format!(
                        "cannot merge lists without merge key for {}",
                        item_definition.unwrap_or("struct")
                    ),
                });
            }
            let (original, patch) = special_items(original, patch, merge_key, path)?;
            let merged =
                self.merge_items(original.clone(), &patch, merge_key, item_definition, path)?;
            (original, patch, merged)
        };
        let (patch_items, server_only) = partition(merged, &patch, merge_key, path)?;
        normalize_element_order(
            patch_items,
            server_only,
            &patch,
            &original,
            merge_key,
            kind,
            path,
        )
    }

    /// `mergeSliceWithoutSpecialElements`: merges each patch item into the
    /// original item with its merge key, or appends it.
    fn merge_items(
        &self,
        mut original: Vec<Value>,
        patch: &[Value],
        merge_key: &str,
        item_definition: Option<&str>,
        path: &str,
    ) -> Result<Vec<Value>, PatchError> {
        for (i, item) in patch.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let map = as_map(item, &item_path)?;
            let key_value = map
                .get(merge_key)
                .ok_or_else(|| no_merge_key(map, merge_key, &item_path))?;
            match find_by_key(&original, merge_key, key_value, path)? {
                Some(index) => {
                    let current = match std::mem::take(&mut original[index]) {
                        Value::Object(current) => current,
                        _ => Object::new(),
                    };
                    let merged =
                        self.merge_map(current, map.clone(), item_definition, &item_path)?;
                    original[index] = Value::Object(merged);
                }
                None => original.extend(clean(item.clone())),
            }
        }
        Ok(original)
    }

    /// `mergePatchIntoOriginal`: for each `$setElementOrder/<field>`, merges
    /// `<field>` now and orders the result by the directive's list.
    fn merge_element_orders(
        &self,
        original: &mut Object,
        patch: &mut Object,
        definition: Option<&str>,
        path: &str,
    ) -> Result<(), PatchError> {
        let mut directives: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        directives.sort();
        for directive in directives {
            let Some(order) = patch.remove(&directive) else {
                continue;
            };
            let Value::Array(order) = order else {
                return Err(bad_arg_type("[]interface {}", &order, path));
            };
            let field = extract_key(&directive, SET_ELEMENT_ORDER, path)?;
            let field_path = child(path, &field);
            let original_list = list_of(original.get(&field), &field_path)?;
            let patch_list = list_of(patch.get(&field), &field_path)?;

            let meta = self.meta(definition, &field);
            let strategy = strategy(&meta, &field_path)?;
            let merge_key = meta.merge_key.as_deref().unwrap_or("");
            validate_patch_with_order(
                patch_list.as_deref().unwrap_or(&[]),
                &order,
                merge_key,
                &field_path,
            )?;

            let merged = match (original_list.clone(), patch_list.clone()) {
                (Some(original), None) => original,
                (None, Some(patch)) => clean_list(patch),
                (Some(original), Some(patch)) => self.merge_list_field(
                    original,
                    patch,
                    meta.definition.as_deref(),
                    strategy,
                    merge_key,
                    false,
                    &field_path,
                )?,
                (None, None) => continue,
            };
            let (patch_items, server_only) = partition(merged, &order, merge_key, &field_path)?;
            let patch_list = patch_list.unwrap_or_default();
            let mut server_order = original_list.unwrap_or_default();
            let kind = item_kind(&[&server_order, &patch_list], &field_path)?;
            if strategy == Strategy::Merge && kind == ItemKind::Map {
                server_order = server_order_after_merge(server_order, &patch_list, merge_key);
            }
            let ordered = normalize_element_order(
                patch_items,
                server_only,
                &order,
                &server_order,
                merge_key,
                kind,
                &field_path,
            )?;
            original.insert(field.clone(), Value::Array(ordered));
            patch.remove(&field);
        }
        Ok(())
    }
}

/// `extractRetainKeysPatchStrategy`: the strategy besides `retainKeys`.
fn strategy(meta: &FieldMeta, path: &str) -> Result<Strategy, PatchError> {
    let others: Vec<&String> = meta
        .strategies
        .iter()
        .filter(|s| s.as_str() != "retainKeys")
        .collect();
    match (meta.strategies.len(), others.as_slice()) {
        (_, []) => Ok(Strategy::Default),
        (1 | 2, [one]) => Ok(match one.as_str() {
            "merge" => Strategy::Merge,
            "replace" => Strategy::Replace,
            _ => Strategy::Default,
        }),
        _ => Err(PatchError::StrategicMerge {
            path: path.to_string(),
            message: format!("unexpected patch strategy: [{}]", meta.strategies.join(" ")),
        }),
    }
}

/// `applyRetainKeysDirective`: drops the keys of `original` that
/// `$retainKeys` does not list, after checking the patch sets no others.
fn apply_retain_keys(
    original: &mut Object,
    patch: &mut Object,
    path: &str,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = || PatchError::BadDirective {
        path: path.to_string(),
        message: BAD_RETAIN_KEYS.to_string(),
    };
    let Value::Array(retain) = retain else {
        return Err(bad());
    };
    let listed = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    let unlisted = patch.iter().any(|(key, value)| {
        !value.is_null()
            && !key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            && !key.starts_with(SET_ELEMENT_ORDER)
            && !listed(key)
    });
    if unlisted {
        return Err(bad());
    }
    original.retain(|key, _| listed(key));
    Ok(())
}

/// `extractKey`: `<field>` of `$prefix/<field>`.
fn extract_key(directive: &str, prefix: &str, path: &str) -> Result<String, PatchError> {
    match directive.split_once('/') {
        Some((head, field)) if head == prefix => Ok(field.to_string()),
        _ => Err(PatchError::BadDirective {
            path: path.to_string(),
            message: if prefix == DELETE_FROM_PRIMITIVE_LIST {
                BAD_PRIMITIVE_LIST
            } else {
                BAD_SET_ELEMENT_ORDER
            }
            .to_string(),
        }),
    }
}

/// `mergeSliceWithSpecialElements`: applies the `$patch` items of a merging
/// list of maps; returns the original list and the patch's other items.
fn special_items(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for (i, item) in patch.into_iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let map = as_map(&item, &item_path)?;
        let Some(directive) = map.get(DIRECTIVE_MARKER) else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let key_value = map
                    .get(merge_key)
                    .ok_or_else(|| no_merge_key(map, merge_key, &item_path))?;
                if original.iter().any(|v| !v.is_object()) {
                    return Err(not_a_map(&original, path));
                }
                original.retain(|v| v.get(merge_key) != Some(key_value));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::StrategicMerge {
                    path: item_path,
                    message: "merging lists cannot yet be specified in the patch".to_string(),
                });
            }
            _ => return Err(bad_patch_type(directive, map, &item_path)),
        }
    }
    if replace {
        let replacement = rest.into_iter().filter_map(clean).collect();
        Ok((replacement, Vec::new()))
    } else {
        Ok((original, rest))
    }
}

/// `sliceElementType`: the one kind of the items of `lists`.
fn item_kind(lists: &[&[Value]], path: &str) -> Result<ItemKind, PatchError> {
    let mut kind = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let this = match item {
            Value::Object(_) => ItemKind::Map,
            Value::Array(_) => {
                return Err(PatchError::ListOfLists {
                    path: path.to_string(),
                });
            }
            Value::String(_) => ItemKind::String,
            Value::Number(n) if n.is_f64() => ItemKind::Float,
            Value::Number(_) => ItemKind::Int,
            Value::Bool(_) => ItemKind::Bool,
            Value::Null => ItemKind::Null,
        };
        match kind {
            None => kind = Some(this),
            Some(k) if k != this => {
                let lists: Vec<String> = lists.iter().map(|l| gofmt::list(l)).collect();
                return Err(PatchError::StrategicMerge {
                    path: path.to_string(),
                    message: format!(
                        "list element types are not identical: [{}]",
                        lists.join(" ")
                    ),
                });
            }
            Some(_) => {}
        }
    }
    kind.ok_or_else(|| PatchError::StrategicMerge {
        path: path.to_string(),
        message: "no elements in any of the given slices".to_string(),
    })
}

/// Whether upstream sees the two values as the same Go type (numbers
/// aside, which are replaced either way).
fn same_kind(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// The list at `value`, if any; anything but a list is an error.
fn list_of(value: Option<&Value>, path: &str) -> Result<Option<Vec<Value>>, PatchError> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.clone())),
        Some(other) => Err(bad_arg_type("[]interface {}", other, path)),
    }
}

fn as_map<'v>(value: &'v Value, path: &str) -> Result<&'v Object, PatchError> {
    value
        .as_object()
        .ok_or_else(|| bad_arg_type("map[string]interface {}", value, path))
}

/// What to store of a value taken from the patch as is: `None` for a map
/// with `$patch` (upstream's `removeDirectives`); otherwise the value
/// without `null` members and directive keys.
fn clean(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) if map.contains_key(DIRECTIVE_MARKER) => None,
        Value::Object(map) => Some(Value::Object(clean_map(map))),
        Value::Array(items) => Some(Value::Array(clean_list(items))),
        other => Some(other),
    }
}

fn clean_map(map: Object) -> Object {
    map.into_iter()
        .filter(|(key, value)| !value.is_null() && !is_directive_key(key))
        .filter_map(|(key, value)| clean(value).map(|v| (key, v)))
        .collect()
}

fn clean_list(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(clean).collect()
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE_MARKER
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn no_merge_key(map: &Object, merge_key: &str, path: &str) -> PatchError {
    PatchError::StrategicMerge {
        path: path.to_string(),
        message: format!(
            "map: {} does not contain declared merge key: {merge_key}",
            gofmt::value(&Value::Object(map.clone()))
        ),
    }
}

fn bad_arg_type(expected: &str, actual: &Value, path: &str) -> PatchError {
    PatchError::StrategicMerge {
        path: path.to_string(),
        message: format!(
            "expected a {expected}, but received a {}",
            gofmt::type_name(actual)
        ),
    }
}

fn bad_patch_type(directive: &Value, map: &Object, path: &str) -> PatchError {
    PatchError::StrategicMerge {
        path: path.to_string(),
        message: format!(
            "unknown patch type: {} in map: {}",
            gofmt::value(directive),
            gofmt::value(&Value::Object(map.clone()))
        ),
    }
}

fn not_a_map(list: &[Value], path: &str) -> PatchError {
    let index = list.iter().position(|v| !v.is_object()).unwrap_or(0);
    PatchError::StrategicMerge {
        path: path.to_string(),
        message: format!("value for key {index} is not a map"),
    }
}
