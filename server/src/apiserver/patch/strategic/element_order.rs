//! The order of a merged list: a merging list's items in patch order,
//! interleaved with the server's other items in server order, and
//! `$setElementOrder` (apimachinery's `normalizeElementOrder` and friends).

use serde_json::Value;

use super::{
    DIRECTIVE_MARKER, ItemKind, PatchError, SET_ELEMENT_ORDER, as_map, gofmt, no_merge_key,
};

/// The server order `$setElementOrder` interleaves by, after merging a
/// list of maps. Upstream merges the list in place (Go slices share their
/// array): a deleted item shifts the later ones left, leaving the last slot
/// stale, and the first new items land in the slots the deletions freed.
/// The same list, as upstream sees it, decides where the server's other
/// items go (e.g. a sidecar after a renamed container, not before it).
pub(super) fn server_order_after_merge(
    mut view: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
) -> Vec<Value> {
    let slots = view.len();
    // Keys of the list as merged so far, which may outgrow `view`.
    let mut keys: Vec<Option<Value>> = view.iter().map(|v| v.get(merge_key).cloned()).collect();
    let mut replaced = false;
    let mut rest = Vec::new();
    for item in patch {
        match item.get(DIRECTIVE_MARKER).and_then(Value::as_str) {
            Some("delete") => {
                let wanted = item.get(merge_key).cloned();
                while let Some(at) = keys.iter().position(|k| wanted.is_some() && *k == wanted) {
                    let len = keys.len();
                    for i in at..len - 1 {
                        view[i] = view[i + 1].clone();
                    }
                    keys.remove(at);
                }
            }
            Some("replace") => replaced = true,
            _ => rest.push(item),
        }
    }
    if replaced {
        return view;
    }
    for item in rest {
        let key = item.get(merge_key).cloned();
        if key.is_some() && keys.contains(&key) {
            continue;
        }
        if keys.len() < slots {
            view[keys.len()] = item.clone();
        }
        keys.push(key);
    }
    view
}

/// `validatePatchWithSetOrderList`: the patch's items (deletions and
/// directives aside) must appear in the `$setElementOrder` list, in its order.
pub(super) fn validate_patch_with_order(
    patch: &[Value],
    order: &[Value],
    merge_key: &str,
    path: &str,
) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut kept = Vec::with_capacity(patch.len());
    for (i, item) in patch.iter().enumerate() {
        if merge_key.is_empty() {
            kept.push(item);
            continue;
        }
        let map = as_map(item, &format!("{path}[{i}]"))?;
        if map.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some("delete") {
            kept.push(item);
        }
    }
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if kept[p].get(DIRECTIVE_MARKER).is_some() {
            p += 1;
            continue;
        }
        if merge_key_value_equal(kept[p], &order[o], merge_key, path)? {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() && o >= order.len() {
        return Err(PatchError::StrategicMerge {
            path: path.to_string(),
            message: format!(
                "the order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}",
                gofmt::list(patch),
                gofmt::list(order)
            ),
        });
    }
    Ok(())
}

fn merge_key_value_equal(
    left: &Value,
    right: &Value,
    merge_key: &str,
    path: &str,
) -> Result<bool, PatchError> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let left = as_map(left, path)?;
    let right = as_map(right, path)?;
    let l = left
        .get(merge_key)
        .ok_or_else(|| no_merge_key(left, merge_key, path))?;
    let r = right
        .get(merge_key)
        .ok_or_else(|| no_merge_key(right, merge_key, path))?;
    Ok(l == r)
}

/// Splits `merged` into the items present in `by` (by merge key for maps)
/// and the others, each in `merged`'s order.
pub(super) fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: &str,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::with_capacity(merged.len());
    let mut others = Vec::with_capacity(merged.len());
    for item in merged {
        let found = if merge_key.is_empty() {
            by.contains(&item)
        } else {
            let map = as_map(&item, path)?;
            let key_value = map
                .get(merge_key)
                .ok_or_else(|| no_merge_key(map, merge_key, path))?;
            find_by_key(by, merge_key, key_value, path)?.is_some()
        };
        if found {
            present.push(item);
        } else {
            others.push(item);
        }
    }
    Ok((present, others))
}

/// `normalizeElementOrder`: `patch_items` sorted by `patch_order`,
/// `server_only` by `server_order`, then interleaved by `server_order`.
pub(super) fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: ItemKind,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key, kind, path)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, kind, path)?;
    Ok(merge_sorted(
        server_only,
        patch_items,
        server_order,
        merge_key,
        kind,
    ))
}

/// `normalizeSliceOrder`: stable sort by position in `order`; items with
/// `$patch: delete` go last.
fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: ItemKind,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let (mut items, deletions) = if kind == ItemKind::Map {
        for item in items.iter().chain(order) {
            let map = as_map(item, path)?;
            if !map.contains_key(merge_key) {
                return Err(no_merge_key(map, merge_key, path));
            }
        }
        items
            .into_iter()
            .partition(|v| v.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some("delete"))
    } else {
        (items, Vec::new())
    };
    items.sort_by_key(|item| position(order, item, merge_key, kind).unwrap_or(usize::MAX));
    items.extend(deletions);
    Ok(items)
}

/// `mergeSortedSlice`: merges two sorted lists, taking from `left` while its
/// head comes before `right`'s head in `server_order`.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    kind: ItemKind,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (
                    position(server_order, l, merge_key, kind),
                    position(server_order, r, merge_key, kind),
                ),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Position of `item` in `list`: by merge key value for maps (two items
/// without the key match, as upstream), by value otherwise.
fn position(list: &[Value], item: &Value, merge_key: &str, kind: ItemKind) -> Option<usize> {
    if kind == ItemKind::Map {
        let wanted = item.get(merge_key);
        list.iter().position(|v| v.get(merge_key) == wanted)
    } else {
        list.iter().position(|v| v == item)
    }
}

/// `findMapInSliceBasedOnKeyValue`: index of the first map whose
/// `merge_key` is `value`.
pub(super) fn find_by_key(
    list: &[Value],
    merge_key: &str,
    value: &Value,
    path: &str,
) -> Result<Option<usize>, PatchError> {
    for (i, item) in list.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(PatchError::StrategicMerge {
                path: path.to_string(),
                message: format!("value for key {i} is not a map"),
            });
        };
        if map.get(merge_key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}
