//! The writer thread: owns the read-write connection and the telemetry dedup keys ([`Db`]),
//! and runs write jobs in arrival order.
//!
//! Telemetry batches queued back to back are coalesced into one transaction (up to
//! [`MAX_COALESCED_ROWS`]): under load, the pages a batch touches (the `latest` row, the
//! dedup-key run and the current history slot of each terminal) are then written once for
//! many batches. Each caller still gets the report of its own batch; if the transaction
//! fails, each gets the error.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::keys::WriterKeys;
use super::telemetry;
use crate::model::TelemetryRow;
use crate::store::{InsertReport, StoreError, StoreResult};

/// Most rows written in one coalesced transaction.
const MAX_COALESCED_ROWS: usize = 50_000;

/// What the writer thread owns.
pub(super) struct Db {
    /// The read-write connection.
    pub(super) connection: Connection,
    /// The dedup keys of stored telemetry (in step with `telemetry_keys`).
    pub(super) keys: WriterKeys,
}

impl Db {
    /// The writer's state for a migrated database.
    pub(super) fn open(connection: Connection) -> StoreResult<Db> {
        let keys = WriterKeys::load(&connection)?;
        Ok(Db { connection, keys })
    }
}

/// A job for the writer thread.
pub(super) enum WriteJob {
    /// A telemetry batch and where its report goes.
    Telemetry(
        Vec<TelemetryRow>,
        oneshot::Sender<StoreResult<InsertReport>>,
    ),
    /// Any other write (it sends its own reply).
    Other(Box<dyn FnOnce(&mut Db) + Send>),
}

/// Starts the thread; it ends when every sender is dropped.
pub(super) fn spawn(mut db: Db) -> StoreResult<mpsc::Sender<WriteJob>> {
    let (jobs, inbox) = mpsc::channel::<WriteJob>();
    let run = move || {
        let mut next = None;
        while let Some(job) = next.take().or_else(|| inbox.recv().ok()) {
            match job {
                WriteJob::Other(job) => guarded(|| job(&mut db)),
                WriteJob::Telemetry(rows, reply) => {
                    let (batches, after) = coalesce(&inbox, rows, reply);
                    next = after;
                    guarded(|| insert(&mut db, batches));
                    // Key changes left uncommitted by a panic midway go with the transaction.
                    db.keys.keys.rollback();
                }
            }
        }
    };
    std::thread::Builder::new()
        .name("bmslink-sqlite-writer".into())
        .spawn(run)
        .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
    Ok(jobs)
}

type Batch = (
    Vec<TelemetryRow>,
    oneshot::Sender<StoreResult<InsertReport>>,
);

/// The batch and the telemetry batches queued right behind it; the first other job met is
/// returned to run next (order is kept).
fn coalesce(
    inbox: &mpsc::Receiver<WriteJob>,
    rows: Vec<TelemetryRow>,
    reply: oneshot::Sender<StoreResult<InsertReport>>,
) -> (Vec<Batch>, Option<WriteJob>) {
    let mut total = rows.len();
    let mut batches = vec![(rows, reply)];
    while total < MAX_COALESCED_ROWS {
        match inbox.try_recv() {
            Ok(WriteJob::Telemetry(rows, reply)) => {
                total += rows.len();
                batches.push((rows, reply));
            }
            Ok(other) => return (batches, Some(other)),
            Err(_) => break,
        }
    }
    (batches, None)
}

fn insert(db: &mut Db, batches: Vec<Batch>) {
    let (rows, replies): (Vec<_>, Vec<_>) = batches.into_iter().unzip();
    match telemetry::insert(db, &rows) {
        Ok(reports) => {
            for (reply, report) in replies.into_iter().zip(reports) {
                // The caller may have gone (cancelled): then nobody needs the answer.
                let _ = reply.send(Ok(report));
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// Runs a job; a panicking one drops its reply (its caller sees `Unavailable`) and the thread
/// carries on with the next.
fn guarded(job: impl FnOnce()) {
    if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
        tracing::error!("a SQLite write job panicked; its caller was told it failed");
    }
}
