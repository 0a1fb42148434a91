//! Server-side apply and `metadata.managedFields`, as kube-apiserver does
//! them (structured-merge-diff's `merge.Updater` behind the apiserver's
//! field manager), as pure functions over `serde_json::Value` objects.
//!
//! How the apiserver uses it:
//!
//! - `PATCH` with `application/apply-patch+yaml` (`kubectl apply
//!   --server-side`): parse the body (YAML or JSON) into a `Value`, require
//!   the `fieldManager` query parameter (upstream: 422 on `PatchOptions`,
//!   `fieldManager: Required value: is required for apply patch`), call
//!   [`check_applied_type`] with the URL's resource, then [`apply`] with the
//!   live object (`None` creates), `force` from the `force` parameter and
//!   the kind's root definition. Then default, reset status (the strategy's
//!   job; `apply` already leaves the live status alone), check the name
//!   against the URL (400 `the name of the object (x) does not match the name
//!   on the URL (y)`), validate and store.
//! - Every other write (create, update, JSON/merge/strategic patch, status
//!   and scale writes): after defaulting, call [`record_update`] with the old
//!   object (`None` on create) and the new one, the manager from
//!   [`field_manager_for`] and the request's API version.
//! - Errors become `Status` objects with [`ApplyError::code`] and
//!   [`ApplyError::reason`]; conflicts also carry one cause per conflict
//!   (`type: FieldManagerConflict`, `message: Conflict::cause_message`,
//!   `field: Conflict::field`).
//!
//! The fields the server owns (`apiVersion`, `kind`, `metadata.name`,
//! `namespace`, `uid`, `resourceVersion`, `generation`,
//! `creationTimestamp`, `selfLink`, `managedFields`) are never tracked; an
//! apply to the main resource of a kind whose schema has `status` neither
//! sets nor owns status (upstream's reset fields).

use std::fmt;

use serde_json::{Map, Value};

use super::schema::PatchSchema;

// Explicit paths: the same files load from the crate and from a scratch
// crate including this file by path.
#[path = "apply/fieldpath.rs"]
mod fieldpath;
#[path = "apply/managed.rs"]
mod managed;
#[path = "apply/typed.rs"]
mod typed;

use fieldpath::{FieldSet, PathElement, path_string};
use managed::{ManagerId, Managers, Operation, Owned};
use typed::{Ty, Typer};

/// The annotation client-side `kubectl apply` keeps its last applied
/// configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager `kubectl apply --server-side` uses; its applies upgrade
/// objects from client-side apply without conflicts.
const KUBECTL: &str = "kubectl";

/// The updater that owns what an object held when it was first applied to
/// without managed fields.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Longest field manager name derived from a user agent.
const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// A field the applied configuration changes that another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owning manager's name.
    pub manager: String,
    /// How that manager wrote the field: `Apply` or `Update`.
    pub operation: String,
    /// The API version that manager wrote with (named for `Update` owners).
    pub api_version: String,
    /// The subresource that manager wrote through, or empty.
    pub subresource: String,
    /// The field, as upstream prints paths: `.spec.replicas`,
    /// `.spec.template.spec.containers[name="web"].image`.
    pub field: String,
}

impl Conflict {
    /// The owner as upstream names it: `"kubectl"`, or for updaters
    /// `"kubectl-client-side-apply" using apps/v1`.
    pub fn owner(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update.as_str() {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    /// The message of this conflict's `Status` cause:
    /// `conflict with "kubectl-client-side-apply" using apps/v1`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.owner())
    }
}

/// Why an apply was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Fields the configuration changes are owned by other managers and
    /// `force` was not given: 409 `Conflict`.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration's `apiVersion`/`kind` are missing or not the
    /// resource's, e.g. `apps/v1, Kind=Deploymnt`: 400 `BadRequest`.
    #[error("invalid object type: {0}")]
    InvalidObjectType(String),
    /// The configuration sets `metadata.managedFields`: 400 `BadRequest`.
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsSet,
    /// The configuration is not an object: 400 `BadRequest`.
    #[error("error decoding YAML: the applied configuration is not an object")]
    NotAnObject,
    /// The configuration breaks its schema's lists (an item without its
    /// keys, repeated keys): upstream answers 500 with no reason.
    #[error("failed to create typed patch object ({object}): {message}")]
    InvalidPatch {
        /// `namespace/name; group/version, Kind=Kind` of the configuration.
        object: String,
        /// What is wrong, e.g. `.spec.template.spec.containers: element 0:
        /// associative list with keys has an element that omits key field
        /// "name" (and doesn't have default value)`.
        message: String,
    },
    /// The live object's `managedFields` cannot be read: 500.
    #[error("failed to decode managed fields: {0}")]
    InvalidManagedFields(String),
}

impl ApplyError {
    /// The HTTP status code kube-apiserver answers with.
    pub fn code(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::InvalidObjectType(_)
            | ApplyError::ManagedFieldsSet
            | ApplyError::NotAnObject => 400,
            ApplyError::InvalidPatch { .. } | ApplyError::InvalidManagedFields(_) => 500,
        }
    }

    /// The `Status` reason kube-apiserver answers with (empty for its 500s,
    /// which carry none).
    pub fn reason(&self) -> &'static str {
        match self.code() {
            409 => "Conflict",
            400 => "BadRequest",
            _ => "",
        }
    }
}

/// Upstream's conflict message: one conflict on one line, several grouped
/// by owner, owners sorted.
fn conflicts_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.owner(),
            only.field
        );
    }
    let mut owners: Vec<String> = conflicts.iter().map(Conflict::owner).collect();
    owners.sort();
    owners.dedup();
    let mut lines = Vec::new();
    for owner in owners {
        lines.push(format!("conflicts with {owner}:"));
        for conflict in conflicts.iter().filter(|c| c.owner() == owner) {
            lines.push(format!("- {}", conflict.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Merges the applied configuration `applied` into `live` (`None`: the
/// object is created from it) for the field manager `manager`, as
/// `kubectl apply --server-side` asks, and returns the new object with
/// `metadata.managedFields` updated.
///
/// Fields the configuration sets are set; fields `manager` applied before
/// but no longer does are removed unless another manager owns them; list
/// items merge by key (`x-kubernetes-list-type: map`, or a patch merge key),
/// sets by value, atomic lists and objects are replaced. A changed field
/// owned by another manager is a conflict unless `force`, which moves it
/// to `manager`. `root` is the kind's OpenAPI definition
/// (`io.k8s.api.apps.v1.Deployment`); `None` for a kind without schema
/// (lists atomic, objects granular, every key taken for a declared field as
/// in a structural CRD schema, `metadata` as `ObjectMeta`). `now` stamps the entry (RFC 3339);
/// an apply that changes nothing keeps the entry's previous time.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    root: Option<&str>,
    schema: &dyn PatchSchema,
    now: &str,
) -> Result<Value, ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::NotAnObject);
    }
    let api_version = text(applied, "/apiVersion");
    let kind = text(applied, "/kind");
    if api_version.is_empty() || kind.is_empty() {
        return Err(ApplyError::InvalidObjectType(gvk_string(api_version, kind)));
    }
    if let Some(live) = live {
        let (live_version, live_kind) = (text(live, "/apiVersion"), text(live, "/kind"));
        if (!live_version.is_empty() && live_version != api_version)
            || (!live_kind.is_empty() && live_kind != kind)
        {
            return Err(ApplyError::InvalidObjectType(gvk_string(api_version, kind)));
        }
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::ManagedFieldsSet);
    }
    let (typer, ty) = Typer::new(schema, root);
    let mut errors = Vec::new();
    typer.check(applied, &ty, &mut Vec::new(), &mut errors);
    if !errors.is_empty() {
        let message = if errors.len() == 1 {
            errors.remove(0)
        } else {
            format!("errors:\n  {}", errors.join("\n  "))
        };
        return Err(ApplyError::InvalidPatch {
            object: object_name(applied),
            message,
        });
    }

    let ignored = reset_fields(&typer, &ty);
    let config = without_top_fields(applied, &ignored);
    let request = ApplyRequest {
        ownership: Ownership {
            typer: &typer,
            ty: &ty,
            ignored: &ignored,
            now,
        },
        manager,
        api_version,
    };
    let outcome = match request.run(live, &config, force) {
        Err(ApplyError::Conflicts(conflicts)) if manager == KUBECTL => {
            request.upgrade_from_client_side(live, &config, conflicts)
        }
        other => other,
    };
    let mut object = outcome?;
    if manager == KUBECTL && !text(&object, &annotation_pointer()).is_empty() {
        set_last_applied(&mut object, applied);
    }
    Ok(object)
}

/// Records in `new`'s `metadata.managedFields` what a write other than
/// apply (create, update, non-apply patch) changed from `old` (`None` on
/// create): `manager` takes the fields it set or changed, from other
/// managers too, with an `Update` entry for `operation_api_version`
/// (`apps/v1`) stamped `now`.
///
/// As upstream: managed fields the client sent in `new` replace the live
/// ones when they are valid and not empty; `[]` or `[{}]` clears them; an
/// existing object without managed fields stays untracked.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation_api_version: &str,
    root: Option<&str>,
    schema: &dyn PatchSchema,
    now: &str,
) {
    let sent = new.pointer("/metadata/managedFields").cloned();
    let managers = if is_reset(sent.as_ref()) {
        Some(Managers::new())
    } else {
        match managed::decode(sent.as_ref()) {
            Ok(managers) if !managers.is_empty() => Some(managers),
            _ => managed::decode(old.and_then(|o| o.pointer("/metadata/managedFields"))).ok(),
        }
    };
    let Some(mut managers) = managers else {
        // Neither the sent nor the live entries are readable: leave them
        // for validation to judge.
        return;
    };
    set_managed_fields(new, None);
    if managers.is_empty() && old.is_some() {
        return;
    }
    let (typer, ty) = Typer::new(schema, root);
    let old_object = old.map_or_else(empty_object, without_managed_fields);
    let ownership = Ownership {
        typer: &typer,
        ty: &ty,
        ignored: &FieldSet::new(),
        now,
    };
    let id = ManagerId::update(manager, operation_api_version);
    ownership.record_changes(&old_object, new, &mut managers, id);
    managed::cap_update_managers(&mut managers);
    set_managed_fields(new, managed::encode(&managers));
}

/// Checks that an applied configuration is of the request's resource
/// (`apps/v1`, `Deployment`): upstream answers 400 `invalid object type:
/// apps/v1, Kind=Deployment` otherwise.
pub fn check_applied_type(
    applied: &Value,
    api_version: &str,
    kind: &str,
) -> Result<(), ApplyError> {
    let (found_version, found_kind) = (text(applied, "/apiVersion"), text(applied, "/kind"));
    if found_version == api_version && found_kind == kind {
        Ok(())
    } else {
        Err(ApplyError::InvalidObjectType(gvk_string(
            found_version,
            found_kind,
        )))
    }
}

/// The field manager of a write: the `fieldManager` parameter when given
/// (kubectl sends `kubectl-client-side-apply`, `kubectl-create`,
/// `kubectl-edit`, `kubectl-patch`, ..., and `kubectl` for server-side
/// apply), else the user agent up to its first `/` (`kube-controller-manager`),
/// printable characters only, at most 128 bytes.
pub fn field_manager_for(field_manager: Option<&str>, user_agent: &str) -> String {
    if let Some(manager) = field_manager.filter(|m| !m.is_empty()) {
        return manager.to_owned();
    }
    let prefix = user_agent.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

/// One apply, run once or twice (forced after a client-side apply upgrade).
struct ApplyRequest<'a> {
    ownership: Ownership<'a>,
    manager: &'a str,
    api_version: &'a str,
}

impl fmt::Debug for ApplyRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplyRequest")
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

impl ApplyRequest<'_> {
    /// Retries an apply by `kubectl` that conflicts only on fields whose live
    /// value is still the one of the last client-side apply, forced (how
    /// objects move from client-side to server-side apply).
    fn upgrade_from_client_side(
        &self,
        live: Option<&Value>,
        config: &Value,
        conflicts: Vec<Conflict>,
    ) -> Result<Value, ApplyError> {
        let (typer, ty) = (self.ownership.typer, self.ownership.ty);
        let Some(allowed) = live.and_then(|live| allowed_from_last_applied(live, typer, ty)) else {
            return Err(ApplyError::Conflicts(conflicts));
        };
        let left: Vec<Conflict> = conflicts
            .into_iter()
            .filter(|c| !allowed.iter().any(|path| path_string(path) == c.field))
            .collect();
        if left.is_empty() {
            self.run(live, config, true)
        } else {
            Err(ApplyError::Conflicts(left))
        }
    }

    fn run(&self, live: Option<&Value>, config: &Value, force: bool) -> Result<Value, ApplyError> {
        let ownership = &self.ownership;
        let (typer, ty, ignored) = (ownership.typer, ownership.ty, ownership.ignored);
        let mut managers = managed::decode(live.and_then(|l| l.pointer("/metadata/managedFields")))
            .map_err(ApplyError::InvalidManagedFields)?;
        let live_object = live.map_or_else(empty_object, without_managed_fields);
        if live.is_some() && managers.is_empty() {
            let id = ManagerId::update(BEFORE_FIRST_APPLY, self.api_version);
            ownership.record_changes(&empty_object(), &live_object, &mut managers, id);
        }

        let id = ManagerId::apply(self.manager);
        let previous = managers.get(&id).cloned();
        let merged = typer.merge(&live_object, config, ty);
        let set = typer.field_set(config, ty).recursive_difference(ignored);
        let owned = Owned {
            set,
            api_version: self.api_version.to_owned(),
            time: previous.as_ref().and_then(|p| p.time.clone()),
        };
        managers.insert(id.clone(), owned);
        let object = ownership.prune(merged, &managers, previous.map(|p| p.set));

        let changes = typer.compare(&live_object, &object, ty).excluding(ignored);
        let changed = changes.modified.union(&changes.added);
        let mut conflicts = Vec::new();
        for (other, owned) in &managers {
            if *other == id {
                continue;
            }
            let taken = owned.set.intersection(&changed);
            if !taken.is_empty() {
                conflicts.push((other.clone(), taken));
            }
        }
        if !force && !conflicts.is_empty() {
            return Err(ApplyError::Conflicts(conflict_list(&managers, &conflicts)));
        }
        for (other, taken) in &conflicts {
            if let Some(owned) = managers.get_mut(other) {
                owned.set = owned.set.difference(taken);
            }
        }
        for (other, owned) in managers.iter_mut() {
            if *other != id {
                owned.set = owned.set.difference(&changes.removed);
            }
        }
        let unchanged = object == live_object;
        if let Some(owned) = managers.get_mut(&id) {
            owned.set = owned.set.difference(&server_owned_fields());
            if !unchanged {
                owned.time = Some(ownership.now.to_owned());
            }
        }
        managers.retain(|_, owned| !owned.set.is_empty());
        managed::cap_update_managers(&mut managers);

        let mut object = if unchanged { live_object } else { object };
        set_managed_fields(&mut object, managed::encode(&managers));
        Ok(object)
    }
}

/// What ownership tracking needs to know of a write.
struct Ownership<'a> {
    typer: &'a Typer<'a>,
    ty: &'a Ty,
    /// Fields nobody owns through this resource (`status` of a main
    /// resource apply).
    ignored: &'a FieldSet,
    /// The time of the write.
    now: &'a str,
}

impl fmt::Debug for Ownership<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ownership")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Ownership<'_> {
    /// Removes what the applier applied last time and no longer does,
    /// unless another manager (or the new configuration) owns it; as
    /// upstream, a field below a struct the applier dropped goes with it
    /// when nobody owns it.
    fn prune(&self, merged: Value, managers: &Managers, last: Option<FieldSet>) -> Value {
        let (typer, ty) = (self.typer, self.ty);
        let Some(last) = last.filter(|set| !set.is_empty()) else {
            return merged;
        };
        let last = typer.with_named_fields(&last, ty);
        let named_set_of = |value: &Value| typer.with_named_fields(&typer.field_set(value, ty), ty);
        let remove = |set: &FieldSet| typer.remove(&merged, set, ty).unwrap_or_else(empty_object);

        let without_last = remove(&last);
        let owned = managers
            .values()
            .fold(FieldSet::new(), |all, owned| all.union(&owned.set));
        let owned = typer.with_named_fields(&owned, ty);
        let merged_set = named_set_of(&merged);
        let kept = merged_set.difference(&named_set_of(&without_last).union(&owned));
        let pruned = remove(&kept);
        let dropped = merged_set
            .difference(&named_set_of(&pruned))
            .intersection(&last);
        remove(&dropped)
    }

    /// Records a write's changes from `old` to `new` for the updater `id`:
    /// it takes every changed field from the other managers, who also lose
    /// the removed ones.
    fn record_changes(&self, old: &Value, new: &Value, managers: &mut Managers, id: ManagerId) {
        let new = without_managed_fields(new);
        let changes = self
            .typer
            .compare(old, &new, self.ty)
            .excluding(self.ignored);
        let changed = changes.modified.union(&changes.added);
        for owned in managers.values_mut() {
            owned.set = owned.set.difference(&changed).difference(&changes.removed);
        }
        managers.retain(|_, owned| !owned.set.is_empty());
        let mine = changed
            .difference(&changes.removed)
            .recursive_difference(self.ignored)
            .difference(&server_owned_fields());
        if mine.is_empty() {
            return;
        }
        let api_version = id.api_version.clone().unwrap_or_default();
        let set = match managers.get(&id) {
            Some(previous) => mine.union(&previous.set),
            None => mine,
        };
        let time = Some(self.now.to_owned());
        managers.insert(
            id,
            Owned {
                set,
                api_version,
                time,
            },
        );
    }
}

/// The conflicts as reported, sorted by owner then path.
fn conflict_list(managers: &Managers, conflicts: &[(ManagerId, FieldSet)]) -> Vec<Conflict> {
    let mut out = Vec::new();
    for (id, set) in conflicts {
        let api_version = managers
            .get(id)
            .map(|o| o.api_version.clone())
            .unwrap_or_default();
        for path in set.paths() {
            out.push(Conflict {
                manager: id.manager.clone(),
                operation: id.operation.as_str().to_owned(),
                api_version: api_version.clone(),
                subresource: id.subresource.clone(),
                field: path_string(&path),
            });
        }
    }
    out
}

/// The fields of a live object that still hold what its last client-side
/// apply set: conflicts on them do not stop `kubectl apply --server-side`.
fn allowed_from_last_applied(
    live: &Value,
    typer: &Typer<'_>,
    ty: &Ty,
) -> Option<Vec<Vec<PathElement>>> {
    let text = text(live, &annotation_pointer());
    if text.is_empty() {
        return None;
    }
    let last: Value = serde_json::from_str(text).ok()?;
    if self::text(&last, "/apiVersion") != self::text(live, "/apiVersion") {
        return None;
    }
    let mut errors = Vec::new();
    typer.check(&last, ty, &mut Vec::new(), &mut errors);
    if !errors.is_empty() {
        return None;
    }
    let changes = typer.compare(&last, &without_managed_fields(live), ty);
    let set = typer
        .field_set(&last, ty)
        .difference(&changes.modified)
        .difference(&changes.added)
        .difference(&changes.removed);
    Some(set.paths())
}

/// Writes `applied` (without the annotation itself) as the last-applied
/// annotation of `object`, as upstream keeps it in step for kubectl.
fn set_last_applied(object: &mut Value, applied: &Value) {
    let mut last = applied.clone();
    if let Some(Value::Object(annotations)) = last.pointer_mut("/metadata/annotations") {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    let encoded = format!("{last}\n");
    if let Some(Value::Object(annotations)) = object.pointer_mut("/metadata/annotations") {
        annotations.insert(LAST_APPLIED_ANNOTATION.to_owned(), Value::from(encoded));
    }
}

/// Fields the server owns, never tracked for a manager.
fn server_owned_fields() -> FieldSet {
    let mut set = FieldSet::new();
    let field = |name: &str| PathElement::Field(name.to_owned());
    set.insert(&[field("apiVersion")]);
    set.insert(&[field("kind")]);
    set.insert(&[field("metadata")]);
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        set.insert(&[field("metadata"), field(name)]);
    }
    set
}

/// Fields an apply to the main resource neither sets nor owns: `status`,
/// when the kind's schema has one.
fn reset_fields(typer: &Typer<'_>, ty: &Ty) -> FieldSet {
    let mut set = FieldSet::new();
    if typer.is_typed() && typer.declares(ty, "status") {
        set.insert(&[PathElement::Field("status".to_owned())]);
    }
    set
}

/// `applied` without the top-level fields in `ignored`.
fn without_top_fields(applied: &Value, ignored: &FieldSet) -> Value {
    let mut out = applied.clone();
    if let Value::Object(fields) = &mut out {
        fields.retain(|name, _| !ignored.has_member(&PathElement::Field(name.clone())));
    }
    out
}

/// Whether sent managed fields ask for a reset: `[]` or `[{}]`.
fn is_reset(sent: Option<&Value>) -> bool {
    match sent {
        Some(Value::Array(items)) => match items.as_slice() {
            [] => true,
            [only] => only.as_object().is_some_and(Map::is_empty),
            _ => false,
        },
        _ => false,
    }
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// `object` without `metadata.managedFields`.
fn without_managed_fields(object: &Value) -> Value {
    let mut out = object.clone();
    set_managed_fields(&mut out, None);
    out
}

/// Sets (`Some`) or removes (`None`) `metadata.managedFields`.
fn set_managed_fields(object: &mut Value, entries: Option<Value>) {
    let Value::Object(fields) = object else {
        return;
    };
    match entries {
        Some(entries) => {
            let metadata = fields.entry("metadata").or_insert_with(empty_object);
            if let Value::Object(metadata) = metadata {
                metadata.insert("managedFields".to_owned(), entries);
            }
        }
        None => {
            if let Some(Value::Object(metadata)) = fields.get_mut("metadata") {
                metadata.remove("managedFields");
            }
        }
    }
}

/// The string at `pointer`, or empty.
fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The JSON pointer of the last-applied annotation.
fn annotation_pointer() -> String {
    format!(
        "/metadata/annotations/{}",
        LAST_APPLIED_ANNOTATION
            .replace('~', "~0")
            .replace('/', "~1")
    )
}

/// A group/version/kind as Go prints it: `apps/v1, Kind=Deployment`,
/// `/v1, Kind=Pod`.
fn gvk_string(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    format!("{group}/{version}, Kind={kind}")
}

/// `namespace/name; group/version, Kind=Kind` of an object, as upstream
/// names it in errors.
fn object_name(object: &Value) -> String {
    format!(
        "{}/{}; {}",
        text(object, "/metadata/namespace"),
        text(object, "/metadata/name"),
        gvk_string(text(object, "/apiVersion"), text(object, "/kind"))
    )
}

#[cfg(test)]
#[path = "apply/tests.rs"]
mod tests;
