//! The new ReplicaSet of a sync (upstream's `getNewReplicaSet`): the
//! oldest ReplicaSet with the Deployment's template, given the next
//! revision when it comes back (a rollback), or one created under the
//! template's hash, with hash collisions counted in `status.collisionCount`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::replicas::{by_creation, max_surge, new_rs_new_replicas};
use super::status::{self, PROGRESSING};
use super::sync::Rollout;
use super::template::{POD_TEMPLATE_HASH, compute_hash, equal_ignore_hash, template_of};
use super::{Error, api_message, key_of, revision};
use crate::controllers::common::controller_ref;
use crate::controllers::queue::namespace_terminating;

impl Rollout<'_> {
    /// The new ReplicaSet (created when `create` and missing) and the old
    /// ones, with the new one's revision annotations and the Deployment's
    /// revision brought up to date (upstream's
    /// `getAllReplicaSetsAndSyncRevision`).
    pub(super) async fn get_all_and_sync_revision(
        &mut self,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
        let found = find_new_replicaset(&self.d, &self.replicasets).cloned();
        let found_uid = found.as_ref().and_then(|rs| rs.metadata.uid.clone());
        let (_, old) = self.split(found_uid.as_deref());
        let new_rs = Box::pin(self.get_new_replicaset(found, &old, create)).await?;
        let new_uid = new_rs.as_ref().and_then(|rs| rs.metadata.uid.clone());
        let (new_rs, old) = self.split(new_uid.as_deref());
        Ok((new_rs, old))
    }

    async fn get_new_replicaset(
        &mut self,
        found: Option<ReplicaSet>,
        old: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>, Error> {
        let new_revision = revision::max_revision(old) + 1;
        if let Some(existing) = found {
            return self
                .sync_existing_new_replicaset(existing, new_revision)
                .await
                .map(Some);
        }
        if !create {
            return Ok(None);
        }
        self.create_new_replicaset(old, new_revision)
            .await
            .map(Some)
    }

    async fn sync_existing_new_replicaset(
        &mut self,
        existing: ReplicaSet,
        new_revision: i64,
    ) -> Result<ReplicaSet, Error> {
        let mut copy = existing.clone();
        let annotations_changed = revision::set_new_replicaset_annotations(
            &self.d,
            &mut copy,
            new_revision,
            true,
            max_surge(&self.d),
        );
        let min_ready = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let rs_min_ready = copy
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        if annotations_changed || min_ready != rs_min_ready {
            let patch = json!({
                "metadata": {
                    "resourceVersion": existing.metadata.resource_version,
                    "annotations": copy.metadata.annotations,
                },
                "spec": { "minReadySeconds": if min_ready == 0 { Value::Null } else { json!(min_ready) } },
            });
            let api = self.rs_api();
            let updated = Box::pin(api.patch(
                &existing.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            ))
            .await
            .map_err(|source| Error::Api {
                action: "updating replicaset",
                target: key_of(&existing),
                source,
            })?;
            self.remember(updated.clone());
            return Ok(updated);
        }
        let rs_revision = copy
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(revision::REVISION))
            .cloned()
            .unwrap_or_default();
        self.write_revision(&rs_revision).await?;
        let current = self.d.status.clone().unwrap_or_default();
        if status::has_progress_deadline(&self.d)
            && status::get_condition(&current, PROGRESSING).is_none()
        {
            let mut current = current;
            let message = format!("Found new replica set \"{}\"", copy.name_any());
            status::set_condition(
                &mut current,
                status::new_condition(PROGRESSING, "True", status::FOUND_NEW_RS, message, self.now),
            );
            self.write_status(current).await?;
        }
        Ok(copy)
    }

    async fn create_new_replicaset(
        &mut self,
        old: &[ReplicaSet],
        new_revision: i64,
    ) -> Result<ReplicaSet, Error> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let mut template = spec.template.clone();
        let hash = compute_hash(&template, collision_count);
        let template_meta = template.metadata.get_or_insert_with(ObjectMeta::default);
        template_meta
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let labels = template_meta.labels.clone();
        let mut selector: LabelSelector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let name = format!("{}-{hash}", self.name());
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                owner_references: controller_ref(&self.d).map(|r| vec![r]),
                labels,
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds.filter(|s| *s != 0),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = old.iter().chain([&new_rs]).collect();
        let count = new_rs_new_replicas(&self.d, &all, &new_rs)
            .map_err(|err| Error::Invalid(key_of(&self.d), err))?;
        if let Some(spec) = new_rs.spec.as_mut() {
            spec.replicas = Some(count);
        }
        revision::set_new_replicaset_annotations(
            &self.d,
            &mut new_rs,
            new_revision,
            false,
            max_surge(&self.d),
        );

        let api = self.rs_api();
        let (created, already_existed) =
            match Box::pin(api.create(&PostParams::default(), &new_rs)).await {
                Ok(created) => (created, false),
                Err(err) if is_already_exists(&err) => {
                    (self.existing_or_collision(&name, err).await?, true)
                }
                Err(source) => {
                    let message = format!(
                        "Failed to create new replica set \"{name}\": {}",
                        api_message(&source)
                    );
                    if !namespace_terminating(&source) {
                        if status::has_progress_deadline(&self.d) {
                            let mut current = self.d.status.clone().unwrap_or_default();
                            status::set_condition(
                                &mut current,
                                status::new_condition(
                                    PROGRESSING,
                                    "False",
                                    status::FAILED_RS_CREATE,
                                    message.clone(),
                                    self.now,
                                ),
                            );
                            // The create error is the one to report.
                            let _ = self.write_status(current).await;
                        }
                        self.records(true, status::FAILED_RS_CREATE, message);
                    }
                    return Err(Error::Api {
                        action: "creating replicaset",
                        target: format!("{}/{name}", self.namespace()),
                        source,
                    });
                }
            };
        if !already_existed && count > 0 {
            self.records(
                false,
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {count}"),
            );
        }
        self.remember(created.clone());
        self.write_revision(&new_revision.to_string()).await?;
        if !already_existed && status::has_progress_deadline(&self.d) {
            let mut current = self.d.status.clone().unwrap_or_default();
            let message = format!("Created new replica set \"{name}\"");
            status::set_condition(
                &mut current,
                status::new_condition(
                    PROGRESSING,
                    "True",
                    status::NEW_RS_CREATED,
                    message,
                    self.now,
                ),
            );
            self.write_status(current).await?;
        }
        Ok(created)
    }

    /// The ReplicaSet `name` that exists already: ours when we control it
    /// and its template is the Deployment's; otherwise a hash collision,
    /// recorded by bumping `status.collisionCount` so the next sync hashes
    /// differently.
    async fn existing_or_collision(
        &mut self,
        name: &str,
        err: kube::Error,
    ) -> Result<ReplicaSet, Error> {
        let api = self.rs_api();
        let existing = Box::pin(api.get(name)).await.map_err(|source| Error::Api {
            action: "reading replicaset",
            target: format!("{}/{name}", self.namespace()),
            source,
        })?;
        let ours = crate::controllers::common::controller_of(&existing.metadata)
            .is_some_and(|c| Some(c.uid.as_str()) == self.d.metadata.uid.as_deref());
        let same_template = match (template_of(&existing), self.d.spec.as_ref()) {
            (Some(theirs), Some(spec)) => equal_ignore_hash(&spec.template, theirs),
            _ => false,
        };
        if ours && same_template {
            return Ok(existing);
        }
        let count = self
            .d
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0)
            .saturating_add(1);
        let patch = json!({
            "metadata": { "resourceVersion": self.d.metadata.resource_version },
            "status": { "collisionCount": count },
        });
        let api = self.deployment_api();
        match Box::pin(api.patch_status(
            &self.name(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        ))
        .await
        {
            Ok(_) => {
                tracing::info!(deployment = %key_of(&self.d), collision_count = count, "hash collision; bumped collisionCount");
            }
            Err(update) => {
                tracing::debug!(deployment = %key_of(&self.d), %update, "recording a hash collision");
            }
        }
        Err(Error::Api {
            action: "creating replicaset",
            target: format!("{}/{name}", self.namespace()),
            source: err,
        })
    }
}

/// The oldest ReplicaSet whose template is the Deployment's, ignoring the
/// hash label (upstream's `FindNewReplicaSet`).
pub(super) fn find_new_replicaset<'r>(
    d: &Deployment,
    replicasets: &'r [ReplicaSet],
) -> Option<&'r ReplicaSet> {
    let template = &d.spec.as_ref()?.template;
    let mut sorted: Vec<&ReplicaSet> = replicasets.iter().collect();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted
        .into_iter()
        .find(|rs| template_of(rs).is_some_and(|t| equal_ignore_hash(t, template)))
}

fn is_already_exists(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn template(image: &str, hash: Option<&str>) -> PodTemplateSpec {
        let mut labels: BTreeMap<String, String> = [("app".into(), "web".into())].into();
        if let Some(hash) = hash {
            labels.insert(POD_TEMPLATE_HASH.into(), hash.into());
        }
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn rs(name: &str, created: i64, image: &str) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(
                    Timestamp::from_second(1_700_000_000 + created).unwrap(),
                )),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                template: Some(template(image, Some(name))),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn the_new_replicaset_is_the_oldest_with_the_same_template() {
        let d = Deployment {
            spec: Some(DeploymentSpec {
                template: template("busybox:2", None),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sets = [
            rs("b", 5, "busybox:2"),
            rs("a", 1, "busybox:1"),
            rs("c", 2, "busybox:2"),
        ];
        assert_eq!(
            find_new_replicaset(&d, &sets)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("c")
        );
        let none = [rs("a", 1, "busybox:1")];
        assert!(find_new_replicaset(&d, &none).is_none());
    }
}
