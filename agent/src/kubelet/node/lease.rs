//! The node's heartbeat: the Lease `kube-node-lease/<node>`, renewed every
//! 10 s with a 40 s duration and owned by the Node, as kubelet's lease
//! controller keeps it. The node lifecycle controller marks the node
//! NotReady (Unknown) when renewals stop.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use super::NodeError;

/// The namespace node Leases live in.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How long a Lease holds (`--node-lease-duration-seconds`).
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// How often the Lease is renewed: a quarter of its duration.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// The first wait after a failed renewal, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between failed renewals (kubelet's 7 s).
const MAX_BACKOFF: Duration = Duration::from_secs(7);

/// The Lease as renewed at `now`: `base` (the stored Lease, or nothing)
/// with the holder, duration and renew time set, and owned by the Node
/// once its UID is known.
pub fn renewed(base: Option<Lease>, node_name: &str, node_uid: &str, now: Timestamp) -> Lease {
    let mut lease = base.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(node_name.to_owned()),
            namespace: Some(LEASE_NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(node_name.to_owned());
    spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
    spec.renew_time = Some(MicroTime(now));
    let owners = lease.metadata.owner_references.get_or_insert_with(Vec::new);
    if owners.is_empty() && !node_uid.is_empty() {
        owners.push(OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node_name.to_owned(),
            uid: node_uid.to_owned(),
            ..OwnerReference::default()
        });
    }
    lease
}

/// Renews the node's Lease until `shutdown`.
pub async fn run(
    client: kube::Client,
    node_name: String,
    node_uid: String,
    shutdown: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let mut latest: Option<Lease> = None;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let wait = match renew(&api, &node_name, &node_uid, &mut latest).await {
            Ok(()) => {
                backoff = FIRST_BACKOFF;
                RENEW_INTERVAL
            }
            Err(err) => {
                tracing::warn!(node = %node_name, %err, "renewing the node lease");
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One renewal: an update of the Lease last seen (read or created when
/// there is none); a failure forgets it, so the next attempt reads again.
async fn renew(
    api: &Api<Lease>,
    node_name: &str,
    node_uid: &str,
    latest: &mut Option<Lease>,
) -> Result<(), NodeError> {
    let api_error = |what: &str| {
        let what = format!("{what} lease {LEASE_NAMESPACE}/{node_name}");
        move |source| NodeError::Api { what, source }
    };
    let base = match latest.take() {
        Some(lease) => lease,
        None => match api.get_opt(node_name).await.map_err(api_error("reading"))? {
            Some(lease) => lease,
            None => {
                let lease = renewed(None, node_name, node_uid, Timestamp::now());
                let created = api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map_err(api_error("creating"))?;
                *latest = Some(created);
                return Ok(());
            }
        },
    };
    let lease = renewed(Some(base), node_name, node_uid, Timestamp::now());
    let updated = api
        .replace(node_name, &PostParams::default(), &lease)
        .await
        .map_err(api_error("renewing"))?;
    *latest = Some(updated);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_lease_is_held_by_the_node_and_owned_by_it() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let lease = renewed(None, "n1", "uid-1", now);
        assert_eq!(lease.metadata.namespace.as_deref(), Some("kube-node-lease"));
        let spec = lease.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        let owner = &lease.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "uid-1"));

        let later = Timestamp::from_second(1_700_000_010).unwrap();
        let again = renewed(Some(lease), "n1", "uid-2", later);
        assert_eq!(
            again.spec.as_ref().unwrap().renew_time,
            Some(MicroTime(later))
        );
        let owners = again.metadata.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, "uid-1", "existing owners are kept");
    }
}
