//! A small extended Kalman filter over a fixed number of states, without allocation: the
//! state vector, its covariance, a prediction with a sparse Jacobian and a scalar measurement
//! update.
//!
//! The estimator feeds it one scalar measurement (the terminal voltage) per sample, so the
//! update needs no matrix inversion: the innovation variance is a scalar. Some states may be
//! held out of an update ("frozen": a Schmidt, or consider, update): their estimates do not
//! move, and the covariance is updated in Joseph form, which stays right for any gain.

/// Number of states.
pub(crate) const STATES: usize = 7;

/// A state vector or a measurement row.
pub(crate) type Vector = [f64; STATES];

/// State and covariance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Filter {
    /// The state estimate.
    pub(crate) x: Vector,
    /// Its covariance (kept symmetric).
    pub(crate) p: [Vector; STATES],
}

impl Filter {
    /// A filter at `x` with independent initial uncertainties `std`.
    pub(crate) fn new(x: Vector, std: Vector) -> Filter {
        let mut p = [[0.0; STATES]; STATES];
        for (i, row) in p.iter_mut().enumerate() {
            row[i] = std[i] * std[i];
        }
        Filter { x, p }
    }

    /// Standard deviation of state `i`.
    pub(crate) fn std(&self, i: usize) -> f64 {
        libm::sqrt(self.p[i][i].max(0.0))
    }

    /// Covariance propagation for a transition that is the identity except that state
    /// `target` also moves by `coupling[j] * x[j]` (`coupling[target]` is ignored), then adds
    /// the process noise variances `noise`. The caller moves the state itself.
    pub(crate) fn propagate(&mut self, target: usize, coupling: &Vector, noise: &Vector) {
        // F = I + e_t c^T: F P F^T = P + e_t (P c)^T + (P c) e_t^T + (c^T P c) e_t e_t^T.
        let mut c = *coupling;
        c[target] = 0.0;
        let pc: Vector = core::array::from_fn(|i| dot(&self.p[i], &c));
        let cpc = dot(&c, &pc);
        for (j, value) in pc.iter().enumerate() {
            self.p[target][j] += value;
            self.p[j][target] += value;
        }
        self.p[target][target] += cpc;
        for (i, q) in noise.iter().enumerate() {
            self.p[i][i] += q;
        }
    }

    /// Scalar measurement update: the measurement minus its prediction is `innovation`, its
    /// sensitivity to the states is `h`, its noise variance `r`. The innovation is clipped
    /// at `clip_sigmas` standard deviations; the states marked in `frozen` do not move.
    pub(crate) fn update(
        &mut self,
        innovation: f64,
        h: &Vector,
        r: f64,
        clip_sigmas: f64,
        frozen: &[bool; STATES],
    ) {
        let ph: Vector = core::array::from_fn(|i| dot(&self.p[i], h));
        let s = (dot(h, &ph) + r).max(1e-30);
        let limit = clip_sigmas * libm::sqrt(s);
        let clipped = innovation.clamp(-limit, limit);
        let gain: Vector = core::array::from_fn(|i| if frozen[i] { 0.0 } else { ph[i] / s });
        for (x, k) in self.x.iter_mut().zip(gain) {
            *x += k * clipped;
        }
        // Joseph form, valid for any gain: P - K (PH)^T - (PH) K^T + K S K^T.
        for (i, row) in self.p.iter_mut().enumerate() {
            for (j, value) in row.iter_mut().enumerate() {
                *value += -gain[i] * ph[j] - ph[i] * gain[j] + gain[i] * s * gain[j];
            }
        }
        self.symmetrize();
    }

    /// Sets state `i` to `value` with no uncertainty left in it beyond `std` and no
    /// correlation with the others.
    pub(crate) fn reset(&mut self, i: usize, value: f64, std: f64) {
        self.x[i] = value;
        for j in 0..STATES {
            self.p[i][j] = 0.0;
            self.p[j][i] = 0.0;
        }
        self.p[i][i] = std * std;
    }

    fn symmetrize(&mut self) {
        for i in 0..STATES {
            self.p[i][i] = self.p[i][i].max(1e-30);
            for j in 0..i {
                let mean = 0.5 * (self.p[i][j] + self.p[j][i]);
                self.p[i][j] = mean;
                self.p[j][i] = mean;
            }
        }
    }
}

fn dot(a: &Vector, b: &Vector) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(i: usize) -> Vector {
        let mut v = [0.0; STATES];
        v[i] = 1.0;
        v
    }

    #[test]
    fn scalar_update_is_the_textbook_one() {
        let mut filter = Filter::new([0.0; STATES], [2.0; STATES]);
        // Prior variance 4, measurement variance 1: gain 0.8.
        filter.update(1.0, &unit(0), 1.0, f64::INFINITY, &[false; STATES]);
        assert!((filter.x[0] - 0.8).abs() < 1e-12);
        assert!((filter.p[0][0] - 0.8).abs() < 1e-12);
        // Clipped at 3 sigma of the innovation (sqrt(0.8 + 1)).
        filter.update(100.0, &unit(0), 1.0, 3.0, &[false; STATES]);
        let step = 0.8 / 1.8 * 3.0 * libm::sqrt(1.8);
        assert!((filter.x[0] - 0.8 - step).abs() < 1e-9, "{}", filter.x[0]);
    }

    #[test]
    fn coupling_correlates_and_frozen_states_stay() {
        let mut filter = Filter::new([0.0; STATES], [1.0; STATES]);
        // State 0 moves by 0.5 * state 1: they become correlated.
        let mut coupling = [0.0; STATES];
        coupling[1] = 0.5;
        filter.propagate(0, &coupling, &[0.0; STATES]);
        assert!((filter.p[0][0] - 1.25).abs() < 1e-12);
        assert!((filter.p[0][1] - 0.5).abs() < 1e-12);
        // Measuring state 0 teaches state 1, unless state 1 is frozen.
        let mut learning = filter;
        learning.update(1.0, &unit(0), 0.01, f64::INFINITY, &[false; STATES]);
        assert!(learning.x[1] > 0.3, "{}", learning.x[1]);
        let mut frozen = [false; STATES];
        frozen[1] = true;
        filter.update(1.0, &unit(0), 0.01, f64::INFINITY, &frozen);
        assert_eq!(filter.x[1], 0.0);
        assert!(filter.x[0] > 0.9);
        assert!(filter.p[1][1] <= 1.0 && filter.p[1][1] > 0.0);
    }
}
