//! The HTTPS server: TLS with client-certificate verification against the
//! network CA and its CRL, connection limits and timeouts, and the background
//! tasks (revocation watch, retention, registry upkeep).

use crate::api;
use crate::datadir::now;
use crate::hub::{Caller, Hub};
use crate::limits::{NoSlot, Slot};
use crate::sync::lock;
use anyhow::{Context, Result, bail};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tower::ServiceExt;

/// Listens and serves until the process is stopped.
pub async fn serve(hub: Arc<Hub>) -> Result<()> {
    let listener = TcpListener::bind(hub.cfg.listen).await.with_context(|| {
        format!(
            "cannot listen on {}; is another hub running, or use --listen",
            hub.cfg.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let url = hub.cfg.public_url.clone().unwrap_or_else(|| {
        let h = &hub.cfg.default_host;
        let host = if h.contains(':') {
            format!("[{h}]")
        } else {
            h.clone()
        };
        format!("https://{host}:{}", addr.port())
    });
    hub.public_url.set(url).expect("serve runs once");
    if hub.cfg.unsafe_raw_publish {
        tracing::warn!(
            "UNSAFE: --unsafe-raw-publish is on; operators can put unsigned payloads on any channel. Never use this for a real network."
        );
    }
    if hub.policy.current().is_none() {
        tracing::warn!("no --policy given: POST /v1/jobs refuses every job");
    }
    println!("listening on {addr}");
    if let Some(f) = &hub.cfg.addr_file {
        crate::datadir::write_atomic(f, addr.to_string().as_bytes(), 0o644)?;
    }
    tracing::info!(%addr, public_url = %hub.public_url(), "vantage-hub serving");
    // Under systemd (Type=notify): ready once listening. Elsewhere a no-op.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    spawn_background(&hub);
    let app = api::router(hub.clone());
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Counted before any byte is read, so silence costs the sender its own
        // address's slots first; released when the handshake ends.
        let Some(handshake) = hub.handshakes.acquire(
            &format!("addr:{}", peer.ip()),
            hub.cfg.max_handshakes_per_address,
        ) else {
            hub.metrics.conn_refused.inc();
            if let Some(left_out) = hub.refusal_log.allow(Instant::now()) {
                tracing::warn!(%peer, left_out, "connection refused: --max-handshakes-per-address ({}) reached", hub.cfg.max_handshakes_per_address);
            }
            continue;
        };
        let Some((slot, evicted)) = hub.admission.admit(peer.ip()) else {
            hub.metrics.conn_refused.inc();
            if let Some(left_out) = hub.refusal_log.allow(Instant::now()) {
                tracing::warn!(%peer, left_out, "connection refused: --max-connections ({}) established connections", hub.cfg.max_connections);
            }
            continue;
        };
        if evicted {
            hub.metrics.handshakes_evicted.inc();
            if let Some(left_out) = hub.refusal_log.allow(Instant::now()) {
                tracing::warn!(%peer, left_out, "--max-connections ({}) reached: the oldest unfinished TLS handshake was cancelled for this connection", hub.cfg.max_connections);
            }
        }
        let (hub, app) = (hub.clone(), app.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(hub, app, tcp, peer, handshake, slot).await {
                tracing::debug!(%peer, "connection: {e:#}");
            }
        });
    }
}

async fn connection(
    hub: Arc<Hub>,
    app: axum::Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    handshake: crate::limits::ConnGuard,
    slot: crate::limits::Handshake,
) -> Result<()> {
    tcp.set_nodelay(true)?;
    let activity = Arc::new(AtomicU64::new(0));
    let tracked = Tracked {
        inner: tcp,
        activity: activity.clone(),
        epoch: hub.started,
    };
    let Some((tls, caller, _slot)) = accept_tls(&hub, tracked, peer, handshake, slot).await? else {
        return Ok(());
    };
    let key = caller.limit_key(&peer);
    let guard = hub.conns.acquire(&key, hub.cfg.max_conns_per_identity);
    let over_limit = guard.is_none();
    // The verified identity travels with each request; the router's
    // extractors and limits read it from there.
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let x = req.extensions_mut();
        x.insert(caller.clone());
        x.insert(api::Peer(peer));
        if over_limit {
            x.insert(api::OverLimit);
        }
        app.clone().oneshot(req)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(hub.cfg.header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(tls), service)
        .without_shutdown();
    tokio::pin!(conn);
    let idle = hub.cfg.idle_timeout;
    let check = (idle / 4).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                // Boxed: held inline, the TLS stream and timer of a close
                // would stay reserved in every idle connection's task (2.5 KiB
                // per connection measured with make bench-fanout).
                Box::pin(linger(r?.io.into_inner(), hub.cfg.header_timeout)).await;
                break;
            }
            _ = tokio::time::sleep(check) => {
                let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                if hub.started.elapsed().saturating_sub(last) > idle {
                    tracing::debug!(%peer, "closing idle connection");
                    break;
                }
            }
        }
    }
    drop(guard);
    Ok(())
}

/// The TLS handshake and the connection's slot: the stream and its verified
/// caller, or `None` when the connection was refused or evicted (counted
/// and logged here or where the newer connection was admitted).
async fn accept_tls(
    hub: &Hub,
    tracked: Tracked<tokio::net::TcpStream>,
    peer: SocketAddr,
    handshake: crate::limits::ConnGuard,
    mut slot: crate::limits::Handshake,
) -> Result<Option<(TlsStream<Tracked<tokio::net::TcpStream>>, Caller, Slot)>> {
    let acceptor = TlsAcceptor::from(hub.tls.load_full());
    let shake = tokio::select! {
        r = tokio::time::timeout(hub.cfg.header_timeout, acceptor.accept(tracked)) => r,
        // Counted and logged where the newer connection was admitted.
        () = slot.evicted() => return Ok(None),
    };
    let tls = match shake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            hub.metrics.conn_refused.inc();
            if let Some(left_out) = hub.refusal_log.allow(Instant::now()) {
                tracing::info!(%peer, left_out, "TLS handshake refused: {e}");
            }
            return Ok(None);
        }
        Err(_) => bail!("TLS handshake timed out"),
    };
    drop(handshake);
    let caller = Caller::from_certs(tls.get_ref().1.peer_certificates());
    let identified = matches!(caller, Caller::Known { .. });
    match slot.finish(identified) {
        Ok(s) => Ok(Some((tls, caller, s))),
        Err(NoSlot::Evicted) => Ok(None),
        Err(NoSlot::AnonymousFull) => {
            hub.metrics.conn_refused.inc();
            if let Some(left_out) = hub.refusal_log.allow(Instant::now()) {
                tracing::warn!(%peer, left_out, "connection without a client certificate closed: such connections hold all of --max-connections ({}) but --reserved-for-identified ({})", hub.cfg.max_connections, hub.cfg.reserved_for_identified);
            }
            Ok(None)
        }
    }
}

/// Closes a connection the way nginx's lingering close does: say so
/// (TLS close_notify, then FIN), then read and drop what the client still
/// sends, for a bounded time and size. A client that was refused before its
/// request body was read (rate limit, wrong certificate, too large) is
/// usually still uploading; closing at once would reset the connection
/// under it and lose the answer it is about to read.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, within: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const MAX_LINGER_BYTES: usize = 8 << 20;
    let drain = async {
        if io.shutdown().await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 16 * 1024];
        let mut left = MAX_LINGER_BYTES;
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(within, drain).await;
}

/// A socket that records when bytes last moved, so idle or stalled
/// connections (a reader that stopped reading) can be closed.
struct Tracked<T> {
    inner: T,
    activity: Arc<AtomicU64>,
    epoch: Instant,
}

impl<T> Tracked<T> {
    fn touch(&self) {
        self.activity
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn spawn_background(hub: &Arc<Hub>) {
    // Revocations (made by `vantage-hub nodes revoke` on the same database):
    // new CRL, new TLS config, and open streams re-check their certificate.
    let h = hub.clone();
    tokio::spawn(async move {
        let mut marker = h.db(|db| db.revocation_marker()).await.ok();
        let mut tick = tokio::time::interval(h.cfg.revocation_poll);
        loop {
            tick.tick().await;
            let m = h.db(|db| db.revocation_marker()).await.ok();
            if m.is_some() && m != marker {
                marker = m;
                let h2 = h.clone();
                match tokio::task::spawn_blocking(move || h2.reload_tls()).await {
                    Ok(Ok(())) => {
                        tracing::info!("revocations changed: CRL and TLS configuration reloaded")
                    }
                    Ok(Err(e)) => tracing::error!("cannot reload the CRL: {e:#}"),
                    Err(e) => tracing::error!("CRL reload task failed: {e}"),
                }
                h.revoked_tx.send_modify(|g| *g += 1);
            }
        }
    });
    // Retention, registry upkeep, bucket sweep, release rollouts, CRL refresh before it expires.
    let h = hub.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        let mut crl_age = Instant::now();
        loop {
            tick.tick().await;
            let (keep, age) = (
                h.cfg.retention_entries,
                h.cfg.retention_age.as_secs() as i64,
            );
            if let Ok(p) = h.db(move |db| db.prune(keep, now() - age)).await {
                h.pruned_through.store(p, Ordering::SeqCst);
            }
            let mut seen: HashMap<String, Option<String>> = lock(&h.subscribed)
                .keys()
                .map(|k| (k.clone(), None))
                .collect();
            seen.extend(
                std::mem::take(&mut *lock(&h.seen))
                    .into_iter()
                    .map(|(k, a)| (k, Some(a))),
            );
            let seen: Vec<_> = seen.into_iter().collect();
            if let Err(e) = h.db(move |db| db.touch_nodes(&seen, now())).await {
                tracing::warn!("registry update: {e}");
            }
            h.rates.sweep(Instant::now());
            // Nodes leave a wave's count when not heard from: that can open the next.
            if !h.releases.is_empty()
                && let Err(e) = h.evaluate_releases().await
            {
                tracing::warn!("release rollouts: {e}");
            }
            if crl_age.elapsed() > Duration::from_secs(86400) {
                crl_age = Instant::now();
                let h2 = h.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || h2.reload_tls()).await {
                    tracing::error!("cannot refresh the CRL: {e:#}");
                }
            }
        }
    });
}
