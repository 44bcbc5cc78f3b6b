//! State of charge (SOC) and state of health (SOH) of a cell from its current, voltage and
//! temperature, sans I/O: the caller passes every sample with the time since the previous one.
//!
//! # How it works
//!
//! One extended Kalman filter (`filter`) estimates, together, the SOC and what the SOC
//! depends on:
//!
//! | state | what | learned from |
//! |---|---|---|
//! | SOC | state of charge | coulomb counting, corrected by the voltage |
//! | charge scale `g` | capacity and current-gain error: `delta soc = (1 + g) * counted` | the SOC corrections, through their correlation with the charge counted since |
//! | current offset | sensor offset, in C | the same, through time |
//! | resistance factors `k0..k2` | series resistance and two RC pairs over the chemistry's table values | the voltage: current steps, loads, relaxations |
//! | thermal exponent `e` | the resistances scale with the Arrhenius factor to the power `e` | temperature changes |
//!
//! - **Prediction.** Coulomb counting with the learned scale and offset moves the SOC, and
//!   the correlation between the SOC and the scale grows with the charge moved: a later
//!   correction of the SOC is then partly a correction of the capacity (capacity learning
//!   needs no separate pair of anchors).
//! - **The cell model** (`model`): `v = ocv(soc) + hysteresis + f(T)^e * (k0 r0 i + k1 r1 x1 +
//!   k2 r2 x2)`, R0 + 2RC from [`Chemistry::cell`](crate::chemistry::Chemistry::cell) with learned factors, and a one-state
//!   hysteresis for LFP. The OCV curve (`curve`) is a monotone cubic through the table, which
//!   cuts fewer corners at the knees than straight lines.
//! - **The voltage update.** Every sample's terminal voltage updates all states at once. The
//!   OCV is linearised statistically over the SOC's uncertainty (robust at the knees); the
//!   voltage's error has a white part (noise, table interpolation, unknown hysteresis branch)
//!   and a slowly varying part (a fraction of the modelled polarisation, more just after a
//!   current step) that is de-weighted for its correlation between samples.
//! - **What may correct the SOC** depends on the chemistry ([`SocConfig`]): on NMC the voltage
//!   under load does. On LFP, whose plateau, hysteresis and slow diffusion make it tens of
//!   millivolts off any R + RC model, it does only where the diffusion shift explains it: the
//!   OCV is taken at the SOC shifted by [`SocConfig::load_diffusion_soc_per_c`] per C of
//!   diffusion current, and only on the sloped middle of the curve (the 30-40 % and 70-80 %
//!   shoulders on Prada2013; the plateau's readings are too vague to count), below 0.7 C,
//!   not against the diffusion current (just after a reversal the surfaces swing faster than
//!   the shift follows). Crossing the 70-80 % shoulder under a steady current then reads the
//!   SOC in the middle of a long charge or discharge, from the first minutes of a charge on.
//!   These readings do not teach the capacity (a percent or two of bias over a long stretch
//!   taught it the wrong way); rests, knees and full charges do. Elsewhere the voltage under
//!   load only teaches the resistances.
//! - **A ceiling while charging**: the surface runs ahead of the bulk and the polarisation
//!   lifts the voltage, so above the table's last point but one the SOC is held to what the
//!   voltage less the branch and half the series drop shows (plus 1 %): an estimate that ran
//!   ahead does not sit at 100 % while the cell enters its knee.
//! - **Rests** (`rest`): with [`SocConfig::read_rests`] (LFP), a rest is read as a whole,
//!   from its first minute on and again every minute: its voltage, averaged, less the
//!   hysteresis branch, gives the OCV of the particles' surface, and the SOC it gives is
//!   corrected by the diffusion shift that the current of the last minutes predicts
//!   ([`SocConfig::diffusion_soc_per_c`], see `model`). Uncorrected, a rest of a few minutes
//!   after a load reads LFP's SOC 2-8 % off, always on the side of the last current;
//!   corrected, 0.4 % RMS on the PyBaMM profiles. Readings that cannot pin the SOC within
//!   [`SocConfig::max_reading_soc_std`] (the plateaus, where a millivolt is several percent)
//!   and readings in the table's last segment (a guess on LFP) are not used.
//! - **The hysteresis gap** is learned (LFP): a rest on a settled branch, where the OCV is
//!   known whatever the SOC within its uncertainty, measures the branch's offset.
//! - **Full charge**: charging at the charge voltage with a current below the tail current is
//!   a high-weight reading of the SOC, once per charge; the cell is on the charge branch. On
//!   NMC the reading is the table's at the charge voltage; on LFP, whose last table segment is
//!   a guess, it is 1 less what the tapering current would still bring in (its decay measured
//!   on the way down to the tail current).
//! - **SOH** is the capacity `(nominal / (1 + g))` over the nominal one; **cycles** are charge
//!   throughput / (2 x nominal capacity).
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

mod config;
mod curve;
mod filter;
mod metrics;
mod model;
mod rest;
#[cfg(test)]
mod tests;

use core::time::Duration;

pub use config::SocConfig;
pub use metrics::{Knees, SocMetrics, DEFAULT_CONVERGENCE_BAND, KNEE_SLOPE_V};

use curve::{OcvCurve, SocReading};
use filter::{Filter, Vector, STATES};
use model::{CellModel, ELEMENTS};
use rest::RestVoltage;

/// What the estimator knows after a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SocEstimate {
    /// State of charge, 0..=1.
    pub soc: f32,
    /// Standard deviation of `soc`.
    pub soc_std: f32,
    /// Learned capacity, amp-hours (it absorbs the current sensor's gain error too).
    pub capacity_ah: f32,
    /// State of health: learned capacity / nominal capacity.
    pub soh: f32,
    /// Equivalent full cycles: charge throughput / (2 x nominal capacity).
    pub equivalent_full_cycles: f32,
    /// Hysteresis state, -1 (discharge branch) to +1 (charge branch).
    pub hysteresis: f32,
    /// Half the gap between the hysteresis branches, volts: the chemistry's value, learned
    /// from rests on a plateau.
    pub hysteresis_gap_v: f32,
    /// Number of anchors seen: quiet moments when the voltage pinned the SOC within
    /// [`SocConfig::anchor_soc_std`], and full charges.
    pub anchors: u32,
    /// Number of full charges detected.
    pub full_charges: u32,
    /// Learned current-sensor offset, in C (positive: the sensor reads too little charge).
    /// Over a few hours it is barely observable and also takes up other slow drifts of the
    /// count; read it as a drift term rather than a measurement of the sensor.
    pub current_offset_c: f32,
    /// The OCV that the last sample's terminal voltage implies, volts.
    pub ocv_v: f32,
    /// The SOC that this OCV alone gives.
    pub voltage_soc: f32,
    /// Standard deviation of `voltage_soc`: small where the OCV is steep, large on a plateau.
    pub voltage_soc_std: f32,
    /// Learned resistance factors (1 = the chemistry's values at this temperature): series
    /// resistance, then the two RC pairs.
    pub resistance_factors: [f32; 3],
    /// Learned exponent of the Arrhenius factor (1 = the chemistry's activation energy).
    pub thermal_exponent: f32,
}

/// One sample, converted once.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sample {
    current_a: f64,
    voltage_v: f64,
    /// The chemistry's Arrhenius factor at the sample's temperature.
    arrhenius: f64,
}

/// Filter state: SOC.
const SOC: usize = 0;
/// Filter state: relative error of the counted charge, `g` in `delta soc = (1 + g) * counted`.
const SCALE: usize = 1;
/// Filter state: current offset, SOC per hour (C).
const OFFSET: usize = 2;
/// Filter states: resistance factors, series resistance first, then the RC pairs.
const FACTORS: usize = 3;
/// Filter state: exponent of the Arrhenius factor.
const EXPONENT: usize = FACTORS + ELEMENTS;

/// Innovations are clipped at this many standard deviations.
const INNOVATION_CLIP_SIGMAS: f64 = 3.0;
/// SOC standard deviation of the full-charge reading, at least.
const FULL_CHARGE_SOC_STD: f64 = 0.005;
/// The taper of a constant-voltage charge is measured from this many tail currents down.
const TAPER_START_TAILS: f64 = 2.0;
/// The SOC still to come at the end of a taper is uncertain by this fraction of itself.
const FULL_CHARGE_TAPER_ERROR: f64 = 0.5;
/// At most this much SOC is taken as still to come at the end of a taper.
const MAX_TAPER_REMAINING: f64 = 0.05;
/// Resistance factors stay within this band.
const FACTOR_RANGE: (f64, f64) = (0.05, 6.0);
/// The Arrhenius exponent stays within this band.
const EXPONENT_RANGE: (f64, f64) = (0.0, 2.0);
/// Scale and offset stay within this many prior standard deviations.
const PRIOR_LIMIT_SIGMAS: f64 = 3.0;
/// Process noise of the SOC per unit of SOC counted (coulombic efficiency and the like).
const SOC_NOISE_PER_SOC: f64 = 1e-6;
/// Process noise of the charge scale per second (ageing).
const SCALE_NOISE_PER_S: f64 = 1e-12;
/// Process noise of the offset per second, as a fraction of its prior variance per hour.
const OFFSET_NOISE_PER_HOUR: f64 = 0.01;
/// Process noise of the resistance factors per second, whatever happens.
const FACTOR_NOISE_PER_S: f64 = 1e-7;
/// Process noise of the Arrhenius exponent per second.
const EXPONENT_NOISE_PER_S: f64 = 1e-12;
/// Rests that read above this SOC are not used: the table's last segment rises by hundreds
/// of millivolts on LFP, in reality within its last percent or two, so that where in the
/// segment a voltage lies is a guess; full charges anchor that end.
const TOP_SEGMENT_SOC: f64 = 0.95;
/// The charge ceiling (`cap_by_charge_voltage`) takes this fraction of the series drop at
/// factor 1 (and no more than its 25 degC value) as surely in the voltage.
const CEILING_R0_FRACTION: f64 = 0.5;
/// The charge ceiling lies this far above the SOC the table gives (on LFP the table's last
/// segment rises earlier than a real knee: 50-100 mV high between 97 and 99 % on Prada2013).
const CEILING_MARGIN_SOC: f64 = 0.01;
/// The hysteresis branch is settled enough to learn the gap from a rest beyond this state.
const SETTLED_BRANCH: f64 = 0.9;
/// The learned half-gap keeps at least this uncertainty, volts (it varies with SOC and
/// temperature).
const MIN_GAP_STD_V: f64 = 0.001;
/// A rest teaches the gap only where it knows the OCV within this, volts: on a plateau,
/// not on a slope with a diffusion shift that is itself uncertain.
const MAX_GAP_NOISE_V: f64 = 0.002;
/// A rest reading adds less than this fraction of its information to an earlier one of the
/// same rest: nothing new, not applied.
const MIN_REST_GAIN: f64 = 0.05;

/// SOC and SOH estimator for one cell (or a series string of matched cells, fed the average
/// cell voltage). See the module documentation for the method and the calling order.
#[derive(Clone, Debug, PartialEq)]
pub struct SocEstimator {
    config: SocConfig,
    curve: OcvCurve,
    model: CellModel,
    filter: Filter,
    started: bool,
    held_current_a: f64,
    previous_arrhenius: f64,
    throughput_ah: f64,
    rest: Option<Rest>,
    anchors: u32,
    full_charges: u32,
    at_full: bool,
    /// Time since the start, seconds.
    clock_s: f64,
    /// When the current at the charge voltage fell below [`TAPER_START_TAILS`] tail currents
    /// (on the clock), and what it was then.
    taper: Option<(f64, f64)>,
    /// Variance of the learned half-gap between the hysteresis branches, V^2.
    gap_variance: f64,
    in_anchor: bool,
    last_ocv_v: f64,
    last_reading: SocReading,
}

/// A rest being read: its averaged voltage, and what of it the filter has already been given.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rest {
    voltage: RestVoltage,
    applied: Option<SocReading>,
    applied_at_s: f64,
}

impl SocEstimator {
    /// A new estimator; it starts at the first [`SocEstimator::update`].
    pub fn new(config: SocConfig) -> SocEstimator {
        SocEstimator {
            curve: OcvCurve::new(&config.ocv),
            model: CellModel::new(
                config.cell,
                f64::from(config.diffusion_tau_s),
                f64::from(config.hysteresis_rate),
            ),
            filter: initial_filter(&config),
            started: false,
            held_current_a: 0.0,
            previous_arrhenius: 1.0,
            throughput_ah: 0.0,
            rest: None,
            anchors: 0,
            full_charges: 0,
            at_full: false,
            clock_s: 0.0,
            taper: None,
            gap_variance: square(f64::from(
                config.hysteresis_gap_error * config.cell.hysteresis_v,
            )),
            in_anchor: false,
            last_ocv_v: 0.0,
            last_reading: SocReading {
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
            arrhenius: f64::from(self.config.cell.resistance_factor(temperature_c)),
        };
        if !self.started {
            self.start(&sample);
        } else {
            let dt_s = dt.as_secs_f64();
            if dt_s > 0.0 {
                self.clock_s += dt_s;
                self.predict(dt_s, &sample);
                let reading = self.correct(dt_s, &sample);
                self.cap_by_charge_voltage(&sample);
                self.follow_rest(dt_s, &sample);
                self.check_anchors(&sample, reading);
            }
        }
        self.held_current_a = sample.current_a;
    }

    /// State of charge, 0..=1.
    pub fn soc(&self) -> f32 {
        self.filter.x[SOC] as f32
    }

    /// State of health: learned capacity over nominal capacity.
    pub fn soh(&self) -> f32 {
        (1.0 / (1.0 + self.filter.x[SCALE])) as f32
    }

    /// Everything the estimator knows, as one value.
    pub fn estimate(&self) -> SocEstimate {
        let nominal = f64::from(self.config.cell.capacity_ah).max(1e-6);
        let x = &self.filter.x;
        SocEstimate {
            soc: x[SOC] as f32,
            soc_std: self.filter.std(SOC) as f32,
            capacity_ah: (nominal * f64::from(self.soh())) as f32,
            soh: self.soh(),
            equivalent_full_cycles: (self.throughput_ah / (2.0 * nominal)) as f32,
            hysteresis: self.model.hysteresis() as f32,
            hysteresis_gap_v: self.model.hysteresis_gap_v() as f32,
            anchors: self.anchors,
            full_charges: self.full_charges,
            current_offset_c: x[OFFSET] as f32,
            ocv_v: self.last_ocv_v as f32,
            voltage_soc: self.last_reading.soc as f32,
            voltage_soc_std: self.last_reading.soc_std as f32,
            resistance_factors: core::array::from_fn(|n| x[FACTORS + n] as f32),
            thermal_exponent: x[EXPONENT] as f32,
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
        self.previous_arrhenius = sample.arrhenius;
        if self.config.initial_soc.is_some() {
            return;
        }
        let ocv = sample.voltage_v - self.polarization_v(sample);
        let std = libm::hypot(
            self.white_std(self.filter.x[SOC]),
            self.model_error_std(sample),
        );
        let reading = self.curve.reading(ocv, std);
        self.filter.reset(SOC, reading.soc, reading.soc_std);
    }

    /// Coulomb counting and the cell model over `dt_s`, with the held current.
    fn predict(&mut self, dt_s: f64, sample: &Sample) {
        let current_a = self.held_current_a;
        let efficiency = if current_a > 0.0 {
            f64::from(self.config.cell.coulombic_efficiency)
        } else {
            1.0
        };
        let counted_ah = current_a * efficiency * dt_s / 3600.0;
        self.throughput_ah += counted_ah.abs();
        let counted = counted_ah / f64::from(self.config.cell.capacity_ah).max(1e-6);
        let hours = dt_s / 3600.0;
        let x = self.filter.x;
        let soc_change = (1.0 + x[SCALE]) * counted + x[OFFSET] * hours;
        let mut coupling = [0.0; STATES];
        coupling[SCALE] = counted;
        coupling[OFFSET] = hours;
        let thermal_change = libm::log(sample.arrhenius / self.previous_arrhenius).abs();
        self.previous_arrhenius = sample.arrhenius;
        let noise = self.process_noise(counted, dt_s, thermal_change);
        self.filter.propagate(SOC, &coupling, &noise);
        self.filter.x[SOC] = (x[SOC] + soc_change).clamp(0.0, 1.0);
        self.model.advance(dt_s, current_a, soc_change);
        if current_a < 0.0 {
            self.at_full = false;
        }
    }

    /// Process noise over one step: the resistance factors wander with the SOC moved (they
    /// depend on it), with the temperature, and slowly with time.
    fn process_noise(&self, counted: f64, dt_s: f64, thermal_change: f64) -> Vector {
        let drift = f64::from(self.config.resistance_drift);
        let thermal = f64::from(self.config.thermal_drift);
        let factor_noise = drift * drift * counted.abs()
            + thermal * thermal * thermal_change
            + FACTOR_NOISE_PER_S * dt_s;
        let offset = f64::from(self.config.current_offset_std_c);
        let mut noise = [factor_noise; STATES];
        noise[SOC] = SOC_NOISE_PER_SOC * counted.abs();
        noise[SCALE] = SCALE_NOISE_PER_S * dt_s;
        noise[OFFSET] = offset * offset * OFFSET_NOISE_PER_HOUR * dt_s / 3600.0;
        noise[EXPONENT] = EXPONENT_NOISE_PER_S * dt_s;
        noise
    }

    /// The voltage update of all states; returns what the voltage says about the SOC after
    /// it, through the updated resistances (the reading before the update decides which
    /// states may move).
    fn correct(&mut self, dt_s: f64, sample: &Sample) -> SocReading {
        let soc = self.filter.x[SOC];
        let shift = self.load_shift();
        let ocv = self
            .curve
            .statistics((soc + shift).clamp(0.0, 1.0), self.filter.std(SOC));
        let polarization = self.polarization_v(sample);
        let hysteresis = self.model.hysteresis_offset_v();
        // The table's and branch's error is taken at the unshifted SOC: at the shifted one
        // (where the OCV is) the charge-first LFP cold starts end up to 1.5 % worse after the
        // knee (README, "SOC accuracy"), the rest unchanged.
        let white = self.white_std(soc);
        let slow = self.model_error_std(sample);
        let correlation = (f64::from(self.config.correlation_time_s) / dt_s).max(1.0);
        let variance = white * white + slow * slow * correlation + ocv.residual_variance;
        let ocv_v = sample.voltage_v - polarization - hysteresis;
        let reading = self
            .curve
            .reading(ocv_v, libm::hypot(white, slow))
            .unshifted(shift);
        let frozen = self.frozen_states(sample, reading, shift);
        let mut h = [0.0; STATES];
        h[SOC] = ocv.slope;
        let regressors = self.regressors(sample);
        h[FACTORS..EXPONENT].copy_from_slice(&regressors);
        h[EXPONENT] = polarization * libm::log(sample.arrhenius);
        let innovation = sample.voltage_v - (ocv.mean_v + hysteresis + polarization);
        self.filter
            .update(innovation, &h, variance, INNOVATION_CLIP_SIGMAS, &frozen);
        self.clamp_states();
        self.last_ocv_v = sample.voltage_v - self.polarization_v(sample) - hysteresis;
        self.last_reading = self
            .curve
            .reading(self.last_ocv_v, libm::hypot(white, slow))
            .unshifted(shift);
        self.last_reading
    }

    /// How far the SOC whose OCV the cell shows under load is from its true SOC, now
    /// ([`SocConfig::load_diffusion_soc_per_c`]).
    fn load_shift(&self) -> f64 {
        f64::from(self.config.load_diffusion_soc_per_c) * self.diffusion_c_rate()
    }

    /// Whether the voltage under load may correct the SOC at this sample: the settings allow
    /// it, the SOC shifted by `shift` ([`SocEstimator::load_shift`]) and the current are
    /// within their bounds, and, where there is a load shift, the current does not flow
    /// against the diffusion current.
    fn load_reading_allowed(&self, sample: &Sample, shift: f64) -> bool {
        let config = &self.config;
        let capacity = f64::from(config.cell.capacity_ah).max(1e-6);
        let max_a = f64::from(config.load_max_c) * capacity;
        let (low, high) = config.load_soc_range;
        let shifted = self.filter.x[SOC] + shift;
        config.voltage_under_load
            && (f64::from(low)..=f64::from(high)).contains(&shifted)
            && sample.current_a.abs() <= max_a
            && self.model.diffusion_current_a().abs() <= max_a
            && (config.load_diffusion_soc_per_c == 0.0 || !self.reversed(sample))
    }

    /// While charging below the charge voltage, the SOC is at most what the voltage shows:
    /// the particles' surfaces run ahead of their bulk and every polarisation lifts the
    /// voltage, so the OCV of the bulk's SOC is below the voltage less the hysteresis branch
    /// and a safe part ([`CEILING_R0_FRACTION`]) of the series drop. The ceiling is applied
    /// only from the top segment of the table on ([`TOP_SEGMENT_SOC`]; below it a millivolt
    /// is several percent) with [`CEILING_MARGIN_SOC`] for the table's guess of the knee, and
    /// not at the charge voltage (the full charge reads that). It stops an estimate that ran
    /// ahead from sitting at 100 % while the cell is still entering its knee (LFP charged
    /// from 10 % too high: 3.0 % at the knee without it).
    fn cap_by_charge_voltage(&mut self, sample: &Sample) {
        let charging = sample.current_a > 0.0 && !self.is_quiet(sample) && !self.reversed(sample);
        if !charging || sample.voltage_v >= f64::from(self.config.full_charge_voltage_v) {
            return;
        }
        let series_drop = self
            .model
            .regressors(sample.current_a, sample.arrhenius.min(1.0))[0];
        let ocv_max =
            sample.voltage_v - self.model.hysteresis_offset_v() - CEILING_R0_FRACTION * series_drop;
        let ceiling = (self.curve.soc(ocv_max) + CEILING_MARGIN_SOC).max(TOP_SEGMENT_SOC);
        if self.filter.x[SOC] > ceiling {
            self.filter.x[SOC] = ceiling;
        }
    }

    /// Whether the current flows against the diffusion current (the current filtered over
    /// [`SocConfig::diffusion_tau_s`]): just after a reversal the particles' surfaces swing
    /// the other way faster than the filtered current follows, so the load shift is wrong
    /// (on LFP a 10 s discharge pulse after a long charge reads 10 % low).
    fn reversed(&self, sample: &Sample) -> bool {
        sample.current_a * self.model.diffusion_current_a() < 0.0
    }

    /// The states a voltage sample may not move: the SOC, and with it the scale and offset,
    /// under load unless the settings allow it there (`load_reading_allowed`), at rest when
    /// rests are read as a whole, and whenever the reading is too vague to pin the SOC.
    fn frozen_states(&self, sample: &Sample, reading: SocReading, shift: f64) -> [bool; STATES] {
        let quiet = self.is_quiet(sample);
        let freeze = (!quiet && !self.load_reading_allowed(sample, shift))
            || (quiet && self.config.read_rests)
            || reading.soc_std > f64::from(self.config.max_reading_soc_std);
        let mut frozen = [false; STATES];
        for state in [SOC, SCALE, OFFSET] {
            frozen[state] = freeze;
        }
        if !quiet && !self.config.load_teaches_capacity {
            frozen[SCALE] = true;
            frozen[OFFSET] = true;
        }
        frozen
    }

    fn clamp_states(&mut self) {
        let scale_limit = PRIOR_LIMIT_SIGMAS
            * libm::hypot(
                f64::from(self.config.capacity_std),
                f64::from(self.config.current_gain_std),
            );
        let offset_limit = PRIOR_LIMIT_SIGMAS * f64::from(self.config.current_offset_std_c);
        let x = &mut self.filter.x;
        x[SOC] = x[SOC].clamp(0.0, 1.0);
        x[SCALE] = x[SCALE].clamp(-scale_limit, scale_limit);
        x[OFFSET] = x[OFFSET].clamp(-offset_limit, offset_limit);
        for factor in &mut x[FACTORS..EXPONENT] {
            *factor = factor.clamp(FACTOR_RANGE.0, FACTOR_RANGE.1);
        }
        x[EXPONENT] = x[EXPONENT].clamp(EXPONENT_RANGE.0, EXPONENT_RANGE.1);
    }

    /// The model's element voltages at factor 1, at this sample's temperature.
    fn regressors(&self, sample: &Sample) -> [f64; ELEMENTS] {
        let thermal = libm::pow(sample.arrhenius, self.filter.x[EXPONENT]);
        self.model.regressors(sample.current_a, thermal)
    }

    /// The modelled polarisation (resistive and RC drops) at this sample, volts.
    fn polarization_v(&self, sample: &Sample) -> f64 {
        let factors = &self.filter.x[FACTORS..EXPONENT];
        dot(&self.regressors(sample), factors)
    }

    /// Whether the current is small enough for the cell to count as resting.
    fn is_quiet(&self, sample: &Sample) -> bool {
        let capacity = f64::from(self.config.cell.capacity_ah);
        sample.current_a.abs() <= f64::from(self.config.quiet_current_c) * capacity
    }

    /// Standard deviation of the white part of the voltage error at `soc`, volts: noise,
    /// table interpolation and the unknown hysteresis branch.
    fn white_std(&self, soc: f64) -> f64 {
        libm::hypot(
            f64::from(self.config.voltage_std_v),
            self.table_and_branch_std(soc),
        )
    }

    /// Standard deviation of what the OCV table and the hysteresis branch leave unknown of
    /// the OCV at `soc`, volts.
    fn table_and_branch_std(&self, soc: f64) -> f64 {
        let table = self
            .curve
            .interpolation_error_v(soc, f64::from(self.config.table_error));
        libm::hypot(table, self.branch_std())
    }

    /// Standard deviation of the hysteresis branch's offset, volts: the branch while it is not
    /// settled, and the size of the gap between the branches.
    fn branch_std(&self) -> f64 {
        let gap = libm::sqrt(self.gap_variance) * self.model.hysteresis().abs();
        libm::hypot(self.model.hysteresis_uncertainty_v(), gap)
    }

    /// Standard deviation of the slowly varying model error, volts: a floor, a fraction of
    /// the modelled polarisation, and a fraction of the fast RC voltage still settling.
    fn model_error_std(&self, sample: &Sample) -> f64 {
        let factors = &self.filter.x[FACTORS..EXPONENT];
        let thermal = libm::pow(sample.arrhenius, self.filter.x[EXPONENT]);
        let now = self.model.regressors(sample.current_a, thermal);
        let steady = self.model.steady_regressors(sample.current_a, thermal);
        let unsettled = (steady[1] - now[1]).abs() * factors[1];
        let parts = [
            f64::from(self.config.model_error_std_v),
            f64::from(self.config.model_error_fraction) * dot(&now, factors).abs(),
            f64::from(self.config.transient_error_fraction) * unsettled,
        ];
        libm::sqrt(parts.iter().map(|part| part * part).sum())
    }

    /// Follows a rest when rests are read as a whole: averages its voltage, and gives the
    /// filter what it says about the SOC every [`SocConfig::rest_update_s`] and when the rest
    /// ends.
    fn follow_rest(&mut self, dt_s: f64, sample: &Sample) {
        if !self.config.read_rests {
            return;
        }
        if !self.is_quiet(sample) {
            if let Some(rest) = self.rest.take() {
                self.learn_gap(&rest.voltage, dt_s);
                self.apply_rest(rest, dt_s);
            }
            return;
        }
        let mut rest = self.rest.unwrap_or_else(|| self.new_rest());
        let since = if self.rest.is_some() { dt_s } else { 0.0 };
        rest.voltage.push(since, sample.voltage_v);
        let elapsed = rest.voltage.elapsed_s();
        if elapsed >= rest.applied_at_s + f64::from(self.config.rest_update_s) {
            rest.applied_at_s = elapsed;
            rest = self.apply_rest(rest, dt_s);
        }
        self.rest = Some(rest);
    }

    fn new_rest(&self) -> Rest {
        Rest {
            voltage: RestVoltage::new(f64::from(self.config.rest_average_s)),
            applied: None,
            applied_at_s: 0.0,
        }
    }

    /// Gives the filter what the rest's reading adds to what it already gave (readings of
    /// one rest share their errors: only the information gained since counts); returns the
    /// rest with its record updated.
    fn apply_rest(&mut self, mut rest: Rest, dt_s: f64) -> Rest {
        if rest.voltage.elapsed_s() < f64::from(self.config.rest_min_s) {
            return rest;
        }
        let Some(reading) = self.rest_reading(&rest.voltage, dt_s) else {
            return rest;
        };
        let information = 1.0 / (reading.soc_std * reading.soc_std);
        let (gained, value) = match rest.applied {
            None => (information, reading.soc),
            Some(old) => {
                let old_information = 1.0 / (old.soc_std * old.soc_std);
                let gained = information - old_information;
                if gained <= MIN_REST_GAIN * information {
                    return rest;
                }
                let value = (reading.soc * information - old.soc * old_information) / gained;
                (gained, value)
            }
        };
        rest.applied = Some(reading);
        self.read_soc(value, 1.0 / libm::sqrt(gained), INNOVATION_CLIP_SIGMAS);
        rest
    }

    /// What a rest says about the SOC: the SOC at its averaged voltage (on the hysteresis
    /// branch), less the diffusion shift; uncertain by the noise left in the average, the
    /// RC pairs and model, the table, the hysteresis branch and a fraction of the shift.
    /// `None` at the top of the table, and where it cannot pin the SOC within
    /// [`SocConfig::max_reading_soc_std`] (on a plateau, the few millivolts by which the
    /// hysteresis gap and the diffusion shift may be off are tens of percent).
    fn rest_reading(&self, rest: &RestVoltage, dt_s: f64) -> Option<SocReading> {
        let ocv_v = rest.mean_v()? - self.model.hysteresis_offset_v();
        let voltage_std = libm::hypot(self.rest_voltage_std(rest, dt_s), self.branch_std());
        let surface = self.curve.reading(ocv_v, voltage_std);
        if surface.soc > TOP_SEGMENT_SOC {
            return None;
        }
        let table_std = self
            .curve
            .interpolation_error_soc(surface.soc, f64::from(self.config.table_error));
        let shift = self.diffusion_shift();
        let shift_std = f64::from(self.config.rest_diffusion_error) * shift.abs();
        let reading = SocReading {
            soc: surface.soc - shift,
            soc_std: libm::hypot(libm::hypot(surface.soc_std, table_std), shift_std),
        };
        (reading.soc_std <= f64::from(self.config.max_reading_soc_std)).then_some(reading)
    }

    /// Standard deviation of a rest's averaged voltage as a measure of the OCV at the
    /// surface SOC, on the modelled branch: noise left in the average, RC pairs and model.
    fn rest_voltage_std(&self, rest: &RestVoltage, dt_s: f64) -> f64 {
        libm::hypot(
            rest.noise_std_v(f64::from(self.config.voltage_std_v), dt_s),
            f64::from(self.config.rest_voltage_error_v),
        )
    }

    /// Learns the gap between the hysteresis branches from a rest that ends on a settled
    /// branch: the rest's voltage less the OCV at the (surface) SOC, where the OCV is known
    /// well enough whatever the SOC within its uncertainty (on a plateau, within
    /// [`MAX_GAP_NOISE_V`]), is the branch's offset. A scalar Kalman update of the half-gap.
    fn learn_gap(&mut self, rest: &RestVoltage, dt_s: f64) {
        let branch = self.model.hysteresis();
        let settled = branch.abs() >= SETTLED_BRANCH;
        let long_enough = rest.elapsed_s() >= f64::from(self.config.rest_min_s);
        let Some(mean_v) = rest.mean_v() else {
            return;
        };
        let learning = self.config.read_rests && self.config.learn_hysteresis_gap;
        if !(learning && settled && long_enough && self.gap_variance > 0.0) {
            return;
        }
        let shift = self.diffusion_shift();
        let shift_std = f64::from(self.config.rest_diffusion_error) * shift.abs();
        let soc_std = libm::hypot(self.filter.std(SOC), shift_std);
        let ocv = self.curve.statistics(self.filter.x[SOC] + shift, soc_std);
        let ocv_variance = square(ocv.slope * soc_std)
            + ocv.residual_variance
            + square(self.rest_voltage_std(rest, dt_s));
        let observed = (mean_v - ocv.mean_v) / branch;
        let noise = ocv_variance / square(branch);
        if noise > square(MAX_GAP_NOISE_V) {
            return;
        }
        let gain = self.gap_variance / (self.gap_variance + noise);
        let gap = self.model.hysteresis_gap_v();
        let limit = 2.0 * f64::from(self.config.cell.hysteresis_v);
        self.model
            .set_hysteresis_gap_v((gap + gain * (observed - gap)).clamp(0.0, limit));
        self.gap_variance = ((1.0 - gain) * self.gap_variance).max(square(MIN_GAP_STD_V));
    }

    /// How far the SOC whose OCV a resting cell shows is from its true SOC, now: the diffusion
    /// current in C times [`SocConfig::diffusion_soc_per_c`].
    fn diffusion_shift(&self) -> f64 {
        f64::from(self.config.diffusion_soc_per_c) * self.diffusion_c_rate()
    }

    /// The diffusion current (the current filtered over [`SocConfig::diffusion_tau_s`]), in C.
    fn diffusion_c_rate(&self) -> f64 {
        let capacity = f64::from(self.config.cell.capacity_ah).max(1e-6);
        self.model.diffusion_current_a() / capacity
    }

    /// A direct reading of the SOC, `soc +- std`, innovation clipped at `clip_sigmas`.
    fn read_soc(&mut self, soc: f64, std: f64, clip_sigmas: f64) {
        let mut h = [0.0; STATES];
        h[SOC] = 1.0;
        let innovation = soc.clamp(0.0, 1.0) - self.filter.x[SOC];
        self.filter
            .update(innovation, &h, std * std, clip_sigmas, &[false; STATES]);
        self.clamp_states();
    }

    /// Full-charge reading and anchor counting.
    fn check_anchors(&mut self, sample: &Sample, reading: SocReading) {
        if self.is_full(sample) {
            self.reach_full(sample, reading);
            self.in_anchor = true;
            return;
        }
        let anchored =
            self.is_quiet(sample) && reading.soc_std <= f64::from(self.config.anchor_soc_std);
        if anchored && !self.in_anchor {
            self.anchors += 1;
        }
        self.in_anchor = anchored;
    }

    /// Charging at the charge voltage with no more than the tail current. Follows the
    /// current's taper on the way there.
    fn is_full(&mut self, sample: &Sample) -> bool {
        let capacity = f64::from(self.config.cell.capacity_ah);
        let tail = f64::from(self.config.tail_current_c) * capacity;
        let at_charge_voltage = sample.current_a > 0.0
            && sample.voltage_v >= f64::from(self.config.full_charge_voltage_v);
        self.taper = match self.taper {
            _ if !at_charge_voltage || sample.current_a > TAPER_START_TAILS * tail => None,
            None => Some((self.clock_s, sample.current_a)),
            kept => kept,
        };
        at_charge_voltage && sample.current_a <= tail
    }

    /// End of a full charge: the SOC is read once per charge, and the cell is on the charge
    /// branch. The reading is the curve's at the voltage reached, with the table's uncertainty
    /// there (95 % for an NMC cell held at 4.15 V), or, with [`SocConfig::full_charge_taper`],
    /// 1 less what the tapering current would still bring in (see `taper_remaining`).
    fn reach_full(&mut self, sample: &Sample, reading: SocReading) {
        self.model.set_hysteresis(1.0);
        if self.at_full {
            return;
        }
        self.at_full = true;
        self.full_charges += 1;
        if !self.in_anchor {
            self.anchors += 1;
        }
        let (soc, std) = match self.taper_remaining(sample) {
            Some(remaining) if self.config.full_charge_taper => {
                (1.0 - remaining, FULL_CHARGE_TAPER_ERROR * remaining)
            }
            _ => (reading.soc, reading.soc_std),
        };
        self.read_soc(soc, std.max(FULL_CHARGE_SOC_STD), f64::INFINITY);
    }

    /// What a constant-voltage charge would still bring in, as SOC: its current decays about
    /// exponentially, `i(t) = i0 exp(-t / tau)`, so that what is left is `i * tau`; `tau` from
    /// the taper since the current fell below [`TAPER_START_TAILS`] tail currents. `None`
    /// without a taper to measure.
    fn taper_remaining(&self, sample: &Sample) -> Option<f64> {
        let (since_s, start_a) = self.taper?;
        let decay = libm::log(start_a / sample.current_a);
        let elapsed = self.clock_s - since_s;
        if !(decay > 0.01 && elapsed > 0.0) {
            return None;
        }
        let capacity = f64::from(self.config.cell.capacity_ah).max(1e-6);
        let remaining = sample.current_a * elapsed / decay / 3600.0 / capacity;
        Some(remaining.clamp(0.0, MAX_TAPER_REMAINING))
    }
}

/// The filter at the start: the configured SOC, no scale or offset, the table's resistances
/// and the chemistry's activation energy, each with its prior uncertainty.
fn initial_filter(config: &SocConfig) -> Filter {
    let mut x = [1.0; STATES];
    let mut std = [f64::from(config.resistance_std); STATES];
    x[SOC] = f64::from(config.initial_soc.unwrap_or(0.5)).clamp(0.0, 1.0);
    std[SOC] = f64::from(config.initial_soc_std);
    x[SCALE] = 0.0;
    std[SCALE] = libm::hypot(
        f64::from(config.capacity_std),
        f64::from(config.current_gain_std),
    );
    x[OFFSET] = 0.0;
    std[OFFSET] = f64::from(config.current_offset_std_c);
    std[EXPONENT] = f64::from(config.thermal_exponent_std);
    Filter::new(x, std)
}

fn square(x: f64) -> f64 {
    x * x
}

fn dot(a: &[f64; ELEMENTS], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
