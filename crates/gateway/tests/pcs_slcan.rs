//! Independent peer for the PCS link: python-can's slcan interface (an inverter on the host side
//! of an SLCAN adapter) and cantools with the Pylontech DBC read what the gateway sends.
//!
//! ```text
//! PCS link -- Slcan (serial path) -- battery pty ==socat== inverter pty -- python-can slcan
//!   t351...\r t355...\r ... every 1 s  ------------------------------>  decoded by cantools
//!   keep-alive watch  <------------------------------------  t3058 00x8\r every 500 ms
//! ```
//!
//! The two SLCAN hosts face each other directly: each one's `t...` lines are the other's
//! received frames, and each one's setup commands (`C`, `S6`, `O`) are, for the other,
//! malformed lines to skip (python-can 4.6.1 does not wait for acks, so nobody answers them).
//!
//! The link sends the Pylontech v1.2 set for a known state for ~2.5 s, then the safe state (sent
//! at once, not at the next tick). The
//! test checks that every frame of the set arrived, at ~1 s intervals (loose bounds: this is a
//! wall-clock integration test), with the state's values as cantools decodes them; that the
//! safe state has zero currents and CVL = pack voltage; and that the keep-alive watch saw the
//! peer's 0x305s.
//!
//! Needs socat (else a loud SKIPPED, like the CLI's pty tests) and `$BMSLINK_PYTHON` (else
//! `python3`) with python-can and cantools: without them a loud SKIPPED, except under
//! `CI=true`, where the test fails: in CI this peer must run for real.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is a failed test

use std::collections::BTreeMap;
use std::time::Duration;

use bmslink_gateway::can_link::Slcan;
use bmslink_gateway::config::SlcanPort;
use bmslink_gateway::pcs::{run_pcs_link, PcsCommand, PcsSettings};
use bmslink_proto::can::{
    AmpHours, BatteryState, CentiPercent, DeciCelsius, Modules, Options, Percent, Profile,
    ShortText, StateLimits,
};
use bmslink_proto::{Milliamps, Millivolts};
use serde_json::Value;
use tokio::sync::watch;

mod common;
use common::{finish_peer, signal, start_peer, PtyPair};

/// How long the peer listens.
const PEER_SECONDS: f64 = 4.5;
/// When the link switches to the safe state.
const SAFE_AFTER: Duration = Duration::from_millis(2_500);
const PACK_VOLTAGE_IN_SAFE_STATE: Millivolts = Millivolts(51_000);

/// A three-rack 48 V LFP system charging at 20 A.
fn charging() -> BatteryState {
    BatteryState {
        limits: StateLimits {
            charge_voltage: Millivolts(53_200),
            charge_current: Milliamps(150_000),
            discharge_current: Milliamps(200_000),
            discharge_voltage: Millivolts(45_000),
        },
        soc: CentiPercent::new(7_539).unwrap(),
        soh: Percent::new(98).unwrap(),
        voltage: Millivolts(52_100),
        current: Milliamps(20_000),
        temperature: DeciCelsius(234),
        modules: Modules {
            online: 3,
            ..Modules::default()
        },
        capacity: AmpHours(300),
        manufacturer: ShortText::new(b"PYLON").unwrap(),
        charge_enable: true,
        discharge_enable: true,
        ..BatteryState::default()
    }
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() < 1e-6
}

fn by_id(records: &[Value]) -> BTreeMap<u64, Vec<&Value>> {
    let mut map: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for record in records.iter().filter(|r| r.get("id").is_some()) {
        map.entry(record["id"].as_u64().unwrap())
            .or_default()
            .push(record);
    }
    map
}

fn check_normal_limits(record: &Value) {
    let expected = [
        ("Battery_charge_voltage", 53.2),
        ("Battery_charge_current_limit", 150.0),
        ("Battery_discharge_current_limit", 200.0),
        ("Battery_discharge_voltage", 45.0),
    ];
    for (name, value) in expected {
        assert!(close(signal(record, name), value), "{name} in {record}");
    }
}

fn check_safe_limits(record: &Value) {
    assert!(
        close(signal(record, "Battery_charge_voltage"), 51.0),
        "{record}"
    );
    assert!(
        close(signal(record, "Battery_charge_current_limit"), 0.0),
        "{record}"
    );
    assert!(
        close(signal(record, "Battery_discharge_current_limit"), 0.0),
        "{record}"
    );
}

/// The other frames of the normal set (the first of each id is sent before the safe state).
fn check_normal_values(ids: &BTreeMap<u64, Vec<&Value>>) {
    let soc = ids[&0x355][0];
    assert!(
        close(signal(soc, "SoC"), 75.0) && close(signal(soc, "SoH"), 98.0),
        "{soc}"
    );
    let measured = ids[&0x356][0];
    assert!(
        close(signal(measured, "Battery_voltage"), 52.1),
        "{measured}"
    );
    assert!(
        close(signal(measured, "Battery_current"), 20.0),
        "{measured}"
    );
    assert!(
        close(signal(measured, "Battery_temperature"), 23.4),
        "{measured}"
    );
    let requests = ids[&0x35C][0];
    assert!(close(signal(requests, "Charge_enable"), 1.0), "{requests}");
    assert!(
        close(signal(requests, "Discharge_enable"), 1.0),
        "{requests}"
    );
    let alarms = ids[&0x359][0];
    assert!(close(signal(alarms, "Module_numbers"), 3.0), "{alarms}");
    let name = &ids[&0x35E][0]["signals"]["Manufaturer_string"];
    assert_eq!(name.as_str(), Some("PYLON   "));
}

fn check_safe_values(ids: &BTreeMap<u64, Vec<&Value>>) {
    let requests = ids[&0x35C].last().unwrap();
    assert!(close(signal(requests, "Charge_enable"), 0.0), "{requests}");
    assert!(
        close(signal(requests, "Discharge_enable"), 0.0),
        "{requests}"
    );
    let alarms = ids[&0x359].last().unwrap();
    assert!(close(signal(alarms, "System_Error"), 1.0), "{alarms}");
    let measured = ids[&0x356].last().unwrap();
    assert!(
        close(signal(measured, "Battery_voltage"), 51.0),
        "{measured}"
    );
}

/// 0x351 came every ~1 s: normal first, then safe, never normal again. The first safe set
/// came at once, between two ticks (a restriction does not wait for the tick), and no two sets
/// were closer than SMA's 200 ms.
fn check_limits_timeline(limits: &[&Value]) {
    let times: Vec<f64> = limits.iter().map(|r| r["t"].as_f64().unwrap()).collect();
    let safe_from = limits
        .iter()
        .position(|r| close(signal(r, "Battery_charge_current_limit"), 0.0))
        .expect("no safe-state 0x351 arrived");
    assert!(
        safe_from >= 2,
        "fewer than two normal sets before the safe state: {times:?}"
    );
    for (index, pair) in times.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let bounds = if index + 1 == safe_from {
            0.2..=0.9
        } else {
            0.6..=1.5
        };
        assert!(
            bounds.contains(&gap),
            "0x351 gap of {gap:.3} s before set {}: {times:?}",
            index + 1
        );
    }
    limits[..safe_from]
        .iter()
        .for_each(|r| check_normal_limits(r));
    limits[safe_from..]
        .iter()
        .for_each(|r| check_safe_limits(r));
}

#[tokio::test]
async fn an_inverter_on_python_can_slcan_reads_the_pcs_link_and_keeps_it_alive() {
    let Some(ptys) = PtyPair::new() else { return };
    let mut transport = Slcan::open(&SlcanPort::Serial(ptys.end("battery")))
        .await
        .unwrap();
    let Some(peer) = start_peer(
        "inverter_slcan.py",
        &[
            ptys.end("inverter").display().to_string(),
            PEER_SECONDS.to_string(),
        ],
    ) else {
        return;
    };
    let settings = PcsSettings::new(
        Profile::PylontechV12,
        Options::STANDARD,
        Duration::from_secs(1),
        None,
    )
    .unwrap();
    let (commands, command_rx) = watch::channel(PcsCommand::Normal(charging()));
    let (keepalive_tx, keepalive) = watch::channel(None);
    let driver = async move {
        tokio::time::sleep(SAFE_AFTER).await;
        commands.send_replace(PcsCommand::Safe {
            pack_voltage: PACK_VOLTAGE_IN_SAFE_STATE,
            state: charging(),
        });
        let records = tokio::task::spawn_blocking(move || finish_peer(peer)).await;
        drop(commands); // ends the link
        records.unwrap()
    };
    let (stats, records) = tokio::join!(
        run_pcs_link(
            &mut transport,
            settings,
            command_rx,
            keepalive_tx,
            Default::default()
        ),
        driver
    );
    let stats = stats.unwrap();
    println!("link: {stats:?}; transport: {:?}", transport.stats());
    let ids = by_id(&records);
    for id in [0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E] {
        let count = ids.get(&id).map_or(0, Vec::len);
        assert!(count >= 4, "0x{id:03X} arrived {count} times: {records:?}");
    }
    check_limits_timeline(&ids[&0x351]);
    check_normal_values(&ids);
    check_safe_values(&ids);
    let done = records.last().unwrap();
    assert_eq!(done["done"], Value::Bool(true));
    assert!(
        keepalive.borrow().is_some(),
        "the keep-alive watch saw no 0x305"
    );
    assert!(stats.keep_alives >= 5, "{stats:?}");
    assert!(stats.frames_sent >= 24, "{stats:?}");
    // python-can's own setup commands reached the link as malformed lines and were skipped.
    assert!(transport.stats().malformed >= 3, "{:?}", transport.stats());
}
