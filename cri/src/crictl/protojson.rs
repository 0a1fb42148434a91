//! Any CRI message in the form Go's protojson gives it with
//! `EmitDefaultValues` — the form crictl prints with `-o json`: fields in
//! proto order under their lowerCamelCase JSON names, 64-bit integers as
//! strings, enums by name, map keys sorted, scalars and empty lists and
//! maps always present, unset messages left out.
//!
//! k8s-cri's messages derive `serde::Serialize`, so one serializer walks
//! them all; it tells int64 from int32 by the method serde calls, a map
//! from a message by `serialize_map` versus `serialize_struct`, and finds
//! enum fields (plain `i32` in prost) in [`enum_name`].

use std::fmt;

use k8s_cri::v1 as cri;
use serde::ser::{self, Serialize};

use super::json::Json;

/// A CRI message as protojson writes it.
pub fn message<T: Serialize>(value: &T) -> Json {
    to_json(value, false)
}

/// A message as crictl's `inspect`/`inspectp` see it: protojson, but the
/// message's own unset message fields are `null` (crictl re-marshals
/// them by the Go struct's fields), not left out.
pub fn message_with_nulls<T: Serialize>(value: &T) -> Json {
    to_json(value, true)
}

fn to_json<T: Serialize>(value: &T, top_level_nulls: bool) -> Json {
    let serializer = ValueSerializer {
        field: None,
        top_level_nulls,
    };
    match value.serialize(serializer) {
        Ok(Some(json)) => json,
        Ok(None) => Json::Null,
        // Only a message type outside CRI's shapes (a oneof, a float map key)
        // gets here; none of k8s-cri's messages does.
        Err(err) => Json::String(format!("<cannot encode as protojson: {err}>")),
    }
}

/// The proto name of an enum value, for the `(message, field)` pairs that
/// hold one; `None` for any other field, or a number no name has.
pub fn enum_name(message: &str, field: &str, value: i32) -> Option<&'static str> {
    fn name<E: TryFrom<i32>>(value: i32, as_str: fn(&E) -> &'static str) -> Option<&'static str> {
        E::try_from(value).ok().as_ref().map(as_str)
    }
    match (message, field) {
        ("PortMapping", "protocol") => name(value, cri::Protocol::as_str_name),
        ("Mount", "propagation") => name(value, cri::MountPropagation::as_str_name),
        ("UserNamespace", "mode")
        | ("NamespaceOption", "network" | "pid" | "ipc")
        | ("WindowsNamespaceOption", "network") => name(value, cri::NamespaceMode::as_str_name),
        (
            "LinuxSandboxSecurityContext" | "LinuxContainerSecurityContext",
            "supplemental_groups_policy",
        ) => name(value, cri::SupplementalGroupsPolicy::as_str_name),
        ("SecurityProfile", "profile_type") => {
            name(value, cri::security_profile::ProfileType::as_str_name)
        }
        ("PodSandboxStatus" | "PodSandboxStateValue" | "PodSandbox", "state") => {
            name(value, cri::PodSandboxState::as_str_name)
        }
        ("ContainerStateValue" | "Container" | "ContainerStatus", "state") => {
            name(value, cri::ContainerState::as_str_name)
        }
        ("ContainerEventResponse", "container_event_type") => {
            name(value, cri::ContainerEventType::as_str_name)
        }
        ("Metric", "metric_type") => name(value, cri::MetricType::as_str_name),
        ("LinuxRuntimeConfiguration", "cgroup_driver") => {
            name(value, cri::CgroupDriver::as_str_name)
        }
        _ => None,
    }
}

/// A proto field name's JSON name, as protoc derives it: underscores
/// dropped, the letter after one upper-cased.
pub fn json_name(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Why a value cannot be written as protojson.
#[derive(Debug)]
pub struct EncodeError(String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

fn unsupported(what: &str) -> EncodeError {
    EncodeError(format!("{what} has no protojson form in CRI messages"))
}

/// Serializes one value; `Ok(None)` is an unset optional (left out).
#[derive(Clone, Copy)]
struct ValueSerializer {
    /// The message and field this value fills, for enum names.
    field: Option<(&'static str, &'static str)>,
    /// Write the next message's unset message fields as `null`.
    top_level_nulls: bool,
}

impl ValueSerializer {
    fn nested(field: Option<(&'static str, &'static str)>) -> Self {
        Self {
            field,
            top_level_nulls: false,
        }
    }

    fn int32(self, value: i32) -> Json {
        match self.field.and_then(|(m, f)| enum_name(m, f, value)) {
            Some(name) => Json::str(name),
            None => Json::Number(value.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, EncodeError>;

impl ser::Serializer for ValueSerializer {
    type Ok = Option<Json>;
    type Error = EncodeError;
    type SerializeSeq = SeqSerializer;
    type SerializeTuple = SeqSerializer;
    type SerializeTupleStruct = SeqSerializer;
    type SerializeTupleVariant = ser::Impossible<Option<Json>, EncodeError>;
    type SerializeMap = MapSerializer;
    type SerializeStruct = StructSerializer;
    type SerializeStructVariant = ser::Impossible<Option<Json>, EncodeError>;

    fn serialize_bool(self, v: bool) -> Result<Self::Ok> {
        Ok(Some(Json::Bool(v)))
    }
    fn serialize_i8(self, v: i8) -> Result<Self::Ok> {
        Ok(Some(self.int32(v.into())))
    }
    fn serialize_i16(self, v: i16) -> Result<Self::Ok> {
        Ok(Some(self.int32(v.into())))
    }
    fn serialize_i32(self, v: i32) -> Result<Self::Ok> {
        Ok(Some(self.int32(v)))
    }
    fn serialize_i64(self, v: i64) -> Result<Self::Ok> {
        Ok(Some(Json::int64(v)))
    }
    fn serialize_u8(self, v: u8) -> Result<Self::Ok> {
        Ok(Some(Json::Number(v.to_string())))
    }
    fn serialize_u16(self, v: u16) -> Result<Self::Ok> {
        Ok(Some(Json::Number(v.to_string())))
    }
    fn serialize_u32(self, v: u32) -> Result<Self::Ok> {
        Ok(Some(Json::Number(v.to_string())))
    }
    fn serialize_u64(self, v: u64) -> Result<Self::Ok> {
        Ok(Some(Json::int64(v)))
    }
    fn serialize_f32(self, v: f32) -> Result<Self::Ok> {
        Ok(Some(Json::Number(v.to_string())))
    }
    fn serialize_f64(self, v: f64) -> Result<Self::Ok> {
        Ok(Some(Json::Number(v.to_string())))
    }
    fn serialize_char(self, v: char) -> Result<Self::Ok> {
        Ok(Some(Json::String(v.to_string())))
    }
    fn serialize_str(self, v: &str) -> Result<Self::Ok> {
        Ok(Some(Json::str(v)))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Self::Ok> {
        use base64::Engine as _;
        Ok(Some(Json::String(
            base64::engine::general_purpose::STANDARD.encode(v),
        )))
    }
    fn serialize_none(self) -> Result<Self::Ok> {
        Ok(None)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Self::Ok> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Self::Ok> {
        Ok(Some(Json::Null))
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Self::Ok> {
        Ok(Some(Json::Object(Vec::new())))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Self::Ok> {
        Ok(Some(Json::str(variant)))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Self::Ok> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Self::Ok> {
        Err(unsupported("a oneof"))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq> {
        Ok(SeqSerializer {
            element: Self::nested(self.field),
            items: Vec::with_capacity(len.unwrap_or(0)),
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(unsupported("a tuple variant"))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap> {
        Ok(MapSerializer {
            entries: Vec::with_capacity(len.unwrap_or(0)),
            key: None,
        })
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct> {
        Ok(StructSerializer {
            name,
            nulls: self.top_level_nulls,
            fields: Vec::with_capacity(len),
        })
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(unsupported("a struct variant"))
    }
}

struct SeqSerializer {
    element: ValueSerializer,
    items: Vec<Json>,
}

impl SeqSerializer {
    fn push<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        let item = value.serialize(self.element)?.unwrap_or(Json::Null);
        self.items.push(item);
        Ok(())
    }
}

impl ser::SerializeSeq for SeqSerializer {
    type Ok = Option<Json>;
    type Error = EncodeError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Self::Ok> {
        Ok(Some(Json::Array(self.items)))
    }
}

impl ser::SerializeTuple for SeqSerializer {
    type Ok = Option<Json>;
    type Error = EncodeError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Self::Ok> {
        Ok(Some(Json::Array(self.items)))
    }
}

impl ser::SerializeTupleStruct for SeqSerializer {
    type Ok = Option<Json>;
    type Error = EncodeError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Self::Ok> {
        Ok(Some(Json::Array(self.items)))
    }
}

/// A proto map: keys kept verbatim and sorted, as protojson writes them.
struct MapSerializer {
    entries: Vec<(String, Json)>,
    key: Option<String>,
}

impl ser::SerializeMap for MapSerializer {
    type Ok = Option<Json>;
    type Error = EncodeError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<()> {
        let key = match key.serialize(ValueSerializer::nested(None))? {
            Some(Json::String(s) | Json::Number(s)) => s,
            Some(Json::Bool(b)) => b.to_string(),
            _ => return Err(unsupported("a map key that is not a scalar")),
        };
        self.key = Some(key);
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        let key = self
            .key
            .take()
            .ok_or_else(|| EncodeError("a map value without its key".to_owned()))?;
        let value = value
            .serialize(ValueSerializer::nested(None))?
            .unwrap_or(Json::Null);
        self.entries.push((key, value));
        Ok(())
    }
    fn end(mut self) -> Result<Self::Ok> {
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(Json::Object(self.entries)))
    }
}

/// A message: fields in declaration order under their JSON names.
struct StructSerializer {
    name: &'static str,
    nulls: bool,
    fields: Vec<(String, Json)>,
}

impl ser::SerializeStruct for StructSerializer {
    type Ok = Option<Json>;
    type Error = EncodeError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        let value = value.serialize(ValueSerializer::nested(Some((self.name, key))))?;
        match value {
            Some(value) => self.fields.push((json_name(key), value)),
            None if self.nulls => self.fields.push((json_name(key), Json::Null)),
            None => {}
        }
        Ok(())
    }
    fn end(self) -> Result<Self::Ok> {
        Ok(Some(Json::Object(self.fields)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::crictl::json::Escape;

    #[test]
    fn json_names_are_lower_camel_case() {
        assert_eq!(json_name("pod_sandbox_id"), "podSandboxId");
        assert_eq!(json_name("id"), "id");
        assert_eq!(json_name("memory_limit_in_bytes"), "memoryLimitInBytes");
        assert_eq!(json_name("type"), "type");
    }

    #[test]
    fn a_pod_prints_as_protojson_does() {
        let pod = cri::PodSandbox {
            id: "abc".into(),
            metadata: Some(cri::PodSandboxMetadata {
                name: "nginx".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 1,
            }),
            state: cri::PodSandboxState::SandboxReady as i32,
            created_at: 1_700_000_000_000_000_000,
            labels: HashMap::from([
                ("b".to_owned(), "2".to_owned()),
                ("a".to_owned(), "1".to_owned()),
            ]),
            annotations: HashMap::new(),
            runtime_handler: String::new(),
        };
        let expected = r#"{
  "id": "abc",
  "metadata": {
    "name": "nginx",
    "uid": "u1",
    "namespace": "default",
    "attempt": 1
  },
  "state": "SANDBOX_READY",
  "createdAt": "1700000000000000000",
  "labels": {
    "a": "1",
    "b": "2"
  },
  "annotations": {},
  "runtimeHandler": ""
}"#;
        assert_eq!(message(&pod).pretty(Escape::Protojson), expected);
    }

    #[test]
    fn unset_messages_are_left_out_or_null_at_the_top() {
        let status = cri::ContainerStatus {
            id: "c1".into(),
            state: cri::ContainerState::ContainerExited as i32,
            exit_code: 3,
            ..Default::default()
        };
        let Json::Object(fields) = message(&status) else {
            panic!("not an object");
        };
        assert!(!fields.iter().any(|(k, _)| k == "metadata"));
        assert!(fields.contains(&("state".to_owned(), Json::str("CONTAINER_EXITED"))));
        assert!(fields.contains(&("exitCode".to_owned(), Json::Number("3".into()))));
        assert!(fields.contains(&("mounts".to_owned(), Json::Array(vec![]))));

        let Json::Object(fields) = message_with_nulls(&status) else {
            panic!("not an object");
        };
        assert!(fields.contains(&("metadata".to_owned(), Json::Null)));
        assert!(fields.contains(&("image".to_owned(), Json::Null)));
    }

    #[test]
    fn enum_names_come_from_the_field_and_unknown_numbers_stay_numbers() {
        assert_eq!(enum_name("NamespaceOption", "network", 2), Some("NODE"));
        assert_eq!(
            enum_name("Mount", "propagation", 1),
            Some("PROPAGATION_HOST_TO_CONTAINER")
        );
        assert_eq!(enum_name("PodSandbox", "state", 9), None);
        assert_eq!(enum_name("PodSandboxMetadata", "attempt", 0), None);
        let option = cri::NamespaceOption {
            pid: 9,
            ..Default::default()
        };
        let Json::Object(fields) = message(&option) else {
            panic!("not an object");
        };
        assert_eq!(fields[0], ("network".to_owned(), Json::str("POD")));
        assert_eq!(fields[1], ("pid".to_owned(), Json::Number("9".into())));
    }
}
