//! Starting the systems under test on loopback: the hub, nginx + Nchan (with or
//! without Redis) and Mosquitto, all with the network's certificates.

use crate::pki::Network;
use crate::procs::{Server, free_port, wait_listening};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use vantage_hub::datadir::DataDir;

/// The documented nginx configuration, a template (see its header).
pub const NGINX_TEMPLATE: &str = include_str!("../../scale/nginx-nchan.conf");
/// Where Debian's libnginx-mod-nchan puts the module.
pub const NCHAN_MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";

/// A running server with the files it logs to.
pub struct Running {
    /// The process.
    pub server: Server,
    /// Its log.
    pub log: PathBuf,
    /// Where clients connect.
    pub addr: SocketAddr,
}

/// The hub binary (`vantage-hub serve`), its limits raised for thousands of
/// nodes on one address and one operator publishing fast. `extra`: more `serve`
/// options (e.g. `--policy FILE`, `--unsafe-raw-publish`).
pub fn start_hub(
    exe: &Path,
    root: &Path,
    nchan_pub: Option<&str>,
    extra: &[&str],
) -> Result<Running> {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    start_hub_at(exe, root, addr, nchan_pub, extra)
}

/// [`start_hub`] on a given address (a restart on the address nodes know).
pub fn start_hub_at(
    exe: &Path,
    root: &Path,
    addr: SocketAddr,
    nchan_pub: Option<&str>,
    extra: &[&str],
) -> Result<Running> {
    let log = root.join(format!("hub-{}.log", addr.port()));
    let mut cmd = Command::new(exe);
    cmd.arg("--data-dir")
        .arg(root)
        .arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .args(["--max-connections", "200000", "--rate", "1000000"])
        .args(["--burst", "1000000", "--revocation-poll", "200ms"])
        .args(extra);
    if let Some(u) = nchan_pub {
        cmd.arg("--nchan-publish-url").arg(u);
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    let mut server = Server::spawn("vantage-hub", cmd, &log)?;
    wait_listening(&mut server, addr, &log)?;
    Ok(Running { server, log, addr })
}

/// nginx + Nchan from the documented template.
pub struct Nginx {
    /// The nginx master process and subscriber address.
    pub run: Running,
    /// The hub's publisher base URL (`http://127.0.0.1:PORT/pub`).
    pub publish_url: String,
    /// The CRL file nginx reads (refresh, then `reload`).
    pub crl: PathBuf,
}

impl Nginx {
    /// Renders the template into `dir` and starts nginx in the foreground.
    /// `redis`: the URL of a Redis server for the channel store, or memory.
    pub fn start(
        dd: &DataDir,
        dir: &Path,
        redis: Option<&str>,
        connections: usize,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        let (sub, publ) = (free_port()?, free_port()?);
        let crl = dir.join("crl.pem");
        std::fs::copy(dd.crl_pem(), &crl).context("copy the hub's CRL")?;
        let store = match redis {
            Some(_) => "nchan_redis_pass vantage_redis;",
            None => "",
        };
        let conf = render(&[
            ("NCHAN_MODULE", NCHAN_MODULE),
            ("WORKERS", "1"),
            ("NOFILE", &(connections * 2 + 1024).to_string()),
            ("CONNECTIONS", &(connections + 1024).to_string()),
            ("PREFIX", &dir.display().to_string()),
            ("CA", &dd.ca_cert().display().to_string()),
            ("CRL", &crl.display().to_string()),
            ("CERT", &dd.server_cert().display().to_string()),
            ("KEY", &dd.server_key().display().to_string()),
            ("STORE", store),
            ("REDIS_URL", redis.unwrap_or("redis://127.0.0.1:6379")),
            ("HOST", "127.0.0.1"),
            ("SUB_PORT", &sub.to_string()),
            ("PUB_PORT", &publ.to_string()),
        ])?;
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let log = dir.join("error.log");
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(&log)
            .arg("-c")
            .arg(&conf_path)
            .arg("-g")
            .arg("daemon off;");
        let mut server = Server::spawn("nginx", cmd, &dir.join("nginx.out"))?;
        let addr: SocketAddr = format!("127.0.0.1:{sub}").parse()?;
        wait_listening(&mut server, addr, &dir.join("nginx.out"))?;
        wait_listening(
            &mut server,
            format!("127.0.0.1:{publ}").parse()?,
            &dir.join("nginx.out"),
        )?;
        Ok(Self {
            run: Running { server, log, addr },
            publish_url: format!("http://127.0.0.1:{publ}/pub"),
            crl,
        })
    }

    /// Installs a new CRL (PEM, as `GET /v1/crl?format=pem` returns it) and
    /// reloads nginx: what `scale/refresh-crl.sh` does in production.
    pub fn refresh_crl(&self, pem: &[u8]) -> Result<()> {
        let tmp = self.crl.with_extension("new");
        std::fs::write(&tmp, pem)?;
        std::fs::rename(&tmp, &self.crl)?;
        self.run.server.signal(1)
    }
}

/// Fills `@NAME@` placeholders; every placeholder must be given.
pub fn render(vars: &[(&str, &str)]) -> Result<String> {
    let mut out = NGINX_TEMPLATE.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("@{k}@"), v);
    }
    let body: String = out
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    if let Some(i) = body.find('@') {
        let rest = &body[i..];
        anyhow::bail!(
            "nginx template placeholder left unfilled: {}",
            &rest[..rest.len().min(30)]
        );
    }
    Ok(out)
}

/// A throw-away Redis on loopback (no persistence).
pub fn start_redis(dir: &Path) -> Result<Running> {
    let port = free_port()?;
    let log = dir.join("redis.log");
    let mut cmd = Command::new("redis-server");
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir);
    let mut server = Server::spawn("redis-server", cmd, &log)?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    wait_listening(&mut server, addr, &log)?;
    Ok(Running { server, log, addr })
}

/// Mosquitto with TLS, `require_certificate`, the network's CA and CRL.
pub fn start_mosquitto(net: &Network, dir: &Path) -> Result<Running> {
    let port = free_port()?;
    let conf = format!(
        "# vantage benchmark peer: MQTT over TLS with client certificates\n\
         per_listener_settings false\n\
         listener {port} 127.0.0.1\n\
         cafile {ca}\n\
         certfile {cert}\n\
         keyfile {key}\n\
         crlfile {crl}\n\
         require_certificate true\n\
         use_identity_as_username true\n\
         allow_anonymous false\n\
         persistence false\n\
         max_queued_messages 5000\n\
         max_inflight_messages 0\n\
         max_connections -1\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         # The hub's key is readable by root only; when run as root keep root.\n\
         user root\n",
        ca = net.ca_file().display(),
        cert = net.dd.server_cert().display(),
        key = net.dd.server_key().display(),
        crl = net.dd.crl_pem().display(),
    );
    let conf_path = dir.join("mosquitto.conf");
    std::fs::write(&conf_path, conf)?;
    let log = dir.join("mosquitto.log");
    let mut cmd = Command::new("mosquitto");
    cmd.arg("-c").arg(&conf_path);
    let mut server = Server::spawn("mosquitto", cmd, &log)?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    wait_listening(&mut server, addr, &log)?;
    Ok(Running { server, log, addr })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[(&str, &str)] = &[
        ("NCHAN_MODULE", NCHAN_MODULE),
        ("WORKERS", "1"),
        ("NOFILE", "4096"),
        ("CONNECTIONS", "1024"),
        ("PREFIX", "/tmp/x"),
        ("CA", "/tmp/x/ca.pem"),
        ("CRL", "/tmp/x/crl.pem"),
        ("CERT", "/tmp/x/server.pem"),
        ("KEY", "/tmp/x/server.key"),
        ("STORE", ""),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("HOST", "127.0.0.1"),
        ("SUB_PORT", "8443"),
        ("PUB_PORT", "8081"),
    ];

    #[test]
    fn template_renders_with_every_placeholder() {
        let conf = render(ALL).unwrap();
        assert!(conf.contains("ssl_verify_client on;"));
        assert!(conf.contains("ssl_crl /tmp/x/crl.pem;"));
        assert!(conf.contains("listen 127.0.0.1:8081;"));
    }

    #[test]
    fn a_missing_placeholder_is_an_error() {
        let some: Vec<_> = ALL.iter().filter(|(k, _)| *k != "CRL").copied().collect();
        let e = render(&some).unwrap_err().to_string();
        assert!(e.contains("@CRL@"), "{e}");
    }
}
