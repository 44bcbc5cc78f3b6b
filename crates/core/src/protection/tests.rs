//! Protection state machines stepped in virtual time, one second at a time.

use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::chemistry::Chemistry;

struct Pack {
    settings: Settings,
    protection: Protection,
    cells: Vec<Millivolts>,
    current: Milliamps,
    mosfet: Celsius,
    box_temperature: Celsius,
    temperatures: Vec<Celsius>,
    soc: u8,
    now: Instant,
    events: Vec<ProtectionEvent>,
}

impl Pack {
    /// A 16-cell LFP pack at rest, mid-SOC, 25 degC.
    fn lfp() -> Pack {
        Pack {
            settings: Settings::preset(Chemistry::Lfp, 16, 100),
            protection: Protection::new(ProtectionConfig::default()),
            cells: vec![Millivolts(3300); 16],
            current: Milliamps(0),
            mosfet: Celsius(30),
            box_temperature: Celsius(25),
            temperatures: vec![Celsius(25), Celsius(25)],
            soc: 50,
            now: Instant::ZERO,
            events: Vec::new(),
        }
    }

    /// Runs `seconds` one-second steps with the current measurements.
    fn run(&mut self, seconds: u64) {
        for _ in 0..seconds {
            let total = Millivolts(self.cells.iter().map(|c| c.0).sum());
            let measurements = Measurements {
                cells: &self.cells,
                total,
                current: self.current,
                mosfet_temperature: self.mosfet,
                box_temperature: self.box_temperature,
                battery_temperatures: &self.temperatures,
                soc_percent: self.soc,
            };
            self.protection
                .update(self.now, &self.settings, &measurements);
            while let Some(event) = self.protection.poll_event() {
                self.events.push(event);
            }
            self.now = self.now + Duration::from_secs(1);
        }
    }

    fn transitions(&self) -> Vec<(u64, ProtectionKind, Transition)> {
        self.events
            .iter()
            .map(|e| (e.at.since_origin().as_secs(), e.kind, e.transition))
            .collect()
    }
}

#[test]
fn cell_over_voltage_trips_after_its_delay_and_recovers_with_hysteresis() {
    let mut pack = Pack::lfp(); // 3.650 V protection, 3.400 V recovery, 2 s delay
    pack.cells[5] = Millivolts(3660);
    pack.run(2);
    assert!(pack.events.is_empty(), "still within the delay");
    pack.run(1);
    assert_eq!(
        pack.transitions(),
        vec![(2, ProtectionKind::CellOverVoltage, Transition::Tripped)]
    );
    assert_eq!(pack.events[0].value, 3660);
    assert_eq!(pack.events[0].threshold, 3650);
    assert!(!pack.protection.charge_allowed(&pack.settings));
    assert!(pack.protection.discharge_allowed(&pack.settings));
    assert_eq!(pack.protection.warnings(), Warnings::CELL_OVER_VOLTAGE);
    // Falling below the protection is not enough: recovery needs 3.400 V.
    pack.cells[5] = Millivolts(3500);
    pack.run(10);
    assert!(pack.protection.is_active(ProtectionKind::CellOverVoltage));
    pack.cells[5] = Millivolts(3400);
    pack.run(3);
    assert_eq!(
        pack.transitions()[1],
        (15, ProtectionKind::CellOverVoltage, Transition::Recovered)
    );
    assert!(pack.protection.charge_allowed(&pack.settings));
    assert_eq!(pack.protection.warnings(), Warnings::empty());
}

#[test]
fn a_spike_shorter_than_the_delay_does_not_trip() {
    let mut pack = Pack::lfp();
    pack.cells[0] = Millivolts(2500);
    pack.run(1);
    pack.cells[0] = Millivolts(3300);
    pack.run(5);
    assert!(pack.events.is_empty());
}

#[test]
fn under_voltage_blocks_discharge_and_total_under_voltage_follows_the_pack() {
    let mut pack = Pack::lfp();
    pack.cells = vec![Millivolts(2590); 16];
    pack.run(3);
    let kinds: Vec<ProtectionKind> = pack.protection.active().collect();
    assert_eq!(
        kinds,
        vec![
            ProtectionKind::TotalUnderVoltage,
            ProtectionKind::CellUnderVoltage
        ]
    );
    assert!(!pack.protection.discharge_allowed(&pack.settings));
    assert!(pack.protection.charge_allowed(&pack.settings));
    assert_eq!(
        pack.protection.warnings(),
        Warnings::CELL_UNDER_VOLTAGE | Warnings::DISCHARGE_UNDER_VOLTAGE
    );
}

#[test]
fn cold_charging_is_blocked_until_the_recovery_temperature_holds() {
    let mut pack = Pack::lfp(); // charge low 0 degC, recovery 5 degC, temperature delay 5 s
    pack.temperatures = vec![Celsius(1), Celsius(-1)];
    pack.run(6);
    assert_eq!(
        pack.protection.active().collect::<Vec<_>>(),
        vec![ProtectionKind::ChargeLowTemperature]
    );
    assert!(!pack.protection.charge_allowed(&pack.settings));
    assert!(
        pack.protection.discharge_allowed(&pack.settings),
        "-1 degC is fine for discharge"
    );
    pack.temperatures = vec![Celsius(4), Celsius(3)];
    pack.run(20);
    assert!(pack
        .protection
        .is_active(ProtectionKind::ChargeLowTemperature));
    pack.temperatures = vec![Celsius(6), Celsius(5)];
    pack.run(6);
    assert!(!pack
        .protection
        .is_active(ProtectionKind::ChargeLowTemperature));
}

#[test]
fn box_over_temperature_with_equal_recovery_uses_the_default_hysteresis() {
    let mut pack = Pack::lfp();
    // As on real devices (vectors A01..A06): protection = recovery = 100 degC.
    pack.settings.box_over_temperature_protection = 100;
    pack.settings.box_over_temperature_recovery = 100;
    pack.box_temperature = Celsius(100);
    pack.run(6);
    assert!(pack
        .protection
        .is_active(ProtectionKind::BoxOverTemperature));
    pack.box_temperature = Celsius(99);
    pack.run(10);
    assert!(
        pack.protection
            .is_active(ProtectionKind::BoxOverTemperature),
        "no flapping at 99"
    );
    pack.box_temperature = Celsius(95);
    pack.run(6);
    assert!(!pack
        .protection
        .is_active(ProtectionKind::BoxOverTemperature));
}

#[test]
fn charge_high_temperature_recovers_5_k_below_its_threshold() {
    // No recovery setting exists for 0xA3: the fixed hysteresis applies (it once recovered
    // only below 0 degC).
    let mut pack = Pack::lfp();
    pack.settings.charge_high_temperature_protection = 20;
    pack.temperatures = vec![Celsius(25), Celsius(25)];
    pack.run(6);
    assert!(pack
        .protection
        .is_active(ProtectionKind::ChargeHighTemperature));
    pack.temperatures = vec![Celsius(16), Celsius(16)];
    pack.run(10);
    assert!(
        pack.protection
            .is_active(ProtectionKind::ChargeHighTemperature),
        "no recovery within the hysteresis"
    );
    pack.settings.charge_high_temperature_protection = 45;
    pack.run(6);
    assert!(!pack
        .protection
        .is_active(ProtectionKind::ChargeHighTemperature));
}

#[test]
fn over_current_recovers_after_the_hold_time_and_latches_after_five_trips() {
    let mut pack = Pack::lfp(); // discharge 110 A, 10 s delay
    pack.current = Milliamps(-120_000);
    pack.run(11);
    assert_eq!(
        pack.transitions(),
        vec![(
            10,
            ProtectionKind::DischargeOverCurrent,
            Transition::Tripped
        )]
    );
    assert!(!pack.protection.discharge_allowed(&pack.settings));
    pack.current = Milliamps(0); // the open MOSFET stops the current
    pack.run(59);
    assert!(pack
        .protection
        .is_active(ProtectionKind::DischargeOverCurrent));
    pack.run(1);
    assert_eq!(
        pack.transitions()[1],
        (
            70,
            ProtectionKind::DischargeOverCurrent,
            Transition::Recovered
        )
    );
    // The load is still there: trip, hold, recover, four more times.
    for _ in 0..4 {
        pack.current = Milliamps(-120_000);
        pack.run(11);
        pack.current = Milliamps(0);
        pack.run(60);
    }
    let last = *pack.transitions().last().unwrap();
    assert_eq!(last.1, ProtectionKind::DischargeOverCurrent);
    assert_eq!(last.2, Transition::Latched);
    assert!(pack.protection.is_latched());
    pack.run(600);
    assert!(
        !pack.protection.discharge_allowed(&pack.settings),
        "latched until reset"
    );
    pack.protection.reset_latches(pack.now);
    assert!(pack.protection.discharge_allowed(&pack.settings));
}

#[test]
fn low_capacity_is_a_warning_without_mosfet_action() {
    let mut pack = Pack::lfp(); // alarm at 20 %
    pack.soc = 19;
    pack.run(6);
    assert_eq!(pack.protection.warnings(), Warnings::LOW_CAPACITY);
    assert!(pack.protection.charge_allowed(&pack.settings));
    assert!(pack.protection.discharge_allowed(&pack.settings));
    pack.soc = 24;
    pack.run(10);
    assert_eq!(
        pack.protection.warnings(),
        Warnings::LOW_CAPACITY,
        "clears at 25 %"
    );
    pack.soc = 25;
    pack.run(6);
    assert_eq!(pack.protection.warnings(), Warnings::empty());
}

#[test]
fn differences_between_cells_and_sensors_open_both_mosfets() {
    let mut pack = Pack::lfp();
    pack.cells[3] = Millivolts(2990); // 310 mV below the others: difference protection 300 mV
    pack.temperatures = vec![Celsius(20), Celsius(41)];
    pack.run(6);
    assert!(pack
        .protection
        .is_active(ProtectionKind::CellVoltageDifference));
    assert!(pack
        .protection
        .is_active(ProtectionKind::TemperatureDifference));
    assert_eq!(
        pack.protection.status(&pack.settings, false),
        Status::empty()
    );
}

#[test]
fn user_switches_and_balancing_show_in_the_status_bits() {
    let mut pack = Pack::lfp();
    pack.run(1);
    assert_eq!(
        pack.protection.status(&pack.settings, true),
        Status::CHARGE_MOSFET_ON | Status::DISCHARGE_MOSFET_ON | Status::BALANCING
    );
    pack.settings.charge_mosfet_enabled = false;
    assert_eq!(
        pack.protection.status(&pack.settings, false),
        Status::DISCHARGE_MOSFET_ON
    );
}

#[test]
fn events_read_as_sentences() {
    let mut pack = Pack::lfp();
    pack.cells[5] = Millivolts(3660);
    pack.run(3);
    assert_eq!(
        pack.events[0].to_string(),
        "cell_over_voltage tripped: 3660 mV (threshold 3650 mV) at 2.000 s"
    );
}
