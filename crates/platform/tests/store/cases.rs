//! The store suite, written once against the `Store` trait: every backend runs every case on a
//! fresh, empty database. `Fixture::peer` is a second handle on the same database: another
//! process for PostgreSQL (its own connections and LISTEN), a clone for SQLite.

use std::time::Duration;

use bmslink_platform::model::{
    AlarmKind, AuditEntry, CommandRequest, CommandState, ConnectionOwner, Credential, HistoryPoint,
    ProcessId, Registration, Resolution, Role, TelemetryRow, Terminal, Timestamp,
};
use bmslink_platform::store::{
    AlarmFilter, CommandNotice, InsertReport, Retention, Store, StoreError, SweepReport,
};

/// A store under test and a second handle on its database.
pub struct Fixture<S> {
    pub store: S,
    pub peer: S,
}

/// An hour boundary (2023-11-14 22:00 UTC).
pub const BASE: i64 = 1_699_999_200_000;
const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn at(offset_ms: i64) -> Timestamp {
    Timestamp(BASE + offset_ms)
}

/// Connection `connection` of process `process`.
fn owner(process: i64, connection: u64) -> ConnectionOwner {
    ConnectionOwner {
        process: ProcessId(process),
        connection,
    }
}

/// A 16-cell row.
pub fn row(terminal: u32, record: u32, at_ms: i64) -> TelemetryRow {
    TelemetryRow {
        terminal: Terminal(terminal),
        at: Timestamp(at_ms),
        record,
        voltage_mv: 52_000,
        current_ma: -1_500,
        soc: 80,
        temperatures: [Some(25), Some(24), None],
        cells_mv: (0..16).map(|i| 3_250 + i).collect(),
        warnings: 0x0004,
        status: 0x0300,
        raw: vec![0x4E, 0x57, 0x00, 0x13, record.to_be_bytes()[3], 0x68],
    }
}

#[allow(clippy::too_many_arguments)]
fn measured(
    record: u32,
    offset_ms: i64,
    voltage_mv: u32,
    current_ma: i32,
    soc: u8,
    temperatures: [Option<i16>; 3],
    cells_mv: Vec<u16>,
) -> TelemetryRow {
    TelemetryRow {
        voltage_mv,
        current_ma,
        soc,
        temperatures,
        cells_mv,
        ..row(1, record, BASE + offset_ms)
    }
}

/// The hand-made series of the roll-up cases: two rows in minute 0 (charging), two in
/// minute 1 (discharging), 30 s apart.
fn series() -> Vec<TelemetryRow> {
    vec![
        measured(
            1,
            0,
            50_000,
            10_000,
            50,
            [Some(20), Some(25), None],
            vec![3300, 3310],
        ),
        measured(
            2,
            30 * SECOND,
            52_000,
            10_000,
            52,
            [Some(21), Some(26), Some(30)],
            vec![3290, 3320],
        ),
        measured(
            3,
            60 * SECOND,
            50_000,
            -20_000,
            51,
            [Some(22), Some(24), Some(19)],
            vec![3280, 3300],
        ),
        measured(
            4,
            90 * SECOND,
            48_000,
            -20_000,
            49,
            [None, None, None],
            vec![3270, 3290],
        ),
    ]
}

fn close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: {actual} != {expected}"
    );
}

#[allow(clippy::too_many_arguments)]
fn check_point(
    point: &HistoryPoint,
    samples: u32,
    means: [f64; 4],
    temperatures: (i16, i16),
    cells: (u16, u16),
    energy: (f64, f64),
) {
    assert_eq!(point.samples, samples, "samples of {point:?}");
    close(point.voltage_mv, means[0], "mean voltage");
    close(point.current_ma, means[1], "mean current");
    close(point.power_w, means[2], "mean power");
    close(point.soc, means[3], "mean soc");
    assert_eq!(
        (point.temperature_min, point.temperature_max),
        (Some(temperatures.0), Some(temperatures.1))
    );
    assert_eq!(
        (point.cell_min_mv, point.cell_max_mv),
        (Some(cells.0), Some(cells.1))
    );
    close(point.charged_wh, energy.0, "charged Wh");
    close(point.discharged_wh, energy.1, "discharged Wh");
}

pub async fn insert_and_dedup<S: Store>(f: &Fixture<S>) {
    let rows = vec![row(7, 1, BASE), row(7, 2, BASE + SECOND), row(8, 1, BASE)];
    let report = f.store.insert_telemetry(rows).await.unwrap();
    assert_eq!(
        report,
        InsertReport {
            inserted: 3,
            duplicates: 0
        }
    );
    // Record 2 again (a retransmission after a lost acknowledgement), later, and record 3,
    // plus a duplicate within the batch.
    let again = vec![
        row(7, 2, BASE + 5 * SECOND),
        row(7, 3, BASE + 6 * SECOND),
        row(7, 3, BASE + 6 * SECOND),
    ];
    let report = f.store.insert_telemetry(again).await.unwrap();
    assert_eq!(
        report,
        InsertReport {
            inserted: 1,
            duplicates: 2
        }
    );
    let raw = f
        .store
        .history(Terminal(7), at(0), at(HOUR), Resolution::Raw)
        .await
        .unwrap();
    let times: Vec<i64> = raw.iter().map(|p| p.at.millis() - BASE).collect();
    assert_eq!(
        times,
        vec![0, SECOND, 6 * SECOND],
        "the first copy of record 2 is kept"
    );
    let empty = f.store.insert_telemetry(Vec::new()).await.unwrap();
    assert_eq!(empty, InsertReport::default());
}

/// Dedup is exact: a record below the newest that was never stored (its batch refused, sent
/// again later) is stored; only the records stored are duplicates, seen from every handle.
pub async fn dedup_stores_a_gap_below_the_newest<S: Store>(f: &Fixture<S>) {
    let rows = vec![
        row(3, 1, BASE),
        row(3, 2, BASE + SECOND),
        row(3, 4, BASE + 3 * SECOND),
    ];
    f.store.insert_telemetry(rows).await.unwrap();
    let resent = vec![row(3, 3, BASE + 5 * SECOND), row(3, 4, BASE + 5 * SECOND)];
    let report = f.store.insert_telemetry(resent).await.unwrap();
    assert_eq!(
        report,
        InsertReport {
            inserted: 1,
            duplicates: 1
        }
    );
    let more = vec![
        row(3, 3, BASE + 6 * SECOND),
        row(3, 1, BASE + 6 * SECOND),
        row(3, 5, BASE + 6 * SECOND),
    ];
    let report = f.peer.insert_telemetry(more).await.unwrap();
    assert_eq!(
        report,
        InsertReport {
            inserted: 1,
            duplicates: 2
        }
    );
    let raw = f
        .store
        .history(Terminal(3), at(0), at(HOUR), Resolution::Raw)
        .await
        .unwrap();
    let times: Vec<i64> = raw
        .iter()
        .map(|p| (p.at.millis() - BASE) / SECOND)
        .collect();
    assert_eq!(times, vec![0, 1, 3, 5, 6]);
}

/// The dedup keys of the days raw retention dropped go with them: such a record is stored
/// again (a very late backlog, a record counter that wrapped); later days' keys stay.
pub async fn dedup_keys_expire_with_their_day<S: Store>(f: &Fixture<S>) {
    // BASE is the 14th, 22:00 UTC; the second row is on the 17th, 01:00.
    let rows = vec![row(4, 1, BASE), row(4, 2, BASE + 2 * DAY + 3 * HOUR)];
    f.store.insert_telemetry(rows).await.unwrap();
    let retention = Retention {
        raw: Duration::from_secs(86_400),
        ..Retention::default()
    };
    f.store.maintain(at(3 * DAY), retention).await.unwrap();
    let again = vec![row(4, 1, BASE + 3 * DAY), row(4, 2, BASE + 3 * DAY)];
    let report = f.store.insert_telemetry(again).await.unwrap();
    assert_eq!(
        report,
        InsertReport {
            inserted: 1,
            duplicates: 1
        }
    );
}

pub async fn latest_row<S: Store>(f: &Fixture<S>) {
    assert_eq!(f.store.latest(Terminal(7)).await.unwrap(), None);
    let newest = row(7, 9, BASE + 9 * SECOND);
    f.store
        .insert_telemetry(vec![row(7, 8, BASE + 8 * SECOND), newest.clone()])
        .await
        .unwrap();
    // An older row arriving later (a backlog) does not replace the latest.
    f.store
        .insert_telemetry(vec![row(7, 1, BASE)])
        .await
        .unwrap();
    assert_eq!(
        f.store.latest(Terminal(7)).await.unwrap(),
        Some(newest.clone())
    );
    assert_eq!(f.peer.latest(Terminal(7)).await.unwrap(), Some(newest));
    let terminal = f.store.terminal(Terminal(7)).await.unwrap().unwrap();
    assert_eq!(terminal.last_seen, at(9 * SECOND));
}

pub async fn fleet_lists_latest_and_active_alarms<S: Store>(f: &Fixture<S>) {
    f.store
        .terminal_connected(Terminal(1), owner(1, 1), at(0), true)
        .await
        .unwrap();
    f.store
        .terminal_connected(Terminal(2), owner(1, 2), at(0), false)
        .await
        .unwrap();
    let latest = row(1, 5, BASE + SECOND);
    f.store
        .insert_telemetry(vec![row(1, 4, BASE), latest.clone()])
        .await
        .unwrap();
    f.store
        .raise_alarm(Terminal(1), AlarmKind::SocLow, "soc 4 %".into(), at(0))
        .await
        .unwrap();
    f.store
        .raise_alarm(Terminal(1), AlarmKind::Offline, "late".into(), at(0))
        .await
        .unwrap();
    f.store
        .raise_alarm(Terminal(1), AlarmKind::CellSpread, "x".into(), at(0))
        .await
        .unwrap();
    f.store
        .clear_alarm(Terminal(1), AlarmKind::CellSpread, at(1))
        .await
        .unwrap();
    let fleet = f.store.fleet().await.unwrap();
    assert_eq!(fleet.len(), 2);
    assert_eq!(fleet[0].record.terminal, Terminal(1));
    assert_eq!(fleet[0].latest, Some(latest));
    assert_eq!(fleet[0].active_alarms, 2);
    assert_eq!(fleet[1].record.terminal, Terminal(2));
    assert_eq!(fleet[1].record.registration, Registration::Pending);
    assert_eq!(fleet[1].latest, None);
    assert_eq!(fleet[1].active_alarms, 0);
}

pub async fn raw_history<S: Store>(f: &Fixture<S>) {
    f.store.insert_telemetry(series()).await.unwrap();
    f.store
        .insert_telemetry(vec![row(2, 1, BASE)])
        .await
        .unwrap();
    let points = f
        .store
        .history(
            Terminal(1),
            at(30 * SECOND),
            at(90 * SECOND),
            Resolution::Raw,
        )
        .await
        .unwrap();
    assert_eq!(points.len(), 2, "[from, to): the row at `to` is out");
    let p = &points[0];
    assert_eq!((p.at, p.samples), (at(30 * SECOND), 1));
    close(p.voltage_mv, 52_000.0, "voltage");
    close(p.current_ma, 10_000.0, "current");
    close(p.power_w, 520.0, "power");
    close(p.soc, 52.0, "soc");
    assert_eq!((p.temperature_min, p.temperature_max), (Some(21), Some(30)));
    assert_eq!((p.cell_min_mv, p.cell_max_mv), (Some(3290), Some(3320)));
    assert_eq!(points[1].temperature_min, Some(19));
    let last = f
        .store
        .history(Terminal(1), at(90 * SECOND), at(HOUR), Resolution::Raw)
        .await
        .unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].temperature_max, None, "no temperature reported");
    assert_eq!(last[0].cell_max_mv, Some(3290));
}

pub async fn maintain_rolls_up_minutes_and_hours<S: Store>(f: &Fixture<S>) {
    let rows = series();
    // First pass while minute 0 is open (only its two rows are in).
    f.store.insert_telemetry(rows[..2].to_vec()).await.unwrap();
    let report = f
        .store
        .maintain(at(45 * SECOND), Retention::default())
        .await
        .unwrap();
    assert_eq!(report.minute_buckets, 1);
    f.store.insert_telemetry(rows[2..].to_vec()).await.unwrap();
    let report = f
        .store
        .maintain(at(2 * HOUR), Retention::default())
        .await
        .unwrap();
    assert!(report.minute_buckets >= 2, "{report:?}");
    assert_eq!(report.raw_deleted, 0);

    let minutes = f
        .store
        .history(Terminal(1), at(0), at(HOUR), Resolution::Minute)
        .await
        .unwrap();
    assert_eq!(minutes.len(), 2, "{minutes:?}");
    assert_eq!(minutes[0].at, at(0));
    assert_eq!(minutes[1].at, at(MINUTE));
    // Minute 0: 500 W then 520 W, 30 s apart: (500 + 520) / 2 W * 30 s = 4.25 Wh charged.
    check_point(
        &minutes[0],
        2,
        [51_000.0, 10_000.0, 510.0, 51.0],
        (20, 30),
        (3290, 3320),
        (4.25, 0.0),
    );
    // Minute 1: 520 W -> -1000 W (charged 260 W * 30 s, discharged 500 W * 30 s), then
    // -1000 W -> -960 W (discharged 980 W * 30 s).
    let charged = 260.0 * 30.0 / 3600.0;
    let discharged = (500.0 + 980.0) * 30.0 / 3600.0;
    check_point(
        &minutes[1],
        2,
        [49_000.0, -20_000.0, -980.0, 50.0],
        (19, 24),
        (3270, 3300),
        (charged, discharged),
    );

    let hours = f
        .store
        .history(Terminal(1), at(0), at(2 * HOUR), Resolution::Hour)
        .await
        .unwrap();
    assert_eq!(hours.len(), 1, "{hours:?}");
    assert_eq!(hours[0].at, at(0));
    check_point(
        &hours[0],
        4,
        [50_000.0, -5_000.0, -235.0, 50.5],
        (19, 30),
        (3270, 3320),
        (4.25 + charged, discharged),
    );

    // A pass with nothing new changes nothing.
    f.store
        .maintain(at(2 * HOUR + MINUTE), Retention::default())
        .await
        .unwrap();
    let again = f
        .store
        .history(Terminal(1), at(0), at(HOUR), Resolution::Minute)
        .await
        .unwrap();
    assert_eq!(again, minutes);
}

/// Energy between a terminal's rows counts across maintenance passes: a pass finds the
/// predecessor of its first row in what earlier passes rolled up (the nearest one, and none
/// beyond the integration gap of 5 minutes).
pub async fn energy_spans_maintenance_passes<S: Store>(f: &Fixture<S>) {
    // Every `row` draws 52 V x -1.5 A = 78 W of discharge.
    let watts = 78.0;
    let rows = vec![row(1, 1, BASE), row(1, 2, BASE + 30 * SECOND)];
    f.store.insert_telemetry(rows).await.unwrap();
    f.store
        .maintain(at(3 * MINUTE), Retention::default())
        .await
        .unwrap();
    let later = vec![row(1, 3, BASE + 2 * MINUTE + 10 * SECOND)];
    f.store.insert_telemetry(later).await.unwrap();
    f.store
        .maintain(at(4 * MINUTE), Retention::default())
        .await
        .unwrap();
    let last = vec![row(1, 4, BASE + 6 * MINUTE)];
    f.store.insert_telemetry(last).await.unwrap();
    f.store
        .maintain(at(7 * MINUTE), Retention::default())
        .await
        .unwrap();
    let minutes = f
        .store
        .history(Terminal(1), at(0), at(HOUR), Resolution::Minute)
        .await
        .unwrap();
    let buckets: Vec<(i64, u32)> = minutes
        .iter()
        .map(|p| ((p.at.millis() - BASE) / MINUTE, p.samples))
        .collect();
    assert_eq!(buckets, vec![(0, 2), (2, 1), (6, 1)]);
    // Seconds since each bucket's previous row: 30 (within minute 0), 100 (from 0:30, two
    // passes ago), 230 (from 2:10, not 0:30, which is 330 s away, beyond the gap).
    for (point, seconds) in minutes.iter().zip([30.0, 100.0, 230.0]) {
        close(
            point.discharged_wh,
            watts * seconds / 3600.0,
            "discharged Wh",
        );
        close(point.charged_wh, 0.0, "charged Wh");
    }
}

pub async fn retention_deletes_raw_but_rollups_answer<S: Store>(f: &Fixture<S>) {
    f.store.insert_telemetry(series()).await.unwrap();
    f.store
        .maintain(at(2 * HOUR), Retention::default())
        .await
        .unwrap();
    let retention = Retention {
        raw: Duration::from_secs(86_400),
        minute: Duration::from_secs(30 * 86_400),
        hour: Some(Duration::from_secs(365 * 86_400)),
    };
    let report = f.store.maintain(at(10 * DAY), retention).await.unwrap();
    assert_eq!(report.raw_deleted, 4, "{report:?}");
    let raw = f
        .store
        .history(Terminal(1), at(0), at(HOUR), Resolution::Raw)
        .await
        .unwrap();
    assert!(raw.is_empty());
    let minutes = f
        .store
        .history(Terminal(1), at(0), at(HOUR), Resolution::Minute)
        .await
        .unwrap();
    assert_eq!(minutes.len(), 2);
    assert_eq!(minutes[0].samples + minutes[1].samples, 4);
    // The latest row outlives raw retention (the fleet list shows it).
    assert_eq!(
        f.store.latest(Terminal(1)).await.unwrap().map(|r| r.record),
        Some(4)
    );
    // Minutes expire after their own retention; hours stay.
    let report = f.store.maintain(at(40 * DAY), retention).await.unwrap();
    assert_eq!(report.rollups_deleted, 2, "{report:?}");
    let hours = f
        .store
        .history(Terminal(1), at(0), at(HOUR), Resolution::Hour)
        .await
        .unwrap();
    assert_eq!(hours.len(), 1);
}

pub async fn terminals_connect_register_and_name<S: Store>(f: &Fixture<S>) {
    let t = Terminal(0x0003E8);
    let record = f
        .store
        .terminal_connected(t, owner(1, 1), at(0), false)
        .await
        .unwrap();
    assert_eq!(record.registration, Registration::Pending);
    assert!(record.online);
    assert_eq!(record.owner, Some(owner(1, 1)));
    assert_eq!((record.first_seen, record.last_seen), (at(0), at(0)));
    let gone = f
        .store
        .terminal_disconnected(t, owner(1, 1), at(SECOND))
        .await
        .unwrap();
    assert!(gone);
    let record = f.store.terminal(t).await.unwrap().unwrap();
    assert!(!record.online);
    assert_eq!(record.owner, None);
    f.store
        .set_registration(t, Registration::Approved)
        .await
        .unwrap();
    f.store
        .set_terminal_name(t, Some("rack 1".into()))
        .await
        .unwrap();
    // Reconnecting keeps the registration and first_seen.
    let record = f
        .store
        .terminal_connected(t, owner(1, 2), at(MINUTE), false)
        .await
        .unwrap();
    assert_eq!(record.registration, Registration::Approved);
    assert_eq!(record.name.as_deref(), Some("rack 1"));
    assert_eq!((record.first_seen, record.last_seen), (at(0), at(MINUTE)));
    assert!(record.online);
    f.store.set_terminal_name(t, None).await.unwrap();
    assert_eq!(f.store.terminal(t).await.unwrap().unwrap().name, None);
    assert_eq!(f.store.terminal(Terminal(9)).await.unwrap(), None);
    let unknown = f
        .store
        .set_registration(Terminal(9), Registration::Rejected)
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    let unknown = f.store.set_terminal_name(Terminal(9), None).await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
}

/// Two processes (here `store` is process 1 and `peer` process 2): a box that reconnected to
/// process 2 while its old connection in process 1 was still open stays online when that old
/// connection ends; only the connection holding a terminal takes it offline.
pub async fn a_stale_disconnect_leaves_the_terminal_online<S: Store>(f: &Fixture<S>) {
    let t = Terminal(0x0003E8);
    let first = f
        .store
        .terminal_connected(t, owner(1, 7), at(0), true)
        .await
        .unwrap();
    assert_eq!(first.owner, Some(owner(1, 7)));
    // The box moves to process 2 before process 1 notices its connection is gone.
    let moved = f
        .peer
        .terminal_connected(t, owner(2, 3), at(SECOND), true)
        .await
        .unwrap();
    assert!(moved.online);
    assert_eq!(moved.owner, Some(owner(2, 3)));
    assert_eq!(moved.first_seen, at(0));
    let stale = f
        .store
        .terminal_disconnected(t, owner(1, 7), at(2 * SECOND))
        .await
        .unwrap();
    assert!(!stale, "the stale connection's end changes nothing");
    let record = f.store.terminal(t).await.unwrap().unwrap();
    assert!(record.online, "still online through process 2");
    assert_eq!(record.owner, Some(owner(2, 3)));
    // The same connection number in another process is another connection.
    let other = f
        .peer
        .terminal_disconnected(t, owner(1, 3), at(2 * SECOND))
        .await
        .unwrap();
    assert!(!other);
    // Within one process, a newer connection owns too.
    f.peer
        .terminal_connected(t, owner(2, 4), at(3 * SECOND), true)
        .await
        .unwrap();
    let older = f
        .peer
        .terminal_disconnected(t, owner(2, 3), at(4 * SECOND))
        .await
        .unwrap();
    assert!(!older);
    assert!(f.store.terminal(t).await.unwrap().unwrap().online);
    // The holder's end takes it offline, in the fleet list too.
    let holder = f
        .peer
        .terminal_disconnected(t, owner(2, 4), at(5 * SECOND))
        .await
        .unwrap();
    assert!(holder);
    let fleet = f.store.fleet().await.unwrap();
    assert_eq!(fleet.len(), 1);
    assert!(!fleet[0].record.online);
    assert_eq!(fleet[0].record.owner, None);
    assert_eq!(fleet[0].record.last_seen, at(5 * SECOND));
    // Unknown terminals: nothing to do.
    let unknown = f
        .store
        .terminal_disconnected(Terminal(9), owner(1, 7), at(0))
        .await
        .unwrap();
    assert!(!unknown);
}

/// Process 1 crashes (no more heartbeats): after the timeout, a sweep by process 2 marks its
/// terminals offline and forgets it, while process 2's stay online; a process that was only
/// late puts back what it still holds; a clean stop releases a process's terminals.
pub async fn dead_processes_terminals_are_swept<S: Store>(f: &Fixture<S>) {
    const TIMEOUT: i64 = 60 * SECOND;
    let (p1, p2) = (ProcessId(1), ProcessId(2));
    assert_eq!(f.store.process_heartbeat(p1, at(0)).await.unwrap(), 0);
    assert_eq!(f.peer.process_heartbeat(p2, at(0)).await.unwrap(), 0);
    for (terminal, holder) in [(1, owner(1, 1)), (2, owner(1, 2)), (3, owner(2, 1))] {
        f.store
            .terminal_connected(Terminal(terminal), holder, at(SECOND), true)
            .await
            .unwrap();
    }
    // Terminal 4 was held by a process that never registered (a listener without a daemon,
    // or a row from before owners were recorded): no live process holds it.
    f.store
        .terminal_connected(Terminal(4), owner(9, 1), at(SECOND), true)
        .await
        .unwrap();
    f.store
        .terminal_connected(Terminal(5), owner(2, 2), at(SECOND), true)
        .await
        .unwrap();
    f.peer
        .terminal_disconnected(Terminal(5), owner(2, 2), at(2 * SECOND))
        .await
        .unwrap();

    // Within the timeout, process 2's sweep leaves process 1 alone (but not terminal 4).
    f.peer.process_heartbeat(p2, at(30 * SECOND)).await.unwrap();
    let early = f
        .peer
        .sweep_processes(at(30 * SECOND - TIMEOUT))
        .await
        .unwrap();
    assert_eq!(
        early,
        SweepReport {
            processes: 0,
            terminals: 1
        }
    );
    let online = |fleet: Vec<bmslink_platform::model::FleetEntry>| -> Vec<u32> {
        fleet
            .iter()
            .filter(|e| e.record.online)
            .map(|e| e.record.terminal.0)
            .collect()
    };
    assert_eq!(online(f.store.fleet().await.unwrap()), vec![1, 2, 3]);

    // Process 1 stopped beating at 0; at 61 s process 2 (beating) sweeps it.
    f.peer.process_heartbeat(p2, at(61 * SECOND)).await.unwrap();
    let report = f
        .peer
        .sweep_processes(at(61 * SECOND - TIMEOUT))
        .await
        .unwrap();
    assert_eq!(
        report,
        SweepReport {
            processes: 1,
            terminals: 2
        }
    );
    assert_eq!(online(f.peer.fleet().await.unwrap()), vec![3]);
    let swept = f.store.terminal(Terminal(1)).await.unwrap().unwrap();
    assert_eq!(
        swept.owner,
        Some(owner(1, 1)),
        "the holder stays recorded after a sweep"
    );
    let again = f
        .store
        .sweep_processes(at(61 * SECOND - TIMEOUT))
        .await
        .unwrap();
    assert_eq!(
        again,
        SweepReport::default(),
        "sweeping twice changes nothing"
    );

    // Meanwhile terminal 2's box reconnected to process 2.
    f.peer
        .terminal_connected(Terminal(2), owner(2, 5), at(62 * SECOND), true)
        .await
        .unwrap();
    // Process 1 was only late: its next heartbeat puts back what it still holds (terminal 1),
    // not what another process took since (terminal 2).
    let restored = f
        .store
        .process_heartbeat(p1, at(63 * SECOND))
        .await
        .unwrap();
    assert_eq!(restored, 1);
    assert_eq!(online(f.store.fleet().await.unwrap()), vec![1, 2, 3]);
    assert_eq!(
        f.store.terminal(Terminal(2)).await.unwrap().unwrap().owner,
        Some(owner(2, 5))
    );

    // Process 2 stops cleanly: its terminals are released, and process 1's stay.
    let released = f.peer.process_stopped(p2, at(64 * SECOND)).await.unwrap();
    assert_eq!(released, 2, "terminals 2 and 3");
    let record = f.store.terminal(Terminal(3)).await.unwrap().unwrap();
    assert!(!record.online);
    assert_eq!(record.owner, None);
    assert_eq!(record.last_seen, at(64 * SECOND));
    assert_eq!(online(f.store.fleet().await.unwrap()), vec![1]);
    // A stopped process is forgotten: a sweep just after finds only process 1 alive.
    let after = f
        .store
        .sweep_processes(at(64 * SECOND - TIMEOUT))
        .await
        .unwrap();
    assert_eq!(after, SweepReport::default());
}

pub async fn alarms_raise_clear_acknowledge_filter<S: Store>(f: &Fixture<S>) {
    let bms = AlarmKind::Bms("cell_over_voltage".into());
    let (first, new) = f
        .store
        .raise_alarm(Terminal(1), bms.clone(), "3650 mV".into(), at(0))
        .await
        .unwrap();
    assert!(new);
    let (again, new) = f
        .store
        .raise_alarm(Terminal(1), bms.clone(), "3660 mV".into(), at(SECOND))
        .await
        .unwrap();
    assert_eq!(
        (again, new),
        (first, false),
        "no second active alarm of one kind"
    );
    let (other, _) = f
        .store
        .raise_alarm(Terminal(2), AlarmKind::SocLow, "4 %".into(), at(2 * SECOND))
        .await
        .unwrap();
    assert!(f
        .store
        .clear_alarm(Terminal(1), bms.clone(), at(MINUTE))
        .await
        .unwrap());
    assert!(!f
        .store
        .clear_alarm(Terminal(1), bms.clone(), at(MINUTE))
        .await
        .unwrap());
    let (third, new) = f
        .store
        .raise_alarm(Terminal(1), bms.clone(), "again".into(), at(HOUR))
        .await
        .unwrap();
    assert!(new && third != first);

    let all = f.store.alarms(AlarmFilter::default()).await.unwrap();
    let ids: Vec<i64> = all.iter().map(|a| a.id).collect();
    assert_eq!(ids, vec![third, other, first], "newest first");
    assert_eq!(all[2].detail, "3650 mV");
    assert_eq!(all[2].ended, Some(at(MINUTE)));
    assert_eq!(all[2].kind, bms);

    let active = AlarmFilter {
        active_only: true,
        ..AlarmFilter::default()
    };
    let ids: Vec<i64> = f
        .store
        .alarms(active)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, vec![third, other]);
    let one = AlarmFilter {
        terminal: Some(Terminal(1)),
        ..AlarmFilter::default()
    };
    assert_eq!(f.store.alarms(one).await.unwrap().len(), 2);
    let window = AlarmFilter {
        from: Some(at(SECOND)),
        to: Some(at(HOUR)),
        ..AlarmFilter::default()
    };
    let ids: Vec<i64> = f
        .store
        .alarms(window)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, vec![other]);
    let limited = AlarmFilter {
        limit: 1,
        ..AlarmFilter::default()
    };
    assert_eq!(f.store.alarms(limited).await.unwrap().len(), 1);

    let acked = f
        .store
        .acknowledge_alarm(other, "alice".into(), at(3 * SECOND))
        .await
        .unwrap();
    assert_eq!(
        acked.acknowledged,
        Some(("alice".to_owned(), at(3 * SECOND)))
    );
    let twice = f
        .store
        .acknowledge_alarm(other, "bob".into(), at(4 * SECOND))
        .await
        .unwrap();
    assert_eq!(
        twice.acknowledged,
        Some(("alice".to_owned(), at(3 * SECOND))),
        "the first stays"
    );
    let unknown = f.store.acknowledge_alarm(9_999, "bob".into(), at(0)).await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
}

async fn next_notice(
    receiver: &mut tokio::sync::broadcast::Receiver<CommandNotice>,
) -> CommandNotice {
    tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .expect("a command notice within 10 s")
        .expect("the notice channel is open")
}

pub async fn commands_queue_claim_finish_and_notify<S: Store>(f: &Fixture<S>) {
    let mut here = f.store.subscribe_commands();
    let mut there = f.peer.subscribe_commands();
    let request = CommandRequest::Write {
        values: vec![("cell_ovp".into(), "3.65".into())],
        password: Some("123456".into()),
    };
    let id = f
        .store
        .enqueue_command(Terminal(5), request.clone(), "alice".into(), at(0))
        .await
        .unwrap();
    let second = f
        .store
        .enqueue_command(Terminal(5), CommandRequest::ReadAll, "bob".into(), at(1))
        .await
        .unwrap();
    let queued = CommandNotice::Queued {
        id,
        terminal: Terminal(5),
    };
    assert_eq!(next_notice(&mut here).await, queued);
    assert_eq!(
        next_notice(&mut there).await,
        queued,
        "the other process hears it"
    );

    let waiting = f.peer.queued_commands(Terminal(5)).await.unwrap();
    assert_eq!(
        waiting.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![id, second]
    );
    assert_eq!(waiting[0].request, request);
    assert_eq!(waiting[0].state, CommandState::Queued);

    let claimed = f.peer.claim_command(id).await.unwrap().unwrap();
    assert_eq!(claimed.state, CommandState::Running);
    assert_eq!(
        (claimed.issued_by.as_str(), claimed.issued_at),
        ("alice", at(0))
    );
    assert_eq!(
        f.store.claim_command(id).await.unwrap(),
        None,
        "claimed once only"
    );
    assert_eq!(f.store.queued_commands(Terminal(5)).await.unwrap().len(), 1);

    let done = CommandState::Done {
        result: serde_json::json!({"cell_ovp": {"read_back": "3.65"}}),
    };
    f.peer.finish_command(id, done.clone()).await.unwrap();
    assert_eq!(f.store.command(id).await.unwrap().unwrap().state, done);
    assert_eq!(f.store.command(9_999).await.unwrap(), None);
    let missing = f.store.finish_command(9_999, done).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    let failed = CommandState::Failed {
        reason: "terminal offline".into(),
    };
    f.store
        .finish_command(second, failed.clone())
        .await
        .unwrap();
    assert_eq!(f.peer.command(second).await.unwrap().unwrap().state, failed);

    // Notices arrive in order on both sides: the second queued, then the two finishes.
    let rest = [
        CommandNotice::Queued {
            id: second,
            terminal: Terminal(5),
        },
        CommandNotice::Finished { id },
        CommandNotice::Finished { id: second },
    ];
    for expected in rest {
        assert_eq!(next_notice(&mut here).await, expected);
        assert_eq!(next_notice(&mut there).await, expected);
    }
}

pub async fn users_crud_and_conflict<S: Store>(f: &Fixture<S>) {
    let alice = f
        .store
        .create_user("alice".into(), Role::Admin, "$argon2id$a".into(), at(0))
        .await
        .unwrap();
    assert_eq!(
        (alice.name.as_str(), alice.role, alice.created),
        ("alice", Role::Admin, at(0))
    );
    let taken = f
        .store
        .create_user("alice".into(), Role::Viewer, "x".into(), at(1))
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    let bob = f
        .store
        .create_user("bob".into(), Role::Viewer, "$argon2id$b".into(), at(2))
        .await
        .unwrap();
    assert_eq!(
        f.store.user_by_name("alice".into()).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(f.store.user_by_name("carol".into()).await.unwrap(), None);
    let names: Vec<String> = f
        .store
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, vec!["alice", "bob"]);

    let bob2 = f
        .store
        .update_user(bob.id, Some(Role::Operator), None)
        .await
        .unwrap();
    assert_eq!(
        (bob2.role, bob2.password_hash.as_str()),
        (Role::Operator, "$argon2id$b")
    );
    let bob3 = f
        .store
        .update_user(bob.id, None, Some("$argon2id$c".into()))
        .await
        .unwrap();
    assert_eq!(
        (bob3.role, bob3.password_hash.as_str()),
        (Role::Operator, "$argon2id$c")
    );
    let missing = f.store.update_user(9_999, None, None).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    f.store.delete_user(bob.id).await.unwrap();
    assert_eq!(f.store.users().await.unwrap().len(), 1);
    let missing = f.store.delete_user(bob.id).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

fn credential(secret: &str, user_id: i64, is_token: bool, expires: Option<i64>) -> Credential {
    Credential {
        secret_hash: secret.to_owned(),
        user_id,
        is_token,
        label: if is_token {
            "grafana".into()
        } else {
            String::new()
        },
        expires: expires.map(at),
        created: at(0),
    }
}

pub async fn credentials_expire_and_go_with_their_user<S: Store>(f: &Fixture<S>) {
    let alice = f
        .store
        .create_user("alice".into(), Role::Operator, "h".into(), at(0))
        .await
        .unwrap();
    let session = credential("aa11", alice.id, false, Some(HOUR));
    let token = credential("bb22", alice.id, true, None);
    f.store.insert_credential(session.clone()).await.unwrap();
    f.store.insert_credential(token.clone()).await.unwrap();
    let duplicate = f.store.insert_credential(session.clone()).await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    let orphan = f
        .store
        .insert_credential(credential("cc33", 9_999, false, None))
        .await;
    assert!(matches!(orphan, Err(StoreError::NotFound(_))), "{orphan:?}");

    let found = f.store.credential("aa11".into(), at(MINUTE)).await.unwrap();
    assert_eq!(found, Some((session.clone(), alice.clone())));
    assert_eq!(
        f.store.credential("aa11".into(), at(HOUR)).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        f.store
            .credential("bb22".into(), at(1000 * DAY))
            .await
            .unwrap(),
        Some((token.clone(), alice.clone()))
    );
    assert_eq!(f.store.tokens_of(alice.id).await.unwrap(), vec![token]);

    f.store.delete_credential("bb22".into()).await.unwrap();
    assert_eq!(
        f.store.credential("bb22".into(), at(0)).await.unwrap(),
        None
    );
    assert!(f.store.tokens_of(alice.id).await.unwrap().is_empty());
    f.store.delete_user(alice.id).await.unwrap();
    assert_eq!(
        f.store.credential("aa11".into(), at(0)).await.unwrap(),
        None,
        "gone with the user"
    );
}

pub async fn audit_log_newest_first<S: Store>(f: &Fixture<S>) {
    for (i, action) in ["login", "write", "ack_alarm", "logout"]
        .into_iter()
        .enumerate()
    {
        let entry = AuditEntry {
            at: at(i as i64 * SECOND),
            actor: "alice".into(),
            action: action.into(),
            target: "terminal 0003E8".into(),
            detail: format!("step {i}"),
        };
        f.store.audit(entry).await.unwrap();
    }
    let log = f.store.audit_log(at(0), at(HOUR), 10).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["logout", "ack_alarm", "write", "login"]);
    assert_eq!(log[3].detail, "step 0");
    let window = f
        .store
        .audit_log(at(SECOND), at(3 * SECOND), 10)
        .await
        .unwrap();
    assert_eq!(window.len(), 2);
    let limited = f.store.audit_log(at(0), at(HOUR), 1).await.unwrap();
    assert_eq!(limited[0].action, "logout");
}
