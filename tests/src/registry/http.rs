//! A minimal blocking HTTP/1.1 client over `std::net` (and rustls for the
//! TLS registry): one connection per request, `Connection: close`.
//!
//! The harness avoids an async client so that it works the same from plain
//! `#[test]`s and from inside a tokio runtime.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::error::{HarnessError, Result};

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP response, fully read.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The (de-chunked) body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One request.
#[derive(Debug, Clone)]
pub(crate) struct HttpRequest<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

/// `scheme://host[:port]` and the request target of an absolute URL.
pub(crate) struct ParsedUrl<'a> {
    pub tls: bool,
    pub authority: &'a str,
    pub target: &'a str,
}

pub(crate) fn parse_url(url: &str) -> Result<ParsedUrl<'_>> {
    let malformed = |reason: &str| HarnessError::MalformedHttp {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(malformed("not an absolute http(s) URL"));
    };
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(malformed("no host"));
    }
    Ok(ParsedUrl {
        tls,
        authority,
        target,
    })
}

/// Sends `request`; `tls` must be given for `https://` URLs.
pub(crate) fn send(
    request: &HttpRequest<'_>,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<HttpResponse> {
    let url = parse_url(request.url)?;
    let transport = |source: io::Error| HarnessError::Http {
        method: request.method.to_string(),
        url: request.url.to_string(),
        source,
    };
    let addr = if url.authority.contains(':') {
        url.authority.to_string()
    } else if url.tls {
        format!("{}:443", url.authority)
    } else {
        format!("{}:80", url.authority)
    };
    let stream = TcpStream::connect(&addr).map_err(transport)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(transport)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(transport)?;

    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: skiff-tests\r\nConnection: close\r\n",
        request.method, url.target, url.authority
    );
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !request.body.is_empty() || matches!(request.method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("\r\n");

    let raw = if url.tls {
        let config = tls.ok_or_else(|| HarnessError::MalformedHttp {
            url: request.url.to_string(),
            reason: "https URL without a TLS configuration".to_string(),
        })?;
        let host = url
            .authority
            .rsplit_once(':')
            .map_or(url.authority, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name =
            ServerName::try_from(host.to_string()).map_err(|e| HarnessError::MalformedHttp {
                url: request.url.to_string(),
                reason: format!("bad TLS server name: {e}"),
            })?;
        let connection = rustls::ClientConnection::new(Arc::clone(config), name)
            .map_err(|e| HarnessError::Crypto(format!("starting TLS to {}: {e}", request.url)))?;
        let mut tls_stream = rustls::StreamOwned::new(connection, stream);
        exchange(&mut tls_stream, head.as_bytes(), request.body).map_err(transport)?
    } else {
        let mut stream = stream;
        exchange(&mut stream, head.as_bytes(), request.body).map_err(transport)?
    };
    parse_response(&raw, request.method == "HEAD").map_err(|reason| HarnessError::MalformedHttp {
        url: request.url.to_string(),
        reason,
    })
}

fn exchange(stream: &mut (impl Read + Write), head: &[u8], body: &[u8]) -> io::Result<Vec<u8>> {
    stream.write_all(head)?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        // Go servers may close TLS without close_notify; the response is
        // complete by then (checked when parsing).
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(e) => Err(e),
    }
}

/// Parses a complete HTTP/1.1 response.
pub(crate) fn parse_response(raw: &[u8], head_only: bool) -> Result<HttpResponse, String> {
    let end = find(raw, b"\r\n\r\n").ok_or("response has no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[end + 4..];
    if head_only || status == 204 || status == 304 {
        return Ok(response);
    }
    let body = if response
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)?
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len:?}"))?;
        if rest.len() < len {
            return Err(format!("body truncated: {} of {len} bytes", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse { body, ..response })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or("chunk size line not terminated")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let size = usize::from_str_radix(&size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if data.len() < size {
            return Err("chunk truncated".to_string());
        }
        body.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let response = parse_response(raw, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.body, b"abcde");
    }

    #[test]
    fn urls_split_into_authority_and_target() {
        let url = parse_url("https://127.0.0.1:5000/v2/?x=1").unwrap_or_else(|e| panic!("{e}"));
        assert!(url.tls);
        assert_eq!(url.authority, "127.0.0.1:5000");
        assert_eq!(url.target, "/v2/?x=1");
    }
}
