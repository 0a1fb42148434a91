//! The apiserver's state and the steps every write goes through:
//! field validation, defaulting and admission, validation, field managers,
//! and what follows a write (custom resource types, namespace cleanup,
//! service IPs).

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use tokio::sync::Notify;

use super::apply;
use super::context::Call;
use super::defaults;
use super::error::{ApiError, StatusCause};
use super::kubelet::KubeletAccess;
use super::object::{self, meta_str};
use super::openapi::OpenApi;
use super::patch::PatchError;
use super::resources::{ResourceType, Resources};
use super::services::ServiceAllocator;
use super::store::Store;
use super::table::PrinterColumn;
use super::tokens::Tokens;
use super::{crds, validation};
use crate::datastore::RevisionLog;

/// Everything a request is answered from.
pub struct Api {
    /// The served resource types.
    pub resources: Resources,
    /// The objects.
    pub store: Store,
    /// The OpenAPI schemas.
    pub openapi: Arc<OpenApi>,
    /// Cluster IPs and node ports of services.
    pub services: ServiceAllocator,
    /// `host:port` clients reach the server at (for `/api`).
    pub server_address: String,
    /// Woken when a namespace starts terminating or its content shrinks.
    pub namespaces_changed: Notify,
    /// Service-account tokens (set when serving starts).
    pub tokens: OnceLock<Tokens>,
    /// The way to kubelets (set when serving starts).
    pub kubelet: OnceLock<KubeletAccess>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("server_address", &self.server_address)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// The API over `log`, with the custom resource types its CRDs define.
    pub fn new(
        log: Arc<dyn RevisionLog>,
        server_address: String,
        service_cidr: ipnet::Ipv4Net,
    ) -> Result<Self, ApiError> {
        let api = Self {
            resources: Resources::new(),
            store: Store::new(log),
            openapi: Arc::new(OpenApi::load().map_err(|e| ApiError::internal(e.to_string()))?),
            services: ServiceAllocator::new(service_cidr),
            server_address,
            namespaces_changed: Notify::new(),
            tokens: OnceLock::new(),
            kubelet: OnceLock::new(),
        };
        api.refresh_custom_resources()?;
        api.services.load(&api)?;
        Ok(api)
    }

    /// The OpenAPI definition of a built-in kind.
    pub fn root_definition(&self, rt: &ResourceType) -> Option<String> {
        if rt.custom {
            return None;
        }
        self.openapi
            .definition_for(&rt.group, &rt.version, &rt.kind)
            .map(str::to_owned)
    }

    /// Checks apiVersion and kind, then unknown fields per
    /// `fieldValidation` (Strict: 400; Warn, the default: warnings;
    /// Ignore), and drops unknown fields as decoding into the kind would.
    pub fn check_fields(&self, call: &Call, obj: &mut Value) -> Result<Vec<String>, ApiError> {
        let rt = &call.rt;
        super::verbs::check_type(rt, obj, &rt.kind)?;
        let unknown = if rt.custom {
            match crds::schema_of(self, rt) {
                Some(schema) => self.openapi.unknown_fields_in_schema(&schema, obj),
                None => Vec::new(),
            }
        } else {
            match self.root_definition(rt) {
                Some(definition) => self.openapi.unknown_fields(&definition, obj),
                None => Vec::new(),
            }
        };
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = unknown
            .iter()
            .map(|path| format!("unknown field \"{}\"", path.trim_start_matches('.')))
            .collect();
        match call.query.str("fieldValidation") {
            "Strict" => {
                return Err(ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                    rt.kind,
                    rt.version,
                    rt.kind,
                    names.join(", ")
                )));
            }
            "Ignore" => {}
            "" | "Warn" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
                )));
            }
        }
        for path in &unknown {
            remove_path(obj, path);
        }
        Ok(if call.query.str("fieldValidation") == "Ignore" {
            Vec::new()
        } else {
            names
        })
    }

    /// Whether objects may be created in `namespace`: it exists and is not
    /// being deleted.
    pub fn namespace_accepts_content(&self, namespace: &str) -> Result<(), ApiError> {
        let Some(ns_type) = self.resources.find("", "v1", "namespaces") else {
            return Ok(());
        };
        match self.store.try_get(&ns_type, "", namespace, 0)? {
            None => Err(ApiError::not_found("", "namespaces", namespace)),
            Some(ns) if !meta_str(&ns, "deletionTimestamp").is_empty() => {
                Err(ApiError::forbidden(format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                )))
            }
            Some(_) => Ok(()),
        }
    }

    /// Defaulting and the built-in admission steps.
    pub fn admit(&self, call: &Call, obj: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
        let rt = &call.rt;
        if rt.custom {
            crds::apply_defaults(self, rt, obj);
            return Ok(());
        }
        defaults::apply_defaults(&rt.group, &rt.plural, obj);
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "services") => self.services.admit(rt, obj, old)?,
            ("", "pods") if old.is_none() => {
                super::service_accounts::admit_pod(self, call.namespace(), obj)?;
                obj["status"] = json!({ "phase": "Pending", "qosClass": qos_class(obj) });
            }
            ("", "namespaces") if old.is_none() => {
                obj["status"] = json!({ "phase": "Active" });
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => crds::admit(obj, old),
            _ => {}
        }
        Ok(())
    }

    /// Validation: a 422 `Invalid` listing every cause.
    pub fn validate(
        &self,
        rt: &ResourceType,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let causes = if rt.custom {
            crds::validate(self, rt, obj, old)
        } else {
            validation::validate(&rt.group, &rt.plural, obj, old)
        };
        if causes.is_empty() {
            return Ok(());
        }
        let name = meta_str(obj, "name");
        let message = validation::invalid_message(&rt.qualified_kind(), name, &causes);
        let causes: Vec<StatusCause> = causes
            .iter()
            .map(|c| StatusCause {
                reason: c.reason.as_str().to_owned(),
                message: c.message.clone(),
                field: c.field.clone(),
            })
            .collect();
        Err(ApiError::invalid(
            &rt.group, &rt.kind, name, message, &causes,
        ))
    }

    /// Records the writer's fields in managedFields (not for server-side
    /// apply, which records its own).
    pub fn record_fields(&self, call: &Call, old: Option<&Value>, obj: &mut Value) {
        if super::body::content_type(&call.headers) == "application/apply-patch+yaml" {
            return;
        }
        let root = self.root_definition(&call.rt);
        let now = object::now();
        apply::record_update(
            old,
            obj,
            &call.field_manager(),
            &call.rt.api_version(),
            root.as_deref(),
            self.openapi.as_ref(),
            &now,
        );
    }

    /// Server-side apply of `applied` over `live`.
    pub fn server_side_apply(
        &self,
        call: &Call,
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        let root = self.root_definition(&call.rt);
        let now = object::now();
        apply::apply(
            live,
            applied,
            manager,
            force,
            root.as_deref(),
            self.openapi.as_ref(),
            &now,
        )
        .map_err(|err| apply_error(call, err))
    }

    /// A patch failure as the Status kube-apiserver answers.
    pub fn patch_error(&self, call: &Call, err: PatchError) -> ApiError {
        let code = hyper::StatusCode::from_u16(err.code())
            .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        let reason = match err.reason() {
            "" => "InternalError",
            reason => reason,
        };
        let mut api_err = ApiError::new(code, reason, err.status_message());
        if let Some(field) = err.field_path() {
            api_err.details = Some(json!({
                "name": call.name(),
                "kind": call.rt.plural,
                "causes": [{ "reason": "FieldValueInvalid", "message": err.to_string(), "field": field }],
            }));
        }
        api_err
    }

    /// The datastore lease of an object (TTL'd kinds); 0 for none.
    pub fn lease_of(&self, rt: &ResourceType) -> i64 {
        let _ = rt;
        0
    }

    /// The grace period of a delete when the object must wait for its node
    /// (a pod bound to a node): `None` when it goes at once.
    pub fn deletion_grace(
        &self,
        rt: &ResourceType,
        obj: &Value,
        asked: Option<i64>,
    ) -> Option<i64> {
        if rt.custom || rt.plural != "pods" || !rt.group.is_empty() {
            return None;
        }
        let bound = obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let finished = matches!(
            obj["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        );
        let grace = asked
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30);
        (bound && !finished && grace > 0).then_some(grace)
    }

    /// Refuses an eviction a PodDisruptionBudget forbids.
    pub fn check_disruption_budgets(&self, call: &Call) -> Result<(), ApiError> {
        let Some(pdb_type) = self.resources.find("policy", "v1", "poddisruptionbudgets") else {
            return Ok(());
        };
        let Some(pod) = self
            .store
            .try_get(&call.rt, call.namespace(), call.name(), 0)?
        else {
            return Err(ApiError::not_found("", "pods", call.name()));
        };
        let page = self.store.list(&pdb_type, call.namespace(), 0, None, 0)?;
        for pdb in page.items {
            let selector = &pdb["spec"]["selector"];
            let Ok(selector) = super::selector::LabelSelector::from_object(selector) else {
                continue;
            };
            if !selector.matches_object(&pod) {
                continue;
            }
            if pdb["status"]["disruptionsAllowed"].as_i64().unwrap_or(0) < 1 {
                return Err(ApiError::too_many_requests(
                    "Cannot evict pod as it would violate the pod's disruption budget.".to_string(),
                ));
            }
        }
        Ok(())
    }

    /// CRD printer columns for a custom resource's Table.
    pub fn printer_columns(&self, rt: &ResourceType) -> Option<Vec<PrinterColumn>> {
        if rt.custom {
            crds::printer_columns(self, rt)
        } else {
            None
        }
    }

    /// Gives back what a failed create had taken (service IPs and ports).
    pub fn release(&self, rt: &ResourceType, obj: &Value) {
        if rt.group.is_empty() && rt.plural == "services" {
            self.services.release(obj);
        }
    }

    /// Gives back what an update that was not written had taken (a
    /// service's new node ports or cluster IP).
    pub fn abandoned_update(&self, rt: &ResourceType, old: &Value, new: &Value) {
        if rt.group.is_empty() && rt.plural == "services" {
            self.services.updated(new, old);
        }
    }

    /// After an object is created.
    pub fn created(&self, rt: &ResourceType, obj: &Value) {
        self.changed(rt, obj);
    }

    /// After an object is updated.
    pub fn updated(&self, rt: &ResourceType, old: &Value, new: &Value) {
        if rt.group.is_empty() && rt.plural == "services" {
            self.services.updated(old, new);
        }
        self.changed(rt, new);
    }

    /// After an object is gone.
    pub fn deleted(&self, rt: &ResourceType, obj: &Value) {
        if rt.group.is_empty() && rt.plural == "services" {
            self.services.release(obj);
        }
        if rt.namespaced {
            self.namespace_changed();
        }
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            match crds::delete_custom_resources(self, obj) {
                Ok(0) => {}
                Ok(removed) => tracing::info!(
                    crd = meta_str(obj, "name"),
                    removed,
                    "custom resources of a deleted CRD removed"
                ),
                Err(err) => {
                    tracing::warn!(%err, crd = meta_str(obj, "name"), "removing the custom resources of a deleted CRD")
                }
            }
        }
        self.changed(rt, obj);
    }

    fn changed(&self, rt: &ResourceType, obj: &Value) {
        if rt.group == "apiextensions.k8s.io"
            && rt.plural == "customresourcedefinitions"
            && let Err(err) = self.refresh_custom_resources()
        {
            tracing::warn!(%err, crd = meta_str(obj, "name"), "refreshing custom resource types");
        }
        if rt.group.is_empty() && rt.plural == "namespaces" {
            self.namespace_changed();
        }
    }

    /// Wakes the namespace cleaner.
    pub fn namespace_changed(&self) {
        self.namespaces_changed.notify_one();
    }

    /// Re-reads the CRDs and serves their kinds.
    pub fn refresh_custom_resources(&self) -> Result<(), ApiError> {
        let custom = crds::resource_types(self)?;
        self.resources.set_custom(custom);
        Ok(())
    }
}

/// A server-side apply failure as the Status kube-apiserver answers:
/// conflicts carry one `FieldManagerConflict` cause per field.
fn apply_error(call: &Call, err: apply::ApplyError) -> ApiError {
    let _ = call;
    let code =
        hyper::StatusCode::from_u16(err.code()).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let reason = match err.reason() {
        "" => "InternalError",
        reason => reason,
    };
    let mut api_err = ApiError::new(code, reason, err.to_string());
    if let apply::ApplyError::Conflicts(conflicts) = &err {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|c| json!({ "reason": "FieldManagerConflict", "message": c.cause_message(), "field": c.field }))
            .collect();
        api_err.details = Some(json!({ "causes": causes }));
    }
    api_err
}

/// A pod's QoS class from its containers' requests and limits.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| pod["spec"][k].as_array().into_iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c["resources"]["requests"].as_object();
        let limits = c["resources"]["limits"].as_object();
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Removes the field at `path` (`.spec.template.spec.containers[0].imagee`).
fn remove_path(obj: &mut Value, path: &str) {
    let mut segments: Vec<Segment> = Vec::new();
    for part in path.trim_start_matches('.').split('.') {
        let (name, rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            segments.push(Segment::Field(name.to_owned()));
        }
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse::<usize>() {
                segments.push(Segment::Index(i));
            }
        }
    }
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut current = obj;
    for segment in parents {
        let next = match segment {
            Segment::Field(name) => current.get_mut(name.as_str()),
            Segment::Index(i) => current.get_mut(*i),
        };
        match next {
            Some(next) => current = next,
            None => return,
        }
    }
    if let (Segment::Field(name), Some(map)) = (last, current.as_object_mut()) {
        map.remove(name);
    }
}

enum Segment {
    Field(String),
    Index(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_removed_by_path() {
        let mut obj = json!({"spec": {"x": 1, "template": {"spec": {"containers": [{"imagee": "a", "image": "b"}]}}}});
        remove_path(&mut obj, ".spec.template.spec.containers[0].imagee");
        remove_path(&mut obj, ".spec.x");
        assert_eq!(
            obj,
            json!({"spec": {"template": {"spec": {"containers": [{"image": "b"}]}}}})
        );
    }

    #[test]
    fn qos_classes_follow_requests_and_limits() {
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "a", "resources": resources}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
    }
}
