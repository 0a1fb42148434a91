//! The Job controller's writes, behind a trait so that its sync logic runs
//! against a recording fake in unit tests.

use std::future::Future;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde_json::json;

use super::pods::TRACKING_FINALIZER;
use crate::controllers::common::Events;

/// The field manager of the controller's writes (kube-controller-manager's).
pub const FIELD_MANAGER: &str = "kube-controller-manager";

/// What the Job controller does to the API.
pub trait JobClient: Send + Sync {
    /// Creates `pod` (which has a generateName) and returns it as stored.
    fn create_pod(&self, pod: &Pod) -> impl Future<Output = Result<Pod, kube::Error>> + Send;
    /// Deletes a pod; a pod already gone is not an error.
    fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;
    /// Removes the Job tracking finalizer from a pod; a pod already gone is
    /// not an error.
    fn remove_tracking_finalizer(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;
    /// Writes the Job's status (with its resourceVersion as precondition).
    fn update_status(&self, job: &Job) -> impl Future<Output = Result<Job, kube::Error>> + Send;
    /// Whether a pod exists.
    fn pod_exists(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<bool, kube::Error>> + Send;
    /// Records an event on the Job (a Warning unless `normal`).
    fn event(
        &self,
        job: &Job,
        normal: bool,
        reason: &str,
        note: String,
    ) -> impl Future<Output = ()> + Send;
}

/// The Job controller's writes through a kube client.
#[derive(Clone)]
pub struct KubeJobClient {
    client: kube::Client,
    events: Events,
}

impl std::fmt::Debug for KubeJobClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeJobClient").finish_non_exhaustive()
    }
}

impl KubeJobClient {
    /// Writes through `client`, recording events as `job-controller`.
    pub fn new(client: kube::Client) -> Self {
        let events = Events::new(client.clone(), "job-controller");
        Self { client, events }
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

/// Whether the error is the apiserver's 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

impl JobClient for KubeJobClient {
    async fn create_pod(&self, pod: &Pod) -> Result<Pod, kube::Error> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        self.pods(namespace).create(&post_params(), pod).await
    }

    async fn delete_pod(&self, namespace: &str, name: &str) -> Result<(), kube::Error> {
        match self
            .pods(namespace)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn remove_tracking_finalizer(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(), kube::Error> {
        let patch = json!({
            "metadata": { "$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER] }
        });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match self
            .pods(namespace)
            .patch(name, &params, &Patch::Strategic(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn update_status(&self, job: &Job) -> Result<Job, kube::Error> {
        let namespace = job.metadata.namespace.as_deref().unwrap_or("default");
        let name = job.metadata.name.as_deref().unwrap_or_default();
        Api::<Job>::namespaced(self.client.clone(), namespace)
            .replace_status(name, &post_params(), job)
            .await
    }

    async fn pod_exists(&self, namespace: &str, name: &str) -> Result<bool, kube::Error> {
        Ok(self.pods(namespace).get_metadata_opt(name).await?.is_some())
    }

    async fn event(&self, job: &Job, normal: bool, reason: &str, note: String) {
        let reference = job.object_ref(&());
        if normal {
            self.events.normal(&reference, reason, note).await;
        } else {
            self.events.warning(&reference, reason, note).await;
        }
    }
}
