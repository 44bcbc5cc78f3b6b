//! Process liveness on SQLite: heartbeats, the sweep of dead processes' terminals, and a clean
//! stop (rule 3 of "Which terminal is online" in the `store` module docs). One process uses a
//! SQLite file, so in practice the sweep finds the terminals a crashed predecessor left
//! online. Each function is one transaction on the writer connection.

use rusqlite::{Connection, TransactionBehavior};

use super::Context;
use crate::model::{ProcessId, Timestamp};
use crate::store::{StoreResult, SweepReport};

fn count(changed: usize) -> u64 {
    u64::try_from(changed).unwrap_or(u64::MAX)
}

/// Registers `process` or renews its heartbeat; puts back online the terminals it still holds
/// that a sweep marked offline; returns how many.
pub(super) fn heartbeat(
    connection: &mut Connection,
    process: ProcessId,
    at: Timestamp,
) -> StoreResult<u64> {
    let doing = "recording a heartbeat";
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(doing)?;
    tx.prepare_cached(
        "INSERT INTO processes (id, started, heartbeat) VALUES (?1, ?2, ?2)
         ON CONFLICT (id) DO UPDATE SET heartbeat = max(heartbeat, excluded.heartbeat)",
    )
    .and_then(|mut s| s.execute((process.0, at.millis())))
    .context(doing)?;
    let restored = tx
        .prepare_cached("UPDATE terminals SET online = 1 WHERE owner_process = ?1 AND NOT online")
        .and_then(|mut s| s.execute([process.0]))
        .context(doing)?;
    tx.commit().context(doing)?;
    Ok(count(restored))
}

/// Marks offline the online terminals not held by a process with a heartbeat at or after
/// `cutoff`; forgets the processes with an older one.
pub(super) fn sweep(connection: &mut Connection, cutoff: Timestamp) -> StoreResult<SweepReport> {
    let doing = "sweeping dead processes";
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(doing)?;
    let terminals = tx
        .prepare_cached(
            "UPDATE terminals SET online = 0
             WHERE online AND NOT EXISTS (
                 SELECT 1 FROM processes p
                 WHERE p.id = terminals.owner_process AND p.heartbeat >= ?1
             )",
        )
        .and_then(|mut s| s.execute([cutoff.millis()]))
        .context(doing)?;
    let processes = tx
        .prepare_cached("DELETE FROM processes WHERE heartbeat < ?1")
        .and_then(|mut s| s.execute([cutoff.millis()]))
        .context(doing)?;
    tx.commit().context(doing)?;
    Ok(SweepReport {
        processes: count(processes),
        terminals: count(terminals),
    })
}

/// Forgets `process` and releases its terminals (offline, no owner); returns how many.
pub(super) fn stopped(
    connection: &mut Connection,
    process: ProcessId,
    at: Timestamp,
) -> StoreResult<u64> {
    let doing = "recording a process's stop";
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(doing)?;
    let released = tx
        .prepare_cached(
            "UPDATE terminals
             SET online = 0, last_seen = max(last_seen, ?2),
                 owner_process = NULL, owner_connection = NULL
             WHERE owner_process = ?1",
        )
        .and_then(|mut s| s.execute((process.0, at.millis())))
        .context(doing)?;
    tx.prepare_cached("DELETE FROM processes WHERE id = ?1")
        .and_then(|mut s| s.execute([process.0]))
        .context(doing)?;
    tx.commit().context(doing)?;
    Ok(count(released))
}
