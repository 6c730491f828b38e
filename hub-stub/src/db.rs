//! The hub's SQLite database: tokens, nodes, pending enrolments, issued
//! certificates, the job log, jobs with their audit trail, results, and agent
//! releases with what nodes report of them (`releases`).
//!
//! WAL mode with `synchronous=FULL`: a commit is on disk before the call
//! returns, so what the hub acknowledges survives a power cut or `kill -9`.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
pub use vantage_proto::api::{AuditEntry, JobRecord};
use vantage_proto::node::Capabilities;
use vantage_proto::owner::OwnerDigest;

mod releases;
pub use releases::{NodeRelease, ReleaseRow, ReleaseStored};

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite refused.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file kept beside the database (a release's binary) could not be written.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// A JSON column did not parse.
    #[error("database holds invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The database was written by a newer hub: its tables may mean what this
    /// one does not know, so it is left untouched.
    #[error(
        "the database is at schema version {found}, newer than this vantage-hub knows \
         (up to {SCHEMA_VERSION}): a newer release wrote it. Run that release (or a later one) \
         again, or restore a backup this release made; see \"Upgrades\" in docs/hub.md"
    )]
    TooNew {
        /// The database's `user_version`.
        found: u32,
    },
}

type Result<T> = std::result::Result<T, DbError>;

/// A node's targeting attributes (what a token or a declaration gives it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Attrs {
    /// ISO 3166-1 alpha-2 country.
    pub country: String,
    /// Continent code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continent: Option<String>,
    /// Autonomous system number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Attrs {
    /// The attributes of node `id`, as selections match them.
    pub fn for_node(&self, id: &str) -> vantage_proto::channel::NodeAttrs {
        vantage_proto::channel::NodeAttrs {
            node_id: id.to_string(),
            country: self.country.clone(),
            continent: self.continent.clone(),
            asn: self.asn,
            tags: self.tags.clone(),
        }
    }
}

/// One enrolment token.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Attributes the node gets.
    pub attrs: Attrs,
    /// Expiry, Unix seconds.
    pub expires: i64,
    /// Fingerprint of the key that used it, once used.
    pub used_fp: Option<String>,
    /// Node it enrolled, once used.
    pub node_id: Option<String>,
}

/// A token as listed (the token text itself is never stored).
#[derive(Debug, Clone, Serialize)]
pub struct TokenSummary {
    /// SHA-256 of the token text, hex.
    pub hash: String,
    /// Attributes the node gets.
    pub attrs: Attrs,
    /// Creation, Unix seconds.
    pub created: i64,
    /// Expiry, Unix seconds.
    pub expires: i64,
    /// Node it enrolled, once used.
    pub node_id: Option<String>,
}

/// One node of the registry.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    /// Node id.
    pub id: String,
    /// Targeting attributes.
    #[serde(flatten)]
    pub attrs: Attrs,
    /// Fingerprint of the node's current key.
    pub key_fingerprint: String,
    /// Current certificate, PEM.
    #[serde(skip)]
    pub cert_pem: String,
    /// Current certificate's serial.
    pub cert_serial: String,
    /// Current certificate's expiry, Unix seconds.
    pub cert_not_after: i64,
    /// Enrolment time, Unix seconds.
    pub enrolled: i64,
    /// `token` or `approved`.
    pub enrolled_via: String,
    /// Revocation time, if revoked.
    pub revoked: Option<i64>,
    /// Last request or open subscription, Unix seconds.
    pub last_seen: Option<i64>,
    /// Agent version from the last heartbeat.
    pub agent_version: Option<String>,
    /// Peer address of the last request.
    pub address: Option<String>,
    /// What it last reported it can do, if it did.
    pub caps: Option<Capabilities>,
    /// What it last reported of its owner's policy, if it did.
    pub owner: Option<OwnerDigest>,
    /// What its last heartbeat said of agent releases, if it sent one since
    /// the hub knows releases.
    pub release: Option<NodeRelease>,
}

/// One pending (token-less) enrolment.
#[derive(Debug, Clone, Serialize)]
pub struct PendingRow {
    /// Key fingerprint (SHA-256 of the SPKI, hex).
    pub fingerprint: String,
    /// What the node declared.
    pub declared: Attrs,
    /// First request, Unix seconds.
    pub created: i64,
    /// Last poll, Unix seconds.
    pub last_poll: i64,
    /// Peer address of the last poll.
    pub address: Option<String>,
    /// Approval time.
    pub approved: Option<i64>,
    /// Node id once issued.
    pub node_id: Option<String>,
}

/// A node's request to change its country or continent (`POST /v1/attrs`),
/// which takes the administrator's approval.
#[derive(Debug, Clone, Serialize)]
pub struct AttrChangeRow {
    /// The node.
    pub node_id: String,
    /// The country asked for.
    pub country: String,
    /// The continent asked for.
    pub continent: Option<String>,
    /// Request time (last one), Unix seconds.
    pub requested: i64,
    /// Approval time; the change is made at the node's next request.
    pub approved: Option<i64>,
}

/// One entry of the job log, as stored.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Sequence number (the SSE id).
    pub seq: u64,
    /// Job id, if the payload is a signed job.
    pub job_id: Option<String>,
    /// Publish time, Unix seconds.
    pub time: i64,
    /// Channels it was published on.
    pub channels: Vec<String>,
    /// The payload, JSON text.
    pub payload: String,
}

/// A result to store.
#[derive(Debug, Clone)]
pub struct NewResult {
    /// The job it answers.
    pub job_id: String,
    /// The node that sent it.
    pub node_id: String,
    /// The run of the job.
    pub seq: u64,
    /// When the hub received it, Unix seconds.
    pub received: i64,
    /// The result, JSON text.
    pub body: String,
}

/// A stored result.
#[derive(Debug, Clone)]
pub struct ResultRow {
    /// Row id (SSE id of the results stream).
    pub id: i64,
    /// The result as the node sent it, JSON text.
    pub body: String,
}

/// Role of a certificate holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// A node.
    Node,
    /// An operator.
    Operator,
    /// The hub's TLS server.
    Server,
}

impl CertRole {
    fn as_str(self) -> &'static str {
        match self {
            CertRole::Node => "node",
            CertRole::Operator => "operator",
            CertRole::Server => "server",
        }
    }
}

/// What the registry knows about a certificate serial.
#[derive(Debug, Clone)]
pub struct CertRow {
    /// Role.
    pub role: String,
    /// Node id or operator name.
    pub subject: String,
    /// Revocation time.
    pub revoked: Option<i64>,
}

/// Bounds on the enrolments waiting for approval.
#[derive(Debug, Clone, Copy)]
pub struct PendingCaps {
    /// In all.
    pub total: u64,
    /// From one source address.
    pub per_address: u64,
}

/// Which bound a new pending enrolment met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingFull {
    /// `PendingCaps::total`.
    Total,
    /// `PendingCaps::per_address`.
    Address,
}

/// The schema as ordered migrations: entry `i` takes a database from schema
/// version `i` to `i + 1` (SQLite's `user_version`). Append only: databases in
/// the field have run every released entry, so changing one would leave them
/// with a schema no code describes.
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1,
    DROP_SUPERSEDED_PENDING,
    JOBS_BY_SEQ,
    MANDATES,
    NODE_CAPS,
    RELEASES,
];

/// The schema version this hub writes and reads.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Version 1: the tables of every hub before schema versions. `IF NOT EXISTS`
/// because such a hub's database is at version 0, like a new one, and already
/// holds some or all of them (a hub from before `attr_changes` lacks that one).
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens(
  hash TEXT PRIMARY KEY, attrs TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL,
  used_fp TEXT, node_id TEXT);
CREATE TABLE IF NOT EXISTS nodes(
  id TEXT PRIMARY KEY, attrs TEXT NOT NULL, key_fp TEXT NOT NULL, cert_pem TEXT NOT NULL,
  cert_serial TEXT NOT NULL, cert_not_after INTEGER NOT NULL, enrolled INTEGER NOT NULL,
  via TEXT NOT NULL, revoked INTEGER, last_seen INTEGER, agent_version TEXT, address TEXT);
CREATE TABLE IF NOT EXISTS pending(
  fp TEXT PRIMARY KEY, csr TEXT NOT NULL, declared TEXT NOT NULL, created INTEGER NOT NULL,
  last_poll INTEGER NOT NULL, address TEXT, approved INTEGER, node_id TEXT);
CREATE TABLE IF NOT EXISTS attr_changes(
  node_id TEXT PRIMARY KEY, country TEXT NOT NULL, continent TEXT, requested INTEGER NOT NULL,
  approved INTEGER);
CREATE TABLE IF NOT EXISTS certs(
  serial TEXT PRIMARY KEY, role TEXT NOT NULL, subject TEXT NOT NULL, not_after INTEGER NOT NULL,
  issued INTEGER NOT NULL, revoked INTEGER);
CREATE INDEX IF NOT EXISTS certs_subject ON certs(role, subject);
CREATE TABLE IF NOT EXISTS joblog(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT, time INTEGER NOT NULL,
  channels TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS joblog_channels(
  channel TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(channel, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs(
  id TEXT PRIMARY KEY, seq INTEGER NOT NULL, signed_job TEXT NOT NULL, submitted INTEGER NOT NULL,
  submitter TEXT NOT NULL, proposer TEXT, signers TEXT NOT NULL, channels TEXT NOT NULL,
  nodes TEXT NOT NULL, target TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_target ON jobs(target, submitted);
CREATE TABLE IF NOT EXISTS results(
  id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, node_id TEXT NOT NULL,
  seq INTEGER NOT NULL, received INTEGER NOT NULL, body TEXT NOT NULL,
  UNIQUE(job_id, node_id, seq));
CREATE TABLE IF NOT EXISTS gaps(
  id INTEGER PRIMARY KEY AUTOINCREMENT, node_id TEXT NOT NULL, received INTEGER NOT NULL,
  body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit(
  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_subject ON audit(subject);
";

/// Version 2: pending entries an older hub left behind when a waiting key
/// enrolled with a token later (`insert_node` drops them since). A key that
/// waits again after its node's certificate expired waits since after the
/// enrolment, and stays.
const DROP_SUPERSEDED_PENDING: &str = "
DELETE FROM pending WHERE node_id IS NULL AND EXISTS
  (SELECT 1 FROM nodes WHERE key_fp=pending.fp AND via='token' AND enrolled>=pending.created);
";

/// Version 3: `GET /v1/jobs` pages through jobs newest first by log sequence.
const JOBS_BY_SEQ: &str = "CREATE INDEX IF NOT EXISTS jobs_seq ON jobs(seq);";

/// Version 4: mandates. `job_mandates` holds, for each job ordered under a
/// mandate, what the mandate's hourly rates per operator and per target are
/// counted from (filled in for jobs already stored), so the counts survive
/// restarts; `mandate_revocations` the revocations approvers sent, which
/// nodes fetch. Idempotent, like every step.
const MANDATES: &str = "
CREATE TABLE IF NOT EXISTS job_mandates(
  job_id TEXT PRIMARY KEY, mandate TEXT NOT NULL, operator TEXT NOT NULL, target TEXT NOT NULL,
  submitted INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS job_mandates_operator ON job_mandates(mandate, operator, submitted);
CREATE INDEX IF NOT EXISTS job_mandates_target ON job_mandates(mandate, target, submitted);
INSERT OR IGNORE INTO job_mandates(job_id,mandate,operator,target,submitted)
  SELECT id, json_extract(signed_job,'$.job.mandate'), coalesce(proposer,''), target, submitted
  FROM jobs WHERE json_extract(signed_job,'$.job.mandate') IS NOT NULL;
CREATE TABLE IF NOT EXISTS mandate_revocations(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, mandate TEXT NOT NULL UNIQUE, signed TEXT NOT NULL,
  received INTEGER NOT NULL, submitter TEXT NOT NULL);
";

/// Version 5: what each node last reported it can do (`Heartbeat::caps`)
/// and of its owner's policy (`Heartbeat::owner`), as JSON, so selections by
/// `cap=` and the choice of `limit` nodes survive a restart of the hub.
const NODE_CAPS: &str = "
CREATE TABLE IF NOT EXISTS node_caps(
  node_id TEXT PRIMARY KEY, caps TEXT, owner TEXT, reported INTEGER NOT NULL);
";

/// Version 6: agent releases. `releases` holds each accepted signed release
/// (by version, with the digest of its signed bytes so the same release can
/// gain signatures but never change) and its rollout: the newest open wave
/// and, once stopped, when and why. `node_releases` what each node's last
/// heartbeat said of releases (its target, the release it failed, whether
/// it runs one) and when, which the waves are counted from.
const RELEASES: &str = "
CREATE TABLE IF NOT EXISTS releases(
  version TEXT PRIMARY KEY, digest TEXT NOT NULL, signed TEXT NOT NULL,
  submitted INTEGER NOT NULL, submitter TEXT NOT NULL, signers TEXT NOT NULL,
  wave INTEGER NOT NULL DEFAULT 0, stopped INTEGER, stop_reason TEXT);
CREATE TABLE IF NOT EXISTS node_releases(
  node_id TEXT PRIMARY KEY, target TEXT, failed TEXT, from_release INTEGER NOT NULL,
  heartbeat INTEGER NOT NULL);
";

/// Which of a mandate's hub-counted rates [`Db::mandate_jobs`] counts.
#[derive(Debug, Clone, Copy)]
pub enum MandateCount<'a> {
    /// Jobs ordered by this operator (the job's proposer).
    Operator(&'a str),
    /// Jobs against this target host.
    Target(&'a str),
}

impl MandateCount<'_> {
    /// The `job_mandates` column counted, and its value.
    fn column(&self) -> (&'static str, &str) {
        match *self {
            MandateCount::Operator(o) => ("operator", o),
            MandateCount::Target(t) => ("target", t),
        }
    }
}

/// A JSON column this hub wrote, read back; `None` when empty or unreadable
/// (then the node counts as one that never reported it).
fn json_column<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// The database's schema version; an error if a newer hub wrote it.
fn schema_version(conn: &Connection) -> Result<u32> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(DbError::TooNew { found });
    }
    Ok(found)
}

/// Brings the database to [`SCHEMA_VERSION`] in one transaction, so a crash
/// leaves it at the old version or the new, never between. Immediate: a second
/// process opening the same database waits, then finds nothing left to do.
/// Returns the version found.
fn migrate(conn: &mut Connection) -> Result<u32> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = schema_version(&tx)?;
    for step in &MIGRATIONS[found as usize..] {
        tx.execute_batch(step)?;
    }
    if found < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(found)
}

/// The database handle (one connection behind a mutex; call from blocking threads).
pub struct Db {
    conn: Mutex<Connection>,
    // A second connection for reads: WAL lets them proceed while a write waits for fsync.
    read: Mutex<Connection>,
}

impl Db {
    /// Opens (creating if needed) the database and brings its schema to
    /// [`SCHEMA_VERSION`]; refuses a database of a newer hub.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // A newer hub's database is refused before anything in it changes,
        // the journal mode included.
        schema_version(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let found = migrate(&mut conn)?;
        if found < SCHEMA_VERSION {
            tracing::info!(
                "{}: database schema upgraded from version {found} to {SCHEMA_VERSION}",
                path.display()
            );
        }
        let read = Connection::open(path)?;
        read.busy_timeout(std::time::Duration::from_secs(10))?;
        read.pragma_update(None, "query_only", "ON")?;
        Ok(Self {
            conn: Mutex::new(conn),
            read: Mutex::new(read),
        })
    }

    fn c(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn r(&self) -> MutexGuard<'_, Connection> {
        self.read.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads a metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .c()
            .query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Writes a metadata value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.c().execute(
            "INSERT INTO meta(key,value) VALUES(?1,?2) ON CONFLICT(key) DO UPDATE SET value=?2",
            [key, value],
        )?;
        Ok(())
    }

    /// Increments and returns a counter kept in `meta`.
    pub fn next_counter(&self, key: &str) -> Result<u64> {
        let c = self.c();
        c.execute(
            "INSERT INTO meta(key,value) VALUES(?1,'1') ON CONFLICT(key) DO UPDATE SET value=CAST(value AS INTEGER)+1",
            [key],
        )?;
        let v: String = c.query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))?;
        Ok(v.parse().unwrap_or(1))
    }

    /// Appends an audit entry.
    pub fn audit(
        &self,
        now: i64,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        self.c().execute(
            "INSERT INTO audit(time,actor,action,subject,detail) VALUES(?1,?2,?3,?4,?5)",
            params![now, actor, action, subject, detail.to_string()],
        )?;
        Ok(())
    }

    /// Audit entries about one subject, oldest first.
    pub fn audit_of(&self, subject: &str) -> Result<Vec<AuditEntry>> {
        let c = self.r();
        let mut st = c.prepare(
            "SELECT time,actor,action,subject,detail FROM audit WHERE subject=?1 ORDER BY id",
        )?;
        let rows = st.query_map([subject], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (time, actor, action, subject, detail) = row?;
            out.push(AuditEntry {
                time,
                actor,
                action,
                subject,
                detail: serde_json::from_str(&detail)?,
            });
        }
        Ok(out)
    }

    // ---- tokens ----

    /// Stores a new token (by the SHA-256 of its text).
    pub fn insert_token(&self, hash: &str, attrs: &Attrs, now: i64, expires: i64) -> Result<()> {
        self.c().execute(
            "INSERT INTO tokens(hash,attrs,created,expires) VALUES(?1,?2,?3,?4)",
            params![hash, serde_json::to_string(attrs)?, now, expires],
        )?;
        Ok(())
    }

    /// Looks a token up.
    pub fn token(&self, hash: &str) -> Result<Option<TokenRow>> {
        let row = self
            .c()
            .query_row(
                "SELECT attrs,expires,used_fp,node_id FROM tokens WHERE hash=?1",
                [hash],
                |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        row.map(|(attrs, expires, used_fp, node_id)| {
            Ok(TokenRow {
                attrs: serde_json::from_str(&attrs)?,
                expires,
                used_fp,
                node_id,
            })
        })
        .transpose()
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenSummary>> {
        let c = self.r();
        let mut st =
            c.prepare("SELECT hash,attrs,created,expires,node_id FROM tokens ORDER BY created")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, String>(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (hash, a, created, expires, node_id) = row?;
            out.push(TokenSummary {
                hash,
                attrs: serde_json::from_str(&a)?,
                created,
                expires,
                node_id,
            });
        }
        Ok(out)
    }

    // ---- certificates and nodes ----

    /// Records an issued certificate.
    pub fn insert_cert(
        &self,
        serial: &str,
        role: CertRole,
        subject: &str,
        not_after: i64,
        now: i64,
    ) -> Result<()> {
        self.c().execute(
            "INSERT INTO certs(serial,role,subject,not_after,issued) VALUES(?1,?2,?3,?4,?5)",
            params![serial, role.as_str(), subject, not_after, now],
        )?;
        Ok(())
    }

    /// What is known about a serial.
    pub fn cert(&self, serial: &str) -> Result<Option<CertRow>> {
        Ok(self
            .c()
            .query_row(
                "SELECT role,subject,revoked FROM certs WHERE serial=?1",
                [serial],
                |r| {
                    Ok(CertRow {
                        role: r.get(0)?,
                        subject: r.get(1)?,
                        revoked: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Revoked certificates that have not yet expired: (serial, revocation time).
    pub fn revoked_certs(&self, now: i64) -> Result<Vec<(String, i64)>> {
        let c = self.r();
        let mut st = c.prepare("SELECT serial,revoked FROM certs WHERE revoked IS NOT NULL AND not_after > ?1 ORDER BY revoked")?;
        let rows = st.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// A value that changes whenever a certificate is revoked.
    pub fn revocation_marker(&self) -> Result<(i64, i64)> {
        Ok(self.r().query_row(
            "SELECT count(*), coalesce(max(revoked),0) FROM certs WHERE revoked IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Revokes every certificate of a subject; returns the serials newly revoked.
    pub fn revoke_subject(&self, role: CertRole, subject: &str, now: i64) -> Result<Vec<String>> {
        let mut c = self.c();
        let tx = c.transaction()?;
        let serials: Vec<String> = {
            let mut st = tx.prepare(
                "SELECT serial FROM certs WHERE role=?1 AND subject=?2 AND revoked IS NULL",
            )?;
            st.query_map(params![role.as_str(), subject], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?
        };
        tx.execute(
            "UPDATE certs SET revoked=?3 WHERE role=?1 AND subject=?2 AND revoked IS NULL",
            params![role.as_str(), subject, now],
        )?;
        if role == CertRole::Node {
            tx.execute(
                "UPDATE nodes SET revoked=?2 WHERE id=?1 AND revoked IS NULL",
                params![subject, now],
            )?;
        }
        tx.commit()?;
        Ok(serials)
    }

    /// Enrols a node: records the node, its certificate, and binds the token or
    /// pending entry, in one transaction. Returns false (and changes nothing)
    /// if the token or pending entry was bound by another enrolment meanwhile.
    pub fn insert_node(
        &self,
        node: &NodeRow,
        token_hash: Option<&str>,
        pending_fp: Option<&str>,
    ) -> Result<bool> {
        let mut c = self.c();
        let tx = c.transaction()?;
        tx.execute(
            "INSERT INTO nodes(id,attrs,key_fp,cert_pem,cert_serial,cert_not_after,enrolled,via,address)
             VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
            params![
                node.id,
                serde_json::to_string(&node.attrs)?,
                node.key_fingerprint,
                node.cert_pem,
                node.cert_serial,
                node.cert_not_after,
                node.enrolled,
                node.enrolled_via,
                node.address
            ],
        )?;
        tx.execute(
            "INSERT INTO certs(serial,role,subject,not_after,issued) VALUES(?1,'node',?2,?3,?4)",
            params![
                node.cert_serial,
                node.id,
                node.cert_not_after,
                node.enrolled
            ],
        )?;
        if let Some(h) = token_hash {
            let n = tx.execute(
                "UPDATE tokens SET used_fp=?2, node_id=?3 WHERE hash=?1 AND used_fp IS NULL",
                params![h, node.key_fingerprint, node.id],
            )?;
            if n != 1 {
                return Ok(false);
            }
            // The key may have waited for approval before (after a refused
            // token, say). That entry can no longer become a node: approving
            // it would only leave "approved, waiting for the node" forever.
            tx.execute(
                "DELETE FROM pending WHERE fp=?1 AND node_id IS NULL",
                params![node.key_fingerprint],
            )?;
        }
        if let Some(fp) = pending_fp {
            let n = tx.execute(
                "UPDATE pending SET node_id=?2 WHERE fp=?1 AND node_id IS NULL",
                params![fp, node.id],
            )?;
            if n != 1 {
                return Ok(false);
            }
        }
        tx.commit()?;
        Ok(true)
    }

    /// Replaces a node's certificate after renewal.
    pub fn renew_node(
        &self,
        id: &str,
        key_fp: &str,
        cert_pem: &str,
        serial: &str,
        not_after: i64,
        now: i64,
    ) -> Result<()> {
        let mut c = self.c();
        let tx = c.transaction()?;
        tx.execute(
            "UPDATE nodes SET key_fp=?2, cert_pem=?3, cert_serial=?4, cert_not_after=?5 WHERE id=?1",
            params![id, key_fp, cert_pem, serial, not_after],
        )?;
        tx.execute(
            "INSERT INTO certs(serial,role,subject,not_after,issued) VALUES(?1,'node',?2,?3,?4)",
            params![serial, id, not_after, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn node_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(NodeRow, String)> {
        Ok((
            NodeRow {
                id: r.get(0)?,
                attrs: Attrs::default(),
                key_fingerprint: r.get(2)?,
                cert_pem: r.get(3)?,
                cert_serial: r.get(4)?,
                cert_not_after: r.get(5)?,
                enrolled: r.get(6)?,
                enrolled_via: r.get(7)?,
                revoked: r.get(8)?,
                last_seen: r.get(9)?,
                agent_version: r.get(10)?,
                address: r.get(11)?,
                // Written by this hub from parsed heartbeats: unreadable only if tampered with.
                caps: json_column(r.get(12)?),
                owner: json_column(r.get(13)?),
                release: releases::node_release(r, 14)?,
            },
            r.get(1)?,
        ))
    }

    /// The columns of a [`NodeRow`], read from `NODE_TABLES`.
    const NODE_COLS: &'static str = "id,attrs,key_fp,cert_pem,cert_serial,cert_not_after,enrolled,via,revoked,last_seen,agent_version,address,caps,owner,\
        node_releases.target,node_releases.failed,node_releases.from_release,node_releases.heartbeat";
    const NODE_TABLES: &'static str = "nodes LEFT JOIN node_caps ON node_caps.node_id=nodes.id \
        LEFT JOIN node_releases ON node_releases.node_id=nodes.id";

    /// Jobs sent to each node that were accepted since `since` (Unix
    /// seconds), newest 4096 at most: the probes each started lately, as the
    /// hub knows them, for the owners' rate caps.
    pub fn recent_jobs_per_node(
        &self,
        since: i64,
    ) -> Result<std::collections::HashMap<String, u32>> {
        let c = self.r();
        let mut st =
            c.prepare("SELECT nodes FROM jobs WHERE submitted>=?1 ORDER BY seq DESC LIMIT 4096")?;
        let mut out = std::collections::HashMap::new();
        for nodes in st.query_map([since], |r| r.get::<_, String>(0))? {
            for n in serde_json::from_str::<Vec<String>>(&nodes?)? {
                *out.entry(n).or_insert(0u32) += 1;
            }
        }
        Ok(out)
    }

    /// Keeps what a node's heartbeat said it can do and of its owner's
    /// policy; what it left out stays as it was.
    pub fn set_node_caps(
        &self,
        id: &str,
        caps: Option<&Capabilities>,
        owner: Option<&OwnerDigest>,
        now: i64,
    ) -> Result<()> {
        let caps = caps.map(|c| serde_json::to_string(c).expect("serialises"));
        let owner = owner.map(|o| serde_json::to_string(o).expect("serialises"));
        self.c().execute(
            "INSERT INTO node_caps(node_id,caps,owner,reported) VALUES(?1,?2,?3,?4)
             ON CONFLICT(node_id) DO UPDATE SET caps=coalesce(?2,caps), owner=coalesce(?3,owner), reported=?4",
            params![id, caps, owner, now],
        )?;
        Ok(())
    }

    /// One node.
    pub fn node(&self, id: &str) -> Result<Option<NodeRow>> {
        let c = self.r();
        let row = c
            .query_row(
                &format!(
                    "SELECT {} FROM {} WHERE id=?1",
                    Self::NODE_COLS,
                    Self::NODE_TABLES
                ),
                [id],
                Self::node_from_row,
            )
            .optional()?;
        row.map(|(mut n, a)| {
            n.attrs = serde_json::from_str(&a)?;
            Ok(n)
        })
        .transpose()
    }

    /// Every node, by id.
    pub fn nodes(&self) -> Result<Vec<NodeRow>> {
        let c = self.r();
        let mut st = c.prepare(&format!(
            "SELECT {} FROM {} ORDER BY id",
            Self::NODE_COLS,
            Self::NODE_TABLES
        ))?;
        let rows = st.query_map([], Self::node_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            let (mut n, a) = row?;
            n.attrs = serde_json::from_str(&a)?;
            out.push(n);
        }
        Ok(out)
    }

    /// Records the time nodes with open subscriptions were last seen.
    pub fn touch_nodes(&self, seen: &[(String, Option<String>)], now: i64) -> Result<()> {
        let mut c = self.c();
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare(
                "UPDATE nodes SET last_seen=?2, address=coalesce(?3,address) WHERE id=?1",
            )?;
            for (id, addr) in seen {
                st.execute(params![id, now, addr])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces a node's attributes.
    pub fn set_node_attrs(&self, id: &str, attrs: &Attrs) -> Result<()> {
        self.c().execute(
            "UPDATE nodes SET attrs=?2 WHERE id=?1",
            params![id, serde_json::to_string(attrs)?],
        )?;
        Ok(())
    }

    // ---- attribute changes waiting for approval ----

    /// Records a node's request to change country or continent. Asking for
    /// other values than before withdraws an approval of the old ones.
    pub fn request_attr_change(
        &self,
        node_id: &str,
        country: &str,
        continent: Option<&str>,
        now: i64,
    ) -> Result<AttrChangeRow> {
        self.c().execute(
            "INSERT INTO attr_changes(node_id,country,continent,requested) VALUES(?1,?2,?3,?4)
             ON CONFLICT(node_id) DO UPDATE SET requested=?4,
               approved=CASE WHEN country=?2 AND continent IS ?3 THEN approved ELSE NULL END,
               country=?2, continent=?3",
            params![node_id, country, continent, now],
        )?;
        Ok(self.attr_change(node_id)?.expect("row just written"))
    }

    /// A node's change request, if any.
    pub fn attr_change(&self, node_id: &str) -> Result<Option<AttrChangeRow>> {
        Ok(self.attr_changes_where("node_id=?1", [node_id])?.pop())
    }

    /// Every change request, oldest first.
    pub fn attr_changes(&self) -> Result<Vec<AttrChangeRow>> {
        self.attr_changes_where("1", [])
    }

    fn attr_changes_where(
        &self,
        cond: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<AttrChangeRow>> {
        let c = self.r();
        let mut st = c.prepare(&format!(
            "SELECT node_id,country,continent,requested,approved FROM attr_changes WHERE {cond} ORDER BY requested"
        ))?;
        let rows = st.query_map(args, |r| {
            Ok(AttrChangeRow {
                node_id: r.get(0)?,
                country: r.get(1)?,
                continent: r.get(2)?,
                requested: r.get(3)?,
                approved: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Approves a node's change request; false when there is none.
    pub fn approve_attr_change(&self, node_id: &str, now: i64) -> Result<bool> {
        Ok(self.c().execute(
            "UPDATE attr_changes SET approved=coalesce(approved,?2) WHERE node_id=?1",
            params![node_id, now],
        )? == 1)
    }

    /// Forgets a node's change request (made, or no longer asked for).
    pub fn drop_attr_change(&self, node_id: &str) -> Result<()> {
        self.c()
            .execute("DELETE FROM attr_changes WHERE node_id=?1", [node_id])?;
        Ok(())
    }

    // ---- pending enrolments ----

    /// Records (or refreshes) a pending enrolment and returns the row; a new
    /// fingerprint is recorded only while fewer than `caps.total` enrolments
    /// wait, and fewer than `caps.per_address` from `address` (refreshing a
    /// known one always works). Checked and written under the writer's lock,
    /// so concurrent enrolments cannot all see room and overshoot a cap.
    pub fn upsert_pending_capped(
        &self,
        fp: &str,
        csr: &str,
        declared: &Attrs,
        now: i64,
        address: Option<&str>,
        caps: PendingCaps,
    ) -> Result<std::result::Result<PendingRow, PendingFull>> {
        {
            let c = self.c();
            let known: bool = c.query_row(
                "SELECT EXISTS(SELECT 1 FROM pending WHERE fp=?1)",
                [fp],
                |r| r.get(0),
            )?;
            if !known {
                let (open, here) = c.query_row(
                    "SELECT count(*), count(CASE WHEN address=?1 THEN 1 END) FROM pending WHERE node_id IS NULL",
                    [address],
                    |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
                )?;
                if open >= caps.total {
                    return Ok(Err(PendingFull::Total));
                }
                if address.is_some() && here >= caps.per_address {
                    return Ok(Err(PendingFull::Address));
                }
            }
            c.execute(
                "INSERT INTO pending(fp,csr,declared,created,last_poll,address) VALUES(?1,?2,?3,?4,?4,?5)
                 ON CONFLICT(fp) DO UPDATE SET last_poll=?4, address=?5",
                params![fp, csr, serde_json::to_string(declared)?, now, address],
            )?;
        }
        let row = self.pending(fp)?;
        Ok(Ok(row.ok_or(rusqlite::Error::QueryReturnedNoRows)?))
    }

    /// One pending enrolment.
    pub fn pending(&self, fp: &str) -> Result<Option<PendingRow>> {
        Ok(self.pending_where("fp=?1", [fp])?.pop())
    }

    /// Pending enrolments whose fingerprint starts with `prefix` (all of them for "").
    pub fn pending_by_prefix(&self, prefix: &str) -> Result<Vec<PendingRow>> {
        self.pending_where("substr(fp,1,length(?1))=?1", [prefix])
    }

    fn pending_where(&self, cond: &str, args: impl rusqlite::Params) -> Result<Vec<PendingRow>> {
        let c = self.r();
        let mut st = c.prepare(&format!(
            "SELECT fp,declared,created,last_poll,address,approved,node_id FROM pending WHERE {cond} ORDER BY created"
        ))?;
        let rows = st.query_map(args, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (fingerprint, d, created, last_poll, address, approved, node_id) = row?;
            out.push(PendingRow {
                fingerprint,
                declared: serde_json::from_str(&d)?,
                created,
                last_poll,
                address,
                approved,
                node_id,
            });
        }
        Ok(out)
    }

    /// Pending enrolments not issued yet, what `nodes pending` lists. (A
    /// key that is already a node's may be among them: a node whose
    /// certificate expired asks for approval again with the same key.)
    pub fn pending_open(&self) -> Result<Vec<PendingRow>> {
        self.pending_where("node_id IS NULL", [])
    }

    /// Pending enrolments not yet issued.
    pub fn pending_open_count(&self) -> Result<u64> {
        Ok(self.r().query_row(
            "SELECT count(*) FROM pending WHERE node_id IS NULL",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Marks a pending enrolment approved.
    pub fn approve_pending(&self, fp: &str, now: i64) -> Result<()> {
        self.c().execute(
            "UPDATE pending SET approved=?2 WHERE fp=?1 AND approved IS NULL",
            params![fp, now],
        )?;
        Ok(())
    }

    // ---- job log ----

    /// Appends a payload to the job log and, for signed jobs, the job's audit
    /// record, in one durable transaction. Returns the sequence number.
    pub fn append(
        &self,
        time: i64,
        channels: &[String],
        payload: &str,
        job: Option<&JobRecord>,
    ) -> Result<u64> {
        let mut c = self.c();
        let tx = c.transaction()?;
        tx.execute(
            "INSERT INTO joblog(job_id,time,channels,payload) VALUES(?1,?2,?3,?4)",
            params![
                job.map(|j| j.id.as_str()),
                time,
                serde_json::to_string(channels)?,
                payload
            ],
        )?;
        let seq = tx.last_insert_rowid();
        {
            let mut st =
                tx.prepare("INSERT OR IGNORE INTO joblog_channels(channel,seq) VALUES(?1,?2)")?;
            for ch in channels {
                st.execute(params![ch, seq])?;
            }
        }
        if let Some(j) = job {
            tx.execute(
                "INSERT INTO jobs(id,seq,signed_job,submitted,submitter,proposer,signers,channels,nodes,target)
                 VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                params![
                    j.id,
                    seq,
                    serde_json::to_string(&j.signed_job).expect("serialises"),
                    j.submitted,
                    j.submitter,
                    j.proposer,
                    serde_json::to_string(&j.signers)?,
                    serde_json::to_string(&j.channels)?,
                    serde_json::to_string(&j.nodes)?,
                    j.target
                ],
            )?;
            if let Some(m) = j.signed_job.job.get("mandate").and_then(|m| m.as_str()) {
                tx.execute(
                    "INSERT INTO job_mandates(job_id,mandate,operator,target,submitted) VALUES(?1,?2,?3,?4,?5)",
                    params![j.id, m, j.proposer.as_deref().unwrap_or(""), j.target, j.submitted],
                )?;
            }
            tx.execute(
                "INSERT INTO audit(time,actor,action,subject,detail) VALUES(?1,?2,'job.accept',?3,?4)",
                params![
                    j.submitted,
                    j.submitter,
                    j.id,
                    serde_json::json!({"seq": seq, "proposer": j.proposer, "signers": j.signers,
                        "channels": j.channels, "nodes": j.nodes})
                    .to_string()
                ],
            )?;
        }
        tx.commit()?;
        Ok(seq as u64)
    }

    /// Entries after `after` on any of `channels`, oldest first, at most `limit`.
    pub fn log_after(
        &self,
        after: u64,
        channels: &[String],
        limit: usize,
    ) -> Result<Vec<LogEntry>> {
        let c = self.r();
        let placeholders = vec!["?"; channels.len()].join(",");
        let sql = format!(
            "SELECT seq,job_id,time,channels,payload FROM joblog WHERE seq IN
               (SELECT DISTINCT seq FROM joblog_channels WHERE seq > ? AND channel IN ({placeholders}))
             ORDER BY seq LIMIT ?"
        );
        let mut st = c.prepare(&sql)?;
        let mut args: Vec<rusqlite::types::Value> = vec![(after as i64).into()];
        args.extend(
            channels
                .iter()
                .map(|c| rusqlite::types::Value::Text(c.clone())),
        );
        args.push((limit as i64).into());
        let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, String>(3)?,
                r.get(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, job_id, time, ch, payload) = row?;
            out.push(LogEntry {
                seq: seq as u64,
                job_id,
                time,
                channels: serde_json::from_str(&ch)?,
                payload,
            });
        }
        Ok(out)
    }

    /// The last sequence number ever assigned (0 if none).
    pub fn last_seq(&self) -> Result<u64> {
        let v: Option<i64> = self
            .c()
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name='joblog'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.unwrap_or(0) as u64)
    }

    /// Highest sequence number dropped by retention (0 if none).
    pub fn pruned_through(&self) -> Result<u64> {
        Ok(self
            .meta("pruned_through")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Drops log entries beyond retention (more than `keep` entries, or older
    /// than `min_time`). Returns the new `pruned_through`.
    pub fn prune(&self, keep: u64, min_time: i64) -> Result<u64> {
        let mut c = self.c();
        let tx = c.transaction()?;
        let last: i64 = tx
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name='joblog'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let by_count = last - keep as i64;
        let by_time: i64 = tx.query_row(
            "SELECT coalesce(max(seq),0) FROM joblog WHERE time < ?1",
            [min_time],
            |r| r.get(0),
        )?;
        let cut = by_count.max(by_time);
        let old: i64 = tx
            .query_row(
                "SELECT value FROM meta WHERE key='pruned_through'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if cut > old {
            tx.execute("DELETE FROM joblog WHERE seq <= ?1", [cut])?;
            tx.execute("DELETE FROM joblog_channels WHERE seq <= ?1", [cut])?;
            tx.execute(
                "INSERT INTO meta(key,value) VALUES('pruned_through',?1) ON CONFLICT(key) DO UPDATE SET value=?1",
                [cut.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(cut.max(old) as u64)
    }

    /// Per channel: entries held and the last sequence number.
    pub fn channel_counts(&self) -> Result<std::collections::HashMap<String, (u64, u64)>> {
        let c = self.r();
        let mut st =
            c.prepare("SELECT channel, count(*), max(seq) FROM joblog_channels GROUP BY channel")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64),
            ))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Number of entries held in the job log.
    pub fn log_len(&self) -> Result<u64> {
        Ok(self
            .c()
            .query_row("SELECT count(*) FROM joblog", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    // ---- jobs and results ----

    /// The audit record of a job.
    pub fn job(&self, id: &str) -> Result<Option<JobRecord>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id=?1");
        let row = self.c().query_row(&sql, [id], raw_job).optional()?;
        row.map(RawJob::parse).transpose()
    }

    /// One page of jobs, newest (highest seq) first, with seq below `before`,
    /// each with its result count and the number of distinct nodes that answered.
    pub fn jobs_page(&self, before: u64, limit: usize) -> Result<Vec<(JobRecord, u64, u64)>> {
        let c = self.r();
        let mut st = c.prepare(&format!(
            "SELECT {JOB_COLUMNS},
               (SELECT count(*) FROM results r WHERE r.job_id=jobs.id),
               (SELECT count(DISTINCT node_id) FROM results r WHERE r.job_id=jobs.id)
             FROM jobs WHERE seq<?1 ORDER BY seq DESC LIMIT ?2"
        ))?;
        let rows = st.query_map(
            params![i64::try_from(before).unwrap_or(i64::MAX), limit as i64],
            |r| Ok((raw_job(r)?, r.get::<_, i64>(10)?, r.get::<_, i64>(11)?)),
        )?;
        rows.map(|row| {
            let (raw, results, answered) = row?;
            Ok((raw.parse()?, results as u64, answered as u64))
        })
        .collect()
    }

    /// Jobs accepted against `target` since `since` (Unix seconds).
    pub fn jobs_for_target(&self, target: &str, since: i64) -> Result<u64> {
        Ok(self.r().query_row(
            "SELECT count(*) FROM jobs WHERE target=?1 AND submitted>=?2",
            params![target, since],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Jobs accepted under `mandate` since `since` (Unix seconds), of one
    /// operator or against one target.
    pub fn mandate_jobs(&self, mandate: &str, by: MandateCount<'_>, since: i64) -> Result<u64> {
        let (column, value) = by.column();
        Ok(self.r().query_row(
            &format!(
                "SELECT count(*) FROM job_mandates WHERE mandate=?1 AND {column}=?2 AND submitted>=?3"
            ),
            params![mandate, value, since],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// When (Unix seconds) the job was accepted whose leaving the window
    /// `since..` brings the count of [`Db::mandate_jobs`] below `max`: the
    /// `count - max + 1`-th oldest. `None` while the count is below `max`.
    pub fn mandate_slot_frees(
        &self,
        mandate: &str,
        by: MandateCount<'_>,
        since: i64,
        max: u32,
    ) -> Result<Option<i64>> {
        let have = self.mandate_jobs(mandate, by, since)?;
        let Some(skip) = have.checked_sub(u64::from(max)) else {
            return Ok(None);
        };
        let (column, value) = by.column();
        Ok(self
            .r()
            .query_row(
                &format!(
                    "SELECT submitted FROM job_mandates WHERE mandate=?1 AND {column}=?2 AND submitted>=?3 \
                     ORDER BY submitted LIMIT 1 OFFSET ?4"
                ),
                params![mandate, value, since, skip as i64],
                |r| r.get::<_, i64>(0),
            )
            .optional()?)
    }

    // ---- mandate revocations ----

    /// Stores a verified revocation of `mandate` unless one is stored
    /// already, and at most `max` in all. Returns whether it was new, or
    /// `None` when `max` are stored.
    pub fn insert_revocation(
        &self,
        mandate: &str,
        signed: &str,
        now: i64,
        submitter: &str,
        max: usize,
    ) -> Result<Option<bool>> {
        let mut c = self.c();
        let tx = c.transaction()?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM mandate_revocations WHERE mandate=?1)",
            [mandate],
            |r| r.get(0),
        )?;
        if exists {
            return Ok(Some(false));
        }
        let n: i64 = tx.query_row("SELECT count(*) FROM mandate_revocations", [], |r| r.get(0))?;
        if n as usize >= max {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO mandate_revocations(mandate,signed,received,submitter) VALUES(?1,?2,?3,?4)",
            params![mandate, signed, now, submitter],
        )?;
        tx.commit()?;
        Ok(Some(true))
    }

    /// The stored revocations as signed (JSON text), oldest first.
    pub fn revocations(&self) -> Result<Vec<String>> {
        let c = self.r();
        let mut st = c.prepare("SELECT signed FROM mandate_revocations ORDER BY seq")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Whether a revocation of `mandate` is stored.
    pub fn is_revoked(&self, mandate: &str) -> Result<bool> {
        Ok(self.r().query_row(
            "SELECT EXISTS(SELECT 1 FROM mandate_revocations WHERE mandate=?1)",
            [mandate],
            |r| r.get(0),
        )?)
    }

    /// Stores results in one transaction (one fsync), each once per
    /// (job, node, seq). Returns, per row in order, the new row id, or None
    /// for a duplicate. Nothing is stored if any row fails.
    pub fn insert_results(&self, rows: &[&NewResult]) -> Result<Vec<Option<i64>>> {
        let mut c = self.c();
        let tx = c.transaction()?;
        let mut ids = Vec::with_capacity(rows.len());
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO results(job_id,node_id,seq,received,body) VALUES(?1,?2,?3,?4,?5)",
            )?;
            for r in rows {
                let n = st.execute(params![
                    r.job_id,
                    r.node_id,
                    r.seq as i64,
                    r.received,
                    r.body
                ])?;
                ids.push((n == 1).then(|| tx.last_insert_rowid()));
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Results of a job after a row id, oldest first.
    pub fn results_of(&self, job_id: &str, after: i64, limit: usize) -> Result<Vec<ResultRow>> {
        let c = self.r();
        let mut st = c.prepare(
            "SELECT id,body FROM results WHERE job_id=?1 AND id>?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = st.query_map(params![job_id, after, limit as i64], |r| {
            Ok(ResultRow {
                id: r.get(0)?,
                body: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Number of results of a job.
    pub fn result_count(&self, job_id: &str) -> Result<u64> {
        Ok(self.r().query_row(
            "SELECT count(*) FROM results WHERE job_id=?1",
            [job_id],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Stores a node's gap report.
    pub fn insert_gap(&self, node_id: &str, now: i64, body: &str) -> Result<()> {
        self.c().execute(
            "INSERT INTO gaps(node_id,received,body) VALUES(?1,?2,?3)",
            params![node_id, now, body],
        )?;
        Ok(())
    }

    /// Writes a consistent copy of the database to `dest` (which must not exist).
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        self.c()
            .execute("VACUUM INTO ?1", [dest.to_string_lossy()])?;
        Ok(())
    }
}

/// The columns [`raw_job`] reads, in its order.
const JOB_COLUMNS: &str =
    "id,seq,signed_job,submitted,submitter,proposer,signers,channels,nodes,target";

/// A `jobs` row as stored, its JSON columns still text.
struct RawJob {
    id: String,
    seq: i64,
    signed_job: String,
    submitted: i64,
    submitter: String,
    proposer: Option<String>,
    signers: String,
    channels: String,
    nodes: String,
    target: String,
}

fn raw_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawJob> {
    Ok(RawJob {
        id: r.get(0)?,
        seq: r.get(1)?,
        signed_job: r.get(2)?,
        submitted: r.get(3)?,
        submitter: r.get(4)?,
        proposer: r.get(5)?,
        signers: r.get(6)?,
        channels: r.get(7)?,
        nodes: r.get(8)?,
        target: r.get(9)?,
    })
}

impl RawJob {
    fn parse(self) -> Result<JobRecord> {
        Ok(JobRecord {
            id: self.id,
            seq: self.seq as u64,
            signed_job: serde_json::from_str(&self.signed_job)?,
            submitted: self.submitted,
            submitter: self.submitter,
            proposer: self.proposer,
            signers: serde_json::from_str(&self.signers)?,
            channels: serde_json::from_str(&self.channels)?,
            nodes: serde_json::from_str(&self.nodes)?,
            target: self.target,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn db() -> (tempfile::TempDir, Db) {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(&d.path().join("hub.db")).unwrap();
        (d, db)
    }

    #[test]
    fn log_catch_up_filters_channels_and_prunes() {
        let (_d, db) = db();
        let a = vec!["cc.DE".to_string()];
        let b = vec!["cc.FR".to_string(), "all".to_string()];
        for i in 0..5 {
            db.append(i, if i % 2 == 0 { &a } else { &b }, "{}", None)
                .unwrap();
        }
        let got: Vec<u64> = db
            .log_after(0, &a, 100)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(got, [1, 3, 5]);
        let got: Vec<u64> = db
            .log_after(1, &["all".into(), "cc.DE".into()], 100)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(got, [2, 3, 4, 5]);
        assert_eq!(db.prune(2, 0).unwrap(), 3);
        assert_eq!(db.pruned_through().unwrap(), 3);
        assert_eq!(db.log_len().unwrap(), 2);
        assert_eq!(db.last_seq().unwrap(), 5);
        // pruning never moves backwards and never reuses sequence numbers
        assert_eq!(db.prune(100, 0).unwrap(), 3);
        assert_eq!(db.append(9, &a, "{}", None).unwrap(), 6);
    }

    pub(crate) fn node_row(id: &str, fp: &str) -> NodeRow {
        NodeRow {
            id: id.into(),
            attrs: Attrs {
                country: "DE".into(),
                ..Attrs::default()
            },
            key_fingerprint: fp.into(),
            cert_pem: String::new(),
            cert_serial: format!("serial-{id}"),
            cert_not_after: 100,
            enrolled: 1,
            enrolled_via: "token".into(),
            revoked: None,
            last_seen: None,
            agent_version: None,
            address: None,
            caps: None,
            owner: None,
            release: None,
        }
    }

    #[test]
    fn what_nodes_report_they_can_do_is_kept_and_counted() {
        let (d, db) = db();
        db.insert_node(&node_row("n-1", "fp-a"), None, None)
            .unwrap();
        db.insert_node(&node_row("n-2", "fp-b"), None, None)
            .unwrap();
        assert_eq!(db.node("n-1").unwrap().unwrap().caps, None);
        let caps = Capabilities {
            ipv4: true,
            ipv6: false,
        };
        let owner = OwnerDigest {
            allowed: vec!["dns".into()],
            allow_special_addresses: false,
            max_probes_per_minute: 5,
        };
        db.set_node_caps("n-1", Some(&caps), Some(&owner), 10)
            .unwrap();
        // A heartbeat without them leaves what the last one said.
        db.set_node_caps("n-1", None, None, 20).unwrap();
        drop(db);
        let db = Db::open(&d.path().join("hub.db")).unwrap();
        let n = db.node("n-1").unwrap().unwrap();
        assert_eq!((n.caps, n.owner), (Some(caps), Some(owner)));
        let all = db.nodes().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].caps, all[1].caps), (Some(caps), None));

        // Jobs sent to each node lately, for the owners' rate caps.
        let job = |id: &str, nodes: &[&str], submitted: i64| JobRecord {
            id: id.into(),
            seq: 0,
            signed_job: serde_json::from_value(serde_json::json!({"job": {}, "signatures": []}))
                .unwrap(),
            submitted,
            submitter: "ops".into(),
            proposer: None,
            signers: vec![],
            channels: vec![],
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            target: "t".into(),
        };
        for (id, nodes, at) in [("a", &["n-1"][..], 100), ("b", &["n-1", "n-2"], 200)] {
            db.append(at, &[], "{}", Some(&job(id, nodes, at))).unwrap();
        }
        let recent = db.recent_jobs_per_node(150).unwrap();
        assert_eq!((recent["n-1"], recent["n-2"]), (1, 1));
        assert_eq!(db.recent_jobs_per_node(0).unwrap()["n-1"], 2);
    }

    #[test]
    fn a_token_enrolment_supersedes_the_keys_pending_entry() {
        let (d, db) = db();
        let attrs = Attrs {
            country: "DE".into(),
            ..Attrs::default()
        };
        // A refused token made the node wait for approval; the admin approves.
        db.upsert_pending_capped("fp-a", "csr", &attrs, 1, None, NO_CAPS)
            .unwrap()
            .unwrap();
        db.upsert_pending_capped("fp-b", "csr", &attrs, 1, None, NO_CAPS)
            .unwrap()
            .unwrap();
        db.approve_pending("fp-a", 2).unwrap();
        // Then the volunteer puts a good token in, and the same key enrols with it.
        db.insert_token("tok", &attrs, 1, 1000).unwrap();
        assert!(
            db.insert_node(&node_row("n-1", "fp-a"), Some("tok"), None)
                .unwrap()
        );
        assert_eq!(db.pending("fp-a").unwrap().map(|p| p.fingerprint), None);
        let open: Vec<_> = db
            .pending_open()
            .unwrap()
            .into_iter()
            .map(|p| p.fingerprint)
            .collect();
        assert_eq!(open, ["fp-b"]);

        // What an older hub left: a waiting entry older than the key's token
        // enrolment goes when the database is upgraded to version 2; one newer
        // (the node's certificate expired, it asks again) stays.
        db.c()
            .execute_batch(
                "INSERT INTO pending(fp,csr,declared,created,last_poll) VALUES('fp-old','c','{\"country\":\"DE\"}',1,1);
                 INSERT INTO pending(fp,csr,declared,created,last_poll) VALUES('fp-again','c','{\"country\":\"DE\"}',9,9);
                 INSERT INTO nodes(id,attrs,key_fp,cert_pem,cert_serial,cert_not_after,enrolled,via)
                   VALUES('n-2','{\"country\":\"DE\"}','fp-old','','s2',100,5,'token'),
                         ('n-3','{\"country\":\"DE\"}','fp-again','','s3',100,5,'token');",
            )
            .unwrap();
        // As a database of a hub before version 2 has them.
        db.c().pragma_update(None, "user_version", 1).unwrap();
        let path = d.path().join("hub.db");
        drop(db);
        let db = Db::open(&path).unwrap();
        let open: Vec<_> = db
            .pending_open()
            .unwrap()
            .into_iter()
            .map(|p| p.fingerprint)
            .collect();
        assert_eq!(open, ["fp-b", "fp-again"]);
    }

    fn user_version(path: &Path) -> u32 {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn opening_records_the_version_and_is_idempotent() {
        let (d, db) = db();
        let path = d.path().join("hub.db");
        db.set_meta("network", "test").unwrap();
        drop(db);
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        for _ in 0..2 {
            let db = Db::open(&path).unwrap();
            assert_eq!(db.meta("network").unwrap().as_deref(), Some("test"));
        }
        assert_eq!(user_version(&path), SCHEMA_VERSION);
    }

    #[test]
    fn an_unversioned_database_of_an_older_hub_is_upgraded() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("hub.db");
        // A hub from before versions and before attribute changes.
        let old = Connection::open(&path).unwrap();
        old.execute_batch(SCHEMA_V1).unwrap();
        old.execute_batch(
            "DROP TABLE attr_changes;
             INSERT INTO tokens(hash,attrs,created,expires) VALUES('h','{\"country\":\"DE\"}',1,2);",
        )
        .unwrap();
        drop(old);
        let db = Db::open(&path).unwrap();
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        assert_eq!(db.tokens().unwrap()[0].attrs.country, "DE");
        db.request_attr_change("n-1", "GB", None, 1).unwrap();
    }

    fn job_row(id: &str, mandate: Option<&str>, proposer: &str, target: &str) -> JobRecord {
        let mut job = serde_json::json!({"v": 1, "id": id, "proposer": proposer});
        if let Some(m) = mandate {
            job["mandate"] = serde_json::json!(m);
        }
        JobRecord {
            id: id.into(),
            seq: 0,
            signed_job: vantage_proto::job::SignedJob {
                job,
                signatures: vec![],
                mandated: None,
            },
            submitted: 100,
            submitter: "ops".into(),
            proposer: Some(proposer.into()),
            signers: vec![],
            channels: vec![],
            nodes: vec![],
            target: target.into(),
        }
    }

    #[test]
    fn mandated_jobs_are_counted_per_operator_and_target_also_from_before_the_upgrade() {
        let (d, db) = db();
        let path = d.path().join("hub.db");
        let count = |db: &Db, by| db.mandate_jobs("m", by, 50).unwrap();
        db.append(
            100,
            &[],
            "{}",
            Some(&job_row("j1", Some("m"), "olga", "a.example")),
        )
        .unwrap();
        // Stored by a hub at version 3, before jobs named their mandate.
        db.c()
            .execute_batch(
                "DROP TABLE job_mandates; DROP TABLE mandate_revocations; PRAGMA user_version=3;",
            )
            .unwrap();
        drop(db);
        let db = Db::open(&path).unwrap();
        for (id, mandate, who, target) in [
            ("j2", Some("m"), "olga", "b.example"),
            ("j3", Some("m"), "omar", "a.example"),
            ("j4", None, "olga", "a.example"),
            ("j5", Some("n"), "olga", "a.example"),
        ] {
            db.append(100, &[], "{}", Some(&job_row(id, mandate, who, target)))
                .unwrap();
        }
        assert_eq!(count(&db, MandateCount::Operator("olga")), 2);
        assert_eq!(count(&db, MandateCount::Target("a.example")), 2);
        assert_eq!(
            db.mandate_jobs("m", MandateCount::Target("a.example"), 101)
                .unwrap(),
            0
        );
    }

    #[test]
    fn revocations_are_kept_once_per_mandate_up_to_the_bound() {
        let (_d, db) = db();
        assert_eq!(
            db.insert_revocation("m", "{1}", 1, "ops", 2).unwrap(),
            Some(true)
        );
        assert_eq!(
            db.insert_revocation("m", "{2}", 2, "ops", 2).unwrap(),
            Some(false)
        );
        assert_eq!(
            db.insert_revocation("n", "{3}", 3, "ops", 2).unwrap(),
            Some(true)
        );
        assert_eq!(db.insert_revocation("o", "{4}", 4, "ops", 2).unwrap(), None);
        assert_eq!(db.revocations().unwrap(), ["{1}", "{3}"]);
        assert!(db.is_revoked("n").unwrap() && !db.is_revoked("o").unwrap());
    }

    #[test]
    fn a_database_of_a_newer_hub_is_refused_untouched() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("hub.db");
        let newer = Connection::open(&path).unwrap();
        newer
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(newer);
        let err = Db::open(&path).err().expect("refused");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("schema version {}", SCHEMA_VERSION + 1))
                && msg.contains(&format!("up to {SCHEMA_VERSION}"))
                && msg.contains("newer release"),
            "{msg}"
        );
        let after = Connection::open(&path).unwrap();
        let mode: String = after
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete", "the journal mode is left alone");
        assert_eq!(user_version(&path), SCHEMA_VERSION + 1);
    }

    #[test]
    fn a_backup_keeps_the_version() {
        let (d, db) = db();
        let copy = d.path().join("copy.db");
        db.backup_to(&copy).unwrap();
        assert_eq!(user_version(&copy), SCHEMA_VERSION);
    }

    #[test]
    fn a_changed_request_withdraws_the_approval_of_the_old_one() {
        let (_d, db) = db();
        assert!(
            !db.approve_attr_change("n-1", 1).unwrap(),
            "nothing to approve"
        );
        db.request_attr_change("n-1", "GB", Some("EU"), 1).unwrap();
        assert!(db.approve_attr_change("n-1", 2).unwrap());
        // Asked again for the same: still approved.
        let row = db.request_attr_change("n-1", "GB", Some("EU"), 3).unwrap();
        assert_eq!((row.approved, row.requested), (Some(2), 3));
        // Asked for something else: the admin must look again.
        let row = db.request_attr_change("n-1", "IE", Some("EU"), 4).unwrap();
        assert_eq!((row.country.as_str(), row.approved), ("IE", None));
        let row = db.request_attr_change("n-1", "IE", None, 5).unwrap();
        assert_eq!((row.continent, row.approved), (None, None));
        assert_eq!(db.attr_changes().unwrap().len(), 1);
        db.drop_attr_change("n-1").unwrap();
        assert!(db.attr_change("n-1").unwrap().is_none());
    }

    #[test]
    fn the_pending_cap_holds_under_concurrency() {
        let (_d, db) = db();
        let db = std::sync::Arc::new(db);
        let start = std::sync::Arc::new(std::sync::Barrier::new(16));
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let (db, start) = (db.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    db.upsert_pending_capped(
                        &format!("fp{i}"),
                        "csr",
                        &Attrs::default(),
                        1,
                        None,
                        caps(5, 1),
                    )
                    .unwrap()
                    .is_ok()
                })
            })
            .collect();
        let taken = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|t| *t)
            .count();
        assert_eq!(taken, 5);
        assert_eq!(db.pending_open_count().unwrap(), 5);
        // A waiting enrolment can still poll when the queue is full.
        let known = db.pending_by_prefix("").unwrap()[0].fingerprint.clone();
        assert!(
            db.upsert_pending_capped(&known, "csr", &Attrs::default(), 2, None, caps(5, 1))
                .unwrap()
                .is_ok()
        );
    }

    const NO_CAPS: PendingCaps = PendingCaps {
        total: u64::MAX,
        per_address: u64::MAX,
    };

    fn caps(total: u64, per_address: u64) -> PendingCaps {
        PendingCaps { total, per_address }
    }

    #[test]
    fn one_address_fills_only_its_share_of_the_pending_queue() {
        let (_d, db) = db();
        let up = |fp: &str, addr: &str| {
            db.upsert_pending_capped(fp, "csr", &Attrs::default(), 1, Some(addr), caps(10, 2))
                .unwrap()
                .map(|r| r.fingerprint)
        };
        assert_eq!(up("a1", "192.0.2.1"), Ok("a1".into()));
        assert_eq!(up("a2", "192.0.2.1"), Ok("a2".into()));
        assert_eq!(up("a3", "192.0.2.1"), Err(PendingFull::Address));
        // Another address has its own share; a waiting key can still poll.
        assert_eq!(up("b1", "192.0.2.2"), Ok("b1".into()));
        assert_eq!(up("a1", "192.0.2.1"), Ok("a1".into()));
        // Approved and issued entries no longer count.
        db.conn
            .lock()
            .unwrap()
            .execute("UPDATE pending SET node_id='n-1' WHERE fp='a1'", [])
            .unwrap();
        assert_eq!(up("a3", "192.0.2.1"), Ok("a3".into()));
    }

    pub(crate) fn new_result(node: &str, seq: u64, body: &str) -> NewResult {
        NewResult {
            job_id: "j".into(),
            node_id: node.into(),
            seq,
            received: 1,
            body: body.into(),
        }
    }

    /// A trigger that refuses rows whose body is `poison`, to make one row of
    /// a batch fail.
    pub(crate) fn poison(db: &Db) {
        db.c()
            .execute_batch(
                "CREATE TRIGGER poison BEFORE INSERT ON results WHEN NEW.body='poison'
                 BEGIN SELECT RAISE(ABORT, 'poisoned row'); END",
            )
            .unwrap();
    }

    #[test]
    fn results_are_stored_once() {
        let (_d, db) = db();
        let (a, again, b) = (
            new_result("n-1", 0, "{}"),
            new_result("n-1", 0, "{\"x\":1}"),
            new_result("n-1", 1, "{}"),
        );
        assert!(db.insert_results(&[&a]).unwrap()[0].is_some());
        let ids = db.insert_results(&[&again, &b, &b]).unwrap();
        assert!(ids[0].is_none() && ids[1].is_some() && ids[2].is_none());
        assert_eq!(db.result_count("j").unwrap(), 2);
        assert_eq!(db.results_of("j", 0, 10).unwrap()[0].body, "{}");
    }

    #[test]
    fn a_failing_row_stores_nothing_of_its_batch() {
        let (_d, db) = db();
        poison(&db);
        let (good, bad) = (new_result("n-1", 0, "{}"), new_result("n-2", 0, "poison"));
        assert!(db.insert_results(&[&good, &bad]).is_err());
        assert_eq!(db.result_count("j").unwrap(), 0);
    }
}
