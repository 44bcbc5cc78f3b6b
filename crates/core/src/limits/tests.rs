//! Limits of a 16-cell 100 Ah LFP pack under changing conditions.

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use super::*;

fn settings() -> Settings {
    Settings::preset(Chemistry::Lfp, 16, 100) // OC: 110 A discharge, 55 A charge
}

struct Conditions {
    cells: Vec<Millivolts>,
    temperatures: Vec<Celsius>,
    soc: f32,
    resistance: f32,
    charge_allowed: bool,
    discharge_allowed: bool,
}

impl Conditions {
    fn nominal() -> Conditions {
        Conditions {
            cells: vec![Millivolts(3300); 16],
            temperatures: vec![Celsius(25), Celsius(25)],
            soc: 0.5,
            resistance: series_element_resistance(Chemistry::Lfp, 100.0, 25.0),
            charge_allowed: true,
            discharge_allowed: true,
        }
    }

    fn inputs(&self) -> LimitInputs<'_> {
        LimitInputs {
            cells: &self.cells,
            temperatures: &self.temperatures,
            soc: self.soc,
            cell_resistance_ohm: self.resistance,
            charge_allowed: self.charge_allowed,
            discharge_allowed: self.discharge_allowed,
        }
    }
}

fn limits(conditions: &Conditions) -> PackLimits {
    LimitCalculator::new(LimitsConfig::default()).update(
        Instant::ZERO,
        &settings(),
        &conditions.inputs(),
    )
}

#[test]
fn nominal_pack_gets_its_c_rates_and_voltage_limits() {
    let l = limits(&Conditions::nominal());
    assert!(
        (l.charge_current_a - 49.5).abs() < 0.01,
        "0.9 x 55 A over-current beats 0.5 C: {l:?}"
    );
    assert!(
        (l.discharge_current_a - 99.0).abs() < 0.01,
        "0.9 x 110 A beats 1 C: {l:?}"
    );
    assert!((l.charge_voltage_v - 56.0).abs() < 0.01, "16 x 3.50 V");
    assert!(
        (l.discharge_voltage_v - 44.8).abs() < 0.01,
        "16 x (2.60 + 3.00) / 2"
    );
}

#[test]
fn a_high_cell_bounds_charging_by_physics() {
    let mut c = Conditions::nominal();
    c.cells[7] = Millivolts(3590); // 10 mV below 3.60 V (protection 3.65 - 0.05 margin)
    let l = limits(&c);
    let expected = 0.010 / c.resistance;
    assert!(
        (l.charge_current_a - expected).abs() < 0.5,
        "{l:?}, expected {expected}"
    );
    c.cells[7] = Millivolts(3610);
    assert_eq!(limits(&c).charge_current_a, 0.0);
}

#[test]
fn temperature_derates_linearly_to_zero_at_the_protection() {
    let mut c = Conditions::nominal();
    c.temperatures = vec![Celsius(5), Celsius(25)]; // charge low protection 0 degC, band 10 K
    let l = limits(&c);
    assert!((l.charge_current_a - 49.5 * 0.5).abs() < 0.01, "{l:?}");
    assert!(
        (l.discharge_current_a - 99.0).abs() < 0.01,
        "discharge protection is -20 degC"
    );
    c.temperatures = vec![Celsius(0), Celsius(25)];
    assert_eq!(limits(&c).charge_current_a, 0.0);
    c.temperatures = vec![Celsius(60), Celsius(60)];
    let hot = limits(&c);
    assert_eq!((hot.charge_current_a, hot.discharge_current_a), (0.0, 0.0));
}

#[test]
fn soc_tapers_charge_near_full_and_discharge_near_empty() {
    let mut c = Conditions::nominal();
    c.soc = 1.0;
    assert!(
        (limits(&c).charge_current_a - 2.5).abs() < 0.01,
        "5 % of 0.5 C"
    );
    c.soc = 0.95;
    assert!((limits(&c).charge_current_a - 26.25).abs() < 0.01);
    c.soc = 0.0;
    assert!((limits(&c).discharge_current_a - 5.0).abs() < 0.01);
}

#[test]
fn a_closed_direction_has_no_current() {
    let mut c = Conditions::nominal();
    c.charge_allowed = false;
    let l = limits(&c);
    assert_eq!(l.charge_current_a, 0.0);
    assert!(l.discharge_current_a > 0.0);
}

#[test]
fn increases_ramp_decreases_do_not_and_repeats_do_not_drift() {
    let s = settings();
    let mut calculator = LimitCalculator::new(LimitsConfig::default());
    let mut c = Conditions::nominal();
    c.charge_allowed = false;
    assert_eq!(
        calculator
            .update(Instant::ZERO, &s, &c.inputs())
            .charge_current_a,
        0.0
    );
    c.charge_allowed = true;
    let t1 = Instant::ZERO + Duration::from_secs(10);
    // 1 % of 100 Ah per second for 10 s.
    let first = calculator.update(t1, &s, &c.inputs());
    assert!((first.charge_current_a - 10.0).abs() < 1e-3, "{first:?}");
    for _ in 0..5 {
        assert_eq!(
            calculator.update(t1, &s, &c.inputs()),
            first,
            "same instant, same limits"
        );
    }
    let t2 = t1 + Duration::from_secs(100);
    assert!((calculator.update(t2, &s, &c.inputs()).charge_current_a - 49.5).abs() < 1e-3);
    c.charge_allowed = false;
    let t3 = t2 + Duration::from_millis(1);
    assert_eq!(
        calculator.update(t3, &s, &c.inputs()).charge_current_a,
        0.0,
        "drops at once"
    );
}

#[test]
fn resistance_scales_with_parallel_cells_and_cold() {
    let one = series_element_resistance(Chemistry::Lfp, 2.3, 25.0);
    let many = series_element_resistance(Chemistry::Lfp, 230.0, 25.0);
    assert!((one / many - 100.0).abs() < 1e-3);
    assert!(series_element_resistance(Chemistry::Lfp, 230.0, 0.0) > 2.5 * many);
}
