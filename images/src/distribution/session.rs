//! Requests against one endpoint for one repository: authentication
//! challenges, token fetches and mapping HTTP answers to errors.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use crate::registries::Endpoint;

use super::auth::{AuthCache, Challenge, Credentials, TokenKey, TokenResponse, form_encode};
use super::error::describe_error_body;
use super::{RegistryError, tls};

/// Error bodies and token responses are small; cap what is read of them.
const SMALL_BODY_LIMIT: u64 = 1 << 20;
const CLIENT_ID: &str = "skiff";

/// One endpoint, one repository: everything needed to make authorized requests.
pub(crate) struct EndpointSession {
    pub endpoint: Endpoint,
    pub http: reqwest::Client,
    /// The repository as this endpoint names it (after rewrites).
    pub repository: String,
    /// The image reference, for error messages.
    pub reference: String,
    pub credentials: Option<Credentials>,
    pub auth: Arc<AuthCache>,
}

impl std::fmt::Debug for EndpointSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointSession")
            .field("endpoint", &self.endpoint.to_string())
            .field("repository", &self.repository)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl EndpointSession {
    fn endpoint_name(&self) -> String {
        self.endpoint.to_string()
    }

    fn token_key(&self) -> TokenKey {
        TokenKey {
            endpoint: self.endpoint_name(),
            repository: self.repository.clone(),
            credentials: self.credentials.as_ref().map(Credentials::fingerprint),
        }
    }

    /// What to send before any challenge: a registry token, a cached bearer
    /// token, or basic auth where this endpoint asked for it before.
    fn initial_authorization(&self) -> Option<String> {
        if let Some(Credentials::RegistryToken(token)) = &self.credentials {
            return Some(format!("Bearer {token}"));
        }
        if let Some(token) = self.auth.token(&self.token_key()) {
            return Some(format!("Bearer {token}"));
        }
        if self.auth.wants_basic(&self.endpoint_name()) {
            return self
                .credentials
                .as_ref()
                .and_then(Credentials::basic_header);
        }
        None
    }

    /// GETs `url`, answering one authentication challenge, and returns a
    /// successful response or the error the answer means. `what` names the
    /// object in NotFound errors.
    pub(crate) async fn get(
        &self,
        url: Url,
        headers: HeaderMap,
        what: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut authorization = self.initial_authorization();
        let mut challenged = false;
        loop {
            let mut request = self.http.get(url.clone()).headers(headers.clone());
            if let Some(value) = &authorization {
                request = request.header(AUTHORIZATION, value);
            }
            let response = request.send().await.map_err(|e| self.transport_error(e))?;
            if response.status() != StatusCode::UNAUTHORIZED || challenged {
                return self.check_status(response, what).await;
            }
            challenged = true;
            let challenges = parse_header_challenges(response.headers());
            let refusal = self.error_message(response).await;
            authorization = Some(self.answer(&challenges, refusal).await?);
        }
    }

    /// Turns a challenge into an Authorization value.
    async fn answer(
        &self,
        challenges: &[Challenge],
        refusal: String,
    ) -> Result<String, RegistryError> {
        let bearer = challenges.iter().find_map(|c| match c {
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => Some((realm, service, scope)),
            Challenge::Basic => None,
        });
        if let Some((realm, service, scope)) = bearer {
            if matches!(self.credentials, Some(Credentials::RegistryToken(_))) {
                return Err(self.unauthorized(
                    &self.endpoint_name(),
                    format!("the registry token was refused: {refusal}"),
                ));
            }
            let token = self
                .fetch_token(realm, service.as_deref(), scope.as_deref())
                .await?;
            return Ok(format!("Bearer {token}"));
        }
        if challenges.contains(&Challenge::Basic) {
            return match self
                .credentials
                .as_ref()
                .and_then(Credentials::basic_header)
            {
                Some(header) => {
                    self.auth.remember_basic(&self.endpoint_name());
                    Ok(header)
                }
                None if self.credentials.is_some() => Err(self.unauthorized(
                    &self.endpoint_name(),
                    "the registry wants a username and password, but only a token is configured"
                        .into(),
                )),
                None => {
                    Err(self
                        .unauthorized(&self.endpoint_name(), self.no_credentials_hint(&refusal)))
                }
            };
        }
        Err(self.unauthorized(&self.endpoint_name(), refusal))
    }

    fn no_credentials_hint(&self, refusal: &str) -> String {
        format!(
            "{refusal} (no credentials were sent: the repository may not exist, or it needs \
             an image pull secret or configs.\"{}\".auth in registries.yaml)",
            self.endpoint.host
        )
    }

    /// Docker's token protocol: GET the realm (basic auth with credentials),
    /// or POST an OAuth2 refresh-token grant for an identity token.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        challenge_scope: Option<&str>,
    ) -> Result<String, RegistryError> {
        let realm_url = Url::parse(realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                self.unauthorized(
                    &self.endpoint_name(),
                    format!("the registry named an unusable token server {realm:?}"),
                )
            })?;
        let own_scope = format!("repository:{}:pull", self.repository);
        let mut scopes = vec![own_scope.as_str()];
        if let Some(scope) = challenge_scope.filter(|s| *s != own_scope) {
            scopes.push(scope);
        }
        let server = format!(
            "token server {}",
            realm_url.host_str().map_or_else(
                || realm.to_owned(),
                |h| match realm_url.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_owned(),
                }
            )
        );

        let request = match &self.credentials {
            Some(Credentials::IdentityToken(refresh)) => {
                let scope = scopes.join(" ");
                let mut pairs = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("client_id", CLIENT_ID),
                    ("scope", scope.as_str()),
                ];
                if let Some(service) = service {
                    pairs.push(("service", service));
                }
                self.http
                    .request(Method::POST, realm_url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form_encode(&pairs))
            }
            credentials => {
                let mut url = realm_url.clone();
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for scope in &scopes {
                        query.append_pair("scope", scope);
                    }
                }
                let mut request = self.http.get(url);
                if let Some(header) = credentials.as_ref().and_then(Credentials::basic_header) {
                    request = request.header(AUTHORIZATION, header);
                }
                request
            }
        };

        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if !status.is_success() {
            let message = self.error_message(response).await;
            return Err(match status {
                StatusCode::UNAUTHORIZED if self.credentials.is_none() => {
                    self.unauthorized(&server, self.no_credentials_hint(&message))
                }
                StatusCode::UNAUTHORIZED => self.unauthorized(&server, message),
                StatusCode::FORBIDDEN => RegistryError::Denied {
                    reference: self.reference.clone(),
                    registry: server,
                    message,
                },
                _ => RegistryError::Http {
                    endpoint: server,
                    status: status.as_u16(),
                    message,
                },
            });
        }
        let body = read_limited(response, SMALL_BODY_LIMIT, "token response", &server).await?;
        let (token, lifetime) = serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| {
                self.unauthorized(&server, "the token server answered without a token".into())
            })?;
        tracing::debug!(endpoint = %self.endpoint, repository = %self.repository, lifetime_secs = lifetime.as_secs(), "fetched registry token");
        self.auth
            .store_token(self.token_key(), token.clone(), lifetime);
        Ok(token)
    }

    async fn check_status(
        &self,
        response: reqwest::Response,
        what: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let registry = self.endpoint_name();
        let message = self.error_message(response).await;
        Err(match status {
            StatusCode::UNAUTHORIZED if self.credentials.is_none() => {
                self.unauthorized(&registry, self.no_credentials_hint(&message))
            }
            StatusCode::UNAUTHORIZED => self.unauthorized(&registry, message),
            StatusCode::FORBIDDEN => RegistryError::Denied {
                reference: self.reference.clone(),
                registry,
                message,
            },
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                reference: what.to_owned(),
                registry,
                message,
            },
            _ => RegistryError::Http {
                endpoint: registry,
                status: status.as_u16(),
                message,
            },
        })
    }

    fn unauthorized(&self, registry: &str, message: String) -> RegistryError {
        RegistryError::Unauthorized {
            reference: self.reference.clone(),
            registry: registry.to_owned(),
            message,
        }
    }

    /// The registry's explanation of a failed request.
    async fn error_message(&self, response: reqwest::Response) -> String {
        let status = response.status();
        let body = read_limited(response, SMALL_BODY_LIMIT, "error body", "")
            .await
            .unwrap_or_default();
        describe_error_body(status, &body)
    }

    pub(crate) fn transport_error(&self, error: reqwest::Error) -> RegistryError {
        let endpoint = self.endpoint_name();
        if let Some(message) = tls::describe_tls_failure(&error, &self.endpoint.host) {
            return RegistryError::Tls { endpoint, message };
        }
        if error.is_body() || error.is_decode() {
            return RegistryError::Transfer {
                endpoint,
                source: error,
            };
        }
        RegistryError::Connect {
            endpoint,
            source: error,
        }
    }
}

fn parse_header_challenges(headers: &HeaderMap) -> Vec<Challenge> {
    super::auth::parse_challenges(
        headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v: &HeaderValue| v.to_str().ok()),
    )
}

/// Reads a whole body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: u64,
    what: &str,
    endpoint: &str,
) -> Result<Bytes, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        what: what.to_owned(),
        endpoint: endpoint.to_owned(),
        limit,
    };
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| RegistryError::Transfer {
            endpoint: endpoint.to_owned(),
            source,
        })?
    {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
