//! What the runtime verbs share: RPC deadlines as crictl's CRI client sets
//! them, ID prefixes resolved by listing, and the list filters (labels,
//! name patterns, `--last`/`--latest`, truncated IDs).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use k8s_cri::v1::{
    ContainerFilter, ListContainersRequest, ListPodSandboxRequest, PodSandboxFilter,
};
use regex::Regex;
use tonic::Status;

use super::console::rpc_error;
use super::{CrictlError, Session};
use crate::client::CriClient;

/// How many characters of an ID the tables show.
pub const TRUNCATED_ID_LEN: usize = 13;

/// The length of a full pod or container ID.
const FULL_ID_LEN: usize = 64;

/// The deadline of one call, relative to `--timeout`, as crictl's CRI
/// client sets it per RPC.
#[derive(Debug, Clone, Copy)]
pub enum Deadline {
    /// `--timeout` (most calls).
    Default,
    /// Twice `--timeout` (RunPodSandbox).
    Double,
    /// `--timeout` plus this much (StopContainer's grace period, ExecSync's timeout).
    Plus(Duration),
    /// No deadline (ExecSync without `--timeout`).
    None,
}

impl Session<'_, '_> {
    /// Runs a call within `deadline`.
    pub(super) async fn call<T>(
        &self,
        deadline: Deadline,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, Status> {
        let limit = match deadline {
            Deadline::Default => self.settings.timeout,
            Deadline::Double => self.settings.timeout * 2,
            Deadline::Plus(extra) => self.settings.timeout + extra,
            Deadline::None => return call.await.map(tonic::Response::into_inner),
        };
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded("context deadline exceeded")),
        }
    }
}

/// A failed call as crictl reports it: `<what>: rpc error: code = … desc = …`.
pub fn rpc_failed(what: impl std::fmt::Display, status: &Status) -> CrictlError {
    CrictlError::Failed(format!("{what}: {}", rpc_error(status)))
}

/// `--label k=v` values as a selector.
pub fn parse_labels(values: &[String]) -> Result<HashMap<String, String>, CrictlError> {
    let mut labels = HashMap::new();
    for value in values {
        let parts: Vec<&str> = value.split('=').collect();
        let [key, value] = parts.as_slice() else {
            return Err(CrictlError::Failed(format!(
                "incorrectly specified label: {value}"
            )));
        };
        labels.insert((*key).to_owned(), (*value).to_owned());
    }
    Ok(labels)
}

/// A `--name`/`--namespace` pattern; `None` matches everything.
pub fn compile_regex(pattern: Option<&str>) -> Result<Option<Regex>, CrictlError> {
    match pattern.filter(|p| !p.is_empty()) {
        None => Ok(None),
        Some(p) => Regex::new(p)
            .map(Some)
            .map_err(|e| CrictlError::Failed(format!("invalid regular expression {p:?}: {e}"))),
    }
}

/// Whether `text` matches an optional pattern.
pub fn matches(re: Option<&Regex>, text: &str) -> bool {
    re.is_none_or(|re| re.is_match(text))
}

/// How many of `total` items `--latest`/`--last N` keep.
pub fn truncate_count(total: usize, latest: bool, last: usize) -> usize {
    let mut n = total;
    if latest {
        n = 1;
    }
    if last > 0 {
        n = last;
    }
    n.min(total)
}

/// An ID cut to what tables show, without `prefix` (`sha256:`).
pub fn truncated_id(id: &str, prefix: &str) -> String {
    let id = id.strip_prefix(prefix).unwrap_or(id);
    id.chars().take(TRUNCATED_ID_LEN).collect()
}

/// The help text of one subcommand, which crictl prints when the
/// arguments leave it nothing to do.
pub fn subcommand_help(name: &str) -> String {
    let mut command = <super::CrictlArgs as clap::CommandFactory>::command();
    match command.find_subcommand_mut(name) {
        Some(sub) => format!("{}\n", sub.render_help()),
        None => String::new(),
    }
}

/// A Go map printed with `%v`: `map[a:1 b:2]`, keys sorted.
pub fn go_map(map: &HashMap<String, String>) -> String {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort();
    let inner: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", inner.join(" "))
}

/// The one ID among `ids` that `given` names: itself, or the only one it
/// is a prefix of. `Err` lists the candidates when several match; `None`
/// when nothing does (the runtime then says what it says).
pub fn resolve_prefix<'a>(
    given: &str,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<Option<String>, Vec<String>> {
    let mut found = Vec::new();
    for id in ids {
        if id == given {
            return Ok(Some(id.to_owned()));
        }
        if id.starts_with(given) {
            found.push(id.to_owned());
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(found),
    }
}

fn ambiguous(kind: &str, given: &str, candidates: &[String]) -> CrictlError {
    CrictlError::Failed(format!(
        "{kind} ID prefix {given:?} is ambiguous: it matches {}",
        candidates.join(", ")
    ))
}

/// A container ID as given, or the full ID of the one container it is a
/// prefix of (runtimes other than Skiff may not resolve prefixes).
pub async fn resolve_container(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    given: &str,
) -> Result<String, CrictlError> {
    if given.is_empty() || given.len() >= FULL_ID_LEN {
        return Ok(given.to_owned());
    }
    let request = ListContainersRequest {
        filter: Some(ContainerFilter::default()),
    };
    let containers = match session
        .call(Deadline::Default, client.runtime.list_containers(request))
        .await
    {
        Ok(response) => response.containers,
        Err(status) => {
            session.debug(format!(
                "cannot list containers to resolve {given:?}: {status}"
            ));
            return Ok(given.to_owned());
        }
    };
    match resolve_prefix(given, containers.iter().map(|c| c.id.as_str())) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Ok(given.to_owned()),
        Err(candidates) => Err(ambiguous("container", given, &candidates)),
    }
}

/// A pod ID as given, or the full ID of the one pod it is a prefix of.
pub async fn resolve_pod(
    session: &mut Session<'_, '_>,
    client: &mut CriClient,
    given: &str,
) -> Result<String, CrictlError> {
    if given.is_empty() || given.len() >= FULL_ID_LEN {
        return Ok(given.to_owned());
    }
    let request = ListPodSandboxRequest {
        filter: Some(PodSandboxFilter::default()),
    };
    let pods = match session
        .call(Deadline::Default, client.runtime.list_pod_sandbox(request))
        .await
    {
        Ok(response) => response.items,
        Err(status) => {
            session.debug(format!("cannot list pods to resolve {given:?}: {status}"));
            return Ok(given.to_owned());
        }
    };
    match resolve_prefix(given, pods.iter().map(|p| p.id.as_str())) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Ok(given.to_owned()),
        Err(candidates) => Err(ambiguous("pod", given, &candidates)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_resolve_to_one_id() {
        let ids = ["abc123", "abd456", "abc"];
        assert_eq!(resolve_prefix("abd", ids), Ok(Some("abd456".to_owned())));
        assert_eq!(resolve_prefix("abc", ids), Ok(Some("abc".to_owned())));
        assert_eq!(resolve_prefix("zzz", ids), Ok(None));
        assert_eq!(
            resolve_prefix("ab", ids),
            Err(vec![
                "abc123".to_owned(),
                "abd456".to_owned(),
                "abc".to_owned()
            ])
        );
    }

    #[test]
    fn labels_parse_as_crictl_parses_them() {
        let labels = parse_labels(&["a=1".to_owned(), "b=".to_owned()]).unwrap();
        assert_eq!(labels["a"], "1");
        assert_eq!(labels["b"], "");
        let err = parse_labels(&["a=1=2".to_owned()]).unwrap_err();
        assert_eq!(err.to_string(), "incorrectly specified label: a=1=2");
        assert!(parse_labels(&["novalue".to_owned()]).is_err());
    }

    #[test]
    fn last_and_latest_cut_the_list() {
        assert_eq!(truncate_count(5, false, 0), 5);
        assert_eq!(truncate_count(5, true, 0), 1);
        assert_eq!(truncate_count(5, true, 3), 3);
        assert_eq!(truncate_count(2, false, 3), 2);
        assert_eq!(truncate_count(0, true, 0), 0);
    }

    #[test]
    fn ids_and_maps_print_as_crictl_prints_them() {
        assert_eq!(truncated_id("0123456789abcdef", ""), "0123456789abc");
        assert_eq!(
            truncated_id("sha256:0123456789abcdef", "sha256:"),
            "0123456789abc"
        );
        let map = HashMap::from([
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ]);
        assert_eq!(go_map(&map), "map[a:1 b:2]");
        assert_eq!(go_map(&HashMap::new()), "map[]");
    }

    #[test]
    fn patterns_match_or_fail_clearly() {
        let re = compile_regex(Some("^ng")).unwrap();
        assert!(matches(re.as_ref(), "nginx"));
        assert!(!matches(re.as_ref(), "busybox"));
        assert!(matches(None, "anything"));
        assert!(compile_regex(Some("(")).is_err());
    }
}
