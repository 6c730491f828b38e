//! Who may use the console: a request must carry this session's token (in
//! the start URL's `?token=`, then as a cookie), name the console itself as
//! its `Host` (no DNS rebinding) and, when the browser says where it comes
//! from, come from the console's own `Origin` (no other page in the same
//! browser can drive it). Refusals are the hub's `ErrorBody` with a code.

use crate::error::{CliError, CliResult};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use vantage_proto::api::ErrorBody;

/// A refusal of the console (its own or one it passes on), as JSON.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    /// A refusal with its status and stable code.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl Refusal {
    /// The `ErrorBody` as JSON text.
    pub(crate) fn body_json(&self) -> String {
        let body = ErrorBody {
            error: self.message.clone(),
            code: self.code.to_string(),
        };
        serde_json::to_string(&body).expect("serialises")
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body_json(),
        )
            .into_response()
    }
}

/// The session: its token and where the console listens.
pub(crate) struct Session {
    token: String,
    addr: SocketAddr,
}

impl Session {
    /// A session with a fresh random token.
    pub(crate) fn new(addr: SocketAddr) -> CliResult<Self> {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| CliError::local("no randomness for the session token"))?;
        Ok(Self {
            token: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            addr,
        })
    }

    /// The URL to open: the console with the token.
    pub(crate) fn start_url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token)
    }

    /// Per port: two consoles on one machine must not overwrite each
    /// other's cookie (cookies do not tell ports apart).
    fn cookie_name(&self) -> String {
        format!("vantage_console_{}", self.addr.port())
    }

    /// The `Host` names this console answers to.
    fn host_ok(&self, host: &str) -> bool {
        let port = self.addr.port();
        [
            self.addr.to_string(),
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
        ]
        .iter()
        .any(|h| h == host)
    }

    fn token_ok(&self, given: &str) -> bool {
        // Constant time: the comparison must not tell how much of a guess was right.
        given.len() == self.token.len()
            && given
                .bytes()
                .zip(self.token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    fn cookie_token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

fn query_token(req: &Request) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// The middleware: host, origin, then token; a token in the query becomes
/// the session cookie and the browser is sent on to the same page without it.
pub(crate) async fn check(State(s): State<Arc<Session>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !s.host_ok(host) {
        return Refusal::new(
            StatusCode::FORBIDDEN,
            "wrong-host",
            format!("this console answers to {} only, not {host:?}", s.addr),
        )
        .into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && origin.to_str().ok() != Some(&format!("http://{host}"))
    {
        return Refusal::new(
            StatusCode::FORBIDDEN,
            "wrong-origin",
            "requests from other web pages are refused; use the console's own pages",
        )
        .into_response();
    }
    if let Some(t) = query_token(&req) {
        if !s.token_ok(&t) {
            return bad_token();
        }
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            s.cookie_name(),
            s.token
        );
        return (
            StatusCode::SEE_OTHER,
            [
                (
                    header::LOCATION,
                    HeaderValue::from_str(req.uri().path())
                        .unwrap_or(HeaderValue::from_static("/")),
                ),
                (
                    header::SET_COOKIE,
                    HeaderValue::from_str(&cookie).expect("ASCII"),
                ),
            ],
        )
            .into_response();
    }
    match s.cookie_token(headers) {
        Some(t) if s.token_ok(t) => next.run(req).await,
        Some(_) => bad_token(),
        None => Refusal::new(
            StatusCode::UNAUTHORIZED,
            "no-session",
            "no session token: open the URL that vantage console printed (it ends in ?token=...)",
        )
        .into_response(),
    }
}

fn bad_token() -> Response {
    Refusal::new(
        StatusCode::UNAUTHORIZED,
        "wrong-session",
        "wrong session token: this console was restarted; open the URL it printed last",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hosts_and_cookies() {
        let s = Session::new("127.0.0.1:4242".parse().unwrap()).unwrap();
        assert_eq!(s.token.len(), 32);
        assert!(s.start_url().starts_with("http://127.0.0.1:4242/?token="));
        assert!(s.token_ok(&s.token.clone()));
        assert!(!s.token_ok(&s.token[..31]));
        assert!(!s.token_ok(&"0".repeat(32)) || s.token == "0".repeat(32));
        assert!(s.host_ok("localhost:4242") && s.host_ok("127.0.0.1:4242"));
        assert!(!s.host_ok("evil.example:4242") && !s.host_ok("127.0.0.1:80"));
        let mut h = HeaderMap::new();
        let cookie = format!("other=1; vantage_console_4242={}", s.token);
        h.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
        assert_eq!(s.cookie_token(&h), Some(s.token.as_str()));
        assert_ne!(
            Session::new("127.0.0.1:4242".parse().unwrap())
                .unwrap()
                .token,
            s.token
        );
    }
}
