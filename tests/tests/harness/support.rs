//! Helpers shared by the harness tests.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use skiff_tests::oci::{Compression, Digest};

/// What curl got back.
#[derive(Debug)]
pub struct CurlResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CurlResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("response body is not JSON")
    }
}

/// Runs `curl -sS <args>`; fails if curl itself fails (connection, TLS).
pub fn curl(args: &[&str]) -> Result<CurlResponse> {
    let dir = tempfile::tempdir()?;
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
        .context("running curl")?;
    if !output.status.success() {
        bail!(
            "curl {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let status = String::from_utf8_lossy(&output.stdout).trim().parse()?;
    let headers = std::fs::read_to_string(&headers)?
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = std::fs::read(&body).unwrap_or_default();
    Ok(CurlResponse {
        status,
        headers,
        body,
    })
}

/// Every `Accept` a pull sends.
pub const ACCEPT_MANIFESTS: &str = "Accept: application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// One entry of a tar read back with the `tar` crate.
#[derive(Debug, Clone)]
pub struct ReadEntry {
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: Option<String>,
    pub data: Vec<u8>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// Reads a (possibly compressed) tar into path -> entry, with an
/// independent implementation (the `tar` crate).
pub fn read_tar(bytes: &[u8], compression: Compression) -> Result<BTreeMap<String, ReadEntry>> {
    let tar = compression.decompress(bytes)?;
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut out = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut xattrs = BTreeMap::new();
        if let Some(extensions) = entry.pax_extensions()? {
            for extension in extensions {
                let extension = extension?;
                if let Some(name) = extension.key()?.strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(name.to_string(), extension.value_bytes().to_vec());
                }
            }
        }
        let header = entry.header().clone();
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        out.insert(
            path,
            ReadEntry {
                kind: header.entry_type(),
                mode: header.mode()?,
                uid: header.uid()?,
                gid: header.gid()?,
                mtime: header.mtime()?,
                link,
                data,
                xattrs,
            },
        );
    }
    Ok(out)
}

/// Checks that `bytes` hash to `digest`.
pub fn ensure_digest(bytes: &[u8], digest: &Digest) -> Result<()> {
    ensure!(
        &Digest::of(bytes) == digest,
        "content does not match {digest}"
    );
    Ok(())
}
