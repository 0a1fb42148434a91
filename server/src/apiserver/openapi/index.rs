//! The compact in-memory index of the definitions: for each definition its
//! fields (type, patch strategy, merge key, list and map types), and the
//! group-version-kind table. Descriptions are skipped while parsing, so
//! building it never holds the whole document as a `serde_json::Value`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::super::schema::FieldMeta;
use super::OpenApiError;

/// Index of a definition in [`Index`].
pub(super) type DefinitionId = u32;

/// Definition name prefix of `$ref`s in the embedded (v2) document.
pub(super) const REF_PREFIX: &str = "#/definitions/";

/// The shape of a value: what a field holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    /// A string, number or boolean.
    Scalar,
    /// Anything (no schema, or `x-kubernetes-preserve-unknown-fields`).
    Untyped,
    /// A value of a definition.
    Definition(DefinitionId),
    /// A list of values.
    Array(Box<Node>),
    /// A map from strings to values.
    Map(Box<Node>),
}

/// What a definition is.
#[derive(Debug)]
pub(super) enum Shape {
    /// An object with declared `properties` (its `fields`).
    Struct,
    /// Anything else, e.g. `Time` (scalar) or `RawExtension` (untyped).
    Value(Node),
}

/// One field of a struct definition.
#[derive(Debug)]
pub(super) struct Field {
    pub name: Box<str>,
    pub node: Node,
    strategy: Option<Box<str>>,
    merge_key: Option<Box<str>>,
    list_type: Option<Box<str>>,
    list_map_keys: Box<[Box<str>]>,
    map_type: Option<Box<str>>,
}

/// One definition.
#[derive(Debug)]
pub(super) struct Definition {
    pub shape: Shape,
    /// The definition's own `x-kubernetes-map-type` (`LabelSelector` is atomic).
    pub map_type: Option<Box<str>>,
    /// Sorted by name.
    pub fields: Box<[Field]>,
}

#[derive(Debug)]
struct GvkEntry {
    group: Box<str>,
    version: Box<str>,
    kind: Box<str>,
    definition: DefinitionId,
}

/// The index of all definitions.
#[derive(Debug)]
pub(super) struct Index {
    /// Definition names, sorted; a definition's position is its id.
    names: Box<[Box<str>]>,
    definitions: Box<[Definition]>,
    /// Sorted by (group, version, kind).
    gvks: Box<[GvkEntry]>,
}

impl Index {
    /// Builds the index from the embedded document's JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, OpenApiError> {
        let raw: RawDocument = serde_json::from_slice(json).map_err(OpenApiError::Parse)?;
        let names: Box<[Box<str>]> = raw.definitions.keys().map(|n| n.as_str().into()).collect();
        let resolve = |reference: &str| -> Option<DefinitionId> {
            let name = reference.strip_prefix(REF_PREFIX)?;
            let position = names.binary_search_by(|n| (**n).cmp(name)).ok()?;
            DefinitionId::try_from(position).ok()
        };
        let mut definitions = Vec::with_capacity(names.len());
        let mut gvks = Vec::new();
        for (position, schema) in raw.definitions.values().enumerate() {
            let id = DefinitionId::try_from(position).map_err(|_| {
                OpenApiError::Parse(serde::de::Error::custom("too many definitions"))
            })?;
            for gvk in &schema.gvk {
                gvks.push(GvkEntry {
                    group: gvk.group.as_str().into(),
                    version: gvk.version.as_str().into(),
                    kind: gvk.kind.as_str().into(),
                    definition: id,
                });
            }
            definitions.push(match &schema.properties {
                Some(properties) => Definition {
                    shape: Shape::Struct,
                    map_type: schema.map_type.as_deref().map(Into::into),
                    fields: properties
                        .iter()
                        .map(|(name, property)| Field::new(name, property, &resolve))
                        .collect(),
                },
                None => Definition {
                    shape: Shape::Value(node(schema, &resolve)),
                    map_type: schema.map_type.as_deref().map(Into::into),
                    fields: Box::default(),
                },
            });
        }
        gvks.sort_by(|a, b| gvk_key(a).cmp(&gvk_key(b)));
        Ok(Self {
            names,
            definitions: definitions.into_boxed_slice(),
            gvks: gvks.into_boxed_slice(),
        })
    }

    /// The id of a definition by name.
    pub fn id(&self, name: &str) -> Option<DefinitionId> {
        let position = self.names.binary_search_by(|n| (**n).cmp(name)).ok()?;
        DefinitionId::try_from(position).ok()
    }

    /// The name of a definition.
    pub fn name(&self, id: DefinitionId) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }

    /// A definition by id.
    pub fn definition(&self, id: DefinitionId) -> Option<&Definition> {
        self.definitions.get(id as usize)
    }

    /// The definition carrying a group-version-kind.
    pub fn definition_for(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        let position = self
            .gvks
            .binary_search_by(|e| gvk_key(e).cmp(&(group, version, kind)))
            .ok()?;
        let entry = self.gvks.get(position)?;
        Some(self.name(entry.definition))
    }

    /// Patch metadata of `field` of the struct definition `definition`.
    pub fn field_meta(&self, definition: &str, field: &str) -> Option<FieldMeta> {
        let found = self.definition(self.id(definition)?)?.field(field)?;
        let target = match &found.node {
            Node::Definition(id) => Some(*id),
            Node::Array(item) | Node::Map(item) => match **item {
                Node::Definition(id) => Some(id),
                _ => None,
            },
            _ => None,
        };
        let struct_name = target
            .filter(|id| matches!(self.definition(*id).map(|d| &d.shape), Some(Shape::Struct)))
            .map(|id| self.name(id).to_owned());
        Some(FieldMeta {
            strategies: found
                .strategy
                .as_deref()
                .map(|s| s.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            merge_key: found.merge_key.as_deref().map(str::to_owned),
            definition: struct_name,
            list_type: found.list_type.as_deref().map(str::to_owned),
            list_map_keys: found.list_map_keys.iter().map(|k| k.to_string()).collect(),
            // A field's own map type, else its type's (`LabelSelector`
            // and `OwnerReference` are atomic wherever they are used).
            map_type: found
                .map_type
                .as_deref()
                .or_else(|| target.and_then(|id| self.definition(id)?.map_type.as_deref()))
                .map(str::to_owned),
        })
    }

    /// Rough heap bytes held (names, fields, strings, GVK table).
    pub fn heap_bytes(&self) -> usize {
        let strings = |s: &Option<Box<str>>| s.as_ref().map_or(0, |s| s.len());
        let mut total = self
            .names
            .iter()
            .map(|n| n.len() + size_of::<Box<str>>())
            .sum::<usize>();
        total += self.definitions.len() * size_of::<Definition>();
        for definition in self.definitions.iter() {
            for field in definition.fields.iter() {
                total += size_of::<Field>() + field.name.len() + field.node.heap_bytes();
                total += strings(&field.strategy) + strings(&field.merge_key);
                total += strings(&field.list_type) + strings(&field.map_type);
                total += field
                    .list_map_keys
                    .iter()
                    .map(|k| k.len() + size_of::<Box<str>>())
                    .sum::<usize>();
            }
        }
        for entry in self.gvks.iter() {
            total +=
                size_of::<GvkEntry>() + entry.group.len() + entry.version.len() + entry.kind.len();
        }
        total
    }
}

impl Definition {
    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        let position = self.fields.binary_search_by(|f| (*f.name).cmp(name)).ok()?;
        self.fields.get(position)
    }
}

impl Field {
    fn new(name: &str, raw: &RawSchema, resolve: &dyn Fn(&str) -> Option<DefinitionId>) -> Self {
        Self {
            name: name.into(),
            node: node(raw, resolve),
            strategy: raw.patch_strategy.as_deref().map(Into::into),
            merge_key: raw.patch_merge_key.as_deref().map(Into::into),
            list_type: raw.list_type.as_deref().map(Into::into),
            list_map_keys: raw
                .list_map_keys
                .iter()
                .map(|k| k.as_str().into())
                .collect(),
            map_type: raw.map_type.as_deref().map(Into::into),
        }
    }
}

impl Node {
    fn heap_bytes(&self) -> usize {
        match self {
            Node::Array(inner) | Node::Map(inner) => size_of::<Node>() + inner.heap_bytes(),
            _ => 0,
        }
    }
}

fn gvk_key(entry: &GvkEntry) -> (&str, &str, &str) {
    (&entry.group, &entry.version, &entry.kind)
}

/// The shape of a (non-definition) schema.
fn node(raw: &RawSchema, resolve: &dyn Fn(&str) -> Option<DefinitionId>) -> Node {
    if let Some(reference) = &raw.reference {
        return resolve(reference).map_or(Node::Untyped, Node::Definition);
    }
    if raw.preserve_unknown_fields == Some(true) {
        return Node::Untyped;
    }
    match (raw.ty.as_deref(), &raw.additional_properties) {
        (Some("array"), _) => Node::Array(Box::new(
            raw.items
                .as_deref()
                .map_or(Node::Untyped, |items| node(items, resolve)),
        )),
        (Some("object") | None, Some(RawAdditional::Schema(values))) => {
            Node::Map(Box::new(node(values, resolve)))
        }
        (Some("object") | None, Some(RawAdditional::Allowed(true))) => {
            Node::Map(Box::new(Node::Untyped))
        }
        // No inline structs in the built-in definitions: every object with
        // properties is a definition of its own.
        (Some("object") | None, _) => Node::Untyped,
        (Some(_), _) => Node::Scalar,
    }
}

/// The embedded document, reading only what the index keeps.
#[derive(Deserialize)]
struct RawDocument {
    definitions: BTreeMap<String, RawSchema>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSchema {
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(rename = "$ref")]
    reference: Option<String>,
    properties: Option<BTreeMap<String, RawSchema>>,
    items: Option<Box<RawSchema>>,
    #[serde(rename = "additionalProperties")]
    additional_properties: Option<RawAdditional>,
    #[serde(rename = "x-kubernetes-patch-strategy")]
    patch_strategy: Option<String>,
    #[serde(rename = "x-kubernetes-patch-merge-key")]
    patch_merge_key: Option<String>,
    #[serde(rename = "x-kubernetes-list-type")]
    list_type: Option<String>,
    #[serde(rename = "x-kubernetes-list-map-keys")]
    list_map_keys: Vec<String>,
    #[serde(rename = "x-kubernetes-map-type")]
    map_type: Option<String>,
    #[serde(rename = "x-kubernetes-group-version-kind")]
    gvk: Vec<RawGvk>,
    #[serde(rename = "x-kubernetes-preserve-unknown-fields")]
    preserve_unknown_fields: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawAdditional {
    Allowed(bool),
    Schema(Box<RawSchema>),
}

#[derive(Deserialize)]
struct RawGvk {
    group: String,
    version: String,
    kind: String,
}
