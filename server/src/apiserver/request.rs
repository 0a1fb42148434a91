//! What a resource request asks for, read from its method, path and query
//! (kube-apiserver's RequestInfo).

use std::collections::HashMap;

use hyper::Method;

/// A request for the API's resources (`/api/v1/...`, `/apis/<g>/<v>/...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`.
    pub verb: String,
    /// API group ("" for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace from the path ("" when none).
    pub namespace: String,
    /// Resource (plural), "" for group-version discovery.
    pub resource: String,
    /// Object name ("" for collections).
    pub name: String,
    /// Subresource ("" for none).
    pub subresource: String,
}

/// Parses an API path; `None` when it is not one (`/healthz`, `/openapi/v2`).
pub fn parse(method: &Method, path: &str, query: &Query) -> Option<RequestInfo> {
    let mut parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut info = RequestInfo::default();
    match parts.first() {
        Some(&"api") if parts.len() >= 2 => {
            info.version = parts[1].to_owned();
            parts.drain(..2);
        }
        Some(&"apis") if parts.len() >= 3 => {
            info.group = parts[1].to_owned();
            info.version = parts[2].to_owned();
            parts.drain(..3);
        }
        _ => return None,
    }
    let mut watch_prefix = false;
    if parts.first() == Some(&"watch") {
        watch_prefix = true;
        parts.remove(0);
    }
    if parts.first() == Some(&"namespaces") && parts.len() > 1 {
        info.namespace = parts[1].to_owned();
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts.drain(..2);
        }
    }
    if parts.iter().any(|p| p.is_empty()) && parts.len() > 1 {
        return None;
    }
    info.resource = parts.first().map(|s| s.to_string()).unwrap_or_default();
    if parts.len() > 1 {
        info.name = parts[1].to_owned();
    }
    if parts.len() > 2 {
        info.subresource = parts[2..].join("/");
    }
    // `/api/v1/namespaces/foo` names the namespace itself.
    if info.resource == "namespaces" {
        info.namespace.clear();
    }
    let collection = info.name.is_empty();
    info.verb = match *method {
        Method::GET | Method::HEAD if watch_prefix || query.flag("watch") => "watch",
        Method::GET | Method::HEAD if collection => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
    .to_owned();
    Some(info)
}

/// A request's query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses `a=b&c=d` (percent-decoded, `+` as space).
    pub fn parse(query: Option<&str>) -> Self {
        let mut map = HashMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(decode(key), decode(value));
        }
        Self(map)
    }

    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A parameter's value, "" when absent.
    pub fn str(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }

    /// Every `key=value` pair of a raw query in order, repeated keys kept
    /// (`command=sh&command=-c`), percent-decoded.
    pub fn pairs(query: Option<&str>) -> Vec<(String, String)> {
        query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(key), decode(value))
            })
            .collect()
    }

    /// Whether a boolean parameter is set (`watch=true`, `watch=1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True"))
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && s.is_char_boundary(i + 3) => {
                match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str) -> RequestInfo {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        parse(&method, path, &Query::parse(Some(query))).unwrap()
    }

    #[test]
    fn paths_name_group_namespace_resource_and_subresource() {
        let i = info(
            Method::GET,
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        );
        assert_eq!(
            (
                i.verb.as_str(),
                i.group.as_str(),
                i.namespace.as_str(),
                i.resource.as_str()
            ),
            ("get", "apps", "default", "deployments")
        );
        assert_eq!((i.name.as_str(), i.subresource.as_str()), ("web", "scale"));
        let i = info(Method::GET, "/api/v1/pods?watch=true&labelSelector=a%3Db");
        assert_eq!((i.verb.as_str(), i.namespace.as_str()), ("watch", ""));
        let i = info(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.namespace.as_str()),
            ("namespaces", "kube-system", "")
        );
        let i = info(Method::PUT, "/api/v1/namespaces/gone/finalize");
        assert_eq!(
            (i.verb.as_str(), i.subresource.as_str()),
            ("update", "finalize")
        );
        let i = info(Method::DELETE, "/api/v1/namespaces/default/configmaps");
        assert_eq!(i.verb, "deletecollection");
        let i = info(Method::GET, "/api/v1/watch/namespaces/default/pods/x");
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("watch", "x"));
        let i = info(Method::GET, "/apis/apps/v1");
        assert_eq!(i.resource, "");
        assert!(parse(&Method::GET, "/version", &Query::default()).is_none());
    }

    #[test]
    fn queries_are_percent_decoded() {
        let q = Query::parse(Some("labelSelector=app%20in%20(a%2Cb)&fieldSelector=a+b&x"));
        assert_eq!(q.str("labelSelector"), "app in (a,b)");
        assert_eq!(q.str("fieldSelector"), "a b");
        assert_eq!(q.get("x"), Some(""));
        assert!(!q.flag("watch"));
        let pairs = Query::pairs(Some("command=sh&command=-c&command=echo+a%26b&tty"));
        assert_eq!(
            pairs,
            [
                ("command".into(), "sh".into()),
                ("command".into(), "-c".into()),
                ("command".into(), "echo a&b".into()),
                ("tty".into(), String::new())
            ]
        );
    }
}
