//! Service account tokens for projected volumes, from the TokenRequest API
//! (`serviceaccounts/<sa>/token`), bound to the pod, and renewed as
//! kubelet's token manager renews them: once 80 % of their lifetime has
//! passed, or after 24 hours.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::Api;
use kube::api::PostParams;

/// Tokens are renewed after this long whatever their lifetime.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// The lifetime asked for when the projection gives none (kubelet's 1 h).
const DEFAULT_EXPIRATION: i64 = 3600;

/// Why a token could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The apiserver does not serve TokenRequest (404/405).
    #[error(
        "failed to fetch token: the TokenRequest API (serviceaccounts/{account}/token) is not served by the apiserver: {message}"
    )]
    NotServed {
        /// The service account.
        account: String,
        /// The apiserver's answer.
        message: String,
    },
    /// Any other failure.
    #[error("failed to fetch token: {0}")]
    Failed(String),
}

#[derive(Debug, Clone)]
struct Issued {
    token: String,
    issued: SystemTime,
    expires: SystemTime,
}

impl Issued {
    fn needs_renewal(&self, now: SystemTime) -> bool {
        let lifetime = self
            .expires
            .duration_since(self.issued)
            .unwrap_or(Duration::ZERO);
        let renew_at = self.issued + lifetime.mul_f64(0.8);
        now >= renew_at
            || now
                .duration_since(self.issued)
                .is_ok_and(|age| age > MAX_AGE)
    }
}

/// The tokens of one pod, by service account, audience and lifetime.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: HashMap<String, Issued>,
}

impl Tokens {
    /// Whether any token is due for renewal.
    pub fn renewal_due(&self, now: SystemTime) -> bool {
        self.issued.values().any(|i| i.needs_renewal(now))
    }

    /// The token for `projection`, requested when none is held or it is due.
    pub async fn get(
        &mut self,
        client: &kube::Client,
        pod: &Pod,
        projection: &ServiceAccountTokenProjection,
    ) -> Result<String, TokenError> {
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let audience = projection.audience.clone().unwrap_or_default();
        let expiration = projection.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION);
        let key = format!("{account}|{audience}|{expiration}");
        let now = SystemTime::now();
        if let Some(issued) = self.issued.get(&key)
            && !issued.needs_renewal(now)
        {
            return Ok(issued.token.clone());
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: if audience.is_empty() {
                    Vec::new()
                } else {
                    vec![audience]
                },
                expiration_seconds: Some(expiration),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let answer = api
            .create_token_request(&account, &PostParams::default(), &request)
            .await
            .map_err(|err| match &err {
                kube::Error::Api(status) if not_served(status, &account) => TokenError::NotServed {
                    account: account.clone(),
                    message: status.message.clone(),
                },
                kube::Error::Api(status) => TokenError::Failed(status.message.clone()),
                _ => TokenError::Failed(err.to_string()),
            })?;
        let status = answer
            .status
            .ok_or_else(|| TokenError::Failed("the TokenRequest answer has no status".into()))?;
        let expires = SystemTime::UNIX_EPOCH
            + Duration::from_secs(
                u64::try_from(status.expiration_timestamp.0.as_second()).unwrap_or(0),
            );
        self.issued.insert(
            key,
            Issued {
                token: status.token.clone(),
                issued: now,
                expires,
            },
        );
        Ok(status.token)
    }
}

/// Whether an error answer means the apiserver has no TokenRequest API
/// (405, or a 404 that names no object), rather than a missing
/// ServiceAccount (a 404 naming it).
fn not_served(status: &kube::core::Status, account: &str) -> bool {
    let names_object = status.details.as_ref().is_some_and(|d| !d.name.is_empty())
        || status.message.contains(&format!("\"{account}\" not found"));
    status.code == 405 || (status.code == 404 && !names_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_service_account_is_not_a_missing_api() {
        let status = |code: u16, message: &str| kube::core::Status {
            code,
            message: message.into(),
            ..kube::core::Status::failure(message, "NotFound")
        };
        assert!(not_served(
            &status(404, "the server could not find the requested resource"),
            "default"
        ));
        assert!(not_served(&status(405, "method not allowed"), "default"));
        assert!(!not_served(
            &status(404, "serviceaccounts \"default\" not found"),
            "default"
        ));
        assert!(!not_served(&status(403, "forbidden"), "default"));
    }

    #[test]
    fn tokens_renew_at_eighty_percent_of_their_life() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let issued = Issued {
            token: "t".into(),
            issued: t0,
            expires: t0 + Duration::from_secs(3600),
        };
        assert!(!issued.needs_renewal(t0 + Duration::from_secs(2879)));
        assert!(issued.needs_renewal(t0 + Duration::from_secs(2880)));
        let long = Issued {
            expires: t0 + Duration::from_secs(10 * 24 * 3600),
            ..issued
        };
        assert!(long.needs_renewal(t0 + Duration::from_secs(24 * 3600 + 1)));
    }
}
