//! Telemetry on SQLite: batched inserts with dedup, the latest row, history, and the
//! maintenance pass (roll-ups and retention).
//!
//! Roll-ups: a minute bucket holds a terminal's rows with `at` in `[bucket, bucket + 1 min)`:
//! count, sums (means are sum / samples), extremes, and the energy charged and discharged
//! between consecutive rows, integrated with the trapezoid rule on the positive and negative
//! parts of power and given to the bucket of the later row (pairs further apart than
//! [`MAX_INTEGRATION_GAP_MS`] count nothing). Hours are sums of their minutes.

use std::collections::HashMap;

use rusqlite::{named_params, Connection, TransactionBehavior};

use super::{column, query_all, query_first, Context};
use crate::model::{HistoryPoint, Resolution, TelemetryRow, Terminal, Timestamp};
use crate::store::codec::rollup::{
    bucket_start, next_minute_watermark, HOUR_MS, MAX_INTEGRATION_GAP_MS, MINUTE_MS,
};
use crate::store::codec::{cells_blob, cells_from_blob, narrow, narrow_opt, RowExtremes};
use crate::store::{InsertReport, MaintenanceReport, Retention, StoreResult};

const INSERT_ROW: &str = "
INSERT INTO telemetry (terminal, record, at, voltage_mv, current_ma, soc, t_mosfet, t_box,
                       t_battery, t_min, t_max, cell_min, cell_max, cells, warnings, status, raw)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
ON CONFLICT (terminal, record) DO NOTHING";

const UPSERT_LATEST: &str = "
INSERT INTO latest (terminal, record, at, voltage_mv, current_ma, soc, t_mosfet, t_box,
                    t_battery, cells, warnings, status, raw)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
ON CONFLICT (terminal) DO UPDATE SET
    record = excluded.record, at = excluded.at, voltage_mv = excluded.voltage_mv,
    current_ma = excluded.current_ma, soc = excluded.soc, t_mosfet = excluded.t_mosfet,
    t_box = excluded.t_box, t_battery = excluded.t_battery, cells = excluded.cells,
    warnings = excluded.warnings, status = excluded.status, raw = excluded.raw
WHERE excluded.at >= latest.at";

/// A terminal that uploads without having been seen connecting (a gateway's backlog, a
/// test) is created approved and offline.
const TOUCH_TERMINAL: &str = "
INSERT INTO terminals (id, registration, first_seen, last_seen, online)
VALUES (?1, 'approved', ?2, ?2, 0)
ON CONFLICT (id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)";

const ROW_COLUMNS: &str = "terminal, record, at, voltage_mv, current_ma, soc, t_mosfet, t_box, \
                           t_battery, cells, warnings, status, raw";

/// Stores batches in one transaction; returns each batch's report.
pub(super) fn insert(
    connection: &mut Connection,
    batches: &[Vec<TelemetryRow>],
) -> StoreResult<Vec<InsertReport>> {
    let doing = "storing telemetry";
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(doing)?;
    let mut reports = Vec::with_capacity(batches.len());
    let mut newest: HashMap<u32, &TelemetryRow> = HashMap::new();
    {
        let mut insert = tx.prepare_cached(INSERT_ROW).context(doing)?;
        for rows in batches {
            let mut report = InsertReport::default();
            for row in rows {
                if insert_row(&mut insert, row)? {
                    report.inserted += 1;
                    let slot = newest.entry(row.terminal.0).or_insert(row);
                    if row.at >= slot.at {
                        *slot = row;
                    }
                } else {
                    report.duplicates += 1;
                }
            }
            reports.push(report);
        }
    }
    update_latest(&tx, newest.values().copied())?;
    tx.commit().context(doing)?;
    Ok(reports)
}

/// Inserts one row; `false` if its (terminal, record) is stored already.
fn insert_row(insert: &mut rusqlite::CachedStatement<'_>, row: &TelemetryRow) -> StoreResult<bool> {
    let extremes = RowExtremes::of(row);
    let [t_mosfet, t_box, t_battery] = row.temperatures;
    let stored = insert
        .execute(rusqlite::params![
            row.terminal.0,
            row.record,
            row.at.millis(),
            row.voltage_mv,
            row.current_ma,
            row.soc,
            t_mosfet,
            t_box,
            t_battery,
            extremes.temperature_min,
            extremes.temperature_max,
            extremes.cell_min,
            extremes.cell_max,
            cells_blob(&row.cells_mv),
            row.warnings,
            row.status,
            row.raw,
        ])
        .context("storing telemetry")?;
    Ok(stored == 1)
}

fn update_latest<'a>(
    tx: &rusqlite::Transaction<'_>,
    rows: impl Iterator<Item = &'a TelemetryRow>,
) -> StoreResult<()> {
    let doing = "updating the latest rows";
    let mut latest = tx.prepare_cached(UPSERT_LATEST).context(doing)?;
    let mut touch = tx.prepare_cached(TOUCH_TERMINAL).context(doing)?;
    for row in rows {
        let [t_mosfet, t_box, t_battery] = row.temperatures;
        latest
            .execute(rusqlite::params![
                row.terminal.0,
                row.record,
                row.at.millis(),
                row.voltage_mv,
                row.current_ma,
                row.soc,
                t_mosfet,
                t_box,
                t_battery,
                cells_blob(&row.cells_mv),
                row.warnings,
                row.status,
                row.raw,
            ])
            .context(doing)?;
        touch
            .execute((row.terminal.0, row.at.millis()))
            .context(doing)?;
    }
    Ok(())
}

/// A terminal's latest row.
pub(super) fn latest(
    connection: &Connection,
    terminal: Terminal,
) -> StoreResult<Option<TelemetryRow>> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM latest WHERE terminal = ?1");
    query_first(
        connection,
        &sql,
        [terminal.0],
        "reading the latest row",
        telemetry_row,
    )
}

/// A stored telemetry row (columns [`ROW_COLUMNS`]), by column name.
pub(super) fn telemetry_row(row: &rusqlite::Row<'_>) -> StoreResult<TelemetryRow> {
    Ok(TelemetryRow {
        terminal: Terminal(narrow(column(row, "terminal")?, "telemetry.terminal")?),
        at: Timestamp(column(row, "at")?),
        record: narrow(column(row, "record")?, "telemetry.record")?,
        voltage_mv: narrow(column(row, "voltage_mv")?, "telemetry.voltage_mv")?,
        current_ma: narrow(column(row, "current_ma")?, "telemetry.current_ma")?,
        soc: narrow(column(row, "soc")?, "telemetry.soc")?,
        temperatures: [
            narrow_opt(column(row, "t_mosfet")?, "telemetry.t_mosfet")?,
            narrow_opt(column(row, "t_box")?, "telemetry.t_box")?,
            narrow_opt(column(row, "t_battery")?, "telemetry.t_battery")?,
        ],
        cells_mv: cells_from_blob(&column::<Vec<u8>>(row, "cells")?)?,
        warnings: narrow(column(row, "warnings")?, "telemetry.warnings")?,
        status: narrow(column(row, "status")?, "telemetry.status")?,
        raw: column(row, "raw")?,
    })
}

/// A terminal's history in `[from, to)`.
pub(super) fn history(
    connection: &Connection,
    terminal: Terminal,
    from: Timestamp,
    to: Timestamp,
    resolution: Resolution,
) -> StoreResult<Vec<HistoryPoint>> {
    let params = (terminal.0, from.millis(), to.millis());
    match resolution {
        Resolution::Raw => query_all(
            connection,
            RAW_HISTORY,
            params,
            "reading history",
            raw_point,
        ),
        Resolution::Minute => query_all(
            connection,
            MINUTE_HISTORY,
            params,
            "reading history",
            bucket_point,
        ),
        Resolution::Hour => query_all(
            connection,
            HOUR_HISTORY,
            params,
            "reading history",
            bucket_point,
        ),
    }
}

const RAW_HISTORY: &str = "
SELECT at, voltage_mv, current_ma, soc, t_min, t_max, cell_min, cell_max FROM telemetry
WHERE terminal = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, record";

const MINUTE_HISTORY: &str = "
SELECT bucket, samples, voltage_sum, current_sum, power_sum, soc_sum, t_min, t_max, cell_min,
       cell_max, charged_wh, discharged_wh
FROM rollup_minute WHERE terminal = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY bucket";

const HOUR_HISTORY: &str = "
SELECT bucket, samples, voltage_sum, current_sum, power_sum, soc_sum, t_min, t_max, cell_min,
       cell_max, charged_wh, discharged_wh
FROM rollup_hour WHERE terminal = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY bucket";

/// A raw row as a history point: its own values, one sample, no energy (energy needs an
/// interval: read minutes for it).
fn raw_point(row: &rusqlite::Row<'_>) -> StoreResult<HistoryPoint> {
    let voltage: i64 = column(row, "voltage_mv")?;
    let current: i64 = column(row, "current_ma")?;
    Ok(HistoryPoint {
        at: Timestamp(column(row, "at")?),
        samples: 1,
        voltage_mv: voltage as f64,
        current_ma: current as f64,
        power_w: voltage as f64 * current as f64 / 1e6,
        soc: column::<i64>(row, "soc")? as f64,
        temperature_min: narrow_opt(column(row, "t_min")?, "telemetry.t_min")?,
        temperature_max: narrow_opt(column(row, "t_max")?, "telemetry.t_max")?,
        cell_min_mv: narrow_opt(column(row, "cell_min")?, "telemetry.cell_min")?,
        cell_max_mv: narrow_opt(column(row, "cell_max")?, "telemetry.cell_max")?,
        charged_wh: 0.0,
        discharged_wh: 0.0,
    })
}

/// A roll-up bucket (columns of [`MINUTE_HISTORY`]) as a history point.
fn bucket_point(row: &rusqlite::Row<'_>) -> StoreResult<HistoryPoint> {
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
        temperature_min: narrow_opt(column(row, "t_min")?, "rollup.t_min")?,
        temperature_max: narrow_opt(column(row, "t_max")?, "rollup.t_max")?,
        cell_min_mv: narrow_opt(column(row, "cell_min")?, "rollup.cell_min")?,
        cell_max_mv: narrow_opt(column(row, "cell_max")?, "rollup.cell_max")?,
        charged_wh: column(row, "charged_wh")?,
        discharged_wh: column(row, "discharged_wh")?,
    })
}

/// Rows in `[:lookback, :to)` give each row its predecessor (for energy); buckets are written
/// for rows in `[:from, :to)`, replacing what an earlier pass wrote for them.
const ROLL_UP_MINUTES: &str = "
INSERT INTO rollup_minute (terminal, bucket, samples, voltage_sum, current_sum, power_sum,
                           soc_sum, t_min, t_max, cell_min, cell_max, charged_wh, discharged_wh)
SELECT terminal, (at / 60000) * 60000 AS minute, count(*), total(voltage_mv), total(current_ma),
       total(power), total(soc), min(t_min), max(t_max), min(cell_min), max(cell_max),
       total(CASE WHEN dt <= :gap
                  THEN (max(power, 0) + max(prev_power, 0)) / 2.0 * dt / 3600000.0 END),
       total(CASE WHEN dt <= :gap
                  THEN (max(-power, 0) + max(-prev_power, 0)) / 2.0 * dt / 3600000.0 END)
FROM (
    SELECT terminal, at, voltage_mv, current_ma, soc, t_min, t_max, cell_min, cell_max,
           voltage_mv * current_ma / 1000000.0 AS power,
           lag(voltage_mv * current_ma / 1000000.0) OVER w AS prev_power,
           at - lag(at) OVER w AS dt
    FROM telemetry
    WHERE at >= :lookback AND at < :to
    WINDOW w AS (PARTITION BY terminal ORDER BY at, record)
)
WHERE at >= :from
GROUP BY terminal, minute
ON CONFLICT (terminal, bucket) DO UPDATE SET
    samples = excluded.samples, voltage_sum = excluded.voltage_sum,
    current_sum = excluded.current_sum, power_sum = excluded.power_sum,
    soc_sum = excluded.soc_sum, t_min = excluded.t_min, t_max = excluded.t_max,
    cell_min = excluded.cell_min, cell_max = excluded.cell_max,
    charged_wh = excluded.charged_wh, discharged_wh = excluded.discharged_wh";

/// Hours from `[:from, :to)`'s minutes (`:from` on an hour boundary: whole hours).
const ROLL_UP_HOURS: &str = "
INSERT INTO rollup_hour (terminal, bucket, samples, voltage_sum, current_sum, power_sum,
                         soc_sum, t_min, t_max, cell_min, cell_max, charged_wh, discharged_wh)
SELECT terminal, (bucket / 3600000) * 3600000 AS hour, sum(samples), total(voltage_sum),
       total(current_sum), total(power_sum), total(soc_sum), min(t_min), max(t_max),
       min(cell_min), max(cell_max), total(charged_wh), total(discharged_wh)
FROM rollup_minute
WHERE bucket >= :from AND bucket < :to
GROUP BY terminal, hour
ON CONFLICT (terminal, bucket) DO UPDATE SET
    samples = excluded.samples, voltage_sum = excluded.voltage_sum,
    current_sum = excluded.current_sum, power_sum = excluded.power_sum,
    soc_sum = excluded.soc_sum, t_min = excluded.t_min, t_max = excluded.t_max,
    cell_min = excluded.cell_min, cell_max = excluded.cell_max,
    charged_wh = excluded.charged_wh, discharged_wh = excluded.discharged_wh";

/// One maintenance pass, one transaction.
pub(super) fn maintain(
    connection: &mut Connection,
    now: Timestamp,
    retention: Retention,
) -> StoreResult<MaintenanceReport> {
    let doing = "maintaining (roll-ups, retention)";
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(doing)?;
    let mut report = MaintenanceReport::default();
    let watermark = roll_up(&tx, now, &mut report)?;
    delete_expired(&tx, now, retention, watermark, &mut report)?;
    tx.commit().context(doing)?;
    Ok(report)
}

/// Rolls up from the stored watermark (or the oldest row) to `now`; returns the new watermark.
fn roll_up(
    tx: &rusqlite::Transaction<'_>,
    now: Timestamp,
    report: &mut MaintenanceReport,
) -> StoreResult<Option<i64>> {
    let doing = "rolling up telemetry";
    let previous: Option<i64> = tx
        .query_row(
            "SELECT minute_from FROM maintenance WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            other => Err(other),
        })
        .context(doing)?;
    let oldest: Option<i64> = tx
        .query_row("SELECT min(at) FROM telemetry", [], |r| r.get(0))
        .context(doing)?;
    let Some(from) = previous.or(oldest.map(|at| bucket_start(at, MINUTE_MS))) else {
        return Ok(None);
    };
    if from < now.millis() {
        let minutes = tx
            .prepare_cached(ROLL_UP_MINUTES)
            .context(doing)?
            .execute(named_params! {
                ":from": from,
                ":lookback": from - MAX_INTEGRATION_GAP_MS,
                ":to": now.millis(),
                ":gap": MAX_INTEGRATION_GAP_MS,
            })
            .context(doing)?;
        let hours = tx
            .prepare_cached(ROLL_UP_HOURS)
            .context(doing)?
            .execute(named_params! { ":from": bucket_start(from, HOUR_MS), ":to": now.millis() })
            .context(doing)?;
        report.minute_buckets = minutes as u64;
        report.hour_buckets = hours as u64;
    }
    let next = next_minute_watermark(now, Some(from));
    tx.execute(
        "INSERT INTO maintenance (id, minute_from) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET minute_from = excluded.minute_from",
        [next],
    )
    .context(doing)?;
    Ok(Some(next))
}

/// Deletes what `retention` no longer keeps; raw rows not rolled up yet are kept.
fn delete_expired(
    tx: &rusqlite::Transaction<'_>,
    now: Timestamp,
    retention: Retention,
    watermark: Option<i64>,
    report: &mut MaintenanceReport,
) -> StoreResult<()> {
    let doing = "deleting expired telemetry";
    let raw_cutoff = now
        .minus(retention.raw)
        .millis()
        .min(watermark.unwrap_or(i64::MIN));
    report.raw_deleted = tx
        .execute("DELETE FROM telemetry WHERE at < ?1", [raw_cutoff])
        .context(doing)? as u64;
    let minute_cutoff = now.minus(retention.minute).millis();
    report.rollups_deleted = tx
        .execute(
            "DELETE FROM rollup_minute WHERE bucket < ?1",
            [minute_cutoff],
        )
        .context(doing)? as u64;
    if let Some(hour) = retention.hour {
        let hour_cutoff = now.minus(hour).millis();
        report.rollups_deleted += tx
            .execute("DELETE FROM rollup_hour WHERE bucket < ?1", [hour_cutoff])
            .context(doing)? as u64;
    }
    Ok(())
}
