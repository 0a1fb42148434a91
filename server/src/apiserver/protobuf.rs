//! Request bodies in Kubernetes' protobuf encoding, read into the JSON
//! kube-apiserver would print for the same object.
//!
//! kubectl's typed commands (`kubectl create deployment|secret|job|...`,
//! `create token`, `create job --from`) send
//! `Content-Type: application/vnd.kubernetes.protobuf`: the 4 bytes `k8s\0`,
//! then a `runtime.Unknown` (1: typeMeta {1: apiVersion, 2: kind}, 2: raw,
//! 3: contentEncoding, 4: contentType) whose `raw` is the object's message
//! from k8s.io/api's `generated.proto`.
//!
//! The messages come from `server/openapi/kubernetes-v1.32-protobuf.json.zst`
//! (`scripts/gen-protobuf.py`). The JSON follows Go's: every scalar field is
//! on the wire, so a zero string, number or `false` is dropped unless Go
//! prints it (the field is a pointer, like `replicas` or `optional`, or has
//! no `omitempty`, like `containerPort`: the table's `keep_zero`); empty
//! lists and maps are dropped; messages stay, even empty (`"resources": {}`);
//! a zero `Time` is dropped (Go prints `null`); `Time`, `MicroTime`,
//! `Duration`, `IntOrString`, `Quantity`, `RawExtension`, bytes (base64) and
//! the apiextensions `JSONSchemaProps*` unions print as Go prints them.
//! Fields the table does not have are skipped, like Go skips unknown fields.
//!
//! # Layout
//!
//! - `descriptors`: the embedded table, read into compact messages.
//! - `wire`: varints, tags, length-delimited fields.
//! - `formats`: RFC 3339 times and Go duration strings.

mod descriptors;
mod formats;
mod wire;

use base64::Engine;
use serde_json::{Map, Value};
use thiserror::Error;

use descriptors::{Descriptors, Encoding, Field, Kind, MapValue, Message, Scalar};
use wire::{Reader, WireType};

pub use wire::WireError;

/// The media type of Kubernetes' protobuf encoding.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4 bytes every body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// Nesting deeper than this is refused (CRD schemas nest ~2 messages a level).
const MAX_DEPTH: usize = 200;

/// Why a body could not be read. The apiserver answers 400 BadRequest.
#[derive(Debug, Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("protobuf body does not start with the prefix \"k8s\\x00\"")]
    Magic,
    /// The envelope lacks its apiVersion or kind.
    #[error("protobuf body has no {0} in its typeMeta")]
    MissingTypeMeta(&'static str),
    /// The envelope names a kind the table does not have.
    #[error("no protobuf message for {api_version}, Kind={kind}")]
    UnknownKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// The envelope's object is compressed or in another encoding.
    #[error("unsupported protobuf content {what} {value:?}")]
    UnsupportedContent {
        /// `contentEncoding` or `contentType`.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// The bytes do not parse as the message the schema names.
    #[error("malformed protobuf in {path}: {source}")]
    Malformed {
        /// Where: `runtime.Unknown`, or the kind and JSON path (`Deployment.spec.replicas`).
        path: String,
        /// What is wrong.
        source: WireError,
    },
    /// An embedded JSON value (`RawExtension`, `FieldsV1`, `JSON`) is not JSON.
    #[error("invalid embedded JSON in {path}: {source}")]
    EmbeddedJson {
        /// The kind and JSON path.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A value JSON cannot carry: a time outside years 0-9999, a NaN.
    #[error("{path}: {problem}")]
    Unrepresentable {
        /// The kind and JSON path.
        path: String,
        /// What the value is.
        problem: String,
    },
    /// Messages nest deeper than `MAX_DEPTH`.
    #[error("protobuf messages nest deeper than {MAX_DEPTH} in {path}")]
    TooDeep {
        /// The kind and JSON path.
        path: String,
    },
    /// The embedded message table is unreadable (a build problem).
    #[error("protobuf message table: {0}")]
    Descriptors(String),
}

impl ProtobufError {
    /// The error with `segment` put in front of its path.
    fn within(mut self, segment: &str) -> Self {
        match &mut self {
            ProtobufError::Malformed { path, .. }
            | ProtobufError::EmbeddedJson { path, .. }
            | ProtobufError::Unrepresentable { path, .. }
            | ProtobufError::TooDeep { path }
                if !segment.is_empty() =>
            {
                *path = if path.is_empty() {
                    segment.to_string()
                } else {
                    format!("{segment}.{path}")
                };
            }
            _ => {}
        }
        self
    }

    fn wire(source: WireError) -> Self {
        ProtobufError::Malformed {
            path: String::new(),
            source,
        }
    }

    fn unrepresentable(problem: String) -> Self {
        ProtobufError::Unrepresentable {
            path: String::new(),
            problem,
        }
    }
}

/// Reads protobuf request bodies of the Kubernetes 1.32 API.
#[derive(Debug)]
pub struct Protobuf {
    descriptors: Descriptors,
}

/// The `runtime.Unknown` around an object.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

impl Protobuf {
    /// Reads the embedded message table (a few milliseconds).
    pub fn load() -> Result<Self, ProtobufError> {
        Ok(Self {
            descriptors: Descriptors::embedded()?,
        })
    }

    /// Whether the table has the message of `api_version` and `kind`.
    #[cfg(test)]
    pub fn knows(&self, api_version: &str, kind: &str) -> bool {
        self.descriptors.kind(api_version, kind).is_some()
    }

    /// The object in a protobuf body, as JSON with `apiVersion` and `kind`
    /// set from the envelope's typeMeta.
    pub fn decode(&self, body: &[u8]) -> Result<Value, ProtobufError> {
        self.decode_at(body, 0)
    }

    fn decode_at(&self, body: &[u8], depth: usize) -> Result<Value, ProtobufError> {
        let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::Magic)?;
        let envelope = envelope(rest).map_err(|e| e.within("runtime.Unknown"))?;
        if envelope.api_version.is_empty() {
            return Err(ProtobufError::MissingTypeMeta("apiVersion"));
        }
        if envelope.kind.is_empty() {
            return Err(ProtobufError::MissingTypeMeta("kind"));
        }
        if !envelope.content_encoding.is_empty() {
            return Err(ProtobufError::UnsupportedContent {
                what: "contentEncoding",
                value: envelope.content_encoding,
            });
        }
        let mut object = match envelope.content_type.as_str() {
            "" | CONTENT_TYPE => {
                let index = self
                    .descriptors
                    .kind(&envelope.api_version, &envelope.kind)
                    .ok_or_else(|| ProtobufError::UnknownKind {
                        api_version: envelope.api_version.clone(),
                        kind: envelope.kind.clone(),
                    })?;
                self.message(index, envelope.raw, depth)
                    .map_err(|e| e.within(&envelope.kind))?
                    .unwrap_or_else(|| Value::Object(Map::new()))
            }
            "application/json" => serde_json::from_slice(envelope.raw).map_err(|source| {
                ProtobufError::EmbeddedJson {
                    path: envelope.kind.clone(),
                    source,
                }
            })?,
            _ => {
                return Err(ProtobufError::UnsupportedContent {
                    what: "contentType",
                    value: envelope.content_type,
                });
            }
        };
        if let Value::Object(map) = &mut object {
            map.insert("apiVersion".into(), Value::String(envelope.api_version));
            map.insert("kind".into(), Value::String(envelope.kind));
        }
        Ok(object)
    }

    /// A message as JSON; `None` where Go prints `null` (a zero time, no raw JSON).
    fn message(
        &self,
        index: u32,
        data: &[u8],
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        if depth >= MAX_DEPTH {
            return Err(ProtobufError::TooDeep {
                path: String::new(),
            });
        }
        let message = self.descriptors.message(index);
        match message.encoding {
            Encoding::Object => self
                .object(message, data, depth)
                .map(|map| Some(Value::Object(map))),
            Encoding::Time => time(data, false),
            Encoding::MicroTime => time(data, true),
            Encoding::Duration => {
                let nanos = varint_field(data, 1)?.unwrap_or(0) as i64;
                Ok(Some(Value::String(formats::go_duration(nanos))))
            }
            Encoding::IntOrString => {
                let (mut string_type, mut int, mut string) = (false, 0i32, String::new());
                for_each_field(data, |tag, value| {
                    match (tag, value) {
                        (1, wire::Value::Varint(v)) => string_type = v == 1,
                        (2, wire::Value::Varint(v)) => int = v as i32,
                        (3, wire::Value::Len(b)) => {
                            string = String::from_utf8_lossy(b).into_owned()
                        }
                        (1..=3, other) => {
                            let expected = if tag == 3 {
                                WireType::Len
                            } else {
                                WireType::Varint
                            };
                            return Err(ProtobufError::wire(other.wrong(tag, expected)));
                        }
                        _ => {}
                    }
                    Ok(())
                })?;
                Ok(Some(if string_type {
                    Value::String(string)
                } else {
                    Value::from(int)
                }))
            }
            Encoding::Quantity => {
                let text = bytes_field(data, 1)?.unwrap_or(b"0");
                Ok(Some(Value::String(
                    String::from_utf8_lossy(text).into_owned(),
                )))
            }
            Encoding::RawJson => match bytes_field(data, 1)? {
                None | Some([]) => Ok(None),
                Some(raw) if raw.starts_with(MAGIC) => self.decode_at(raw, depth + 1).map(Some),
                Some(raw) => serde_json::from_slice(raw).map(Some).map_err(|source| {
                    ProtobufError::EmbeddedJson {
                        path: String::new(),
                        source,
                    }
                }),
            },
            Encoding::StringList => {
                let mut items = Vec::new();
                for_each_field(data, |tag, value| {
                    if tag == 1 {
                        match value {
                            wire::Value::Len(b) => {
                                items.push(Value::String(String::from_utf8_lossy(b).into_owned()))
                            }
                            other => {
                                return Err(ProtobufError::wire(other.wrong(tag, WireType::Len)));
                            }
                        }
                    }
                    Ok(())
                })?;
                Ok(Some(Value::Array(items)))
            }
            Encoding::SchemaOrArray | Encoding::SchemaOrBool | Encoding::SchemaOrStringArray => {
                let mut map = self.object(message, data, depth)?;
                let mut take = |tag: u32| message.field(tag).and_then(|f| map.remove(&*f.json));
                Ok(match message.encoding {
                    // Go: the list when it has items, else the schema.
                    Encoding::SchemaOrArray => match (take(2), take(1)) {
                        (Some(list), _) => Some(list),
                        (None, schema) => schema,
                    },
                    // Go: the schema when set, else the bool.
                    Encoding::SchemaOrBool => match (take(2), take(1)) {
                        (Some(schema), _) => Some(schema),
                        (None, allows) => Some(allows.unwrap_or(Value::Bool(false))),
                    },
                    // Go: the strings when there are any, else the schema.
                    _ => match (take(2), take(1)) {
                        (Some(strings), _) => Some(strings),
                        (None, schema) => schema,
                    },
                })
            }
        }
    }

    /// A message printed as an object of its fields.
    fn object(
        &self,
        message: &Message,
        data: &[u8],
        depth: usize,
    ) -> Result<Map<String, Value>, ProtobufError> {
        let mut map = Map::new();
        let mut reader = Reader::new(data);
        while !reader.at_end() {
            let (tag, value) = reader.field().map_err(ProtobufError::wire)?;
            let Some(field) = message.field(tag) else {
                continue;
            };
            self.field(field, value, &mut map, depth)
                .map_err(|e| e.within(&field.json))?;
        }
        Ok(map)
    }

    /// Puts one field occurrence into `map`.
    fn field(
        &self,
        field: &Field,
        value: wire::Value<'_>,
        map: &mut Map<String, Value>,
        depth: usize,
    ) -> Result<(), ProtobufError> {
        let key = &*field.json;
        match field.kind {
            Kind::Scalar(scalar) if field.repeated => match (value, scalar) {
                // Repeated numbers may come packed in one length-delimited field.
                (wire::Value::Len(packed), s) if !matches!(s, Scalar::String | Scalar::Bytes) => {
                    let mut reader = Reader::new(packed);
                    while !reader.at_end() {
                        let item = match s {
                            Scalar::Double => {
                                wire::Value::Fixed64(reader.fixed64().map_err(ProtobufError::wire)?)
                            }
                            _ => wire::Value::Varint(reader.varint().map_err(ProtobufError::wire)?),
                        };
                        push(map, key, scalar_value(s, field.tag, item)?);
                    }
                }
                (value, s) => push(map, key, scalar_value(s, field.tag, value)?),
            },
            Kind::Scalar(scalar) => {
                let value = scalar_value(scalar, field.tag, value)?;
                if field.keep_zero || !is_zero(&value) {
                    map.insert(key.to_string(), value);
                } else {
                    map.remove(key);
                }
            }
            Kind::Message(index) => {
                let wire::Value::Len(bytes) = value else {
                    return Err(ProtobufError::wire(value.wrong(field.tag, WireType::Len)));
                };
                let decoded = self.message(index, bytes, depth + 1)?;
                if field.repeated {
                    push(map, key, decoded.unwrap_or(Value::Null));
                } else if field.inline {
                    if let Some(Value::Object(inner)) = decoded {
                        map.extend(inner);
                    }
                } else {
                    match decoded {
                        Some(v) if field.keep_zero || !self.is_zero_scalar_message(index, &v) => {
                            map.insert(key.to_string(), v);
                        }
                        _ => {
                            map.remove(key);
                        }
                    }
                }
            }
            Kind::Map {
                key: key_kind,
                value: value_kind,
            } => {
                let wire::Value::Len(entry) = value else {
                    return Err(ProtobufError::wire(value.wrong(field.tag, WireType::Len)));
                };
                let (entry_key, entry_value) =
                    self.map_entry(key_kind, value_kind, entry, depth)?;
                insert_entry(map, key, entry_key, entry_value);
            }
        }
        Ok(())
    }

    /// A map entry's key (as a JSON object key) and value.
    fn map_entry(
        &self,
        key_kind: Scalar,
        value_kind: MapValue,
        entry: &[u8],
        depth: usize,
    ) -> Result<(String, Value), ProtobufError> {
        let (mut key, mut value) = (None, None);
        let mut reader = Reader::new(entry);
        while !reader.at_end() {
            match reader.field().map_err(ProtobufError::wire)? {
                (1, v) => key = Some(scalar_value(key_kind, 1, v)?),
                (2, v) => value = Some(v),
                _ => {}
            }
        }
        let key = match key {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let value = match (value_kind, value) {
            (MapValue::Scalar(s), Some(v)) => scalar_value(s, 2, v),
            (MapValue::Scalar(s), None) => Ok(zero(s)),
            (MapValue::Message(index), Some(wire::Value::Len(bytes))) => self
                .message(index, bytes, depth + 1)
                .map(|v| v.unwrap_or(Value::Null)),
            (MapValue::Message(_), Some(other)) => {
                Err(ProtobufError::wire(other.wrong(2, WireType::Len)))
            }
            (MapValue::Message(index), None) => self
                .message(index, &[], depth + 1)
                .map(|v| v.unwrap_or(Value::Null)),
        }
        .map_err(|e| e.within(&key))?;
        Ok((key, value))
    }

    /// Whether a message printed as a scalar holds Go's zero value, which a
    /// non-pointer `omitempty` field leaves out like any zero scalar.
    fn is_zero_scalar_message(&self, index: u32, value: &Value) -> bool {
        match self.descriptors.message(index).encoding {
            Encoding::IntOrString => value == &Value::from(0),
            Encoding::Duration => value == "0s",
            _ => false,
        }
    }
}

/// Reads the `runtime.Unknown` envelope.
fn envelope(data: &[u8]) -> Result<Envelope<'_>, ProtobufError> {
    let mut envelope = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
        content_type: String::new(),
    };
    for_each_field(data, |tag, value| {
        let wire::Value::Len(bytes) = value else {
            return match tag {
                1..=4 => Err(ProtobufError::wire(value.wrong(tag, WireType::Len))),
                _ => Ok(()),
            };
        };
        let text = || String::from_utf8_lossy(bytes).into_owned();
        match tag {
            1 => for_each_field(bytes, |tag, value| {
                match (tag, value) {
                    (1, wire::Value::Len(b)) => {
                        envelope.api_version = String::from_utf8_lossy(b).into_owned()
                    }
                    (2, wire::Value::Len(b)) => {
                        envelope.kind = String::from_utf8_lossy(b).into_owned()
                    }
                    (1 | 2, other) => {
                        return Err(ProtobufError::wire(other.wrong(tag, WireType::Len)));
                    }
                    _ => {}
                }
                Ok(())
            })?,
            2 => envelope.raw = bytes,
            3 => envelope.content_encoding = text(),
            4 => envelope.content_type = text(),
            _ => {}
        }
        Ok(())
    })?;
    Ok(envelope)
}

/// Calls `f` with every field of a message.
fn for_each_field<'a>(
    data: &'a [u8],
    mut f: impl FnMut(u32, wire::Value<'a>) -> Result<(), ProtobufError>,
) -> Result<(), ProtobufError> {
    let mut reader = Reader::new(data);
    while !reader.at_end() {
        let (tag, value) = reader.field().map_err(ProtobufError::wire)?;
        f(tag, value)?;
    }
    Ok(())
}

/// The last varint field `tag` of a message.
fn varint_field(data: &[u8], want: u32) -> Result<Option<u64>, ProtobufError> {
    let mut found = None;
    for_each_field(data, |tag, value| {
        if tag == want {
            match value {
                wire::Value::Varint(v) => found = Some(v),
                other => return Err(ProtobufError::wire(other.wrong(tag, WireType::Varint))),
            }
        }
        Ok(())
    })?;
    Ok(found)
}

/// The last length-delimited field `tag` of a message.
fn bytes_field(data: &[u8], want: u32) -> Result<Option<&[u8]>, ProtobufError> {
    let mut found = None;
    for_each_field(data, |tag, value| {
        if tag == want {
            match value {
                wire::Value::Len(b) => found = Some(b),
                other => return Err(ProtobufError::wire(other.wrong(tag, WireType::Len))),
            }
        }
        Ok(())
    })?;
    Ok(found)
}

/// `meta.v1.Time` {1: seconds, 2: nanos} or `MicroTime`. Go keeps only the
/// seconds of a `Time`; a zero time (no fields, or 0001-01-01) prints `null`.
fn time(data: &[u8], micro: bool) -> Result<Option<Value>, ProtobufError> {
    let (mut seconds, mut nanos) = (0i64, 0i64);
    for_each_field(data, |tag, value| {
        match (tag, value) {
            (1, wire::Value::Varint(v)) => seconds = v as i64,
            (2, wire::Value::Varint(v)) => nanos = i64::from(v as i32),
            (1 | 2, other) => return Err(ProtobufError::wire(other.wrong(tag, WireType::Varint))),
            _ => {}
        }
        Ok(())
    })?;
    if data.is_empty() {
        return Ok(None);
    }
    if !micro {
        nanos = 0;
    }
    // Go normalizes nanoseconds outside [0, 1e9) into the seconds.
    let seconds = seconds.saturating_add(nanos.div_euclid(1_000_000_000));
    let nanos = nanos.rem_euclid(1_000_000_000) as u32;
    if seconds == formats::ZERO_TIME_UNIX && nanos == 0 {
        return Ok(None);
    }
    let micros = micro.then_some(nanos / 1000);
    formats::rfc3339(seconds, micros)
        .map(|text| Some(Value::String(text)))
        .ok_or_else(|| {
            ProtobufError::unrepresentable(format!(
                "time {seconds}s after 1970 is outside years 0-9999"
            ))
        })
}

/// A scalar field's value as JSON.
fn scalar_value(scalar: Scalar, tag: u32, value: wire::Value<'_>) -> Result<Value, ProtobufError> {
    let wrong = |expected| ProtobufError::wire(value.wrong(tag, expected));
    Ok(match (scalar, value) {
        (Scalar::String, wire::Value::Len(b)) => {
            Value::String(String::from_utf8_lossy(b).into_owned())
        }
        (Scalar::Bytes, wire::Value::Len(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Scalar::String | Scalar::Bytes, _) => return Err(wrong(WireType::Len)),
        (Scalar::Bool, wire::Value::Varint(v)) => Value::Bool(v != 0),
        (Scalar::Int32, wire::Value::Varint(v)) => Value::from(v as i32),
        (Scalar::Int64, wire::Value::Varint(v)) => Value::from(v as i64),
        (Scalar::Uint32, wire::Value::Varint(v)) => Value::from(v as u32),
        (Scalar::Bool | Scalar::Int32 | Scalar::Int64 | Scalar::Uint32, _) => {
            return Err(wrong(WireType::Varint));
        }
        (Scalar::Double, wire::Value::Fixed64(bits)) => {
            let float = f64::from_bits(bits);
            serde_json::Number::from_f64(float)
                .map(Value::Number)
                .ok_or_else(|| {
                    ProtobufError::unrepresentable(format!("{float} is not a JSON number"))
                })?
        }
        (Scalar::Double, _) => return Err(wrong(WireType::Fixed64)),
    })
}

/// The zero value of a scalar kind.
fn zero(scalar: Scalar) -> Value {
    match scalar {
        Scalar::String | Scalar::Bytes => Value::String(String::new()),
        Scalar::Bool => Value::Bool(false),
        Scalar::Double => Value::from(0.0),
        Scalar::Int32 | Scalar::Int64 | Scalar::Uint32 => Value::from(0),
    }
}

/// Whether Go's `omitempty` drops the value: "", 0, false.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// Appends to the array at `key`.
fn push(map: &mut Map<String, Value>, key: &str, value: Value) {
    let slot = map.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = slot {
        items.push(value);
    } else {
        *slot = Value::Array(vec![value]);
    }
}

/// Sets `entry_key` in the object at `key`.
fn insert_entry(map: &mut Map<String, Value>, key: &str, entry_key: String, value: Value) {
    let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(object) = slot {
        object.insert(entry_key, value);
    } else {
        *slot = Value::Object(Map::from_iter([(entry_key, value)]));
    }
}

#[cfg(test)]
mod tests;
