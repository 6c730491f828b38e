//! The `http` probe: one GET or HEAD over HTTP or HTTPS, timed step by step
//! (DNS, connect, TLS, first byte, total). The request is HTTP/1.0 so the
//! response body is never chunked and ends with the connection.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ring::digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use vantage_proto::data::HttpData;
use vantage_proto::probe::{HttpArgs, HttpMethod};

use super::{Context, ProbeError, ms};

const MAX_HEAD: usize = 64 * 1024;

/// Runs an `http` probe.
pub async fn run(a: &HttpArgs, ctx: &Context) -> Result<HttpData, ProbeError> {
    let url = url::Url::parse(&a.url).map_err(|e| ProbeError::Failed(format!("bad URL: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| ProbeError::Failed("URL has no host".into()))?
        .trim_matches(['[', ']'])
        .to_string();
    let https = url.scheme() == "https";
    let port = url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let timeout = Duration::from_millis(a.timeout_ms.into());
    let t0 = Instant::now();
    let work = async {
        let (tcp, peer, dns_ms, connect_ms) = super::connect(&host, port, a.af, ctx).await?;
        let head_host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
            None => url.host_str().unwrap_or(&host).to_string(),
        };
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path = format!("{path}?{q}");
        }
        let method = match a.method {
            HttpMethod::GET => "GET",
            HttpMethod::HEAD => "HEAD",
        };
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {head_host}\r\nUser-Agent: vantage-agent/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            crate::version::VERSION
        );
        let (tls, r) = if https {
            let sni = host
                .parse::<std::net::IpAddr>()
                .is_err()
                .then_some(host.as_str());
            let h = super::tls::handshake(tcp, peer, sni, vec![b"http/1.1".to_vec()]).await?;
            let tls = (h.handshake_ms, super::tls::summary(&h));
            (Some(tls), exchange(h.stream, &request, a, t0).await?)
        } else {
            (None, exchange(tcp, &request, a, t0).await?)
        };
        let (tls_ms, tls) = tls.unzip();
        Ok(HttpData {
            url: a.url.clone(),
            peer: peer.to_string(),
            dns_ms,
            connect_ms,
            tls_ms,
            tls,
            status: r.status,
            reason: r.reason,
            headers: r.headers,
            first_byte_ms: r.first_byte_ms,
            head_bytes: Some(r.head_bytes),
            body_bytes: r.body.as_ref().map(|b| b.bytes),
            body_truncated: r.body.as_ref().map(|b| b.truncated),
            body_sha256: r.body.map(|b| b.sha256),
            content_length: r.content_length,
            total_ms: ms(t0.elapsed()),
        })
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        ProbeError::Timeout(format!("no complete response within {} ms", a.timeout_ms))
    })?
}

/// What the server answered.
struct Response {
    status: u16,
    reason: String,
    headers: BTreeMap<String, String>,
    first_byte_ms: f64,
    head_bytes: u64,
    /// `None` when the response has no body (HEAD, 204, 304).
    body: Option<Body>,
    content_length: Option<u64>,
}

/// The body as read, up to the job's `max_body`.
struct Body {
    bytes: u64,
    truncated: bool,
    sha256: String,
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &str,
    a: &HttpArgs,
    t0: Instant,
) -> Result<Response, ProbeError> {
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| ProbeError::Failed(format!("sending the request: {e}")))?;
    let (mut resp, rest) = read_head(&mut s, a, t0).await?;
    let head_only =
        matches!(a.method, HttpMethod::HEAD) || resp.status == 204 || resp.status == 304;
    if head_only {
        // The declared length is reported with the body only, as before.
        resp.content_length = None;
    } else {
        let cap = a.max_body as usize;
        resp.body = Some(read_body(&mut s, rest, cap, resp.content_length).await?);
    }
    Ok(resp)
}

/// Reads up to the end of the response head: the response without its body,
/// and what was read of the body.
async fn read_head<S: AsyncRead + Unpin>(
    s: &mut S,
    a: &HttpArgs,
    t0: Instant,
) -> Result<(Response, Vec<u8>), ProbeError> {
    let mut buf = Vec::with_capacity(4096);
    let mut first_byte_ms = None;
    loop {
        let mut chunk = [0u8; 4096];
        let n = read_some(s, &mut chunk).await?;
        if n == 0 {
            return Err(ProbeError::Failed(
                "the server closed the connection before a complete response head".into(),
            ));
        }
        let first = *first_byte_ms.get_or_insert_with(|| ms(t0.elapsed()));
        buf.extend_from_slice(&chunk[..n]);
        let mut hdrs = [httparse::EMPTY_HEADER; 96];
        let mut resp = httparse::Response::new(&mut hdrs);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let content_length = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<u64>()
                            .ok()
                    });
                let head = Response {
                    status: resp.code.unwrap_or(0),
                    reason: resp.reason.unwrap_or("").to_string(),
                    headers: pick_headers(resp.headers, &a.headers),
                    first_byte_ms: first,
                    head_bytes: len as u64,
                    body: None,
                    content_length,
                };
                return Ok((head, buf.split_off(len)));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => {
                return Err(ProbeError::Failed(format!(
                    "response head larger than {MAX_HEAD} bytes"
                )));
            }
            Err(e) => return Err(ProbeError::Failed(format!("malformed response: {e}"))),
        }
    }
}

/// Reads and hashes the body (starting with `pending`) up to `cap` bytes or
/// the declared `content_length`.
async fn read_body<S: AsyncRead + Unpin>(
    s: &mut S,
    mut pending: Vec<u8>,
    cap: usize,
    content_length: Option<u64>,
) -> Result<Body, ProbeError> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut body_len = 0usize;
    let mut truncated = false;
    loop {
        let room = cap - body_len;
        if pending.len() > room {
            pending.truncate(room);
            truncated = true;
        }
        ctx.update(&pending);
        body_len += pending.len();
        if truncated || content_length.is_some_and(|l| body_len as u64 >= l) {
            break;
        }
        let mut chunk = [0u8; 8192];
        let n = read_some(s, &mut chunk).await?;
        if n == 0 {
            break;
        }
        pending = chunk[..n].to_vec();
    }
    let hash = ctx.finish();
    Ok(Body {
        bytes: body_len as u64,
        truncated,
        sha256: hash.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
    })
}

async fn read_some<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> Result<usize, ProbeError> {
    match s.read(buf).await {
        Ok(n) => Ok(n),
        // Many servers close TLS without close_notify; what was read is complete.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(ProbeError::Failed(format!("reading the response: {e}"))),
    }
}

fn pick_headers(have: &[httparse::Header<'_>], wanted: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for w in wanted {
        let values: Vec<String> = have
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(w))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
            .collect();
        if !values.is_empty() {
            out.insert(w.to_ascii_lowercase(), values.join(", "));
        }
    }
    out
}
