//! The store writer: one task that takes uploads from every connection through a bounded
//! channel, commits them in batches, and tells each connection when its upload is committed
//! so that it may acknowledge it.
//!
//! ```text
//! connections ──Upload{row, done}──► [bounded channel] ──► writer ──insert_telemetry──► store
//!      ▲                                                     │
//!      └────────────── done: committed / not stored ◄────────┤
//!                                     alarms engine ◄─try_send┘ (after the commit)
//! ```
//!
//! - A batch closes at [`batch_size`](super::ListenerConfig::batch_size) rows or
//!   [`batch_delay`](super::ListenerConfig::batch_delay) after its first row.
//! - An unavailable store ([`StoreError::Unavailable`]) is retried with a doubling pause while
//!   the writer holds its batch; meanwhile the channel fills and the connections stop reading
//!   their sockets (TCP flow control then holds the data boxes back): nothing is dropped and
//!   nothing grows. Other store errors fail the batch: its uploads are not acknowledged, and
//!   the data boxes send them again.
//! - On shutdown the writer commits what the channel still holds; if the store stays
//!   unavailable past the grace period it gives up on the batch (unacknowledged, so not lost:
//!   the boxes resend to the next process).
//! - Committed rows go to the alarms engine with `try_send`: a slow engine never slows ingest;
//!   rows it could not take are counted in `alarms_dropped`. Rows the batch found already
//!   stored are forwarded too (the store reports counts, not which rows), so the engine must
//!   tolerate seeing a (terminal, record) twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
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

impl<S: Store> Writer<S> {
    /// Runs until every sender of `uploads` is gone and the channel is drained.
    pub async fn run(mut self, mut uploads: mpsc::Receiver<Upload>) {
        while let Some(batch) = self.next_batch(&mut uploads).await {
            self.commit(batch).await;
        }
        debug!("store writer: every connection is gone; writer stopped");
    }

    /// Waits for a first upload, then collects more until the batch is full or its delay is
    /// over; `None` when the channel is closed and empty.
    async fn next_batch(&self, uploads: &mut mpsc::Receiver<Upload>) -> Option<Vec<Upload>> {
        let first = uploads.recv().await?;
        let mut batch = Vec::with_capacity(self.config.batch_size.min(1024));
        batch.push(first);
        let deadline = tokio::time::Instant::now() + self.config.batch_delay;
        while batch.len() < self.config.batch_size {
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

    async fn commit(&mut self, batch: Vec<Upload>) {
        let received: Vec<std::time::Instant> = batch.iter().map(|u| u.received).collect();
        let (rows, done): (Vec<TelemetryRow>, Vec<_>) =
            batch.into_iter().map(|u| (u.row, u.done)).unzip();
        let result = self.insert_with_retry(&rows).await;
        let outcome = match result {
            Ok(report) => {
                for at in received {
                    self.stats.stored_latency.record(at.elapsed());
                }
                self.count(report);
                self.forward(rows);
                Ok(())
            }
            Err(reason) => {
                ListenerStats::add(&self.stats.not_stored, done.len() as u64);
                Err(reason)
            }
        };
        for sender in done {
            // The connection may be gone; its upload is committed all the same.
            let _ = sender.send(outcome.clone());
        }
    }

    /// Inserts `rows`, retrying while the store is unavailable; `Err` with the reason when
    /// the store refuses them or the writer gives up.
    async fn insert_with_retry(&mut self, rows: &[TelemetryRow]) -> Result<InsertReport, String> {
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
                    if self.pause_or_give_up(pause).await {
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

    /// Sleeps for `pause`; `true` if the writer should give up instead.
    async fn pause_or_give_up(&mut self, pause: Duration) -> bool {
        if *self.give_up.borrow() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => false,
            // A closed sender means the listener is gone: give up too.
            () = super::stopped(&mut self.give_up) => true,
        }
    }

    fn count(&self, report: InsertReport) {
        ListenerStats::bump(&self.stats.batches);
        ListenerStats::add(&self.stats.stored, report.inserted);
        ListenerStats::add(&self.stats.duplicates, report.duplicates);
    }

    /// Hands committed rows to the alarms engine without waiting.
    fn forward(&mut self, rows: Vec<TelemetryRow>) {
        let Some(alarms) = &self.alarms else {
            return;
        };
        for row in rows {
            match alarms.try_send(row) {
                Ok(()) => ListenerStats::bump(&self.stats.alarms_forwarded),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    ListenerStats::bump(&self.stats.alarms_dropped);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    warn!("store writer: the alarms engine stopped; rows are no longer forwarded");
                    ListenerStats::bump(&self.stats.alarms_dropped);
                    self.alarms = None;
                    return;
                }
            }
        }
    }
}
