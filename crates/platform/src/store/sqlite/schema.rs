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
///   roll-ups and retention (version 3 replaces the two indexes keyed by terminal).
///   (Clustering the rows by terminal instead, `WITHOUT ROWID`, halved
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

/// Version 3: telemetry is written append-only. The two indexes keyed by terminal took every
/// row at a random place (one hot page per terminal, per index): past a few million rows
/// they outgrew the page cache and ingest fell by more than half. Now:
///
/// - dedup: `telemetry_keys` holds the runs of consecutive record numbers stored per terminal
///   and UTC day (a row per run, not per upload; the writer keeps them in memory, see
///   `store/keys.rs`), built here from the unique index it replaces;
/// - raw history: `telemetry_by_slot` indexes (10-second slot, terminal): the entries of the
///   current slot are the only ones inserts touch (a few hundred pages for 20,000 terminals),
///   and a terminal's history is one look-up per slot ([`SLOT_MS`]).
///
/// - roll-ups: each minute bucket keeps its last row's time and power, so the next pass finds
///   every terminal's predecessor (for energy) there instead of reading five more minutes of
///   raw rows (buckets from before version 3 have none: the first pass after the upgrade
///   counts no energy between a terminal's last row before it and its first row in it).
///
/// Only the day of a run matters for retention, so days are floored (`at` may be negative).
const V3: &str = "
ALTER TABLE rollup_minute ADD COLUMN last_at INTEGER;
ALTER TABLE rollup_minute ADD COLUMN last_power REAL;

CREATE TABLE telemetry_keys (
    terminal INTEGER NOT NULL,
    first    INTEGER NOT NULL,
    last     INTEGER NOT NULL,
    day      INTEGER NOT NULL,
    PRIMARY KEY (terminal, first)
) WITHOUT ROWID;
CREATE INDEX telemetry_keys_by_day ON telemetry_keys (day);

INSERT INTO telemetry_keys (terminal, first, last, day)
SELECT terminal, min(record), max(record), day
FROM (
    SELECT terminal, record, day,
           record - row_number() OVER (PARTITION BY terminal, day ORDER BY record) AS run
    FROM (
        SELECT terminal, record,
               (at - ((at % 86400000) + 86400000) % 86400000) / 86400000 AS day
        FROM telemetry
    )
)
GROUP BY terminal, day, run;

DROP INDEX telemetry_key;
DROP INDEX telemetry_by_terminal_time;
CREATE INDEX telemetry_by_slot ON telemetry (at / 10000, terminal);
";

/// Version 4, for 20,000 terminals uploading every second:
///
/// - the per-terminal copies (`latest`, `terminals.last_seen`, `telemetry_keys`) are flushed
///   every 30 s instead of with each insert (`pending.rs`);
///   `telemetry_flushed.through_rowid` is the highest telemetry rowid they reflect (under
///   version 3 they reflected every row);
/// - the roll-up tables are keyed (bucket, terminal) instead of (terminal, bucket): a pass
///   adds each terminal's new minute at the end of the table, not at one place per terminal
///   (20,000 pages rewritten a pass, more every minute as the table outgrew the cache);
///   history looks up its terminal in each bucket of the range, as raw history does per slot.
const V4: &str = "
CREATE TABLE telemetry_flushed (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    through_rowid INTEGER NOT NULL
);
INSERT INTO telemetry_flushed (id, through_rowid)
SELECT 1, coalesce(max(rowid), 0) FROM telemetry;

CREATE TABLE rollup_minute_by_time (
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
    last_at       INTEGER,
    last_power    REAL,
    PRIMARY KEY (bucket, terminal)
) WITHOUT ROWID;
INSERT INTO rollup_minute_by_time
SELECT terminal, bucket, samples, voltage_sum, current_sum, power_sum, soc_sum, t_min, t_max,
       cell_min, cell_max, charged_wh, discharged_wh, last_at, last_power
FROM rollup_minute;
DROP TABLE rollup_minute;
ALTER TABLE rollup_minute_by_time RENAME TO rollup_minute;

CREATE TABLE rollup_hour_by_time (
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
    PRIMARY KEY (bucket, terminal)
) WITHOUT ROWID;
INSERT INTO rollup_hour_by_time
SELECT terminal, bucket, samples, voltage_sum, current_sum, power_sum, soc_sum, t_min, t_max,
       cell_min, cell_max, charged_wh, discharged_wh
FROM rollup_hour;
DROP TABLE rollup_hour;
ALTER TABLE rollup_hour_by_time RENAME TO rollup_hour;
";

/// Width of a `telemetry_by_slot` slot, ms: the `at / 10000` of the index and of every query
/// that uses it (SQLite matches index expressions by their text).
pub(super) const SLOT_MS: i64 = 10_000;

/// The migrations, in order: index + 1 is the version each brings the schema to.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The newest schema version this program knows.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Applies the first `version` migrations to a new database (tests of later migrations).
#[cfg(test)]
pub(super) fn migrate_to(connection: &Connection, version: usize) -> StoreResult<()> {
    connection
        .execute_batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .context("creating schema_version")?;
    for (number, sql) in (1..).zip(&MIGRATIONS[..version]) {
        connection.execute_batch(sql).context("migrating")?;
        connection
            .execute("INSERT INTO schema_version VALUES (?1, 0)", [number])
            .context("migrating")?;
    }
    Ok(())
}

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
