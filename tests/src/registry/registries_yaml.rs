//! k3s-format `registries.yaml` for a set of test registries.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{RegistryKind, TestRegistry};
use crate::error::{HarnessError, Result};

#[derive(Serialize)]
struct RegistriesYaml {
    mirrors: BTreeMap<String, Mirror>,
    configs: BTreeMap<String, HostConfig>,
}

#[derive(Serialize)]
struct Mirror {
    endpoint: Vec<String>,
}

#[derive(Serialize, Default)]
struct HostConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<Auth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<Tls>,
}

#[derive(Serialize)]
struct Auth {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct Tls {
    ca_file: String,
}

/// Plain-HTTP registries become mirrors of themselves with an `http://`
/// endpoint (how k3s marks a registry as plain HTTP); credentials and CA
/// files go under `configs`, keyed by `127.0.0.1:PORT`.
pub(super) fn render(registries: &[&TestRegistry]) -> Result<String> {
    let mut yaml = RegistriesYaml {
        mirrors: BTreeMap::new(),
        configs: BTreeMap::new(),
    };
    for registry in registries {
        let host = registry.host();
        if registry.kind() != RegistryKind::Tls {
            yaml.mirrors.insert(
                host.clone(),
                Mirror {
                    endpoint: vec![registry.url()],
                },
            );
        }
        let config = HostConfig {
            auth: registry.credentials().map(|(username, password)| Auth {
                username: username.to_string(),
                password: password.to_string(),
            }),
            tls: registry.ca_pem_path().map(|ca| Tls {
                ca_file: ca.display().to_string(),
            }),
        };
        if config.auth.is_some() || config.tls.is_some() {
            yaml.configs.insert(host, config);
        }
    }
    serde_yaml_ng::to_string(&yaml)
        .map_err(|e| HarnessError::InvalidContent(format!("registries.yaml: {e}")))
}
