//! A container's environment, as kubelet's `makeEnvironmentVariables`
//! builds it: `envFrom` sources first, then `env` in order, each value
//! `$(VAR)`-expanded against what came before; values from ConfigMaps,
//! Secrets, pod fields and resource fields, over the Service variables
//! (`KUBERNETES_SERVICE_HOST`, `WEB_SERVICE_HOST`, ...; `service_env.rs`),
//! which `env` and `envFrom` override and `$(VAR)` may use.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

use super::expand;
use super::fieldpath::{self, PodAddresses};
use super::resources::NodeCapacity;

/// What the environment is resolved from.
#[derive(Clone, Copy)]
pub struct EnvContext<'a> {
    /// The apiserver.
    pub client: &'a kube::Client,
    /// The pod's addresses.
    pub addresses: &'a PodAddresses,
    /// The node's capacity (unset limits).
    pub node: &'a NodeCapacity,
}

impl std::fmt::Debug for EnvContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvContext")
            .field("addresses", self.addresses)
            .finish_non_exhaustive()
    }
}

/// The resolved environment and what was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// (name, value), each name once, the last definition winning.
    pub vars: Vec<(String, String)>,
    /// Warnings for events (`InvalidEnvironmentVariableNames`).
    pub warnings: Vec<String>,
}

/// Whether `name` is a valid environment variable name
/// (`[-._a-zA-Z][-._a-zA-Z0-9]*`).
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    let valid = |c: char, first: bool| {
        c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_') || (!first && c.is_ascii_digit())
    };
    chars.next().is_some_and(|c| valid(c, true)) && chars.all(|c| valid(c, false))
}

fn set(vars: &mut Vec<(String, String)>, name: String, value: String) {
    match vars.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name, value)),
    }
}

/// Objects read once per resolution.
#[derive(Default)]
struct Objects {
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl Objects {
    async fn config_map(
        &mut self,
        client: &kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Option<&ConfigMap>, String> {
        if !self.config_maps.contains_key(name) {
            let found = Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?;
            self.config_maps.insert(name.to_owned(), found);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    async fn secret(
        &mut self,
        client: &kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Option<&Secret>, String> {
        if !self.secrets.contains_key(name) {
            let found = Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?;
            self.secrets.insert(name.to_owned(), found);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

fn config_map_data(cm: &ConfigMap) -> Vec<(String, String)> {
    cm.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn secret_data(secret: &Secret) -> Vec<(String, String)> {
    let mut data: Vec<(String, String)> = secret
        .string_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in secret.data.iter().flatten() {
        set(
            &mut data,
            k.clone(),
            String::from_utf8_lossy(&v.0).into_owned(),
        );
    }
    data
}

/// The environment of `container` in `pod`; the error is the message of
/// a CreateContainerConfigError.
pub async fn container_env(
    ctx: EnvContext<'_>,
    pod: &Pod,
    container: &Container,
) -> Result<Environment, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut objects = Objects::default();
    let mut env = Environment {
        vars: super::service_env::service_env(ctx.client, pod).await?,
        warnings: Vec::new(),
    };
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let (kind, name, data) = if let Some(r) = &source.config_map_ref {
            let found = objects.config_map(ctx.client, namespace, &r.name).await?;
            match found {
                Some(cm) => ("configMap", r.name.clone(), config_map_data(cm)),
                None if r.optional.unwrap_or(false) => continue,
                None => return Err(format!("configmap {:?} not found", r.name)),
            }
        } else if let Some(r) = &source.secret_ref {
            let found = objects.secret(ctx.client, namespace, &r.name).await?;
            match found {
                Some(secret) => ("secret", r.name.clone(), secret_data(secret)),
                None if r.optional.unwrap_or(false) => continue,
                None => return Err(format!("secret {:?} not found", r.name)),
            }
        } else {
            continue;
        };
        let mut invalid = Vec::new();
        for (key, value) in data {
            let full = format!("{prefix}{key}");
            if is_env_var_name(&full) {
                set(&mut env.vars, full, value);
            } else {
                invalid.push(full);
            }
        }
        if !invalid.is_empty() {
            invalid.sort();
            env.warnings.push(format!(
                "Keys [{}] from the EnvFrom {kind} {namespace}/{name} were skipped since they are considered invalid environment variable names.",
                invalid.join(", ")
            ));
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => {
                let raw = var.value.clone().unwrap_or_default();
                expand::expand(&raw, |name| expand::find(&env.vars, name))
            }
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match objects.config_map(ctx.client, namespace, &r.name).await? {
                        None if optional => continue,
                        None => return Err(format!("configmap {:?} not found", r.name)),
                        Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in ConfigMap {namespace}/{}",
                                    r.key, r.name
                                ));
                            }
                        },
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match objects.secret(ctx.client, namespace, &r.name).await? {
                        None if optional => continue,
                        None => return Err(format!("secret {:?} not found", r.name)),
                        Some(secret) => {
                            match secret_data(secret).into_iter().find(|(k, _)| *k == r.key) {
                                Some((_, v)) => v,
                                None if optional => continue,
                                None => {
                                    return Err(format!(
                                        "couldn't find key {} in Secret {namespace}/{}",
                                        r.key, r.name
                                    ));
                                }
                            }
                        }
                    }
                } else if let Some(field) = &from.field_ref {
                    fieldpath::pod_field(pod, &field.field_path, ctx.addresses, true)
                        .map_err(|e| e.to_string())?
                } else if let Some(resource) = &from.resource_field_ref {
                    let name = resource
                        .container_name
                        .as_deref()
                        .filter(|n| !n.is_empty())
                        .unwrap_or(&container.name);
                    let divisor = resource.divisor.as_ref().map(|d| d.0.as_str());
                    fieldpath::resource_field(pod, name, &resource.resource, divisor, ctx.node)
                        .map_err(|e| e.to_string())?
                } else {
                    String::new()
                }
            }
        };
        set(&mut env.vars, var.name.clone(), value);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names() {
        for ok in ["A", "a_b", "_x", "x.y", "x-1", "-lead"] {
            assert!(is_env_var_name(ok), "{ok}");
        }
        for bad in ["", "1x", "a b", "a=b", "ä"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
    }

    #[test]
    fn later_definitions_replace_earlier_ones_in_place() {
        let mut vars = Vec::new();
        set(&mut vars, "A".into(), "1".into());
        set(&mut vars, "B".into(), "2".into());
        set(&mut vars, "A".into(), "3".into());
        assert_eq!(
            vars,
            [("A".to_string(), "3".to_string()), ("B".into(), "2".into())]
        );
    }
}
