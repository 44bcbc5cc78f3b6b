//! The SQLite schema and its migrations.
//!
//! Versioned SQL, applied in order on open inside one immediate transaction; each applied
//! version is a row of `schema_version`. A database whose newest version is above
//! [`SCHEMA_VERSION`] was written by a newer bmslink: [`StoreError::SchemaTooNew`], nothing is
//! touched. Times are milliseconds since the epoch (INTEGER); terminals are their 24-bit
//! number.

use rusqlite::{Connection, TransactionBehavior};

use super::Context;
use crate::model::Timestamp;
use crate::store::{StoreError, StoreResult};

/// Version 1: every table the `Store` trait needs.
///
/// - `telemetry` is a rowid table, so rows (arriving in time order) are appended; the unique
///   index on (terminal, record) is the dedup rule, (terminal, at) serves history and (at)
///   roll-ups and retention. (Clustering the rows by terminal instead, `WITHOUT ROWID`, halved
///   ingest: every batch then splits wide-row pages of every terminal.) Each row keeps its
///   extremes (`t_min`, `t_max`, `cell_min`, `cell_max`) for the roll-ups to aggregate;
/// - `latest` holds each terminal's newest row, so the fleet list is one join, not a scan;
/// - `rollup_minute` / `rollup_hour` keep sums (means are sum / samples on read) so hours
///   combine minutes exactly; `maintenance` remembers where the next minute pass starts;
/// - one active alarm per (terminal, kind) is a partial unique index.
const V1: &str = "
CREATE TABLE terminals (
    id           INTEGER PRIMARY KEY,
    registration TEXT    NOT NULL CHECK (registration IN ('approved', 'pending', 'rejected')),
    name         TEXT,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    online       INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE telemetry (
    terminal   INTEGER NOT NULL,
    record     INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    voltage_mv INTEGER NOT NULL,
    current_ma INTEGER NOT NULL,
    soc        INTEGER NOT NULL,
    t_mosfet   INTEGER,
    t_box      INTEGER,
    t_battery  INTEGER,
    t_min      INTEGER,
    t_max      INTEGER,
    cell_min   INTEGER,
    cell_max   INTEGER,
    cells      BLOB    NOT NULL,
    warnings   INTEGER NOT NULL,
    status     INTEGER NOT NULL,
    raw        BLOB    NOT NULL
);
CREATE UNIQUE INDEX telemetry_key ON telemetry (terminal, record);
CREATE INDEX telemetry_by_terminal_time ON telemetry (terminal, at);
CREATE INDEX telemetry_by_time ON telemetry (at);

CREATE TABLE latest (
    terminal   INTEGER PRIMARY KEY,
    record     INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    voltage_mv INTEGER NOT NULL,
    current_ma INTEGER NOT NULL,
    soc        INTEGER NOT NULL,
    t_mosfet   INTEGER,
    t_box      INTEGER,
    t_battery  INTEGER,
    cells      BLOB    NOT NULL,
    warnings   INTEGER NOT NULL,
    status     INTEGER NOT NULL,
    raw        BLOB    NOT NULL
);

CREATE TABLE rollup_minute (
    terminal      INTEGER NOT NULL,
    bucket        INTEGER NOT NULL,
    samples       INTEGER NOT NULL,
    voltage_sum   REAL    NOT NULL,
    current_sum   REAL    NOT NULL,
    power_sum     REAL    NOT NULL,
    soc_sum       REAL    NOT NULL,
    t_min         INTEGER,
    t_max         INTEGER,
    cell_min      INTEGER,
    cell_max      INTEGER,
    charged_wh    REAL    NOT NULL,
    discharged_wh REAL    NOT NULL,
    PRIMARY KEY (terminal, bucket)
) WITHOUT ROWID;
CREATE INDEX rollup_minute_by_bucket ON rollup_minute (bucket);

CREATE TABLE rollup_hour (
    terminal      INTEGER NOT NULL,
    bucket        INTEGER NOT NULL,
    samples       INTEGER NOT NULL,
    voltage_sum   REAL    NOT NULL,
    current_sum   REAL    NOT NULL,
    power_sum     REAL    NOT NULL,
    soc_sum       REAL    NOT NULL,
    t_min         INTEGER,
    t_max         INTEGER,
    cell_min      INTEGER,
    cell_max      INTEGER,
    charged_wh    REAL    NOT NULL,
    discharged_wh REAL    NOT NULL,
    PRIMARY KEY (terminal, bucket)
) WITHOUT ROWID;
CREATE INDEX rollup_hour_by_bucket ON rollup_hour (bucket);

CREATE TABLE maintenance (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    minute_from INTEGER NOT NULL
);

CREATE TABLE alarms (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    terminal INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    detail  TEXT    NOT NULL,
    started INTEGER NOT NULL,
    ended   INTEGER,
    ack_by  TEXT,
    ack_at  INTEGER
);
CREATE UNIQUE INDEX alarms_one_active ON alarms (terminal, kind) WHERE ended IS NULL;
CREATE INDEX alarms_by_start ON alarms (started);
CREATE INDEX alarms_by_terminal ON alarms (terminal, started);

CREATE TABLE commands (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    terminal  INTEGER NOT NULL,
    request   TEXT    NOT NULL,
    issued_by TEXT    NOT NULL,
    issued_at INTEGER NOT NULL,
    status    TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    state     TEXT    NOT NULL
);
CREATE INDEX commands_queued ON commands (terminal, id) WHERE status = 'queued';

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT    NOT NULL,
    created       INTEGER NOT NULL
);

CREATE TABLE credentials (
    secret_hash TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_token    INTEGER NOT NULL,
    label       TEXT    NOT NULL,
    expires     INTEGER,
    created     INTEGER NOT NULL
);
CREATE INDEX credentials_by_user ON credentials (user_id);

CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT    NOT NULL
);
CREATE INDEX audit_by_time ON audit (at);
";

/// Version 2: which connection of which process holds a terminal, and the processes'
/// heartbeats (see "Which terminal is online" in the `store` module docs; one process uses a
/// SQLite file, and the same rules let a restarted process sweep a crashed one's terminals).
/// Terminals online before it have no owner: the first sweep marks them offline.
const V2: &str = "
ALTER TABLE terminals ADD COLUMN owner_process INTEGER;
ALTER TABLE terminals ADD COLUMN owner_connection INTEGER;
CREATE INDEX terminals_by_owner ON terminals (owner_process) WHERE owner_process IS NOT NULL;

CREATE TABLE processes (
    id        INTEGER PRIMARY KEY,
    started   INTEGER NOT NULL,
    heartbeat INTEGER NOT NULL
);
";

/// The migrations, in order: index + 1 is the version each brings the schema to.
const MIGRATIONS: &[&str] = &[V1, V2];

/// The newest schema version this program knows.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the schema up to [`SCHEMA_VERSION`].
pub(super) fn migrate(connection: &mut Connection) -> StoreResult<()> {
    let doing = "migrating the schema";
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version    INTEGER PRIMARY KEY,
                 applied_at INTEGER NOT NULL
             )",
        )
        .context(doing)?;
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(doing)?;
    let found: i64 = tx
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_version",
            [],
            |r| r.get(0),
        )
        .context(doing)?;
    let found = u32::try_from(found)
        .map_err(|_| StoreError::Corrupt(format!("schema_version holds {found}")))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(found as usize) {
        tx.execute_batch(sql)
            .context(&format!("applying schema version {version}"))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            (version, Timestamp::now().millis()),
        )
        .context(doing)?;
    }
    tx.commit().context(doing)
}
