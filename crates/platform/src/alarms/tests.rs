//! The alarm rules in virtual time: every rule raises and clears, with its hysteresis; offline
//! and back online; the task applies decisions through a store and retries a refused one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::*;
use crate::model::{
    Alarm, AuditEntry, Command, CommandRequest, CommandState, ConnectionOwner, Credential,
    FleetEntry, HistoryPoint, ProcessId, Registration, Resolution, Role, TerminalRecord, User,
};
use crate::store::{
    InsertReport, MaintenanceReport, Retention, StoreError, StoreResult, SweepReport,
};

const T1: Terminal = Terminal(0x1000);
const T2: Terminal = Terminal(0x1001);

fn seconds(s: i64) -> Timestamp {
    Timestamp(1_700_000_000_000 + s * 1000)
}

/// A healthy row: 16 cells around 3.3 V, 25 degC, SOC 50 %, no warning.
fn row(terminal: Terminal, at: i64) -> TelemetryRow {
    TelemetryRow {
        terminal,
        at: seconds(at),
        record: u32::try_from(at).unwrap_or(0),
        voltage_mv: 52_800,
        current_ma: -1000,
        soc: 50,
        temperatures: [Some(30), Some(25), Some(25)],
        cells_mv: vec![3300; 16],
        warnings: 0,
        status: 0b11,
        raw: Vec::new(),
    }
}

fn engine() -> AlarmEngine {
    AlarmEngine::new(AlarmRules::default()).unwrap()
}

fn events(engine: &mut AlarmEngine) -> Vec<AlarmEvent> {
    std::iter::from_fn(|| engine.poll_event()).collect()
}

fn raised(events: &[AlarmEvent]) -> Vec<(AlarmKind, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            AlarmEvent::Raise { kind, detail, .. } => Some((kind.clone(), detail.clone())),
            AlarmEvent::Clear { .. } => None,
        })
        .collect()
}

fn cleared(events: &[AlarmEvent]) -> Vec<AlarmKind> {
    events
        .iter()
        .filter_map(|e| match e {
            AlarmEvent::Clear { kind, .. } => Some(kind.clone()),
            AlarmEvent::Raise { .. } => None,
        })
        .collect()
}

fn bms(name: &str) -> AlarmKind {
    AlarmKind::Bms(name.to_string())
}

#[test]
fn every_warning_bit_is_its_own_alarm_named_after_the_flag() {
    let mut engine = engine();
    engine.handle_row(&row(T1, 0));
    assert!(
        events(&mut engine).is_empty(),
        "a healthy row raises nothing"
    );

    let mut warn = row(T1, 1);
    warn.warnings = (Warnings::CELL_OVER_VOLTAGE | Warnings::PROTECTION_309_A).bits();
    engine.handle_row(&warn);
    let got = events(&mut engine);
    assert_eq!(
        raised(&got),
        vec![
            (
                bms("cell_over_voltage"),
                "BMS warning cell_over_voltage (0x8B bit 10)".to_string()
            ),
            (
                bms("protection_309_a"),
                "BMS warning protection_309_a (0x8B bit 12)".to_string()
            ),
        ]
    );
    assert_eq!(
        got[0],
        AlarmEvent::Raise {
            terminal: T1,
            kind: bms("cell_over_voltage"),
            detail: "BMS warning cell_over_voltage (0x8B bit 10)".to_string(),
            at: seconds(1),
        }
    );

    // Still set: nothing new. One clears: only that one.
    engine.handle_row(&warn);
    assert!(events(&mut engine).is_empty());
    let mut one_left = row(T1, 3);
    one_left.warnings = Warnings::PROTECTION_309_A.bits();
    engine.handle_row(&one_left);
    assert_eq!(
        cleared(&events(&mut engine)),
        vec![bms("cell_over_voltage")]
    );
    engine.handle_row(&row(T1, 4));
    assert_eq!(cleared(&events(&mut engine)), vec![bms("protection_309_a")]);
    assert_eq!(engine.active(T1).count(), 0);
}

#[test]
fn warning_names_cover_the_defined_and_the_reserved_bits() {
    assert_eq!(warning_name(0), "low_capacity");
    assert_eq!(warning_name(7), "cell_voltage_difference");
    assert_eq!(warning_name(13), "protection_309_b");
    assert_eq!(warning_name(14), "reserved_bit_14");
    assert_eq!(warning_name(15), "reserved_bit_15");
}

#[test]
fn terminals_are_judged_apart() {
    let mut engine = engine();
    let mut warn = row(T1, 0);
    warn.warnings = Warnings::LOW_CAPACITY.bits();
    engine.handle_row(&warn);
    engine.handle_row(&row(T2, 0));
    let got = events(&mut engine);
    assert_eq!(got.len(), 1);
    assert!(matches!(&got[0], AlarmEvent::Raise { terminal, .. } if *terminal == T1));
}

fn with_spread(at: i64, spread: u16) -> TelemetryRow {
    let mut r = row(T1, at);
    r.cells_mv[4] = 3300 + spread;
    r
}

#[test]
fn cell_spread_raises_above_the_threshold_and_clears_below_the_hysteresis() {
    let mut engine = engine();
    engine.handle_row(&with_spread(0, 300));
    assert!(events(&mut engine).is_empty(), "300 mV is not above 300 mV");
    engine.handle_row(&with_spread(1, 312));
    assert_eq!(
        raised(&events(&mut engine)),
        vec![(
            AlarmKind::CellSpread,
            "cell spread 312 mV > 300 mV (cell 5 3612 mV, cell 1 3300 mV)".to_string()
        )]
    );
    // Between 250 and 300 mV: stays raised, never raised twice.
    for (at, spread) in [(2, 290), (3, 320), (4, 251)] {
        engine.handle_row(&with_spread(at, spread));
        assert!(events(&mut engine).is_empty(), "{spread} mV");
    }
    engine.handle_row(&with_spread(5, 250));
    assert_eq!(cleared(&events(&mut engine)), vec![AlarmKind::CellSpread]);
    // In the band and not raised: stays clear.
    engine.handle_row(&with_spread(6, 280));
    assert!(events(&mut engine).is_empty());
}

fn with_temperature(at: i64, celsius: i16) -> TelemetryRow {
    let mut r = row(T1, at);
    r.temperatures = [Some(30), Some(celsius - 1), Some(celsius)];
    r
}

#[test]
fn a_temperature_rise_faster_than_the_rule_raises_and_clears_when_it_slows() {
    let mut engine = engine();
    // 3 degC/min: one degree every 20 s, uploads every 10 s.
    let mut raised_at = None;
    for step in 0..60 {
        let at = step * 10;
        engine.handle_row(&with_temperature(at, 20 + i16::try_from(at / 20).unwrap()));
        let got = raised(&events(&mut engine));
        if !got.is_empty() {
            assert_eq!(got[0].0, AlarmKind::TemperatureRise);
            // 20 -> 27 degC in 2m 30s (whole degrees): 2.8 degC/min.
            assert_eq!(
                got[0].1,
                "temperature rise 2.8 degC/min > 2.0 degC/min (20 -> 27 degC in 2m 30s)"
            );
            raised_at.get_or_insert(at);
        }
    }
    // Not before half the window (2.5 min) is covered; then at once.
    assert_eq!(raised_at, Some(150));
    // Flat from 600 s (at 50 degC): the rate over the window falls; at 1.5 degC/min (in the
    // band) it stays, at or below 1 degC/min it clears.
    let mut cleared_at = None;
    for step in 0..40 {
        let at = 600 + step * 10;
        engine.handle_row(&with_temperature(at, 50));
        if !cleared(&events(&mut engine)).is_empty() {
            cleared_at.get_or_insert(at);
        }
    }
    let cleared_at = cleared_at.expect("cleared");
    // Over the 5 min window the rise is 1 degC/min once 200 s of flat readings are in it.
    assert!(
        (780..=820).contains(&cleared_at),
        "cleared at {cleared_at} s"
    );
}

#[test]
fn a_sensor_step_within_seconds_is_not_a_rise() {
    let mut engine = engine();
    engine.handle_row(&with_temperature(0, 25));
    engine.handle_row(&with_temperature(5, 27));
    engine.handle_row(&with_temperature(10, 28));
    assert!(events(&mut engine).is_empty());
    // Slow warming (0.5 degC/min) over the whole window is fine too.
    for step in 1..=60 {
        engine.handle_row(&with_temperature(
            10 + step * 10,
            28 + i16::try_from(step / 12).unwrap(),
        ));
    }
    assert!(events(&mut engine).is_empty());
}

#[test]
fn the_temperature_history_stays_bounded() {
    let mut engine = engine();
    for at in 0..3600 {
        engine.handle_row(&with_temperature(at, 25));
    }
    let kept = engine.terminals[&T1].temperatures.samples.len();
    assert!(kept <= TEMPERATURE_SAMPLES as usize + 1, "{kept}");
}

fn with_soc(at: i64, soc: u8) -> TelemetryRow {
    let mut r = row(T1, at);
    r.soc = soc;
    r
}

#[test]
fn soc_low_waits_for_the_delay_and_clears_above_the_hysteresis() {
    let mut engine = engine();
    // A BMS reports SOC 0 for ~16 s after power-up: no alarm.
    for at in 0..=16 {
        engine.handle_row(&with_soc(at, 0));
    }
    engine.handle_row(&with_soc(17, 60));
    assert!(events(&mut engine).is_empty());
    // Low for 30 s: raised once.
    for at in 100..=129 {
        engine.handle_row(&with_soc(at, 8));
        assert!(events(&mut engine).is_empty(), "at {at}");
    }
    engine.handle_row(&with_soc(130, 8));
    assert_eq!(
        raised(&events(&mut engine)),
        vec![(AlarmKind::SocLow, "SOC 8 % < 10 %".to_string())]
    );
    engine.handle_row(&with_soc(131, 7));
    assert!(events(&mut engine).is_empty());
    // 10..14 %: in the band, stays.
    engine.handle_row(&with_soc(140, 14));
    assert!(events(&mut engine).is_empty());
    engine.handle_row(&with_soc(150, 15));
    assert_eq!(cleared(&events(&mut engine)), vec![AlarmKind::SocLow]);
}

#[test]
fn a_silent_terminal_goes_offline_once_and_comes_back_with_its_next_upload() {
    let mut engine = engine();
    engine.handle_row(&row(T1, 0));
    engine.handle_row(&row(T2, 0));
    engine.handle_tick(seconds(300));
    assert!(
        events(&mut engine).is_empty(),
        "5 min is not longer than 5 min"
    );
    engine.handle_row(&row(T2, 290));
    engine.handle_tick(seconds(312));
    let got = events(&mut engine);
    assert_eq!(
        got,
        vec![AlarmEvent::Raise {
            terminal: T1,
            kind: AlarmKind::Offline,
            detail: "no upload for 5m 12s > 5m".to_string(),
            at: seconds(312),
        }]
    );
    engine.handle_tick(seconds(400));
    assert!(events(&mut engine).is_empty(), "raised once");
    engine.handle_row(&row(T1, 401));
    assert_eq!(
        events(&mut engine),
        vec![AlarmEvent::Clear {
            terminal: T1,
            kind: AlarmKind::Offline,
            at: seconds(401),
        }]
    );
}

#[test]
fn a_known_terminal_that_never_uploads_again_goes_offline() {
    let mut engine = engine();
    engine.track(T1, seconds(0));
    engine.handle_tick(seconds(301));
    assert_eq!(raised(&events(&mut engine))[0].0, AlarmKind::Offline);
}

#[test]
fn alarms_active_in_the_store_at_start_clear_when_their_cause_is_gone() {
    let mut engine = engine();
    engine.assume_active(T1, bms("cell_under_voltage"), seconds(0));
    engine.assume_active(T1, AlarmKind::Offline, seconds(0));
    engine.assume_active(T1, AlarmKind::CellSpread, seconds(0));
    engine.handle_row(&with_spread(10, 100));
    let mut got = cleared(&events(&mut engine));
    got.sort_by_key(kind_name);
    assert_eq!(
        got,
        vec![
            bms("cell_under_voltage"),
            AlarmKind::CellSpread,
            AlarmKind::Offline
        ]
    );
}

#[test]
fn rules_that_cannot_work_are_refused_with_the_field() {
    let bad = [
        (
            AlarmRules {
                cell_spread_clear_mv: 300,
                ..AlarmRules::default()
            },
            "alarm rule cell_spread_clear_mv: 300 mV must be below cell_spread_mv (300 mV)",
        ),
        (
            AlarmRules {
                soc_clear_percent: 10,
                ..AlarmRules::default()
            },
            "alarm rule soc_clear_percent: 10 % must be above soc_low_percent (10 %) and at most 100 %",
        ),
        (
            AlarmRules {
                temperature_rise_clear_per_min: 2.0,
                ..AlarmRules::default()
            },
            "alarm rule temperature_rise_clear_per_min: 2 must be at least 0 and below temperature_rise_per_min",
        ),
        (
            AlarmRules {
                temperature_window: Duration::from_secs(30),
                ..AlarmRules::default()
            },
            "alarm rule temperature_window: 30s is shorter than 1 minute",
        ),
        (
            AlarmRules {
                offline_after: Duration::ZERO,
                ..AlarmRules::default()
            },
            "alarm rule offline_after: must be above 0",
        ),
    ];
    for (rules, message) in bad {
        assert_eq!(AlarmEngine::new(rules).unwrap_err().to_string(), message);
    }
}

// --- The task, through a store -----------------------------------------------------------------

/// What the fake store saw, and whether it refuses alarm changes now.
#[derive(Default)]
struct FakeState {
    changes: Vec<String>,
    unavailable: bool,
    fleet: Vec<FleetEntry>,
}

#[derive(Clone, Default)]
struct FakeStore(Arc<Mutex<FakeState>>);

impl FakeStore {
    fn changes(&self) -> Vec<String> {
        self.0.lock().unwrap().changes.clone()
    }
}

fn unused<T>() -> StoreResult<T> {
    Err(StoreError::Unavailable("not in the fake store".to_string()))
}

impl Store for FakeStore {
    async fn insert_telemetry(&self, _: Vec<TelemetryRow>) -> StoreResult<InsertReport> {
        unused()
    }
    async fn latest(&self, _: Terminal) -> StoreResult<Option<TelemetryRow>> {
        unused()
    }
    async fn history(
        &self,
        _: Terminal,
        _: Timestamp,
        _: Timestamp,
        _: Resolution,
    ) -> StoreResult<Vec<HistoryPoint>> {
        unused()
    }
    async fn maintain(&self, _: Timestamp, _: Retention) -> StoreResult<MaintenanceReport> {
        unused()
    }
    async fn terminal_connected(
        &self,
        _: Terminal,
        _: ConnectionOwner,
        _: Timestamp,
        _: bool,
    ) -> StoreResult<TerminalRecord> {
        unused()
    }
    async fn terminal_disconnected(
        &self,
        _: Terminal,
        _: ConnectionOwner,
        _: Timestamp,
    ) -> StoreResult<bool> {
        unused()
    }
    async fn process_heartbeat(&self, _: ProcessId, _: Timestamp) -> StoreResult<u64> {
        unused()
    }
    async fn sweep_processes(&self, _: Timestamp) -> StoreResult<SweepReport> {
        unused()
    }
    async fn process_stopped(&self, _: ProcessId, _: Timestamp) -> StoreResult<u64> {
        unused()
    }
    async fn terminal(&self, _: Terminal) -> StoreResult<Option<TerminalRecord>> {
        unused()
    }
    async fn fleet(&self) -> StoreResult<Vec<FleetEntry>> {
        Ok(self.0.lock().unwrap().fleet.clone())
    }
    async fn set_registration(&self, _: Terminal, _: Registration) -> StoreResult<()> {
        unused()
    }
    async fn set_terminal_name(&self, _: Terminal, _: Option<String>) -> StoreResult<()> {
        unused()
    }
    async fn raise_alarm(
        &self,
        terminal: Terminal,
        kind: AlarmKind,
        detail: String,
        _: Timestamp,
    ) -> StoreResult<(i64, bool)> {
        let mut state = self.0.lock().unwrap();
        if state.unavailable {
            return Err(StoreError::Unavailable("disk full".to_string()));
        }
        state
            .changes
            .push(format!("raise {terminal} {}: {detail}", kind_name(&kind)));
        Ok((i64::try_from(state.changes.len()).unwrap(), true))
    }
    async fn clear_alarm(
        &self,
        terminal: Terminal,
        kind: AlarmKind,
        _: Timestamp,
    ) -> StoreResult<bool> {
        let mut state = self.0.lock().unwrap();
        if state.unavailable {
            return Err(StoreError::Unavailable("disk full".to_string()));
        }
        state
            .changes
            .push(format!("clear {terminal} {}", kind_name(&kind)));
        Ok(true)
    }
    async fn alarms(&self, _: AlarmFilter) -> StoreResult<Vec<Alarm>> {
        Ok(Vec::new())
    }
    async fn acknowledge_alarm(&self, _: i64, _: String, _: Timestamp) -> StoreResult<Alarm> {
        unused()
    }
    async fn enqueue_command(
        &self,
        _: Terminal,
        _: CommandRequest,
        _: String,
        _: Timestamp,
    ) -> StoreResult<i64> {
        unused()
    }
    async fn claim_command(&self, _: i64) -> StoreResult<Option<Command>> {
        unused()
    }
    async fn queued_commands(&self, _: Terminal) -> StoreResult<Vec<Command>> {
        unused()
    }
    async fn finish_command(&self, _: i64, _: CommandState) -> StoreResult<()> {
        unused()
    }
    async fn command(&self, _: i64) -> StoreResult<Option<Command>> {
        unused()
    }
    fn subscribe_commands(&self) -> broadcast::Receiver<crate::store::CommandNotice> {
        broadcast::channel(1).1
    }
    async fn create_user(&self, _: String, _: Role, _: String, _: Timestamp) -> StoreResult<User> {
        unused()
    }
    async fn user_by_name(&self, _: String) -> StoreResult<Option<User>> {
        unused()
    }
    async fn users(&self) -> StoreResult<Vec<User>> {
        unused()
    }
    async fn update_user(&self, _: i64, _: Option<Role>, _: Option<String>) -> StoreResult<User> {
        unused()
    }
    async fn delete_user(&self, _: i64) -> StoreResult<()> {
        unused()
    }
    async fn insert_credential(&self, _: Credential) -> StoreResult<()> {
        unused()
    }
    async fn credential(&self, _: String, _: Timestamp) -> StoreResult<Option<(Credential, User)>> {
        unused()
    }
    async fn delete_credential(&self, _: String) -> StoreResult<()> {
        unused()
    }
    async fn tokens_of(&self, _: i64) -> StoreResult<Vec<Credential>> {
        unused()
    }
    async fn audit(&self, _: AuditEntry) -> StoreResult<()> {
        unused()
    }
    async fn audit_log(&self, _: Timestamp, _: Timestamp, _: u32) -> StoreResult<Vec<AuditEntry>> {
        unused()
    }
}

fn now_row(terminal: Terminal, ago: Duration) -> TelemetryRow {
    let mut r = row(terminal, 0);
    r.at = Timestamp::now().minus(ago);
    r
}

async fn wait_for_changes(store: &FakeStore, count: usize) -> Vec<String> {
    for _ in 0..500 {
        let changes = store.changes();
        if changes.len() >= count {
            return changes;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.changes()
}

#[tokio::test]
async fn the_task_applies_decisions_through_the_store_and_retries_refused_ones() {
    let store = FakeStore::default();
    let (rows, receiver) = mpsc::channel(16);
    let hub = LiveHub::new();
    let mut live = hub.subscribe();
    let task = tokio::spawn(run_alarms(
        store.clone(),
        receiver,
        AlarmRules::default(),
        Duration::from_millis(20),
        hub,
    ));
    let mut warn = now_row(T1, Duration::ZERO);
    warn.warnings = Warnings::CELL_UNDER_VOLTAGE.bits();
    let warned_at = warn.at;
    rows.send(warn).await.unwrap();
    let changes = wait_for_changes(&store, 1).await;
    assert_eq!(
        changes,
        vec!["raise 001000 bms cell_under_voltage: BMS warning cell_under_voltage (0x8B bit 11)"]
    );
    // Open pages hear of the upload, then of the alarm it raised.
    let upload = live.recv().await.unwrap();
    assert_eq!(
        upload,
        LiveEvent::Upload {
            terminal: T1,
            at: warned_at
        }
    );
    match live.recv().await.unwrap() {
        LiveEvent::Alarm {
            terminal,
            id: Some(_),
            kind: AlarmKind::Bms(name),
            change: AlarmChange::Raised,
            ..
        } => assert_eq!((terminal, name.as_str()), (T1, "cell_under_voltage")),
        other => panic!("expected the raised alarm, got {other:?}"),
    }

    // The store refuses: the clear waits, and is applied once the store is back.
    store.0.lock().unwrap().unavailable = true;
    rows.send(now_row(T1, Duration::ZERO)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(store.changes().len(), 1);
    store.0.lock().unwrap().unavailable = false;
    let changes = wait_for_changes(&store, 2).await;
    assert_eq!(changes[1], "clear 001000 bms cell_under_voltage");
    // The upload is published at once; the clearing only once the store took it.
    assert!(matches!(
        live.recv().await.unwrap(),
        LiveEvent::Upload { .. }
    ));
    match live.recv().await.unwrap() {
        LiveEvent::Alarm {
            change, id, kind, ..
        } => assert_eq!(
            (change, id, kind),
            (
                AlarmChange::Cleared,
                None,
                AlarmKind::Bms("cell_under_voltage".into())
            )
        ),
        other => panic!("expected the cleared alarm, got {other:?}"),
    }

    // A terminal last heard of 6 minutes ago goes offline at the next tick.
    rows.send(now_row(T2, Duration::from_secs(360)))
        .await
        .unwrap();
    let changes = wait_for_changes(&store, 3).await;
    assert!(
        changes[2].starts_with("raise 001001 offline: no upload for 6m"),
        "{changes:?}"
    );
    drop(rows);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_task_knows_the_stored_terminals_from_the_start() {
    let store = FakeStore::default();
    let record = TerminalRecord {
        terminal: T2,
        registration: Registration::Approved,
        name: None,
        first_seen: seconds(0),
        last_seen: Timestamp::now().minus(Duration::from_secs(600)),
        online: false,
        owner: None,
    };
    store.0.lock().unwrap().fleet.push(FleetEntry {
        record,
        latest: None,
        active_alarms: 0,
    });
    let (rows, receiver) = mpsc::channel(16);
    let task = tokio::spawn(run_alarms(
        store.clone(),
        receiver,
        AlarmRules::default(),
        Duration::from_millis(20),
        LiveHub::new(),
    ));
    let changes = wait_for_changes(&store, 1).await;
    assert!(
        changes[0].starts_with("raise 001001 offline: no upload for 10m"),
        "{changes:?}"
    );
    drop(rows);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn bad_rules_stop_the_task_at_once() {
    let (_rows, receiver) = mpsc::channel(1);
    let rules = AlarmRules {
        soc_clear_percent: 5,
        ..AlarmRules::default()
    };
    let error = run_alarms(
        FakeStore::default(),
        receiver,
        rules,
        Duration::from_secs(1),
        LiveHub::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.field, "soc_clear_percent");
}
