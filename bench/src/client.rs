//! HTTPS clients with a node's or operator's certificate: event-stream
//! subscribers (the hub's `/v1/sub/…` or Nchan's `/sub/…`) and JSON posts.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{SendRequest, handshake};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use vantage_proto::sse::{Decoder, Event, Frame};

/// The loopback source address of node `i`: one address per node, as nodes
/// in the field have (the hub bounds handshakes per address), and enough
/// source ports for any N (Linux routes all of 127.0.0.0/8 to loopback).
pub fn node_source(i: usize) -> Ipv4Addr {
    let i = i as u32;
    Ipv4Addr::new(
        127,
        1 + (i / 62_500) as u8,
        ((i / 250) % 250) as u8,
        (i % 250 + 1) as u8,
    )
}

/// A TCP connection to `addr`, from `src` if given.
pub async fn dial(src: Option<Ipv4Addr>, addr: SocketAddr) -> Result<TcpStream> {
    match src {
        None => TcpStream::connect(addr).await,
        Some(ip) => {
            let sock = TcpSocket::new_v4()?;
            sock.bind(SocketAddr::new(ip.into(), 0))?;
            sock.connect(addr).await
        }
    }
    .with_context(|| format!("connect {addr}"))
}

async fn connect<B>(
    tls: Arc<ClientConfig>,
    src: Option<Ipv4Addr>,
    addr: SocketAddr,
) -> Result<SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = dial(src, addr).await?;
    tcp.set_nodelay(true)?;
    let stream = TlsConnector::from(tls)
        .connect(crate::pki::server_name(), tcp)
        .await
        .context("TLS handshake")?;
    let (sender, conn) = handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// An open event stream.
pub struct Subscription {
    body: Incoming,
    decoder: Decoder,
    ready: VecDeque<Event>,
}

/// Why a subscription was refused.
#[derive(Debug)]
pub struct Refused {
    /// HTTP status, or 0 when the TLS handshake itself failed.
    pub status: u16,
    /// Body or error text.
    pub text: String,
    /// The server's `Retry-After`, in whole seconds, if it sent one.
    pub retry_after: Option<std::time::Duration>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused ({}): {}", self.status, self.text.trim())
    }
}
impl std::error::Error for Refused {}

/// Opens `GET path` as an event stream, resuming after `last_id` if given.
/// Returns once the server has answered 200 (the subscription is live).
pub async fn subscribe(
    tls: Arc<ClientConfig>,
    addr: SocketAddr,
    path: &str,
    last_id: Option<&str>,
) -> Result<Subscription> {
    subscribe_from(None, tls, addr, path, last_id).await
}

/// [`subscribe`] from a given loopback source address.
pub async fn subscribe_from(
    src: Option<Ipv4Addr>,
    tls: Arc<ClientConfig>,
    addr: SocketAddr,
    path: &str,
    last_id: Option<&str>,
) -> Result<Subscription> {
    let mut sender = match connect::<Empty<Bytes>>(tls, src, addr).await {
        Ok(s) => s,
        Err(e) => {
            return Err(Refused {
                status: 0,
                text: format!("{e:#}"),
                retry_after: None,
            }
            .into());
        }
    };
    let mut req = hyper::Request::get(path)
        .header("host", addr.to_string())
        .header("accept", "text/event-stream");
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    let resp = sender.send_request(req.body(Empty::new())?).await?;
    let status = resp.status();
    if !status.is_success() {
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.trim().parse().ok())
            .map(std::time::Duration::from_secs);
        let body = resp.into_body().collect().await?.to_bytes();
        return Err(Refused {
            status: status.as_u16(),
            text: String::from_utf8_lossy(&body).into_owned(),
            retry_after,
        }
        .into());
    }
    Ok(Subscription {
        body: resp.into_body(),
        decoder: Decoder::default().with_last_id(last_id.map(str::to_string)),
        ready: VecDeque::new(),
    })
}

impl Subscription {
    /// The next event (comments skipped); `None` when the stream ends.
    pub async fn next_event(&mut self) -> Result<Option<Event>> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Ok(Some(e));
            }
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            for f in self.decoder.feed(&data) {
                if let Frame::Event(e) = f? {
                    self.ready.push_back(e);
                }
            }
        }
    }

    /// The last event id seen.
    pub fn last_id(&self) -> Option<String> {
        self.decoder.last_id().map(str::to_string)
    }
}

/// A keep-alive HTTPS connection for JSON posts (the operator publishing).
pub struct Poster {
    sender: SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl Poster {
    /// Connects with the given identity.
    pub async fn connect(tls: Arc<ClientConfig>, addr: SocketAddr) -> Result<Self> {
        Ok(Self {
            sender: connect(tls, None, addr).await?,
            addr,
        })
    }

    /// POSTs JSON; fails unless the answer is 2xx. Returns the answer body.
    pub async fn post(&mut self, path: &str, body: String) -> Result<String> {
        let req = hyper::Request::post(path)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        self.send(req).await
    }

    /// GETs; fails unless the answer is 2xx. Returns the answer body.
    pub async fn get(&mut self, path: &str) -> Result<String> {
        self.send(hyper::Request::get(path).body(Full::new(Bytes::new()))?)
            .await
    }

    async fn send(&mut self, mut req: hyper::Request<Full<Bytes>>) -> Result<String> {
        let path = req.uri().to_string();
        req.headers_mut()
            .insert("host", self.addr.to_string().parse()?);
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let text =
            String::from_utf8_lossy(&resp.into_body().collect().await?.to_bytes()).into_owned();
        if !status.is_success() {
            bail!("{path}: HTTP {status}: {text}");
        }
        Ok(text)
    }
}
