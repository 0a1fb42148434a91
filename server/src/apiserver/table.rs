//! Server-side printing: the `meta.k8s.io/v1` `Table` kube-apiserver returns when a client
//! asks with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (what `kubectl get`
//! does), so `kubectl get` and `-o wide` print what users know from upstream.
//!
//! * Built-in kinds use upstream's per-kind columns and cells (`printers`); the server
//!   always prints the wide form and kubectl hides `priority: 1` columns unless `-o wide`.
//! * Custom resources use the CRD version's `additionalPrinterColumns` (`Name` first,
//!   then the columns; a version without columns gets upstream's default `Age`).
//! * Everything else gets upstream's default table: `Name` and `Created At`.
//!
//! Each row carries the object as `includeObject` asks (default: `PartialObjectMetadata`,
//! which kubectl needs for namespaces, `-L` and `--show-labels`).
//!
//! Watches: upstream sends every watch event's object as a one-row `Table`, with column
//! definitions only on the first event (`columnDefinitions: null` afterwards); callers set
//! [`TableOptions::no_headers`] after the first event.
//!
//! The table's `metadata` (`resourceVersion`, `continue`, `remainingItemCount`) is left
//! empty for the caller to fill: the list's for a list, the object's for a get or a
//! watch event.

#[path = "table/descriptions.rs"]
mod descriptions;
#[path = "table/format.rs"]
mod format;
#[path = "table/jsonpath.rs"]
mod jsonpath;
#[path = "table/printers.rs"]
mod printers;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use format::{human_duration, parse_time, rfc3339, str_at, text};
use jsonpath::JsonPath;
use printers::Column;

/// What each row's `object` holds (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// `None`: no object (`"object": null`).
    None,
    /// `Metadata` (the default): a `meta.k8s.io/v1` `PartialObjectMetadata`.
    #[default]
    Metadata,
    /// `Object`: the whole object.
    Object,
}

impl IncludeObject {
    /// Parses `?includeObject=` (absent or empty is `Metadata`); an unknown value is
    /// upstream's 400 `BadRequest` message.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.unwrap_or_default() {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(format!("unrecognized includeObject value: {other:?}")),
        }
    }
}

/// One CRD `additionalPrinterColumns` entry (deserializes from the CRD's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PrinterColumn {
    /// Column name (`name`), shown upper-cased by kubectl.
    pub name: String,
    /// OpenAPI type: `integer`, `number`, `string`, `boolean` or `date` (`type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Optional OpenAPI format (`format`).
    pub format: String,
    /// Human-readable description (`description`).
    pub description: String,
    /// 0 for the default view, higher for `-o wide` (`priority`).
    pub priority: i32,
    /// Simple JSONPath evaluated against each object (`jsonPath`).
    pub json_path: String,
}

impl PrinterColumn {
    /// The `additionalPrinterColumns` of one `spec.versions[]` entry of a CRD.
    pub fn from_crd_version(version: &Value) -> Vec<PrinterColumn> {
        format::arr_at(version, "/additionalPrinterColumns")
            .iter()
            .filter_map(|c| serde_json::from_value(c.clone()).ok())
            .collect()
    }

    /// The printer columns a CRD declares for `version` (empty when the version is unknown
    /// or declares none).
    pub fn for_crd(crd: &Value, version: &str) -> Vec<PrinterColumn> {
        format::arr_at(crd, "/spec/versions")
            .iter()
            .find(|v| str_at(v, "/name") == version)
            .map(PrinterColumn::from_crd_version)
            .unwrap_or_default()
    }
}

/// How to build the table (upstream's `metav1.TableOptions` plus what the caller knows).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableOptions {
    /// What each row's `object` holds.
    pub include_object: IncludeObject,
    /// For custom resources: the served version's printer columns (`Some(vec![])` for a
    /// version without any). `None` for built-in kinds.
    pub printer_columns: Option<Vec<PrinterColumn>>,
    /// Omit `columnDefinitions` (`null`), as upstream does for watch events after the first.
    pub no_headers: bool,
}

/// Builds the `meta.k8s.io/v1` `Table` of `objects` (one row each, in order) of the
/// resource `group`/`resource` (`""`/`"pods"`, `"apps"`/`"deployments"`, ...), with ages
/// relative to `now`. `metadata` is left empty for the caller's `resourceVersion`.
pub fn table(
    group: &str,
    resource: &str,
    objects: &[Value],
    now: OffsetDateTime,
    options: &TableOptions,
) -> Value {
    let (columns, rows): (Vec<Value>, Rows) = match &options.printer_columns {
        Some(custom) => custom_resource_table(custom, objects, now),
        None => match printers::printer(group, resource) {
            Some(p) => (
                p.columns.iter().map(column_json).collect(),
                objects
                    .iter()
                    .map(|o| {
                        (
                            (p.cells)(o, now),
                            printers::row_conditions(group, resource, o),
                        )
                    })
                    .collect(),
            ),
            None => default_table(objects),
        },
    };
    let rows: Vec<Value> = rows
        .into_iter()
        .zip(objects)
        .map(|((cells, conditions), object)| {
            let mut row = Map::new();
            row.insert("cells".to_string(), Value::Array(cells));
            if let Some(conditions) = conditions {
                row.insert("conditions".to_string(), conditions);
            }
            row.insert(
                "object".to_string(),
                row_object(object, options.include_object),
            );
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": if options.no_headers { Value::Null } else { Value::Array(columns) },
        "rows": rows,
    })
}

fn column_json(c: &Column) -> Value {
    json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority})
}

fn name_column() -> Value {
    column_json(&Column {
        name: "Name",
        kind: "string",
        format: "name",
        description: descriptions::META_NAME,
        priority: 0,
    })
}

fn row_object(object: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => object.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

/// Each row's cells and optional `conditions`.
type Rows = Vec<(Vec<Value>, Option<Value>)>;

/// Upstream's `DefaultTableConvertor`: `Name` and `Created At` (RFC 3339, UTC).
fn default_table(objects: &[Value]) -> (Vec<Value>, Rows) {
    let columns = vec![
        name_column(),
        json!({"name": "Created At", "type": "date", "format": "", "description": descriptions::META_CREATION_TIMESTAMP, "priority": 0}),
    ];
    let rows = objects
        .iter()
        .map(|o| {
            let created = parse_time(str_at(o, "/metadata/creationTimestamp"))
                .map(rfc3339)
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
            (
                vec![
                    Value::from(str_at(o, "/metadata/name")),
                    Value::from(created),
                ],
                None,
            )
        })
        .collect();
    (columns, rows)
}

/// Upstream's CRD table convertor: `Name`, then the printer columns (or a default `Age`).
fn custom_resource_table(
    custom: &[PrinterColumn],
    objects: &[Value],
    now: OffsetDateTime,
) -> (Vec<Value>, Rows) {
    let default_age = [PrinterColumn {
        name: "Age".to_string(),
        kind: "date".to_string(),
        description: descriptions::META_CREATION_TIMESTAMP.to_string(),
        json_path: ".metadata.creationTimestamp".to_string(),
        ..PrinterColumn::default()
    }];
    let custom = if custom.is_empty() {
        &default_age[..]
    } else {
        custom
    };
    let mut columns = vec![name_column()];
    columns.extend(custom.iter().map(|c| {
        let description = if c.description.is_empty() {
            format!("Custom resource definition column (in JSONPath format): {}", c.json_path)
        } else {
            c.description.clone()
        };
        json!({"name": c.name, "type": c.kind, "format": c.format, "description": description, "priority": c.priority})
    }));
    let paths: Vec<Option<JsonPath>> = custom
        .iter()
        .map(|c| JsonPath::parse(&c.json_path).ok())
        .collect();
    let rows = objects
        .iter()
        .map(|o| {
            let mut cells = vec![Value::from(str_at(o, "/metadata/name"))];
            for (column, path) in custom.iter().zip(&paths) {
                let found = path.as_ref().and_then(|p| p.find(o).into_iter().next());
                cells.push(found.map_or(Value::Null, |v| custom_cell(&column.kind, v, now)));
            }
            (cells, None)
        })
        .collect();
    (columns, rows)
}

/// A CRD column's cell for the first value its JSONPath found (upstream's `cellForJSONValue`).
fn custom_cell(kind: &str, value: &Value, now: OffsetDateTime) -> Value {
    match (kind, value) {
        (_, Value::Null) => Value::Null,
        ("string", Value::Object(_) | Value::Array(_)) => Value::String(value.to_string()),
        ("string", v) => Value::String(text(v)),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        ("boolean", Value::Bool(b)) => Value::Bool(*b),
        ("date", Value::String(s)) if s == "null" || s.is_empty() => Value::from("<unknown>"),
        ("date", Value::String(s)) => match parse_time(s) {
            Some(at) => Value::from(human_duration(now - at)),
            None if s.starts_with("0001-01-01T00:00:00") => Value::from("<unknown>"),
            None => Value::from("<invalid>"),
        },
        _ => Value::Null,
    }
}

#[cfg(test)]
#[path = "table/tests.rs"]
mod tests;
