//! Group commit of results: a result is acknowledged only once it is on disk,
//! and results arriving together share one transaction and so one fsync.
//!
//! With `synchronous=FULL` every commit waits for the disk; one commit per
//! result would cap ingest at the disk's fsync rate (a few hundred to a few
//! thousand per second). Here one writer thread takes whatever has queued up
//! while the previous commit was waiting for the disk and commits it at once:
//! under no load a result is committed alone, without waiting for company;
//! under load batches grow by themselves. Each caller learns its own row's
//! fate only after the commit returned.

use crate::db::{Db, DbError, NewResult};
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most results in one transaction: bounds the time one commit holds the
/// write connection (other writers wait meanwhile).
pub const MAX_BATCH: usize = 1024;

/// Results waiting for the writer. Beyond this, posting handlers wait for
/// room (backpressure reaches the nodes as slower answers, not lost results).
const QUEUE: usize = 8 * MAX_BATCH;

/// The stored row's id, or `None` for a duplicate of a stored result.
type Outcome = Result<Option<i64>, DbError>;

struct Pending {
    row: NewResult,
    done: oneshot::Sender<Outcome>,
}

/// The queue into the result writer.
pub struct Ingest {
    tx: mpsc::Sender<Pending>,
    /// Transactions committed; results stored per commit is the mean batch.
    pub commits: Counter,
}

/// Why a result was not stored: the database refused it, or the hub is
/// shutting down.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The database refused the row.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The writer has stopped (the hub is stopping).
    #[error("the hub is shutting down; send the result again later")]
    Stopped,
}

impl Ingest {
    /// Starts the writer thread; it ends when the last `Ingest` is dropped.
    pub fn start(db: Arc<Db>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let commits = Counter::default();
        let counted = commits.clone();
        std::thread::Builder::new()
            .name("result-writer".into())
            .spawn(move || write_batches(&db, rx, &counted))
            .expect("spawn the result writer");
        Self { tx, commits }
    }

    /// Stores `row` durably: returns after its transaction committed (or
    /// failed). `Ok(None)`: an equal result was stored before.
    pub async fn store(&self, row: NewResult) -> Result<Option<i64>, IngestError> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Pending { row, done })
            .await
            .map_err(|_| IngestError::Stopped)?;
        Ok(answer.await.map_err(|_| IngestError::Stopped)??)
    }
}

/// The writer: waits for one result, takes every other one already queued
/// (up to [`MAX_BATCH`]), commits them in one transaction, answers each.
fn write_batches(db: &Db, mut rx: mpsc::Receiver<Pending>, commits: &Counter) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let rows: Vec<&NewResult> = batch.iter().map(|p| &p.row).collect();
        match db.insert_results(&rows) {
            Ok(ids) => {
                commits.inc();
                for (p, id) in batch.into_iter().zip(ids) {
                    let _ = p.done.send(Ok(id));
                }
            }
            // Nothing of the batch was committed. One row alone may be the
            // cause: each is tried on its own, so it fails alone.
            Err(e) => {
                tracing::warn!(
                    "result batch of {} not stored ({e}); storing one by one",
                    rows.len()
                );
                for p in batch {
                    let one = db.insert_results(&[&p.row]).map(|ids| ids[0]);
                    if one.is_ok() {
                        commits.inc();
                    }
                    let _ = p.done.send(one);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::{db, new_result, poison};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Rows from `n` nodes, the body of node `i` chosen by `body(i)`.
    fn rows(n: usize, body: impl Fn(usize) -> &'static str) -> Vec<NewResult> {
        (0..n)
            .map(|i| new_result(&format!("n-{i}"), 0, body(i)))
            .collect()
    }

    /// Stores each row from its own concurrent caller, calling `check` on
    /// each acknowledged row as soon as it is acknowledged; returns each answer.
    fn store_concurrently(
        ingest: &Arc<Ingest>,
        rows: Vec<NewResult>,
        check: impl Fn(&NewResult) + Clone + Send + 'static,
    ) -> Vec<Result<Option<i64>, IngestError>> {
        runtime().block_on(async {
            let tasks: Vec<_> = rows
                .into_iter()
                .map(|row| {
                    let (ingest, check) = (ingest.clone(), check.clone());
                    tokio::spawn(async move {
                        let answer = ingest.store(row.clone()).await;
                        if answer.is_ok() {
                            check(&row);
                        }
                        answer
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        })
    }

    #[test]
    fn an_acknowledged_result_is_committed_and_concurrent_ones_share_commits() {
        let (dir, db) = db();
        let ingest = Arc::new(Ingest::start(Arc::new(db)));
        let path = dir.path().join("hub.db");
        // At the moment of its acknowledgement a result is visible to another
        // connection: committed (with synchronous=FULL, on disk), not merely
        // queued or inside an open transaction.
        let committed = move |r: &NewResult| {
            let other = rusqlite::Connection::open(&path).unwrap();
            let n: i64 = other
                .query_row(
                    "SELECT count(*) FROM results WHERE node_id=?1",
                    [&r.node_id],
                    |x| x.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{} acknowledged before its commit", r.node_id);
        };
        let answers = store_concurrently(&ingest, rows(500, |_| "{}"), committed);
        assert!(answers.iter().all(|a| matches!(a, Ok(Some(_)))));
        let commits = ingest.commits.get();
        assert!(
            commits < 500,
            "no group commit: {commits} commits for 500 results"
        );
    }

    #[test]
    fn a_bad_row_fails_alone() {
        let (_dir, db) = db();
        let db = Arc::new(db);
        poison(&db);
        let ingest = Arc::new(Ingest::start(db.clone()));
        let bad = |i| if i == 100 { "poison" } else { "{}" };
        let answers = store_concurrently(&ingest, rows(200, bad), |_| ());
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(a.is_ok(), i != 100, "row {i}: {a:?}");
        }
        assert_eq!(db.result_count("j").unwrap(), 199);
    }
}
