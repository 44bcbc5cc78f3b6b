//! Telemetry on SQLite: batched inserts with dedup, the latest row, history, and the
//! maintenance pass (roll-ups and retention).
//!
//! Inserts only append: rows go to the end of the table and of the (at) index, and into the
//! current slot of the (slot, terminal) index; whether a (terminal, record) is stored already
//! is the writer's in-memory record runs' answer (`store/keys.rs`). What the rows change per
//! terminal (`latest`, `terminals.last_seen`, the runs' copy in `telemetry_keys`) is written
//! by [`flush`] every 30 s, not by each insert (`pending.rs` says why and how nothing
//! is lost). Raw history looks up its terminal in each 10-second slot of the range.
//!
//! Roll-ups: a minute bucket holds a terminal's rows with `at` in `[bucket, bucket + 1 min)`:
//! count, sums (means are sum / samples), extremes, and the energy charged and discharged
//! between consecutive rows, integrated with the trapezoid rule on the positive and negative
//! parts of power and given to the bucket of the later row (pairs further apart than
//! [`MAX_INTEGRATION_GAP_MS`] count nothing). Hours are sums of their minutes.

use std::collections::HashSet;

use rusqlite::{named_params, Connection, TransactionBehavior};

use super::keys::WriterKeys;
use super::pending::PendingLatest;
use super::schema::SLOT_MS;
use super::writer::Db;
use super::{column, keys, query_all, query_first, Context};
use crate::model::{HistoryPoint, Resolution, TelemetryRow, Terminal, Timestamp};
use crate::store::codec::rollup::{
    bucket_start, next_minute_watermark, HOUR_MS, MAX_INTEGRATION_GAP_MS, MINUTE_MS,
};
use crate::store::codec::{cells_blob, cells_from_blob, narrow, narrow_opt, RowExtremes};
use crate::store::keys::{day_of, StoredKeys};
use crate::store::{InsertReport, MaintenanceReport, Retention, StoreResult};

const INSERT_ROW: &str = "
INSERT INTO telemetry (terminal, record, at, voltage_mv, current_ma, soc, t_mosfet, t_box,
                       t_battery, t_min, t_max, cell_min, cell_max, cells, warnings, status, raw)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

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
/// test) is created approved and offline; a flush moves `last_seen` of known ones.
const TOUCH_TERMINAL: &str = "
INSERT INTO terminals (id, registration, first_seen, last_seen, online)
VALUES (?1, 'approved', ?2, ?2, 0)
ON CONFLICT (id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)";

const ROW_COLUMNS: &str = "terminal, record, at, voltage_mv, current_ma, soc, t_mosfet, t_box, \
                           t_battery, cells, warnings, status, raw";

/// Stores batches in one transaction; returns each batch's report. The keys follow the
/// transaction: kept (to be flushed) if it commits, rolled back if not; each terminal's newest
/// row joins the pending latest rows once committed.
pub(super) fn insert(
    db: &mut Db,
    batches: Vec<Vec<TelemetryRow>>,
) -> StoreResult<Vec<InsertReport>> {
    let result = insert_batches(db, &batches);
    match result {
        Ok(ref stored) => {
            db.keys.keys.commit();
            db.known.extend(stored.created.iter().copied());
            db.pending.merge(
                batches
                    .into_iter()
                    .flatten()
                    .zip(stored.fresh.iter())
                    .filter_map(|(row, fresh)| fresh.then_some(row)),
            );
        }
        Err(_) => db.keys.keys.rollback(),
    }
    result.map(|stored| stored.reports)
}

/// What one insert transaction did.
struct Stored {
    reports: Vec<InsertReport>,
    /// Per row, in order: stored (not a duplicate).
    fresh: Vec<bool>,
    /// Terminals it created.
    created: HashSet<u32>,
}

fn insert_batches(db: &mut Db, batches: &[Vec<TelemetryRow>]) -> StoreResult<Stored> {
    let doing = "storing telemetry";
    let Db {
        connection,
        keys,
        pending,
        known,
        ..
    } = db;
    let tx = begin(connection, keys, pending, doing)?;
    let mut stored = Stored {
        reports: Vec::with_capacity(batches.len()),
        fresh: Vec::with_capacity(batches.iter().map(Vec::len).sum()),
        created: HashSet::new(),
    };
    {
        let mut insert = tx.prepare_cached(INSERT_ROW).context(doing)?;
        for rows in batches {
            let mut report = InsertReport::default();
            for row in rows {
                let fresh = keys
                    .keys
                    .insert(row.terminal.0, row.record, day_of(row.at.millis()));
                stored.fresh.push(fresh);
                if !fresh {
                    report.duplicates += 1;
                    continue;
                }
                insert_row(&mut insert, row)?;
                report.inserted += 1;
                let terminal = row.terminal.0;
                if !known.contains(&terminal) && stored.created.insert(terminal) {
                    touch_terminal(&tx, row)?;
                }
            }
            stored.reports.push(report);
        }
    }
    tx.commit().context(doing)?;
    Ok(stored)
}

/// Creates (or moves `last_seen` of) the terminal of `row`.
fn touch_terminal(tx: &rusqlite::Transaction<'_>, row: &TelemetryRow) -> StoreResult<()> {
    tx.prepare_cached(TOUCH_TERMINAL)
        .and_then(|mut touch| touch.execute((row.terminal.0, row.at.millis())))
        .context("recording a new terminal")?;
    Ok(())
}

/// Starts an immediate write transaction, the dedup keys brought up to date first
/// ([`refresh`]).
fn begin<'c>(
    connection: &'c mut Connection,
    keys: &mut WriterKeys,
    pending: &PendingLatest,
    doing: &str,
) -> StoreResult<rusqlite::Transaction<'c>> {
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(doing)?;
    refresh(&tx, keys, pending)?;
    Ok(tx)
}

/// If another process wrote the file since the keys were read: reloads them and replays the
/// rows after the flushed watermark (to call inside a write transaction, before any change).
pub(super) fn refresh(
    tx: &rusqlite::Transaction<'_>,
    keys: &mut WriterKeys,
    pending: &PendingLatest,
) -> StoreResult<()> {
    if keys.refresh(tx)? {
        replay_unflushed(tx, &mut keys.keys, pending)?;
    }
    Ok(())
}

/// Every terminal the `terminals` table holds.
pub(super) fn known_terminals(connection: &Connection) -> StoreResult<HashSet<u32>> {
    let ids = query_all(
        connection,
        "SELECT id FROM terminals",
        [],
        "reading the terminals",
        |row| narrow::<u32>(column::<i64>(row, "id")?, "terminals.id"),
    )?;
    Ok(ids.into_iter().collect())
}

/// The highest telemetry rowid the per-terminal copies reflect.
fn flushed_through(connection: &Connection) -> StoreResult<i64> {
    connection
        .query_row(
            "SELECT through_rowid FROM telemetry_flushed WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .context("reading the flushed telemetry watermark")
}

/// Replays the rows committed after the last flush into the keys and the pending latest
/// rows (at open: a process that stopped without flushing, or crashed, left them).
pub(super) fn replay_unflushed(
    connection: &Connection,
    keys: &mut StoredKeys,
    pending: &PendingLatest,
) -> StoreResult<()> {
    let doing = "replaying telemetry rows not flushed";
    let through = flushed_through(connection)?;
    let sql = format!("SELECT {ROW_COLUMNS} FROM telemetry WHERE rowid > ?1 ORDER BY rowid");
    let mut statement = connection.prepare(&sql).context(doing)?;
    let mut rows = statement.query([through]).context(doing)?;
    // Row by row: up to a flush interval of uploads (570,000 at 19,000 a second), of which
    // only each terminal's newest is kept.
    let mut replayed = 0_u64;
    while let Some(row) = rows.next().context(doing)? {
        let row = telemetry_row(row)?;
        keys.insert(row.terminal.0, row.record, day_of(row.at.millis()));
        pending.merge([row]);
        replayed += 1;
    }
    keys.commit();
    if replayed > 0 {
        tracing::info!(
            "{replayed} telemetry rows stored after the last flush of the latest rows and dedup \
             keys: replayed"
        );
    }
    Ok(())
}

/// Writes the pending per-terminal copies (`latest`, `last_seen`, `telemetry_keys`) and the
/// watermark in one transaction.
pub(super) fn flush(db: &mut Db) -> StoreResult<()> {
    if db.pending.is_empty() && !db.keys.keys.has_unflushed() {
        return Ok(());
    }
    let doing = "writing the latest rows and dedup keys";
    let Db {
        connection,
        keys,
        pending,
        ..
    } = db;
    let tx = begin(connection, keys, pending, doing)?;
    let rows = write_copies(&tx, &keys.keys, pending)?;
    set_flushed_through(&tx)?;
    tx.commit().context(doing)?;
    keys.keys.flushed();
    pending.clear();
    tracing::trace!("flushed the latest rows of {rows} terminals");
    Ok(())
}

/// Writes the keys' changes and the pending latest rows; returns how many rows.
fn write_copies(
    tx: &rusqlite::Transaction<'_>,
    keys: &StoredKeys,
    pending: &PendingLatest,
) -> StoreResult<usize> {
    keys::store_changes(tx, &keys.changes())?;
    let rows = pending.rows();
    update_latest(tx, rows.iter().map(|row| &**row))?;
    Ok(rows.len())
}

/// Records that the copies reflect every row stored now (the highest rowid: a later row
/// gets a higher one).
fn set_flushed_through(tx: &rusqlite::Transaction<'_>) -> StoreResult<()> {
    tx.execute(
        "UPDATE telemetry_flushed
         SET through_rowid = (SELECT coalesce(max(rowid), 0) FROM telemetry) WHERE id = 1",
        [],
    )
    .context("moving the flushed telemetry watermark")?;
    Ok(())
}

/// Inserts one row.
fn insert_row(insert: &mut rusqlite::CachedStatement<'_>, row: &TelemetryRow) -> StoreResult<()> {
    let extremes = RowExtremes::of(row);
    let [t_mosfet, t_box, t_battery] = row.temperatures;
    insert
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
    Ok(())
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
    let (from, to) = (from.millis(), to.millis());
    match resolution {
        Resolution::Raw => raw_history(connection, terminal, from, to),
        Resolution::Minute => bucket_history(connection, &MINUTE_TABLE, terminal, from, to),
        Resolution::Hour => bucket_history(connection, &HOUR_TABLE, terminal, from, to),
    }
}

/// A roll-up table and its bucket width.
struct RollUpTable {
    /// The oldest and newest buckets: two look-ups at the ends of the (bucket, terminal) key.
    span: &'static str,
    /// A terminal's buckets in `[?2, ?3)`, one key look-up per bucket (`?2` on a bucket
    /// start, the range within the buckets stored); ?4 is the width.
    lookup: &'static str,
    width: i64,
}

/// [`RollUpTable`]'s queries for one table.
macro_rules! roll_up_table {
    ($table:literal, $width:expr) => {
        RollUpTable {
            span: concat!(
                "SELECT (SELECT min(bucket) FROM ",
                $table,
                ") AS oldest, ",
                "(SELECT max(bucket) FROM ",
                $table,
                ") AS newest"
            ),
            lookup: concat!(
                "WITH RECURSIVE range(bucket) AS (",
                " SELECT ?2 UNION ALL SELECT bucket + ?4 FROM range WHERE bucket + ?4 < ?3",
                ") SELECT r.bucket, samples, voltage_sum, current_sum, power_sum, soc_sum, t_min,",
                " t_max, cell_min, cell_max, charged_wh, discharged_wh",
                " FROM range JOIN ",
                $table,
                " r ON r.bucket = range.bucket AND r.terminal = ?1",
                " ORDER BY r.bucket"
            ),
            width: $width,
        }
    };
}

const MINUTE_TABLE: RollUpTable = roll_up_table!("rollup_minute", MINUTE_MS);
const HOUR_TABLE: RollUpTable = roll_up_table!("rollup_hour", HOUR_MS);

/// A terminal's roll-up buckets starting in `[from, to)`, in one read transaction; the range
/// is first narrowed to the buckets stored, so an open-ended range costs nothing.
fn bucket_history(
    connection: &Connection,
    table: &RollUpTable,
    terminal: Terminal,
    from: i64,
    to: i64,
) -> StoreResult<Vec<HistoryPoint>> {
    let doing = "reading history";
    let tx = connection.unchecked_transaction().context(doing)?;
    let Some((oldest, newest)) = stored_span(&tx, table.span)? else {
        return Ok(Vec::new());
    };
    // The first bucket start at or after `from` (buckets start on multiples of the width).
    let first = from
        .max(oldest)
        .checked_add(table.width - 1)
        .map_or(i64::MAX, |f| f.div_euclid(table.width) * table.width);
    let end = to.min(newest.saturating_add(1));
    if first >= end {
        return Ok(Vec::new());
    }
    query_all(
        &tx,
        table.lookup,
        (terminal.0, first, end, table.width),
        doing,
        bucket_point,
    )
}

/// The oldest and newest values `span_sql` reads (`None`: the table is empty).
fn stored_span(tx: &rusqlite::Transaction<'_>, span_sql: &str) -> StoreResult<Option<(i64, i64)>> {
    let (oldest, newest): (Option<i64>, Option<i64>) = tx
        .query_row(span_sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .context("reading history")?;
    Ok(oldest.zip(newest))
}

/// A terminal's rows in `[?2, ?3)` within slot `?4` (the index expression must read exactly
/// `at / 10000`: see [`SLOT_MS`]).
const RAW_HISTORY_SLOT: &str = "
SELECT at, voltage_mv, current_ma, soc, t_min, t_max, cell_min, cell_max FROM telemetry
WHERE at / 10000 = ?4 AND terminal = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, record";

/// The oldest and newest times stored: two look-ups in the (at) index (one `min(at), max(at)`
/// query would scan it: SQLite only optimises a lone min or max).
const TIME_SPAN: &str =
    "SELECT (SELECT min(at) FROM telemetry) AS oldest, (SELECT max(at) FROM telemetry) AS newest";

/// Raw rows: one index look-up per slot of the range, in one read transaction (one snapshot);
/// the range is first narrowed to the times stored, so an open-ended range costs nothing.
fn raw_history(
    connection: &Connection,
    terminal: Terminal,
    from: i64,
    to: i64,
) -> StoreResult<Vec<HistoryPoint>> {
    let doing = "reading history";
    let tx = connection.unchecked_transaction().context(doing)?;
    let Some((oldest, newest)) = stored_span(&tx, TIME_SPAN)? else {
        return Ok(Vec::new());
    };
    let (from, to) = (from.max(oldest), to.min(newest.saturating_add(1)));
    let mut points = Vec::new();
    if from >= to {
        return Ok(points);
    }
    // SQLite's integer division truncates: slots of at in [from, to - 1], in order.
    for slot in from / SLOT_MS..=(to - 1) / SLOT_MS {
        let mut found = query_all(
            &tx,
            RAW_HISTORY_SLOT,
            (terminal.0, from, to, slot),
            doing,
            raw_point,
        )?;
        points.append(&mut found);
    }
    Ok(points)
}

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

/// Minute buckets for the rows in `[:from, :to)` (they replace what an earlier pass wrote for
/// them: [`UPSERT_MINUTE`]). A terminal's first row there takes its predecessor (for energy)
/// from the roll-ups of `[:lookback, :from)`: each bucket keeps its last row's time and power,
/// so a pass reads only its own rows, never the minutes before them again. Each bucket records
/// its last row (by time, then record: the row whose successor is in another minute, or has
/// none). Columns in the order of [`UPSERT_MINUTE`]'s parameters.
const MINUTE_BUCKETS: &str = "
SELECT terminal, (at / 60000) * 60000 AS minute, count(*), total(voltage_mv), total(current_ma),
       total(power), total(soc), min(t_min), max(t_max), min(cell_min), max(cell_max),
       total(CASE WHEN dt <= :gap
                  THEN (max(power, 0) + max(prev_power, 0)) / 2.0 * dt / 3600000.0 END),
       total(CASE WHEN dt <= :gap
                  THEN (max(-power, 0) + max(-prev_power, 0)) / 2.0 * dt / 3600000.0 END),
       max(at),
       max(CASE WHEN next_at IS NULL OR next_at / 60000 != at / 60000 THEN power END)
FROM (
    SELECT terminal, at, voltage_mv, current_ma, soc, t_min, t_max, cell_min, cell_max, power,
           lag(power) OVER w AS prev_power,
           at - lag(at) OVER w AS dt,
           lead(at) OVER w AS next_at
    FROM (
        SELECT terminal, at, record, voltage_mv, current_ma, soc, t_min, t_max, cell_min,
               cell_max, voltage_mv * current_ma / 1000000.0 AS power
        FROM telemetry
        WHERE at >= :from AND at < :to
        UNION ALL
        SELECT terminal, last_at, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, last_power
        FROM rollup_minute
        WHERE bucket >= :lookback AND bucket < :from AND last_at IS NOT NULL
    )
    WINDOW w AS (PARTITION BY terminal ORDER BY at, record)
)
WHERE at >= :from
GROUP BY terminal, minute";

const UPSERT_MINUTE: &str = "
INSERT INTO rollup_minute (terminal, bucket, samples, voltage_sum, current_sum, power_sum,
                           soc_sum, t_min, t_max, cell_min, cell_max, charged_wh, discharged_wh,
                           last_at, last_power)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
ON CONFLICT (bucket, terminal) DO UPDATE SET
    samples = excluded.samples, voltage_sum = excluded.voltage_sum,
    current_sum = excluded.current_sum, power_sum = excluded.power_sum,
    soc_sum = excluded.soc_sum, t_min = excluded.t_min, t_max = excluded.t_max,
    cell_min = excluded.cell_min, cell_max = excluded.cell_max,
    charged_wh = excluded.charged_wh, discharged_wh = excluded.discharged_wh,
    last_at = excluded.last_at, last_power = excluded.last_power";

/// Hours from `[:from, :to)`'s minutes (`:from` on an hour boundary: whole hours); columns in
/// the order of [`UPSERT_HOUR`]'s parameters.
const HOUR_BUCKETS: &str = "
SELECT terminal, (bucket / 3600000) * 3600000 AS hour, sum(samples), total(voltage_sum),
       total(current_sum), total(power_sum), total(soc_sum), min(t_min), max(t_max),
       min(cell_min), max(cell_max), total(charged_wh), total(discharged_wh)
FROM rollup_minute
WHERE bucket >= :from AND bucket < :to
GROUP BY terminal, hour";

const UPSERT_HOUR: &str = "
INSERT INTO rollup_hour (terminal, bucket, samples, voltage_sum, current_sum, power_sum,
                         soc_sum, t_min, t_max, cell_min, cell_max, charged_wh, discharged_wh)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
ON CONFLICT (bucket, terminal) DO UPDATE SET
    samples = excluded.samples, voltage_sum = excluded.voltage_sum,
    current_sum = excluded.current_sum, power_sum = excluded.power_sum,
    soc_sum = excluded.soc_sum, t_min = excluded.t_min, t_max = excluded.t_max,
    cell_min = excluded.cell_min, cell_max = excluded.cell_max,
    charged_wh = excluded.charged_wh, discharged_wh = excluded.discharged_wh";

/// Roll-up buckets as read (one row of [`MINUTE_BUCKETS`] or [`HOUR_BUCKETS`] each), to be
/// written with [`UPSERT_MINUTE`] or [`UPSERT_HOUR`].
pub(super) type Buckets = Vec<Vec<rusqlite::types::Value>>;

/// The roll-up of one maintenance pass: the stretch it recomputes and its minute buckets.
pub(super) struct MinuteRollUp {
    /// The pass's start (the stored watermark, or the oldest row's minute).
    pub(super) from: i64,
    pub(super) buckets: Buckets,
}

// A maintenance pass runs in four steps, so that the writer thread (and ingest) only ever
// waits for the writes, never for the window sort over the last minutes of rows:
//
// 1. [`minute_buckets`] (a reader): the minute buckets from the watermark to now;
// 2. [`store_minutes`] (the writer): writes them;
// 3. [`hour_buckets`] (a reader, after 2 committed): the hours from those minutes;
// 4. [`finish_pass`] (the writer): writes the hours, moves the watermark and applies
//    retention, in one transaction.
//
// Rows committed after step 1 read its snapshot are in the stretch the next pass recomputes
// (the watermark trails now by [`LATE_GRACE_MS`](crate::store::codec::rollup::LATE_GRACE_MS)),
// and the watermark moves only in step 4: a pass cut short is simply done again. The steps of
// one pass must not interleave with another pass's (the store runs one at a time).

/// Step 1: the minute buckets from the stored watermark (or the oldest row) to `now`, read in
/// one snapshot; `None` when nothing is stored yet.
pub(super) fn minute_buckets(
    connection: &Connection,
    now: Timestamp,
) -> StoreResult<Option<MinuteRollUp>> {
    let doing = "rolling up telemetry";
    let tx = connection.unchecked_transaction().context(doing)?;
    let Some(from) = roll_up_start(&tx)? else {
        return Ok(None);
    };
    let mut buckets = Buckets::new();
    if from < now.millis() {
        buckets = read_buckets(
            &tx,
            MINUTE_BUCKETS,
            named_params! {
                ":from": from,
                ":lookback": from - MAX_INTEGRATION_GAP_MS,
                ":to": now.millis(),
                ":gap": MAX_INTEGRATION_GAP_MS,
            },
        )?;
    }
    Ok(Some(MinuteRollUp { from, buckets }))
}

/// Where a pass starts: the stored watermark, else the minute of the oldest row.
fn roll_up_start(tx: &rusqlite::Transaction<'_>) -> StoreResult<Option<i64>> {
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
    if previous.is_some() {
        return Ok(previous);
    }
    let oldest: Option<i64> = tx
        .query_row("SELECT min(at) FROM telemetry", [], |r| r.get(0))
        .context(doing)?;
    Ok(oldest.map(|at| bucket_start(at, MINUTE_MS)))
}

/// Step 2: writes the minute buckets; returns how many.
pub(super) fn store_minutes(db: &mut Db, buckets: &Buckets) -> StoreResult<u64> {
    let doing = "writing minute roll-ups";
    let tx = db
        .connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(doing)?;
    write_buckets(&tx, UPSERT_MINUTE, buckets, doing)?;
    tx.commit().context(doing)?;
    Ok(buckets.len() as u64)
}

/// Step 3: the hour buckets of the hours from `from`'s to `now` (from the minutes stored).
pub(super) fn hour_buckets(
    connection: &Connection,
    from: i64,
    now: Timestamp,
) -> StoreResult<Buckets> {
    read_buckets(
        connection,
        HOUR_BUCKETS,
        named_params! { ":from": bucket_start(from, HOUR_MS), ":to": now.millis() },
    )
}

/// What step 4 writes: the pass's start and its hour buckets (`None`: nothing stored yet).
pub(super) struct HourRollUp {
    pub(super) from: i64,
    pub(super) buckets: Buckets,
}

/// Step 4, one transaction: writes the hours, moves the watermark and deletes what
/// `retention` no longer keeps; the dedup keys of expired days are forgotten once it committed.
pub(super) fn finish_pass(
    db: &mut Db,
    now: Timestamp,
    retention: Retention,
    hours: Option<HourRollUp>,
    report: &mut MaintenanceReport,
) -> StoreResult<()> {
    let doing = "maintaining (roll-ups, retention)";
    let Db {
        connection,
        keys,
        pending,
        ..
    } = db;
    let tx = begin(connection, keys, pending, doing)?;
    // Retention deletes rows: the copies are flushed first and the watermark is moved after
    // the deletes, in this transaction (`pending.rs`: rowids only grow).
    write_copies(&tx, &keys.keys, pending)?;
    let mut watermark = None;
    if let Some(hours) = hours {
        write_buckets(&tx, UPSERT_HOUR, &hours.buckets, doing)?;
        report.hour_buckets = hours.buckets.len() as u64;
        let next = next_minute_watermark(now, Some(hours.from));
        tx.execute(
            "INSERT INTO maintenance (id, minute_from) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET minute_from = excluded.minute_from",
            [next],
        )
        .context(doing)?;
        watermark = Some(next);
    }
    let forget_before = delete_expired(&tx, now, retention, watermark, report)?;
    set_flushed_through(&tx)?;
    tx.commit().context(doing)?;
    keys.keys.flushed();
    pending.clear();
    db.flushed_at = std::time::Instant::now();
    db.keys.keys.forget_before(forget_before);
    Ok(())
}

/// Every row of `sql` (roll-up buckets) as values.
fn read_buckets(
    connection: &Connection,
    sql: &str,
    params: &[(&str, &dyn rusqlite::ToSql)],
) -> StoreResult<Buckets> {
    let doing = "rolling up telemetry";
    let mut statement = connection.prepare_cached(sql).context(doing)?;
    let width = statement.column_count();
    let mut rows = statement.query(params).context(doing)?;
    let mut buckets = Buckets::new();
    while let Some(row) = rows.next().context(doing)? {
        let values = (0..width)
            .map(|i| row.get::<_, rusqlite::types::Value>(i))
            .collect::<Result<Vec<_>, _>>()
            .context(doing)?;
        buckets.push(values);
    }
    Ok(buckets)
}

fn write_buckets(
    tx: &rusqlite::Transaction<'_>,
    upsert: &str,
    buckets: &Buckets,
    doing: &str,
) -> StoreResult<()> {
    let mut statement = tx.prepare_cached(upsert).context(doing)?;
    for bucket in buckets {
        statement
            .execute(rusqlite::params_from_iter(bucket.iter()))
            .context(doing)?;
    }
    Ok(())
}

/// Deletes what `retention` no longer keeps; raw rows not rolled up yet are kept. The dedup
/// keys go a whole day at a time, with the last of that day's rows: returns the first day
/// whose keys are kept.
fn delete_expired(
    tx: &rusqlite::Transaction<'_>,
    now: Timestamp,
    retention: Retention,
    watermark: Option<i64>,
    report: &mut MaintenanceReport,
) -> StoreResult<i64> {
    let doing = "deleting expired telemetry";
    let raw_cutoff = now
        .minus(retention.raw)
        .millis()
        .min(watermark.unwrap_or(i64::MIN));
    report.raw_deleted = tx
        .execute("DELETE FROM telemetry WHERE at < ?1", [raw_cutoff])
        .context(doing)? as u64;
    let keep_from = day_of(raw_cutoff);
    keys::delete_before(tx, keep_from)?;
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
    Ok(keep_from)
}

#[cfg(test)]
mod flush_tests;

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::store::sqlite::schema;

    const DAY: i64 = 86_400_000;
    /// 2023-11-14 22:00 UTC.
    const BASE: i64 = 1_699_999_200_000;

    /// A 2-cell row of `terminal` (the SQLite store's tests share it).
    pub(in crate::store::sqlite) fn row(terminal: u32, record: u32, at: i64) -> TelemetryRow {
        TelemetryRow {
            terminal: Terminal(terminal),
            at: Timestamp(at),
            record,
            voltage_mv: 52_000,
            current_ma: -1_500,
            soc: 80,
            temperatures: [Some(25), None, None],
            cells_mv: vec![3_300, 3_310],
            warnings: 0,
            status: 0,
            raw: vec![0x4E, 0x57],
        }
    }

    fn index_names(connection: &Connection) -> Vec<String> {
        let mut statement = connection
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'telemetry' ORDER BY name")
            .unwrap();
        let names = statement.query_map([], |r| r.get(0)).unwrap();
        names.collect::<Result<_, _>>().unwrap()
    }

    /// A database as version 2 left it, with rows of terminal 5: records 1..=3 and 5 on one
    /// day, 6 on the next.
    fn version_2_database() -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        schema::migrate_to(&connection, 2).unwrap();
        for (record, at) in [
            (1, BASE),
            (2, BASE + 1),
            (3, BASE + 2),
            (5, BASE + 3),
            (6, BASE + DAY),
        ] {
            connection
                .execute(
                    "INSERT INTO telemetry (terminal, record, at, voltage_mv, current_ma, soc, cells, warnings, status, raw)
                     VALUES (5, ?1, ?2, 52000, 0, 80, x'', 0, 0, x'')",
                    (record, at),
                )
                .unwrap();
        }
        connection
    }

    #[test]
    fn version_2_databases_keep_their_dedup_keys() {
        let mut connection = version_2_database();
        assert!(index_names(&connection).contains(&"telemetry_key".to_string()));
        schema::migrate(&mut connection).unwrap();
        assert_eq!(
            index_names(&connection),
            vec!["telemetry_by_slot", "telemetry_by_time"],
            "no index keyed by terminal is left"
        );
        let runs: Vec<(i64, i64, i64, i64)> = connection
            .prepare("SELECT terminal, first, last, day FROM telemetry_keys ORDER BY first")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let day = BASE.div_euclid(DAY);
        assert_eq!(
            runs,
            vec![(5, 1, 3, day), (5, 5, 5, day), (5, 6, 6, day + 1)]
        );

        let mut db = Db::open(connection).unwrap();
        let batch = vec![
            row(5, 2, BASE + 10),
            row(5, 4, BASE + 11),
            row(5, 6, BASE + 12),
        ];
        let reports = insert(&mut db, vec![batch]).unwrap();
        assert_eq!((reports[0].inserted, reports[0].duplicates), (1, 2));
        let points = history(
            &db.connection,
            Terminal(5),
            Timestamp(BASE),
            Timestamp(BASE + 2 * DAY),
            Resolution::Raw,
        )
        .unwrap();
        let times: Vec<i64> = points.iter().map(|p| p.at.millis() - BASE).collect();
        assert_eq!(times, vec![0, 1, 2, 3, 11, DAY]);
    }

    #[test]
    fn raw_history_looks_up_indexes_and_scans_nothing() {
        let mut connection = Connection::open_in_memory().unwrap();
        schema::migrate(&mut connection).unwrap();
        let plan: Vec<String> = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {RAW_HISTORY_SLOT}"))
            .unwrap()
            .query_map((1, 0, 1, 0), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(
                |step| step.contains("USING INDEX telemetry_by_slot (<expr>=? AND terminal=?)")
            ),
            "{plan:?}"
        );
        let span: Vec<String> = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {TIME_SPAN}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            span.iter().all(|step| !step.starts_with("SCAN telemetry")),
            "min and max are look-ups, not scans: {span:?}"
        );
    }

    #[test]
    fn roll_up_history_looks_up_each_bucket_and_scans_nothing() {
        let mut connection = Connection::open_in_memory().unwrap();
        schema::migrate(&mut connection).unwrap();
        for table in [&MINUTE_TABLE, &HOUR_TABLE] {
            let plan: Vec<String> = connection
                .prepare(&format!("EXPLAIN QUERY PLAN {}", table.lookup))
                .unwrap()
                .query_map((1, 0, 1, table.width), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter()
                    .any(|step| step.contains("USING PRIMARY KEY (bucket=? AND terminal=?)")),
                "{plan:?}"
            );
            assert!(
                plan.iter()
                    .all(|step| step != "SCAN r" && !step.starts_with("SCAN r ")),
                "the roll-up table is never scanned: {plan:?}"
            );
        }
    }

    #[test]
    fn roll_up_history_reads_whole_buckets_in_the_range() {
        let mut connection = Connection::open_in_memory().unwrap();
        schema::migrate(&mut connection).unwrap();
        for (terminal, minute) in [(1, 0), (1, 1), (2, 1), (1, 3), (1, 60)] {
            connection
                .execute(
                    "INSERT INTO rollup_minute (terminal, bucket, samples, voltage_sum, current_sum, power_sum, soc_sum, charged_wh, discharged_wh)
                     VALUES (?1, ?2, 1, 52000, 0, 0, 80, 0, 0)",
                    (terminal, BASE + minute * MINUTE_MS),
                )
                .unwrap();
        }
        let read = |from: i64, to: i64| -> Vec<i64> {
            history(
                &connection,
                Terminal(1),
                Timestamp(BASE + from),
                Timestamp(BASE + to),
                Resolution::Minute,
            )
            .unwrap()
            .iter()
            .map(|p| (p.at.millis() - BASE) / MINUTE_MS)
            .collect()
        };
        assert_eq!(read(0, 61 * MINUTE_MS), vec![0, 1, 3, 60]);
        assert_eq!(
            read(1, 60 * MINUTE_MS),
            vec![1, 3],
            "buckets starting in the range"
        );
        assert_eq!(
            read(i64::MIN / 2, i64::MAX / 2),
            vec![0, 1, 3, 60],
            "narrowed"
        );
        assert!(read(61 * MINUTE_MS, 100 * MINUTE_MS).is_empty());
        assert!(history(
            &connection,
            Terminal(1),
            Timestamp(0),
            Timestamp(1),
            Resolution::Hour
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn history_spans_slots_in_order_and_ignores_other_terminals() {
        let mut connection = Connection::open_in_memory().unwrap();
        schema::migrate(&mut connection).unwrap();
        let mut db = Db::open(connection).unwrap();
        // Out of order, over several slots, and the same time twice (ordered by record).
        let rows = vec![
            row(1, 4, BASE + 35_000),
            row(1, 1, BASE - 5_000),
            row(2, 1, BASE + 1_000),
            row(1, 3, BASE + 9_999),
            row(1, 2, BASE + 9_999),
            row(1, 5, BASE + 10_000),
        ];
        insert(&mut db, vec![rows]).unwrap();
        let read = |from: i64, to: i64| -> Vec<i64> {
            history(
                &db.connection,
                Terminal(1),
                Timestamp(BASE + from),
                Timestamp(BASE + to),
                Resolution::Raw,
            )
            .unwrap()
            .iter()
            .map(|p| p.at.millis() - BASE)
            .collect()
        };
        assert_eq!(read(-DAY, DAY), vec![-5_000, 9_999, 9_999, 10_000, 35_000]);
        assert_eq!(read(9_999, 35_000), vec![9_999, 9_999, 10_000]);
        assert_eq!(
            read(i64::MIN / 2, i64::MAX / 2).len(),
            5,
            "open ranges are narrowed"
        );
        assert!(read(40_000, 50_000).is_empty());
        assert!(read(10, 10).is_empty());
    }
}
