//! The voltage of a resting cell, averaged.
//!
//! When the current stops, the terminal voltage creeps towards the OCV: the RC pairs within
//! a minute, the solid-state diffusion for many minutes (LFP's graphite: a rest of a few
//! minutes after a heavy load still reads its OCV several percent of SOC off, always on the
//! side of the last current). Fitting free exponentials to a rest of a minute or two and
//! extrapolating them is ill-conditioned for the slow part; the estimator instead reads the
//! rest's voltage as it is and corrects the SOC it gives by the diffusion shift that the
//! current history predicts (see `model`). This module only averages the rest's voltage, so
//! that the reading is not one noisy sample:
//!
//! ```text
//! mean <- mean + (1 - exp(-dt / tau)) * (v - mean)
//! ```
//!
//! an exponentially weighted mean over the last `tau` seconds or so, which follows what is
//! left of the relaxation with a lag of about `tau`.

/// The averaged voltage of one rest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RestVoltage {
    average_s: f64,
    elapsed_s: f64,
    mean_v: Option<f64>,
}

impl RestVoltage {
    /// A new rest, averaged over about `average_s` seconds.
    pub(crate) fn new(average_s: f64) -> RestVoltage {
        RestVoltage {
            average_s: average_s.max(1e-3),
            elapsed_s: 0.0,
            mean_v: None,
        }
    }

    /// Time since the rest began, seconds.
    pub(crate) fn elapsed_s(&self) -> f64 {
        self.elapsed_s
    }

    /// Adds a sample `dt_s` after the previous one (0 for the first) with voltage `voltage_v`.
    pub(crate) fn push(&mut self, dt_s: f64, voltage_v: f64) {
        self.elapsed_s += dt_s;
        let weight = 1.0 - libm::exp(-dt_s / self.average_s);
        self.mean_v = Some(match self.mean_v {
            None => voltage_v,
            Some(mean) => mean + weight * (voltage_v - mean),
        });
    }

    /// The averaged voltage so far; `None` before the first sample.
    pub(crate) fn mean_v(&self) -> Option<f64> {
        self.mean_v
    }

    /// Standard deviation of the mean from white noise of `noise_v` per sample taken every
    /// `dt_s` seconds.
    pub(crate) fn noise_std_v(&self, noise_v: f64, dt_s: f64) -> f64 {
        let samples = (2.0 * self.average_s / dt_s.max(1e-3)).clamp(1.0, 1.0 + self.elapsed_s);
        noise_v / libm::sqrt(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_the_noise_and_follows_the_relaxation() {
        let mut rest = RestVoltage::new(20.0);
        assert_eq!(rest.mean_v(), None);
        for t in 0..300 {
            let t = f64::from(t);
            let noise = if t as u32 % 2 == 0 { 0.002 } else { -0.002 };
            let v = 3.30 - 0.010 * libm::exp(-t / 100.0) + noise;
            rest.push(if t == 0.0 { 0.0 } else { 1.0 }, v);
        }
        let mean = rest.mean_v().unwrap_or(0.0);
        // Now: 3.30 - 0.5 mV; a lag of ~20 s: ~0.1 mV more; the noise averages out.
        assert!((mean - (3.30 - 0.0006)).abs() < 2e-4, "{mean}");
        assert_eq!(rest.elapsed_s(), 299.0);
        let std = rest.noise_std_v(0.002, 1.0);
        assert!((std - 0.002 / libm::sqrt(40.0)).abs() < 1e-9, "{std}");
    }
}
