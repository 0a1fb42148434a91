//! `metadata.managedFields`: reading its entries into field sets per
//! manager, writing them back sorted as upstream sorts them, and folding the
//! oldest update managers into `ancient-changes` past ten of them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldpath::FieldSet;

/// At most this many `Update` entries are kept; older ones are merged.
const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager the oldest updates are merged into.
const ANCIENT_CHANGES: &str = "ancient-changes";

/// How a manager last wrote its fields. `Apply` sorts first, as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update or a patch other than apply.
    Update,
}

impl Operation {
    /// The name in `managedFields[].operation`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who owns a field set: appliers are one manager whatever API version they
/// applied with; updaters are one per API version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ManagerId {
    /// The field manager's name.
    pub(crate) manager: String,
    /// Apply or Update.
    pub(crate) operation: Operation,
    /// The API version, for `Update` managers only.
    pub(crate) api_version: Option<String>,
    /// The subresource written through (`status`), or empty.
    pub(crate) subresource: String,
}

impl ManagerId {
    /// The applier `manager`.
    pub(crate) fn apply(manager: &str) -> Self {
        ManagerId {
            manager: manager.to_owned(),
            operation: Operation::Apply,
            api_version: None,
            subresource: String::new(),
        }
    }

    /// The updater `manager` writing with `api_version`.
    pub(crate) fn update(manager: &str, api_version: &str) -> Self {
        ManagerId {
            manager: manager.to_owned(),
            operation: Operation::Update,
            api_version: Some(api_version.to_owned()),
            subresource: String::new(),
        }
    }
}

/// The fields one manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owned {
    /// The owned fields.
    pub(crate) set: FieldSet,
    /// The API version the set is expressed in.
    pub(crate) api_version: String,
    /// When the manager last changed the object (RFC 3339), if known.
    pub(crate) time: Option<String>,
}

/// Field ownership of an object, by manager.
pub(crate) type Managers = BTreeMap<ManagerId, Owned>;

/// Reads `metadata.managedFields` (absent or null: no managers).
pub(crate) fn decode(entries: Option<&Value>) -> Result<Managers, String> {
    let mut managers = Managers::new();
    let items = match entries {
        None | Some(Value::Null) => return Ok(managers),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("managedFields is not a list".to_owned()),
    };
    for (i, entry) in items.iter().enumerate() {
        let Value::Object(entry) = entry else {
            return Err(format!("managedFields[{i}] is not an object"));
        };
        let text = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or_default();
        let operation = match text("operation") {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            other => return Err(format!("managedFields[{i}]: unknown operation {other:?}")),
        };
        match text("fieldsType") {
            "FieldsV1" | "" => {}
            other => return Err(format!("managedFields[{i}]: unknown fieldsType {other:?}")),
        }
        let set = match entry.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(fields) => FieldSet::from_fields_v1(fields)
                .map_err(|e| format!("managedFields[{i}].fieldsV1: {e}"))?,
        };
        let api_version = text("apiVersion").to_owned();
        let id = ManagerId {
            manager: text("manager").to_owned(),
            operation,
            api_version: (operation == Operation::Update).then(|| api_version.clone()),
            subresource: text("subresource").to_owned(),
        };
        let time = entry.get("time").and_then(Value::as_str).map(str::to_owned);
        managers.insert(
            id,
            Owned {
                set,
                api_version,
                time,
            },
        );
    }
    Ok(managers)
}

/// Writes `managers` as `metadata.managedFields` entries, sorted by
/// operation, time, manager, API version and subresource; `None` when no
/// manager owns anything.
pub(crate) fn encode(managers: &Managers) -> Option<Value> {
    let mut entries: Vec<(&ManagerId, &Owned)> = managers
        .iter()
        .filter(|(_, owned)| !owned.set.is_empty())
        .collect();
    if entries.is_empty() {
        return None;
    }
    entries.sort_by(|(a, ao), (b, bo)| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| ao.time.cmp(&bo.time))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| ao.api_version.cmp(&bo.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let list = entries
        .into_iter()
        .map(|(id, owned)| {
            let mut entry = Map::new();
            entry.insert("manager".to_owned(), Value::from(id.manager.as_str()));
            entry.insert("operation".to_owned(), Value::from(id.operation.as_str()));
            entry.insert(
                "apiVersion".to_owned(),
                Value::from(owned.api_version.as_str()),
            );
            if let Some(time) = &owned.time {
                entry.insert("time".to_owned(), Value::from(time.as_str()));
            }
            entry.insert("fieldsType".to_owned(), Value::from("FieldsV1"));
            entry.insert("fieldsV1".to_owned(), owned.set.to_fields_v1());
            if !id.subresource.is_empty() {
                entry.insert(
                    "subresource".to_owned(),
                    Value::from(id.subresource.as_str()),
                );
            }
            Value::Object(entry)
        })
        .collect();
    Some(Value::Array(list))
}

/// Keeps at most ten `Update` managers: the oldest are merged, per API
/// version, into an `ancient-changes` manager carrying the newest merged
/// time.
pub(crate) fn cap_update_managers(managers: &mut Managers) {
    let mut updaters: Vec<ManagerId> = managers
        .keys()
        .filter(|id| id.operation == Operation::Update)
        .cloned()
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|a, b| {
        let time = |id: &ManagerId| managers.get(id).and_then(|o| o.time.clone());
        time(a)
            .cmp(&time(b))
            .then_with(|| a.manager.cmp(&b.manager))
    });
    let mut remaining = updaters.len();
    let mut first_of_version: BTreeMap<String, ManagerId> = BTreeMap::new();
    for id in updaters {
        if remaining <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(owned) = managers.get(&id).cloned() else {
            continue;
        };
        let version = owned.api_version.clone();
        let Some(first) = first_of_version.get(&version).cloned() else {
            first_of_version.insert(version, id);
            continue;
        };
        let bucket = ManagerId {
            subresource: String::new(),
            ..ManagerId::update(ANCIENT_CHANGES, &version)
        };
        if !managers.contains_key(&bucket)
            && let Some(first_owned) = managers.remove(&first)
        {
            managers.insert(bucket.clone(), first_owned);
        }
        managers.remove(&id);
        if let Some(merged) = managers.get_mut(&bucket) {
            merged.set = owned.set.union(&merged.set);
            merged.time = owned.time;
        }
        remaining -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_round_trip_sorted() {
        let entries = json!([
            {"manager": "kubectl-edit", "operation": "Update", "apiVersion": "v1",
             "time": "2026-01-02T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:b": {}}}},
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
             "time": "2026-01-03T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}},
        ]);
        let managers = decode(Some(&entries)).expect("decodes");
        let encoded = encode(&managers).expect("has entries");
        assert_eq!(encoded[0]["manager"], "kubectl");
        assert_eq!(encoded[1], entries[0]);
    }

    #[test]
    fn bad_entries_are_errors() {
        assert!(decode(Some(&json!([{"manager": "m", "operation": "Patch"}]))).is_err());
        assert!(
            decode(Some(
                &json!([{"operation": "Update", "fieldsV1": {"x:a": {}}}])
            ))
            .is_err()
        );
    }

    #[test]
    fn eleven_updaters_fold_the_two_oldest_into_ancient_changes() {
        let mut managers = Managers::new();
        for i in 0..11 {
            let mut set = FieldSet::new();
            set.insert(&[super::super::fieldpath::PathElement::Field(format!("f{i}"))]);
            let owned = Owned {
                set,
                api_version: "v1".to_owned(),
                time: Some(format!("2026-01-01T00:00:{i:02}Z")),
            };
            managers.insert(ManagerId::update(&format!("m{i:02}"), "v1"), owned);
        }
        cap_update_managers(&mut managers);
        assert_eq!(managers.len(), 10);
        let ancient = managers
            .get(&ManagerId::update(ANCIENT_CHANGES, "v1"))
            .expect("bucket");
        assert_eq!(ancient.set.paths().len(), 2);
        assert_eq!(ancient.time.as_deref(), Some("2026-01-01T00:00:01Z"));
    }
}
