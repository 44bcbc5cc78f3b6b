//! The open-circuit voltage of a resting cell, extrapolated from its relaxation.
//!
//! When the current stops, the terminal voltage creeps towards the OCV for minutes (NMC) to
//! hours (LFP, whose graphite relaxes slowly on the sloped parts of the curve). Reading the
//! voltage a minute into a rest reads the OCV several millivolts off, which on LFP is several
//! percent of SOC. Over the rest, the voltage is fitted by least squares to
//!
//! ```text
//! v(t) = ocv + a1 * exp(-t / tau1) + a2 * exp(-t / tau2)
//! ```
//!
//! with the time constants of the cell's two RC pairs and free amplitudes (held near zero by a
//! weak prior, so that a short rest does not extrapolate wildly). The fitted `ocv` and its
//! standard deviation are the rest's reading; the part of the voltage still relaxing adds to
//! that standard deviation, as the extrapolation is only as good as the two exponentials.

/// Unknowns of the fit: the OCV and two amplitudes.
const UNKNOWNS: usize = 3;

/// A least-squares fit of one rest's relaxation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RestFit {
    time_constants_s: [f64; 2],
    elapsed_s: f64,
    information: [[f64; UNKNOWNS]; UNKNOWNS],
    weighted: [f64; UNKNOWNS],
    samples: u32,
}

/// What a rest says about the OCV.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RestReading {
    /// The extrapolated OCV (hysteresis offset included), volts.
    pub(crate) ocv_v: f64,
    /// Its standard deviation from the noise alone, volts.
    pub(crate) fit_std_v: f64,
    /// The part of the voltage that the fit says is still relaxing now, volts.
    pub(crate) relaxing_v: f64,
}

/// Prior standard deviation of the amplitudes, volts.
const AMPLITUDE_PRIOR_V: f64 = 0.3;

impl RestFit {
    /// A new rest, with the RC time constants of the cell.
    pub(crate) fn new(time_constants_s: [f64; 2]) -> RestFit {
        let mut information = [[0.0; UNKNOWNS]; UNKNOWNS];
        for (n, row) in information.iter_mut().enumerate().skip(1) {
            row[n] = 1.0 / (AMPLITUDE_PRIOR_V * AMPLITUDE_PRIOR_V);
        }
        RestFit {
            time_constants_s,
            elapsed_s: 0.0,
            information,
            weighted: [0.0; UNKNOWNS],
            samples: 0,
        }
    }

    /// Time since the rest began, seconds.
    pub(crate) fn elapsed_s(&self) -> f64 {
        self.elapsed_s
    }

    /// Adds a sample `dt_s` after the previous one (0 for the first), with voltage
    /// `voltage_v` and noise standard deviation `noise_v`.
    pub(crate) fn push(&mut self, dt_s: f64, voltage_v: f64, noise_v: f64) {
        self.elapsed_s += dt_s;
        let row = self.basis(self.elapsed_s);
        let weight = 1.0 / (noise_v * noise_v).max(1e-12);
        for i in 0..UNKNOWNS {
            for j in 0..UNKNOWNS {
                self.information[i][j] += weight * row[i] * row[j];
            }
            self.weighted[i] += weight * row[i] * voltage_v;
        }
        self.samples += 1;
    }

    /// The fit so far; `None` before two samples or if the fit is singular.
    pub(crate) fn reading(&self) -> Option<RestReading> {
        if self.samples < 2 {
            return None;
        }
        let covariance = invert(&self.information)?;
        let solution: [f64; UNKNOWNS] = core::array::from_fn(|i| {
            (0..UNKNOWNS)
                .map(|j| covariance[i][j] * self.weighted[j])
                .sum()
        });
        let row = self.basis(self.elapsed_s);
        Some(RestReading {
            ocv_v: solution[0],
            fit_std_v: libm::sqrt(covariance[0][0].max(0.0)),
            relaxing_v: solution[1] * row[1] + solution[2] * row[2],
        })
    }

    fn basis(&self, t: f64) -> [f64; UNKNOWNS] {
        let [tau1, tau2] = self.time_constants_s;
        [
            1.0,
            libm::exp(-t / tau1.max(1e-3)),
            libm::exp(-t / tau2.max(1e-3)),
        ]
    }
}

/// Inverse of a symmetric 3x3 matrix; `None` if it is singular.
fn invert(m: &[[f64; UNKNOWNS]; UNKNOWNS]) -> Option<[[f64; UNKNOWNS]; UNKNOWNS]> {
    let cofactor =
        |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let adjugate = [
        [
            cofactor(1, 2, 1, 2),
            -cofactor(0, 2, 1, 2),
            cofactor(0, 1, 1, 2),
        ],
        [
            -cofactor(1, 2, 0, 2),
            cofactor(0, 2, 0, 2),
            -cofactor(0, 1, 0, 2),
        ],
        [
            cofactor(1, 2, 0, 1),
            -cofactor(0, 2, 0, 1),
            cofactor(0, 1, 0, 1),
        ],
    ];
    let determinant: f64 = (0..UNKNOWNS).map(|j| m[0][j] * adjugate[j][0]).sum();
    let usable = determinant.is_finite() && determinant.abs() > 1e-300;
    if !usable {
        return None;
    }
    Some(adjugate.map(|row| row.map(|value| value / determinant)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extrapolates_a_two_exponential_relaxation_to_its_end() {
        let mut fit = RestFit::new([20.0, 200.0]);
        for t in 0..120 {
            let t = f64::from(t);
            let v = 3.30 - 0.020 * libm::exp(-t / 20.0) - 0.010 * libm::exp(-t / 200.0);
            fit.push(if t == 0.0 { 0.0 } else { 1.0 }, v, 0.002);
        }
        let reading = fit.reading().unwrap_or(RestReading {
            ocv_v: 0.0,
            fit_std_v: 1.0,
            relaxing_v: 0.0,
        });
        assert!((reading.ocv_v - 3.30).abs() < 2e-4, "{reading:?}");
        let remaining = -0.010 * libm::exp(-119.0 / 200.0) - 0.020 * libm::exp(-119.0 / 20.0);
        assert!((reading.relaxing_v - remaining).abs() < 2e-4, "{reading:?}");
        assert!(reading.fit_std_v < 0.002);
    }

    #[test]
    fn inverts_a_symmetric_matrix() {
        let m = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let inverse = invert(&m).unwrap_or([[0.0; 3]; 3]);
        for (i, row) in m.iter().enumerate() {
            let product: [f64; 3] =
                core::array::from_fn(|j| (0..3).map(|k| row[k] * inverse[k][j]).sum());
            let identity: [f64; 3] = core::array::from_fn(|j| if i == j { 1.0 } else { 0.0 });
            for (got, expected) in product.iter().zip(identity) {
                assert!((got - expected).abs() < 1e-12, "{product:?}");
            }
        }
    }
}
