//! The writer thread: owns the read-write connection and the telemetry dedup keys ([`Db`]),
//! and runs write jobs in arrival order.
//!
//! Telemetry batches queued back to back are coalesced into one transaction (up to
//! [`MAX_COALESCED_ROWS`]): under load, the pages a batch touches (the current history slot,
//! the end of the time index) are then written once for many batches. Each caller still gets
//! the report of its own batch; if the transaction fails, each gets the error. The
//! per-terminal copies of what the rows changed (`latest`, `last_seen`, the dedup keys) are
//! flushed every [`FLUSH_INTERVAL`] while rows keep coming, or once the queue is quiet
//! (`pending.rs`), and when the store closes.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::keys::WriterKeys;
use super::pending::{PendingLatest, FLUSH_INTERVAL};
use super::telemetry;
use crate::model::TelemetryRow;
use crate::store::{InsertReport, StoreError, StoreResult};

/// Most rows written in one coalesced transaction.
const MAX_COALESCED_ROWS: usize = 20_000;

/// What the writer thread owns.
pub(super) struct Db {
    /// The read-write connection.
    pub(super) connection: Connection,
    /// The dedup keys of stored telemetry (`telemetry_keys` plus the unflushed changes).
    pub(super) keys: WriterKeys,
    /// Committed rows whose per-terminal copies wait for a flush (readers overlay them).
    pub(super) pending: PendingLatest,
    /// Terminals the `terminals` table holds: a row of any other one creates it in the
    /// row's own transaction, so the fleet lists it at once.
    pub(super) known: HashSet<u32>,
    /// When the per-terminal copies were last written (or last tried).
    pub(super) flushed_at: Instant,
}

impl Db {
    /// The writer's state for a migrated database: the stored keys, and the rows committed
    /// after the last flush replayed into them and into the pending latest rows.
    pub(super) fn open(connection: Connection) -> StoreResult<Db> {
        let mut db = Db {
            keys: WriterKeys::load(&connection)?,
            known: telemetry::known_terminals(&connection)?,
            connection,
            pending: PendingLatest::default(),
            flushed_at: Instant::now(),
        };
        telemetry::replay_unflushed(&db.connection, &mut db.keys.keys, &db.pending)?;
        Ok(db)
    }

    fn flush_due(&self) -> bool {
        self.flushed_at.elapsed() >= FLUSH_INTERVAL && !self.pending.is_empty()
    }

    /// How long the queue may stay quiet before pending copies are flushed anyway.
    fn flush_wait(&self) -> Option<Duration> {
        (!self.pending.is_empty()).then(|| FLUSH_INTERVAL.saturating_sub(self.flushed_at.elapsed()))
    }

    /// Writes the pending per-terminal copies; a failure (disk full) is logged and tried
    /// again after [`FLUSH_INTERVAL`] (the rows are committed: nothing is lost meanwhile).
    fn flush(&mut self, why: &str) {
        if let Err(error) = telemetry::flush(self) {
            tracing::warn!(
                "cannot write the latest rows and dedup keys ({why}): {error}; the telemetry \
                 rows are stored, trying again in {} s",
                FLUSH_INTERVAL.as_secs()
            );
        }
        self.flushed_at = Instant::now();
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

/// Starts the thread; it ends (flushing what is pending) when every sender is dropped.
pub(super) fn spawn(mut db: Db) -> StoreResult<mpsc::Sender<WriteJob>> {
    let (jobs, inbox) = mpsc::channel::<WriteJob>();
    let run = move || {
        let mut next = None;
        while let Some(job) = next.take().or_else(|| receive(&inbox, &mut db)) {
            match job {
                WriteJob::Other(job) => guarded(|| job(&mut db)),
                WriteJob::Telemetry(rows, reply) => {
                    let (batches, after) = coalesce(&inbox, rows, reply);
                    next = after;
                    guarded(|| insert(&mut db, batches));
                    // Key changes left uncommitted by a panic midway go with the transaction.
                    db.keys.keys.rollback();
                    if db.flush_due() {
                        guarded(|| db.flush("rows keep coming"));
                    }
                }
            }
        }
        guarded(|| db.flush("the store is closing"));
    };
    std::thread::Builder::new()
        .name("bmslink-sqlite-writer".into())
        .spawn(run)
        .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
    Ok(jobs)
}

/// The next job; while copies are pending, a queue quiet for the rest of the flush interval
/// flushes them first. `None` once every sender is gone.
fn receive(inbox: &mpsc::Receiver<WriteJob>, db: &mut Db) -> Option<WriteJob> {
    loop {
        let Some(wait) = db.flush_wait() else {
            return inbox.recv().ok();
        };
        match inbox.recv_timeout(wait) {
            Ok(job) => return Some(job),
            Err(RecvTimeoutError::Timeout) => guarded(|| db.flush("the queue is quiet")),
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
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
    match telemetry::insert(db, rows) {
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
