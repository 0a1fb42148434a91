//! The ServiceAccount controller (kube-controller-manager's
//! `serviceaccount-controller`): every active namespace has a `default`
//! ServiceAccount, made again when it is deleted.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

/// The ServiceAccount every namespace gets.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The field manager of the controller's writes.
const FIELD_MANAGER: &str = "kube-controller-manager";
/// Retry delay after a failed sync.
const RETRY: Duration = Duration::from_secs(5);

/// A namespace whose ServiceAccount could not be checked or made.
#[derive(Debug, thiserror::Error)]
#[error("ensuring the default service account in namespace {namespace}: {source}")]
pub struct ServiceAccountError {
    namespace: String,
    source: kube::Error,
}

/// Whether the namespace takes new content (phase Active, not deleted).
pub fn is_active(namespace: &Namespace) -> bool {
    namespace.metadata.deletion_timestamp.is_none()
        && namespace
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|phase| phase == "Active")
}

/// Whether the apiserver refused a create because the namespace is going.
pub fn namespace_terminating(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status)
        if status.code == 404
            || (status.code == 403 && status.message.contains("because it is being terminated")))
}

/// Runs the controller until `shutdown` is cancelled.
pub async fn run(client: kube::Client, shutdown: CancellationToken) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    let only_default =
        watcher::Config::default().fields(&format!("metadata.name={DEFAULT_SERVICE_ACCOUNT}"));
    Controller::new(namespaces, watcher::Config::default())
        .watches(accounts, only_default, |account| {
            let namespace = account.metadata.namespace?;
            Some(ObjectRef::<Namespace>::new(&namespace))
        })
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(%err, "serviceaccount controller");
            }
        })
        .await;
}

async fn reconcile(
    namespace: Arc<Namespace>,
    client: Arc<kube::Client>,
) -> Result<Action, ServiceAccountError> {
    if !is_active(&namespace) {
        return Ok(Action::await_change());
    }
    let name = namespace.metadata.name.clone().unwrap_or_default();
    let error = |source| ServiceAccountError {
        namespace: name.clone(),
        source,
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.as_ref().clone(), &name);
    if api
        .get_metadata_opt(DEFAULT_SERVICE_ACCOUNT)
        .await
        .map_err(error)?
        .is_some()
    {
        return Ok(Action::await_change());
    }
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT_SERVICE_ACCOUNT.to_owned()),
            namespace: Some(name.clone()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    match api.create(&params, &account).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Action::await_change()),
        Err(err) if namespace_terminating(&err) => Ok(Action::await_change()),
        Err(err) => Err(error(err)),
    }
}

fn error_policy(
    _namespace: Arc<Namespace>,
    err: &ServiceAccountError,
    _client: Arc<kube::Client>,
) -> Action {
    tracing::warn!(%err, "serviceaccount controller");
    Action::requeue(RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;

    #[test]
    fn terminating_namespaces_get_nothing_new() {
        let mut ns = Namespace::default();
        assert!(is_active(&ns));
        ns.status = Some(NamespaceStatus {
            phase: Some("Terminating".into()),
            ..Default::default()
        });
        assert!(!is_active(&ns));
    }
}
