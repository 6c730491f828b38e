//! The smallest MQTT 3.1.1 client the benchmark needs (CONNECT, SUBSCRIBE at
//! QoS 1, PUBLISH at QoS 1 with PUBACK), over TLS with a client certificate.
//! Mosquitto is the peer the fan-out is compared with.

use anyhow::{Context, Result, bail};
use rustls::ClientConfig;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Largest packet accepted from the broker.
const MAX_PACKET: usize = 1 << 20;

/// A connected MQTT session.
pub struct Mqtt {
    io: TlsStream<TcpStream>,
    next_id: u16,
    /// Messages that arrived while waiting for an acknowledgement (a resumed
    /// session's queue arrives right after CONNACK).
    pending: VecDeque<Packet>,
}

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A packet from the broker: its first byte and its body.
pub struct Packet {
    /// Type and flags.
    pub kind: u8,
    /// Variable header and payload.
    pub body: Vec<u8>,
}

impl Mqtt {
    /// Connects; `clean = false` keeps the session (and queued QoS 1 messages) across reconnects.
    pub async fn connect(
        tls: Arc<ClientConfig>,
        (src, addr): (Option<Ipv4Addr>, SocketAddr),
        client_id: &str,
        clean: bool,
    ) -> Result<Self> {
        let tcp = crate::client::dial(src, addr).await?;
        tcp.set_nodelay(true)?;
        let io = TlsConnector::from(tls)
            .connect(crate::pki::server_name(), tcp)
            .await
            .context("TLS handshake")?;
        let mut m = Self {
            io,
            next_id: 1,
            pending: VecDeque::new(),
        };
        let mut body = Vec::new();
        string("MQTT", &mut body);
        body.push(4);
        body.push(if clean { 0x02 } else { 0x00 });
        body.extend_from_slice(&600u16.to_be_bytes());
        string(client_id, &mut body);
        m.io.write_all(&packet(0x10, &body)).await?;
        let ack = m.read().await?;
        if ack.kind != 0x20 || ack.body.len() != 2 || ack.body[1] != 0 {
            bail!("MQTT connection refused (CONNACK {:?})", ack.body);
        }
        Ok(m)
    }

    /// Subscribes to one topic at QoS 1 and waits for SUBACK.
    pub async fn subscribe(&mut self, topic: &str) -> Result<()> {
        let id = self.id();
        let mut body = id.to_be_bytes().to_vec();
        string(topic, &mut body);
        body.push(1);
        self.io.write_all(&packet(0x82, &body)).await?;
        loop {
            let p = self.read().await?;
            if p.kind == 0x90 {
                if p.body.get(2).is_some_and(|&q| q <= 1) {
                    return Ok(());
                }
                bail!("MQTT subscription to {topic} refused");
            }
            self.keep(p);
        }
    }

    /// Publishes at QoS 1 and waits for PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<()> {
        let id = self.id();
        let mut body = Vec::new();
        string(topic, &mut body);
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(payload);
        self.io.write_all(&packet(0x32, &body)).await?;
        loop {
            let p = self.read().await?;
            if p.kind == 0x40 && p.body.get(..2) == Some(&id.to_be_bytes()[..]) {
                return Ok(());
            }
            self.keep(p);
        }
    }

    /// The payload of the next PUBLISH (acknowledged if QoS 1).
    pub async fn next_message(&mut self) -> Result<Vec<u8>> {
        loop {
            let p = match self.pending.pop_front() {
                Some(p) => p,
                None => self.read().await?,
            };
            if p.kind & 0xf0 != 0x30 {
                continue;
            }
            let qos = (p.kind >> 1) & 3;
            let tlen = u16::from_be_bytes([p.body[0], p.body[1]]) as usize;
            let mut at = 2 + tlen;
            if qos > 0 {
                let Some(&[a, b]) = p.body.get(at..at + 2) else {
                    bail!("MQTT PUBLISH without a packet id");
                };
                at += 2;
                self.io.write_all(&[0x40, 2, a, b]).await?;
            }
            let Some(payload) = p.body.get(at..) else {
                bail!("MQTT PUBLISH topic runs past the packet");
            };
            return Ok(payload.to_vec());
        }
    }

    /// Sends DISCONNECT and closes.
    pub async fn disconnect(mut self) -> Result<()> {
        self.io.write_all(&[0xe0, 0]).await?;
        self.io.shutdown().await?;
        Ok(())
    }

    fn keep(&mut self, p: Packet) {
        if p.kind & 0xf0 == 0x30 {
            self.pending.push_back(p);
        }
    }

    fn id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        id
    }

    async fn read(&mut self) -> Result<Packet> {
        let kind = self.io.read_u8().await?;
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let b = self.io.read_u8().await?;
            len |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 21 {
                bail!("MQTT remaining length too long");
            }
        }
        if len > MAX_PACKET {
            bail!("MQTT packet of {len} bytes is over the {MAX_PACKET}-byte limit");
        }
        let mut body = vec![0; len];
        self.io.read_exact(&mut body).await?;
        if kind & 0xf0 == 0x30 && body.len() < 2 {
            bail!("MQTT PUBLISH too short");
        }
        Ok(Packet { kind, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_length_encoding() {
        for (n, want) in [
            (0usize, vec![0u8]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xff, 0x7f]),
            (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
        ] {
            let mut out = Vec::new();
            remaining_length(n, &mut out);
            assert_eq!(out, want, "{n}");
        }
    }
}
