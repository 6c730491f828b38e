//! Plain DNS over UDP and TCP for the `dns` probe, as a hickory [`DnsHandle`]
//! so that the DNSSEC validator's own DNSKEY and DS fetches take the same path
//! as the probe's question.
//!
//! Why not hickory's UDP client: its socket is not connected, so an ICMP port
//! unreachable goes unnoticed and the probe waits for its whole timeout, and a
//! truncated answer reaches the validator before any retry over TCP (a large
//! DNSKEY RRset then validates as bogus). Here every truncated UDP answer is
//! asked again over TCP before anyone sees it, network failures keep their
//! cause, and the answers of one probe are remembered so the validator does
//! not ask the server the same question twice.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, Stream};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsHandle, NetError};
use hickory_resolver::proto::op::{DnsRequest, DnsResponse, Message};
use hickory_resolver::proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Why an exchange with the server produced no answer. The variant is the
/// stable code reported to operators (`code()`).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum WireError {
    /// UDP: the server's host answered ICMP port unreachable.
    #[error("port unreachable: nothing listens on {0} (ICMP port unreachable)")]
    PortUnreachable(SocketAddr),
    /// TCP: the connection was refused (RST).
    #[error("connection refused by {0}")]
    ConnectionRefused(SocketAddr),
    /// TCP: no connection within the timeout.
    #[error("TCP connect to {0} timed out after {1} ms")]
    ConnectTimeout(SocketAddr, u64),
    /// No answer within the timeout.
    #[error("no answer from {0} within {1} ms ({2})")]
    NoAnswer(SocketAddr, u64, &'static str),
    /// TCP: the server closed the connection before answering.
    #[error("{0} closed the TCP connection without answering")]
    Closed(SocketAddr),
    /// No route to the server (network or host unreachable).
    #[error("{0} is unreachable: {1}")]
    Unreachable(SocketAddr, String),
    /// The answer could not be parsed.
    #[error("malformed answer from {0}: {1}")]
    Malformed(SocketAddr, String),
    /// Another local I/O failure.
    #[error("{0}: {1}")]
    Io(SocketAddr, String),
}

impl WireError {
    /// The stable short code of this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PortUnreachable(..) => "port-unreachable",
            Self::ConnectionRefused(..) => "connection-refused",
            Self::ConnectTimeout(..) => "connect-timeout",
            Self::NoAnswer(..) => "no-answer",
            Self::Closed(..) => "connection-closed",
            Self::Unreachable(..) => "unreachable",
            Self::Malformed(..) => "malformed-answer",
            Self::Io(..) => "io-error",
        }
    }

    /// Whether the failure is a timeout rather than an error.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::ConnectTimeout(..) | Self::NoAnswer(..))
    }

    fn from_io(server: SocketAddr, tcp: bool, e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused if tcp => Self::ConnectionRefused(server),
            io::ErrorKind::ConnectionRefused => Self::PortUnreachable(server),
            io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => {
                Self::Unreachable(server, e.to_string())
            }
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => Self::Closed(server),
            _ => Self::Io(server, e.to_string()),
        }
    }
}

/// The transport an answer came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Used {
    /// UDP.
    Udp,
    /// TCP (asked for, or after a truncated UDP answer).
    Tcp,
}

type MemoKey = (Name, RecordType, bool, bool);

/// A UDP-or-TCP path to one server, shared by the probe's question and the
/// validator's fetches.
#[derive(Clone)]
pub struct Wire {
    server: SocketAddr,
    tcp_only: bool,
    timeout: Duration,
    /// Set the CD bit on every query: the probe validates itself, so a
    /// validating resolver must hand over bogus data instead of SERVFAIL.
    checking_disabled: bool,
    memo: Arc<Mutex<HashMap<MemoKey, (DnsResponse, Used)>>>,
}

impl Wire {
    /// A path to `server`, UDP first unless `tcp_only`.
    pub fn new(server: SocketAddr, tcp_only: bool, timeout: Duration, cd: bool) -> Wire {
        Wire {
            server,
            tcp_only,
            timeout,
            checking_disabled: cd,
            memo: Arc::default(),
        }
    }

    /// Sends `msg` and returns the answer with the transport it came over:
    /// UDP with a TCP retry when truncated, or TCP only.
    pub async fn exchange(&self, mut msg: Message) -> Result<(DnsResponse, Used), WireError> {
        msg.metadata.checking_disabled = self.checking_disabled;
        let key = msg.queries.first().map(|q| {
            (
                q.name().to_lowercase(),
                q.query_type(),
                msg.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
                msg.metadata.recursion_desired,
            )
        });
        if let Some(k) = &key
            && let Some(r) = self.memo.lock().unwrap_or_else(|p| p.into_inner()).get(k)
        {
            return Ok(r.clone());
        }
        let id = fastrand::u16(..);
        msg.metadata.id = id;
        let bytes = msg
            .to_vec()
            .map_err(|e| WireError::Io(self.server, format!("encoding the query: {e}")))?;
        let (response, used) = if self.tcp_only {
            (self.tcp(&bytes, id).await?, Used::Tcp)
        } else {
            let question = key.as_ref().map(|(n, t, ..)| (n.clone(), *t));
            let r = self.udp(&bytes, id, question).await?;
            if r.metadata.truncation {
                (self.tcp(&bytes, id).await?, Used::Tcp)
            } else {
                (r, Used::Udp)
            }
        };
        if let Some(k) = key {
            self.memo
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(k, (response.clone(), used));
        }
        Ok((response, used))
    }

    async fn udp(
        &self,
        query: &[u8],
        id: u16,
        question: Option<(Name, RecordType)>,
    ) -> Result<DnsResponse, WireError> {
        let server = self.server;
        let io = |e: io::Error| WireError::from_io(server, false, &e);
        let local: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let sock = UdpSocket::bind(local).await.map_err(io)?;
        // Connected, so that an ICMP port unreachable surfaces as ECONNREFUSED.
        sock.connect(server).await.map_err(io)?;
        let deadline = Instant::now() + self.timeout;
        // One resend at a third of the timeout covers a lost datagram.
        let resend_at = Instant::now() + self.timeout / 3;
        let mut resent = false;
        sock.send(query).await.map_err(io)?;
        let mut buf = vec![0u8; 65535];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(WireError::NoAnswer(
                    server,
                    self.timeout.as_millis() as u64,
                    "UDP, sent twice",
                ));
            }
            let wait = if resent {
                deadline - now
            } else {
                resend_at.saturating_duration_since(now)
            };
            match tokio::time::timeout(wait, sock.recv(&mut buf)).await {
                Err(_) if !resent => {
                    resent = true;
                    sock.send(query).await.map_err(io)?;
                }
                Err(_) => continue,
                Ok(Err(e)) => return Err(io(e)),
                Ok(Ok(n)) => {
                    // Anything but the answer to this query (a late answer, a
                    // stray or spoofed datagram) is ignored, as a resolver would.
                    if n < 2 || u16::from_be_bytes([buf[0], buf[1]]) != id {
                        continue;
                    }
                    let r = DnsResponse::from_buffer(buf[..n].to_vec())
                        .map_err(|e| WireError::Malformed(server, e.to_string()))?;
                    let echoed = r
                        .queries
                        .first()
                        .map(|q| (q.name().to_lowercase(), q.query_type()));
                    if question.is_some() && echoed != question {
                        continue;
                    }
                    return Ok(r);
                }
            }
        }
    }

    async fn tcp(&self, query: &[u8], id: u16) -> Result<DnsResponse, WireError> {
        let server = self.server;
        let ms = self.timeout.as_millis() as u64;
        let io = |e: io::Error| WireError::from_io(server, true, &e);
        let started = Instant::now();
        let mut s = tokio::time::timeout(self.timeout, TcpStream::connect(server))
            .await
            .map_err(|_| WireError::ConnectTimeout(server, ms))?
            .map_err(io)?;
        let left = self.timeout.saturating_sub(started.elapsed());
        let exchange = async {
            let mut framed = Vec::with_capacity(query.len() + 2);
            framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
            framed.extend_from_slice(query);
            s.write_all(&framed).await?;
            loop {
                let mut len = [0u8; 2];
                s.read_exact(&mut len).await?;
                let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
                s.read_exact(&mut buf).await?;
                if buf.len() >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                    return Ok::<_, io::Error>(buf);
                }
            }
        };
        let buf = tokio::time::timeout(left, exchange)
            .await
            .map_err(|_| WireError::NoAnswer(server, ms, "TCP"))?
            .map_err(io)?;
        DnsResponse::from_buffer(buf).map_err(|e| WireError::Malformed(server, e.to_string()))
    }
}

impl DnsHandle for Wire {
    type Response = Pin<Box<dyn Stream<Item = Result<DnsResponse, NetError>> + Send>>;
    type Runtime = TokioRuntimeProvider;

    fn send(&self, request: DnsRequest) -> Self::Response {
        let this = self.clone();
        let (msg, _) = request.into_parts();
        Box::pin(stream::once(async move {
            this.exchange(msg)
                .await
                .map(|(r, _)| r)
                .map_err(|e| NetError::from(e.to_string()))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::{MessageType, Query};

    fn query() -> Message {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("example.").unwrap(),
            RecordType::A,
        ));
        m
    }

    #[tokio::test]
    async fn icmp_port_unreachable_is_noticed_at_once() {
        // A port nothing listens on: bind, learn the port, close.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let w = Wire::new(server, false, Duration::from_secs(5), false);
        let t = Instant::now();
        let e = w.exchange(query()).await.unwrap_err();
        assert_eq!(e.code(), "port-unreachable", "{e}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout_named_no_answer() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let w = Wire::new(
            sock.local_addr().unwrap(),
            false,
            Duration::from_millis(300),
            false,
        );
        let e = w.exchange(query()).await.unwrap_err();
        assert_eq!(e.code(), "no-answer", "{e}");
        assert!(e.is_timeout());
    }

    #[tokio::test]
    async fn refused_tcp_connect_is_named() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let w = Wire::new(server, true, Duration::from_secs(2), false);
        let e = w.exchange(query()).await.unwrap_err();
        assert_eq!(e.code(), "connection-refused", "{e}");
        assert!(!e.is_timeout());
    }

    #[tokio::test]
    async fn a_tcp_connect_that_hangs_is_a_timeout() {
        // A listener that never accepts, its queue full: Linux drops
        // further SYNs, so the next connect hangs as to a black hole.
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = sock.listen(0).unwrap();
        let server = listener.local_addr().unwrap();
        let mut held = Vec::new();
        for _ in 0..4 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(server)).await
            {
                Ok(Ok(s)) => held.push(s),
                _ => break,
            }
        }
        let w = Wire::new(server, true, Duration::from_millis(300), false);
        let e = w.exchange(query()).await.unwrap_err();
        assert_eq!(e.code(), "connect-timeout", "{e}");
        assert!(e.is_timeout());
        drop(listener);
    }

    /// A loopback server answering every UDP query truncated and every TCP
    /// query in full, on the same port.
    async fn truncating_server() -> SocketAddr {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                let mut m = Message::from_vec(&buf[..n]).unwrap();
                m.metadata.message_type = MessageType::Response;
                m.metadata.truncation = true;
                udp.send_to(&m.to_vec().unwrap(), peer).await.unwrap();
            }
        });
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                let mut len = [0u8; 2];
                s.read_exact(&mut len).await.unwrap();
                let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
                s.read_exact(&mut buf).await.unwrap();
                let mut m = Message::from_vec(&buf).unwrap();
                m.metadata.message_type = MessageType::Response;
                m.metadata.authoritative = true;
                let out = m.to_vec().unwrap();
                s.write_all(&(out.len() as u16).to_be_bytes())
                    .await
                    .unwrap();
                s.write_all(&out).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_datagram_for_another_question_is_ignored() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = udp.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
            let right = Message::from_vec(&buf[..n]).unwrap();
            // Same id, another question first (a spoofing attempt), then the answer.
            let mut wrong = right.clone();
            wrong.queries.clear();
            wrong.add_query(Query::query(
                Name::from_ascii("other.").unwrap(),
                RecordType::A,
            ));
            for mut m in [wrong, right] {
                m.metadata.message_type = MessageType::Response;
                udp.send_to(&m.to_vec().unwrap(), peer).await.unwrap();
            }
        });
        let w = Wire::new(server, false, Duration::from_secs(2), false);
        let (r, _) = w.exchange(query()).await.unwrap();
        assert_eq!(r.queries[0].name(), &Name::from_ascii("example.").unwrap());
    }

    #[tokio::test]
    async fn truncated_udp_answers_are_asked_again_over_tcp() {
        let server = truncating_server().await;
        let w = Wire::new(server, false, Duration::from_secs(2), true);
        let (r, used) = w.exchange(query()).await.unwrap();
        assert_eq!(used, Used::Tcp);
        assert!(!r.metadata.truncation && r.metadata.authoritative);
        // The validator's fetches go through the DnsHandle side: same retry.
        let mut s = DnsHandle::lookup(
            &w,
            Query::query(Name::from_ascii("other.").unwrap(), RecordType::DNSKEY),
            Default::default(),
        );
        use futures_util::StreamExt;
        let r = s.next().await.unwrap().unwrap();
        assert!(!r.metadata.truncation && r.metadata.authoritative);
    }
}
