//! Schema-driven walks over objects (structured-merge-diff's `typed`):
//! the field set an object sets, merging an applied configuration into an
//! object, comparing two objects, removing a set of fields, and checking an
//! applied configuration's list keys.
//!
//! Types come from `PatchSchema`: a declared field of a definition is a
//! struct field (owned only through the leaves below it), any other key is a
//! map entry (owned itself). Lists are `atomic` (replaced whole), `set`
//! (items by value) or `map` (items by key); `x-kubernetes-map-type: atomic`
//! objects are replaced whole.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::super::schema::{FieldMeta, PatchSchema};
use super::fieldpath::{FieldSet, JsonText, PathElement};

/// The definition kube-apiserver gives every object's `metadata`, custom
/// resources' too.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// List-map keys that upstream fills from the schema's default when an item
/// omits them (`ports[].protocol` defaults to TCP).
const KEY_DEFAULTS: &[(&str, &str)] = &[("protocol", "TCP")];

/// Fields that Go types hold as values, not pointers, so an empty object of
/// the kind already has them and an update never "adds" them as a whole
/// (only fields below them). Likewise `containers` (`PodSpec` serializes it
/// even when empty).
const VALUE_STRUCT_FIELDS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "strategy",
    "updateStrategy",
    "jobTemplate",
];

/// Top-level lists Go types serialize even when empty (`Role.rules`).
const ROOT_VALUE_LISTS: &[&str] = &["rules"];

/// How a list's items are told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// Replaced whole.
    Atomic,
    /// Scalar items, by value.
    Set,
    /// Object items, by these key fields.
    Map(Vec<String>),
}

/// The type of a node of an object.
#[derive(Debug, Clone)]
pub(crate) struct Ty {
    /// The OpenAPI definition of the node (of its items for a list, of its
    /// values for a map).
    def: Option<String>,
    /// How the node's items merge when it is a list.
    list: ListKind,
    /// Whether the node, an object (or a list's items), is replaced whole.
    atomic: bool,
    /// No schema: every key is taken for a declared field, as in the
    /// structural schemas of custom resources.
    structural: bool,
    /// The object itself.
    root: bool,
}

impl Ty {
    fn from_meta(meta: &FieldMeta) -> Ty {
        let list = match meta.list_type.as_deref() {
            Some("atomic") => ListKind::Atomic,
            Some("set") => ListKind::Set,
            Some("map") => {
                let keys = if meta.list_map_keys.is_empty() {
                    meta.merge_key.iter().cloned().collect()
                } else {
                    meta.list_map_keys.clone()
                };
                if keys.is_empty() {
                    ListKind::Atomic
                } else {
                    ListKind::Map(keys)
                }
            }
            // No list type: as upstream's schema conversion, a patch merge
            // key makes a list-map, a merge strategy alone a set.
            _ => match &meta.merge_key {
                Some(key) => ListKind::Map(vec![key.clone()]),
                None if meta.has("merge") => ListKind::Set,
                None => ListKind::Atomic,
            },
        };
        Ty {
            def: meta.definition.clone(),
            list,
            atomic: meta.map_type.as_deref() == Some("atomic"),
            structural: false,
            root: false,
        }
    }

    fn untyped(structural: bool) -> Ty {
        Ty {
            def: None,
            list: ListKind::Atomic,
            atomic: false,
            structural,
            root: false,
        }
    }

    /// Whether the node is a list replaced whole.
    fn atomic_list(&self) -> bool {
        self.list == ListKind::Atomic
    }
}

/// Walks objects of one kind.
pub(crate) struct Typer<'a> {
    schema: &'a dyn PatchSchema,
    typed: bool,
}

impl std::fmt::Debug for Typer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Typer")
            .field("typed", &self.typed)
            .finish_non_exhaustive()
    }
}

impl<'a> Typer<'a> {
    /// A walker for objects of the definition `root` (`None`: no schema).
    pub(crate) fn new(schema: &'a dyn PatchSchema, root: Option<&str>) -> (Typer<'a>, Ty) {
        let ty = Ty {
            def: root.map(str::to_owned),
            list: ListKind::Atomic,
            atomic: false,
            structural: root.is_none(),
            root: true,
        };
        (
            Typer {
                schema,
                typed: root.is_some(),
            },
            ty,
        )
    }

    /// Whether the objects walked have a schema.
    pub(crate) fn is_typed(&self) -> bool {
        self.typed
    }

    /// Whether `field` is declared by `parent`'s schema.
    pub(crate) fn declares(&self, parent: &Ty, field: &str) -> bool {
        self.field(parent, field).1
    }

    /// The type of `parent`'s `field`, and whether the field is declared
    /// (a struct field) rather than a map entry.
    pub(crate) fn field(&self, parent: &Ty, field: &str) -> (Ty, bool) {
        if parent.root && field == "metadata" {
            if let Some(def) = &parent.def
                && let Some(meta) = self.schema.field(def, field)
            {
                return (Ty::from_meta(&meta), true);
            }
            let ty = Ty {
                def: Some(OBJECT_META.to_owned()),
                ..Ty::untyped(false)
            };
            return (ty, true);
        }
        if let Some(def) = &parent.def {
            return match self.schema.field(def, field) {
                Some(meta) => (Ty::from_meta(&meta), true),
                // Not a field of the definition: an entry of a map whose
                // values are of that definition (additionalProperties).
                None => (
                    Ty {
                        def: Some(def.clone()),
                        ..Ty::untyped(false)
                    },
                    false,
                ),
            };
        }
        (Ty::untyped(parent.structural), parent.structural)
    }

    /// The type of a list's items.
    pub(crate) fn item(&self, list: &Ty) -> Ty {
        Ty {
            def: list.def.clone(),
            list: ListKind::Atomic,
            atomic: list.atomic,
            structural: list.structural,
            root: false,
        }
    }

    /// The type below `pe` in a node of type `parent`.
    fn child(&self, parent: &Ty, pe: &PathElement) -> Ty {
        match pe {
            PathElement::Field(name) => self.field(parent, name).0,
            _ => self.item(parent),
        }
    }

    /// Whether an update can add or remove the node at `path` as a whole:
    /// not for the value structs a typed object always has, nor for the
    /// lists they always hold (as `null` when empty).
    fn tracks_node(&self, path: &[PathElement]) -> bool {
        let value_struct = |pe: &PathElement| matches!(pe, PathElement::Field(name) if VALUE_STRUCT_FIELDS.contains(&name.as_str()));
        let always_held = match path {
            [] => true,
            [PathElement::Field(name)] if ROOT_VALUE_LISTS.contains(&name.as_str()) => true,
            [structs @ .., PathElement::Field(name)] if name == "containers" => {
                structs.iter().all(value_struct)
            }
            _ => path.iter().all(value_struct),
        };
        !self.typed || !always_held
    }

    /// The path element of a list item.
    pub(crate) fn item_element(
        list: &Ty,
        index: usize,
        item: &Value,
    ) -> Result<PathElement, String> {
        match &list.list {
            ListKind::Atomic => Ok(PathElement::Index(index)),
            ListKind::Set => match item {
                Value::Object(_) => {
                    Err("associative list without keys has an element that's a map type".to_owned())
                }
                Value::Array(_) => {
                    Err("not supported: associative list with lists as elements".to_owned())
                }
                Value::Null => Err(
                    "associative list without keys has an element that's an explicit null"
                        .to_owned(),
                ),
                _ => Ok(PathElement::Value(JsonText::of(item))),
            },
            ListKind::Map(keys) => {
                let fields = match item {
                    Value::Object(fields) => fields,
                    Value::Null => {
                        return Err(
                            "associative list with keys may not have a null element".to_owned()
                        );
                    }
                    _ => {
                        return Err(
                            "associative list with keys may not have non-map elements".to_owned()
                        );
                    }
                };
                let mut pairs = Vec::with_capacity(keys.len());
                for key in keys {
                    let value = match fields.get(key) {
                        Some(value) => value.clone(),
                        None => match KEY_DEFAULTS.iter().find(|(name, _)| name == key) {
                            Some((_, default)) => Value::from(*default),
                            None => {
                                return Err(format!(
                                    "associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
                                ));
                            }
                        },
                    };
                    pairs.push((key.clone(), JsonText::of(&value)));
                }
                pairs.sort();
                Ok(PathElement::Key(pairs))
            }
        }
    }

    /// A list's items by path element; items without a valid element and
    /// repeated elements are skipped (the first one counts).
    fn index<'v>(list: &Ty, items: &'v [Value]) -> Vec<(PathElement, &'v Value)> {
        let mut out: Vec<(PathElement, &Value)> = Vec::with_capacity(items.len());
        let mut seen = HashSet::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Ok(pe) = Typer::item_element(list, i, item)
                && seen.insert(pe.clone())
            {
                out.push((pe, item));
            }
        }
        out
    }

    /// Errors in an applied configuration's lists: items without their keys
    /// and repeated keys, phrased as upstream's typed conversion does.
    pub(crate) fn check(
        &self,
        value: &Value,
        ty: &Ty,
        path: &mut Vec<PathElement>,
        errors: &mut Vec<String>,
    ) {
        match value {
            Value::Object(fields) if !ty.atomic => {
                for (name, child) in fields {
                    let (child_ty, _) = self.field(ty, name);
                    path.push(PathElement::Field(name.clone()));
                    self.check(child, &child_ty, path, errors);
                    path.pop();
                }
            }
            Value::Array(items) if !ty.atomic_list() => {
                let item_ty = self.item(ty);
                let mut seen: HashSet<PathElement> = HashSet::new();
                let at = super::fieldpath::path_string(path);
                for (i, item) in items.iter().enumerate() {
                    match Typer::item_element(ty, i, item) {
                        Err(e) => errors.push(format!("{at}: element {i}: {e}")),
                        Ok(pe) => {
                            if !seen.insert(pe.clone()) {
                                errors.push(format!("{at}: duplicate entries for key {pe}"));
                            }
                            path.push(pe);
                            self.check(item, &item_ty, path, errors);
                            path.pop();
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The fields `value` sets: its leaves, its map entries and list items,
    /// and its atomic lists and objects.
    pub(crate) fn field_set(&self, value: &Value, ty: &Ty) -> FieldSet {
        let mut set = FieldSet::new();
        self.collect(value, ty, &mut Vec::new(), &mut set);
        set
    }

    fn collect(&self, value: &Value, ty: &Ty, path: &mut Vec<PathElement>, set: &mut FieldSet) {
        match value {
            Value::Object(fields) => {
                if ty.atomic {
                    set.insert(path);
                    return;
                }
                for (name, child) in fields {
                    let (child_ty, declared) = self.field(ty, name);
                    path.push(PathElement::Field(name.clone()));
                    self.collect(child, &child_ty, path, set);
                    if !declared {
                        set.insert(path);
                    }
                    path.pop();
                }
            }
            Value::Array(items) => {
                if ty.atomic_list() {
                    set.insert(path);
                    return;
                }
                let item_ty = self.item(ty);
                for (pe, item) in Typer::index(ty, items) {
                    path.push(pe);
                    self.collect(item, &item_ty, path, set);
                    set.insert(path);
                    path.pop();
                }
            }
            _ => set.insert(path),
        }
    }

    /// `set` plus the declared fields that have members below them, so that
    /// removing the set's members also removes the structs holding them.
    pub(crate) fn with_named_fields(&self, set: &FieldSet, ty: &Ty) -> FieldSet {
        let mut out = FieldSet::new();
        for pe in set.members() {
            out.insert_member(pe.clone());
        }
        for (pe, child) in set.children() {
            if let PathElement::Field(name) = pe
                && self.declares(ty, name)
            {
                out.insert_member(pe.clone());
            }
            let child_ty = self.child(ty, pe);
            out.set_child(pe.clone(), self.with_named_fields(child, &child_ty));
        }
        out
    }

    /// `value` without the paths of `set` (a member takes its whole subtree);
    /// `None` when nothing is left of an object or list that lost items.
    pub(crate) fn remove(&self, value: &Value, set: &FieldSet, ty: &Ty) -> Option<Value> {
        match value {
            Value::Object(fields) if !ty.atomic && !fields.is_empty() => {
                let mut out = Map::new();
                for (name, child) in fields {
                    let pe = PathElement::Field(name.clone());
                    if set.has_member(&pe) {
                        continue;
                    }
                    match set.child(&pe) {
                        Some(below) => {
                            let (child_ty, _) = self.field(ty, name);
                            if let Some(kept) = self.remove(child, below, &child_ty) {
                                out.insert(name.clone(), kept);
                            }
                        }
                        None => {
                            out.insert(name.clone(), child.clone());
                        }
                    }
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
            Value::Array(items) if !ty.atomic_list() && !items.is_empty() => {
                let item_ty = self.item(ty);
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let Ok(pe) = Typer::item_element(ty, i, item) else {
                        out.push(item.clone());
                        continue;
                    };
                    if set.has_member(&pe) {
                        continue;
                    }
                    match set.child(&pe) {
                        Some(below) => {
                            if let Some(kept) = self.remove(item, below, &item_ty) {
                                out.push(kept);
                            }
                        }
                        None => out.push(item.clone()),
                    }
                }
                (!out.is_empty()).then_some(Value::Array(out))
            }
            _ => Some(value.clone()),
        }
    }

    /// The applied configuration `rhs` merged into `lhs`: its fields set,
    /// maps merged by key, list-map and set items merged by key or value in
    /// the applied order, atomic values replaced. Explicit nulls remove.
    pub(crate) fn merge(&self, lhs: &Value, rhs: &Value, ty: &Ty) -> Value {
        match (lhs, rhs) {
            (Value::Object(l), Value::Object(r))
                if !ty.atomic && (!l.is_empty() || !r.is_empty()) =>
            {
                let mut out = Map::new();
                for (name, lv) in l {
                    match r.get(name) {
                        Some(Value::Null) => {}
                        Some(rv) => {
                            let (child_ty, _) = self.field(ty, name);
                            out.insert(name.clone(), self.merge(lv, rv, &child_ty));
                        }
                        None => {
                            out.insert(name.clone(), lv.clone());
                        }
                    }
                }
                for (name, rv) in r {
                    if !l.contains_key(name) && !rv.is_null() {
                        out.insert(name.clone(), without_nulls(rv));
                    }
                }
                Value::Object(out)
            }
            (Value::Array(l), Value::Array(r))
                if !ty.atomic_list() && (!l.is_empty() || !r.is_empty()) =>
            {
                Value::Array(self.merge_list(l, r, ty))
            }
            _ => without_nulls(rhs),
        }
    }

    /// Merges list items: items only in `lhs` keep their place, the applied
    /// items come in the applied order, shared items are merged.
    fn merge_list(&self, lhs: &[Value], rhs: &[Value], ty: &Ty) -> Vec<Value> {
        let item_ty = self.item(ty);
        let left = Typer::index(ty, lhs);
        let right = Typer::index(ty, rhs);
        let left_items: HashMap<&PathElement, &Value> = left.iter().map(|(p, v)| (p, *v)).collect();
        let right_items: HashSet<&PathElement> = right.iter().map(|(p, _)| p).collect();
        let in_left = |pe: &PathElement| left_items.get(pe).copied();
        let in_right = |pe: &PathElement| right_items.contains(pe);
        let shared: Vec<&PathElement> = right
            .iter()
            .map(|(pe, _)| pe)
            .filter(|pe| in_left(pe).is_some())
            .collect();
        let mut next_shared = 0;
        let mut out = Vec::with_capacity(left.len().max(right.len()));
        let (mut li, mut ri) = (0, 0);
        while li < left.len() || ri < right.len() {
            if li < left.len() && ri < right.len() {
                let (lpe, lv) = &left[li];
                let (rpe, rv) = &right[ri];
                if lpe == rpe {
                    out.push(self.merge(lv, rv, &item_ty));
                    li += 1;
                    ri += 1;
                    next_shared += 1;
                    continue;
                }
                if in_right(lpe) && shared.get(next_shared).is_some_and(|s| *s != lpe) {
                    // Shared, but placed later by the applied order.
                    li += 1;
                    continue;
                }
            }
            if li < left.len() && !in_right(&left[li].0) {
                out.push(left[li].1.clone());
                li += 1;
                continue;
            }
            if ri < right.len() {
                let (rpe, rv) = &right[ri];
                out.push(match in_left(rpe) {
                    Some(lv) => self.merge(lv, rv, &item_ty),
                    None => without_nulls(rv),
                });
                if shared.get(next_shared).is_some_and(|s| *s == rpe) {
                    next_shared += 1;
                }
                ri += 1;
                continue;
            }
            // Only shared items already merged are left on the left.
            li += 1;
        }
        out
    }

    /// What changed from `old` to `new`: the paths added, modified and
    /// removed, leaves and whole nodes alike.
    pub(crate) fn compare(&self, old: &Value, new: &Value, ty: &Ty) -> Comparison {
        let mut c = Comparison::default();
        self.compare_node(Some(old), Some(new), ty, &mut Vec::new(), &mut c);
        c
    }

    fn compare_node(
        &self,
        old: Option<&Value>,
        new: Option<&Value>,
        ty: &Ty,
        path: &mut Vec<PathElement>,
        c: &mut Comparison,
    ) {
        if is_leaf(old, new, ty) {
            match (old, new) {
                (None, Some(_)) => c.added.insert(path),
                (Some(_), None) => c.removed.insert(path),
                (Some(a), Some(b)) if a != b => c.modified.insert(path),
                _ => {}
            }
            return;
        }
        let empty_map = Map::new();
        match (old.or(new), new.or(old)) {
            (Some(Value::Object(_)), Some(Value::Object(_))) => {
                let l = old.and_then(Value::as_object).unwrap_or(&empty_map);
                let r = new.and_then(Value::as_object).unwrap_or(&empty_map);
                for (name, lv) in l {
                    let (child_ty, _) = self.field(ty, name);
                    path.push(PathElement::Field(name.clone()));
                    self.compare_node(Some(lv), r.get(name), &child_ty, path, c);
                    path.pop();
                }
                for (name, rv) in r {
                    if !l.contains_key(name) {
                        let (child_ty, _) = self.field(ty, name);
                        path.push(PathElement::Field(name.clone()));
                        self.compare_node(None, Some(rv), &child_ty, path, c);
                        path.pop();
                    }
                }
            }
            (Some(Value::Array(_)), Some(Value::Array(_))) => {
                let item_ty = self.item(ty);
                let l = Typer::index(ty, old.and_then(Value::as_array).map_or(&[], Vec::as_slice));
                let r = Typer::index(ty, new.and_then(Value::as_array).map_or(&[], Vec::as_slice));
                let l_items: HashMap<&PathElement, &Value> =
                    l.iter().map(|(p, v)| (p, *v)).collect();
                let r_items: HashMap<&PathElement, &Value> =
                    r.iter().map(|(p, v)| (p, *v)).collect();
                for (pe, lv) in &l {
                    let rv = r_items.get(pe).copied();
                    path.push(pe.clone());
                    self.compare_node(Some(lv), rv, &item_ty, path, c);
                    path.pop();
                }
                for (pe, rv) in &r {
                    if !l_items.contains_key(pe) {
                        path.push(pe.clone());
                        self.compare_node(None, Some(rv), &item_ty, path, c);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
        if !path.is_empty() && self.tracks_node(path) {
            match (old, new) {
                (None, Some(_)) => c.added.insert(path),
                (Some(_), None) => c.removed.insert(path),
                _ => {}
            }
        }
    }
}

/// Whether the node is compared as a whole: scalars, nulls, atomic objects
/// and lists, values of different shapes, and empty-or-absent containers.
fn is_leaf(old: Option<&Value>, new: Option<&Value>, ty: &Ty) -> bool {
    let empty = |v: Option<&Value>| match v {
        None => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    let objects = |v: Option<&Value>| v.is_none_or(Value::is_object);
    let arrays = |v: Option<&Value>| v.is_none_or(Value::is_array);
    if objects(old) && objects(new) {
        ty.atomic || (empty(old) && empty(new))
    } else if arrays(old) && arrays(new) {
        ty.atomic_list() || (empty(old) && empty(new))
    } else {
        true
    }
}

/// `value` without object keys set to null, which an apply takes for
/// "absent".
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        _ => value.clone(),
    }
}

/// The difference between two versions of an object.
#[derive(Debug, Clone, Default)]
pub(crate) struct Comparison {
    /// Paths only in the new object.
    pub(crate) added: FieldSet,
    /// Leaves whose value changed.
    pub(crate) modified: FieldSet,
    /// Paths only in the old object.
    pub(crate) removed: FieldSet,
}

impl Comparison {
    /// The comparison without the paths of `ignored` and below them.
    pub(crate) fn excluding(self, ignored: &FieldSet) -> Comparison {
        Comparison {
            added: self.added.recursive_difference(ignored),
            modified: self.modified.recursive_difference(ignored),
            removed: self.removed.recursive_difference(ignored),
        }
    }
}
