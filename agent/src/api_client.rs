//! Connecting to the apiserver as one component: the kubelet, and (from
//! `skiff server`) the scheduler and controller-manager. Every component,
//! in-process or not, talks to the apiserver over HTTPS with its own client
//! certificate, as k3s's do, so each is authenticated and authorized as
//! itself.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Where the apiserver is and who a component is to it.
#[derive(Clone)]
pub struct ApiEndpoint {
    /// `https://127.0.0.1:6443`.
    pub url: String,
    /// The CA that signed the apiserver's serving certificate, PEM.
    pub ca_pem: String,
    /// The component's client certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for ApiEndpoint {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiEndpoint")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    /// The kubeconfig made from the endpoint was refused.
    #[error("configuring the API client for {url}: {source}")]
    Config {
        /// The apiserver's URL.
        url: String,
        /// Why.
        source: kube::config::KubeconfigError,
    },
    /// The client could not be built (TLS setup).
    #[error("building the API client for {url}: {source}")]
    Build {
        /// The apiserver's URL.
        url: String,
        /// Why.
        source: kube::Error,
    },
}

impl ApiEndpoint {
    /// The endpoint as a kubeconfig (certificates inline), the way kube-rs
    /// and kubectl read it.
    pub fn kubeconfig(&self) -> String {
        let b64 = |pem: &str| STANDARD.encode(pem.as_bytes());
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: default
  cluster:
    server: {url}
    certificate-authority-data: {ca}
users:
- name: default
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: default
  context:
    cluster: default
    user: default
current-context: default
preferences: {{}}
",
            url = self.url,
            ca = b64(&self.ca_pem),
            cert = b64(&self.cert_pem),
            key = b64(&self.key_pem),
        )
    }

    /// A kube-rs client for this endpoint. Call it within a tokio runtime.
    pub async fn connect(&self) -> Result<kube::Client, ApiClientError> {
        let config_error = |source| ApiClientError::Config {
            url: self.url.clone(),
            source,
        };
        let kubeconfig = Kubeconfig::from_yaml(&self.kubeconfig()).map_err(config_error)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(config_error)?;
        kube::Client::try_from(config).map_err(|source| ApiClientError::Build {
            url: self.url.clone(),
            source,
        })
    }
}
