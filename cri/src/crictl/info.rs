//! `crictl info`: the runtime's Status with `verbose`, printed as crictl
//! prints it — `{"status": {"conditions": …}, "runtimeHandlers": …,
//! "features": …}` plus every info entry, JSON values parsed — with
//! Go's sorted keys.

use k8s_cri::v1::{RuntimeFeatures, RuntimeHandler, StatusRequest, StatusResponse};

use super::json::{Escape, Json};
use super::lookup::{Deadline, rpc_failed};
use super::{CrictlError, Session, protojson};

/// `crictl info` options.
#[derive(Debug, Clone, clap::Args)]
pub struct InfoArgs {
    /// Output format, One of: json|yaml|go-template
    #[arg(short, long, value_name = "FORMAT", default_value = "json")]
    output: String,
    /// Do not show verbose information
    #[arg(short, long)]
    quiet: bool,
    /// The template string is only used when output is go-template
    #[arg(long, hide = true)]
    template: Option<String>,
}

pub(super) async fn run(args: &InfoArgs, session: &mut Session<'_, '_>) -> Result<(), CrictlError> {
    let mut client = session.runtime_client().await?;
    let request = StatusRequest {
        verbose: !args.quiet,
    };
    session.debug(format!("StatusRequest: {request:?}"));
    let response = session
        .call(Deadline::Default, client.runtime.status(request))
        .await
        .map_err(|s| rpc_failed("getting status of runtime", &s))?;
    session.debug(format!("StatusResponse: {response:?}"));
    let result = status_object(&response)
        .map_err(|e| CrictlError::Failed(format!("getting status of runtime: {e}")))?;
    let text = match args.output.as_str() {
        "json" => format!("{}\n", result.pretty(Escape::GoHtmlSafe)),
        "yaml" => format!("{}\n", result.to_yaml()),
        "go-template" => {
            return Err(CrictlError::Failed(
                "getting status of runtime: go-template output is not supported by skiff crictl; use -o json"
                    .to_owned(),
            ));
        }
        other => {
            return Err(CrictlError::Failed(format!(
                "getting status of runtime: unsupported format: {other:?}"
            )));
        }
    };
    session.console.print(&text)?;
    Ok(())
}

/// The object crictl builds from a StatusResponse, keys sorted.
fn status_object(response: &StatusResponse) -> Result<Json, String> {
    let status = match &response.status {
        Some(status) => protojson::message(status),
        None => Json::Object(Vec::new()),
    };
    let mut fields = vec![("status".to_owned(), status)];
    if !response.runtime_handlers.is_empty() {
        let handlers = response.runtime_handlers.iter().map(handler_json).collect();
        fields.push(("runtimeHandlers".to_owned(), Json::Array(handlers)));
    }
    if let Some(features) = &response.features {
        fields.push(("features".to_owned(), features_json(features)));
    }
    for (key, value) in &response.info {
        let parsed = if value.starts_with('{') {
            let parsed: serde_json::Value = serde_json::from_str(value)
                .map_err(|e| format!("unmarshal status info JSON: {e}"))?;
            Json::from_serde(&parsed)
        } else {
            Json::str(value.trim_matches('"'))
        };
        fields.push((key.clone(), parsed));
    }
    Ok(Json::Object(fields).sorted())
}

/// A RuntimeHandler as Go's `encoding/json` writes the generated struct:
/// snake_case keys, empty values left out.
fn handler_json(handler: &RuntimeHandler) -> Json {
    let mut fields = Vec::new();
    if !handler.name.is_empty() {
        fields.push(("name".to_owned(), Json::str(handler.name.clone())));
    }
    if let Some(features) = &handler.features {
        let mut inner = Vec::new();
        if features.recursive_read_only_mounts {
            inner.push(("recursive_read_only_mounts".to_owned(), Json::Bool(true)));
        }
        if features.user_namespaces {
            inner.push(("user_namespaces".to_owned(), Json::Bool(true)));
        }
        fields.push(("features".to_owned(), Json::Object(inner)));
    }
    Json::Object(fields)
}

fn features_json(features: &RuntimeFeatures) -> Json {
    let mut fields = Vec::new();
    if features.supplemental_groups_policy {
        fields.push(("supplemental_groups_policy".to_owned(), Json::Bool(true)));
    }
    Json::Object(fields)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use k8s_cri::v1::{RuntimeCondition, RuntimeHandlerFeatures, RuntimeStatus};

    use super::*;

    #[test]
    fn info_prints_status_handlers_features_and_parsed_info() {
        let response = StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![
                    RuntimeCondition {
                        r#type: "RuntimeReady".into(),
                        status: true,
                        reason: String::new(),
                        message: String::new(),
                    },
                    RuntimeCondition {
                        r#type: "NetworkReady".into(),
                        status: false,
                        reason: "NetworkPluginNotReady".into(),
                        message: "bridge <skiff0> is down".into(),
                    },
                ],
            }),
            info: HashMap::from([
                (
                    "config".to_owned(),
                    r#"{"podCIDR": "10.42.0.0/24", "n": 3}"#.to_owned(),
                ),
                ("golang".to_owned(), "\"go-less\"".to_owned()),
            ]),
            runtime_handlers: vec![RuntimeHandler {
                name: String::new(),
                features: Some(RuntimeHandlerFeatures {
                    recursive_read_only_mounts: true,
                    user_namespaces: false,
                }),
            }],
            features: Some(RuntimeFeatures {
                supplemental_groups_policy: true,
            }),
        };
        let expected = r#"{
  "config": {
    "n": 3,
    "podCIDR": "10.42.0.0/24"
  },
  "features": {
    "supplemental_groups_policy": true
  },
  "golang": "go-less",
  "runtimeHandlers": [
    {
      "features": {
        "recursive_read_only_mounts": true
      }
    }
  ],
  "status": {
    "conditions": [
      {
        "message": "",
        "reason": "",
        "status": true,
        "type": "RuntimeReady"
      },
      {
        "message": "bridge \u003cskiff0\u003e is down",
        "reason": "NetworkPluginNotReady",
        "status": false,
        "type": "NetworkReady"
      }
    ]
  }
}"#;
        assert_eq!(
            status_object(&response).unwrap().pretty(Escape::GoHtmlSafe),
            expected
        );
    }

    #[test]
    fn bad_info_json_is_an_error_and_nothing_extra_is_shown_when_unset() {
        let mut response = StatusResponse {
            status: None,
            info: HashMap::from([("config".to_owned(), "{not json".to_owned())]),
            runtime_handlers: vec![],
            features: None,
        };
        assert!(
            status_object(&response)
                .unwrap_err()
                .starts_with("unmarshal status info JSON")
        );
        response.info.clear();
        assert_eq!(
            status_object(&response).unwrap().pretty(Escape::GoHtmlSafe),
            "{\n  \"status\": {}\n}"
        );
    }
}
