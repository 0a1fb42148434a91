//! One resource request as the verbs see it, and what they answer.

use std::sync::Arc;

use hyper::StatusCode;
use hyper::header::HeaderMap;
use serde_json::Value;

use super::auth::User;
use super::body::Wanted;
use super::request::{Query, RequestInfo};
use super::resources::ResourceType;

/// A resource request.
#[derive(Debug, Clone)]
pub struct Call {
    /// Verb, group, version, namespace, resource, name, subresource.
    pub info: RequestInfo,
    /// Query parameters.
    pub query: Query,
    /// Request headers.
    pub headers: HeaderMap,
    /// Who asks.
    pub user: User,
    /// The resource type.
    pub rt: Arc<ResourceType>,
    /// What the response should be.
    pub wanted: Wanted,
}

impl Call {
    /// The namespace from the path.
    pub fn namespace(&self) -> &str {
        &self.info.namespace
    }

    /// The object name from the path.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Whether `dryRun=All` was asked.
    pub fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|v| v == "All")
    }

    /// The field manager: the `fieldManager` parameter, else the user
    /// agent's program name (`kubectl-client-side-apply` and the like come
    /// from kubectl as `fieldManager`).
    pub fn field_manager(&self) -> String {
        let agent = self
            .headers
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        super::apply::field_manager_for(self.query.get("fieldManager"), agent)
    }
}

/// A verb's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub code: StatusCode,
    /// The body.
    pub body: Value,
    /// `Warning` headers (unknown fields under fieldValidation=Warn, ...).
    pub warnings: Vec<String>,
    /// The body as JSON bytes already, when it was assembled without
    /// building `body` (plain lists); `body` is then `Null`.
    pub raw: Option<Vec<u8>>,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: Value) -> Self {
        Self::with(StatusCode::OK, body)
    }

    /// `code` with `body`.
    pub fn with(code: StatusCode, body: Value) -> Self {
        Self {
            code,
            body,
            warnings: Vec::new(),
            raw: None,
        }
    }
}
