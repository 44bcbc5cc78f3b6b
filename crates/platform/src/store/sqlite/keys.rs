//! The telemetry dedup keys on SQLite: the writer thread holds them in memory
//! ([`StoredKeys`], see `store/keys.rs`) and keeps their copy in `telemetry_keys` (one row per
//! run: terminal, first, last, day), written by each flush (`pending.rs`); a restarted process
//! loads them, replays the rows stored after the last flush, and dedups exactly as before.
//!
//! One process writes a SQLite file; should another one write it anyway (an operator's
//! script, a second platform by mistake), the writer notices (`PRAGMA data_version` moved
//! since its last look) and reloads the keys before it dedups the next batch.

use rusqlite::Connection;

use super::{query_all, Context};
use crate::store::codec::narrow;
use crate::store::keys::{KeyChange, Run, StoredKeys};
use crate::store::{StoreError, StoreResult};

/// The writer's keys and the database version they were read at.
#[derive(Debug)]
pub(super) struct WriterKeys {
    pub(super) keys: StoredKeys,
    data_version: i64,
}

impl WriterKeys {
    /// Reads every stored run.
    pub(super) fn load(connection: &Connection) -> StoreResult<WriterKeys> {
        let doing = "loading the telemetry dedup keys";
        let runs = query_all(
            connection,
            "SELECT terminal, first, last, day FROM telemetry_keys",
            [],
            doing,
            |row| {
                let terminal: i64 = super::column(row, "terminal")?;
                let run = Run {
                    first: narrow(super::column(row, "first")?, "telemetry_keys.first")?,
                    last: narrow(super::column(row, "last")?, "telemetry_keys.last")?,
                    day: super::column(row, "day")?,
                };
                Ok((narrow(terminal, "telemetry_keys.terminal")?, run))
            },
        )?;
        let keys = StoredKeys::from_runs(runs)
            .map_err(|overlap| StoreError::Corrupt(format!("telemetry_keys: {overlap}")))?;
        Ok(WriterKeys {
            keys,
            data_version: data_version(connection)?,
        })
    }

    /// Reloads the stored keys if another connection changed the database since they were
    /// read (to call inside the write transaction, before any change); `true` if it did (the
    /// caller then replays the rows after the flushed watermark).
    pub(super) fn refresh(&mut self, connection: &Connection) -> StoreResult<bool> {
        if data_version(connection)? == self.data_version {
            return Ok(false);
        }
        tracing::warn!(
            "the SQLite database was written by another process: reloading the telemetry \
             dedup keys (one platform process per SQLite file)"
        );
        *self = WriterKeys::load(connection)?;
        Ok(true)
    }
}

fn data_version(connection: &Connection) -> StoreResult<i64> {
    connection
        .query_row("PRAGMA data_version", [], |r| r.get(0))
        .context("reading the data version")
}

/// Writes what changed in memory to `telemetry_keys`.
pub(super) fn store_changes(connection: &Connection, changes: &[KeyChange]) -> StoreResult<()> {
    let doing = "storing the telemetry dedup keys";
    let mut put = connection
        .prepare_cached(
            "INSERT INTO telemetry_keys (terminal, first, last, day) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (terminal, first) DO UPDATE SET last = excluded.last",
        )
        .context(doing)?;
    let mut delete = connection
        .prepare_cached("DELETE FROM telemetry_keys WHERE terminal = ?1 AND first = ?2")
        .context(doing)?;
    for change in changes {
        match *change {
            KeyChange::Put { terminal, run } => {
                put.execute((terminal, run.first, run.last, run.day))
                    .context(doing)?;
            }
            KeyChange::Delete { terminal, first } => {
                delete.execute((terminal, first)).context(doing)?;
            }
        }
    }
    Ok(())
}

/// Deletes the stored runs of days before `day`; returns how many.
pub(super) fn delete_before(connection: &Connection, day: i64) -> StoreResult<u64> {
    let deleted = connection
        .execute("DELETE FROM telemetry_keys WHERE day < ?1", [day])
        .context("deleting expired telemetry dedup keys")?;
    Ok(deleted as u64)
}
