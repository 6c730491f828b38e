//! A blocking HTTPS client for the hub: TLS pinned to the network's CA, with
//! or without a client certificate; raw `(status, JSON)` answers for tests of
//! refusals, typed `vantage_proto` answers for the rest, and event streams.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
use vantage_proto::api::JobAccepted;
use vantage_proto::enrol::{EnrolRequest, EnrolResponse};
use vantage_proto::sse::{Decoder, Event, Frame};

/// A connection pool to one hub as one identity.
pub struct Client {
    /// The underlying agent (for requests the helpers do not cover).
    pub agent: ureq::Agent,
    /// `https://127.0.0.1:PORT`.
    pub base: String,
}

/// `(status, body)`, the body as JSON or, if it is not JSON, as a string.
pub type Answer = (u16, Value);

fn answer(mut r: ureq::http::Response<ureq::Body>) -> Result<Answer, ureq::Error> {
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string()?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

impl Client {
    /// A client trusting `ca_pem`, presenting `identity` (certificate, key PEM) if given.
    pub fn new(ca_pem: &str, identity: Option<(&str, &str)>, base: &str) -> Client {
        let ca = Certificate::from_pem(ca_pem.as_bytes()).unwrap().to_owned();
        let mut tls = TlsConfig::builder().root_certs(RootCerts::Specific(Arc::new(vec![ca])));
        if let Some((cert, key)) = identity {
            let cert = Certificate::from_pem(cert.as_bytes()).unwrap().to_owned();
            let key = PrivateKey::from_pem(key.as_bytes()).unwrap().to_owned();
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&[cert], key)));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Client {
            agent,
            base: base.to_string(),
        }
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.try_post(path, body).unwrap()
    }

    /// `POST path`, transport errors returned rather than panicking.
    pub fn try_post(&self, path: &str, body: &Value) -> Result<Answer, ureq::Error> {
        answer(
            self.agent
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .send(body.to_string())?,
        )
    }

    /// `PUT path` with raw bytes.
    pub fn put_bytes(&self, path: &str, bytes: &[u8]) -> Answer {
        answer(
            self.agent
                .put(format!("{}{path}", self.base))
                .header("content-type", "application/octet-stream")
                .send(bytes)
                .unwrap(),
        )
        .unwrap()
    }

    /// `GET path`, the body as bytes.
    pub fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_vec().unwrap())
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Answer {
        self.try_get(path).unwrap()
    }

    /// `GET path`, transport errors returned rather than panicking.
    pub fn try_get(&self, path: &str) -> Result<Answer, ureq::Error> {
        answer(self.agent.get(format!("{}{path}", self.base)).call()?)
    }

    /// `GET path`, which must answer `200` with a `T`.
    pub fn get_as<T: DeserializeOwned>(&self, path: &str) -> T {
        let (status, v) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {v}");
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("GET {path}: {e}: {v}"))
    }

    /// `POST path` with `body`, which must answer `expect` with a `T`.
    pub fn post_as<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        expect: u16,
    ) -> T {
        let (status, v) = self.post(path, &serde_json::to_value(body).unwrap());
        assert_eq!(status, expect, "POST {path}: {v}");
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("POST {path}: {e}: {v}"))
    }

    /// `POST /v1/enrol`, which must answer `200`.
    pub fn enrol(&self, req: &EnrolRequest) -> EnrolResponse {
        self.post_as("/v1/enrol", req, 200)
    }

    /// `POST /v1/jobs` of a signed job, which the hub must accept.
    pub fn submit(&self, signed: &Value) -> JobAccepted {
        self.post_as("/v1/jobs", signed, 201)
    }

    /// The results the hub holds for `job`.
    pub fn results(&self, job: &str) -> Vec<Value> {
        self.get_as(&format!("/v1/jobs/{job}/results"))
    }

    /// Opens an event stream; events arrive on the returned reader.
    pub fn sse(&self, path: &str, last_id: Option<&str>) -> Result<Sse, Answer> {
        let mut req = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("accept", "text/event-stream");
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let r = req.call().unwrap();
        if r.status().as_u16() != 200 {
            return Err(answer(r).unwrap());
        }
        let (tx, rx) = mpsc::channel();
        let reader = r.into_body().into_reader();
        std::thread::spawn(move || read_events(reader, &tx));
        Ok(Sse { rx })
    }
}

/// Decodes events off `reader` onto `tx`; `None` when the stream ends.
fn read_events(mut reader: impl Read, tx: &mpsc::Sender<Option<Event>>) {
    let mut dec = Decoder::new(64 * 1024, 1024 * 1024);
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = tx.send(None);
                return;
            }
            Ok(n) => {
                for f in dec.feed(&buf[..n]) {
                    if let Ok(Frame::Event(e)) = f
                        && tx.send(Some(e)).is_err()
                    {
                        return;
                    }
                }
            }
        }
    }
}

/// An open event stream.
pub struct Sse {
    rx: mpsc::Receiver<Option<Event>>,
}

/// What an event stream gave within a timeout.
#[derive(Debug)]
pub enum Next {
    /// An event.
    Event(Event),
    /// The stream ended.
    Closed,
    /// Nothing in time.
    Timeout,
}

impl Sse {
    /// The next event, the end of the stream, or nothing within `timeout`.
    pub fn next(&self, timeout: Duration) -> Next {
        match self.rx.recv_timeout(timeout) {
            Ok(Some(e)) => Next::Event(e),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => Next::Closed,
            Err(mpsc::RecvTimeoutError::Timeout) => Next::Timeout,
        }
    }

    /// The next event, which must come within ten seconds.
    pub fn event(&self) -> Event {
        match self.next(Duration::from_secs(10)) {
            Next::Event(e) => e,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

/// An event's data as JSON (the hub's envelope).
pub fn envelope(e: &Event) -> Value {
    serde_json::from_str(&e.data).unwrap()
}
