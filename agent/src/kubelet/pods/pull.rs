//! Making sure a container's image is on the node, as kubelet's image
//! manager does: the pull policy (`Always`, `IfNotPresent`, `Never`;
//! `Always` by default for `:latest`), pull secrets as CRI credentials,
//! per-pod back-off after a failed pull, and kubelet's events.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::Api;

use super::backoff::Backoff;
use super::credentials;
use super::cri::{Cri, go_error};
use super::events::{Recorder, container_ref, reason};
use super::status::Waiting;

/// Pulls images for pods.
pub struct ImagePuller {
    cri: Cri,
    client: kube::Client,
    events: Recorder,
    backoff: Mutex<Backoff>,
    /// Pulls run one at a time, as kubelet's default
    /// `serializeImagePulls: true` has them.
    serial: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ImagePuller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagePuller").finish_non_exhaustive()
    }
}

/// The pull policy of `container`, defaulted as the apiserver does.
pub fn pull_policy(container: &Container) -> &str {
    if let Some(policy) = container
        .image_pull_policy
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        return policy;
    }
    let image = container.image.as_deref().unwrap_or_default();
    let name = image.split('@').next().unwrap_or(image);
    let tag = name
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map(|(_, tag)| tag);
    if image.contains('@') {
        "IfNotPresent"
    } else {
        match tag {
            None | Some("latest") => "Always",
            Some(_) => "IfNotPresent",
        }
    }
}

/// Whether an image must be pulled under `policy`.
pub fn should_pull(policy: &str, present: bool) -> bool {
    match policy {
        "Always" => true,
        "Never" => false,
        _ => !present,
    }
}

/// A Go `time.Duration` as `String()` prints it, truncated to milliseconds.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let seconds = ms / 1000 % 60;
    let frac = ms % 1000;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if frac == 0 {
        out.push_str(&format!("{seconds}s"));
    } else {
        let frac = format!("{frac:03}");
        out.push_str(&format!("{seconds}.{}s", frac.trim_end_matches('0')));
    }
    out
}

impl ImagePuller {
    /// A puller over `cri`.
    pub fn new(cri: Cri, client: kube::Client, events: Recorder) -> Self {
        Self {
            cri,
            client,
            events,
            backoff: Mutex::new(Backoff::default()),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes sure `container`'s image is present; its image reference
    /// (ID) for CreateContainer, or why the container must wait.
    pub async fn ensure(
        &self,
        pod: &Pod,
        container: &Container,
        sandbox_config: &cri::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String, Waiting> {
        let object = container_ref(pod, &container.name);
        let image = container.image.clone().unwrap_or_default();
        if image.parse::<skiff_images::reference::Reference>().is_err() {
            let message = format!(
                "Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: invalid reference format"
            );
            self.events
                .warning(&object, reason::INSPECT_FAILED, message.clone());
            return Err(Waiting::new("InvalidImageName", message));
        }
        let spec = cri::ImageSpec {
            image: image.clone(),
            runtime_handler: runtime_handler.to_owned(),
            ..Default::default()
        };
        let present = match self.cri.image_status(spec.clone()).await {
            Ok(found) => found,
            Err(status) => {
                let message = format!("Failed to inspect image {image:?}: {}", go_error(&status));
                self.events
                    .warning(&object, reason::INSPECT_FAILED, message.clone());
                return Err(Waiting::new("ImageInspectError", message));
            }
        };
        let policy = pull_policy(container);
        if !should_pull(policy, present.is_some()) {
            return match present {
                Some(found) => {
                    self.events.normal(
                        &object,
                        reason::PULLED,
                        format!("Container image {image:?} already present on machine"),
                    );
                    Ok(found.id)
                }
                None => {
                    let message = format!(
                        "Container image {image:?} is not present with pull policy of Never"
                    );
                    self.events
                        .warning(&object, reason::ERR_IMAGE_NEVER_PULL, message.clone());
                    Err(Waiting::new("ErrImageNeverPull", message))
                }
            };
        }
        let key = format!(
            "{}_{image}",
            pod.metadata.uid.as_deref().unwrap_or_default()
        );
        if self
            .backoff()
            .is_in_backoff_since_update(&key, SystemTime::now())
        {
            let message = format!("Back-off pulling image {image:?}");
            self.events
                .normal(&object, reason::BACK_OFF, message.clone());
            return Err(Waiting::new("ImagePullBackOff", message));
        }
        self.events
            .normal(&object, reason::PULLING, format!("Pulling image {image:?}"));
        let started = Instant::now();
        match self.pull(pod, &spec, sandbox_config).await {
            Ok(image_ref) => {
                let took = go_duration(started.elapsed());
                let size = self
                    .cri
                    .image_status(cri::ImageSpec {
                        image: image_ref.clone(),
                        ..Default::default()
                    })
                    .await
                    .ok()
                    .flatten()
                    .map_or(0, |i| i.size);
                self.events.normal(
                    &object,
                    reason::PULLED,
                    format!(
                        "Successfully pulled image {image:?} in {took} ({took} including waiting). Image size: {size} bytes."
                    ),
                );
                Ok(image_ref)
            }
            Err(status) => {
                let error = go_error(&status);
                self.events.warning(
                    &object,
                    reason::FAILED,
                    format!("Failed to pull image {image:?}: {error}"),
                );
                let mut backoff = self.backoff();
                backoff.next(&key, SystemTime::now());
                backoff.collect_garbage(SystemTime::now());
                Err(Waiting::new("ErrImagePull", error))
            }
        }
    }

    /// Pulls with each matching pull-secret credential in turn (none:
    /// anonymously); the last error when all fail.
    async fn pull(
        &self,
        pod: &Pod,
        spec: &cri::ImageSpec,
        sandbox_config: &cri::PodSandboxConfig,
    ) -> Result<String, tonic::Status> {
        let secrets = self.pull_secrets(pod).await;
        let _serial = self.serial.lock().await;
        let auths = credentials::for_image(&spec.image, &secrets);
        if auths.is_empty() {
            return self
                .cri
                .pull_image(spec.clone(), None, Some(sandbox_config.clone()))
                .await;
        }
        let mut last = tonic::Status::unknown("no credentials tried");
        for auth in auths {
            match self
                .cri
                .pull_image(spec.clone(), Some(auth), Some(sandbox_config.clone()))
                .await
            {
                Ok(image_ref) => return Ok(image_ref),
                Err(status) => last = status,
            }
        }
        Err(last)
    }

    /// The pod's `imagePullSecrets` that exist (missing ones are skipped,
    /// as kubelet skips them).
    async fn pull_secrets(&self, pod: &Pod) -> Vec<Secret> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let mut secrets = Vec::new();
        let names = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default();
        for reference in names {
            match api.get_opt(&reference.name).await {
                Ok(Some(secret)) => secrets.push(secret),
                Ok(None) => tracing::warn!(
                    pod = pod.metadata.name.as_deref().unwrap_or_default(),
                    secret = %reference.name,
                    "pull secret not found; pulling without it"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, secret = %reference.name, "reading a pull secret")
                }
            }
        }
        secrets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn policies_default_as_the_apiserver_defaults_them() {
        assert_eq!(pull_policy(&container("busybox", None)), "Always");
        assert_eq!(pull_policy(&container("busybox:latest", None)), "Always");
        assert_eq!(
            pull_policy(&container("busybox:1.36", None)),
            "IfNotPresent"
        );
        assert_eq!(
            pull_policy(&container("127.0.0.1:5000/app", None)),
            "Always"
        );
        assert_eq!(
            pull_policy(&container("127.0.0.1:5000/app:v1", None)),
            "IfNotPresent"
        );
        assert_eq!(
            pull_policy(&container("app@sha256:0123", None)),
            "IfNotPresent"
        );
        assert_eq!(pull_policy(&container("busybox", Some("Never"))), "Never");
    }

    #[test]
    fn pulls_follow_the_policy() {
        assert!(should_pull("Always", true));
        assert!(should_pull("IfNotPresent", false));
        assert!(!should_pull("IfNotPresent", true));
        assert!(!should_pull("Never", false));
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_micros(500)), "0s");
        assert_eq!(go_duration(Duration::from_millis(567)), "567ms");
        assert_eq!(go_duration(Duration::from_millis(1200)), "1.2s");
        assert_eq!(go_duration(Duration::from_millis(1234)), "1.234s");
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
        assert_eq!(go_duration(Duration::from_millis(62_500)), "1m2.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }
}
