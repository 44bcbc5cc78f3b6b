//! The store writer: one task that takes uploads from every connection through a bounded
//! channel, commits them in batches, and tells each connection when its upload is committed
//! so that it may acknowledge it.
//!
//! ```text
//! connections ──Upload{row, done}──► [bounded channel] ──► writer ──batch──► commit task ──┐
//!      ▲                               (up to batches_in_flight commit tasks at a time)    │
//!      │                                                            insert_telemetry ◄─────┤
//!      └────────────── done: committed / not stored ◄── (in batch order) ◄─────────────────┤
//!                                     alarms engine ◄─try_send (after the commit) ◄────────┘
//! ```
//!
//! - A batch closes at [`batch_size`](super::ListenerConfig::batch_size) rows or
//!   [`batch_delay`](super::ListenerConfig::batch_delay) after its first row.
//! - Up to [`batches_in_flight`](super::ListenerConfig::batches_in_flight) batches are being
//!   committed at once, each by its own task: while one commits, the writer already collects
//!   and hands over the next, so the store always has work queued (SQLite's writer thread
//!   merges batches queued back to back into one transaction). With that many in flight, the
//!   writer stops taking uploads from the channel until the oldest is done.
//! - Batches are **finished in order**: a commit task answers its uploads (and forwards its
//!   rows to the alarms engine) only after the batch before it was answered. So each
//!   connection learns of its commits in the order it handed its uploads over, and an
//!   answer is only ever "committed" for an upload whose own batch committed.
//! - An unavailable store ([`StoreError::Unavailable`]) is retried with a doubling pause while
//!   the task holds its batch; meanwhile the batches behind it wait to be answered, the
//!   writer stops taking uploads, the channel fills and the connections stop reading their
//!   sockets (TCP flow control then holds the data boxes back): nothing is dropped and
//!   nothing grows. Other store errors fail the batch: its uploads are not acknowledged, and
//!   the data boxes send them again.
//! - On shutdown the writer commits what the channel still holds and waits for every batch in
//!   flight; if the store stays unavailable past the grace period it gives up on a batch
//!   (unacknowledged, so not lost: the boxes resend to the next process).
//! - Committed rows go to the alarms engine with `try_send`: a slow engine never slows ingest;
//!   rows it could not take are counted in `alarms_dropped`. Rows the batch found already
//!   stored are forwarded too (the store reports counts, not which rows), so the engine must
//!   tolerate seeing a (terminal, record) twice.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, warn};

use super::stats::ListenerStats;
use crate::model::TelemetryRow;
use crate::store::{InsertReport, Store, StoreError};

/// An upload on its way to the store.
#[derive(Debug)]
pub(crate) struct Upload {
    /// The row.
    pub row: TelemetryRow,
    /// When its frame arrived.
    pub received: std::time::Instant,
    /// Answered once the row's batch is committed (`Ok`) or given up (`Err` with the reason).
    pub done: oneshot::Sender<Result<(), String>>,
}

/// How the writer batches and retries.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriterConfig {
    pub batch_size: usize,
    pub batch_delay: Duration,
    /// Batches being committed at once (at least 1).
    pub batches_in_flight: usize,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// The writer's inputs and outputs.
pub(crate) struct Writer<S> {
    pub store: S,
    pub config: WriterConfig,
    pub alarms: Option<mpsc::Sender<TelemetryRow>>,
    pub stats: Arc<ListenerStats>,
    /// Becomes `true` when an unavailable store is no longer worth waiting for (shutdown
    /// grace over).
    pub give_up: watch::Receiver<bool>,
}

/// What the commit tasks share.
struct Shared<S> {
    store: S,
    config: WriterConfig,
    /// `None` once the alarms engine stopped (or there is none).
    alarms: Mutex<Option<mpsc::Sender<TelemetryRow>>>,
    stats: Arc<ListenerStats>,
    give_up: watch::Receiver<bool>,
}

/// Completes when the batch before is answered (or its task is gone).
type Turn = oneshot::Receiver<()>;

impl<S: Store> Writer<S> {
    /// Runs until every sender of `uploads` is gone, the channel is drained and every batch
    /// in flight is finished.
    pub async fn run(self, mut uploads: mpsc::Receiver<Upload>) {
        let limit = self.config.batches_in_flight.max(1);
        let shared = Arc::new(Shared {
            store: self.store,
            config: self.config,
            alarms: Mutex::new(self.alarms),
            stats: self.stats,
            give_up: self.give_up,
        });
        let mut in_flight = JoinSet::new();
        let mut previous: Option<Turn> = None;
        loop {
            while let Some(ended) = in_flight.try_join_next() {
                report_task_end(ended);
            }
            if in_flight.len() >= limit {
                if let Some(ended) = in_flight.join_next().await {
                    report_task_end(ended);
                }
                continue;
            }
            let Some(batch) = next_batch(&shared.config, &mut uploads).await else {
                break;
            };
            let (finished, turn) = oneshot::channel();
            let waits_for = previous.replace(turn);
            in_flight.spawn(commit(shared.clone(), batch, waits_for, finished));
        }
        while let Some(ended) = in_flight.join_next().await {
            report_task_end(ended);
        }
        debug!("store writer: every connection is gone; writer stopped");
    }
}

fn report_task_end(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        // Its uploads' senders are dropped: their connections see the writer gone and close
        // without acknowledging them (the boxes send them again).
        error!("store writer: a commit task failed ({e}); its uploads are not acknowledged");
    }
}

/// Waits for a first upload, then collects more until the batch is full or its delay is
/// over; `None` when the channel is closed and empty.
async fn next_batch(
    config: &WriterConfig,
    uploads: &mut mpsc::Receiver<Upload>,
) -> Option<Vec<Upload>> {
    let first = uploads.recv().await?;
    let mut batch = Vec::with_capacity(config.batch_size.min(1024));
    batch.push(first);
    let deadline = tokio::time::Instant::now() + config.batch_delay;
    while batch.len() < config.batch_size {
        // Take what is already there without waiting on the timer.
        if let Ok(upload) = uploads.try_recv() {
            batch.push(upload);
            continue;
        }
        tokio::select! {
            upload = uploads.recv() => match upload {
                Some(upload) => batch.push(upload),
                None => break,
            },
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    Some(batch)
}

/// Commits one batch, then, once the batch before it is answered (`waits_for`), answers its
/// uploads, forwards its rows and signals `finished` to the batch behind.
async fn commit<S: Store>(
    shared: Arc<Shared<S>>,
    batch: Vec<Upload>,
    waits_for: Option<Turn>,
    finished: oneshot::Sender<()>,
) {
    let received: Vec<std::time::Instant> = batch.iter().map(|u| u.received).collect();
    let (rows, done): (Vec<TelemetryRow>, Vec<_>) =
        batch.into_iter().map(|u| (u.row, u.done)).unzip();
    let result = shared.insert_with_retry(&rows).await;
    if let Some(turn) = waits_for {
        // An error only means the task before is gone (it failed): nothing to wait for.
        let _ = turn.await;
    }
    let outcome = match result {
        Ok(report) => {
            for at in received {
                shared.stats.stored_latency.record(at.elapsed());
            }
            shared.count(report);
            shared.forward(rows);
            Ok(())
        }
        Err(reason) => {
            ListenerStats::add(&shared.stats.not_stored, done.len() as u64);
            Err(reason)
        }
    };
    for sender in done {
        // The connection may be gone; its upload is committed all the same.
        let _ = sender.send(outcome.clone());
    }
    let _ = finished.send(());
}

impl<S: Store> Shared<S> {
    /// Inserts `rows`, retrying while the store is unavailable; `Err` with the reason when
    /// the store refuses them or the writer gives up.
    async fn insert_with_retry(&self, rows: &[TelemetryRow]) -> Result<InsertReport, String> {
        let mut give_up = self.give_up.clone();
        let mut pause = self.config.retry_min;
        loop {
            match self.store.insert_telemetry(rows.to_vec()).await {
                Ok(report) => return Ok(report),
                Err(StoreError::Unavailable(why)) => {
                    ListenerStats::bump(&self.stats.store_retries);
                    warn!(
                        "store writer: database unavailable ({why}): holding a batch of {} rows \
                         and retrying in {} ms; connections stop reading while the queue is full",
                        rows.len(),
                        pause.as_millis()
                    );
                    if pause_or_give_up(&mut give_up, pause).await {
                        let reason =
                            format!("the database stayed unavailable through shutdown ({why})");
                        error!("store writer: {reason}: {} rows not stored and not acknowledged (the data boxes send them again)", rows.len());
                        return Err(reason);
                    }
                    pause = (pause * 2).min(self.config.retry_max);
                }
                Err(other) => {
                    error!(
                        "store writer: a batch of {} rows was refused: {other}; its uploads are \
                         not acknowledged",
                        rows.len()
                    );
                    return Err(other.to_string());
                }
            }
        }
    }

    fn count(&self, report: InsertReport) {
        ListenerStats::bump(&self.stats.batches);
        ListenerStats::add(&self.stats.stored, report.inserted);
        ListenerStats::add(&self.stats.duplicates, report.duplicates);
    }

    /// Hands committed rows to the alarms engine without waiting.
    fn forward(&self, rows: Vec<TelemetryRow>) {
        let mut alarms = self.alarms.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = alarms.as_ref() else {
            return;
        };
        for row in rows {
            match sender.try_send(row) {
                Ok(()) => ListenerStats::bump(&self.stats.alarms_forwarded),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    ListenerStats::bump(&self.stats.alarms_dropped);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    warn!("store writer: the alarms engine stopped; rows are no longer forwarded");
                    ListenerStats::bump(&self.stats.alarms_dropped);
                    *alarms = None;
                    return;
                }
            }
        }
    }
}

/// Sleeps for `pause`; `true` if the writer should give up instead.
async fn pause_or_give_up(give_up: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    if *give_up.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(pause) => false,
        // A closed sender means the listener is gone: give up too.
        () = super::stopped(give_up) => true,
    }
}
