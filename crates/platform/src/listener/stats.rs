//! The listener's counters: plain atomics the connections and the writer bump, read by the
//! HTTP API and the logs as a [`ListenerStatsSnapshot`], plus a few per terminal
//! ([`TerminalStats`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bmslink_proto::FrameError;
use serde::Serialize;

use crate::model::Terminal;

macro_rules! counters {
    ($($(#[$doc:meta])* $field:ident,)*) => {
        /// Counters of one listener, shared (`Arc`) between its tasks and whoever reports them.
        /// Every counter only grows, except `connections_open`.
        #[derive(Debug, Default)]
        pub struct ListenerStats {
            $($(#[$doc])* pub $field: AtomicU64,)*
            terminals: Mutex<HashMap<Terminal, Arc<TerminalStats>>>,
            /// Time from an upload's arrival to the commit of its batch.
            pub stored_latency: LatencyHistogram,
        }

        /// The counters at one moment, for the API (JSON) and logs.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
        pub struct ListenerStatsSnapshot {
            $($(#[$doc])* pub $field: u64,)*
        }

        impl ListenerStats {
            /// Reads every counter (each atomically; the set is not one instant).
            pub fn snapshot(&self) -> ListenerStatsSnapshot {
                ListenerStatsSnapshot {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters! {
    /// Connections accepted.
    connections_accepted,
    /// Connections open now.
    connections_open,
    /// Connections closed for sending no frame within the idle timeout.
    closed_idle,
    /// Connections closed for sending only garbage (the garbage limit without a valid frame).
    closed_garbage,
    /// Connections closed for announcing a frame above the maximum length.
    closed_oversized,
    /// Connections closed because a newer connection claimed their terminal (impersonation
    /// rule).
    closed_replaced,
    /// Connections closed because their terminal is rejected.
    closed_rejected,
    /// Valid frames received.
    frames,
    /// Active uploads received (valid frames with transport type 02).
    uploads,
    /// Rows newly stored.
    stored,
    /// Rows the store already held (a resent upload): acknowledged, not stored twice.
    duplicates,
    /// Uploads acknowledged with a response frame.
    acknowledged,
    /// Uploads not acknowledged because the store refused them or the writer gave up.
    not_stored,
    /// Uploads of pending (not approved) terminals: neither stored nor acknowledged.
    unregistered_uploads,
    /// Uploads that are valid frames but not usable telemetry (missing cells, bad settings).
    bad_content,
    /// Candidate frames with a bad checksum.
    malformed_checksum,
    /// Candidate frames with an impossible LENGTH (too short).
    malformed_length,
    /// Candidate frames with a bad end byte.
    malformed_end,
    /// Candidate frames whose high checksum bytes are not zero.
    malformed_checksum_high,
    /// Frames cut short.
    malformed_truncated,
    /// Frames with a command, source or transport byte outside the protocol.
    malformed_header,
    /// Replies to commands whose content is malformed.
    malformed_reply,
    /// Frames announcing more than the maximum frame length.
    oversized,
    /// Frames claiming a terminal beyond what their connection may carry: dropped.
    foreign_terminal,
    /// Request frames (transport 00) from a data box: dropped.
    unexpected_requests,
    /// Responses that answer nothing outstanding (late replies).
    unsolicited,
    /// Times a connection found the writer's channel full and stopped reading until it had
    /// room (back-pressure).
    backpressure_waits,
    /// Batches committed.
    batches,
    /// Failed commits retried (store unavailable).
    store_retries,
    /// Rows forwarded to the alarms engine.
    alarms_forwarded,
    /// Rows not forwarded because the alarms engine's channel was full or closed.
    alarms_dropped,
    /// Possible impersonations: a terminal claimed while online on another connection.
    impersonations,
    /// Remote commands started on a connection.
    commands_started,
    /// Remote commands finished with a result.
    commands_done,
    /// Remote commands that failed (invalid, timed out, connection lost, refused).
    commands_failed,
}

impl ListenerStats {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub(crate) fn bump(counter: &AtomicU64) {
        ListenerStats::add(counter, 1);
    }

    /// The counter of a framing error's kind.
    pub(crate) fn frame_error(&self, error: &FrameError) -> &AtomicU64 {
        match error {
            FrameError::Checksum { .. } => &self.malformed_checksum,
            FrameError::BadEnd { .. } => &self.malformed_end,
            FrameError::ChecksumHighNotZero { .. } => &self.malformed_checksum_high,
            FrameError::Truncated { .. } => &self.malformed_truncated,
            FrameError::BadStart { .. } => &self.malformed_header,
            _ => &self.malformed_length,
        }
    }

    /// All malformed input counted so far.
    pub fn malformed(&self) -> u64 {
        let s = self.snapshot();
        s.malformed_checksum
            + s.malformed_length
            + s.malformed_end
            + s.malformed_checksum_high
            + s.malformed_truncated
            + s.malformed_header
            + s.malformed_reply
            + s.oversized
    }
}

impl ListenerStatsSnapshot {
    /// One line for logs: the main counters.
    pub fn summary(&self) -> String {
        format!(
            "{} connections ({} open), {} frames, {} uploads, {} stored, {} duplicates, {} \
             acknowledged, {} not stored, {} back-pressure waits, {} store retries, {} \
             impersonations, {} commands done, {} failed",
            self.connections_accepted,
            self.connections_open,
            self.frames,
            self.uploads,
            self.stored,
            self.duplicates,
            self.acknowledged,
            self.not_stored,
            self.backpressure_waits,
            self.store_retries,
            self.impersonations,
            self.commands_done,
            self.commands_failed
        )
    }
}

/// Bucket upper bounds of [`LatencyHistogram`], microseconds: 64 us doubling to ~34 s.
const LATENCY_BUCKETS: usize = 20;

/// A histogram of durations in powers-of-two buckets (64 us .. 34 s, and above), lock-free.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS + 1],
}

impl LatencyHistogram {
    fn bound_us(bucket: usize) -> u64 {
        64u64 << bucket
    }

    /// Records one duration.
    pub fn record(&self, duration: std::time::Duration) {
        let us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let bucket = (0..LATENCY_BUCKETS)
            .find(|&b| us <= Self::bound_us(b))
            .unwrap_or(LATENCY_BUCKETS);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The upper bound of the bucket holding the `q` quantile (0..=1); `None` when empty or
    /// above the last bound.
    pub fn quantile(&self, q: f64) -> Option<std::time::Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let wanted = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return (bucket < LATENCY_BUCKETS)
                    .then(|| std::time::Duration::from_micros(Self::bound_us(bucket)));
            }
        }
        None
    }
}

/// Counters of one terminal since the listener started (over all its connections).
#[derive(Debug, Default)]
pub struct TerminalStats {
    /// Connections that carried it.
    pub connections: AtomicU64,
    /// Active uploads received.
    pub uploads: AtomicU64,
    /// Uploads acknowledged (stored, or found stored already).
    pub acknowledged: AtomicU64,
    /// Malformed input: framing errors, bad headers, malformed replies.
    pub malformed: AtomicU64,
    /// Uploads that were valid frames but not usable telemetry.
    pub bad_content: AtomicU64,
}

/// [`TerminalStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TerminalStatsSnapshot {
    /// Connections that carried it.
    pub connections: u64,
    /// Active uploads received.
    pub uploads: u64,
    /// Uploads acknowledged.
    pub acknowledged: u64,
    /// Malformed input.
    pub malformed: u64,
    /// Unusable uploads.
    pub bad_content: u64,
}

impl TerminalStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> TerminalStatsSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TerminalStatsSnapshot {
            connections: read(&self.connections),
            uploads: read(&self.uploads),
            acknowledged: read(&self.acknowledged),
            malformed: read(&self.malformed),
            bad_content: read(&self.bad_content),
        }
    }
}

impl ListenerStats {
    /// One terminal's counters, if it connected since the listener started.
    pub fn terminal(&self, terminal: Terminal) -> Option<TerminalStatsSnapshot> {
        self.lock_terminals()
            .get(&terminal)
            .map(|counters| counters.snapshot())
    }

    /// The counters of a terminal, created on first use.
    pub(crate) fn terminal_counters(&self, terminal: Terminal) -> Arc<TerminalStats> {
        self.lock_terminals().entry(terminal).or_default().clone()
    }

    fn lock_terminals(&self) -> std::sync::MutexGuard<'_, HashMap<Terminal, Arc<TerminalStats>>> {
        self.terminals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Decrements `connections_open` when dropped (a connection task ends, even by a panic).
pub(crate) struct OpenConnection<'a>(&'a ListenerStats);

impl<'a> OpenConnection<'a> {
    pub(crate) fn new(stats: &'a ListenerStats) -> OpenConnection<'a> {
        ListenerStats::bump(&stats.connections_accepted);
        ListenerStats::bump(&stats.connections_open);
        OpenConnection(stats)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod latency_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        let histogram = LatencyHistogram::default();
        assert_eq!(histogram.quantile(0.5), None);
        for _ in 0..98 {
            histogram.record(Duration::from_micros(100));
        }
        histogram.record(Duration::from_millis(3));
        histogram.record(Duration::from_millis(3));
        assert_eq!(histogram.count(), 100);
        assert_eq!(histogram.quantile(0.5), Some(Duration::from_micros(128)));
        assert_eq!(histogram.quantile(0.98), Some(Duration::from_micros(128)));
        assert_eq!(histogram.quantile(0.99), Some(Duration::from_micros(4096)));
        histogram.record(Duration::from_secs(100));
        assert_eq!(histogram.quantile(1.0), None, "beyond the last bucket");
    }
}
