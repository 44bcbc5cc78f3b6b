//! Accuracy of a SOC estimate against a known true SOC, accumulated sample by sample: RMSE,
//! maximum error, error at the end, and convergence time (the first time after which the error
//! stays within a band, 2 % by default).
//!
//! Errors are in SOC units (0.02 = 2 %), estimate minus truth.
//!
//! [`Knees`] says where an OCV curve is steep enough to tell a 2 % error: the goals for LFP
//! count "once a knee is reached" from there.

/// Default convergence band: 2 % SOC.
pub const DEFAULT_CONVERGENCE_BAND: f64 = 0.02;

/// OCV slope, volts per unit of SOC (10 mV per %), from which a curve counts as a knee.
///
/// A knee is where the voltage can tell a 2 % error: at 1 V per unit of SOC a 2 % error is
/// 20 mV, above LFP's hysteresis half-gap (12-15 mV) and the few millivolts of noise and table
/// error. LFP's sloped middle parts (0.2-0.5 V per unit on Prada2013: a 2 % error there is
/// 4-10 mV, within the hysteresis) are not knees.
pub const KNEE_SLOPE_V: f64 = 1.0;

/// The knees of an OCV curve: the SOC at or below which (`low`) and at or above which (`high`)
/// the curve stays at least as steep as a given slope to its end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Knees {
    /// End of the low knee, if the curve starts steep.
    pub low: Option<f64>,
    /// Start of the high knee, if the curve ends steep.
    pub high: Option<f64>,
}

impl Knees {
    /// The knees of the curve through `points` (SOC rising, volts): the runs of points at
    /// either end whose slope (centred difference, one-sided at the ends) is at least
    /// `min_slope_v` volts per unit of SOC. Where the SOC does not rise between neighbours
    /// there is no slope, and no knee.
    pub fn of_curve(points: &[(f64, f64)], min_slope_v: f64) -> Knees {
        let last = points.len().saturating_sub(1);
        let steep = |n: &usize| {
            let (a, b) = (points[n.saturating_sub(1)], points[(*n + 1).min(last)]);
            b.0 > a.0 && (b.1 - a.1) / (b.0 - a.0) >= min_slope_v
        };
        let low_end = (0..points.len()).take_while(steep).last();
        let high_start = (0..points.len()).rev().take_while(steep).last();
        Knees {
            low: low_end.map(|n| points[n].0),
            high: high_start.map(|n| points[n].0),
        }
    }

    /// Whether `soc` is in a knee.
    pub fn contain(&self, soc: f64) -> bool {
        self.low.is_some_and(|low| soc <= low) || self.high.is_some_and(|high| soc >= high)
    }
}

/// Running accuracy figures of one replay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SocMetrics {
    band: f64,
    samples: u64,
    sum_of_squares: f64,
    max_abs_error: f64,
    last_error: f64,
    start_s: Option<f64>,
    last_s: f64,
    within_band_since_s: Option<f64>,
}

impl Default for SocMetrics {
    fn default() -> SocMetrics {
        SocMetrics::new(DEFAULT_CONVERGENCE_BAND)
    }
}

impl SocMetrics {
    /// Empty figures; convergence means staying within `band` (SOC units) to the end.
    pub fn new(band: f64) -> SocMetrics {
        SocMetrics {
            band,
            samples: 0,
            sum_of_squares: 0.0,
            max_abs_error: 0.0,
            last_error: 0.0,
            start_s: None,
            last_s: 0.0,
            within_band_since_s: None,
        }
    }

    /// Adds one sample at `time_s` (any origin; times must not go back). Non-finite values are
    /// ignored.
    pub fn push(&mut self, time_s: f64, estimate: f64, truth: f64) {
        let error = estimate - truth;
        if !(error.is_finite() && time_s.is_finite()) {
            return;
        }
        let start = *self.start_s.get_or_insert(time_s);
        self.samples += 1;
        self.sum_of_squares += error * error;
        self.max_abs_error = self.max_abs_error.max(error.abs());
        self.last_error = error;
        self.last_s = time_s;
        if error.abs() >= self.band {
            self.within_band_since_s = None;
        } else if self.within_band_since_s.is_none() {
            self.within_band_since_s = Some(time_s - start);
        }
    }

    /// Number of samples taken.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Root-mean-square error; 0 without samples.
    pub fn rmse(&self) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        libm::sqrt(self.sum_of_squares / self.samples as f64)
    }

    /// Largest absolute error.
    pub fn max_abs_error(&self) -> f64 {
        self.max_abs_error
    }

    /// Error of the last sample (signed: estimate minus truth).
    pub fn end_error(&self) -> f64 {
        self.last_error
    }

    /// Time from the first sample to the sample from which the error stayed within the band
    /// until the end; `None` if the last sample is outside it (or there is none).
    pub fn convergence_time_s(&self) -> Option<f64> {
        self.within_band_since_s
    }

    /// Time from the first to the last sample.
    pub fn duration_s(&self) -> f64 {
        self.start_s.map_or(0.0, |start| self.last_s - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_converging_estimate() {
        let mut metrics = SocMetrics::default();
        // Starts 10 % off, converges at t = 3 s, wanders out briefly at t = 5 s, back at t = 6.
        let errors = [0.10, 0.06, 0.03, 0.01, 0.0, -0.025, 0.015, 0.005];
        for (t, error) in errors.iter().enumerate() {
            metrics.push(100.0 + t as f64, 0.5 + error, 0.5);
        }
        assert_eq!(metrics.samples(), 8);
        assert!((metrics.max_abs_error() - 0.10).abs() < 1e-12);
        assert!((metrics.end_error() - 0.005).abs() < 1e-12);
        assert_eq!(metrics.convergence_time_s(), Some(6.0));
        let mean_square = errors.iter().map(|e| e * e).sum::<f64>() / 8.0;
        assert!((metrics.rmse() - libm::sqrt(mean_square)).abs() < 1e-12);
        assert_eq!(metrics.duration_s(), 7.0);
    }

    #[test]
    fn knees_are_the_steep_ends_of_the_curve() {
        // Steep to 10 %, flat in the middle, steep from 90 % (5 % steps, volts).
        let points: Vec<(f64, f64)> = (0..=20)
            .map(|n| {
                let soc = f64::from(n) * 0.05;
                let volts = match n {
                    0..=2 => 2.8 + 2.0 * soc,
                    3..=18 => 3.2 + 0.1 * (soc - 0.15),
                    _ => 3.275 + 3.0 * (soc - 0.9),
                };
                (soc, volts)
            })
            .collect();
        let knees = Knees::of_curve(&points, KNEE_SLOPE_V);
        // The point just past the low knee's last steep segment counts (its centred
        // difference spans the break); at the high end the break is at a point.
        assert!((knees.low.unwrap() - 0.15).abs() < 1e-9, "{knees:?}");
        assert!((knees.high.unwrap() - 0.9).abs() < 1e-9, "{knees:?}");
        assert!(knees.contain(0.05) && knees.contain(0.95) && !knees.contain(0.5));
        // A flat curve has none; neither has a single point, nor a step without width.
        let flat = [(0.0, 3.0), (0.5, 3.1), (1.0, 3.2)];
        assert_eq!(
            Knees::of_curve(&flat, KNEE_SLOPE_V),
            Knees {
                low: None,
                high: None
            }
        );
        assert!(!Knees::of_curve(&[(0.5, 3.0)], KNEE_SLOPE_V).contain(0.0));
        let step = [(0.0, 3.0), (0.0, 3.5), (1.0, 3.6)];
        assert_eq!(Knees::of_curve(&step, KNEE_SLOPE_V).low, None);
    }

    #[test]
    fn an_estimate_that_ends_outside_the_band_has_not_converged() {
        let mut metrics = SocMetrics::default();
        metrics.push(0.0, 0.5, 0.5);
        metrics.push(1.0, 0.55, 0.5);
        assert_eq!(metrics.convergence_time_s(), None);
        metrics.push(2.0, f64::NAN, 0.5);
        assert_eq!(metrics.samples(), 2);
        assert_eq!(SocMetrics::default().rmse(), 0.0);
    }
}
