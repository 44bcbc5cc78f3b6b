//! Anchors and capacity learning.
//!
//! An anchor is a moment when the SOC is known without the coulomb counter: the end of a full
//! charge, or a quiet moment (little current) when the voltage alone pins the SOC within a
//! percent or so, which on LFP happens only at the knees. Each anchor records the SOC, its
//! uncertainty, and the reading of the charge counter at that moment.
//!
//! Between two anchors far enough apart in SOC, the charge counted divided by the SOC change is
//! a measurement of the capacity. It is blended into the learned capacity by its uncertainty
//! (a scalar Kalman update), so one poor pair of anchors cannot throw the capacity far. The
//! learned capacity absorbs a current-sensor gain error too, which is what the coulomb
//! counter needs.

/// A moment when the SOC was known independently of the coulomb counter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anchor {
    /// SOC at the anchor, 0..=1.
    pub soc: f64,
    /// Standard deviation of that SOC.
    pub soc_std: f64,
    /// Charge counter at that moment, amp-hours (positive = charged in).
    pub charge_ah: f64,
}

/// Learns the capacity from pairs of anchors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CapacityLearner {
    nominal_ah: f64,
    capacity_ah: f64,
    variance_ah2: f64,
    min_span: f64,
    reference: Option<Anchor>,
    updates: u32,
}

/// The learned capacity never leaves this band around the nominal one.
const CAPACITY_BAND: (f64, f64) = (0.3, 1.5);

/// A capacity measurement this many standard deviations away from the learned capacity is
/// taken for a bad anchor and ignored.
const MAX_SURPRISE_SIGMAS: f64 = 3.0;

/// The learned capacity's relative uncertainty never falls below this (0.5 %), so that the
/// learner keeps following a cell that ages.
const MIN_RELATIVE_STD: f64 = 0.005;

impl CapacityLearner {
    /// Starts from `capacity_ah`, known within `relative_std`; learns from pairs of anchors
    /// at least `min_span` of SOC apart.
    pub(crate) fn new(capacity_ah: f64, relative_std: f64, min_span: f64) -> CapacityLearner {
        CapacityLearner {
            nominal_ah: capacity_ah,
            capacity_ah,
            variance_ah2: (relative_std * capacity_ah).powi(2),
            min_span,
            reference: None,
            updates: 0,
        }
    }

    /// The learned capacity, amp-hours.
    pub(crate) fn capacity_ah(&self) -> f64 {
        self.capacity_ah
    }

    /// Relative standard deviation of the learned capacity.
    pub(crate) fn relative_std(&self) -> f64 {
        libm::sqrt(self.variance_ah2) / self.capacity_ah
    }

    /// How many times the capacity was updated.
    pub(crate) fn updates(&self) -> u32 {
        self.updates
    }

    /// Takes a new anchor; learns from it and the reference anchor if they are far enough
    /// apart. Returns the new capacity when it learned.
    pub(crate) fn observe(&mut self, anchor: Anchor) -> Option<f64> {
        let Some(reference) = self.reference else {
            self.reference = Some(anchor);
            return None;
        };
        let span = anchor.soc - reference.soc;
        if span.abs() < self.min_span {
            if anchor.soc_std < reference.soc_std && span.abs() < self.min_span / 4.0 {
                self.reference = Some(anchor);
            }
            return None;
        }
        self.reference = Some(anchor);
        let measured = (anchor.charge_ah - reference.charge_ah) / span;
        let (low, high) = CAPACITY_BAND;
        if !(low * self.nominal_ah..=high * self.nominal_ah).contains(&measured) {
            return None;
        }
        let relative_std = libm::hypot(anchor.soc_std, reference.soc_std) / span.abs();
        let measurement_variance = (relative_std * measured).powi(2);
        let surprise = (measured - self.capacity_ah).abs();
        if surprise > MAX_SURPRISE_SIGMAS * libm::sqrt(self.variance_ah2 + measurement_variance) {
            return None;
        }
        self.blend(measured, measurement_variance);
        Some(self.capacity_ah)
    }

    fn blend(&mut self, measured_ah: f64, measurement_variance: f64) {
        let gain = self.variance_ah2 / (self.variance_ah2 + measurement_variance);
        self.capacity_ah += gain * (measured_ah - self.capacity_ah);
        let floor = (MIN_RELATIVE_STD * self.capacity_ah).powi(2);
        self.variance_ah2 = ((1.0 - gain) * self.variance_ah2).max(floor);
        self.updates += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor(soc: f64, charge_ah: f64) -> Anchor {
        Anchor {
            soc,
            soc_std: 0.005,
            charge_ah,
        }
    }

    #[test]
    fn learns_from_anchors_far_apart_only() {
        let mut learner = CapacityLearner::new(2.3, 0.05, 0.4);
        assert_eq!(learner.observe(anchor(0.95, 0.0)), None);
        // 10 % further: too close to learn.
        assert_eq!(learner.observe(anchor(0.85, -0.2)), None);
        // 80 % of SOC for 1.6 Ah: a 2.0 Ah cell.
        let learned = learner.observe(anchor(0.15, -1.6));
        let learned = learned.unwrap_or(0.0);
        assert!((learned - 2.0).abs() < 0.05, "{learned}");
        assert_eq!(learner.updates(), 1);
    }

    #[test]
    fn refuses_an_impossible_capacity() {
        let mut learner = CapacityLearner::new(2.3, 0.05, 0.4);
        learner.observe(anchor(0.9, 0.0));
        // Charge counted the wrong way round.
        assert_eq!(learner.observe(anchor(0.1, 1.8)), None);
        assert_eq!(learner.capacity_ah(), 2.3);
    }
}
