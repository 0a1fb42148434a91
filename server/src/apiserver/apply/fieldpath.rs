//! Field paths and sets of them, the unit of ownership in server-side apply
//! (structured-merge-diff's `fieldpath`), and their `FieldsV1` encoding:
//! `{"f:spec":{"f:replicas":{}}}`, list items as `k:{"name":"web"}` (by
//! key), `v:"x"` (by value) or `i:0` (by index), and `".":{}` marking a
//! node that is itself a member besides having members below it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// A JSON value in its compact text form, so that path elements holding
/// values can be ordered and compared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct JsonText(String);

impl JsonText {
    /// The text of `value`.
    pub(crate) fn of(value: &Value) -> Self {
        JsonText(value.to_string())
    }
}

/// One step of a field path.
///
/// The variant order is upstream's order of path elements: fields, then
/// keyed list items, then set items, then indexed items.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PathElement {
    /// A field of an object or a key of a map: `.name`.
    Field(String),
    /// A list-map item by its keys, sorted by key name: `[name="web"]`.
    Key(Vec<(String, JsonText)>),
    /// A set item by its value: `[="x"]`.
    Value(JsonText),
    /// An item of a list without keys, by position: `[0]`.
    Index(usize),
}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(keys) => {
                f.write_str("[")?;
                for (i, (name, value)) in keys.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{name}={}", value.0)?;
                }
                f.write_str("]")
            }
            PathElement::Value(value) => write!(f, "[={}]", value.0),
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

impl PathElement {
    /// The `FieldsV1` key of this element.
    fn fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(keys) => {
                let body: Vec<String> = keys
                    .iter()
                    .map(|(name, value)| format!("{}:{}", Value::from(name.as_str()), value.0))
                    .collect();
                format!("k:{{{}}}", body.join(","))
            }
            PathElement::Value(value) => format!("v:{}", value.0),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    /// Parses a `FieldsV1` key other than `.`.
    fn from_fields_v1_key(key: &str) -> Result<Self, String> {
        let (prefix, rest) = key
            .split_once(':')
            .ok_or_else(|| format!("unexpected key {key:?}: no prefix"))?;
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_owned())),
            "k" => {
                let parsed: Value = serde_json::from_str(rest)
                    .map_err(|e| format!("parsing JSON key {rest:?}: {e}"))?;
                let Value::Object(fields) = parsed else {
                    return Err(format!("key {rest:?} is not a JSON object"));
                };
                let mut keys: Vec<(String, JsonText)> = fields
                    .iter()
                    .map(|(name, value)| (name.clone(), JsonText::of(value)))
                    .collect();
                keys.sort();
                Ok(PathElement::Key(keys))
            }
            "v" => {
                let parsed: Value = serde_json::from_str(rest)
                    .map_err(|e| format!("parsing JSON value {rest:?}: {e}"))?;
                Ok(PathElement::Value(JsonText::of(&parsed)))
            }
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|e| format!("parsing index {rest:?}: {e}")),
            _ => Err(format!("unknown prefix {prefix:?} in key {key:?}")),
        }
    }
}

/// Writes a path as upstream prints it in conflicts:
/// `.spec.template.spec.containers[name="web"].image`.
pub(crate) fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of field paths, stored as a tree: `members` are the paths that end
/// at this node's children, `children` the subtrees below them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// An empty set.
    pub(crate) fn new() -> Self {
        FieldSet::default()
    }

    /// Whether the set holds no path.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path`; the empty path (the object itself) is never a member.
    pub(crate) fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether `path` is a member.
    #[cfg(test)]
    pub(crate) fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether the one-element path `pe` is a member.
    pub(crate) fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The paths below `pe`, with `pe` taken off their front.
    pub(crate) fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe).filter(|c| !c.is_empty())
    }

    /// The members' path elements at this level.
    pub(crate) fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    /// The subtrees at this level.
    pub(crate) fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    /// Adds `pe` as a member at this level.
    pub(crate) fn insert_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    /// Sets the subtree below `pe` (dropped when empty).
    pub(crate) fn set_child(&mut self, pe: PathElement, child: FieldSet) {
        if child.is_empty() {
            self.children.remove(&pe);
        } else {
            self.children.insert(pe, child);
        }
    }

    /// Paths in either set.
    pub(crate) fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.set_child(pe.clone(), merged);
        }
        out
    }

    /// Paths of `self` that are not in `other`; a member of `other` does not
    /// take away the paths below it (see `recursive_difference`).
    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            out.set_child(pe.clone(), rest);
        }
        out
    }

    /// Paths in both sets.
    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                out.set_child(pe.clone(), child.intersection(theirs));
            }
        }
        out
    }

    /// Paths of `self` that are neither in `other` nor below a member of it.
    pub(crate) fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            let rest = match other.children.get(pe) {
                Some(theirs) => child.recursive_difference(theirs),
                None => child.clone(),
            };
            out.set_child(pe.clone(), rest);
        }
        out
    }

    /// Every member path, in upstream's order: this level's members, then
    /// each subtree's.
    pub(crate) fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for pe in &self.members {
            let mut path = prefix.clone();
            path.push(pe.clone());
            out.push(path);
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `FieldsV1` form of the set.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        let keys: BTreeSet<&PathElement> =
            self.members.iter().chain(self.children.keys()).collect();
        for pe in keys {
            let mut node = Map::new();
            if let Some(child) = self.children.get(pe) {
                if self.members.contains(pe) {
                    node.insert(".".to_owned(), Value::Object(Map::new()));
                }
                if let Value::Object(inner) = child.to_fields_v1() {
                    node.extend(inner);
                }
            }
            out.insert(pe.fields_v1_key(), Value::Object(node));
        }
        Value::Object(out)
    }

    /// Reads a `FieldsV1` value.
    pub(crate) fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        let Value::Object(entries) = value else {
            return Err("FieldsV1 is not a JSON object".to_owned());
        };
        let mut set = FieldSet::new();
        for (key, node) in entries {
            if key == "." {
                continue;
            }
            let pe = PathElement::from_fields_v1_key(key)?;
            let Value::Object(inner) = node else {
                return Err(format!("value of {key:?} is not a JSON object"));
            };
            if inner.is_empty() || inner.contains_key(".") {
                set.members.insert(pe.clone());
            }
            let child = FieldSet::from_fields_v1(node)?;
            set.set_child(pe, child);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_owned())
    }

    #[test]
    fn fields_v1_round_trips_with_dot_for_members_with_children() {
        let encoded = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {
                "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}},
            }, "f:finalizers": {"v:\"a\"": {}}, "f:args": {"i:0": {}}},
        });
        let set = FieldSet::from_fields_v1(&encoded).expect("parses");
        assert!(set.has(&[field("metadata"), field("labels")]));
        assert!(!set.has(&[field("metadata")]));
        assert_eq!(set.to_fields_v1(), encoded);
    }

    #[test]
    fn paths_print_like_upstream() {
        let key = PathElement::Key(vec![
            ("containerPort".to_owned(), JsonText::of(&json!(80))),
            ("protocol".to_owned(), JsonText::of(&json!("TCP"))),
        ]);
        let path = [field("spec"), field("ports"), key, field("name")];
        assert_eq!(
            path_string(&path),
            ".spec.ports[containerPort=80,protocol=\"TCP\"].name"
        );
        let value = PathElement::Value(JsonText::of(&json!("x")));
        assert_eq!(value.to_string(), "[=\"x\"]");
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::new();
        a.insert(&[field("a"), field("b")]);
        a.insert(&[field("a"), field("c")]);
        let mut b = FieldSet::new();
        b.insert(&[field("a")]);
        b.insert(&[field("a"), field("b")]);
        assert_eq!(a.difference(&b).paths(), vec![vec![field("a"), field("c")]]);
        assert!(a.recursive_difference(&b).is_empty());
        assert_eq!(
            a.intersection(&b).paths(),
            vec![vec![field("a"), field("b")]]
        );
        assert_eq!(a.union(&b).paths().len(), 3);
    }
}
