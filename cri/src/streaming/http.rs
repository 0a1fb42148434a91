//! Just enough HTTP/1.1 for upgrades: reading one request or response
//! head, writing one back. Everything after the head belongs to SPDY or
//! WebSocket, so bytes read past it are handed on, never dropped.

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Heads larger than this are refused (Go's default is 1 MiB; upgrade
/// requests are a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// A request line and its headers.
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    pub(crate) method: String,
    /// The path without the query.
    pub(crate) path: String,
    /// Decoded query parameters, in order.
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
}

/// A status line and its headers.
#[derive(Debug, Clone)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
}

impl RequestHead {
    /// Every value of `name` (case-insensitive), with comma-separated lists
    /// split as Go's `Header.Values` + `strings.Split` users do.
    pub(crate) fn header_list(&self, name: &str) -> Vec<String> {
        header_list(&self.headers, name)
    }

    /// The first value of `name`.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every value of the query parameter `name`.
    pub(crate) fn query_values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.query
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Connection` names `upgrade` and `Upgrade` is `websocket`, as
    /// wsstream.IsWebSocketRequest checks.
    pub(crate) fn is_websocket(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket"))
            && self.connection_upgrade()
    }

    /// `Connection` contains `upgrade` and `Upgrade` contains `spdy/3.1`,
    /// as apimachinery's SPDY upgrader checks (substring, any case).
    pub(crate) fn is_spdy_upgrade(&self) -> bool {
        let contains = |name: &str, what: &str| {
            self.header(name)
                .is_some_and(|v| v.to_ascii_lowercase().contains(what))
        };
        contains("connection", "upgrade") && contains("upgrade", "spdy/3.1")
    }

    fn connection_upgrade(&self) -> bool {
        self.header_list("connection")
            .iter()
            .any(|t| t.eq_ignore_ascii_case("upgrade"))
    }
}

impl ResponseHead {
    /// The first value of `name`.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn header_list(headers: &[(String, String)], name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads until a whole head is in `buf`, and parses it with `parse`,
/// which returns the head and its length. Bytes after the head stay in
/// `buf`.
async fn read_head<R, T>(
    io: &mut R,
    buf: &mut BytesMut,
    parse: impl Fn(&[u8]) -> io::Result<Option<(T, usize)>>,
) -> io::Result<T>
where
    R: AsyncRead + Unpin,
{
    loop {
        if let Some((head, len)) = parse(buf)? {
            let _ = buf.split_to(len);
            return Ok(head);
        }
        if buf.len() >= MAX_HEAD {
            return Err(invalid("HTTP head too large"));
        }
        buf.reserve(4096);
        if io.read_buf(buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the end of the HTTP head",
            ));
        }
    }
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect()
}

/// Reads a request head.
pub(crate) async fn read_request<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
) -> io::Result<RequestHead> {
    read_head(io, buf, |bytes| {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(bytes).map_err(|e| invalid(e.to_string()))? {
            httparse::Status::Partial => Ok(None),
            httparse::Status::Complete(len) => {
                let target = req.path.unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                Ok(Some((
                    RequestHead {
                        method: req.method.unwrap_or("").to_owned(),
                        path: percent_decode(path),
                        query: parse_query(query),
                        headers: owned_headers(req.headers),
                    },
                    len,
                )))
            }
        }
    })
    .await
}

/// Reads a response head.
pub(crate) async fn read_response<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
) -> io::Result<ResponseHead> {
    read_head(io, buf, |bytes| {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(bytes).map_err(|e| invalid(e.to_string()))? {
            httparse::Status::Partial => Ok(None),
            httparse::Status::Complete(len) => Ok(Some((
                ResponseHead {
                    status: resp.code.unwrap_or(0),
                    headers: owned_headers(resp.headers),
                },
                len,
            ))),
        }
    })
    .await
}

/// Reads up to `limit` bytes of a response body (for error messages).
pub(crate) async fn read_body<R: AsyncRead + Unpin>(
    io: &mut R,
    mut buf: BytesMut,
    head: &ResponseHead,
    limit: usize,
) -> String {
    let want = head
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(limit)
        .min(limit);
    let read_more = async {
        while buf.len() < want {
            match io.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read_more).await;
    buf.truncate(want);
    String::from_utf8_lossy(&buf).trim_end().to_owned()
}

/// Writes a whole response: status line, headers, and `body` with its
/// length (omitted for 101).
pub(crate) async fn write_response<W: AsyncWrite + Unpin>(
    io: &mut W,
    status: u16,
    headers: &[(&str, String)],
    body: &str,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if status != 101 {
        out.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            body.len()
        ));
    }
    out.push_str("\r\n");
    out.push_str(body);
    io.write_all(out.as_bytes()).await?;
    io.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "",
    }
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (as form values encode spaces).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                if let (Some(hi), Some(lo)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2])) {
                    out.push((hi << 4) | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_heads_parse_and_keep_what_follows() {
        let raw = b"POST /exec/abc?command=ls&command=-l%20a&port=80,81 HTTP/1.1\r\n\
            Host: 127.0.0.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: SPDY/3.1\r\n\
            X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
            X-Stream-Protocol-Version: v3.channel.k8s.io, v2.channel.k8s.io\r\n\r\n\x80\x03";
        let mut io = &raw[..];
        let mut buf = BytesMut::new();
        let head = read_request(&mut io, &mut buf).await.expect("head");
        assert_eq!(head.method, "POST");
        assert_eq!(head.path, "/exec/abc");
        let cmd: Vec<_> = head.query_values("command").collect();
        assert_eq!(cmd, ["ls", "-l a"]);
        assert!(head.is_spdy_upgrade());
        assert!(!head.is_websocket());
        assert_eq!(
            head.header_list("x-stream-protocol-version"),
            [
                "v4.channel.k8s.io",
                "v3.channel.k8s.io",
                "v2.channel.k8s.io"
            ]
        );
        assert_eq!(&buf[..], b"\x80\x03");
    }

    #[tokio::test]
    async fn truncated_heads_fail() {
        let mut io = &b"GET / HTTP/1.1\r\nHost: x\r\n"[..];
        let err = read_request(&mut io, &mut BytesMut::new())
            .await
            .expect_err("eof");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn percent_decoding_leaves_bad_escapes_alone() {
        assert_eq!(percent_decode("sh%20-c+%27a%26b%27"), "sh -c 'a&b'");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%e2%9c%93"), "\u{2713}");
    }
}
