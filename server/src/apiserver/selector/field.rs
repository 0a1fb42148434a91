//! Field selectors: upstream's `fields.ParseSelector` grammar, the per-kind field labels
//! (`AddFieldLabelConversionFunc` in `pkg/apis/*/v1/conversion.go`) and the values they
//! select (`ToSelectableFields` in each registry strategy).

use std::fmt;

use serde_json::Value;

use super::SelectorError;
use super::validate::go_quote;

/// The operator of one field requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One `field <operator> value` term (the value unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field label, e.g. `status.phase`.
    pub field: String,
    /// `=`/`==` or `!=`.
    pub operator: FieldOperator,
    /// The wanted value.
    pub value: String,
}

/// A parsed field selector: all requirements must hold (AND).
///
/// `Display` renders upstream's `Selector.String()` (`a=b,c!=d`, values escaped).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object (an empty `?fieldSelector=`).
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Parses the `?fieldSelector=` text as upstream's `fields.ParseSelector`
    /// (terms sorted; `\,`, `\=` and `\\` escapes in values).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut terms = split_terms(text);
        terms.sort();
        let mut requirements = Vec::new();
        for term in terms.iter().filter(|t| !t.is_empty()) {
            let Some((field, operator, raw)) = split_term(term) else {
                return Err(SelectorError::Field(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            let value = unescape_value(raw)?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Checks every field against what `group`/`resource` can be selected by, rewriting
    /// aliases (pods' `spec.host`, events.k8s.io's `regarding.*`) to the canonical label.
    /// An unsupported field is upstream's error (400 `BadRequest`).
    pub fn for_resource(&self, group: &str, resource: &str) -> Result<Self, SelectorError> {
        let rules = rules(group, resource);
        let requirements = self
            .requirements
            .iter()
            .map(|r| {
                Ok(FieldRequirement {
                    field: rules.canonical(&r.field)?.to_string(),
                    operator: r.operator,
                    value: r.value.clone(),
                })
            })
            .collect::<Result<_, SelectorError>>()?;
        Ok(FieldSelector { requirements })
    }

    /// The requirements, sorted as upstream sorts the terms.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether the selector has no requirement.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value `field` must equal, when the selector pins it (`metadata.name=x`).
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Whether `object` (of `group`/`resource`) satisfies every requirement. A field the
    /// resource cannot be selected by is upstream's error (400 `BadRequest`); use
    /// [`FieldSelector::for_resource`] to reject it before reading any object, as
    /// upstream does even for an empty list.
    pub fn matches(
        &self,
        group: &str,
        resource: &str,
        object: &Value,
    ) -> Result<bool, SelectorError> {
        let rules = rules(group, resource);
        for r in &self.requirements {
            // Accept both the client's spelling and the canonical one `for_resource` gives.
            let canonical = match rules.canonical(&r.field) {
                Ok(field) => field,
                Err(_) if rules.aliases.iter().any(|(_, to)| *to == r.field) => r.field.as_str(),
                Err(e) => return Err(e),
            };
            let actual = selectable(group, resource, object, canonical).unwrap_or_default();
            if (actual == r.value) != (r.operator == FieldOperator::Equals) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if r.operator == FieldOperator::Equals {
                "="
            } else {
                "!="
            };
            write!(f, "{}{op}{}", r.field, escape_value(&r.value))?;
        }
        Ok(())
    }
}

/// The value a field selector compares for `field` of `object` (a `group`/`resource`
/// object), as upstream's `ToSelectableFields` computes it: booleans as `true`/`false`,
/// counts as decimal, absent strings as `""`. `Ok(None)` is a field upstream accepts but
/// never sets (pods' `status.podIPs`), which compares as `""`. A field the resource cannot
/// be selected by is upstream's error.
pub fn field_value(
    group: &str,
    resource: &str,
    object: &Value,
    field: &str,
) -> Result<Option<String>, SelectorError> {
    let field = rules(group, resource).canonical(field)?;
    Ok(selectable(group, resource, object, field))
}

fn string_at(object: &Value, pointer: &str) -> String {
    match object.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn bool_at(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string()
}

fn int_at(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .to_string()
}

fn selectable(group: &str, resource: &str, o: &Value, field: &str) -> Option<String> {
    match field {
        "metadata.name" => return Some(string_at(o, "/metadata/name")),
        "metadata.namespace" => return Some(string_at(o, "/metadata/namespace")),
        _ => {}
    }
    let value = match (group, resource, field) {
        ("", "pods", "spec.hostNetwork") => bool_at(o, "/spec/hostNetwork"),
        ("", "pods", "status.podIP") => {
            match o.pointer("/status/podIPs/0/ip").and_then(Value::as_str) {
                Some(ip) => ip.to_string(),
                None => string_at(o, "/status/podIP"),
            }
        }
        ("", "pods", "status.podIPs") => return None,
        ("", "pods", f) => string_at(o, &format!("/{}", f.replace('.', "/"))),
        ("", "nodes", "spec.unschedulable") => bool_at(o, "/spec/unschedulable"),
        ("", "namespaces", "status.phase") => string_at(o, "/status/phase"),
        ("", "secrets", "type") => string_at(o, "/type"),
        ("", "services", f) => string_at(o, &format!("/{}", f.replace('.', "/"))),
        ("", "replicationcontrollers", "status.replicas") => int_at(o, "/status/replicas"),
        ("", "events", "source") => {
            let component = string_at(o, "/source/component");
            if component.is_empty() {
                string_at(o, "/reportingComponent")
            } else {
                component
            }
        }
        ("", "events", f) => string_at(o, &format!("/{}", f.replace('.', "/"))),
        ("events.k8s.io", "events", "reportingComponent") => string_at(o, "/reportingController"),
        ("events.k8s.io", "events", f) => match f.strip_prefix("involvedObject.") {
            Some(sub) => string_at(o, &format!("/regarding/{sub}")),
            None => string_at(o, &format!("/{f}")),
        },
        ("batch", "jobs", "status.successful") => int_at(o, "/status/succeeded"),
        ("certificates.k8s.io", "certificatesigningrequests", "spec.signerName") => {
            string_at(o, "/spec/signerName")
        }
        _ => return None,
    };
    Some(value)
}

/// Which field labels a kind accepts, its aliases, and how it words a rejection.
struct Rules {
    /// Labels accepted besides `metadata.name` (and `metadata.namespace` when namespaced).
    accepted: &'static [&'static str],
    /// Client label → canonical label.
    aliases: &'static [(&'static str, &'static str)],
    namespaced: bool,
    reject: Reject,
}

enum Reject {
    /// `field label not supported: <f>` (most registered conversion funcs).
    NotSupported,
    /// `field label "<f>" not supported for Job` (batch/v1 Job).
    Job,
    /// `"<f>" is not a known field selector: only "metadata.name", "metadata.namespace"`
    /// (kinds with no registered conversion func, custom resources included).
    MetaOnly,
}

impl Rules {
    fn canonical<'a>(&self, field: &'a str) -> Result<&'a str, SelectorError> {
        if field == "metadata.name"
            || (field == "metadata.namespace" && self.namespaced)
            || self.accepted.contains(&field)
        {
            return Ok(field);
        }
        if let Some((_, to)) = self.aliases.iter().find(|(from, _)| *from == field) {
            return Ok(to);
        }
        Err(SelectorError::UnsupportedField(match self.reject {
            Reject::NotSupported => format!("field label not supported: {field}"),
            Reject::Job => format!("field label {} not supported for Job", go_quote(field)),
            Reject::MetaOnly => {
                format!(
                    "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                    go_quote(field)
                )
            }
        }))
    }
}

const META_ONLY: Rules = Rules {
    accepted: &[],
    aliases: &[],
    namespaced: true,
    reject: Reject::MetaOnly,
};

const INVOLVED_OBJECT: [&str; 7] = [
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
];

fn rules(group: &str, resource: &str) -> Rules {
    let (accepted, aliases, namespaced, reject): (&[&str], &[(&str, &str)], bool, Reject) =
        match (group, resource) {
            ("", "pods") => (
                &[
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "spec.hostNetwork",
                    "status.phase",
                    "status.podIP",
                    "status.podIPs",
                    "status.nominatedNodeName",
                ],
                &[("spec.host", "spec.nodeName")],
                true,
                Reject::NotSupported,
            ),
            ("", "nodes") => (&["spec.unschedulable"], &[], false, Reject::NotSupported),
            ("", "namespaces") => (&["status.phase"], &[], false, Reject::NotSupported),
            ("", "secrets") => (&["type"], &[], true, Reject::NotSupported),
            ("", "services") => (
                &["spec.clusterIP", "spec.type"],
                &[],
                true,
                Reject::NotSupported,
            ),
            ("", "replicationcontrollers") => {
                (&["status.replicas"], &[], true, Reject::NotSupported)
            }
            ("", "events") => (
                &[
                    INVOLVED_OBJECT[0],
                    INVOLVED_OBJECT[1],
                    INVOLVED_OBJECT[2],
                    INVOLVED_OBJECT[3],
                    INVOLVED_OBJECT[4],
                    INVOLVED_OBJECT[5],
                    INVOLVED_OBJECT[6],
                    "reason",
                    "reportingComponent",
                    "source",
                    "type",
                ],
                &[],
                true,
                Reject::NotSupported,
            ),
            ("events.k8s.io", "events") => (
                &["reason", "type"],
                &[
                    ("regarding.kind", INVOLVED_OBJECT[0]),
                    ("regarding.namespace", INVOLVED_OBJECT[1]),
                    ("regarding.name", INVOLVED_OBJECT[2]),
                    ("regarding.uid", INVOLVED_OBJECT[3]),
                    ("regarding.apiVersion", INVOLVED_OBJECT[4]),
                    ("regarding.resourceVersion", INVOLVED_OBJECT[5]),
                    ("regarding.fieldPath", INVOLVED_OBJECT[6]),
                    ("reportingController", "reportingComponent"),
                ],
                true,
                Reject::NotSupported,
            ),
            ("batch", "jobs") => (&["status.successful"], &[], true, Reject::Job),
            ("certificates.k8s.io", "certificatesigningrequests") => {
                (&["spec.signerName"], &[], false, Reject::NotSupported)
            }
            _ => return META_ONLY,
        };
    Rules {
        accepted,
        aliases,
        namespaced,
        reject,
    }
}

/// Splits on unescaped commas, keeping escapes (upstream's `splitTerms`).
fn split_terms(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in text.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&text[start..i]);
            start = i + 1;
        }
    }
    terms.push(&text[start..]);
    terms
}

/// Splits a term at its first operator (`!=`, `==`, `=`; upstream's `splitTerm`).
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

/// Upstream's `UnescapeValue`, with its errors.
fn unescape_value(raw: &str) -> Result<String, SelectorError> {
    if !raw.contains(['\\', ',', '=']) {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut in_slash = false;
    for c in raw.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => {
                    return Err(SelectorError::Field(format!(
                        "invalid field selector: invalid escape sequence: \\{other}"
                    )));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(SelectorError::Field(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            other => out.push(other),
        }
    }
    if in_slash {
        return Err(SelectorError::Field(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

/// Upstream's `EscapeValue`.
fn escape_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-a", "restartPolicy": "Always", "serviceAccountName": "default"},
            "status": {"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}]}
        })
    }

    #[test]
    fn parses_operators_sorted_and_escaped() {
        let s =
            FieldSelector::parse("status.phase!=Running,metadata.name==web,spec.nodeName=a\\,b")
                .unwrap();
        let fields: Vec<_> = s
            .requirements()
            .iter()
            .map(|r| (r.field.as_str(), r.operator, r.value.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("metadata.name", FieldOperator::Equals, "web"),
                ("spec.nodeName", FieldOperator::Equals, "a,b"),
                ("status.phase", FieldOperator::NotEquals, "Running"),
            ]
        );
        assert_eq!(
            s.to_string(),
            "metadata.name=web,spec.nodeName=a\\,b,status.phase!=Running"
        );
        assert_eq!(s.exact_value("metadata.name"), Some("web"));
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse(",,").unwrap().is_empty());
        assert_eq!(
            FieldSelector::parse("a=").unwrap().requirements()[0].value,
            ""
        );
    }

    #[test]
    fn parse_errors_are_worded_as_upstream() {
        let err = |s: &str| FieldSelector::parse(s).unwrap_err().to_string();
        assert_eq!(
            err("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            err("a=b,c"),
            "invalid selector: 'a=b,c'; can't understand 'c'"
        );
        assert_eq!(
            err("a=b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            err("a=b\\x"),
            "invalid field selector: invalid escape sequence: \\x"
        );
        assert_eq!(
            err("a=b\\"),
            "invalid field selector: invalid escape sequence: \\"
        );
    }

    #[test]
    fn pod_fields_match() {
        let p = pod();
        let m = |s: &str| {
            FieldSelector::parse(s)
                .unwrap()
                .matches("", "pods", &p)
                .unwrap()
        };
        assert!(m("metadata.name=web-1,metadata.namespace=default"));
        assert!(m("spec.nodeName=node-a,status.phase!=Pending"));
        assert!(m("status.podIP=10.42.0.5"));
        assert!(m("spec.hostNetwork=false"));
        assert!(m("spec.schedulerName="));
        assert!(!m("status.phase=Pending"));
        assert!(!m("status.podIPs=10.42.0.5"));
        assert!(m("status.podIPs!=10.42.0.5"));
        let unsupported = FieldSelector::parse("spec.containers=x")
            .unwrap()
            .matches("", "pods", &p);
        assert_eq!(
            unsupported,
            Err(SelectorError::UnsupportedField(
                "field label not supported: spec.containers".into()
            ))
        );
        let aliased = FieldSelector::parse("spec.host=node-a")
            .unwrap()
            .for_resource("", "pods")
            .unwrap();
        assert_eq!(aliased.to_string(), "spec.nodeName=node-a");
        assert_eq!(aliased.matches("", "pods", &p), Ok(true));
    }

    #[test]
    fn unsupported_fields_are_worded_as_upstream() {
        let check = |g: &str, r: &str, s: &str| {
            FieldSelector::parse(s)
                .unwrap()
                .for_resource(g, r)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            check("", "pods", "spec.containers=x"),
            "field label not supported: spec.containers"
        );
        assert_eq!(
            check("", "nodes", "metadata.namespace=x"),
            "field label not supported: metadata.namespace"
        );
        assert_eq!(
            check("batch", "jobs", "status.active=1"),
            "field label \"status.active\" not supported for Job"
        );
        assert_eq!(
            check("apps", "deployments", "status.replicas=1"),
            "\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        assert_eq!(
            field_value("", "secrets", &json!({}), "data").unwrap_err(),
            SelectorError::UnsupportedField("field label not supported: data".to_string())
        );
    }

    #[test]
    fn per_kind_values() {
        let node = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert_eq!(
            field_value("", "nodes", &node, "spec.unschedulable")
                .unwrap()
                .as_deref(),
            Some("true")
        );
        let ns = json!({"metadata": {"name": "kube-system"}, "status": {"phase": "Active"}});
        assert_eq!(
            field_value("", "namespaces", &ns, "status.phase")
                .unwrap()
                .as_deref(),
            Some("Active")
        );
        let secret = json!({"type": "kubernetes.io/tls"});
        assert_eq!(
            field_value("", "secrets", &secret, "type")
                .unwrap()
                .as_deref(),
            Some("kubernetes.io/tls")
        );
        let svc = json!({"spec": {"clusterIP": "10.43.0.1", "type": "ClusterIP"}});
        assert_eq!(
            field_value("", "services", &svc, "spec.clusterIP")
                .unwrap()
                .as_deref(),
            Some("10.43.0.1")
        );
        assert_eq!(
            field_value("", "services", &svc, "spec.type")
                .unwrap()
                .as_deref(),
            Some("ClusterIP")
        );
        let rc = json!({"status": {}});
        assert_eq!(
            field_value("", "replicationcontrollers", &rc, "status.replicas")
                .unwrap()
                .as_deref(),
            Some("0")
        );
        let job = json!({"status": {"succeeded": 2}});
        assert_eq!(
            field_value("batch", "jobs", &job, "status.successful")
                .unwrap()
                .as_deref(),
            Some("2")
        );
        let event = json!({
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u1"},
            "reason": "Pulled", "type": "Normal", "reportingComponent": "kubelet", "source": {}
        });
        let ev = |f: &str| {
            field_value("", "events", &event, f)
                .unwrap()
                .unwrap_or_default()
        };
        assert_eq!(ev("involvedObject.kind"), "Pod");
        assert_eq!(ev("involvedObject.name"), "web-1");
        assert_eq!(ev("involvedObject.uid"), "u1");
        assert_eq!(ev("source"), "kubelet");
        assert_eq!(ev("reportingComponent"), "kubelet");
        assert_eq!(ev("reason"), "Pulled");
        let new_event = json!({"regarding": {"kind": "Pod", "name": "web-1"}, "reportingController": "kubelet"});
        let sel = FieldSelector::parse("regarding.kind=Pod,reportingController=kubelet")
            .unwrap()
            .for_resource("events.k8s.io", "events")
            .unwrap();
        assert_eq!(sel.matches("events.k8s.io", "events", &new_event), Ok(true));
        assert!(
            FieldSelector::parse("involvedObject.kind=Pod")
                .unwrap()
                .for_resource("events.k8s.io", "events")
                .is_err()
        );
        let cr = json!({"metadata": {"name": "x", "namespace": "ns"}});
        assert_eq!(
            field_value("example.com", "widgets", &cr, "metadata.namespace")
                .unwrap()
                .as_deref(),
            Some("ns")
        );
    }
}
