//! The message descriptors: `kubernetes-v1.32-protobuf.json.zst` (written by
//! `scripts/gen-protobuf.py`) read into compact tables.

use std::collections::HashMap;

use serde::Deserialize;

use super::ProtobufError;

/// The embedded table: `{"kinds": {...}, "messages": {...}}`, zstd.
const EMBEDDED: &[u8] = include_bytes!("../../../openapi/kubernetes-v1.32-protobuf.json.zst");

/// A scalar wire kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Uint32,
    Double,
}

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Scalar(Scalar),
    /// A message, by its index in `Descriptors::messages`.
    Message(u32),
    /// A map: entries are messages of key (tag 1) and value (tag 2).
    Map {
        key: Scalar,
        value: MapValue,
    },
}

/// What a map's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MapValue {
    Scalar(Scalar),
    Message(u32),
}

/// How a message is printed as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// An object of its fields.
    Object,
    /// `meta.v1.Time`: RFC 3339 seconds, `null` when zero.
    Time,
    /// `meta.v1.MicroTime`: RFC 3339 with microseconds.
    MicroTime,
    /// `meta.v1.Duration`: Go's `time.Duration` string.
    Duration,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `resource.Quantity`: its string.
    Quantity,
    /// Bytes of JSON in field 1 (`RawExtension`, `FieldsV1`, apiextensions `JSON`).
    RawJson,
    /// A Go string slice wrapped in a message (`ExtraValue`, `Verbs`).
    StringList,
    /// apiextensions `JSONSchemaPropsOrArray`.
    SchemaOrArray,
    /// apiextensions `JSONSchemaPropsOrBool`.
    SchemaOrBool,
    /// apiextensions `JSONSchemaPropsOrStringArray`.
    SchemaOrStringArray,
}

/// One field of a message.
#[derive(Debug)]
pub(super) struct Field {
    pub tag: u32,
    /// The JSON name; empty for an inline field.
    pub json: Box<str>,
    pub kind: Kind,
    pub repeated: bool,
    /// Go prints the zero value (a pointer, or no `omitempty`).
    pub keep_zero: bool,
    /// Go embeds the struct with `json:",inline"`: its fields join the parent's.
    pub inline: bool,
}

/// One message: its fields, sorted by tag.
#[derive(Debug)]
pub(super) struct Message {
    pub encoding: Encoding,
    pub fields: Box<[Field]>,
}

impl Message {
    /// The field with `tag`, if the schema has it.
    pub fn field(&self, tag: u32) -> Option<&Field> {
        self.fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .map(|i| &self.fields[i])
    }
}

/// Every message, and the message of each `apiVersion/kind`.
#[derive(Debug)]
pub(super) struct Descriptors {
    pub messages: Box<[Message]>,
    pub kinds: HashMap<Box<str>, u32>,
}

#[derive(Deserialize)]
struct Document {
    kinds: HashMap<String, String>,
    messages: HashMap<String, MessageDocument>,
}

#[derive(Deserialize)]
struct MessageDocument {
    fields: Vec<FieldDocument>,
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Deserialize)]
struct FieldDocument {
    tag: u32,
    json: String,
    kind: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    repeated: bool,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    keep_zero: bool,
    #[serde(default)]
    inline: bool,
}

fn invalid(what: String) -> ProtobufError {
    ProtobufError::Descriptors(what)
}

fn scalar(kind: &str) -> Option<Scalar> {
    Some(match kind {
        "string" => Scalar::String,
        "bytes" => Scalar::Bytes,
        "bool" => Scalar::Bool,
        "int32" => Scalar::Int32,
        "int64" => Scalar::Int64,
        "uint32" => Scalar::Uint32,
        "double" => Scalar::Double,
        _ => return None,
    })
}

fn encoding(name: Option<&str>) -> Option<Encoding> {
    Some(match name {
        None => Encoding::Object,
        Some("time") => Encoding::Time,
        Some("micro_time") => Encoding::MicroTime,
        Some("duration") => Encoding::Duration,
        Some("int_or_string") => Encoding::IntOrString,
        Some("quantity") => Encoding::Quantity,
        Some("raw_json") => Encoding::RawJson,
        Some("string_list") => Encoding::StringList,
        Some("schema_or_array") => Encoding::SchemaOrArray,
        Some("schema_or_bool") => Encoding::SchemaOrBool,
        Some("schema_or_string_array") => Encoding::SchemaOrStringArray,
        Some(_) => return None,
    })
}

impl Descriptors {
    /// Reads the embedded table.
    pub fn embedded() -> Result<Self, ProtobufError> {
        let json =
            zstd::decode_all(EMBEDDED).map_err(|e| invalid(format!("decompressing: {e}")))?;
        Self::from_json(&json)
    }

    /// Reads a table in the generator's JSON form.
    pub fn from_json(json: &[u8]) -> Result<Self, ProtobufError> {
        let document: Document =
            serde_json::from_slice(json).map_err(|e| invalid(format!("parsing: {e}")))?;
        let mut names: Vec<&String> = document.messages.keys().collect();
        names.sort();
        let index: HashMap<&str, u32> = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i as u32))
            .collect();
        let lookup = |owner: &str, name: Option<&String>| -> Result<u32, ProtobufError> {
            let name =
                name.ok_or_else(|| invalid(format!("{owner}: message field without a type")))?;
            index
                .get(name.as_str())
                .copied()
                .ok_or_else(|| invalid(format!("{owner}: unknown message {name}")))
        };
        let mut messages = Vec::with_capacity(names.len());
        for name in &names {
            let document_message = &document.messages[*name];
            let encoding = encoding(document_message.encoding.as_deref()).ok_or_else(|| {
                invalid(format!(
                    "{name}: unknown encoding {:?}",
                    document_message.encoding
                ))
            })?;
            let mut fields = Vec::with_capacity(document_message.fields.len());
            for f in &document_message.fields {
                let owner = format!("{name}.{}", f.json);
                let kind = match f.kind.as_str() {
                    "message" => Kind::Message(lookup(&owner, f.message.as_ref())?),
                    "map" => {
                        let key = f.key.as_deref().and_then(scalar);
                        let value = match f.value.as_deref() {
                            Some("message") => {
                                Some(MapValue::Message(lookup(&owner, f.message.as_ref())?))
                            }
                            other => other.and_then(scalar).map(MapValue::Scalar),
                        };
                        match (key, value) {
                            (Some(key), Some(value)) => Kind::Map { key, value },
                            _ => return Err(invalid(format!("{owner}: bad map key or value"))),
                        }
                    }
                    other => Kind::Scalar(
                        scalar(other)
                            .ok_or_else(|| invalid(format!("{owner}: unknown kind {other}")))?,
                    ),
                };
                if f.inline && !matches!(kind, Kind::Message(_)) {
                    return Err(invalid(format!(
                        "{owner}: an inline field must be a message"
                    )));
                }
                fields.push(Field {
                    tag: f.tag,
                    json: f.json.as_str().into(),
                    kind,
                    repeated: f.repeated,
                    keep_zero: f.keep_zero,
                    inline: f.inline,
                });
            }
            fields.sort_by_key(|f| f.tag);
            messages.push(Message {
                encoding,
                fields: fields.into_boxed_slice(),
            });
        }
        let mut kinds = HashMap::with_capacity(document.kinds.len());
        for (gvk, message) in &document.kinds {
            kinds.insert(gvk.as_str().into(), lookup(gvk, Some(message))?);
        }
        Ok(Self {
            messages: messages.into_boxed_slice(),
            kinds,
        })
    }

    /// The message of `apiVersion` and `kind`.
    pub fn kind(&self, api_version: &str, kind: &str) -> Option<u32> {
        self.kinds
            .get(format!("{api_version}/{kind}").as_str())
            .copied()
    }

    /// The message at `index` (indices come from this table).
    pub fn message(&self, index: u32) -> &Message {
        &self.messages[index as usize]
    }
}
