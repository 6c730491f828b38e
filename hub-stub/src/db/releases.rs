//! Agent releases in the database: the accepted releases with their rollout
//! (newest open wave, stop), and what each node's heartbeats say of releases.

use super::{Db, Result, json_column};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use vantage_proto::release::FailedRelease;

/// What a node's last heartbeat said of agent releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRelease {
    /// The target triple its agent was built for, if it says.
    pub target: Option<String>,
    /// The release it last failed, if any.
    pub failed: Option<FailedRelease>,
    /// Whether it runs an agent from a release.
    pub from_release: bool,
    /// When that heartbeat arrived, Unix seconds.
    pub heartbeat: i64,
}

/// The [`NodeRelease`] in four columns from `first` (target, failed,
/// from_release, heartbeat) of a `LEFT JOIN node_releases`.
pub(super) fn node_release(
    r: &rusqlite::Row<'_>,
    first: usize,
) -> rusqlite::Result<Option<NodeRelease>> {
    let Some(heartbeat) = r.get::<_, Option<i64>>(first + 3)? else {
        return Ok(None);
    };
    Ok(Some(NodeRelease {
        target: r.get(first)?,
        // Written by this hub from parsed heartbeats: unreadable only if tampered with.
        failed: json_column(r.get(first + 1)?),
        from_release: r.get::<_, Option<bool>>(first + 2)?.unwrap_or(false),
        heartbeat,
    }))
}

/// An accepted release as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRow {
    /// Its version.
    pub version: String,
    /// The `SignedRelease` as JSON text.
    pub signed: String,
    /// Acceptance time, Unix seconds.
    pub submitted: i64,
    /// Operator whose certificate submitted it.
    pub submitter: String,
    /// Names of the approvers whose signatures counted.
    pub signers: Vec<String>,
    /// Index of the newest open wave.
    pub wave: usize,
    /// When and why the hub stopped its rollout.
    pub stopped: Option<(i64, String)>,
}

/// What [`Db::insert_release`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseStored {
    /// A version the hub did not hold.
    New,
    /// The same release again: its signatures were replaced.
    Replaced,
    /// The hub holds another release under this version; nothing changed.
    Conflict,
}

impl Db {
    /// Stores an accepted release. `digest` identifies its signed bytes: the
    /// same release (same digest) may come again with other signatures, which
    /// replace the stored ones; another under the same version is refused.
    pub fn insert_release(&self, row: &ReleaseRow, digest: &str) -> Result<ReleaseStored> {
        let mut c = self.c();
        let tx = c.transaction()?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT digest FROM releases WHERE version=?1",
                [&row.version],
                |r| r.get(0),
            )
            .optional()?;
        let signers = serde_json::to_string(&row.signers)?;
        let stored = match existing {
            None => {
                tx.execute(
                    "INSERT INTO releases(version,digest,signed,submitted,submitter,signers)
                     VALUES(?1,?2,?3,?4,?5,?6)",
                    params![
                        row.version,
                        digest,
                        row.signed,
                        row.submitted,
                        row.submitter,
                        signers
                    ],
                )?;
                ReleaseStored::New
            }
            Some(d) if d == digest => {
                tx.execute(
                    "UPDATE releases SET signed=?2, signers=?3 WHERE version=?1",
                    params![row.version, row.signed, signers],
                )?;
                ReleaseStored::Replaced
            }
            Some(_) => return Ok(ReleaseStored::Conflict),
        };
        tx.commit()?;
        Ok(stored)
    }

    /// Every stored release, in the order they were accepted.
    pub fn releases(&self) -> Result<Vec<ReleaseRow>> {
        let c = self.r();
        let mut st = c.prepare(
            "SELECT version,signed,submitted,submitter,signers,wave,stopped,stop_reason
             FROM releases ORDER BY rowid",
        )?;
        let rows = st.query_map([], |r| {
            let stopped: Option<i64> = r.get(6)?;
            Ok((
                ReleaseRow {
                    version: r.get(0)?,
                    signed: r.get(1)?,
                    submitted: r.get(2)?,
                    submitter: r.get(3)?,
                    signers: Vec::new(),
                    wave: r.get::<_, i64>(5)?.try_into().unwrap_or(0),
                    stopped: stopped.map(|t| (t, r.get(7).unwrap_or_default())),
                },
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut row, signers) = row?;
            row.signers = serde_json::from_str(&signers)?;
            out.push(row);
        }
        Ok(out)
    }

    /// Opens waves of a release up to index `wave`.
    pub fn set_release_wave(&self, version: &str, wave: usize) -> Result<()> {
        self.c().execute(
            "UPDATE releases SET wave=?2 WHERE version=?1",
            params![version, wave as i64],
        )?;
        Ok(())
    }

    /// Stops a release's rollout (once: a later stop keeps the first reason).
    pub fn stop_release(&self, version: &str, at: i64, reason: &str) -> Result<()> {
        self.c().execute(
            "UPDATE releases SET stopped=?2, stop_reason=?3 WHERE version=?1 AND stopped IS NULL",
            params![version, at, reason],
        )?;
        Ok(())
    }

    /// Records a node's heartbeat: seen now from `address`, running
    /// `version`, and what it says of releases. Returns whether its version
    /// or failed release changed (or it reported for the first time), the
    /// events that can move a rollout.
    pub fn record_heartbeat(
        &self,
        id: &str,
        address: &str,
        version: &str,
        report: &NodeRelease,
    ) -> Result<bool> {
        let mut c = self.c();
        let tx = c.transaction()?;
        // (agent version, whether it reported releases before, failed release)
        let before: Option<(Option<String>, bool, Option<String>)> = tx
            .query_row(
                "SELECT agent_version, node_releases.heartbeat IS NOT NULL, node_releases.failed
                 FROM nodes LEFT JOIN node_releases ON node_releases.node_id=nodes.id WHERE id=?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((old_version, reported, old_failed)) = before else {
            return Ok(false);
        };
        let failed = report
            .failed
            .as_ref()
            .map(|f| serde_json::to_string(f).expect("serialises"));
        tx.execute(
            "UPDATE nodes SET last_seen=?2, address=?3, agent_version=?4 WHERE id=?1",
            params![id, report.heartbeat, address, version],
        )?;
        tx.execute(
            "INSERT INTO node_releases(node_id,target,failed,from_release,heartbeat) VALUES(?1,?2,?3,?4,?5)
             ON CONFLICT(node_id) DO UPDATE SET target=?2, failed=?3, from_release=?4, heartbeat=?5",
            params![id, report.target, failed, report.from_release, report.heartbeat],
        )?;
        tx.commit()?;
        Ok(!reported || old_version.as_deref() != Some(version) || old_failed != failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: &str, signed: &str) -> ReleaseRow {
        ReleaseRow {
            version: version.into(),
            signed: signed.into(),
            submitted: 5,
            submitter: "ops".into(),
            signers: vec!["a1".into()],
            wave: 0,
            stopped: None,
        }
    }

    #[test]
    fn a_release_gains_signatures_but_never_changes() {
        let (_d, db) = crate::db::tests::db();
        assert_eq!(
            db.insert_release(&row("0.2.0", "one"), "d1").unwrap(),
            ReleaseStored::New
        );
        let mut more = row("0.2.0", "two");
        more.signers.push("a2".into());
        assert_eq!(
            db.insert_release(&more, "d1").unwrap(),
            ReleaseStored::Replaced
        );
        assert_eq!(
            db.insert_release(&row("0.2.0", "other"), "d2").unwrap(),
            ReleaseStored::Conflict
        );
        db.set_release_wave("0.2.0", 2).unwrap();
        db.stop_release("0.2.0", 9, "first").unwrap();
        db.stop_release("0.2.0", 10, "second").unwrap();
        let got = db.releases().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].signed.as_str(), got[0].signers.len()), ("two", 2));
        assert_eq!(got[0].wave, 2);
        assert_eq!(got[0].stopped, Some((9, "first".into())));
    }

    #[test]
    fn a_database_from_before_releases_is_upgraded_and_heartbeats_count() {
        let (d, db) = crate::db::tests::db();
        let path = d.path().join("hub.db");
        db.insert_node(&crate::db::tests::node_row("n-1", "fp"), None, None)
            .unwrap();
        // As a hub at version 5 left it.
        db.c()
            .execute_batch("DROP TABLE releases; DROP TABLE node_releases; PRAGMA user_version=5;")
            .unwrap();
        drop(db);
        let db = Db::open(&path).unwrap();
        assert_eq!(db.node("n-1").unwrap().unwrap().release, None);
        let mut report = NodeRelease {
            target: Some("t".into()),
            failed: None,
            from_release: false,
            heartbeat: 7,
        };
        assert!(db.record_heartbeat("n-1", "::1", "0.1.0", &report).unwrap());
        assert!(!db.record_heartbeat("n-1", "::1", "0.1.0", &report).unwrap());
        report.failed = Some(FailedRelease {
            version: "0.2.0".into(),
            code: "release-rolled-back".into(),
            detail: "crashed".into(),
        });
        assert!(db.record_heartbeat("n-1", "::1", "0.1.0", &report).unwrap());
        assert!(db.record_heartbeat("n-1", "::1", "0.2.0", &report).unwrap());
        let n = db.node("n-1").unwrap().unwrap();
        assert_eq!(n.agent_version.as_deref(), Some("0.2.0"));
        assert_eq!(n.release, Some(report));
        assert!(
            !db.record_heartbeat("n-9", "::1", "0.1.0", &n.release.unwrap())
                .unwrap()
        );
        db.insert_release(&row("0.2.0", "one"), "d1").unwrap();
    }
}
