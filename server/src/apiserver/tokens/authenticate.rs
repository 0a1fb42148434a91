//! A bearer token to a user, as kube-apiserver's service-account token
//! authenticator decides: a JWT of another issuer (or no JWT at all) is not
//! ours to judge; one of ours must carry our signature, be within its
//! times, name one of the API's audiences, and its service account and
//! bound object must still exist with the uids it names (an object deleted
//! more than a minute ago counts as gone).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Tokens;
use super::claims::{self, ObjectRef, Subject};
use super::jwt;
use crate::apiserver::Api;
use crate::apiserver::auth::User;
use crate::apiserver::object::meta_str;

/// How long a token that authenticated is trusted without checking again
/// (kube-apiserver's token cache keeps successes ten seconds).
const CACHE_FOR: Duration = Duration::from_secs(10);
/// Cached tokens at most; past this the expired ones are dropped, then all.
const CACHE_ENTRIES: usize = 4096;

/// What a bearer token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not a token of this issuer: the request is as if it had none.
    NotOurs,
    /// A valid token of this user.
    User(User),
    /// One of our tokens that is not valid (answered 401), and why.
    Refused(String),
}

/// A cached success.
#[derive(Debug, Clone)]
pub struct Cached {
    user: User,
    until: Instant,
}

/// The user of `token` if it authenticated in the last ten seconds.
pub fn cached(tokens: &Tokens, token: &str) -> Option<User> {
    let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let cache = tokens.cache.lock().ok()?;
    cache
        .get(&key)
        .filter(|c| c.until > Instant::now())
        .map(|c| c.user.clone())
}

impl Tokens {
    /// Judges `token` at `now` (Unix seconds), reading the service account
    /// and bound objects from the store (a blocking read).
    pub fn authenticate(&self, api: &Api, token: &str, now: i64) -> Verdict {
        let Some(jws) = jwt::parse(token) else {
            return Verdict::NotOurs;
        };
        if jws.claims["iss"].as_str() != Some(self.issuer.as_str()) {
            return Verdict::NotOurs;
        }
        if !jws.verified_by(&self.key) {
            return Verdict::Refused("token signature could not be verified".into());
        }
        let subject = match claims::validate(&jws.claims, &self.audiences, now) {
            Ok(subject) => subject,
            Err(err) => return Verdict::Refused(err.to_string()),
        };
        if let Err(why) = still_bound(api, &subject, now) {
            return Verdict::Refused(why);
        }
        let user = user_of(&subject);
        self.remember(token, &user);
        Verdict::User(user)
    }

    fn remember(&self, token: &str, user: &User) {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        let now = Instant::now();
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                user: user.clone(),
                until: now + CACHE_FOR,
            },
        );
    }
}

/// The user a valid token authenticates as.
pub fn user_of(subject: &Subject) -> User {
    let mut extra = BTreeMap::new();
    let mut put = |key: &str, value: &str| {
        extra.insert(
            format!("authentication.kubernetes.io/{key}"),
            vec![value.to_owned()],
        );
    };
    if let Some(pod) = &subject.pod {
        put("pod-name", &pod.name);
        put("pod-uid", &pod.uid);
    }
    if let Some(node) = &subject.node {
        put("node-name", &node.name);
        put("node-uid", &node.uid);
    }
    if !subject.jti.is_empty() {
        put("credential-id", &format!("JTI={}", subject.jti));
    }
    User {
        name: subject.username(),
        uid: subject.service_account.uid.clone(),
        groups: vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{}", subject.namespace),
            "system:authenticated".to_owned(),
        ],
        extra,
    }
}

/// Whether the service account and the bound object still exist as the
/// token names them.
fn still_bound(api: &Api, subject: &Subject, now: i64) -> Result<(), String> {
    let namespace = subject.namespace.as_str();
    let service_account = &subject.service_account;
    let found = lookup(api, "serviceaccounts", namespace, &service_account.name)?;
    check(
        found.as_ref(),
        service_account,
        now,
        &format!(
            "service account {namespace}/{} has been deleted",
            service_account.name
        ),
    )?;
    if let Some(secret) = &subject.secret {
        let found = lookup(api, "secrets", namespace, &secret.name)?;
        check(
            found.as_ref(),
            secret,
            now,
            "service account token has been invalidated",
        )?;
    }
    if let Some(pod) = &subject.pod {
        let found = lookup(api, "pods", namespace, &pod.name)?;
        check(
            found.as_ref(),
            pod,
            now,
            "service account token has been invalidated",
        )?;
    } else if let Some(node) = &subject.node {
        // A pod-bound token only names its pod's node; a node-bound one
        // needs the node.
        let found = lookup(api, "nodes", "", &node.name)?;
        check(
            found.as_ref(),
            node,
            now,
            "service account token has been invalidated",
        )?;
    }
    Ok(())
}

fn lookup(api: &Api, plural: &str, namespace: &str, name: &str) -> Result<Option<Value>, String> {
    let Some(rt) = api.resources.find("", "v1", plural) else {
        return Err(format!("{plural} are not served"));
    };
    api.store
        .try_get(&rt, namespace, name, 0)
        .map_err(|e| e.to_string())
}

/// The object exists, is not long deleted, and has the uid claimed.
fn check(found: Option<&Value>, claimed: &ObjectRef, now: i64, gone: &str) -> Result<(), String> {
    let Some(found) = found else {
        return Err(gone.to_owned());
    };
    let deleted = meta_str(found, "deletionTimestamp");
    if !deleted.is_empty()
        && time::OffsetDateTime::parse(deleted, &time::format_description::well_known::Rfc3339)
            .is_ok_and(|at| at.unix_timestamp() < now - claims::LEEWAY_SECONDS)
    {
        return Err(gone.to_owned());
    }
    let uid = meta_str(found, "uid");
    if uid != claimed.uid {
        return Err(format!(
            "{} UID ({uid}) does not match the token's claim ({})",
            claimed.name, claimed.uid
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn subject() -> Subject {
        Subject {
            namespace: "team".into(),
            service_account: ObjectRef {
                name: "builder".into(),
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
            jti: "abc".into(),
        }
    }

    #[test]
    fn a_token_is_its_service_account_with_kube_apiservers_groups_and_extra() {
        let user = user_of(&subject());
        assert_eq!(user.name, "system:serviceaccount:team:builder");
        assert_eq!(user.uid, "sa-uid");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:team",
                "system:authenticated"
            ]
        );
        assert_eq!(user.extra["authentication.kubernetes.io/pod-name"], ["web"]);
        assert_eq!(
            user.extra["authentication.kubernetes.io/node-uid"],
            ["node-uid"]
        );
        assert_eq!(
            user.extra["authentication.kubernetes.io/credential-id"],
            ["JTI=abc"]
        );
    }

    #[test]
    fn bound_objects_must_keep_their_uid_and_not_be_long_deleted() {
        let claimed = ObjectRef {
            name: "web".into(),
            uid: "u1".into(),
        };
        let live = json!({ "metadata": { "name": "web", "uid": "u1" } });
        assert!(check(Some(&live), &claimed, 0, "gone").is_ok());
        assert_eq!(check(None, &claimed, 0, "gone"), Err("gone".into()));
        let recreated = json!({ "metadata": { "name": "web", "uid": "u2" } });
        assert!(check(Some(&recreated), &claimed, 0, "gone").is_err());
        let deleting = json!({ "metadata": { "name": "web", "uid": "u1", "deletionTimestamp": "2026-01-01T00:00:00Z" } });
        let at = 1_767_225_600; // 2026-01-01T00:00:00Z
        assert!(check(Some(&deleting), &claimed, at + 60, "gone").is_ok());
        assert_eq!(
            check(Some(&deleting), &claimed, at + 61, "gone"),
            Err("gone".into())
        );
    }
}
