//! Policy, scheduling, RBAC, leases and certificates.

use serde_json::Value;
use time::OffsetDateTime;

use super::super::descriptions as d;
use super::super::format::{age, arr_at, human_duration, int_at, int_or_string, or, str_at};
use super::{AGE, Column, NAME, col, name, s, wide};

pub(super) const POD_DISRUPTION_BUDGET: &[Column] = &[
    NAME,
    col(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    col(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

pub(super) fn pod_disruption_budget(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![
        name(o),
        s(int_or_string(o.pointer("/spec/minAvailable")).unwrap_or_else(|| "N/A".to_string())),
        s(int_or_string(o.pointer("/spec/maxUnavailable")).unwrap_or_else(|| "N/A".to_string())),
        Value::from(int_at(o, "/status/disruptionsAllowed")),
        s(age(o, now)),
    ]
}

pub(super) const RUNTIME_CLASS: &[Column] = &[NAME, col("Handler", "string", ""), AGE];

pub(super) fn runtime_class(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![name(o), Value::from(str_at(o, "/handler")), s(age(o, now))]
}

pub(super) const PRIORITY_CLASS: &[Column] = &[
    NAME,
    col("Value", "integer", d::PC_VALUE),
    col("Global-Default", "boolean", d::PC_GLOBAL_DEFAULT),
    AGE,
    col("PreemptionPolicy", "string", d::PC_PREEMPTION_POLICY),
];

pub(super) fn priority_class(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![
        name(o),
        Value::from(int_at(o, "/value")),
        Value::Bool(
            o.get("globalDefault")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        s(age(o, now)),
        Value::from(str_at(o, "/preemptionPolicy")),
    ]
}

pub(super) const ROLE_BINDING: &[Column] = &[
    NAME,
    col("Role", "string", d::ROLEBINDING_ROLE_REF),
    AGE,
    wide("Users", "string", "Users in the roleBinding"),
    wide("Groups", "string", "Groups in the roleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    ),
];

pub(super) const CLUSTER_ROLE_BINDING: &[Column] = &[
    NAME,
    col("Role", "string", d::CLUSTERROLEBINDING_ROLE_REF),
    AGE,
    wide("Users", "string", "Users in the clusterRoleBinding"),
    wide("Groups", "string", "Groups in the clusterRoleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
    ),
];

pub(super) fn role_binding(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let (mut users, mut groups, mut service_accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in arr_at(o, "/subjects") {
        let n = str_at(subject, "/name");
        match str_at(subject, "/kind") {
            "User" => users.push(n.to_string()),
            "Group" => groups.push(n.to_string()),
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{n}", str_at(subject, "/namespace")))
            }
            _ => {}
        }
    }
    vec![
        name(o),
        s(format!(
            "{}/{}",
            str_at(o, "/roleRef/kind"),
            str_at(o, "/roleRef/name")
        )),
        s(age(o, now)),
        s(users.join(", ")),
        s(groups.join(", ")),
        s(service_accounts.join(", ")),
    ]
}

pub(super) const LEASE: &[Column] = &[NAME, col("Holder", "string", d::LEASE_SPEC_HOLDER), AGE];

pub(super) fn lease(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    vec![
        name(o),
        Value::from(str_at(o, "/spec/holderIdentity")),
        s(age(o, now)),
    ]
}

pub(super) const CSR: &[Column] = &[
    NAME,
    AGE,
    col("SignerName", "string", d::CSR_SPEC_SIGNER_NAME),
    col("Requestor", "string", d::CSR_SPEC_REQUEST),
    col("RequestedDuration", "string", d::CSR_SPEC_EXPIRATION),
    col("Condition", "string", d::CSR_STATUS_CONDITIONS),
];

pub(super) fn certificate_signing_request(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let conditions = arr_at(o, "/status/conditions");
    let has = |t: &str| conditions.iter().any(|c| str_at(c, "/type") == t);
    let mut condition = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        condition.push_str(",Failed");
    }
    if !str_at(o, "/status/certificate").is_empty() {
        condition.push_str(",Issued");
    }
    let duration = match o.pointer("/spec/expirationSeconds").and_then(Value::as_i64) {
        Some(secs) => human_duration(time::Duration::seconds(secs)),
        None => "<none>".to_string(),
    };
    vec![
        name(o),
        s(age(o, now)),
        s(or(str_at(o, "/spec/signerName"), "<none>")),
        Value::from(str_at(o, "/spec/username")),
        s(duration),
        s(condition),
    ]
}
