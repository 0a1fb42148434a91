//! The pods a ReplicaSet makes: built from its template as upstream's
//! `GetPodFromTemplate` builds them, created in slow-start batches.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The longest object name (a DNS subdomain).
const MAX_NAME_LENGTH: usize = 253;

/// Why no pod could be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// The template has no labels: the pods could never be selected.
    #[error("unable to create pods, no labels")]
    NoLabels,
}

/// The pod `rs` creates: the template's labels, annotations, finalizers
/// and spec, `generateName` `<rs>-`, and `owner` as its controller.
pub(crate) fn pod_from_template(
    rs: &ReplicaSet,
    owner: OwnerReference,
) -> Result<Pod, TemplateError> {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let labels = template_meta
        .labels
        .filter(|l| !l.is_empty())
        .ok_or(TemplateError::NoLabels)?;
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name(
                rs.metadata.name.as_deref().unwrap_or_default(),
            )),
            namespace: rs.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template_meta.annotations.filter(|a| !a.is_empty()),
            finalizers: template_meta.finalizers.filter(|f| !f.is_empty()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    })
}

/// `<name>-`, or the name alone when the dash would make it too long.
fn generate_name(name: &str) -> String {
    if name.len() < MAX_NAME_LENGTH {
        format!("{name}-")
    } else {
        name.to_owned()
    }
}

/// `namespace/name` of a pod, the key expectations track deletions by.
pub(crate) fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The sizes of the batches `count` creations are made in: 1, 2, 4, ...
/// (upstream's `slowStartBatch` with an initial batch of one), so a
/// failing template (quota, admission) fails once, not `count` times.
pub(crate) fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut remaining = count;
    let mut size = 1;
    while remaining > 0 {
        let batch = size.min(remaining);
        batches.push(batch);
        remaining -= batch;
        size *= 2;
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web-abc".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn rs(labels: Option<&[(&str, &str)]>) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web-abc".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: labels.map(|l| {
                            l.iter()
                                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                                .collect()
                        }),
                        annotations: Some([("a".into(), "b".into())].into()),
                        name: Some("ignored".into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            image: Some("busybox".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn pods_come_from_the_template_with_the_controller_reference() {
        let pod = pod_from_template(&rs(Some(&[("app", "web")])), owner()).unwrap();
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(pod.metadata.name, None);
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(pod.metadata.labels.unwrap()["app"], "web");
        assert_eq!(pod.metadata.annotations.unwrap()["a"], "b");
        assert_eq!(pod.metadata.owner_references.unwrap()[0].uid, "u1");
        assert_eq!(pod.spec.unwrap().containers[0].name, "c");
    }

    #[test]
    fn a_template_without_labels_makes_no_pods() {
        assert_eq!(
            pod_from_template(&rs(None), owner()),
            Err(TemplateError::NoLabels)
        );
        assert_eq!(
            pod_from_template(&rs(Some(&[])), owner()),
            Err(TemplateError::NoLabels)
        );
    }

    #[test]
    fn long_names_get_no_dash() {
        assert_eq!(generate_name("web"), "web-");
        let long = "a".repeat(253);
        assert_eq!(generate_name(&long), long);
    }

    #[test]
    fn batches_double() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), [1]);
        assert_eq!(slow_start_batches(10), [1, 2, 4, 3]);
    }
}
