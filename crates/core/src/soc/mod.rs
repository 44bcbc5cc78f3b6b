//! State of charge (SOC) and state of health (SOH) of a cell from its current, voltage and
//! temperature, sans I/O: the caller passes every sample with the time since the previous one.
//!
//! # How it works
//!
//! - **Coulomb counting is the backbone.** SOC moves by the charge counted over the learned
//!   capacity (charging scaled by the coulombic efficiency). Its uncertainty grows with the
//!   charge moved (current gain and capacity errors) and with time (current offset).
//! - **A cell model turns the terminal voltage into an OCV estimate**: series resistance and two
//!   RC pairs from [`Chemistry::cell`], scaled with temperature by
//!   [`CellParameters::resistance_factor`], plus a one-state hysteresis for LFP (see `model`).
//! - **The voltage correction is weighted by the OCV slope.** The OCV estimate is inverted
//!   through the OCV table, and so is the band of OCVs its error allows; the width of the SOC
//!   band is the uncertainty of that voltage reading. Where the OCV is steep (NMC, the LFP
//!   knees) the band is narrow and the reading pulls the SOC hard; on the LFP plateau it is
//!   tens of percent wide and the correction switches itself off. The two are fused by a
//!   scalar Kalman update, de-weighted for the correlation of model errors between samples and
//!   with the innovation clipped at three standard deviations. The voltage's error grows with
//!   the current, the RC voltages, the unknown hysteresis branch and the current sustained over
//!   the last ten minutes (the slow polarisation the RC pairs miss). On LFP, readings wider
//!   than [`SocConfig::max_reading_soc_std`] are ignored outright.
//! - **Anchors**: at the end of a full charge (charging at the charge voltage with a current
//!   below the tail current) the SOC is reset to what the OCV table says at that voltage (100 %
//!   at the table's top) and the hysteresis to the charge branch;
//!   when the cell is quiet and the voltage pins the SOC within [`SocConfig::anchor_soc_std`]
//!   (a knee, or anywhere on NMC) the voltage SOC is an anchor.
//! - **Capacity learning** between two anchors at least [`SocConfig::min_learning_span`] apart
//!   (see `anchor`); **SOH** is learned capacity over nominal capacity.
//! - **Cycle counting**: equivalent full cycles = charge throughput / (2 x nominal capacity).
//!
//! The current sensor's offset is not estimated; it is covered by the uncertainty that grows
//! with time.
//!
//! # Sign convention
//!
//! Current is **positive when charging**, as in the NW protocol and the rest of this crate.
//! Logs and PyBaMM profiles that count discharge as positive must be negated by the caller.
//!
//! # Calling order
//!
//! ```text
//! let mut estimator = SocEstimator::new(SocConfig::new(Chemistry::Lfp, 280.0));
//! for every sample:
//!     estimator.update(time since the previous sample, current, voltage, temperature)
//!     estimator.soc(), estimator.estimate()
//! ```
//!
//! The first sample only initialises (from [`SocConfig::initial_soc`], or from the voltage).
//! A current is assumed to flow from its sample until the next one (zero-order hold). A zero
//! `dt` or a sample with a non-finite value changes nothing but the held current; the SOC
//! always stays within 0..=1.

mod anchor;
mod metrics;
mod model;
#[cfg(test)]
mod tests;

use core::time::Duration;

pub use anchor::Anchor;
pub use metrics::{SocMetrics, DEFAULT_CONVERGENCE_BAND};

use crate::chemistry::{CellParameters, Chemistry, OcvTable};
use anchor::CapacityLearner;
use model::CellModel;

/// Settings of a [`SocEstimator`]. [`SocConfig::new`] gives the defaults for a chemistry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SocConfig {
    /// The cell chemistry.
    pub chemistry: Chemistry,
    /// OCV against SOC (at 25 degC, mean of the hysteresis branches).
    pub ocv: OcvTable,
    /// Equivalent-circuit parameters; `capacity_ah` is the nominal capacity, from which
    /// capacity learning starts and against which SOH is given.
    pub cell: CellParameters,
    /// SOC at the first sample; `None` to take it from the first voltage.
    pub initial_soc: Option<f32>,
    /// Standard deviation of `initial_soc` (0.1 = 10 %).
    pub initial_soc_std: f32,
    /// Standard deviation of the nominal capacity, relative (0.05 = 5 %).
    pub capacity_std: f32,
    /// Standard deviation of the current sensor's gain, relative (0.01 = 1 %).
    pub current_gain_std: f32,
    /// Standard deviation of the current sensor's offset, in C (0.002 = 0.2 % of capacity).
    pub current_offset_std_c: f32,
    /// Standard deviation of the OCV estimate of a relaxed cell: voltage noise plus OCV-table
    /// and model error, volts.
    pub voltage_std_v: f32,
    /// Relative error of the modelled resistance: the OCV estimate's uncertainty grows by this
    /// fraction of the DC resistive drop, and of the RC voltages.
    pub resistance_std: f32,
    /// Slow polarisation the RC pairs miss after a sustained load, as a fraction of the DC
    /// resistive drop of the sustained current: the OCV estimate's uncertainty grows by this
    /// much (large for LFP, whose diffusion relaxation lasts tens of minutes).
    pub sustained_polarization_std: f32,
    /// A current step of at least this much (in C) within one sample of at most 2 s updates
    /// the learned resistance factor.
    pub resistance_step_c: f32,
    /// Time over which model errors stay correlated, seconds: a voltage reading counts for
    /// `dt / correlation_time_s` of an independent one.
    pub correlation_time_s: f32,
    /// Hysteresis rate: the state moves `1 - e^-1` of the way to a branch per this inverse of
    /// SOC moved (25: within ~4 % of SOC). Ignored when `cell.hysteresis_v` is 0.
    pub hysteresis_rate: f32,
    /// Charge voltage (per cell) at which, with a current below the tail current, the cell is
    /// full.
    pub full_charge_voltage_v: f32,
    /// Tail current at the end of charge, in C (0.05 = C/20).
    pub tail_current_c: f32,
    /// The cell is quiet (its voltage may anchor the SOC) below this current, in C.
    pub quiet_current_c: f32,
    /// A voltage reading whose SOC standard deviation is above this is ignored: the correction
    /// is switched off on a plateau, where a few millivolts of model error are tens of percent.
    pub max_reading_soc_std: f32,
    /// A quiet voltage reading whose SOC standard deviation is below this is an anchor.
    pub anchor_soc_std: f32,
    /// Capacity is learned from two anchors at least this far apart in SOC.
    pub min_learning_span: f32,
}

impl SocConfig {
    /// Defaults for `chemistry` with a nominal capacity of `capacity_ah` (the chemistry's
    /// table, equivalent circuit and charge voltage).
    pub fn new(chemistry: Chemistry, capacity_ah: f32) -> SocConfig {
        let cell = CellParameters {
            capacity_ah,
            ..chemistry.cell()
        };
        SocConfig {
            chemistry,
            ocv: *chemistry.ocv(),
            cell,
            initial_soc: None,
            initial_soc_std: 0.1,
            capacity_std: 0.05,
            current_gain_std: 0.01,
            current_offset_std_c: 0.002,
            voltage_std_v: 0.004,
            resistance_std: 0.2,
            sustained_polarization_std: sustained_polarization_std(chemistry),
            resistance_step_c: 0.1,
            correlation_time_s: 120.0,
            hysteresis_rate: 25.0,
            full_charge_voltage_v: full_charge_voltage(chemistry),
            tail_current_c: 0.05,
            quiet_current_c: 0.05,
            max_reading_soc_std: max_reading_soc_std(chemistry),
            anchor_soc_std: 0.015,
            min_learning_span: 0.4,
        }
    }
}

/// The lowest usual charge voltage per cell (`battery.md`: charge voltage targets).
fn full_charge_voltage(chemistry: Chemistry) -> f32 {
    match chemistry {
        Chemistry::Lfp => 3.45,
        Chemistry::Nmc => 4.15,
        Chemistry::Lto => 2.70,
    }
}

/// Default [`SocConfig::sustained_polarization_std`]: fitted to PyBaMM DFN profiles, where
/// LFP (Prada2013) carries a slow polarisation about as large as its whole DC resistance and
/// NMC (Chen2020) a small one.
fn sustained_polarization_std(chemistry: Chemistry) -> f32 {
    match chemistry {
        Chemistry::Lfp => 1.0,
        Chemistry::Nmc | Chemistry::Lto => 0.3,
    }
}

/// Default [`SocConfig::max_reading_soc_std`]: LFP's plateau readings are switched off; the
/// sloped chemistries keep every reading, weighted.
fn max_reading_soc_std(chemistry: Chemistry) -> f32 {
    match chemistry {
        Chemistry::Lfp => 0.04,
        Chemistry::Nmc | Chemistry::Lto => 1.0,
    }
}

/// What the estimator knows after a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SocEstimate {
    /// State of charge, 0..=1.
    pub soc: f32,
    /// Standard deviation of `soc`.
    pub soc_std: f32,
    /// Learned capacity, amp-hours.
    pub capacity_ah: f32,
    /// State of health: learned capacity / nominal capacity.
    pub soh: f32,
    /// Equivalent full cycles: charge throughput / (2 x nominal capacity).
    pub equivalent_full_cycles: f32,
    /// Hysteresis state, -1 (discharge branch) to +1 (charge branch).
    pub hysteresis: f32,
    /// Number of anchors seen (full charges included).
    pub anchors: u32,
    /// Number of full charges detected.
    pub full_charges: u32,
    /// Number of capacity updates.
    pub capacity_updates: u32,
    /// The OCV that the last sample's terminal voltage implies, volts.
    pub ocv_v: f32,
    /// The SOC that this OCV alone gives.
    pub voltage_soc: f32,
    /// Standard deviation of `voltage_soc`: small where the OCV is steep, large on a plateau.
    pub voltage_soc_std: f32,
    /// Learned series-resistance factor (1 = the chemistry's value at this temperature).
    pub resistance_scale: f32,
    /// Learned RC-resistance factor (1 = the chemistry's values at this temperature).
    pub rc_resistance_scale: f32,
}

/// What one voltage reading says about the SOC.
#[derive(Clone, Copy, Debug, PartialEq)]
struct VoltageReading {
    soc: f64,
    soc_std: f64,
}

/// A stretch of constant current, from which the RC resistances are learned.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Segment {
    current_a: f64,
    elapsed_s: f64,
    learned: bool,
    start_voltage_v: f64,
    start_model_v: f64,
    start_polarization_v: f64,
}

/// Shortest constant-current stretch that teaches the RC resistances, seconds.
const MIN_SEGMENT_S: f64 = 20.0;
/// The RC resistances are learned from the first this many seconds of a stretch.
const MAX_SEGMENT_S: f64 = 300.0;

/// One sample, converted once.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sample {
    current_a: f64,
    voltage_v: f64,
    resistance_factor: f64,
}

/// Band of the voltage error used to turn a voltage into a SOC band: +-2 standard deviations.
const BAND_SIGMAS: f64 = 2.0;
/// Innovations are clipped at this many standard deviations.
const INNOVATION_CLIP_SIGMAS: f64 = 3.0;
/// Smallest SOC standard deviation a voltage reading is credited with.
const MIN_READING_SOC_STD: f64 = 0.01;
/// Longest sample interval over which a voltage step is taken as purely resistive, seconds.
const MAX_RESISTANCE_STEP_DT_S: f64 = 2.0;
/// SOC standard deviation after a full charge.
const FULL_CHARGE_SOC_STD: f64 = 0.005;

/// SOC and SOH estimator for one cell (or a series string of matched cells, fed the average
/// cell voltage). See the module documentation for the method and the calling order.
#[derive(Clone, Debug, PartialEq)]
pub struct SocEstimator {
    config: SocConfig,
    model: CellModel,
    learner: CapacityLearner,
    soc: f64,
    variance: f64,
    started: bool,
    held_current_a: f64,
    previous_voltage_v: f64,
    segment: Option<Segment>,
    charge_ah: f64,
    throughput_ah: f64,
    anchors: u32,
    full_charges: u32,
    at_full: bool,
    in_anchor: bool,
    last_ocv_v: f64,
    last_reading: VoltageReading,
}

impl SocEstimator {
    /// A new estimator; it starts at the first [`SocEstimator::update`].
    pub fn new(config: SocConfig) -> SocEstimator {
        let capacity_ah = f64::from(config.cell.capacity_ah).max(1e-6);
        SocEstimator {
            model: CellModel::new(config.cell, f64::from(config.hysteresis_rate)),
            learner: CapacityLearner::new(
                capacity_ah,
                f64::from(config.capacity_std),
                f64::from(config.min_learning_span),
            ),
            soc: f64::from(config.initial_soc.unwrap_or(0.5)).clamp(0.0, 1.0),
            variance: f64::from(config.initial_soc_std).powi(2),
            started: false,
            held_current_a: 0.0,
            previous_voltage_v: 0.0,
            segment: None,
            charge_ah: 0.0,
            throughput_ah: 0.0,
            anchors: 0,
            full_charges: 0,
            at_full: false,
            in_anchor: false,
            last_ocv_v: 0.0,
            last_reading: VoltageReading {
                soc: 0.5,
                soc_std: 1.0,
            },
            config,
        }
    }

    /// Takes one sample: `dt` since the previous sample (ignored for the first), the current
    /// in amps (**positive = charging**), the cell voltage in volts and the cell temperature
    /// in degC.
    pub fn update(&mut self, dt: Duration, current_a: f32, voltage_v: f32, temperature_c: f32) {
        if !(current_a.is_finite() && voltage_v.is_finite() && temperature_c.is_finite()) {
            return;
        }
        let sample = Sample {
            current_a: f64::from(current_a),
            voltage_v: f64::from(voltage_v),
            resistance_factor: f64::from(self.config.cell.resistance_factor(temperature_c)),
        };
        if !self.started {
            self.start(&sample);
        } else {
            let dt_s = dt.as_secs_f64();
            if dt_s > 0.0 {
                self.learn_resistance(dt_s, &sample);
                self.predict(dt_s, &sample);
                let reading = self.correct(dt_s, &sample);
                self.track_segment(dt_s, &sample);
                self.check_anchors(&sample, reading);
            }
        }
        self.held_current_a = sample.current_a;
        self.previous_voltage_v = sample.voltage_v;
    }

    /// State of charge, 0..=1.
    pub fn soc(&self) -> f32 {
        self.soc as f32
    }

    /// State of health: learned capacity over nominal capacity.
    pub fn soh(&self) -> f32 {
        (self.learner.capacity_ah() / f64::from(self.config.cell.capacity_ah)) as f32
    }

    /// Everything the estimator knows, as one value.
    pub fn estimate(&self) -> SocEstimate {
        let nominal = f64::from(self.config.cell.capacity_ah).max(1e-6);
        SocEstimate {
            soc: self.soc as f32,
            soc_std: libm::sqrt(self.variance) as f32,
            capacity_ah: self.learner.capacity_ah() as f32,
            soh: self.soh(),
            equivalent_full_cycles: (self.throughput_ah / (2.0 * nominal)) as f32,
            hysteresis: self.model.hysteresis() as f32,
            anchors: self.anchors,
            full_charges: self.full_charges,
            capacity_updates: self.learner.updates(),
            ocv_v: self.last_ocv_v as f32,
            voltage_soc: self.last_reading.soc as f32,
            voltage_soc_std: self.last_reading.soc_std as f32,
            resistance_scale: self.model.resistance_scale() as f32,
            rc_resistance_scale: self.model.rc_scale() as f32,
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SocConfig {
        &self.config
    }

    /// First sample: SOC from the configuration, or from the voltage of a cell assumed
    /// relaxed.
    fn start(&mut self, sample: &Sample) {
        self.started = true;
        if self.config.initial_soc.is_some() {
            return;
        }
        let ocv = self.model.open_circuit_voltage(
            sample.voltage_v,
            sample.current_a,
            sample.resistance_factor,
        );
        let reading = self.voltage_reading(ocv, self.voltage_std(sample));
        self.soc = reading.soc;
        self.variance = reading.soc_std.powi(2);
    }

    /// A current step within a short interval measures the series resistance.
    fn learn_resistance(&mut self, dt_s: f64, sample: &Sample) {
        let current_step = sample.current_a - self.held_current_a;
        let threshold =
            f64::from(self.config.resistance_step_c) * f64::from(self.config.cell.capacity_ah);
        if dt_s <= MAX_RESISTANCE_STEP_DT_S && current_step.abs() >= threshold {
            let voltage_step = sample.voltage_v - self.previous_voltage_v;
            self.model
                .learn_resistance(voltage_step, current_step, sample.resistance_factor);
        }
    }

    /// Follows stretches of constant current; over the first [`MAX_SEGMENT_S`] of one,
    /// compares how the voltage moved with how the model's RC voltages moved, and learns the
    /// RC resistance factor. Longer stretches would mix in the OCV error that builds up with
    /// the capacity error.
    fn track_segment(&mut self, dt_s: f64, sample: &Sample) {
        let capacity = f64::from(self.config.cell.capacity_ah);
        let tolerance = (0.02 * capacity).max(0.05 * sample.current_a.abs());
        let continuing = self
            .segment
            .is_some_and(|s| (sample.current_a - s.current_a).abs() <= tolerance);
        if continuing {
            self.continue_segment(dt_s, sample.voltage_v);
            return;
        }
        self.close_segment(self.previous_voltage_v);
        self.segment = Some(Segment {
            current_a: sample.current_a,
            elapsed_s: 0.0,
            learned: false,
            start_voltage_v: sample.voltage_v,
            start_model_v: self.modelled_open_circuit_v(),
            start_polarization_v: self.model.polarization_v(),
        });
    }

    fn continue_segment(&mut self, dt_s: f64, voltage_v: f64) {
        let Some(segment) = self.segment.as_mut() else {
            return;
        };
        segment.elapsed_s += dt_s;
        if segment.elapsed_s >= MAX_SEGMENT_S {
            self.close_segment(voltage_v);
        }
    }

    /// Learns from the open segment, once, if it lasted long enough; `voltage_v` is the
    /// terminal voltage at its end.
    fn close_segment(&mut self, voltage_v: f64) {
        let Some(segment) = self.segment.as_mut() else {
            return;
        };
        if segment.learned || segment.elapsed_s < MIN_SEGMENT_S {
            return;
        }
        segment.learned = true;
        let segment = *segment;
        let ocv_change = self.modelled_open_circuit_v() - segment.start_model_v;
        let measured = voltage_v - segment.start_voltage_v - ocv_change;
        let modelled = self.model.polarization_v() - segment.start_polarization_v;
        self.model.learn_rc_scale(measured, modelled);
    }

    /// The model's OCV plus hysteresis offset at the current SOC.
    fn modelled_open_circuit_v(&self) -> f64 {
        f64::from(self.config.ocv.voltage(self.soc as f32)) + self.model.hysteresis_offset_v()
    }

    /// Coulomb counting and the cell model over `dt_s`, with the held current.
    fn predict(&mut self, dt_s: f64, sample: &Sample) {
        let current_a = self.held_current_a;
        let efficiency = if current_a > 0.0 {
            f64::from(self.config.cell.coulombic_efficiency)
        } else {
            1.0
        };
        let charge_ah = current_a * efficiency * dt_s / 3600.0;
        self.charge_ah += charge_ah;
        self.throughput_ah += charge_ah.abs();
        let soc_change = charge_ah / self.learner.capacity_ah();
        self.soc = (self.soc + soc_change).clamp(0.0, 1.0);
        self.variance += self.process_variance(soc_change, dt_s);
        self.model
            .advance(dt_s, current_a, sample.resistance_factor, soc_change);
        if current_a < 0.0 {
            self.at_full = false;
        }
    }

    /// How much the SOC variance grows while `soc_change` is counted over `dt_s`: gain and
    /// capacity errors in proportion to the charge moved, the offset in proportion to time.
    fn process_variance(&self, soc_change: f64, dt_s: f64) -> f64 {
        let gain = f64::from(self.config.current_gain_std);
        let capacity = self.learner.relative_std();
        let per_soc_moved = gain * gain + capacity * capacity;
        let offset_per_hour = f64::from(self.config.current_offset_std_c);
        let per_second = offset_per_hour * offset_per_hour / 3600.0;
        per_soc_moved * soc_change.abs() + per_second * dt_s
    }

    /// The voltage correction: a scalar Kalman update of the SOC with the voltage reading.
    fn correct(&mut self, dt_s: f64, sample: &Sample) -> VoltageReading {
        let ocv = self.model.open_circuit_voltage(
            sample.voltage_v,
            sample.current_a,
            sample.resistance_factor,
        );
        let reading = self.voltage_reading(ocv, self.voltage_std(sample));
        self.last_ocv_v = ocv;
        self.last_reading = reading;
        if reading.soc_std > f64::from(self.config.max_reading_soc_std) {
            return reading;
        }
        let correlation = (f64::from(self.config.correlation_time_s) / dt_s).max(1.0);
        let reading_variance = reading.soc_std.powi(2) * correlation;
        let total_variance = self.variance + reading_variance;
        let limit = INNOVATION_CLIP_SIGMAS * libm::sqrt(total_variance);
        let innovation = (reading.soc - self.soc).clamp(-limit, limit);
        let gain = self.variance / total_variance;
        self.soc = (self.soc + gain * innovation).clamp(0.0, 1.0);
        self.variance *= 1.0 - gain;
        reading
    }

    /// Standard deviation of the OCV estimate from this sample, volts.
    fn voltage_std(&self, sample: &Sample) -> f64 {
        let resistance_std = f64::from(self.config.resistance_std);
        let drop = sample.current_a.abs() * self.model.dc_resistance_ohm(sample.resistance_factor);
        let sustained_drop = self.model.sustained_current_a().abs()
            * self.model.dc_resistance_ohm(sample.resistance_factor);
        let parts = [
            f64::from(self.config.voltage_std_v),
            resistance_std * drop,
            resistance_std * self.model.polarization_v().abs(),
            f64::from(self.config.sustained_polarization_std) * sustained_drop,
            self.model.hysteresis_uncertainty_v(),
        ];
        libm::sqrt(parts.iter().map(|part| part * part).sum())
    }

    /// SOC at `ocv`, and the SOC band that `ocv +- 2 voltage_std` spans, as a standard
    /// deviation (from the wider side, as the band is lopsided next to a knee): narrow where
    /// the OCV is steep, wide on a plateau.
    fn voltage_reading(&self, ocv: f64, voltage_std: f64) -> VoltageReading {
        let table = &self.config.ocv;
        let at = |volts: f64| f64::from(table.soc(volts as f32));
        let low = at(ocv - BAND_SIGMAS * voltage_std);
        let high = at(ocv + BAND_SIGMAS * voltage_std);
        let soc = at(ocv);
        VoltageReading {
            soc,
            soc_std: ((high - soc).max(soc - low) / BAND_SIGMAS).max(MIN_READING_SOC_STD),
        }
    }

    /// Full-charge reset and voltage anchors, with capacity learning.
    fn check_anchors(&mut self, sample: &Sample, reading: VoltageReading) {
        let capacity = f64::from(self.config.cell.capacity_ah);
        if self.is_full(sample, capacity) {
            self.reach_full(reading.soc);
            self.in_anchor = true;
            return;
        }
        let quiet = sample.current_a.abs() <= f64::from(self.config.quiet_current_c) * capacity;
        let anchored = quiet && reading.soc_std <= f64::from(self.config.anchor_soc_std);
        if anchored {
            self.anchor(reading.soc, reading.soc_std);
        }
        self.in_anchor = anchored;
    }

    /// Charging at the charge voltage with no more than the tail current.
    fn is_full(&self, sample: &Sample, capacity_ah: f64) -> bool {
        let tail = f64::from(self.config.tail_current_c) * capacity_ah;
        let charging = sample.current_a > 0.0 && sample.current_a <= tail;
        charging && sample.voltage_v >= f64::from(self.config.full_charge_voltage_v)
    }

    /// End of a full charge: the SOC is what the OCV table gives at the voltage reached (100 %
    /// when the charger stops at the table's top; 95 % for an NMC cell held at 4.15 V), the
    /// cell is on the charge branch; one anchor per charge.
    fn reach_full(&mut self, voltage_soc: f64) {
        self.soc = voltage_soc;
        self.variance = FULL_CHARGE_SOC_STD * FULL_CHARGE_SOC_STD;
        self.model.set_hysteresis(1.0);
        if !self.at_full {
            self.at_full = true;
            self.full_charges += 1;
            self.in_anchor = false;
            self.anchor(voltage_soc, FULL_CHARGE_SOC_STD);
        }
    }

    /// Records an anchor; consecutive anchored samples count as one anchor.
    fn anchor(&mut self, soc: f64, soc_std: f64) {
        if !self.in_anchor {
            self.anchors += 1;
        }
        let anchor = Anchor {
            soc,
            soc_std,
            charge_ah: self.charge_ah,
        };
        self.learner.observe(anchor);
    }
}
