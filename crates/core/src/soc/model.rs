//! The cell model the estimator runs beside its coulomb counter: a series resistance, two RC
//! pairs and a one-state hysteresis (Plett's model; LFP is the chemistry that needs it).
//!
//! Terminal voltage, with the current `i` positive when charging:
//!
//! ```text
//! v  = ocv(soc) + hysteresis_v * h + f(T)^e * (k0 * r0 * i + k1 * r1 * x1 + k2 * r2 * x2)
//! xn <- xn * exp(-dt / tau_n) + (1 - exp(-dt / tau_n)) * i
//! ```
//!
//! `xn` is the current filtered by the time constant of pair `n` (the RC voltage per ohm),
//! `r0`, `r1`, `r2` and the time constants are the 25 degC values of [`CellParameters`] and
//! `f(T)` is [`CellParameters::resistance_factor`]. The factors `kn` and the exponent `e` are
//! not part of this model: the estimator's filter learns them (what the voltage says about
//! them is linear in `kn`), as the pulse-fitted table values are 20-70 mV short of a cell's
//! polarisation under sustained load, and its temperature dependence is not quite Arrhenius.
//! This module gives the "regressors": each element's voltage at factor 1.
//!
//! The model also keeps the current filtered by the solid-state diffusion time constant (the
//! diffusion current): under a sustained current the particles' surfaces run ahead of their
//! bulk, so a resting cell shows the OCV of a SOC shifted from the true (bulk) one by an
//! amount proportional to that current, which relaxes over minutes. On Prada2013 LFP (PyBaMM
//! DFN, 10-25 degC) the shift is 0.10 of SOC per C of diffusion current with a 300 s time
//! constant: it explains rest voltages on the sloped parts and at the knees to 0.4 % of SOC
//! RMS, where reading them as OCV errs by 2.6 % (up to 8 %), always on the side of the last
//! current. The estimator corrects rest readings by it (`SocConfig::diffusion_soc_per_c`).
//!
//! The hysteresis state `h` moves towards +1 while charging and -1 while discharging,
//! exponentially in the charge moved: `h <- sign(i) + (h - sign(i)) * exp(-rate * |delta soc|)`,
//! and stays where it is at rest.

use crate::chemistry::CellParameters;

/// Number of RC pairs.
pub(crate) const PAIRS: usize = 2;
/// Number of resistive elements: the series resistance and the RC pairs.
pub(crate) const ELEMENTS: usize = 1 + PAIRS;

/// Polarisation and hysteresis state of one cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CellModel {
    series_ohm: f64,
    resistances_ohm: [f64; PAIRS],
    time_constants_s: [f64; PAIRS],
    diffusion_tau_s: f64,
    hysteresis_v: f64,
    hysteresis_rate: f64,
    filtered_currents_a: [f64; PAIRS],
    diffusion_current_a: f64,
    hysteresis: f64,
}

impl CellModel {
    /// A relaxed cell whose hysteresis branch is not known (`h` = 0, between the branches).
    pub(crate) fn new(
        params: CellParameters,
        diffusion_tau_s: f64,
        hysteresis_rate: f64,
    ) -> CellModel {
        CellModel {
            series_ohm: f64::from(params.r0_ohm),
            resistances_ohm: [f64::from(params.r1_ohm), f64::from(params.r2_ohm)],
            time_constants_s: [
                f64::from(params.tau1_s).max(1e-3),
                f64::from(params.tau2_s).max(1e-3),
            ],
            diffusion_tau_s: diffusion_tau_s.max(1e-3),
            hysteresis_v: f64::from(params.hysteresis_v),
            hysteresis_rate,
            filtered_currents_a: [0.0; PAIRS],
            diffusion_current_a: 0.0,
            hysteresis: 0.0,
        }
    }

    /// Advances the filtered currents and the hysteresis over `dt_s` seconds during which
    /// `current_a` (positive = charging) flowed and the SOC moved by `soc_change`.
    pub(crate) fn advance(&mut self, dt_s: f64, current_a: f64, soc_change: f64) {
        for (x, tau) in self
            .filtered_currents_a
            .iter_mut()
            .zip(self.time_constants_s)
        {
            *x = follow(*x, current_a, dt_s, tau);
        }
        self.diffusion_current_a = follow(
            self.diffusion_current_a,
            current_a,
            dt_s,
            self.diffusion_tau_s,
        );
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

    /// Each element's voltage at factor 1 with `current_a` flowing now, scaled by
    /// `resistance_factor`: series resistance first, then the RC pairs.
    pub(crate) fn regressors(&self, current_a: f64, resistance_factor: f64) -> [f64; ELEMENTS] {
        let mut out = [self.series_ohm * current_a, 0.0, 0.0];
        for n in 0..PAIRS {
            out[n + 1] = self.resistances_ohm[n] * self.filtered_currents_a[n];
        }
        out.map(|volts| volts * resistance_factor)
    }

    /// What [`CellModel::regressors`] tends to under a constant `current_a`.
    pub(crate) fn steady_regressors(
        &self,
        current_a: f64,
        resistance_factor: f64,
    ) -> [f64; ELEMENTS] {
        let driven = current_a * resistance_factor;
        [
            self.series_ohm * driven,
            self.resistances_ohm[0] * driven,
            self.resistances_ohm[1] * driven,
        ]
    }

    /// The current filtered by the diffusion time constant, amps (positive = charging).
    pub(crate) fn diffusion_current_a(&self) -> f64 {
        self.diffusion_current_a
    }

    /// Where the OCV sits relative to the mean branch: `hysteresis_v * h`.
    pub(crate) fn hysteresis_offset_v(&self) -> f64 {
        self.hysteresis_v * self.hysteresis
    }

    /// How far the OCV may still be from the modelled branch: `hysteresis_v * (1 - |h|)`,
    /// the whole half-gap when the branch is unknown, nothing once it is settled.
    pub(crate) fn hysteresis_uncertainty_v(&self) -> f64 {
        self.hysteresis_v * (1.0 - self.hysteresis.abs())
    }

    /// Half the gap between the hysteresis branches, volts.
    pub(crate) fn hysteresis_gap_v(&self) -> f64 {
        self.hysteresis_v
    }

    /// Sets half the gap between the hysteresis branches (when it has been learned), volts.
    pub(crate) fn set_hysteresis_gap_v(&mut self, volts: f64) {
        self.hysteresis_v = volts.max(0.0);
    }

    /// The hysteresis state, -1 (discharge branch) to +1 (charge branch).
    pub(crate) fn hysteresis(&self) -> f64 {
        self.hysteresis
    }

    /// Puts the cell on a hysteresis branch (after a full charge: +1).
    pub(crate) fn set_hysteresis(&mut self, state: f64) {
        self.hysteresis = state.clamp(-1.0, 1.0);
    }
}

/// First-order lag: `value` moved towards `target` over `dt_s` with time constant `tau_s`.
fn follow(value: f64, target: f64, dt_s: f64, tau_s: f64) -> f64 {
    target + (value - target) * libm::exp(-dt_s / tau_s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chemistry::Chemistry;

    #[test]
    fn filtered_currents_settle_to_the_current() {
        let params = Chemistry::Nmc.cell();
        let mut model = CellModel::new(params, 600.0, 0.0);
        for _ in 0..20_000 {
            model.advance(1.0, 2.0, 0.0);
        }
        let settled = model.regressors(2.0, 1.5);
        let steady = model.steady_regressors(2.0, 1.5);
        for (a, b) in settled.iter().zip(steady) {
            assert!((a - b).abs() < 1e-9, "{settled:?} {steady:?}");
        }
        let dc = 2.0 * 1.5 * f64::from(params.r0_ohm + params.r1_ohm + params.r2_ohm);
        assert!((steady.iter().sum::<f64>() - dc).abs() < 1e-6);
        assert!((model.diffusion_current_a() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn hysteresis_switches_branch_with_the_current_and_holds_at_rest() {
        let params = Chemistry::Lfp.cell();
        let mut model = CellModel::new(params, 600.0, 25.0);
        assert_eq!(
            model.hysteresis_uncertainty_v(),
            f64::from(params.hysteresis_v)
        );
        // 20 % SOC of charging: on the charge branch.
        model.advance(1.0, 1.0, 0.2);
        assert!(model.hysteresis() > 0.99, "{}", model.hysteresis());
        // Rest: unchanged.
        model.advance(600.0, 0.0, 0.0);
        assert!(model.hysteresis() > 0.99);
        // 2 % of discharge: moving, not there yet; 20 %: on the discharge branch.
        model.advance(1.0, -1.0, -0.02);
        assert!(
            (-0.5..0.5).contains(&model.hysteresis()),
            "{}",
            model.hysteresis()
        );
        model.advance(1.0, -1.0, -0.2);
        assert!(model.hysteresis() < -0.99);
        let offset = model.hysteresis_offset_v();
        assert!(
            (offset + f64::from(params.hysteresis_v)).abs() < 1e-3,
            "{offset}"
        );
    }
}
