//! The ServiceAccount admission step, as kube-apiserver's plugin: a new pod
//! runs as a ServiceAccount that must exist (except `default`, which the
//! controller-manager makes moments after a namespace appears: a pod
//! created in that moment is admitted rather than refused), and unless automounting is
//! turned off (on the pod, else on the ServiceAccount) it gets the
//! `kube-api-access-<suffix>` projected volume (a bound token, the cluster
//! CA and its namespace) mounted read-only in every container at
//! `/var/run/secrets/kubernetes.io/serviceaccount`.

use serde_json::{Value, json};

use super::api::Api;
use super::error::ApiError;
use super::object::generate_name;

/// Where containers find the ServiceAccount's credentials.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The token lifetime the projected volume asks for (kube-apiserver's
/// 3607 s: an hour plus a little, so clients see it is bound).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// Admits a new pod in `namespace`.
pub fn admit_pod(api: &Api, namespace: &str, pod: &mut Value) -> Result<(), ApiError> {
    if is_mirror_pod(pod) {
        return Ok(());
    }
    let account = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|name| !name.is_empty())
        .unwrap_or("default")
        .to_owned();
    let service_account = match api.resources.find("", "v1", "serviceaccounts") {
        Some(rt) => api.store.try_get(&rt, namespace, &account, 0)?,
        None => None,
    };
    let service_account = match service_account {
        Some(service_account) => service_account,
        None if account == "default" => json!({}),
        None => {
            return Err(ApiError::forbidden(format!(
                "error looking up service account {namespace}/{account}: serviceaccount \"{account}\" not found"
            )));
        }
    };
    if automounts(pod, &service_account) {
        mount_token_volume(pod);
    }
    Ok(())
}

fn is_mirror_pod(pod: &Value) -> bool {
    pod["metadata"]["annotations"]
        .get("kubernetes.io/config.mirror")
        .is_some()
}

/// The pod's own setting wins over the ServiceAccount's; both default to
/// true.
fn automounts(pod: &Value, service_account: &Value) -> bool {
    pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| service_account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true)
}

/// Adds the projected volume (unless a container already mounts something
/// at [`MOUNT_PATH`]... then only the others get it) and its mounts.
fn mount_token_volume(pod: &mut Value) {
    let spec = &mut pod["spec"];
    let existing = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|v| {
            v["name"]
                .as_str()
                .filter(|name| name.starts_with("kube-api-access-") && v.get("projected").is_some())
                .map(str::to_owned)
        });
    let name = match existing {
        Some(name) => name,
        None => {
            let name = generate_name("kube-api-access-");
            if !spec["volumes"].is_array() {
                spec["volumes"] = json!([]);
            }
            if let Some(volumes) = spec["volumes"].as_array_mut() {
                volumes.push(token_volume(&name));
            }
            name
        }
    };
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(containers) = spec[list].as_array_mut() else {
            continue;
        };
        for container in containers {
            let mounted = container["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"].as_str() == Some(MOUNT_PATH));
            if mounted {
                continue;
            }
            if !container["volumeMounts"].is_array() {
                container["volumeMounts"] = json!([]);
            }
            if let Some(mounts) = container["volumeMounts"].as_array_mut() {
                mounts.push(json!({ "name": name, "readOnly": true, "mountPath": MOUNT_PATH }));
            }
        }
    }
}

/// The `kube-api-access-*` volume as kube-apiserver 1.32 writes it.
fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "sources": [
                { "serviceAccountToken": { "expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token" } },
                { "configMap": { "name": "kube-root-ca.crt", "items": [ { "key": "ca.crt", "path": "ca.crt" } ] } },
                { "downwardAPI": { "items": [ { "path": "namespace", "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.namespace" } } ] } }
            ],
            "defaultMode": 420
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_mounts_one_projected_volume() {
        let mut pod = json!({
            "metadata": {},
            "spec": {
                "initContainers": [ { "name": "init" } ],
                "containers": [
                    { "name": "a" },
                    { "name": "b", "volumeMounts": [ { "name": "own", "mountPath": MOUNT_PATH } ] }
                ]
            }
        });
        mount_token_volume(&mut pod);
        let volumes = pod["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 1);
        let name = volumes[0]["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(
            volumes[0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(
            pod["spec"]["initContainers"][0]["volumeMounts"][0]["name"],
            name
        );
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"][0]["readOnly"],
            true
        );
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1,
            "a container mounting its own credentials keeps them"
        );
    }

    #[test]
    fn the_pod_setting_wins_over_the_service_account() {
        let pod = json!({ "spec": { "automountServiceAccountToken": true } });
        let sa = json!({ "automountServiceAccountToken": false });
        assert!(automounts(&pod, &sa));
        assert!(!automounts(&json!({ "spec": {} }), &sa));
        assert!(automounts(&json!({ "spec": {} }), &json!({})));
    }
}
