//! Rows committed to `telemetry` whose per-terminal copies (`latest`, `terminals.last_seen`,
//! `telemetry_keys`) are not written yet.
//!
//! Those tables hold one row per terminal that every upload changes: rewriting them in each
//! telemetry transaction cost about three page writes per terminal per commit, more than the
//! rows themselves with 19,000 terminals uploading every second. So the writer thread updates
//! them from memory at most every [`FLUSH_INTERVAL`] (and in the transaction that applies
//! retention), while the rows themselves are committed, and acknowledged, as before:
//!
//! - reads in this process look at [`PendingLatest`] first, so they see every committed row;
//! - `telemetry_flushed.through_rowid` names the highest telemetry rowid the copies reflect;
//!   opening the file (after a crash, too) replays the rows above it (at most [`FLUSH_INTERVAL`]'s
//!   worth), so nothing the copies lacked is lost. Rowids only grow: a new row takes the
//!   highest rowid + 1, and the only deletion (retention) writes the watermark again after it.
//!
//! Another process reading the file directly sees `latest` up to [`FLUSH_INTERVAL`] late.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::model::{FleetEntry, TelemetryRow, Terminal, TerminalRecord};

/// Longest time committed rows wait before their per-terminal copies are written.
pub(super) const FLUSH_INTERVAL: Duration = Duration::from_secs(30);

/// Each terminal's newest committed row not yet copied into `latest`; shared by the writer
/// thread (which alone adds and clears) and the readers (which overlay it).
#[derive(Clone, Debug, Default)]
pub(super) struct PendingLatest(Arc<Mutex<HashMap<u32, Arc<TelemetryRow>>>>);

impl PendingLatest {
    fn lock(&self) -> MutexGuard<'_, HashMap<u32, Arc<TelemetryRow>>> {
        // A reader that panicked holding the lock left the map whole (no partial updates).
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps each terminal's newest row (by receive time; of equal times, the later one, as
    /// the `latest` upsert does).
    pub(super) fn merge(&self, rows: impl IntoIterator<Item = TelemetryRow>) {
        let mut map = self.lock();
        for row in rows {
            match map.get(&row.terminal.0) {
                Some(held) if held.at > row.at => {}
                _ => {
                    map.insert(row.terminal.0, Arc::new(row));
                }
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The rows a flush writes.
    pub(super) fn rows(&self) -> Vec<Arc<TelemetryRow>> {
        self.lock().values().cloned().collect()
    }

    /// The flush committed.
    pub(super) fn clear(&self) {
        self.lock().clear();
    }

    /// What a read overlays on the database's answer: take it before querying, so a flush
    /// that commits in between is seen in one or the other.
    pub(super) fn snapshot(&self) -> Overlay {
        Overlay(self.lock().clone())
    }

    /// One terminal's pending row (taken before querying, as [`snapshot`](Self::snapshot)).
    pub(super) fn of(&self, terminal: Terminal) -> Overlay {
        let mut map = HashMap::new();
        if let Some(row) = self.lock().get(&terminal.0) {
            map.insert(terminal.0, Arc::clone(row));
        }
        Overlay(map)
    }
}

/// Pending rows taken for one read.
#[derive(Debug)]
pub(super) struct Overlay(HashMap<u32, Arc<TelemetryRow>>);

impl Overlay {
    /// The newer of the stored latest row and the pending one.
    pub(super) fn latest(
        &self,
        terminal: Terminal,
        stored: Option<TelemetryRow>,
    ) -> Option<TelemetryRow> {
        match (self.0.get(&terminal.0), stored) {
            (Some(pending), Some(stored)) if stored.at > pending.at => Some(stored),
            (Some(pending), _) => Some(TelemetryRow::clone(pending)),
            (None, stored) => stored,
        }
    }

    /// A terminal seen later than its stored `last_seen` says.
    pub(super) fn record(&self, record: &mut TerminalRecord) {
        if let Some(pending) = self.0.get(&record.terminal.0) {
            record.last_seen = record.last_seen.max(pending.at);
        }
    }

    /// Each entry with its pending row and last upload.
    pub(super) fn fleet(&self, entries: &mut [FleetEntry]) {
        for entry in entries {
            self.record(&mut entry.record);
            if self.0.contains_key(&entry.record.terminal.0) {
                entry.latest = self.latest(entry.record.terminal, entry.latest.take());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::telemetry::tests::row;

    #[test]
    fn the_newest_row_per_terminal_wins_and_ties_go_to_the_later() {
        let pending = PendingLatest::default();
        pending.merge([
            row(1, 1, 100),
            row(1, 2, 300),
            row(1, 3, 200),
            row(2, 1, 50),
        ]);
        pending.merge([row(1, 4, 300)]);
        let overlay = pending.snapshot();
        assert_eq!(overlay.latest(Terminal(1), None).map(|r| r.record), Some(4));
        assert_eq!(overlay.latest(Terminal(2), None).map(|r| r.record), Some(1));
        assert_eq!(
            overlay
                .latest(Terminal(2), Some(row(2, 9, 60)))
                .map(|r| r.record),
            Some(9),
            "a newer stored row (another process wrote it) stays"
        );
        assert_eq!(
            overlay
                .latest(Terminal(3), Some(row(3, 7, 1)))
                .map(|r| r.record),
            Some(7)
        );
        pending.clear();
        assert!(pending.is_empty() && pending.rows().is_empty());
        assert_eq!(
            overlay.latest(Terminal(1), None).map(|r| r.record),
            Some(4),
            "a snapshot is the read's own"
        );
        assert!(pending.of(Terminal(1)).latest(Terminal(1), None).is_none());
    }
}
