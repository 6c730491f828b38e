//! Talking to the hub's operator API over HTTPS with the operator's client
//! certificate, trusting only the network CA (the pinned-CA client of
//! `vantage-provision`).

use crate::error::{CliError, CliResult};
use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Read;
use std::path::{Path, PathBuf};
use vantage_node::client::{self, ClientIdentity, PinnedCa, Timeouts};
use vantage_proto::api::ErrorBody;

/// Largest JSON answer read from the hub (a big job's results).
const MAX_ANSWER: u64 = 64 * 1024 * 1024;

/// Where the hub is and the operator's credentials.
#[derive(Debug, Clone, Args)]
pub struct HubOpts {
    /// Base URL of the hub, e.g. https://hub.example:8443
    #[arg(long, env = "VANTAGE_HUB", global = true, value_name = "URL")]
    pub hub: Option<String>,
    /// Directory holding what `vantage-hub operator issue NAME --out DIR`
    /// wrote: NAME.crt, NAME.key and ca.pem.
    #[arg(long, env = "VANTAGE_CREDS", global = true, value_name = "DIR")]
    pub creds: Option<PathBuf>,
    /// Operator certificate, PEM (overrides --creds).
    #[arg(long, env = "VANTAGE_CERT", global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Operator private key, PEM (overrides --creds).
    #[arg(long, env = "VANTAGE_KEY", global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The network CA certificate the hub's certificate must chain to (overrides --creds).
    #[arg(long, env = "VANTAGE_CA", global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// The files to use, after applying --creds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredFiles {
    /// Operator certificate.
    pub cert: PathBuf,
    /// Operator key.
    pub key: PathBuf,
    /// Network CA.
    pub ca: PathBuf,
}

impl HubOpts {
    /// Resolves the credential files: explicit flags win over `--creds DIR`.
    pub fn cred_files(&self) -> CliResult<CredFiles> {
        let from_dir = match &self.creds {
            Some(dir) => Some(creds_in(dir)?),
            None => None,
        };
        let pick = |explicit: &Option<PathBuf>, field: fn(&CredFiles) -> &PathBuf, flag: &str| {
            explicit
                .clone()
                .or_else(|| from_dir.as_ref().map(|c| field(c).clone()))
                .ok_or_else(|| {
                    CliError::usage(format!(
                        "no operator credentials: give --creds DIR (from vantage-hub operator issue) or {flag}"
                    ))
                })
        };
        Ok(CredFiles {
            cert: pick(&self.cert, |c| &c.cert, "--cert FILE")?,
            key: pick(&self.key, |c| &c.key, "--key FILE")?,
            ca: pick(&self.ca, |c| &c.ca, "--ca FILE")?,
        })
    }
}

/// Finds `NAME.crt`, `NAME.key` and `ca.pem` in `dir`.
fn creds_in(dir: &Path) -> CliResult<CredFiles> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::local(format!("cannot read --creds {}: {e}", dir.display())))?;
    let mut certs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    certs.sort();
    let cert = match certs.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(CliError::local(format!(
                "{} holds no NAME.crt; run vantage-hub operator issue NAME --out {}",
                dir.display(),
                dir.display()
            )));
        }
        _ => {
            return Err(CliError::local(format!(
                "{} holds several certificates; choose one with --cert and --key",
                dir.display()
            )));
        }
    };
    Ok(CredFiles {
        key: cert.with_extension("key"),
        cert,
        ca: dir.join("ca.pem"),
    })
}

/// A connection to the hub's operator API.
pub struct Hub {
    agent: ureq::Agent,
    base: String,
}

impl Hub {
    /// Loads the credentials and builds the client. `streaming` lifts the
    /// whole-call timeout, for following live results.
    pub fn connect(opts: &HubOpts, streaming: bool) -> CliResult<Self> {
        let base = opts
            .hub
            .clone()
            .ok_or_else(|| CliError::usage("which hub? give --hub URL or set VANTAGE_HUB"))?;
        if !base.starts_with("https://") {
            return Err(CliError::usage(format!(
                "--hub {base:?} must be an https:// URL"
            )));
        }
        let files = opts.cred_files()?;
        let ca = PinnedCa::load(&files.ca).map_err(|e| CliError::local(e.to_string()))?;
        let read = |p: &Path| {
            std::fs::read(p)
                .map_err(|e| CliError::local(format!("cannot read {}: {e}", p.display())))
        };
        let identity =
            ClientIdentity::from_pem(&read(&files.cert)?, &read(&files.key)?).map_err(|e| {
                CliError::local(format!(
                    "{} / {}: {e}",
                    files.cert.display(),
                    files.key.display()
                ))
            })?;
        let timeouts = Timeouts {
            call: if streaming {
                None
            } else {
                Timeouts::default().call
            },
            ..Timeouts::default()
        };
        Ok(Self {
            agent: client::agent(&ca, Some(&identity), timeouts),
            base: base.trim_end_matches('/').to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, e: ureq::Error) -> CliError {
        CliError::Unreachable(format!("cannot reach the hub at {}: {e}", self.base))
    }

    fn answer<T: DeserializeOwned>(&self, resp: ureq::http::Response<ureq::Body>) -> CliResult<T> {
        let status = resp.status().as_u16();
        let text = resp
            .into_body()
            .into_with_config()
            .limit(MAX_ANSWER)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| self.unreachable(e))?;
        if status >= 400 {
            return Err(refusal(status, &text));
        }
        serde_json::from_str(&text).map_err(|e| {
            CliError::refused(format!(
                "the hub answered HTTP {status} with something this CLI cannot read ({e}); is the hub the same version? {}",
                truncate(&text, 200)
            ))
        })
    }

    /// `GET path`, its JSON answer as `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> CliResult<T> {
        let resp = self
            .agent
            .get(self.url(path))
            .header("accept", "application/json")
            .call()
            .map_err(|e| self.unreachable(e))?;
        self.answer(resp)
    }

    /// `POST path` with a JSON body, its JSON answer as `T`.
    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> CliResult<T> {
        let bytes = serde_json::to_vec(body).expect("bodies serialise");
        let resp = self
            .agent
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .send(&bytes[..])
            .map_err(|e| self.unreachable(e))?;
        self.answer(resp)
    }

    /// `PUT path` with raw bytes (a release's binary), its JSON answer as `T`.
    pub fn put_bytes<T: DeserializeOwned>(&self, path: &str, bytes: &[u8]) -> CliResult<T> {
        let resp = self
            .agent
            .put(self.url(path))
            .header("content-type", "application/octet-stream")
            .header("accept", "application/json")
            .send(bytes)
            .map_err(|e| self.unreachable(e))?;
        self.answer(resp)
    }

    /// `GET path` (or `POST` it `body`) and hand back the hub's status and
    /// body as they are, refusals included: for the console, which passes
    /// the hub's answers and error codes on to the browser.
    pub fn raw(&self, path: &str, body: Option<&[u8]>) -> CliResult<(u16, Vec<u8>)> {
        let resp = match body {
            None => self.agent.get(self.url(path)).call(),
            Some(b) => self
                .agent
                .post(self.url(path))
                .header("content-type", "application/json")
                .send(b),
        }
        .map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .into_with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| self.unreachable(e))?;
        Ok((status, bytes))
    }

    /// The hub's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path` as an event stream; the body as a reader.
    pub fn stream(&self, path: &str) -> CliResult<impl Read + use<>> {
        let resp = self
            .agent
            .get(self.url(path))
            .header("accept", "text/event-stream")
            .call()
            .map_err(|e| self.unreachable(e))?;
        if resp.status().as_u16() >= 400 {
            return self
                .answer::<serde::de::IgnoredAny>(resp)
                .and_then(|_| Err(CliError::refused("the hub refused the results stream")));
        }
        Ok(resp.into_body().into_reader())
    }
}

/// The hub's [`ErrorBody`] as a refusal (or the text of whatever answered instead).
fn refusal(status: u16, text: &str) -> CliError {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(e) => CliError::refused(format!(
            "the hub refused (HTTP {status}, {}): {}",
            e.code, e.error
        )),
        Err(_) => CliError::refused(format!(
            "the hub refused (HTTP {status}): {}",
            truncate(text, 200)
        )),
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_dir_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let opts = |creds: Option<PathBuf>, cert: Option<PathBuf>| HubOpts {
            hub: None,
            creds,
            cert,
            key: None,
            ca: None,
        };
        assert!(matches!(
            opts(Some(dir.path().into()), None).cred_files(),
            Err(CliError::Local(_))
        ));
        std::fs::write(dir.path().join("alice.crt"), "x").unwrap();
        let f = opts(Some(dir.path().into()), None).cred_files().unwrap();
        assert_eq!(f.key, dir.path().join("alice.key"));
        assert_eq!(f.ca, dir.path().join("ca.pem"));
        let f = opts(Some(dir.path().into()), Some("/x.pem".into()))
            .cred_files()
            .unwrap();
        assert_eq!(f.cert, PathBuf::from("/x.pem"));
        assert!(matches!(
            opts(None, None).cred_files(),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn refusal_text() {
        let v = serde_json::json!({"error": "job refused: too few approvals: 1 of the 2 needed", "code": "too-few-approvals"});
        let e = refusal(422, &v.to_string());
        assert_eq!(
            e.to_string(),
            "the hub refused (HTTP 422, too-few-approvals): job refused: too few approvals: 1 of the 2 needed"
        );
        assert_eq!(e.exit_code(), 1);
        assert!(
            refusal(502, "Bad Gateway")
                .to_string()
                .contains("Bad Gateway")
        );
    }
}
