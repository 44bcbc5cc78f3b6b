//! Unit tests of the estimator on synthetic cells: full-charge anchoring, hysteresis, the
//! slope weighting of the voltage correction, capacity learning, cycle counting, robustness.

use core::time::Duration;

use super::*;

const SECOND: Duration = Duration::from_secs(1);

/// A cell with no resistance and no hysteresis: its voltage is the table's OCV.
struct IdealCell {
    table: OcvTable,
    capacity_ah: f64,
    soc: f64,
}

impl IdealCell {
    /// One second at `current_a` (positive = charging); returns the voltage after it.
    fn step(&mut self, current_a: f64) -> f32 {
        self.soc = (self.soc + current_a / 3600.0 / self.capacity_ah).clamp(0.0, 1.0);
        self.table.voltage(self.soc as f32)
    }
}

fn run(estimator: &mut SocEstimator, cell: &mut IdealCell, current_a: f64, seconds: u32) {
    for _ in 0..seconds {
        let voltage = cell.step(current_a);
        estimator.update(SECOND, current_a as f32, voltage, 25.0);
    }
}

fn estimator_at(chemistry: Chemistry, capacity_ah: f32, soc: f32) -> SocEstimator {
    let mut config = SocConfig::new(chemistry, capacity_ah);
    config.initial_soc = Some(soc);
    SocEstimator::new(config)
}

#[test]
fn full_charge_resets_soc_to_the_charge_voltage_and_the_charge_branch() {
    // Told 70 %: charging at the tail current at the table's top voltage is 100 %.
    let mut estimator = estimator_at(Chemistry::Lfp, 2.3, 0.7);
    estimator.update(Duration::ZERO, 1.0, 3.40, 25.0);
    assert!(estimator.soc() < 0.75);
    estimator.update(SECOND, 0.1, 3.60, 25.0);
    let estimate = estimator.estimate();
    assert!(estimate.soc > 0.99, "{estimate:?}");
    assert_eq!(estimate.full_charges, 1);
    assert_eq!(estimate.hysteresis, 1.0);
    assert!(estimate.soc_std < 0.01);
    // Staying at full is one full charge, not one per sample.
    estimator.update(SECOND, 0.08, 3.60, 25.0);
    assert_eq!(estimator.estimate().full_charges, 1);
    // An NMC cell held at 4.15 V is about 95 % full by its OCV table, not 100 %.
    let mut nmc = estimator_at(Chemistry::Nmc, 5.0, 0.7);
    nmc.update(Duration::ZERO, 2.0, 4.10, 25.0);
    nmc.update(SECOND, 0.2, 4.15, 25.0);
    assert_eq!(nmc.estimate().full_charges, 1);
    assert!((0.94..0.97).contains(&nmc.soc()), "{}", nmc.soc());
    // Above the tail current it is not full yet.
    let mut charging = estimator_at(Chemistry::Lfp, 2.3, 0.7);
    charging.update(Duration::ZERO, 1.0, 3.50, 25.0);
    charging.update(SECOND, 1.0, 3.50, 25.0);
    assert_eq!(charging.estimate().full_charges, 0);
}

#[test]
fn hysteresis_state_follows_the_direction_of_the_current() {
    let mut estimator = estimator_at(Chemistry::Lfp, 2.3, 0.5);
    let mut cell = IdealCell {
        table: *Chemistry::Lfp.ocv(),
        capacity_ah: 2.3,
        soc: 0.5,
    };
    estimator.update(Duration::ZERO, 0.0, cell.step(0.0), 25.0);
    assert_eq!(estimator.estimate().hysteresis, 0.0);
    // 10 % of charge: charge branch.
    run(&mut estimator, &mut cell, 2.3, 360);
    assert!(estimator.estimate().hysteresis > 0.9);
    // A rest keeps it.
    run(&mut estimator, &mut cell, 0.0, 1800);
    assert!(estimator.estimate().hysteresis > 0.9);
    // 1 % of discharge: on its way; 20 %: discharge branch.
    run(&mut estimator, &mut cell, -2.3, 36);
    let midway = estimator.estimate().hysteresis;
    assert!((-0.9..0.9).contains(&midway), "{midway}");
    run(&mut estimator, &mut cell, -2.3, 684);
    assert!(estimator.estimate().hysteresis < -0.9);
}

#[test]
fn voltage_corrects_nmc_but_not_the_lfp_plateau() {
    // Both told 60 % while the cell rests at 50 %.
    for (chemistry, corrected) in [(Chemistry::Nmc, true), (Chemistry::Lfp, false)] {
        let mut estimator = estimator_at(chemistry, 5.0, 0.6);
        let mut cell = IdealCell {
            table: *chemistry.ocv(),
            capacity_ah: 5.0,
            soc: 0.5,
        };
        estimator.update(Duration::ZERO, 0.0, cell.step(0.0), 25.0);
        run(&mut estimator, &mut cell, 0.0, 1800);
        let error = (estimator.soc() - 0.5).abs();
        if corrected {
            assert!(error < 0.01, "{chemistry}: {error}");
        } else {
            assert!(
                error > 0.09,
                "{chemistry}: the plateau moved the SOC to {}",
                estimator.soc()
            );
        }
    }
}

#[test]
fn lfp_converges_at_the_low_knee() {
    // Told 50 %, really 30 %: the plateau says nothing, the knee below 15 % does.
    let mut estimator = estimator_at(Chemistry::Lfp, 2.3, 0.5);
    let mut cell = IdealCell {
        table: *Chemistry::Lfp.ocv(),
        capacity_ah: 2.3,
        soc: 0.3,
    };
    estimator.update(Duration::ZERO, 0.0, cell.step(0.0), 25.0);
    run(&mut estimator, &mut cell, -1.15, 1080);
    assert!((cell.soc - 0.15).abs() < 1e-6);
    run(&mut estimator, &mut cell, -0.23, 1800);
    run(&mut estimator, &mut cell, 0.0, 1800);
    let error = (f64::from(estimator.soc()) - cell.soc).abs();
    assert!(
        error < 0.02,
        "true {} estimated {}",
        cell.soc,
        estimator.soc()
    );
}

#[test]
fn capacity_learning_converges_from_a_wrong_initial_capacity() {
    // Told 5.0 Ah, really 4.5 Ah: rests at 90 % and 20 % are anchors 70 % apart.
    let mut estimator = estimator_at(Chemistry::Nmc, 5.0, 0.9);
    let mut cell = IdealCell {
        table: *Chemistry::Nmc.ocv(),
        capacity_ah: 4.5,
        soc: 0.9,
    };
    estimator.update(Duration::ZERO, 0.0, cell.step(0.0), 25.0);
    for _ in 0..3 {
        run(&mut estimator, &mut cell, 0.0, 1800);
        run(&mut estimator, &mut cell, -2.25, 5040);
        run(&mut estimator, &mut cell, 0.0, 1800);
        run(&mut estimator, &mut cell, 2.25, 5040);
    }
    let estimate = estimator.estimate();
    assert!(estimate.capacity_updates >= 3, "{estimate:?}");
    assert!((estimate.capacity_ah - 4.5).abs() < 0.09, "{estimate:?}");
    assert!((estimate.soh - 0.9).abs() < 0.02, "{estimate:?}");
}

#[test]
fn equivalent_full_cycles_count_throughput_over_twice_the_capacity() {
    let mut estimator = estimator_at(Chemistry::Nmc, 5.0, 1.0);
    estimator.update(Duration::ZERO, 0.0, 4.2, 25.0);
    // One hour at 1C down, one hour at 1C up: one cycle.
    for current in [-5.0, 5.0] {
        for _ in 0..3600 {
            estimator.update(SECOND, current, 3.7, 25.0);
        }
    }
    let cycles = estimator.estimate().equivalent_full_cycles;
    assert!((cycles - 1.0).abs() < 0.01, "{cycles}");
}

#[test]
fn zero_dt_non_finite_inputs_and_extremes_keep_the_soc_finite_and_in_range() {
    let mut estimator = estimator_at(Chemistry::Lfp, 2.3, 0.5);
    estimator.update(Duration::ZERO, 0.0, 3.3, 25.0);
    for _ in 0..1000 {
        estimator.update(Duration::ZERO, 500.0, 3.3, 25.0);
    }
    assert_eq!(estimator.soc(), 0.5);
    estimator.update(SECOND, f32::NAN, 3.3, 25.0);
    estimator.update(SECOND, 1.0, f32::INFINITY, 25.0);
    estimator.update(SECOND, 1.0, 3.3, f32::NAN);
    // A day-long gap at a huge discharge current, at -40 and +80 degC.
    estimator.update(Duration::from_secs(86_400), -500.0, 0.0, -40.0);
    estimator.update(Duration::from_secs(86_400), -500.0, 0.0, 80.0);
    let estimate = estimator.estimate();
    assert_eq!(estimate.soc, 0.0);
    for value in [
        estimate.soc_std,
        estimate.capacity_ah,
        estimate.soh,
        estimate.equivalent_full_cycles,
        estimate.hysteresis,
        estimate.ocv_v,
        estimate.voltage_soc,
        estimate.resistance_scale,
    ] {
        assert!(value.is_finite(), "{estimate:?}");
    }
    estimator.update(Duration::from_secs(86_400), 500.0, 9.0, 25.0);
    assert!((0.0..=1.0).contains(&estimator.soc()));
}

#[test]
fn without_an_initial_soc_the_first_voltage_sets_it() {
    let mut estimator = SocEstimator::new(SocConfig::new(Chemistry::Nmc, 5.0));
    estimator.update(Duration::ZERO, 0.0, Chemistry::Nmc.ocv().voltage(0.3), 25.0);
    assert!((estimator.soc() - 0.3).abs() < 0.005, "{}", estimator.soc());
}
