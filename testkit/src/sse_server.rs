//! A scripted, misbehaving event-stream server on loopback: TLS with the hub's
//! own server certificate (so the agent trusts it as it would nginx + Nchan),
//! answering each connection with the next scripted body, then closing.
//! It records every request head, so tests see what the agent sent back.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::hub::Hub;

/// How many connections may be answered; the rest wait (see [`Hostile::release`]).
type Gate = Arc<(Mutex<usize>, Condvar)>;

/// The running server.
pub struct Hostile {
    /// Its loopback port.
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    answered: Gate,
}

impl Hostile {
    /// Serves `bodies[i]` on the i-th connection (the last one again after the
    /// script ends) as a `200 text/event-stream` response, then closes. A
    /// body starting `HTTP/1.1 ` is sent as the whole response instead.
    pub fn start(hub: &Hub, bodies: Vec<Vec<u8>>) -> Hostile {
        Self::start_gated(hub, bodies, usize::MAX)
    }

    /// Like `start`, but answers only the first `open` connections until
    /// `release` (the next ones wait).
    pub fn start_gated(hub: &Hub, bodies: Vec<Vec<u8>>, open: usize) -> Hostile {
        let cfg = server_config(hub);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let answered: Gate = Arc::new((Mutex::new(open), Condvar::new()));
        let gate = answered.clone();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(tcp) = stream else { continue };
                let body = &bodies[i.min(bodies.len() - 1)];
                serve(&cfg, tcp, i, body, &seen, &gate);
            }
        });
        Hostile {
            port,
            requests,
            answered,
        }
    }

    /// Answers every connection from now on.
    pub fn release(&self) {
        let (n, cv) = &*self.answered;
        *n.lock().unwrap() = usize::MAX;
        cv.notify_all();
    }

    /// The subscriber URL template for the agent's `[subscribe] url`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/sub/{{channels}}", self.port)
    }

    /// The request heads received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// The `Last-Event-ID` of request `i`, if it had one.
    pub fn last_event_id(&self, i: usize) -> Option<String> {
        self.requests()[i].lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("last-event-id")
                .then(|| v.trim().to_string())
        })
    }
}

/// TLS with the hub's server certificate and key.
fn server_config(hub: &Hub) -> Arc<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(hub.data().join("server.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(hub.data().join("server.key")).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    Arc::new(cfg)
}

/// Records connection `i`'s request head, waits for the gate, answers `body`, closes.
fn serve(
    cfg: &Arc<rustls::ServerConfig>,
    tcp: TcpStream,
    i: usize,
    body: &[u8],
    seen: &Mutex<Vec<String>>,
    gate: &Gate,
) {
    let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = String::new();
    {
        let mut r = BufReader::new(&mut tls);
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
    }
    seen.lock().unwrap().push(head);
    {
        let (n, cv) = &**gate;
        let mut n = n.lock().unwrap();
        while *n <= i {
            n = cv.wait(n).unwrap();
        }
    }
    // A scripted body that is a whole response (a refusal) goes as it is.
    if !body.starts_with(b"HTTP/1.1 ") {
        let _ = tls.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
        );
    }
    let _ = tls.write_all(body);
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}
