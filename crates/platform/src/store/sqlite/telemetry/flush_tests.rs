//! The per-terminal copies written by flushes (`pending.rs`): what a process that stopped
//! without flushing (a crash) leaves is replayed at the next open, and retention, which
//! deletes rows, keeps the watermark true.

use std::path::Path;

use rusqlite::Connection;

use super::tests::row;
use super::*;
use crate::store::sqlite::{open_connection, schema};

/// 2023-11-14 22:00 UTC.
const NOW: i64 = 1_699_999_200_000;
const DAY: i64 = 86_400_000;

/// The writer's state on a fresh connection to `path`, as a (re)started process opens it.
fn open(path: &Path) -> Db {
    let mut connection = open_connection(path, false).unwrap();
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .unwrap();
    schema::migrate(&mut connection).unwrap();
    Db::open(connection).unwrap()
}

fn count(connection: &Connection, sql: &str) -> i64 {
    connection.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn pending_record(db: &Db, terminal: u32) -> Option<u32> {
    db.pending
        .of(Terminal(terminal))
        .latest(Terminal(terminal), None)
        .map(|r| r.record)
}

#[test]
fn rows_not_flushed_before_a_crash_are_replayed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.sqlite");
    let mut crashed = open(&path);
    let rows = vec![
        row(1, 1, NOW),
        row(1, 2, NOW + 1_000),
        row(2, 1, NOW),
        row(1, 3, NOW + 2_000),
    ];
    let reports = insert(&mut crashed, vec![rows]).unwrap();
    assert_eq!(reports[0].inserted, 4);
    assert_eq!(pending_record(&crashed, 1), Some(3));
    assert_eq!(
        count(&crashed.connection, "SELECT count(*) FROM latest"),
        0,
        "not flushed"
    );
    assert_eq!(
        count(&crashed.connection, "SELECT count(*) FROM terminals"),
        2,
        "new terminals are created with their rows"
    );
    drop(crashed); // no flush: as if the process died

    let mut restarted = open(&path);
    assert_eq!(pending_record(&restarted, 1), Some(3), "replayed");
    assert_eq!(pending_record(&restarted, 2), Some(1));
    let again = insert(
        &mut restarted,
        vec![vec![row(1, 2, NOW + 1_000), row(1, 4, NOW + 3_000)]],
    )
    .unwrap();
    assert_eq!(
        (again[0].inserted, again[0].duplicates),
        (1, 1),
        "the replayed keys dedup the resent record"
    );
    flush(&mut restarted).unwrap();
    assert!(restarted.pending.is_empty() && !restarted.keys.keys.has_unflushed());
    let latest: Vec<(i64, i64)> = restarted
        .connection
        .prepare("SELECT terminal, record FROM latest ORDER BY terminal")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(latest, vec![(1, 4), (2, 1)]);
    assert_eq!(
        count(
            &restarted.connection,
            "SELECT last_seen FROM terminals WHERE id = 1"
        ),
        NOW + 3_000
    );
    assert_eq!(
        count(
            &restarted.connection,
            "SELECT through_rowid FROM telemetry_flushed"
        ),
        count(&restarted.connection, "SELECT max(rowid) FROM telemetry")
    );
    drop(restarted);

    let reopened = open(&path);
    assert!(
        reopened.pending.is_empty(),
        "everything was flushed: nothing to replay"
    );
    assert!(reopened.keys.keys.contains(1, 4) && reopened.keys.keys.contains(2, 1));
}

/// Retention may delete the row with the highest rowid (a backlog row with an old receive
/// time, stored last); SQLite then gives the next row that rowid again. The watermark is
/// written after the deletes, so that row is still replayed after a crash.
#[test]
fn a_rowid_freed_by_retention_is_still_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.sqlite");
    let mut db = open(&path);
    insert(&mut db, vec![vec![row(1, 1, NOW - 120_000)]]).unwrap();
    insert(&mut db, vec![vec![row(1, 2, NOW - 40 * DAY)]]).unwrap();
    let old_rowid = count(&db.connection, "SELECT max(rowid) FROM telemetry");

    let now = Timestamp(NOW);
    let minutes = minute_buckets(&db.connection, now).unwrap().unwrap();
    store_minutes(&mut db, &minutes.buckets).unwrap();
    let hours = HourRollUp {
        from: minutes.from,
        buckets: hour_buckets(&db.connection, minutes.from, now).unwrap(),
    };
    let mut report = MaintenanceReport::default();
    finish_pass(&mut db, now, Retention::default(), Some(hours), &mut report).unwrap();
    assert_eq!(report.raw_deleted, 1, "the 40-day-old row");
    assert!(db.pending.is_empty(), "retention flushes");

    insert(&mut db, vec![vec![row(1, 3, NOW)]]).unwrap();
    assert_eq!(
        count(
            &db.connection,
            "SELECT rowid FROM telemetry WHERE record = 3"
        ),
        old_rowid,
        "SQLite reuses the freed rowid"
    );
    drop(db); // crash before the next flush

    let restarted = open(&path);
    assert_eq!(pending_record(&restarted, 1), Some(3));
    assert!(restarted.keys.keys.contains(1, 3));
}

#[test]
fn the_upgrade_to_version_4_counts_every_row_as_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.sqlite");
    {
        let connection = open_connection(&path, false).unwrap();
        schema::migrate_to(&connection, 3).unwrap();
        connection
            .execute(
                "INSERT INTO rollup_minute (terminal, bucket, samples, voltage_sum, current_sum, power_sum, soc_sum, charged_wh, discharged_wh, last_at, last_power)
                 VALUES (5, ?1, 3, 156000, 0, 0, 240, 0.5, 0, ?2, 1.5)",
                (NOW, NOW + 3),
            )
            .unwrap();
        for record in 1..=3 {
            connection
                .execute(
                    "INSERT INTO telemetry (terminal, record, at, voltage_mv, current_ma, soc, cells, warnings, status, raw)
                     VALUES (5, ?1, ?2, 52000, 0, 80, x'', 0, 0, x'')",
                    (record, NOW + record),
                )
                .unwrap();
        }
    }
    let db = open(&path);
    assert_eq!(
        count(
            &db.connection,
            "SELECT through_rowid FROM telemetry_flushed"
        ),
        3
    );
    assert!(
        db.pending.is_empty(),
        "version 3 kept latest with every insert"
    );
    let minutes = history(
        &db.connection,
        Terminal(5),
        Timestamp(NOW),
        Timestamp(NOW + DAY),
        Resolution::Minute,
    )
    .unwrap();
    assert_eq!(minutes.len(), 1, "the roll-ups moved to their new key");
    assert_eq!((minutes[0].samples, minutes[0].charged_wh), (3, 0.5));
    assert_eq!(
        count(&db.connection, "SELECT last_at FROM rollup_minute"),
        NOW + 3
    );
}
