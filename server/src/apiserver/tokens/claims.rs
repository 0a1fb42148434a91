//! The claims of a service-account token, as kube-apiserver 1.32 writes
//! and checks them: `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` and the
//! private `kubernetes.io` claim naming the namespace, the service account
//! and the object the token is bound to (a pod and its node, a secret, or a
//! node).

use serde_json::{Map, Value, json};

/// The issuer (`--service-account-issuer` of kube-apiserver and k3s).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Clock skew tolerated on `exp`, `nbf` and `iat` (go-jose's default leeway).
pub const LEEWAY_SECONDS: i64 = 60;

/// The expiry kubelet asks for projected tokens: such a pod-bound token is
/// valid for [`EXTENDED_EXPIRATION_SECONDS`] and only warned about after it
/// (kube-apiserver's `--service-account-extend-token-expiration`).
pub const WARN_ONLY_EXPIRATION_SECONDS: i64 = 60 * 60 + 7;

/// How long an extended token is valid.
pub const EXTENDED_EXPIRATION_SECONDS: i64 = 24 * 365 * 60 * 60;

/// An object named in a token: its name and uid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectRef {
    /// The object's name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// Whom a token was issued to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: ObjectRef,
    /// The pod the token is bound to.
    pub pod: Option<ObjectRef>,
    /// The secret the token is bound to.
    pub secret: Option<ObjectRef>,
    /// The node the token is bound to, or the bound pod's node.
    pub node: Option<ObjectRef>,
    /// The token's ID (`jti`).
    pub jti: String,
}

impl Subject {
    /// `system:serviceaccount:<namespace>:<name>`.
    pub fn username(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account.name
        )
    }
}

/// What to write into a new token.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    /// `iss`.
    pub issuer: &'a str,
    /// `aud`.
    pub audiences: &'a [String],
    /// Whom it is for.
    pub subject: &'a Subject,
    /// `iat` and `nbf`, Unix seconds.
    pub now: i64,
    /// `exp` - `iat`.
    pub expiration_seconds: i64,
    /// Seconds after `iat` from which the token is stale (`warnafter`).
    pub warn_after: Option<i64>,
}

/// The claims of a token (keys sorted, as go-jose writes them).
pub fn claims(grant: &Grant<'_>) -> Value {
    let subject = grant.subject;
    let reference = |r: &ObjectRef| json!({ "name": r.name, "uid": r.uid });
    let mut kubernetes = json!({
        "namespace": subject.namespace,
        "serviceaccount": reference(&subject.service_account),
    });
    for (key, object) in [
        ("pod", &subject.pod),
        ("secret", &subject.secret),
        ("node", &subject.node),
    ] {
        if let Some(object) = object {
            kubernetes[key] = reference(object);
        }
    }
    if let Some(warn_after) = grant.warn_after {
        kubernetes["warnafter"] = json!(grant.now + warn_after);
    }
    json!({
        "aud": grant.audiences,
        "exp": grant.now + grant.expiration_seconds,
        "iat": grant.now,
        "iss": grant.issuer,
        "jti": subject.jti,
        "kubernetes.io": kubernetes,
        "nbf": grant.now,
        "sub": subject.username(),
    })
}

/// Why a token of this issuer is refused (logged; clients see 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// `exp` is past.
    #[error("service account token has expired")]
    Expired,
    /// `nbf` is ahead.
    #[error("service account token is not valid yet")]
    NotValidYet,
    /// `iat` is ahead.
    #[error("service account token was issued in the future")]
    IssuedInTheFuture,
    /// No audience of the token is one the API accepts.
    #[error("token audiences {token:?} is invalid for the target audiences {api:?}")]
    Audience {
        /// The token's.
        token: Vec<String>,
        /// The API's.
        api: Vec<String>,
    },
    /// A claim is missing or malformed.
    #[error("service account token claims are malformed: {0}")]
    Malformed(&'static str),
}

/// Checks times and audiences of a token whose `iss` is ours and whose
/// signature verified, and reads whom it is for.
pub fn validate(claims: &Value, audiences: &[String], now: i64) -> Result<Subject, ClaimError> {
    let time = |key: &'static str| -> Result<Option<i64>, ClaimError> {
        match &claims[key] {
            Value::Null => Ok(None),
            value => value
                .as_f64()
                .map(|t| Some(t as i64))
                .ok_or(ClaimError::Malformed(key)),
        }
    };
    if time("nbf")?.is_some_and(|nbf| now + LEEWAY_SECONDS < nbf) {
        return Err(ClaimError::NotValidYet);
    }
    if time("exp")?.is_some_and(|exp| now - LEEWAY_SECONDS > exp) {
        return Err(ClaimError::Expired);
    }
    if time("iat")?.is_some_and(|iat| now + LEEWAY_SECONDS < iat) {
        return Err(ClaimError::IssuedInTheFuture);
    }
    let token_audiences: Vec<String> = match &claims["aud"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    if !token_audiences.iter().any(|a| audiences.contains(a)) {
        return Err(ClaimError::Audience {
            token: token_audiences,
            api: audiences.to_vec(),
        });
    }
    let kubernetes = claims["kubernetes.io"]
        .as_object()
        .ok_or(ClaimError::Malformed("kubernetes.io"))?;
    let namespace = kubernetes
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or(ClaimError::Malformed("kubernetes.io.namespace"))?;
    let service_account = reference(kubernetes, "serviceaccount")
        .filter(|sa| !sa.name.is_empty())
        .ok_or(ClaimError::Malformed("kubernetes.io.serviceaccount"))?;
    Ok(Subject {
        namespace: namespace.to_owned(),
        service_account,
        pod: reference(kubernetes, "pod"),
        secret: reference(kubernetes, "secret"),
        node: reference(kubernetes, "node"),
        jti: claims["jti"].as_str().unwrap_or("").to_owned(),
    })
}

fn reference(claim: &Map<String, Value>, key: &str) -> Option<ObjectRef> {
    let object = claim.get(key)?.as_object()?;
    let text = |k: &str| {
        object
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    Some(ObjectRef {
        name: text("name"),
        uid: text("uid"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        Subject {
            namespace: "default".into(),
            service_account: ObjectRef {
                name: "default".into(),
                uid: "sa-uid".into(),
            },
            pod: Some(ObjectRef {
                name: "web".into(),
                uid: "pod-uid".into(),
            }),
            secret: None,
            node: Some(ObjectRef {
                name: "node1".into(),
                uid: "node-uid".into(),
            }),
            jti: "jti-1".into(),
        }
    }

    fn audiences() -> Vec<String> {
        vec![ISSUER.to_owned()]
    }

    #[test]
    fn claims_are_written_as_kube_apiserver_writes_them() {
        let subject = subject();
        let audiences = audiences();
        let claims = claims(&Grant {
            issuer: ISSUER,
            audiences: &audiences,
            subject: &subject,
            now: 1_000,
            expiration_seconds: 3607,
            warn_after: Some(3607),
        });
        assert_eq!(
            claims.to_string(),
            concat!(
                r#"{"aud":["https://kubernetes.default.svc.cluster.local"],"exp":4607,"iat":1000,"#,
                r#""iss":"https://kubernetes.default.svc.cluster.local","jti":"jti-1","#,
                r#""kubernetes.io":{"namespace":"default","node":{"name":"node1","uid":"node-uid"},"#,
                r#""pod":{"name":"web","uid":"pod-uid"},"serviceaccount":{"name":"default","uid":"sa-uid"},"#,
                r#""warnafter":4607},"nbf":1000,"sub":"system:serviceaccount:default:default"}"#
            )
        );
    }

    #[test]
    fn valid_claims_name_their_subject() {
        let subject = subject();
        let audiences = audiences();
        let grant = Grant {
            issuer: ISSUER,
            audiences: &audiences,
            subject: &subject,
            now: 1_000,
            expiration_seconds: 600,
            warn_after: None,
        };
        let written = claims(&grant);
        assert_eq!(validate(&written, &audiences, 1_000), Ok(subject.clone()));
        assert_eq!(subject.username(), "system:serviceaccount:default:default");
        // The leeway: a minute either side.
        assert!(validate(&written, &audiences, 1_600 + 60).is_ok());
        assert_eq!(
            validate(&written, &audiences, 1_600 + 61),
            Err(ClaimError::Expired)
        );
        assert!(validate(&written, &audiences, 1_000 - 60).is_ok());
        assert_eq!(
            validate(&written, &audiences, 1_000 - 61),
            Err(ClaimError::NotValidYet)
        );
    }

    #[test]
    fn audiences_must_meet_the_apis() {
        let subject = subject();
        let theirs = vec!["vault".to_owned()];
        let written = claims(&Grant {
            issuer: ISSUER,
            audiences: &theirs,
            subject: &subject,
            now: 1_000,
            expiration_seconds: 600,
            warn_after: None,
        });
        assert!(matches!(
            validate(&written, &audiences(), 1_000),
            Err(ClaimError::Audience { .. })
        ));
        let mut single = written.clone();
        single["aud"] = json!(ISSUER);
        assert!(validate(&single, &audiences(), 1_000).is_ok());
    }

    #[test]
    fn the_kubernetes_claim_is_required() {
        let mut written = claims(&Grant {
            issuer: ISSUER,
            audiences: &audiences(),
            subject: &subject(),
            now: 1_000,
            expiration_seconds: 600,
            warn_after: None,
        });
        written["kubernetes.io"]["serviceaccount"] = json!({});
        assert_eq!(
            validate(&written, &audiences(), 1_000),
            Err(ClaimError::Malformed("kubernetes.io.serviceaccount"))
        );
        written["kubernetes.io"] = Value::Null;
        assert_eq!(
            validate(&written, &audiences(), 1_000),
            Err(ClaimError::Malformed("kubernetes.io"))
        );
        written["exp"] = json!("soon");
        assert_eq!(
            validate(&written, &audiences(), 1_000),
            Err(ClaimError::Malformed("exp"))
        );
    }
}
