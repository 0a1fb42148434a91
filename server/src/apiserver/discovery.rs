//! API discovery: `/api`, `/apis`, `/apis/<group>`, the resource lists of
//! each group-version, and aggregated discovery (`apidiscovery.k8s.io/v2`,
//! which kubectl 1.32 asks for first and which answers in two requests).

use hyper::header::{self, HeaderMap};
use serde_json::{Value, json};

use super::resources::{GROUP_ORDER, ResourceType, Resources};

/// The media type of aggregated discovery responses.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client asks for aggregated discovery.
pub fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|accept| accept.split(',').next().map(str::to_owned))
        .is_some_and(|first| {
            first.contains("as=APIGroupDiscoveryList")
                && first.contains("g=apidiscovery.k8s.io")
                && first.contains("v=v2")
        })
}

/// Groups in discovery order: kube-apiserver's priority order, then
/// others (custom resource groups) by name.
fn groups(resources: &Resources) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in resources.all() {
        if t.group.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, versions)) if !versions.contains(&t.version) => {
                versions.push(t.version.clone())
            }
            Some(_) => {}
            None => groups.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    let rank = |g: &str| {
        GROUP_ORDER
            .iter()
            .position(|o| *o == g)
            .unwrap_or(usize::MAX)
    };
    groups.sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    groups
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// `/api`: the core group's versions.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": group_version(name, v), "version": v }))
        .collect();
    json!({
        "name": name,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`: every named group.
pub fn api_group_list(resources: &Resources) -> Value {
    let groups: Vec<Value> = groups(resources)
        .iter()
        .map(|(name, versions)| group_json(name, versions))
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/<group>`, `None` when the group is not served.
pub fn api_group(resources: &Resources, group: &str) -> Option<Value> {
    let (name, versions) = groups(resources).into_iter().find(|(g, _)| g == group)?;
    let mut value = group_json(&name, &versions);
    value["kind"] = json!("APIGroup");
    value["apiVersion"] = json!("v1");
    Some(value)
}

/// A subresource's kind (group, version, kind; "" for the parent's) and verbs.
fn subresource_kind(
    t: &ResourceType,
    sub: &str,
) -> (
    (&'static str, &'static str, String),
    &'static [&'static str],
) {
    const GPU: &[&str] = &["get", "patch", "update"];
    let same = ("", "", t.kind.clone());
    match sub {
        "status" | "ephemeralcontainers" => (same, GPU),
        "scale" => (("autoscaling", "v1", "Scale".into()), GPU),
        "binding" => (("", "", "Binding".into()), &["create"]),
        "eviction" => (("policy", "v1", "Eviction".into()), &["create"]),
        "log" => (("", "", t.kind.clone()), &["get"]),
        "exec" => (("", "", "PodExecOptions".into()), &["create", "get"]),
        "attach" => (("", "", "PodAttachOptions".into()), &["create", "get"]),
        "portforward" => (("", "", "PodPortForwardOptions".into()), &["create", "get"]),
        "proxy" => (
            ("", "", format!("{}ProxyOptions", t.kind)),
            &["create", "delete", "get", "patch", "update"],
        ),
        "finalize" => (same, &["update"]),
        "token" => (
            ("authentication.k8s.io", "v1", "TokenRequest".into()),
            &["create"],
        ),
        _ => (same, GPU),
    }
}

/// `/api/v1`, `/apis/<group>/<version>`: the resources served there.
pub fn api_resource_list(resources: &Resources, group: &str, version: &str) -> Option<Value> {
    let types: Vec<_> = resources
        .all()
        .into_iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    let mut sorted = types.clone();
    sorted.sort_by(|a, b| a.plural.cmp(&b.plural));
    for t in &sorted {
        let mut entry = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs,
        });
        if !t.short_names.is_empty() {
            entry["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            entry["categories"] = json!(t.categories);
        }
        list.push(entry);
        for sub in &t.subresources {
            let ((g, v, kind), verbs) = subresource_kind(t, sub);
            let mut entry = json!({
                "name": format!("{}/{sub}", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if !g.is_empty() {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            list.push(entry);
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": list,
    }))
}

fn aggregated_resource(t: &ResourceType) -> Value {
    let subresources: Vec<Value> = t
        .subresources
        .iter()
        .map(|sub| {
            let ((g, v, kind), verbs) = subresource_kind(t, sub);
            json!({
                "subresource": sub,
                "responseKind": { "group": g, "version": v, "kind": kind },
                "verbs": verbs,
            })
        })
        .collect();
    let mut entry = json!({
        "resource": t.plural,
        "responseKind": { "group": "", "version": "", "kind": t.kind },
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular,
        "verbs": t.verbs,
    });
    if !t.short_names.is_empty() {
        entry["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        entry["categories"] = json!(t.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

fn aggregated_group(resources: &Resources, name: &str, versions: &[String]) -> Value {
    let all = resources.all();
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            let mut types: Vec<_> = all
                .iter()
                .filter(|t| t.group == name && t.version == *version)
                .collect();
            types.sort_by(|a, b| a.plural.cmp(&b.plural));
            let resources: Vec<Value> = types.iter().map(|t| aggregated_resource(t)).collect();
            json!({ "version": version, "resources": resources, "freshness": "Current" })
        })
        .collect();
    let mut metadata = json!({ "creationTimestamp": null });
    if !name.is_empty() {
        metadata["name"] = json!(name);
    }
    json!({ "metadata": metadata, "versions": versions })
}

/// Aggregated discovery of `/api` (`legacy`) or `/apis`.
pub fn aggregated(resources: &Resources, legacy: bool) -> Value {
    let items: Vec<Value> = if legacy {
        vec![aggregated_group(resources, "", &["v1".to_owned()])]
    } else {
        groups(resources)
            .iter()
            .map(|(name, versions)| aggregated_group(resources, name, versions))
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_in_kube_apiserver_order_and_list_their_resources() {
        let resources = Resources::new();
        let list = api_group_list(&resources);
        let names: Vec<&str> = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(names[0], "apps");
        assert!(names.contains(&"apiextensions.k8s.io"));
        let core = api_resource_list(&resources, "", "v1").unwrap();
        let pods_scale = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .unwrap();
        assert_eq!(pods_scale["group"], "policy");
        let agg = aggregated(&resources, false);
        let apps = &agg["items"][0];
        assert_eq!(apps["metadata"]["name"], "apps");
        let deployments = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deployments["scope"], "Namespaced");
        assert_eq!(deployments["shortNames"][0], "deploy");
        assert!(api_resource_list(&resources, "nope", "v1").is_none());
    }
}
