//! Telemetry on PostgreSQL: batched inserts with dedup (one statement per batch), the latest
//! row, history, and the maintenance pass (partitions, roll-ups, retention).
//!
//! Roll-ups follow the same rules as SQLite's (`sqlite/telemetry.rs`): means are sums /
//! samples; energy is the trapezoid rule on the positive and negative parts of power between
//! consecutive rows at most [`MAX_INTEGRATION_GAP_MS`] apart, given to the later row's bucket.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::schema::{self, day_of, MAINTENANCE_LOCK};
use super::{column, execute, query, query_opt, terminal_param, Context, PgStore};
use crate::model::{HistoryPoint, Resolution, TelemetryRow, Terminal, Timestamp};
use crate::store::codec::rollup::{
    bucket_start, next_minute_watermark, HOUR_MS, MAX_INTEGRATION_GAP_MS, MINUTE_MS,
};
use crate::store::codec::{cells_blob, cells_from_blob, narrow, RowExtremes};
use crate::store::{InsertReport, MaintenanceReport, Retention, StoreError, StoreResult};

/// How often a batch is retried after a deadlock or a partition dropped under it.
const INSERT_ATTEMPTS: usize = 3;

/// One statement: keys into `telemetry_seen` (new ones only), their rows into `telemetry`,
/// the newest of them into `latest`, and `terminals.last_seen`; returns the rows stored.
const INSERT_BATCH: &str = "
WITH input AS (
    SELECT DISTINCT ON (terminal, record) *
    FROM unnest($1::integer[], $2::integer[], $3::bigint[], $4::bigint[], $5::integer[],
                $6::smallint[], $7::smallint[], $8::smallint[], $9::smallint[], $10::smallint[],
                $11::smallint[], $12::integer[], $13::integer[], $14::bytea[], $15::integer[],
                $16::integer[], $17::bytea[])
        AS t (terminal, record, at, voltage_mv, current_ma, soc, t_mosfet, t_box, t_battery,
              t_min, t_max, cell_min, cell_max, cells, warnings, status, raw)
    ORDER BY terminal, record, at
),
fresh AS (
    INSERT INTO telemetry_seen (terminal, record, at)
    SELECT terminal, record, at FROM input
    ON CONFLICT DO NOTHING
    RETURNING terminal, record
),
stored AS (
    INSERT INTO telemetry (terminal, record, at, voltage_mv, current_ma, soc, t_mosfet, t_box,
                           t_battery, t_min, t_max, cell_min, cell_max, cells, warnings,
                           status, raw)
    SELECT i.terminal, i.record, i.at, i.voltage_mv, i.current_ma, i.soc, i.t_mosfet, i.t_box,
           i.t_battery, i.t_min, i.t_max, i.cell_min, i.cell_max, i.cells, i.warnings,
           i.status, i.raw
    FROM input i JOIN fresh f USING (terminal, record)
    RETURNING 1
),
newest AS (
    SELECT DISTINCT ON (i.terminal) i.*
    FROM input i JOIN fresh f USING (terminal, record)
    ORDER BY i.terminal, i.at DESC, i.record DESC
),
latest_rows AS (
    INSERT INTO latest (terminal, record, at, voltage_mv, current_ma, soc, t_mosfet, t_box,
                        t_battery, cells, warnings, status, raw)
    SELECT terminal, record, at, voltage_mv, current_ma, soc, t_mosfet, t_box, t_battery,
           cells, warnings, status, raw
    FROM newest
    ON CONFLICT (terminal) DO UPDATE SET
        record = excluded.record, at = excluded.at, voltage_mv = excluded.voltage_mv,
        current_ma = excluded.current_ma, soc = excluded.soc, t_mosfet = excluded.t_mosfet,
        t_box = excluded.t_box, t_battery = excluded.t_battery, cells = excluded.cells,
        warnings = excluded.warnings, status = excluded.status, raw = excluded.raw
    WHERE excluded.at >= latest.at
),
touched AS (
    INSERT INTO terminals (id, registration, first_seen, last_seen, online)
    SELECT terminal, 'approved', at, at, false FROM newest
    ON CONFLICT (id) DO UPDATE SET last_seen = greatest(terminals.last_seen, excluded.last_seen)
)
SELECT count(*) AS stored FROM stored";

/// A batch as one array per column (the parameters of [`INSERT_BATCH`]).
#[derive(Default)]
struct Columns {
    terminal: Vec<i32>,
    record: Vec<i32>,
    at: Vec<i64>,
    voltage_mv: Vec<i64>,
    current_ma: Vec<i32>,
    soc: Vec<i16>,
    temperatures: [Vec<Option<i16>>; 3],
    t_min: Vec<Option<i16>>,
    t_max: Vec<Option<i16>>,
    cell_min: Vec<Option<i32>>,
    cell_max: Vec<Option<i32>>,
    cells: Vec<Vec<u8>>,
    warnings: Vec<i32>,
    status: Vec<i32>,
    raw: Vec<Vec<u8>>,
}

impl Columns {
    fn of(rows: &[TelemetryRow]) -> StoreResult<Columns> {
        let mut c = Columns::default();
        for row in rows {
            let extremes = RowExtremes::of(row);
            c.terminal.push(terminal_param(row.terminal)?);
            c.record.push(i32::try_from(row.record).map_err(|_| {
                StoreError::Conflict(format!("record number {} is out of range", row.record))
            })?);
            c.at.push(row.at.millis());
            c.voltage_mv.push(i64::from(row.voltage_mv));
            c.current_ma.push(row.current_ma);
            c.soc.push(i16::from(row.soc));
            for (column, value) in c.temperatures.iter_mut().zip(row.temperatures) {
                column.push(value);
            }
            c.t_min.push(extremes.temperature_min);
            c.t_max.push(extremes.temperature_max);
            c.cell_min.push(extremes.cell_min.map(i32::from));
            c.cell_max.push(extremes.cell_max.map(i32::from));
            c.cells.push(cells_blob(&row.cells_mv));
            c.warnings.push(i32::from(row.warnings));
            c.status.push(i32::from(row.status));
            c.raw.push(row.raw.clone());
        }
        Ok(c)
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 17] {
        let [t_mosfet, t_box, t_battery] = &self.temperatures;
        [
            &self.terminal,
            &self.record,
            &self.at,
            &self.voltage_mv,
            &self.current_ma,
            &self.soc,
            t_mosfet,
            t_box,
            t_battery,
            &self.t_min,
            &self.t_max,
            &self.cell_min,
            &self.cell_max,
            &self.cells,
            &self.warnings,
            &self.status,
            &self.raw,
        ]
    }
}

/// Stores a batch: makes sure its days have partitions, then one statement.
pub(super) async fn insert(store: &PgStore, rows: &[TelemetryRow]) -> StoreResult<InsertReport> {
    let columns = Columns::of(rows)?;
    let mut days: Vec<i64> = columns.at.iter().map(|&at| day_of(at)).collect();
    days.sort_unstable();
    days.dedup();
    let mut attempt = 1;
    loop {
        ensure_partitions(store, &days).await?;
        match insert_once(store, &columns).await {
            Ok(stored) => {
                let total = rows.len() as u64;
                return Ok(InsertReport {
                    inserted: stored,
                    duplicates: total.saturating_sub(stored),
                });
            }
            Err(error) if attempt < INSERT_ATTEMPTS && retry_insert(store, &error) => attempt += 1,
            Err(error) => return Err(error),
        }
    }
}

async fn insert_once(store: &PgStore, columns: &Columns) -> StoreResult<u64> {
    let client = store.client().await?;
    let row = query_opt(
        &client,
        INSERT_BATCH,
        &columns.params(),
        "storing telemetry",
    )
    .await?;
    let stored: i64 = match row {
        Some(row) => column(&row, "stored")?,
        None => 0,
    };
    Ok(u64::try_from(stored).unwrap_or(0))
}

/// Whether a failed batch is worth another go: a deadlock, or no partition for a row (one was
/// dropped by another process since this one cached it).
fn retry_insert(store: &PgStore, error: &StoreError) -> bool {
    let missing_partition =
        matches!(error, StoreError::Conflict(text) if text.contains("no partition"));
    if missing_partition {
        forget_partitions(store);
    }
    missing_partition || super::is_transient(error)
}

fn forget_partitions(store: &PgStore) {
    store
        .shared
        .partitions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
}

/// Creates the partitions of `days` this process has not seen exist.
async fn ensure_partitions(store: &PgStore, days: &[i64]) -> StoreResult<()> {
    let missing: Vec<i64> = {
        let known = store
            .shared
            .partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        days.iter()
            .copied()
            .filter(|day| !known.contains(day))
            .collect()
    };
    if missing.is_empty() {
        return Ok(());
    }
    let doing = "creating telemetry partitions";
    let mut client = store.client().await?;
    let tx = client.transaction().await.context(doing)?;
    schema::create_partitions(&tx, &missing).await?;
    tx.commit().await.context(doing)?;
    store
        .shared
        .partitions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .extend(missing);
    Ok(())
}

const ROW_COLUMNS: &str = "terminal, record, at, voltage_mv, current_ma, soc, t_mosfet, t_box, \
                           t_battery, cells, warnings, status, raw";

/// A terminal's latest row.
pub(super) async fn latest(
    client: &deadpool_postgres::Client,
    terminal: Terminal,
) -> StoreResult<Option<TelemetryRow>> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM latest WHERE terminal = $1");
    let row = query_opt(
        client,
        &sql,
        &[&terminal_param(terminal)?],
        "reading the latest row",
    )
    .await?;
    row.as_ref().map(telemetry_row).transpose()
}

/// A stored telemetry row (columns [`ROW_COLUMNS`]), by column name.
pub(super) fn telemetry_row(row: &tokio_postgres::Row) -> StoreResult<TelemetryRow> {
    let temperature = |name| column::<Option<i16>>(row, name);
    Ok(TelemetryRow {
        terminal: Terminal(narrow(
            column::<i32>(row, "terminal")?.into(),
            "telemetry.terminal",
        )?),
        at: Timestamp(column(row, "at")?),
        record: narrow(column::<i32>(row, "record")?.into(), "telemetry.record")?,
        voltage_mv: narrow(column(row, "voltage_mv")?, "telemetry.voltage_mv")?,
        current_ma: column(row, "current_ma")?,
        soc: narrow(column::<i16>(row, "soc")?.into(), "telemetry.soc")?,
        temperatures: [
            temperature("t_mosfet")?,
            temperature("t_box")?,
            temperature("t_battery")?,
        ],
        cells_mv: cells_from_blob(column(row, "cells")?)?,
        warnings: narrow(column::<i32>(row, "warnings")?.into(), "telemetry.warnings")?,
        status: narrow(column::<i32>(row, "status")?.into(), "telemetry.status")?,
        raw: column(row, "raw")?,
    })
}

const RAW_HISTORY: &str = "
SELECT at, voltage_mv, current_ma, soc, t_min, t_max, cell_min, cell_max FROM telemetry
WHERE terminal = $1 AND at >= $2 AND at < $3 ORDER BY at, record";

const MINUTE_HISTORY: &str = "
SELECT bucket, samples, voltage_sum, current_sum, power_sum, soc_sum, t_min, t_max, cell_min,
       cell_max, charged_wh, discharged_wh
FROM rollup_minute WHERE terminal = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket";

const HOUR_HISTORY: &str = "
SELECT bucket, samples, voltage_sum, current_sum, power_sum, soc_sum, t_min, t_max, cell_min,
       cell_max, charged_wh, discharged_wh
FROM rollup_hour WHERE terminal = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket";

/// A terminal's history in `[from, to)`.
pub(super) async fn history(
    client: &deadpool_postgres::Client,
    terminal: Terminal,
    from: Timestamp,
    to: Timestamp,
    resolution: Resolution,
) -> StoreResult<Vec<HistoryPoint>> {
    let (from, to) = (from.millis(), to.millis());
    let params: [&(dyn ToSql + Sync); 3] = [&terminal_param(terminal)?, &from, &to];
    let (sql, convert): (_, fn(&tokio_postgres::Row) -> StoreResult<HistoryPoint>) =
        match resolution {
            Resolution::Raw => (RAW_HISTORY, raw_point),
            Resolution::Minute => (MINUTE_HISTORY, bucket_point),
            Resolution::Hour => (HOUR_HISTORY, bucket_point),
        };
    let rows = query(client, sql, &params, "reading history").await?;
    rows.iter().map(convert).collect()
}

/// A raw row as a history point: its own values, one sample, no energy.
fn raw_point(row: &tokio_postgres::Row) -> StoreResult<HistoryPoint> {
    let voltage = column::<i64>(row, "voltage_mv")? as f64;
    let current = f64::from(column::<i32>(row, "current_ma")?);
    Ok(HistoryPoint {
        at: Timestamp(column(row, "at")?),
        samples: 1,
        voltage_mv: voltage,
        current_ma: current,
        power_w: voltage * current / 1e6,
        soc: f64::from(column::<i16>(row, "soc")?),
        temperature_min: column(row, "t_min")?,
        temperature_max: column(row, "t_max")?,
        cell_min_mv: cell(row, "cell_min")?,
        cell_max_mv: cell(row, "cell_max")?,
        charged_wh: 0.0,
        discharged_wh: 0.0,
    })
}

/// A roll-up bucket as a history point.
fn bucket_point(row: &tokio_postgres::Row) -> StoreResult<HistoryPoint> {
    let samples: u32 = narrow(column(row, "samples")?, "rollup.samples")?;
    let mean = |name: &str| -> StoreResult<f64> {
        Ok(column::<f64>(row, name)? / f64::from(samples.max(1)))
    };
    Ok(HistoryPoint {
        at: Timestamp(column(row, "bucket")?),
        samples,
        voltage_mv: mean("voltage_sum")?,
        current_ma: mean("current_sum")?,
        power_w: mean("power_sum")?,
        soc: mean("soc_sum")?,
        temperature_min: column(row, "t_min")?,
        temperature_max: column(row, "t_max")?,
        cell_min_mv: cell(row, "cell_min")?,
        cell_max_mv: cell(row, "cell_max")?,
        charged_wh: column(row, "charged_wh")?,
        discharged_wh: column(row, "discharged_wh")?,
    })
}

fn cell(row: &tokio_postgres::Row, name: &str) -> StoreResult<Option<u16>> {
    column::<Option<i32>>(row, name)?
        .map(|mv| narrow(i64::from(mv), name))
        .transpose()
}

/// See `sqlite/telemetry.rs`: buckets for the rows in `[$1, $3)`, replacing earlier passes';
/// a terminal's first row takes its predecessor from the roll-ups of `[$2, $1)` (`$2` = `$1`
/// - gap), each of which keeps its last row's time and power.
const ROLL_UP_MINUTES: &str = "
INSERT INTO rollup_minute (terminal, bucket, samples, voltage_sum, current_sum, power_sum,
                           soc_sum, t_min, t_max, cell_min, cell_max, charged_wh, discharged_wh,
                           last_at, last_power)
SELECT terminal, (at / 60000) * 60000 AS minute, count(*), sum(voltage_mv), sum(current_ma),
       sum(power), sum(soc), min(t_min), max(t_max), min(cell_min), max(cell_max),
       coalesce(sum(CASE WHEN dt <= $4 THEN (greatest(power, 0) + greatest(prev_power, 0))
                                            / 2.0 * dt / 3600000.0 END), 0),
       coalesce(sum(CASE WHEN dt <= $4 THEN (greatest(-power, 0) + greatest(-prev_power, 0))
                                            / 2.0 * dt / 3600000.0 END), 0),
       max(at),
       max(CASE WHEN next_at IS NULL OR next_at / 60000 <> at / 60000 THEN power END)
FROM (
    SELECT terminal, at, voltage_mv, current_ma, soc, t_min, t_max, cell_min, cell_max, power,
           lag(power) OVER w AS prev_power,
           at - lag(at) OVER w AS dt,
           lead(at) OVER w AS next_at
    FROM (
        SELECT terminal, at, record, voltage_mv, current_ma, soc, t_min, t_max, cell_min,
               cell_max, voltage_mv * current_ma / 1000000.0::double precision AS power
        FROM telemetry
        WHERE at >= $1 AND at < $3
        UNION ALL
        SELECT terminal, last_at, NULL::integer, NULL::bigint, NULL::integer, NULL::smallint,
               NULL::smallint, NULL::smallint, NULL::integer, NULL::integer, last_power
        FROM rollup_minute
        WHERE bucket >= $2 AND bucket < $1 AND last_at IS NOT NULL
    ) AS rows_and_predecessors
    WINDOW w AS (PARTITION BY terminal ORDER BY at, record)
) AS timed
WHERE at >= $1
GROUP BY terminal, minute
ON CONFLICT (terminal, bucket) DO UPDATE SET
    samples = excluded.samples, voltage_sum = excluded.voltage_sum,
    current_sum = excluded.current_sum, power_sum = excluded.power_sum,
    soc_sum = excluded.soc_sum, t_min = excluded.t_min, t_max = excluded.t_max,
    cell_min = excluded.cell_min, cell_max = excluded.cell_max,
    charged_wh = excluded.charged_wh, discharged_wh = excluded.discharged_wh,
    last_at = excluded.last_at, last_power = excluded.last_power";

/// Hours from `[$1, $2)`'s minutes (`$1` on an hour boundary: whole hours).
const ROLL_UP_HOURS: &str = "
INSERT INTO rollup_hour (terminal, bucket, samples, voltage_sum, current_sum, power_sum,
                         soc_sum, t_min, t_max, cell_min, cell_max, charged_wh, discharged_wh)
SELECT terminal, (bucket / 3600000) * 3600000 AS hour, sum(samples), sum(voltage_sum),
       sum(current_sum), sum(power_sum), sum(soc_sum), min(t_min), max(t_max),
       min(cell_min), max(cell_max), sum(charged_wh), sum(discharged_wh)
FROM rollup_minute
WHERE bucket >= $1 AND bucket < $2
GROUP BY terminal, hour
ON CONFLICT (terminal, bucket) DO UPDATE SET
    samples = excluded.samples, voltage_sum = excluded.voltage_sum,
    current_sum = excluded.current_sum, power_sum = excluded.power_sum,
    soc_sum = excluded.soc_sum, t_min = excluded.t_min, t_max = excluded.t_max,
    cell_min = excluded.cell_min, cell_max = excluded.cell_max,
    charged_wh = excluded.charged_wh, discharged_wh = excluded.discharged_wh";

/// One maintenance pass in three transactions, so inserts are blocked only for the moments
/// partitions are created or dropped: partitions ahead; roll-ups and roll-up retention
/// (serialised across processes by an advisory lock); raw retention (whole days).
pub(super) async fn maintain(
    store: &PgStore,
    now: Timestamp,
    retention: Retention,
) -> StoreResult<MaintenanceReport> {
    let doing = "maintaining (partitions, roll-ups, retention)";
    let mut client = store.client().await?;
    let today = day_of(now.millis());
    let tx = client.transaction().await.context(doing)?;
    schema::create_partitions(&tx, &[today, today + 1, today + 2]).await?;
    tx.commit().await.context(doing)?;

    let mut report = MaintenanceReport::default();
    let tx = client.transaction().await.context(doing)?;
    execute(
        &tx,
        "SELECT pg_advisory_xact_lock($1)",
        &[&MAINTENANCE_LOCK],
        doing,
    )
    .await?;
    let watermark = roll_up(&tx, now, &mut report).await?;
    delete_expired_rollups(&tx, now, retention, &mut report).await?;
    tx.commit().await.context(doing)?;

    let tx = client.transaction().await.context(doing)?;
    delete_expired_raw(&tx, now, retention, watermark, &mut report).await?;
    tx.commit().await.context(doing)?;
    forget_partitions(store);
    Ok(report)
}

/// Rolls up from the stored watermark (or the oldest row) to `now`; returns the new watermark.
async fn roll_up<C: GenericClient>(
    tx: &C,
    now: Timestamp,
    report: &mut MaintenanceReport,
) -> StoreResult<Option<i64>> {
    let doing = "rolling up telemetry";
    let previous = query_opt(
        tx,
        "SELECT minute_from FROM maintenance WHERE id = 1",
        &[],
        doing,
    )
    .await?
    .map(|row| column::<i64>(&row, "minute_from"))
    .transpose()?;
    let from = match previous {
        Some(from) => Some(from),
        None => query_opt(tx, "SELECT min(at) AS oldest FROM telemetry", &[], doing)
            .await?
            .map(|row| column::<Option<i64>>(&row, "oldest"))
            .transpose()?
            .flatten()
            .map(|at| bucket_start(at, MINUTE_MS)),
    };
    let Some(from) = from else {
        return Ok(None);
    };
    let to = now.millis();
    if from < to {
        let lookback = from - MAX_INTEGRATION_GAP_MS;
        let minute_params: [&(dyn ToSql + Sync); 4] =
            [&from, &lookback, &to, &MAX_INTEGRATION_GAP_MS];
        report.minute_buckets = execute(tx, ROLL_UP_MINUTES, &minute_params, doing).await?;
        let hour_from = bucket_start(from, HOUR_MS);
        report.hour_buckets = execute(tx, ROLL_UP_HOURS, &[&hour_from, &to], doing).await?;
    }
    let next = next_minute_watermark(now, Some(from));
    execute(
        tx,
        "INSERT INTO maintenance (id, minute_from) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET minute_from = excluded.minute_from",
        &[&next],
        doing,
    )
    .await?;
    Ok(Some(next))
}

/// Drops the partitions (and their dedup keys) raw retention no longer keeps, never a row
/// not rolled up yet.
async fn delete_expired_raw<C: GenericClient>(
    tx: &C,
    now: Timestamp,
    retention: Retention,
    watermark: Option<i64>,
    report: &mut MaintenanceReport,
) -> StoreResult<()> {
    let raw_cutoff = now
        .minus(retention.raw)
        .millis()
        .min(watermark.unwrap_or(i64::MIN));
    let (deleted, dropped_until) = schema::drop_partitions_before(tx, raw_cutoff).await?;
    report.raw_deleted = deleted;
    if let Some(until) = dropped_until {
        let sql = "DELETE FROM telemetry_seen WHERE at < $1";
        execute(tx, sql, &[&until], "deleting expired dedup keys").await?;
    }
    Ok(())
}

/// Deletes the roll-ups retention no longer keeps.
async fn delete_expired_rollups<C: GenericClient>(
    tx: &C,
    now: Timestamp,
    retention: Retention,
    report: &mut MaintenanceReport,
) -> StoreResult<()> {
    let doing = "deleting expired roll-ups";
    let minute_cutoff = now.minus(retention.minute).millis();
    let sql = "DELETE FROM rollup_minute WHERE bucket < $1";
    report.rollups_deleted = execute(tx, sql, &[&minute_cutoff], doing).await?;
    if let Some(hour) = retention.hour {
        let hour_cutoff = now.minus(hour).millis();
        let sql = "DELETE FROM rollup_hour WHERE bucket < $1";
        report.rollups_deleted += execute(tx, sql, &[&hour_cutoff], doing).await?;
    }
    Ok(())
}
