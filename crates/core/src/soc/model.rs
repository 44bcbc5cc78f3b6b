//! The cell model the estimator runs beside its coulomb counter: a series resistance, two RC
//! pairs and a one-state hysteresis (Plett's model; LFP is the chemistry that needs it).
//!
//! Terminal voltage, with the current `i` positive when charging:
//!
//! ```text
//! v = ocv(soc) + hysteresis_v * h + v_rc1 + v_rc2 + r0 * i
//! ```
//!
//! Resistances are the 25 degC values of [`CellParameters`] scaled by
//! [`CellParameters::resistance_factor`] and by two learned factors, bounded to 0.3..4: the
//! series resistance from every current step (the instantaneous voltage step over the current
//! step), the RC resistances from every stretch of constant current (how far the voltage moved
//! during it, less the OCV change, against how far the model's RC voltages moved). They absorb
//! what the table values miss: SOC dependence, a temperature dependence unlike the Arrhenius
//! law, ageing.
//!
//! The model also keeps the current averaged over [`SUSTAINED_TIME_S`]: after a sustained load
//! a real cell carries a slow (diffusion) polarisation that two RC pairs fitted to short pulses
//! do not capture, so the estimator distrusts the voltage in proportion to it.
//!
//! The hysteresis state `h` moves towards +1 while
//! charging and -1 while discharging, exponentially in the charge moved:
//! `h <- sign(i) + (h - sign(i)) * exp(-rate * |delta soc|)`, and stays where it is at rest.

use crate::chemistry::CellParameters;

/// Time constant of the sustained-current average, seconds.
pub(crate) const SUSTAINED_TIME_S: f64 = 600.0;
/// Bounds of the learned resistance factor.
const RESISTANCE_SCALE_RANGE: (f64, f64) = (0.3, 4.0);
/// Smallest modelled RC voltage change that teaches the RC factor anything, volts.
const MIN_RC_CHANGE_V: f64 = 0.005;
/// How far the resistance factor moves towards one step's measurement.
const RESISTANCE_LEARNING_RATE: f64 = 0.2;

/// Polarisation and hysteresis state of one cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CellModel {
    params: CellParameters,
    hysteresis_rate: f64,
    rc_voltages_v: [f64; 2],
    hysteresis: f64,
    sustained_current_a: f64,
    resistance_scale: f64,
    rc_scale: f64,
}

impl CellModel {
    /// A relaxed cell whose hysteresis branch is not known (`h` = 0, between the branches).
    pub(crate) fn new(params: CellParameters, hysteresis_rate: f64) -> CellModel {
        CellModel {
            params,
            hysteresis_rate,
            rc_voltages_v: [0.0; 2],
            hysteresis: 0.0,
            sustained_current_a: 0.0,
            resistance_scale: 1.0,
            rc_scale: 1.0,
        }
    }

    /// Advances the RC pairs and the hysteresis over `dt_s` seconds during which `current_a`
    /// (positive = charging) flowed and the SOC moved by `soc_change`.
    pub(crate) fn advance(
        &mut self,
        dt_s: f64,
        current_a: f64,
        resistance_factor: f64,
        soc_change: f64,
    ) {
        let pairs = [
            (self.params.r1_ohm, self.params.tau1_s),
            (self.params.r2_ohm, self.params.tau2_s),
        ];
        let scale = resistance_factor * self.rc_scale;
        for (voltage, (resistance, tau)) in self.rc_voltages_v.iter_mut().zip(pairs) {
            let decay = libm::exp(-dt_s / f64::from(tau).max(1e-3));
            let steady = f64::from(resistance) * scale * current_a;
            *voltage = steady + (*voltage - steady) * decay;
        }
        let decay = libm::exp(-dt_s / SUSTAINED_TIME_S);
        self.sustained_current_a = current_a + (self.sustained_current_a - current_a) * decay;
        self.advance_hysteresis(current_a, soc_change);
    }

    fn advance_hysteresis(&mut self, current_a: f64, soc_change: f64) {
        if current_a == 0.0 {
            return;
        }
        let branch = current_a.signum();
        let decay = libm::exp(-self.hysteresis_rate * soc_change.abs());
        self.hysteresis = branch + (self.hysteresis - branch) * decay;
    }

    /// The open-circuit voltage that the terminal voltage implies: the terminal voltage less
    /// the resistive drop, the RC voltages and the hysteresis offset.
    pub(crate) fn open_circuit_voltage(
        &self,
        voltage_v: f64,
        current_a: f64,
        resistance_factor: f64,
    ) -> f64 {
        let ohmic = self.series_resistance_ohm(resistance_factor) * current_a;
        voltage_v - ohmic - self.polarization_v() - self.hysteresis_offset_v()
    }

    /// Sum of the RC voltages.
    pub(crate) fn polarization_v(&self) -> f64 {
        self.rc_voltages_v.iter().sum()
    }

    /// Where the OCV sits relative to the mean branch: `hysteresis_v * h`.
    pub(crate) fn hysteresis_offset_v(&self) -> f64 {
        f64::from(self.params.hysteresis_v) * self.hysteresis
    }

    /// How far the OCV may still be from the modelled branch: `hysteresis_v * (1 - |h|)`,
    /// the whole half-gap when the branch is unknown, nothing once it is settled.
    pub(crate) fn hysteresis_uncertainty_v(&self) -> f64 {
        f64::from(self.params.hysteresis_v) * (1.0 - self.hysteresis.abs())
    }

    /// The hysteresis state, -1 (discharge branch) to +1 (charge branch).
    pub(crate) fn hysteresis(&self) -> f64 {
        self.hysteresis
    }

    /// Puts the cell on a hysteresis branch (after a full charge: +1).
    pub(crate) fn set_hysteresis(&mut self, state: f64) {
        self.hysteresis = state.clamp(-1.0, 1.0);
    }

    /// Total DC resistance at this temperature: r0 + r1 + r2, learned factor included.
    pub(crate) fn dc_resistance_ohm(&self, resistance_factor: f64) -> f64 {
        let rc =
            f64::from(self.params.r1_ohm + self.params.r2_ohm) * resistance_factor * self.rc_scale;
        self.series_resistance_ohm(resistance_factor) + rc
    }

    /// Series resistance r0 at this temperature, learned factor included.
    pub(crate) fn series_resistance_ohm(&self, resistance_factor: f64) -> f64 {
        f64::from(self.params.r0_ohm) * resistance_factor * self.resistance_scale
    }

    /// The current averaged over the last [`SUSTAINED_TIME_S`] or so, amps.
    pub(crate) fn sustained_current_a(&self) -> f64 {
        self.sustained_current_a
    }

    /// The learned series-resistance factor (1 = the table value).
    pub(crate) fn resistance_scale(&self) -> f64 {
        self.resistance_scale
    }

    /// The learned RC-resistance factor (1 = the table values).
    pub(crate) fn rc_scale(&self) -> f64 {
        self.rc_scale
    }

    /// Learns from a stretch of constant current: the RC voltages changed by `measured_v`
    /// (terminal voltage change less the OCV and hysteresis change) where the model predicted
    /// `modelled_v`.
    pub(crate) fn learn_rc_scale(&mut self, measured_v: f64, modelled_v: f64) {
        if modelled_v.abs() < MIN_RC_CHANGE_V {
            return;
        }
        let measured_scale = self.rc_scale * measured_v / modelled_v;
        let (low, high) = RESISTANCE_SCALE_RANGE;
        if !(low..=high).contains(&measured_scale) {
            return;
        }
        self.rc_scale += RESISTANCE_LEARNING_RATE * (measured_scale - self.rc_scale);
    }

    /// Learns from a current step: the voltage moved by `voltage_step_v` when the current
    /// moved by `current_step_a` within a sample or two.
    pub(crate) fn learn_resistance(
        &mut self,
        voltage_step_v: f64,
        current_step_a: f64,
        resistance_factor: f64,
    ) {
        let modelled = f64::from(self.params.r0_ohm) * resistance_factor;
        if current_step_a == 0.0 || modelled <= 0.0 {
            return;
        }
        let measured_scale = voltage_step_v / current_step_a / modelled;
        let (low, high) = RESISTANCE_SCALE_RANGE;
        if !(low..=high).contains(&measured_scale) {
            return;
        }
        self.resistance_scale +=
            RESISTANCE_LEARNING_RATE * (measured_scale - self.resistance_scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chemistry::Chemistry;

    #[test]
    fn rc_voltage_settles_to_current_times_resistance() {
        let params = Chemistry::Nmc.cell();
        let mut model = CellModel::new(params, 0.0);
        for _ in 0..3000 {
            model.advance(1.0, 2.0, 1.0, 0.0);
        }
        let expected = 2.0 * f64::from(params.r1_ohm + params.r2_ohm);
        assert!((model.polarization_v() - expected).abs() < 1e-6);
        let ocv = model.open_circuit_voltage(4.0, 2.0, 1.0);
        let drop = 2.0 * model.dc_resistance_ohm(1.0);
        assert!((ocv - (4.0 - drop)).abs() < 1e-6, "{ocv}");
    }

    #[test]
    fn hysteresis_switches_branch_with_the_current_and_holds_at_rest() {
        let params = Chemistry::Lfp.cell();
        let mut model = CellModel::new(params, 25.0);
        assert_eq!(
            model.hysteresis_uncertainty_v(),
            f64::from(params.hysteresis_v)
        );
        // 20 % SOC of charging: on the charge branch.
        model.advance(1.0, 1.0, 1.0, 0.2);
        assert!(model.hysteresis() > 0.99, "{}", model.hysteresis());
        // Rest: unchanged.
        model.advance(600.0, 0.0, 1.0, 0.0);
        assert!(model.hysteresis() > 0.99);
        // 2 % of discharge: moving, not there yet; 20 %: on the discharge branch.
        model.advance(1.0, -1.0, 1.0, -0.02);
        assert!(
            (-0.5..0.5).contains(&model.hysteresis()),
            "{}",
            model.hysteresis()
        );
        model.advance(1.0, -1.0, 1.0, -0.2);
        assert!(model.hysteresis() < -0.99);
        let offset = model.hysteresis_offset_v();
        assert!(
            (offset + f64::from(params.hysteresis_v)).abs() < 1e-3,
            "{offset}"
        );
    }
}
