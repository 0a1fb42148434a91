//! Decoding a CRI message from JSON the way crictl's config loader does
//! (Go's `encoding/json` on the generated structs): keys match field names
//! case-insensitively, missing and `null` fields keep their zero value,
//! unknown keys are ignored. On top of that it takes what the protojson
//! form writes — lowerCamelCase keys, 64-bit integers as strings, enums by
//! name — so the output of `inspectp -o json` can be fed back.
//!
//! k8s-cri's messages derive `serde::Deserialize` with every field
//! required; this deserializer hands their derived visitors the full field
//! list, filling the absent ones with a deserializer of zero values.

use std::cell::RefCell;
use std::fmt;

use k8s_cri::v1 as cri;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};
use serde_json::Value;

/// A decoded message and the keys it ignored (`metadata.nmae`).
#[derive(Debug)]
pub struct Decoded<T> {
    /// The message.
    pub message: T,
    /// Dotted paths of keys that name no field.
    pub unknown_keys: Vec<String>,
}

/// Why a value does not decode: Go's words, with the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

/// Decodes `value` into the message `T`.
pub fn decode<T: DeserializeOwned>(value: &Value) -> Result<Decoded<T>, DecodeError> {
    let unknown = RefCell::new(Vec::new());
    let message = T::deserialize(ValueDecoder {
        value,
        path: String::new(),
        field: None,
        unknown: &unknown,
    })?;
    Ok(Decoded {
        message,
        unknown_keys: unknown.into_inner(),
    })
}

/// The value of an enum field written by name (`"NODE"`), for the
/// `(message, field)` pairs that hold one.
fn enum_value(message: &str, field: &str, name: &str) -> Option<i32> {
    let value = match (message, field) {
        ("PortMapping", "protocol") => cri::Protocol::from_str_name(name)? as i32,
        ("Mount", "propagation") => cri::MountPropagation::from_str_name(name)? as i32,
        ("UserNamespace", "mode")
        | ("NamespaceOption", "network" | "pid" | "ipc")
        | ("WindowsNamespaceOption", "network") => cri::NamespaceMode::from_str_name(name)? as i32,
        (
            "LinuxSandboxSecurityContext" | "LinuxContainerSecurityContext",
            "supplemental_groups_policy",
        ) => cri::SupplementalGroupsPolicy::from_str_name(name)? as i32,
        ("SecurityProfile", "profile_type") => {
            cri::security_profile::ProfileType::from_str_name(name)? as i32
        }
        ("PodSandboxStateValue", "state") => cri::PodSandboxState::from_str_name(name)? as i32,
        ("ContainerStateValue", "state") => cri::ContainerState::from_str_name(name)? as i32,
        _ => return None,
    };
    Some(value)
}

/// Whether a JSON key names a proto field: exactly, or ignoring case and
/// underscores (`log_directory`, `logDirectory`, `LogDirectory`).
fn key_matches(key: &str, field: &str) -> bool {
    fn folded(s: &str) -> impl Iterator<Item = char> + '_ {
        s.chars()
            .filter(|c| *c != '_')
            .map(|c| c.to_ascii_lowercase())
    }
    key == field || folded(key).eq(folded(field))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

struct ValueDecoder<'a> {
    value: &'a Value,
    /// Where the value sits (`linux.security_context.run_as_user`).
    path: String,
    /// The message and field it fills, for enum names.
    field: Option<(&'static str, &'static str)>,
    unknown: &'a RefCell<Vec<String>>,
}

impl<'a> ValueDecoder<'a> {
    fn mismatch(&self, go_type: &str) -> DecodeError {
        let place = if self.path.is_empty() {
            "value".to_owned()
        } else {
            format!("Go struct field {}", self.path)
        };
        DecodeError(format!(
            "json: cannot unmarshal {} into {place} of type {go_type}",
            json_kind(self.value)
        ))
    }

    fn child(
        &self,
        key: &str,
        value: &'a Value,
        field: Option<(&'static str, &'static str)>,
    ) -> Self {
        let path = if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        };
        ValueDecoder {
            value,
            path,
            field,
            unknown: self.unknown,
        }
    }

    /// An integer: a JSON number, a number in a string (protojson's
    /// int64), or an enum value's name.
    fn integer(&self, go_type: &str) -> Result<i128, DecodeError> {
        match self.value {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .ok_or_else(|| self.mismatch(go_type)),
            Value::String(s) => s
                .trim()
                .parse::<i128>()
                .ok()
                .or_else(|| {
                    let (message, field) = self.field?;
                    enum_value(message, field, s).map(i128::from)
                })
                .ok_or_else(|| self.mismatch(go_type)),
            _ => Err(self.mismatch(go_type)),
        }
    }

    fn ranged<T: TryFrom<i128>>(&self, go_type: &str) -> Result<T, DecodeError> {
        let value = self.integer(go_type)?;
        T::try_from(value).map_err(|_| {
            DecodeError(format!(
                "json: cannot unmarshal number {value} into Go struct field {} of type {go_type}",
                self.path
            ))
        })
    }
}

macro_rules! integer_methods {
    ($($method:ident $visit:ident $ty:ty, $go:literal;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
                visitor.$visit(self.ranged::<$ty>($go)?)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for ValueDecoder<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or_default())
                }
            }
            Value::String(s) => visitor.visit_str(s),
            Value::Array(_) => self.deserialize_seq(visitor),
            Value::Object(_) => self.deserialize_map(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            _ => Err(self.mismatch("bool")),
        }
    }

    integer_methods! {
        deserialize_i8 visit_i8 i8, "int8";
        deserialize_i16 visit_i16 i16, "int16";
        deserialize_i32 visit_i32 i32, "int32";
        deserialize_i64 visit_i64 i64, "int64";
        deserialize_u8 visit_u8 u8, "uint8";
        deserialize_u16 visit_u16 u16, "uint16";
        deserialize_u32 visit_u32 u32, "uint32";
        deserialize_u64 visit_u64 u64, "uint64";
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let value = match self.value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        visitor.visit_f64(value.ok_or_else(|| self.mismatch("float64"))?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::String(s) => visitor.visit_str(s),
            _ => Err(self.mismatch("string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        use base64::Engine as _;
        match self.value {
            Value::String(s) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| self.mismatch("[]uint8"))?;
                visitor.visit_byte_buf(bytes)
            }
            _ => Err(self.mismatch("[]uint8")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Array(items) => visitor.visit_seq(SeqDecoder {
                items: items.iter().enumerate(),
                parent: &self,
            }),
            _ => Err(self.mismatch("array")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Object(map) => visitor.visit_map(MapDecoder {
                entries: map.iter(),
                value: None,
                parent: &self,
            }),
            _ => Err(self.mismatch("map[string]string")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let Value::Object(map) = self.value else {
            return Err(self.mismatch(name));
        };
        for key in map.keys() {
            if !fields.iter().any(|field| key_matches(key, field)) {
                let path = if self.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{key}", self.path)
                };
                self.unknown.borrow_mut().push(path);
            }
        }
        visitor.visit_map(StructDecoder {
            name,
            fields: fields.iter(),
            current: None,
            parent: &self,
            map,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DecodeError> {
        Err(self.mismatch(name))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }
}

struct SeqDecoder<'p, 'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
    parent: &'p ValueDecoder<'a>,
}

impl<'de> de::SeqAccess<'de> for SeqDecoder<'_, '_> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let Some((index, value)) = self.items.next() else {
            return Ok(None);
        };
        let element = ValueDecoder {
            value,
            path: format!("{}[{index}]", self.parent.path),
            field: self.parent.field,
            unknown: self.parent.unknown,
        };
        if value.is_null() {
            return seed.deserialize(ZeroDecoder).map(Some);
        }
        seed.deserialize(element).map(Some)
    }
}

/// A proto map (`labels`): keys verbatim.
struct MapDecoder<'p, 'a> {
    entries: serde_json::map::Iter<'a>,
    value: Option<(&'a String, &'a Value)>,
    parent: &'p ValueDecoder<'a>,
}

impl<'de> de::MapAccess<'de> for MapDecoder<'_, '_> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        let key: de::value::StrDeserializer<'_, DecodeError> = key.as_str().into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let (key, value) = self
            .value
            .take()
            .ok_or_else(|| DecodeError("a map value without its key".to_owned()))?;
        seed.deserialize(self.parent.child(key, value, None))
    }
}

/// A message: every declared field once, from the object when a key
/// names it, else zero.
struct StructDecoder<'p, 'a> {
    name: &'static str,
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<&'static str>,
    parent: &'p ValueDecoder<'a>,
    map: &'a serde_json::Map<String, Value>,
}

impl<'a> StructDecoder<'_, 'a> {
    fn lookup(&self, field: &str) -> Option<(&'a String, &'a Value)> {
        self.map
            .get_key_value(field)
            .or_else(|| self.map.iter().find(|(key, _)| key_matches(key, field)))
    }
}

impl<'de> de::MapAccess<'de> for StructDecoder<'_, '_> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = Some(field);
        seed.deserialize(BorrowedStrDeserializer::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let field = self
            .current
            .take()
            .ok_or_else(|| DecodeError("a field value without its name".to_owned()))?;
        match self.lookup(field) {
            Some((_, Value::Null)) | None => seed.deserialize(ZeroDecoder),
            Some((key, value)) => {
                seed.deserialize(self.parent.child(key, value, Some((self.name, field))))
            }
        }
    }
}

/// Zero values, for fields the input leaves out.
struct ZeroDecoder;

impl<'de> Deserializer<'de> for ZeroDecoder {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_bool(false)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i8(0)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i16(0)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i32(0)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i64(0)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u8(0)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u16(0)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u32(0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u64(0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_f32(0.0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_f64(0.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_char('\0')
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_str("")
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_bytes(&[])
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_bytes(&[])
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_none()
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_seq(de::value::SeqDeserializer::new(std::iter::empty::<
            ZeroDecoder,
        >()))
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_map(de::value::MapDeserializer::new(std::iter::empty::<(
            ZeroDecoder,
            ZeroDecoder,
        )>()))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_map(ZeroStruct {
            fields: fields.iter(),
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DecodeError> {
        Err(DecodeError(format!("{name} has no zero value")))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_str("")
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }
}

impl IntoDeserializer<'_, DecodeError> for ZeroDecoder {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

struct ZeroStruct {
    fields: std::slice::Iter<'static, &'static str>,
}

impl<'de> de::MapAccess<'de> for ZeroStruct {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        match self.fields.next() {
            Some(field) => seed
                .deserialize(BorrowedStrDeserializer::new(field))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        seed.deserialize(ZeroDecoder)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn snake_case_and_camel_case_keys_both_decode() {
        for value in [
            json!({"metadata": {"name": "nginx", "namespace": "default", "uid": "abc", "attempt": 1},
                   "log_directory": "/tmp", "linux": {}}),
            json!({"metadata": {"name": "nginx", "namespace": "default", "uid": "abc", "attempt": "1"},
                   "logDirectory": "/tmp", "linux": {}}),
        ] {
            let decoded = decode::<cri::PodSandboxConfig>(&value).unwrap();
            let config = decoded.message;
            let metadata = config.metadata.unwrap();
            assert_eq!(metadata.name, "nginx");
            assert_eq!(metadata.attempt, 1);
            assert_eq!(config.log_directory, "/tmp");
            assert!(config.linux.is_some());
            assert!(config.dns_config.is_none());
            assert!(decoded.unknown_keys.is_empty());
        }
    }

    #[test]
    fn nested_messages_enums_and_maps_decode() {
        let value = json!({
            "metadata": {"name": "web"},
            "image": {"image": "busybox"},
            "command": ["sh", "-c", "echo hi"],
            "envs": [{"key": "A", "value": "1"}],
            "labels": {"app.kubernetes.io/name": "web", "Mixed_Case": "x"},
            "mounts": [{"container_path": "/data", "host_path": "/tmp", "propagation": "PROPAGATION_BIDIRECTIONAL"}],
            "linux": {
                "resources": {"memory_limit_in_bytes": "104857600", "cpuShares": 512},
                "security_context": {
                    "namespace_options": {"network": 2, "pid": "CONTAINER"},
                    "run_as_user": {"value": 1000},
                    "seccomp": {"profile_type": "RuntimeDefault"}
                }
            },
            "tty": true,
            "nmae": "typo"
        });
        let decoded = decode::<cri::ContainerConfig>(&value).unwrap();
        assert_eq!(decoded.unknown_keys, ["nmae"]);
        let config = decoded.message;
        assert_eq!(config.command, ["sh", "-c", "echo hi"]);
        assert_eq!(config.envs[0].key, "A");
        assert_eq!(config.labels["app.kubernetes.io/name"], "web");
        assert_eq!(config.labels["Mixed_Case"], "x");
        assert_eq!(
            config.mounts[0].propagation,
            cri::MountPropagation::PropagationBidirectional as i32
        );
        assert!(config.tty);
        let linux = config.linux.unwrap();
        let resources = linux.resources.unwrap();
        assert_eq!(resources.memory_limit_in_bytes, 104_857_600);
        assert_eq!(resources.cpu_shares, 512);
        let security = linux.security_context.unwrap();
        let namespaces = security.namespace_options.unwrap();
        assert_eq!(namespaces.network, cri::NamespaceMode::Node as i32);
        assert_eq!(namespaces.pid, cri::NamespaceMode::Container as i32);
        assert_eq!(security.run_as_user.unwrap().value, 1000);
        assert_eq!(
            security.seccomp.unwrap().profile_type,
            cri::security_profile::ProfileType::RuntimeDefault as i32
        );
    }

    #[test]
    fn nulls_are_zero_and_wrong_types_name_the_field() {
        let value =
            json!({"metadata": null, "hostname": null, "port_mappings": [{"container_port": 80}]});
        let config = decode::<cri::PodSandboxConfig>(&value).unwrap().message;
        assert!(config.metadata.is_none());
        assert_eq!(config.hostname, "");
        assert_eq!(config.port_mappings[0].container_port, 80);

        let value = json!({"metadata": {"attempt": "first"}});
        let err = decode::<cri::PodSandboxConfig>(&value).unwrap_err();
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal string into Go struct field metadata.attempt of type uint32"
        );
        let value = json!({"port_mappings": [{"host_port": 99999999999i64}]});
        let err = decode::<cri::PodSandboxConfig>(&value).unwrap_err();
        assert!(
            err.to_string().contains("port_mappings[0].host_port"),
            "{err}"
        );
        let value = json!({"labels": {"a": 1}});
        let err = decode::<cri::PodSandboxConfig>(&value).unwrap_err();
        assert!(err.to_string().contains("labels.a of type string"), "{err}");
    }

    #[test]
    fn keys_match_like_go_does() {
        assert!(key_matches("log_directory", "log_directory"));
        assert!(key_matches("logDirectory", "log_directory"));
        assert!(key_matches("LOG_DIRECTORY", "log_directory"));
        assert!(!key_matches("log_dir", "log_directory"));
    }
}
