//! The root CA publisher (kube-controller-manager's
//! `root-ca-cert-publisher`): every active namespace has the
//! `kube-root-ca.crt` ConfigMap holding the CA that signs the apiserver's
//! serving certificate, restored when it is changed or deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use crate::controllers::serviceaccount::{is_active, namespace_terminating};

/// The ConfigMap's name.
pub const CONFIG_MAP_NAME: &str = "kube-root-ca.crt";
/// The key holding the CA bundle.
pub const CA_KEY: &str = "ca.crt";
/// The annotation describing the ConfigMap.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Its text, as upstream writes it.
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
/// The field manager of the controller's writes.
const FIELD_MANAGER: &str = "kube-controller-manager";
/// Retry delay after a failed sync.
const RETRY: Duration = Duration::from_secs(5);

/// A namespace whose ConfigMap could not be checked or written.
#[derive(Debug, thiserror::Error)]
#[error("publishing {CONFIG_MAP_NAME} in namespace {namespace}: {source}")]
pub struct RootCaError {
    namespace: String,
    source: kube::Error,
}

struct Context {
    client: kube::Client,
    ca_pem: String,
}

/// The ConfigMap's wanted data.
fn wanted_data(ca_pem: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(CA_KEY.to_owned(), ca_pem.to_owned())])
}

/// `existing` with the CA and the description restored, or None when it
/// is already right.
pub fn restored(existing: &ConfigMap, ca_pem: &str) -> Option<ConfigMap> {
    let data = wanted_data(ca_pem);
    let described = existing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .is_some_and(|d| !d.is_empty());
    if existing.data.as_ref() == Some(&data) && described {
        return None;
    }
    let mut fixed = existing.clone();
    fixed.data = Some(data);
    fixed
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.to_owned(), DESCRIPTION.to_owned());
    Some(fixed)
}

/// Runs the publisher until `shutdown` is cancelled; `ca_pem` is the
/// server CA certificate (PEM).
pub async fn run(client: kube::Client, ca_pem: String, shutdown: CancellationToken) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let config_maps: Api<ConfigMap> = Api::all(client.clone());
    let only_ours = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP_NAME}"));
    let context = Arc::new(Context { client, ca_pem });
    Controller::new(namespaces, watcher::Config::default())
        .watches(config_maps, only_ours, |config_map| {
            let namespace = config_map.metadata.namespace?;
            Some(ObjectRef::<Namespace>::new(&namespace))
        })
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(%err, "root-ca-cert-publisher");
            }
        })
        .await;
}

async fn reconcile(
    namespace: Arc<Namespace>,
    context: Arc<Context>,
) -> Result<Action, RootCaError> {
    if !is_active(&namespace) {
        return Ok(Action::await_change());
    }
    let name = namespace.metadata.name.clone().unwrap_or_default();
    let error = |source| RootCaError {
        namespace: name.clone(),
        source,
    };
    let api: Api<ConfigMap> = Api::namespaced(context.client.clone(), &name);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    match api.get_opt(CONFIG_MAP_NAME).await.map_err(error)? {
        None => {
            let config_map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(CONFIG_MAP_NAME.to_owned()),
                    namespace: Some(name.clone()),
                    annotations: Some(BTreeMap::from([(
                        DESCRIPTION_ANNOTATION.to_owned(),
                        DESCRIPTION.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                data: Some(wanted_data(&context.ca_pem)),
                ..ConfigMap::default()
            };
            match api.create(&params, &config_map).await {
                Ok(_) => Ok(Action::await_change()),
                // Made meanwhile: its watch event brings the namespace back.
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Action::await_change()),
                Err(err) if namespace_terminating(&err) => Ok(Action::await_change()),
                Err(err) => Err(error(err)),
            }
        }
        Some(existing) => {
            let Some(fixed) = restored(&existing, &context.ca_pem) else {
                return Ok(Action::await_change());
            };
            api.replace(CONFIG_MAP_NAME, &params, &fixed)
                .await
                .map_err(error)?;
            Ok(Action::await_change())
        }
    }
}

fn error_policy(_namespace: Arc<Namespace>, err: &RootCaError, _context: Arc<Context>) -> Action {
    tracing::warn!(%err, "root-ca-cert-publisher");
    Action::requeue(RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_or_undescribed_config_map_is_restored() {
        let pem = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
        let mut cm = ConfigMap {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    DESCRIPTION_ANNOTATION.to_owned(),
                    DESCRIPTION.to_owned(),
                )])),
                ..Default::default()
            },
            data: Some(wanted_data(pem)),
            ..Default::default()
        };
        assert!(restored(&cm, pem).is_none());
        cm.data = Some(BTreeMap::from([(CA_KEY.to_owned(), "tampered".to_owned())]));
        assert_eq!(restored(&cm, pem).unwrap().data, Some(wanted_data(pem)));
        cm.data = Some(wanted_data(pem));
        cm.metadata.annotations = None;
        let fixed = restored(&cm, pem).unwrap();
        assert_eq!(
            fixed.metadata.annotations.unwrap()[DESCRIPTION_ANNOTATION],
            DESCRIPTION
        );
    }
}
