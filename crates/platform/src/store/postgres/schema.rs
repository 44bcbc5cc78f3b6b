//! The PostgreSQL schema, its migrations, and the daily telemetry partitions.
//!
//! Migrations are versioned SQL applied in order on connect, in one transaction that first
//! takes an advisory lock, so processes starting together migrate once; each applied version
//! is a row of `schema_version`. A database whose newest version is above [`SCHEMA_VERSION`]
//! was written by a newer bmslink: [`StoreError::SchemaTooNew`], nothing is touched.
//! Times are milliseconds since the epoch (`bigint`), as in the SQLite schema.

use deadpool_postgres::GenericClient;

use super::{execute, query, query_opt, Context};
use crate::model::Timestamp;
use crate::store::codec::rollup::bucket_start;
use crate::store::{StoreError, StoreResult};

/// Version 1: every table the `Store` trait needs (see the module docs of `postgres` for
/// partitioning and dedup).
const V1: &str = "
CREATE TABLE terminals (
    id           integer PRIMARY KEY,
    registration text    NOT NULL CHECK (registration IN ('approved', 'pending', 'rejected')),
    name         text,
    first_seen   bigint  NOT NULL,
    last_seen    bigint  NOT NULL,
    online       boolean NOT NULL DEFAULT false
);

CREATE TABLE telemetry (
    terminal   integer  NOT NULL,
    record     integer  NOT NULL,
    at         bigint   NOT NULL,
    voltage_mv bigint   NOT NULL,
    current_ma integer  NOT NULL,
    soc        smallint NOT NULL,
    t_mosfet   smallint,
    t_box      smallint,
    t_battery  smallint,
    t_min      smallint,
    t_max      smallint,
    cell_min   integer,
    cell_max   integer,
    cells      bytea    NOT NULL,
    warnings   integer  NOT NULL,
    status     integer  NOT NULL,
    raw        bytea    NOT NULL
) PARTITION BY RANGE (at);
CREATE INDEX telemetry_by_terminal_time ON telemetry (terminal, at);
CREATE INDEX telemetry_by_time ON telemetry USING brin (at);

CREATE TABLE telemetry_seen (
    terminal integer NOT NULL,
    record   integer NOT NULL,
    at       bigint  NOT NULL,
    PRIMARY KEY (terminal, record)
);
CREATE INDEX telemetry_seen_by_time ON telemetry_seen USING brin (at);

CREATE TABLE latest (
    terminal   integer  PRIMARY KEY,
    record     integer  NOT NULL,
    at         bigint   NOT NULL,
    voltage_mv bigint   NOT NULL,
    current_ma integer  NOT NULL,
    soc        smallint NOT NULL,
    t_mosfet   smallint,
    t_box      smallint,
    t_battery  smallint,
    cells      bytea    NOT NULL,
    warnings   integer  NOT NULL,
    status     integer  NOT NULL,
    raw        bytea    NOT NULL
);

CREATE TABLE rollup_minute (
    terminal      integer          NOT NULL,
    bucket        bigint           NOT NULL,
    samples       bigint           NOT NULL,
    voltage_sum   double precision NOT NULL,
    current_sum   double precision NOT NULL,
    power_sum     double precision NOT NULL,
    soc_sum       double precision NOT NULL,
    t_min         smallint,
    t_max         smallint,
    cell_min      integer,
    cell_max      integer,
    charged_wh    double precision NOT NULL,
    discharged_wh double precision NOT NULL,
    PRIMARY KEY (terminal, bucket)
);
CREATE INDEX rollup_minute_by_bucket ON rollup_minute (bucket);

CREATE TABLE rollup_hour (LIKE rollup_minute INCLUDING ALL);

CREATE TABLE maintenance (
    id          integer PRIMARY KEY CHECK (id = 1),
    minute_from bigint  NOT NULL
);

CREATE TABLE alarms (
    id       bigserial PRIMARY KEY,
    terminal integer   NOT NULL,
    kind     text      NOT NULL,
    detail   text      NOT NULL,
    started  bigint    NOT NULL,
    ended    bigint,
    ack_by   text,
    ack_at   bigint
);
CREATE UNIQUE INDEX alarms_one_active ON alarms (terminal, kind) WHERE ended IS NULL;
CREATE INDEX alarms_by_start ON alarms (started);
CREATE INDEX alarms_by_terminal ON alarms (terminal, started);

CREATE TABLE commands (
    id        bigserial PRIMARY KEY,
    terminal  integer   NOT NULL,
    request   text      NOT NULL,
    issued_by text      NOT NULL,
    issued_at bigint    NOT NULL,
    status    text      NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    state     text      NOT NULL
);
CREATE INDEX commands_queued ON commands (terminal, id) WHERE status = 'queued';

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    name          text      NOT NULL UNIQUE,
    role          text      NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash text      NOT NULL,
    created       bigint    NOT NULL
);

CREATE TABLE credentials (
    secret_hash text    PRIMARY KEY,
    user_id     bigint  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_token    boolean NOT NULL,
    label       text    NOT NULL,
    expires     bigint,
    created     bigint  NOT NULL
);
CREATE INDEX credentials_by_user ON credentials (user_id);

CREATE TABLE audit (
    id     bigserial PRIMARY KEY,
    at     bigint    NOT NULL,
    actor  text      NOT NULL,
    action text      NOT NULL,
    target text      NOT NULL,
    detail text      NOT NULL
);
CREATE INDEX audit_by_time ON audit (at);
";

/// Version 2: which connection of which process holds a terminal, and the processes'
/// heartbeats (see "Which terminal is online" in the `store` module docs). Terminals online
/// before it have no owner: the first sweep marks them offline, and their boxes' next
/// connections claim them again.
const V2: &str = "
ALTER TABLE terminals ADD COLUMN owner_process bigint;
ALTER TABLE terminals ADD COLUMN owner_connection bigint;
CREATE INDEX terminals_by_owner ON terminals (owner_process) WHERE owner_process IS NOT NULL;

CREATE TABLE processes (
    id        bigint PRIMARY KEY,
    started   bigint NOT NULL,
    heartbeat bigint NOT NULL
);
";

/// Version 3: each minute roll-up keeps its last row's time and power, so a maintenance pass
/// finds every terminal's predecessor (for energy) there instead of reading five more minutes
/// of raw rows (the SQLite schema's version 3 does the same, with its telemetry layout).
/// Buckets from before it have none: the first pass after the upgrade counts no energy between
/// a terminal's last row before it and its first row in it.
const V3: &str = "
ALTER TABLE rollup_minute ADD COLUMN last_at bigint, ADD COLUMN last_power double precision;
";

/// The migrations, in order: index + 1 is the version each brings the schema to.
const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// The newest schema version this program knows.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Advisory lock keys (arbitrary, fixed): migrations, partition changes, maintenance.
pub(super) const MIGRATION_LOCK: i64 = 0x626D_736C_0001;
pub(super) const PARTITION_LOCK: i64 = 0x626D_736C_0002;
pub(super) const MAINTENANCE_LOCK: i64 = 0x626D_736C_0003;

/// Brings the schema up to [`SCHEMA_VERSION`].
pub(super) async fn migrate(client: &mut deadpool_postgres::Client) -> StoreResult<()> {
    let doing = "migrating the schema";
    let tx = client.transaction().await.context(doing)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context(doing)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    integer PRIMARY KEY,
             applied_at bigint  NOT NULL
         )",
    )
    .await
    .context(doing)?;
    let row = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await
        .context(doing)?;
    let found: i32 = row.try_get(0).context(doing)?;
    let found = u32::try_from(found)
        .map_err(|_| StoreError::Corrupt(format!("schema_version holds {found}")))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (version, sql) in (1_i32..).zip(MIGRATIONS).skip(found as usize) {
        tx.batch_execute(sql)
            .await
            .context(&format!("applying schema version {version}"))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
            &[&version, &Timestamp::now().millis()],
        )
        .await
        .context(doing)?;
    }
    tx.commit().await.context(doing)
}

/// Milliseconds in a day: the width of a telemetry partition.
pub(super) const DAY_MS: i64 = 86_400_000;

/// The day (since the epoch) holding `at_ms`.
pub(super) fn day_of(at_ms: i64) -> i64 {
    bucket_start(at_ms, DAY_MS) / DAY_MS
}

/// The partition of `day`: `telemetry_pYYYYMMDD`.
pub(super) fn partition_name(day: i64) -> String {
    let (year, month, date) = civil_from_days(day);
    format!("telemetry_p{year:04}{month:02}{date:02}")
}

/// The day of a partition name, if it is one of ours.
pub(super) fn partition_day(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("telemetry_p")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = digits[..4].parse().ok()?;
    let month = digits[4..6].parse().ok()?;
    let date = digits[6..].parse().ok()?;
    Some(days_from_civil(year, month, date))
}

/// Creates the partitions of `days` that do not exist yet; returns how many it created.
pub(super) async fn create_partitions<C: GenericClient>(
    client: &C,
    days: &[i64],
) -> StoreResult<u64> {
    let doing = "creating telemetry partitions";
    execute(
        client,
        "SELECT pg_advisory_xact_lock($1)",
        &[&PARTITION_LOCK],
        doing,
    )
    .await?;
    let existing = existing_partitions(client).await?;
    let mut created = 0;
    for &day in days.iter().filter(|day| !existing.contains(day)) {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF telemetry FOR VALUES FROM ({}) TO ({})",
            partition_name(day),
            day * DAY_MS,
            (day + 1) * DAY_MS
        );
        client.batch_execute(&sql).await.context(doing)?;
        created += 1;
    }
    Ok(created)
}

/// The days that have a partition.
pub(super) async fn existing_partitions<C: GenericClient>(client: &C) -> StoreResult<Vec<i64>> {
    let rows = query(
        client,
        "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'telemetry'::regclass",
        &[],
        "listing telemetry partitions",
    )
    .await?;
    let mut days = Vec::with_capacity(rows.len());
    for row in &rows {
        let name: String = super::column(row, "name")?;
        days.extend(partition_day(&name));
    }
    Ok(days)
}

/// Drops the partitions whose whole day ends at or before `cutoff`; returns the rows they
/// held and the end of the newest dropped day.
pub(super) async fn drop_partitions_before<C: GenericClient>(
    client: &C,
    cutoff: i64,
) -> StoreResult<(u64, Option<i64>)> {
    let doing = "dropping expired telemetry partitions";
    execute(
        client,
        "SELECT pg_advisory_xact_lock($1)",
        &[&PARTITION_LOCK],
        doing,
    )
    .await?;
    let mut deleted = 0;
    let mut dropped_until = None;
    for day in existing_partitions(client).await? {
        let end = (day + 1) * DAY_MS;
        if end > cutoff {
            continue;
        }
        let name = partition_name(day);
        let count = query_opt(
            client,
            &format!("SELECT count(*) AS n FROM {name}"),
            &[],
            doing,
        )
        .await?
        .map(|row| super::column::<i64>(&row, "n"))
        .transpose()?
        .unwrap_or(0);
        client
            .batch_execute(&format!("DROP TABLE {name}"))
            .await
            .context(doing)?;
        deleted += u64::try_from(count).unwrap_or(0);
        dropped_until = dropped_until.max(Some(end));
    }
    Ok((deleted, dropped_until))
}

/// Proleptic Gregorian date of a day since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(day: i64) -> (i64, u32, u32) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let date = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, date)
}

/// Day since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, date: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + date - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_are_utc_dates_and_round_trip() {
        assert_eq!(partition_name(0), "telemetry_p19700101");
        // 2023-11-14 22:13:20 UTC.
        let day = day_of(1_700_000_000_000);
        assert_eq!(partition_name(day), "telemetry_p20231114");
        assert_eq!(
            partition_name(days_from_civil(2024, 2, 29)),
            "telemetry_p20240229"
        );
        for day in [-1, 0, 59, 60, 10_957, day, 2_932_896] {
            assert_eq!(partition_day(&partition_name(day)), Some(day), "day {day}");
        }
        assert_eq!(partition_day("telemetry_seen"), None);
        assert_eq!(partition_day("telemetry_p2023111"), None);
    }
}
