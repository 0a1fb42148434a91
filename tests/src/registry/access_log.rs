//! The registry's access log (Apache combined format on its stdout).

use std::fs;
use std::path::Path;

use crate::error::{Result, io_error};

/// One request the registry served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry {
    /// HTTP method.
    pub method: String,
    /// Request path (with query, if any).
    pub path: String,
    /// Response status.
    pub status: u16,
    /// Response body bytes.
    pub bytes: u64,
    /// The client's User-Agent.
    pub user_agent: String,
}

impl AccessLogEntry {
    /// True for a successful `GET` of `/v2/<any repo>/blobs/<digest>`.
    pub fn is_blob_download(&self, digest: &str) -> bool {
        self.method == "GET"
            && (200..300).contains(&self.status)
            && self
                .path
                .split('?')
                .next()
                .is_some_and(|p| p.starts_with("/v2/") && p.ends_with(&format!("/blobs/{digest}")))
    }

    /// True for a successful `GET` of `/v2/<any repo>/manifests/<reference>`.
    pub fn is_manifest_download(&self, reference: &str) -> bool {
        self.method == "GET"
            && (200..300).contains(&self.status)
            && self.path.split('?').next().is_some_and(|p| {
                p.starts_with("/v2/") && p.ends_with(&format!("/manifests/{reference}"))
            })
    }
}

/// Reads and parses an access log; unparsable lines are skipped.
pub(crate) fn read_access_log(path: &Path) -> Result<Vec<AccessLogEntry>> {
    let text = fs::read_to_string(path).map_err(io_error("read access log", path))?;
    Ok(text.lines().filter_map(parse_line).collect())
}

/// `127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "referer" "agent"`
fn parse_line(line: &str) -> Option<AccessLogEntry> {
    let mut quoted = line.split('"');
    let _prefix = quoted.next()?;
    let request = quoted.next()?;
    let numbers = quoted.next()?;
    let _referer = quoted.next();
    let _between = quoted.next();
    let user_agent = quoted.next().unwrap_or("").to_string();
    let mut request = request.split(' ');
    let method = request.next()?.to_string();
    let path = request.next()?.to_string();
    let mut numbers = numbers.split_whitespace();
    let status = numbers.next()?.parse().ok()?;
    let bytes = numbers.next().and_then(|b| b.parse().ok()).unwrap_or(0);
    Some(AccessLogEntry {
        method,
        path,
        status,
        bytes,
        user_agent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_lines_parse() {
        let line = r#"127.0.0.1 - - [23/Nov/2026:16:50:22 +0000] "GET /v2/a/blobs/sha256:ab HTTP/1.1" 200 1234 "" "curl/7.88.1""#;
        let entry = parse_line(line).unwrap_or_else(|| panic!("unparsed"));
        assert_eq!(entry.method, "GET");
        assert_eq!(entry.status, 200);
        assert_eq!(entry.bytes, 1234);
        assert_eq!(entry.user_agent, "curl/7.88.1");
        assert!(entry.is_blob_download("sha256:ab"));
    }
}
