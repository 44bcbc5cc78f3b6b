#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use bmslink_core::failsafe::State;
use bmslink_core::settings::Settings;
use bmslink_proto::Status;

const HOLD: Duration = Duration::from_secs(10);
const STALE: Duration = Duration::from_secs(5);

fn at(seconds: f64) -> Instant {
    Instant::from_micros((seconds * 1e6) as u64)
}

fn site(racks: usize) -> Site {
    let identities = (0..racks)
        .map(|i| RackIdentity {
            name: format!("rack-{}", i + 1),
            link_text: format!("tcp://127.0.0.1:{}", 9000 + i),
        })
        .collect();
    let failsafe = FailsafeConfig {
        recovery_hold: HOLD,
        inverter_timeout: None,
        inverter_silence_is_unsafe: false,
        ems_timeout: None,
    };
    Site::new(identities, STALE, failsafe, at(0.0))
}

/// A 16-cell 100 Ah LFP rack at 50 %, 25 degC, both MOSFETs on.
fn reading(received_at: Instant) -> Arc<PackSnapshot> {
    let settings = Settings::preset(Chemistry::Lfp, 16, 100);
    let fields = settings.registers().into_iter().collect();
    Arc::new(PackSnapshot {
        received_at,
        cells: vec![Millivolts(3300); 16],
        mosfet_temperature: Some(Celsius(30)),
        box_temperature: Some(Celsius(25)),
        battery_temperature: Some(Celsius(25)),
        voltage: Millivolts(52_800),
        current: bmslink_proto::Milliamps(0),
        soc_percent: 50,
        cycles: 3,
        warnings: Warnings::empty(),
        status: Status::CHARGE_MOSFET_ON | Status::DISCHARGE_MOSFET_ON,
        settings: Some(settings),
        fields,
    })
}

fn update(rack: usize, reading: Arc<PackSnapshot>) -> RackUpdate {
    RackUpdate {
        rack,
        link: LinkState::Online,
        reading: Some(reading),
    }
}

/// Both racks report every second from `from` to `to`.
fn feed(site: &mut Site, racks: &[usize], from: u32, to: u32) {
    for second in from..=to {
        let now = at(f64::from(second));
        for &rack in racks {
            site.handle_update(now, update(rack, reading(now)));
        }
    }
}

fn charge_limit(site: &Site) -> f32 {
    site.snapshot().decision.limits.charge_current_a
}

#[test]
fn the_site_starts_safe_and_goes_normal_after_the_hold_time_of_fresh_data() {
    let mut site = site(2);
    assert!(site.snapshot().decision.safe);
    assert!(matches!(site.snapshot().pcs, PcsCommand::Safe { .. }));
    feed(&mut site, &[0, 1], 1, 9);
    assert!(site.snapshot().decision.safe, "still within the hold time");
    feed(&mut site, &[0, 1], 10, 12);
    let snapshot = site.snapshot();
    assert_eq!(snapshot.decision.state, State::Normal);
    let PcsCommand::Normal(state) = snapshot.pcs else {
        panic!("expected normal limits, got {:?}", snapshot.pcs);
    };
    // Two 100 Ah racks at 0.5 C charge (ramped from the first reading on).
    assert!(state.limits.charge_current.0 > 50_000, "{state:?}");
    assert!(state.charge_enable && state.discharge_enable);
    assert_eq!(state.modules.online, 2);
    assert_eq!(state.voltage, Millivolts(52_800));
}

#[test]
fn a_stale_rack_takes_its_share_of_the_limits_and_the_last_one_makes_the_site_safe() {
    let mut site = site(2);
    feed(&mut site, &[0, 1], 0, 30);
    let both = charge_limit(&site);
    assert!(both > 0.0);
    // Rack 2 goes silent; rack 1 keeps reporting. After the stale timeout it leaves the
    // aggregate: half the limit, not safe.
    feed(&mut site, &[0], 31, 37);
    let one = charge_limit(&site);
    assert!((one - both / 2.0).abs() < 0.5, "{one} vs {both}");
    assert!(!site.snapshot().decision.safe);
    assert!(matches!(
        site.snapshot().racks[1].exclusion,
        Some(Exclusion::Stale { .. })
    ));
    let PcsCommand::Normal(state) = site.snapshot().pcs else {
        panic!("one rack left: normal");
    };
    assert_eq!((state.modules.online, state.modules.offline), (1, 1));
    assert!(state.warnings.contains(Conditions::INTERNAL_COMMUNICATION));
    // Rack 1 too: no fresh rack, the safe state.
    site.evaluate(at(43.0));
    assert!(site.snapshot().decision.safe);
    assert_eq!(
        site.count_of(Cause::NoFreshRack),
        1,
        "the start is not counted"
    );
    let PcsCommand::Safe {
        state,
        pack_voltage,
    } = site.snapshot().pcs
    else {
        panic!("no rack: safe");
    };
    assert_eq!(pack_voltage, Millivolts(0));
    assert!(state.alarms.contains(Conditions::INTERNAL_COMMUNICATION));
}

#[test]
fn a_protection_on_one_rack_makes_the_site_safe_with_its_alarm() {
    let mut site = site(2);
    feed(&mut site, &[0, 1], 0, 20);
    assert!(!site.snapshot().decision.safe);
    let mut hot = (*reading(at(21.0))).clone();
    hot.warnings = Warnings::BATTERY_OVER_TEMPERATURE;
    hot.status = Status::empty();
    site.handle_update(at(21.0), update(1, Arc::new(hot)));
    let snapshot = site.snapshot();
    assert!(snapshot.decision.safe);
    assert!(snapshot.decision.causes.contains(Cause::Protection));
    let PcsCommand::Safe { state, .. } = snapshot.pcs else {
        panic!("protection: safe");
    };
    assert!(state.alarms.contains(Conditions::HIGH_TEMPERATURE));
    assert_eq!(state.limits.charge_current.0, 0);
    assert!(snapshot
        .ems
        .latched_warnings
        .contains(Warnings::BATTERY_OVER_TEMPERATURE));
}

#[test]
fn the_low_capacity_warning_is_a_warning_not_a_protection() {
    let mut site = site(1);
    let mut low = (*reading(at(0.0))).clone();
    low.warnings = Warnings::LOW_CAPACITY;
    for second in 0..=12 {
        let now = at(f64::from(second));
        site.handle_update(
            now,
            update(
                0,
                Arc::new(PackSnapshot {
                    received_at: now,
                    ..low.clone()
                }),
            ),
        );
    }
    assert!(!site.snapshot().decision.safe);
    let PcsCommand::Normal(state) = site.snapshot().pcs else {
        panic!("a warning only");
    };
    assert!(state.alarms.is_empty());
    assert!(state.warnings.contains(Conditions::LOW_VOLTAGE));
}

#[test]
fn the_ems_can_disconnect_force_charge_and_reset_latched_alarms() {
    let mut site = site(1);
    feed(&mut site, &[0], 0, 12);
    site.handle_ems_command(at(12.5), EmsCommand::SetOperation { connect: false });
    let PcsCommand::Normal(state) = site.snapshot().pcs else {
        panic!("a disconnect is not an alarm");
    };
    assert_eq!(state.limits.charge_current.0, 0);
    assert_eq!(state.limits.discharge_current.0, 0);
    assert!(!state.charge_enable && !state.discharge_enable);
    site.handle_ems_command(at(13.0), EmsCommand::SetOperation { connect: true });
    site.handle_ems_command(at(13.0), EmsCommand::ForceCharge(true));
    let PcsCommand::Normal(state) = site.snapshot().pcs else {
        panic!("connected");
    };
    assert!(state.force_charge_i && state.limits.charge_current.0 > 0);
    // A warning seen once stays latched until the EMS resets it.
    let mut low = (*reading(at(14.0))).clone();
    low.warnings = Warnings::LOW_CAPACITY;
    site.handle_update(at(14.0), update(0, Arc::new(low)));
    site.handle_update(at(15.0), update(0, reading(at(15.0))));
    assert!(site
        .snapshot()
        .ems
        .latched_warnings
        .contains(Warnings::LOW_CAPACITY));
    site.handle_ems_command(at(16.0), EmsCommand::AlarmReset);
    assert!(site.snapshot().ems.latched_warnings.is_empty());
}

#[test]
fn an_offline_link_leaves_the_aggregate_at_once() {
    let mut site = site(2);
    feed(&mut site, &[0, 1], 0, 20);
    site.handle_update(
        at(20.5),
        RackUpdate {
            rack: 1,
            link: LinkState::Offline,
            reading: Some(reading(at(20.0))),
        },
    );
    assert_eq!(site.snapshot().racks[1].exclusion, Some(Exclusion::Offline));
    assert_eq!(site.snapshot().view.used, vec![0]);
}

#[test]
fn nw_warnings_map_to_inverter_conditions() {
    assert_eq!(
        conditions(Warnings::CELL_OVER_VOLTAGE | Warnings::CHARGE_OVER_CURRENT),
        Conditions::HIGH_VOLTAGE | Conditions::CHARGE_OVER_CURRENT
    );
    assert_eq!(conditions(Warnings::empty()), Conditions::empty());
    assert_eq!(
        conditions(Warnings::CELL_VOLTAGE_DIFFERENCE),
        Conditions::CELL_IMBALANCE
    );
}

#[test]
fn a_rack_never_heard_from_counts_as_offline() {
    let mut site = site(3);
    feed(&mut site, &[0, 1], 0, 12);
    let PcsCommand::Normal(state) = site.snapshot().pcs else {
        panic!("two of three racks: normal");
    };
    assert_eq!((state.modules.online, state.modules.offline), (2, 1));
    assert!(state.warnings.contains(Conditions::INTERNAL_COMMUNICATION));
    assert_eq!(site.snapshot().racks[2].exclusion, Some(Exclusion::Offline));
}
