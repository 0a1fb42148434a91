//! The resources the apiserver serves, from discovery: which kinds the
//! collector watches (every resource that can be listed, watched and
//! deleted, at its group's preferred version, events aside) and where an
//! owner reference's `apiVersion` and `kind` live (a REST mapper).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};

/// A resource the API serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Group, version, kind and plural.
    pub api: ApiResource,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
}

impl Resource {
    /// `plural.group`, the way monitors are named.
    pub fn name(&self) -> String {
        if self.api.group.is_empty() {
            self.api.plural.clone()
        } else {
            format!("{}.{}", self.api.plural, self.api.group)
        }
    }
}

/// Resources the collector never watches (upstream's defaults).
const IGNORED: [(&str, &str); 2] = [("", "events"), ("events.k8s.io", "events")];

/// What discovery found.
#[derive(Debug, Default)]
pub struct Resources {
    by_kind: HashMap<(String, String), Arc<Resource>>,
    watched: Vec<Arc<Resource>>,
}

impl Resources {
    /// Builds the mapper from each group's versions, the preferred first.
    pub fn from_groups(
        groups: impl IntoIterator<Item = Vec<Vec<(ApiResource, ApiCapabilities)>>>,
    ) -> Resources {
        let mut resources = Resources::default();
        for versions in groups {
            let mut watched_plurals = HashSet::new();
            for version in versions {
                for (api, caps) in version {
                    let resource = Arc::new(Resource {
                        namespaced: caps.scope == Scope::Namespaced,
                        api,
                    });
                    let key = (resource.api.api_version.clone(), resource.api.kind.clone());
                    resources
                        .by_kind
                        .entry(key)
                        .or_insert_with(|| resource.clone());
                    let deletable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                        .iter()
                        .all(|verb| caps.supports_operation(verb));
                    let ignored = IGNORED
                        .iter()
                        .any(|(g, p)| resource.api.group == *g && resource.api.plural == *p);
                    if deletable && !ignored && watched_plurals.insert(resource.api.plural.clone())
                    {
                        resources.watched.push(resource);
                    }
                }
            }
        }
        resources
    }

    /// The resource of objects with `api_version` and `kind`.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<Arc<Resource>> {
        self.by_kind
            .get(&(api_version.to_owned(), kind.to_owned()))
            .cloned()
    }

    /// The resources to watch.
    pub fn watched(&self) -> &[Arc<Resource>] {
        &self.watched
    }
}

/// Asks the apiserver what it serves (aggregated discovery, else one
/// request per group version).
pub async fn discover(client: &kube::Client) -> Result<Resources, kube::Error> {
    let discovery = match Discovery::new(client.clone()).run_aggregated().await {
        Ok(discovery) => discovery,
        Err(err) => {
            tracing::debug!(%err, "aggregated discovery failed, asking each group");
            Discovery::new(client.clone()).run().await?
        }
    };
    let groups = discovery.groups().map(|group| {
        let preferred = group.preferred_version_or_latest().to_owned();
        std::iter::once(preferred.clone())
            .chain(
                group
                    .versions()
                    .filter(|v| *v != preferred)
                    .map(str::to_owned),
            )
            .map(|version| group.versioned_resources(&version))
            .collect::<Vec<_>>()
    });
    Ok(Resources::from_groups(groups.collect::<Vec<_>>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        verbs: &[&str],
    ) -> (ApiResource, ApiCapabilities) {
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        (
            ApiResource {
                group: group.into(),
                version: version.into(),
                api_version,
                kind: kind.into(),
                plural: plural.into(),
            },
            ApiCapabilities {
                scope: Scope::Namespaced,
                subresources: Vec::new(),
                operations: verbs.iter().map(|v| (*v).to_owned()).collect(),
            },
        )
    }

    #[test]
    fn watches_deletable_resources_once_at_the_preferred_version() {
        let all = ["list", "watch", "delete", "get"];
        let resources = Resources::from_groups(vec![
            vec![vec![
                resource("", "v1", "ConfigMap", "configmaps", &all),
                resource("", "v1", "Event", "events", &all),
                resource("", "v1", "Binding", "bindings", &["create"]),
            ]],
            vec![
                vec![resource("demo.io", "v2", "Widget", "widgets", &all)],
                vec![resource("demo.io", "v1", "Widget", "widgets", &all)],
            ],
        ]);
        let watched: Vec<_> = resources
            .watched()
            .iter()
            .map(|r| r.api.api_version.clone() + " " + &r.name())
            .collect();
        assert_eq!(watched, ["v1 configmaps", "demo.io/v2 widgets.demo.io"]);
        assert_eq!(
            resources
                .resolve("demo.io/v1", "Widget")
                .unwrap()
                .api
                .version,
            "v1"
        );
        assert!(resources.resolve("v1", "Binding").is_some());
        assert!(resources.resolve("apps/v1", "Deployment").is_none());
    }
}
