//! A pod's volumes under `<root_dir>/pods/<uid>/volumes/<plugin>/<name>`
//! (kubelet's layout: `kubernetes.io~empty-dir`, `kubernetes.io~configmap`,
//! `kubernetes.io~secret`, `kubernetes.io~downward-api`,
//! `kubernetes.io~projected`), and the mounts a container gets from its
//! `volumeMounts`. API-data volumes are rewritten periodically, so
//! updates to ConfigMaps and Secrets reach running containers.
//!
//! # Layout
//!
//! - [`atomic_writer`]: the `..data` symlink swap.
//! - [`api_data`]: files of configMap, secret and downwardAPI sources.
//! - [`token`]: service account tokens (TokenRequest).
//! - [`empty_dir`], [`host_path`]: local volumes.
//! - [`mounts`]: tmpfs mounts and teardown.
//! - [`subpath`]: `subPath` and `subPathExpr`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Volume};
use kube::Api;

use super::expand;
use super::resources::NodeCapacity;

mod api_data;
mod atomic_writer;
mod empty_dir;
mod host_path;
pub(crate) mod mounts;
mod subpath;
mod token;

use atomic_writer::Payload;

/// How often API-data volumes are rewritten from their objects.
const REFRESH: Duration = Duration::from_secs(30);

/// Why a volume could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
pub struct VolumeError {
    /// The volume's name.
    pub volume: String,
    /// What went wrong.
    pub message: String,
    /// The TokenRequest API is not served: retrying will not help until
    /// it is.
    pub token_api_missing: bool,
}

/// A pod's volumes.
#[derive(Debug)]
pub struct PodVolumes {
    dir: PathBuf,
    paths: HashMap<String, PathBuf>,
    read_only: HashSet<String>,
    tokens: token::Tokens,
    refreshed: Option<Instant>,
    last_error: Option<VolumeError>,
}

/// What volume setup reads from.
#[derive(Clone, Copy)]
pub struct VolumeContext<'a> {
    /// The apiserver.
    pub client: &'a kube::Client,
    /// The node's capacity (downward API resource fields).
    pub node: &'a NodeCapacity,
}

impl std::fmt::Debug for VolumeContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeContext")
            .field("node", self.node)
            .finish_non_exhaustive()
    }
}

/// `<root_dir>/pods/<uid>`.
pub fn pod_dir(root_dir: &Path, uid: &str) -> PathBuf {
    root_dir.join("pods").join(uid)
}

/// Unmounts a pod's tmpfs volumes and removes its directory (kubelet's
/// orphaned-pod cleanup). The directory stays if anything is still
/// mounted below it.
pub fn teardown(pod_dir: &Path) -> Result<(), String> {
    if !pod_dir.exists() {
        return Ok(());
    }
    mounts::unmount_below(pod_dir)
        .map_err(|e| format!("unmounting under {}: {e}", pod_dir.display()))?;
    if mounts::has_mounts_below(pod_dir) {
        return Err(format!(
            "{} still has mounts below it; not removing it",
            pod_dir.display()
        ));
    }
    std::fs::remove_dir_all(pod_dir).map_err(|e| format!("removing {}: {e}", pod_dir.display()))
}

fn kind_of(volume: &Volume) -> String {
    serde_json::to_value(volume)
        .ok()
        .and_then(|v| {
            v.as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        })
        .unwrap_or_else(|| "unknown".into())
}

async fn get_opt<K>(client: &kube::Client, namespace: &str, name: &str) -> Result<Option<K>, String>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())
}

impl PodVolumes {
    /// The volumes of the pod with `uid` under `root_dir`.
    pub fn new(root_dir: &Path, uid: &str) -> Self {
        Self {
            dir: pod_dir(root_dir, uid),
            paths: HashMap::new(),
            read_only: HashSet::new(),
            tokens: token::Tokens::default(),
            refreshed: None,
            last_error: None,
        }
    }

    /// The pod's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn plugin_dir(&self, plugin: &str, name: &str) -> PathBuf {
        self.dir.join("volumes").join(plugin).join(name)
    }

    /// Whether every volume was set up at least once.
    pub fn ready(&self) -> bool {
        self.refreshed.is_some()
    }

    /// Why the last setup failed, unless it succeeded since.
    pub fn last_error(&self) -> Option<&VolumeError> {
        self.last_error.as_ref()
    }

    /// Whether [`PodVolumes::setup`] would do anything now.
    pub fn due(&self) -> bool {
        self.refreshed.is_none_or(|at| at.elapsed() >= REFRESH)
            || self.tokens.renewal_due(SystemTime::now())
    }

    /// When the next refresh is due.
    pub fn next_refresh(&self) -> Option<Instant> {
        self.refreshed.map(|at| at + REFRESH)
    }

    /// Sets up (or refreshes) every volume of `pod`.
    pub async fn setup(&mut self, ctx: VolumeContext<'_>, pod: &Pod) -> Result<(), VolumeError> {
        if !self.due() {
            return Ok(());
        }
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        for volume in &volumes {
            if let Err((message, token_api_missing)) = self.setup_one(ctx, pod, volume).await {
                let err = VolumeError {
                    volume: volume.name.clone(),
                    message,
                    token_api_missing,
                };
                self.last_error = Some(err.clone());
                return Err(err);
            }
        }
        self.refreshed = Some(Instant::now());
        self.last_error = None;
        Ok(())
    }

    async fn setup_one(
        &mut self,
        ctx: VolumeContext<'_>,
        pod: &Pod,
        volume: &Volume,
    ) -> Result<(), (String, bool)> {
        let plain = |message: String| (message, false);
        let name = &volume.name;
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        if let Some(source) = &volume.empty_dir {
            let dir = self.plugin_dir("kubernetes.io~empty-dir", name);
            if !self.paths.contains_key(name) {
                empty_dir::setup(&dir, source).map_err(plain)?;
            }
            self.paths.insert(name.clone(), dir);
        } else if let Some(source) = &volume.host_path {
            let path = PathBuf::from(&source.path);
            if !self.paths.contains_key(name) {
                host_path::check(&path, source.type_.as_deref().unwrap_or_default())
                    .map_err(plain)?;
            }
            self.paths.insert(name.clone(), path);
        } else if let Some(source) = &volume.config_map {
            let object: Option<ConfigMap> = get_opt(ctx.client, namespace, &source.name)
                .await
                .map_err(plain)?;
            let payload = api_data::config_map(
                object.as_ref(),
                &source.name,
                source.items.as_deref(),
                source.default_mode.unwrap_or(api_data::DEFAULT_MODE),
                source.optional.unwrap_or(false),
            )
            .map_err(plain)?;
            self.write(name, "kubernetes.io~configmap", &payload, false)
                .map_err(plain)?;
        } else if let Some(source) = &volume.secret {
            let secret_name = source.secret_name.clone().unwrap_or_default();
            let object: Option<Secret> = get_opt(ctx.client, namespace, &secret_name)
                .await
                .map_err(plain)?;
            let payload = api_data::secret(
                object.as_ref(),
                &secret_name,
                source.items.as_deref(),
                source.default_mode.unwrap_or(api_data::DEFAULT_MODE),
                source.optional.unwrap_or(false),
            )
            .map_err(plain)?;
            self.write(name, "kubernetes.io~secret", &payload, true)
                .map_err(plain)?;
        } else if let Some(source) = &volume.downward_api {
            let payload = api_data::downward_api(
                pod,
                source.items.as_deref().unwrap_or_default(),
                source.default_mode.unwrap_or(api_data::DEFAULT_MODE),
                ctx.node,
            )
            .map_err(plain)?;
            self.write(name, "kubernetes.io~downward-api", &payload, false)
                .map_err(plain)?;
        } else if let Some(source) = &volume.projected {
            let payload = self.projected(ctx, pod, source).await?;
            self.write(name, "kubernetes.io~projected", &payload, true)
                .map_err(plain)?;
        } else {
            return Err(plain(format!(
                "volume {name:?} has a type this kubelet does not support: {}",
                kind_of(volume)
            )));
        }
        Ok(())
    }

    async fn projected(
        &mut self,
        ctx: VolumeContext<'_>,
        pod: &Pod,
        source: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
    ) -> Result<Payload, (String, bool)> {
        let plain = |message: String| (message, false);
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let default_mode = source.default_mode.unwrap_or(api_data::DEFAULT_MODE);
        let mut payload = Payload::new();
        for projection in source.sources.iter().flatten() {
            let part = if let Some(cm) = &projection.config_map {
                let object: Option<ConfigMap> = get_opt(ctx.client, namespace, &cm.name)
                    .await
                    .map_err(plain)?;
                api_data::config_map(
                    object.as_ref(),
                    &cm.name,
                    cm.items.as_deref(),
                    default_mode,
                    cm.optional.unwrap_or(false),
                )
                .map_err(plain)?
            } else if let Some(secret) = &projection.secret {
                let object: Option<Secret> = get_opt(ctx.client, namespace, &secret.name)
                    .await
                    .map_err(plain)?;
                api_data::secret(
                    object.as_ref(),
                    &secret.name,
                    secret.items.as_deref(),
                    default_mode,
                    secret.optional.unwrap_or(false),
                )
                .map_err(plain)?
            } else if let Some(downward) = &projection.downward_api {
                api_data::downward_api(
                    pod,
                    downward.items.as_deref().unwrap_or_default(),
                    default_mode,
                    ctx.node,
                )
                .map_err(plain)?
            } else if let Some(sa) = &projection.service_account_token {
                let token = self.tokens.get(ctx.client, pod, sa).await.map_err(|e| {
                    (
                        e.to_string(),
                        matches!(e, token::TokenError::NotServed { .. }),
                    )
                })?;
                let mut part = Payload::new();
                part.insert(
                    sa.path.clone(),
                    atomic_writer::FileProjection {
                        data: token.into_bytes(),
                        mode: u32::try_from(default_mode).unwrap_or(0o644) & 0o7777,
                    },
                );
                part
            } else if projection.cluster_trust_bundle.is_some() {
                return Err(plain(
                    "clusterTrustBundle projections are not supported by this kubelet".into(),
                ));
            } else {
                continue;
            };
            payload.extend(part);
        }
        Ok(payload)
    }

    fn write(
        &mut self,
        name: &str,
        plugin: &str,
        payload: &Payload,
        in_memory: bool,
    ) -> Result<(), String> {
        let dir = self.plugin_dir(plugin, name);
        if in_memory {
            mounts::ensure_tmpfs(&dir, None)
                .map_err(|e| format!("mounting a tmpfs on {}: {e}", dir.display()))?;
        }
        atomic_writer::write(&dir, payload).map_err(|e| e.to_string())?;
        self.paths.insert(name.to_owned(), dir);
        self.read_only.insert(name.to_owned());
        Ok(())
    }

    /// The CRI mounts of `container`'s `volumeMounts`; `env` expands
    /// `subPathExpr`.
    pub fn container_mounts(
        &self,
        container: &Container,
        env: &[(String, String)],
    ) -> Result<Vec<cri::Mount>, String> {
        let mut mounts = Vec::new();
        for vm in container.volume_mounts.iter().flatten() {
            let base = self.paths.get(&vm.name).ok_or_else(|| {
                format!(
                    "cannot find volume {:?} to mount into container {:?}",
                    vm.name, container.name
                )
            })?;
            let sub = match vm.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
                Some(expr) => expand::expand(expr, |name| expand::find(env, name)),
                None => vm.sub_path.clone().unwrap_or_default(),
            };
            let host_path = if sub.is_empty() {
                base.clone()
            } else {
                subpath::resolve(base, &sub)?
            };
            let read_only = vm.read_only.unwrap_or(false) || self.read_only.contains(&vm.name);
            let propagation = match vm.mount_propagation.as_deref() {
                Some("HostToContainer") => cri::MountPropagation::PropagationHostToContainer,
                Some("Bidirectional") => cri::MountPropagation::PropagationBidirectional,
                _ => cri::MountPropagation::PropagationPrivate,
            };
            mounts.push(cri::Mount {
                container_path: vm.mount_path.clone(),
                host_path: host_path.display().to_string(),
                readonly: read_only,
                propagation: propagation as i32,
                recursive_read_only: read_only
                    && vm.recursive_read_only.as_deref() == Some("Enabled"),
                ..Default::default()
            });
        }
        Ok(mounts)
    }
}
