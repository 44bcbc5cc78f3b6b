//! Process liveness on PostgreSQL: heartbeats, the sweep of dead processes' terminals, and a
//! clean stop (rule 3 of "Which terminal is online" in the `store` module docs).
//!
//! Each operation is one statement (data-modifying CTEs), so it is atomic without an explicit
//! transaction. Concurrent sweeps by several processes are harmless: they mark the same
//! terminals offline and delete the same rows. A sweep reads the live processes in its
//! statement's snapshot; a heartbeat that commits while a sweep runs may be missed by it, and
//! that process's next heartbeat puts back what the sweep took.

use deadpool_postgres::Client;
use tokio_postgres::types::ToSql;

use super::{column, execute, query_opt};
use crate::model::{ProcessId, Timestamp};
use crate::store::codec::narrow;
use crate::store::{StoreError, StoreResult, SweepReport};

/// Registers `process` or renews its heartbeat; puts back online the terminals it still holds
/// that a sweep marked offline; returns how many.
pub(super) async fn heartbeat(
    client: &Client,
    process: ProcessId,
    at: Timestamp,
) -> StoreResult<u64> {
    let sql = "
        WITH beat AS (
            INSERT INTO processes (id, started, heartbeat) VALUES ($1, $2, $2)
            ON CONFLICT (id) DO UPDATE
                SET heartbeat = greatest(processes.heartbeat, excluded.heartbeat)
        )
        UPDATE terminals SET online = true WHERE owner_process = $1 AND NOT online";
    let params: [&(dyn ToSql + Sync); 2] = [&process.0, &at.millis()];
    execute(client, sql, &params, "recording a heartbeat").await
}

/// Marks offline the online terminals not held by a process with a heartbeat at or after
/// `cutoff`; forgets the processes with an older one.
pub(super) async fn sweep(client: &Client, cutoff: Timestamp) -> StoreResult<SweepReport> {
    // Both parts read the same snapshot: the processes deleted here are still visible to
    // the NOT EXISTS, which is why it tests the heartbeat rather than the row's existence.
    let sql = "
        WITH gone AS (
            DELETE FROM processes WHERE heartbeat < $1 RETURNING id
        ), offline AS (
            UPDATE terminals SET online = false
            WHERE online AND NOT EXISTS (
                SELECT 1 FROM processes p
                WHERE p.id = terminals.owner_process AND p.heartbeat >= $1
            )
            RETURNING id
        )
        SELECT (SELECT count(*) FROM gone) AS processes,
               (SELECT count(*) FROM offline) AS terminals";
    let params: [&(dyn ToSql + Sync); 1] = [&cutoff.millis()];
    let row = query_opt(client, sql, &params, "sweeping dead processes")
        .await?
        .ok_or_else(|| StoreError::Corrupt("the sweep returned no counts".into()))?;
    Ok(SweepReport {
        processes: narrow(column(&row, "processes")?, "swept process count")?,
        terminals: narrow(column(&row, "terminals")?, "swept terminal count")?,
    })
}

/// Forgets `process` and releases its terminals (offline, no owner); returns how many.
pub(super) async fn stopped(
    client: &Client,
    process: ProcessId,
    at: Timestamp,
) -> StoreResult<u64> {
    let sql = "
        WITH gone AS (DELETE FROM processes WHERE id = $1)
        UPDATE terminals
        SET online = false, last_seen = greatest(last_seen, $2),
            owner_process = NULL, owner_connection = NULL
        WHERE owner_process = $1";
    let params: [&(dyn ToSql + Sync); 2] = [&process.0, &at.millis()];
    execute(client, sql, &params, "recording a process's stop").await
}
