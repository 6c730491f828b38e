//! Event-stream subscriptions served without hyper's connection state.
//!
//! A node's `GET /v1/sub/…` holds its connection for days while sending a
//! few bytes a minute. Served by hyper, each such connection keeps hyper's
//! 8 KiB read buffer and 8 KiB write buffer for its whole life (hyper's
//! minimum), half the memory of an idle subscriber. So the server reads the
//! first request head of every connection itself: a subscription that opens
//! its connection is passed through the same router (identity, limits,
//! metrics, handler) and its response is then written straight into the TLS
//! stream, close-delimited (`Connection: close`, no chunked framing); every
//! other connection goes to hyper with the bytes read so far put back in
//! front. See BENCHMARKS.md (fan-out, memory per idle connection).

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The request line a detached subscription starts with.
const PREFIX: &[u8] = b"GET /v1/sub/";
/// Longest request head read here; longer ones go to hyper, which refuses them.
const MAX_HEAD: usize = 8 * 1024;
/// Most header lines of a detached subscription.
const MAX_HEADERS: usize = 32;

/// What the first bytes of a connection are.
#[derive(Debug)]
pub enum Sniffed {
    /// A complete head of a streaming subscription, alone on its connection.
    Detach(Box<Request<Body>>),
    /// Anything else: hyper serves it, starting with these bytes.
    Hyper(Vec<u8>),
}

/// Reads the start of a connection until it is clear whether it opens a
/// streaming subscription (the caller bounds the time).
pub async fn sniff<S: AsyncRead + Unpin>(io: &mut S) -> std::io::Result<Sniffed> {
    let mut buf = Vec::with_capacity(512);
    loop {
        if buf.len() >= MAX_HEAD {
            return Ok(Sniffed::Hyper(buf));
        }
        let n = (&mut *io)
            .take((MAX_HEAD - buf.len()) as u64)
            .read_buf(&mut buf)
            .await?;
        match classify(&buf) {
            Some(Ok(req)) => return Ok(Sniffed::Detach(Box::new(req))),
            Some(Err(())) => return Ok(Sniffed::Hyper(buf)),
            None if n == 0 => return Ok(Sniffed::Hyper(buf)),
            None => {}
        }
    }
}

/// `Some(Ok)` for a complete head to detach, `Some(Err)` for anything that is
/// hyper's, `None` while more bytes are needed to tell.
pub fn classify(buf: &[u8]) -> Option<Result<Request<Body>, ()>> {
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return Some(Err(()));
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(buf) {
        Ok(httparse::Status::Partial) => None,
        // Pipelined bytes after the head, or a head hyper must refuse: hyper's.
        Ok(httparse::Status::Complete(len)) if len == buf.len() => Some(to_request(&parsed)),
        _ => Some(Err(())),
    }
}

fn to_request(head: &httparse::Request<'_, '_>) -> Result<Request<Body>, ()> {
    let path = head.path.ok_or(())?;
    // Long-poll answers end; hyper keeps their connection alive between polls.
    let query = path.split_once('?').map_or("", |(_, q)| q);
    if query.split('&').any(|kv| kv == "mode=poll") || head.version != Some(1) {
        return Err(());
    }
    let mut req = Request::builder().method(http::Method::GET).uri(path);
    for h in head.headers.iter() {
        req = req.header(h.name, h.value);
    }
    req.body(Body::empty()).map_err(|_| ())
}

/// The socket under a stream: waiting on it for the client costs no buffer,
/// where a pending read through TLS holds rustls' 4 KiB read buffer.
pub trait Socket {
    /// The TCP socket.
    fn socket(&self) -> &tokio::net::TcpStream;
}

/// Writes a response as HTTP/1.1, close-delimited, then its body frame by
/// frame, until the body ends or the client goes away.
pub async fn respond<S: AsyncRead + AsyncWrite + Socket + Unpin>(
    io: &mut S,
    resp: Response<Body>,
) -> std::io::Result<()> {
    let (parts, mut body) = resp.into_parts();
    // Only the body lives on with the stream; the head's map is dropped.
    let head = head(&parts);
    drop(parts);
    io.write_all(&head).await?;
    drop(head);
    io.flush().await?;
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(f)) => if let Ok(data) = f.into_data() {
                    io.write_all(&data).await?;
                    io.flush().await?;
                },
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(()),
            },
            r = io.socket().readable() => {
                r?;
                if client_closed(io).await? {
                    return Ok(());
                }
            }
        }
    }
}

/// Reads what the client sent, without waiting: a subscriber sends nothing
/// after its head, so anything read is dropped; true once its side ended.
async fn client_closed<S: AsyncRead + Unpin>(io: &mut S) -> std::io::Result<bool> {
    let mut sink = [0u8; 64];
    std::future::poll_fn(|cx| {
        let mut buf = ReadBuf::new(&mut sink);
        match Pin::new(&mut *io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().is_empty())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // Readiness without a whole TLS record: wait for the socket again.
            Poll::Pending => Poll::Ready(Ok(false)),
        }
    })
    .await
}

fn head(parts: &http::response::Parts) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let status = parts.status;
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for (name, value) in &parts.headers {
        if name == http::header::CONNECTION || name == http::header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

/// A stream with bytes already read put back in front, for hyper.
pub struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    /// `inner`, to be read starting with `prefix`.
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix: Bytes::from(prefix),
            inner,
        }
    }

    /// The stream (what was not read of the prefix is dropped).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn detached(text: &str) -> Option<bool> {
        classify(text.as_bytes()).map(|r| r.is_ok())
    }

    #[test]
    fn only_a_whole_streaming_subscription_head_is_detached() {
        let sub = "GET /v1/sub/all,node.n1 HTTP/1.1\r\nhost: h\r\nlast-event-id: 7\r\n\r\n";
        assert_eq!(detached(sub), Some(true));
        let req = classify(sub.as_bytes()).unwrap().unwrap();
        assert_eq!(req.uri().path(), "/v1/sub/all,node.n1");
        assert_eq!(req.headers()["last-event-id"], "7");
        // More bytes needed to tell.
        assert_eq!(detached("GET /v1/s"), None);
        assert_eq!(detached("GET /v1/sub/all HTTP/1.1\r\nhost"), None);
        // Hyper's: other routes, long-poll, pipelined bytes, HTTP/1.0, junk.
        for other in [
            "POST /v1/results HTTP/1.1\r\n\r\n",
            "GET /v1/nodes HTTP/1.1\r\n\r\n",
            "GET /v1/sub/all?mode=poll&timeout=5 HTTP/1.1\r\n\r\n",
            "GET /v1/sub/all HTTP/1.1\r\n\r\nGET /v1/nodes HTTP/1.1\r\n\r\n",
            "GET /v1/sub/all HTTP/1.0\r\n\r\n",
            "GET /v1/sub/a\0b HTTP/1.1\r\n\r\n",
            "\x16\x03\x01",
        ] {
            assert_eq!(detached(other), Some(false), "{other:?}");
        }
    }

    #[tokio::test]
    async fn rewind_hands_the_prefix_back_first() {
        let mut r = Rewind::new(b"GET ".to_vec(), &b"/ HTTP/1.1\r\n\r\n"[..]);
        let mut all = String::new();
        r.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn sniff_stops_at_the_head_bound() {
        let long = format!(
            "GET /v1/sub/all HTTP/1.1\r\nx: {}\r\n",
            "a".repeat(MAX_HEAD)
        );
        match sniff(&mut long.as_bytes()).await.unwrap() {
            Sniffed::Hyper(b) => assert_eq!(b.len(), MAX_HEAD),
            Sniffed::Detach(_) => panic!("an overlong head is hyper's to refuse"),
        }
    }

    proptest! {
        /// Whatever a client sends, classifying it never panics, and bytes
        /// that do not start like a subscription always go to hyper at once.
        #[test]
        fn classify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let r = classify(&bytes);
            let n = bytes.len().min(PREFIX.len());
            if bytes[..n] != PREFIX[..n] {
                prop_assert!(matches!(r, Some(Err(()))));
            }
        }
    }
}
