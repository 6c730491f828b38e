//! The hub's data directory: CA key and certificate, server certificate,
//! database and the published CRL.

use crate::db::{CertRole, Db};
use crate::pki::Ca;
use anyhow::{Context, Result, bail};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// Unix time now, seconds.
pub use vantage_node::time::now;

impl DataDir {
    /// A data directory at `root` (not yet checked).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The network CA certificate (PEM), what nodes pin.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    /// The network CA key (PKCS#8 PEM, 0600).
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }
    /// The hub's TLS certificate chain (server certificate, then CA).
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("server.pem")
    }
    /// The hub's TLS key.
    pub fn server_key(&self) -> PathBuf {
        self.root.join("server.key")
    }
    /// The SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.root.join("hub.db")
    }
    /// The current CRL, PEM (for nginx `ssl_crl`).
    pub fn crl_pem(&self) -> PathBuf {
        self.root.join("crl.pem")
    }

    /// Creates a data directory: CA, server certificate for `names`, database, empty CRL.
    pub fn init(
        &self,
        network: &str,
        names: &[String],
        server_cert_lifetime: std::time::Duration,
    ) -> Result<()> {
        if names.is_empty() {
            bail!(
                "give at least one --name (the DNS name or IP address nodes use to reach the hub)"
            );
        }
        if self.ca_key().exists() {
            bail!(
                "{} already holds a hub (ca.key exists); use another --data-dir, or `server-cert` to reissue the server certificate",
                self.root.display()
            );
        }
        fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create {}", self.root.display()))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))?;
        let ca = Ca::generate(network)?;
        write_private(&self.ca_key(), &ca.key_pem())?;
        write_atomic(&self.ca_cert(), ca.cert_pem().as_bytes(), 0o644)?;
        let db = Db::open(&self.db_path())?;
        db.set_meta("network", network)?;
        self.issue_server_cert(&ca, &db, names, server_cert_lifetime)?;
        self.write_crl(&ca, &db)?;
        Ok(())
    }

    /// Issues a new server certificate and key for `names`.
    pub fn issue_server_cert(
        &self,
        ca: &Ca,
        db: &Db,
        names: &[String],
        lifetime: std::time::Duration,
    ) -> Result<()> {
        let (issued, key) = ca.issue_server(names, lifetime)?;
        write_private(&self.server_key(), &key)?;
        let chain = format!("{}{}", issued.cert_pem, ca.cert_pem());
        write_atomic(&self.server_cert(), chain.as_bytes(), 0o644)?;
        db.insert_cert(
            &issued.serial,
            CertRole::Server,
            &names[0],
            issued.not_after,
            now(),
        )?;
        db.set_meta("server_names", &names.join(","))?;
        Ok(())
    }

    /// Opens an existing data directory: CA and database.
    pub fn open(&self) -> Result<(Ca, Db)> {
        let read = |p: PathBuf| {
            fs::read_to_string(&p).with_context(|| {
                format!(
                    "cannot read {}; is {} a hub data directory? create one with `vantage-hub init --data-dir {} --name HOSTNAME`",
                    p.display(),
                    self.root.display(),
                    self.root.display()
                )
            })
        };
        let ca = Ca::load(&read(self.ca_cert())?, &read(self.ca_key())?)?;
        let db = Db::open(&self.db_path())
            .with_context(|| format!("cannot open {}", self.db_path().display()))?;
        Ok((ca, db))
    }

    /// Signs a new CRL from the database and writes `crl.pem`; returns its DER.
    pub fn write_crl(&self, ca: &Ca, db: &Db) -> Result<Vec<u8>> {
        let number = db.next_counter("crl_number")?;
        let crl = ca.crl(number, &db.revoked_certs(now())?)?;
        write_atomic(&self.crl_pem(), crl.pem()?.as_bytes(), 0o644)?;
        Ok(crl.der().to_vec())
    }
}

/// Writes a file readable only by its owner, atomically.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, text.as_bytes(), 0o600)
}

/// Writes a file atomically (temp file, fsync, rename, fsync of the
/// directory): the node library's one atomic write, so a power cut never
/// leaves a half-written or missing CA key, server key or CRL.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    vantage_node::durable::atomic_write(path, bytes, mode)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAYS_30: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

    #[test]
    fn init_creates_everything_once() {
        let d = tempfile::tempdir().unwrap();
        let dd = DataDir::new(d.path().join("hub"));
        dd.init("test", &["localhost".into(), "127.0.0.1".into()], DAYS_30)
            .unwrap();
        for p in [
            dd.ca_cert(),
            dd.ca_key(),
            dd.server_cert(),
            dd.server_key(),
            dd.db_path(),
            dd.crl_pem(),
        ] {
            assert!(p.exists(), "{}", p.display());
        }
        let mode = fs::metadata(dd.ca_key()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = dd.init("test", &["localhost".into()], DAYS_30).unwrap_err();
        assert!(err.to_string().contains("already holds a hub"));
        dd.open().unwrap();
    }
}
