//! Settings of the SOC estimator, with defaults per chemistry.
//!
//! The defaults were chosen on PyBaMM DFN profiles (Chen2020 NMC, Prada2013 LFP; see the
//! README, "SOC accuracy"), as round values; what differs between chemistries is how far the
//! voltage can be trusted: NMC's sloped curve and modest relaxation let the voltage correct
//! the SOC under load anywhere; LFP's plateau, hysteresis and slow relaxation only let it on
//! the sloped middle of the curve, below 0.7 C, with the current flowing the way it has for
//! the last minutes, through the OCV of the diffusion-shifted SOC, without teaching the
//! capacity; rests are read as a whole.

use crate::chemistry::{CellParameters, Chemistry, OcvTable};

/// Settings of a [`SocEstimator`](super::SocEstimator). [`SocConfig::new`] gives the defaults
/// for a chemistry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SocConfig {
    /// The cell chemistry.
    pub chemistry: Chemistry,
    /// OCV against SOC (at 25 degC, mean of the hysteresis branches).
    pub ocv: OcvTable,
    /// Equivalent-circuit parameters: the starting point of the learned resistances;
    /// `capacity_ah` is the nominal capacity, from which capacity learning starts and against
    /// which SOH is given.
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
    /// Standard deviation of the white part of the voltage error (sensor noise), volts.
    pub voltage_std_v: f32,
    /// Standard deviation of the slowly varying model error of a relaxed cell, volts.
    pub model_error_std_v: f32,
    /// The slowly varying model error grows by this fraction of the modelled polarisation.
    pub model_error_fraction: f32,
    /// ... and by this fraction of the part of the fast RC voltage that has not settled yet
    /// (just after a current step, where an RC model and a real cell differ most).
    pub transient_error_fraction: f32,
    /// Time over which model errors stay correlated, seconds: a voltage sample counts for
    /// `dt / correlation_time_s` of an independent one.
    pub correlation_time_s: f32,
    /// SOC standard deviation of the OCV table's interpolation error mid-way between two points
    /// at a sharp kink (a knee), as a fraction of the 5 % between points.
    pub table_error: f32,
    /// Standard deviation of the initial resistance factors (1 = the chemistry's values).
    pub resistance_std: f32,
    /// How fast the resistance factors may wander with the SOC (they depend on it): standard
    /// deviation per square root of the SOC moved.
    pub resistance_drift: f32,
    /// How fast the resistance factors may wander with the temperature: standard deviation
    /// per square root of the relative change of the Arrhenius factor.
    pub thermal_drift: f32,
    /// Standard deviation of the Arrhenius exponent (1 = the chemistry's activation energy).
    pub thermal_exponent_std: f32,
    /// Hysteresis rate: the state moves `1 - e^-1` of the way to a branch per this inverse of
    /// SOC moved (25: within ~4 % of SOC). Ignored when `cell.hysteresis_v` is 0.
    pub hysteresis_rate: f32,
    /// The gap between the hysteresis branches (`cell.hysteresis_v`) is uncertain by this
    /// fraction of itself until it is learned (cells of one chemistry differ; on LFP a few
    /// millivolts are several percent of SOC at the edges of the plateau).
    pub hysteresis_gap_error: f32,
    /// Whether the gap between the hysteresis branches is learned from rests on a settled
    /// branch where the OCV is flat (with [`SocConfig::read_rests`]).
    pub learn_hysteresis_gap: bool,
    /// Whether the voltage under load corrects the SOC (and the capacity and offset), within
    /// the bounds of the `load_*` settings; if not, it only teaches the resistances.
    pub voltage_under_load: bool,
    /// Diffusion shift under load: the voltage under load shows the OCV of the SOC plus this
    /// many units of SOC per C of diffusion current (see [`SocConfig::diffusion_soc_per_c`]
    /// for rests). 0.14 on PyBaMM's Prada2013 LFP at 10-25 degC, where resting cells show
    /// 0.10: fitted over the crossings of the 70-80 % shoulder under load, it reads their SOC
    /// within 1.25 %. 0 for chemistries without it.
    pub load_diffusion_soc_per_c: f32,
    /// The voltage under load corrects the SOC only where the shifted SOC lies in this range:
    /// on LFP the sloped middle of the curve (at the knees the surface saturates and a linear
    /// shift no longer holds).
    pub load_soc_range: (f32, f32),
    /// ... and only below this current, in C (LFP: the shift is linear up to about C/2 to
    /// 2C/3; 2C pulses read several percent off) ...
    pub load_max_c: f32,
    /// Whether the voltage under load also teaches the charge scale (capacity and current
    /// gain) and the current offset, through the SOC it corrects. NMC: yes. LFP: no, only
    /// rests, knees and full charges do: its loaded readings are right on average but biased
    /// by a percent or two over long stretches (the 20-45 % slope under charge reads 1.5-3 %
    /// low on Prada2013), which taught the capacity the wrong way (to 4 % too large).
    pub load_teaches_capacity: bool,
    /// A voltage reading whose SOC standard deviation is above this does not correct the SOC:
    /// on a plateau a few millivolts of correlated error are tens of percent.
    pub max_reading_soc_std: f32,
    /// Whether rests are read as a whole (their voltage averaged, the SOC it gives corrected
    /// for the diffusion shift, see `rest`) instead of sample by sample.
    pub read_rests: bool,
    /// A rest is read once it has lasted this long, seconds ...
    pub rest_min_s: f32,
    /// ... and again every this many seconds while it lasts, and when it ends.
    pub rest_update_s: f32,
    /// The rest's voltage is averaged over about this many seconds.
    pub rest_average_s: f32,
    /// Standard deviation of what a rest's averaged voltage still owes to the RC pairs and
    /// to the model, volts.
    pub rest_voltage_error_v: f32,
    /// Diffusion shift: a resting cell shows the OCV of its SOC plus this many units of SOC
    /// per C of diffusion current (the current filtered by `diffusion_tau_s`, positive when
    /// charging). 0.10 on PyBaMM's Prada2013 LFP at 10-25 degC (see `model`).
    pub diffusion_soc_per_c: f32,
    /// Time constant of the diffusion current, seconds.
    pub diffusion_tau_s: f32,
    /// The diffusion shift is uncertain by this fraction of itself.
    pub rest_diffusion_error: f32,
    /// Charge voltage (per cell) at which, with a current below the tail current, the cell is
    /// full.
    pub full_charge_voltage_v: f32,
    /// Below this current at the charge voltage the cell is full, in C (0.05 = C/20; above
    /// the charger's own tail current, or the end of charge may pass unseen).
    pub tail_current_c: f32,
    /// Whether a full charge reads the SOC from the taper of the charge current (1 less what
    /// the tapering current would still bring in) rather than from the curve at the charge
    /// voltage: where the table's last segment is a guess (LFP's rises by hundreds of
    /// millivolts in its last percent or two), the curve there reads about a percent low.
    pub full_charge_taper: bool,
    /// The cell is quiet (at rest) below this current, in C.
    pub quiet_current_c: f32,
    /// A quiet voltage reading whose SOC standard deviation is below this counts as an anchor.
    pub anchor_soc_std: f32,
}

impl SocConfig {
    /// Defaults for `chemistry` with a nominal capacity of `capacity_ah` (the chemistry's
    /// table, equivalent circuit and charge voltage).
    pub fn new(chemistry: Chemistry, capacity_ah: f32) -> SocConfig {
        let cell = CellParameters {
            capacity_ah,
            ..chemistry.cell()
        };
        let flat = chemistry == Chemistry::Lfp;
        SocConfig {
            chemistry,
            ocv: *chemistry.ocv(),
            cell,
            initial_soc: None,
            initial_soc_std: 0.1,
            capacity_std: 0.05,
            current_gain_std: 0.01,
            current_offset_std_c: 0.002,
            voltage_std_v: 0.003,
            model_error_std_v: 0.003,
            model_error_fraction: if flat { 0.1 } else { 0.06 },
            transient_error_fraction: 0.5,
            correlation_time_s: if flat { 120.0 } else { 20.0 },
            table_error: 0.3,
            resistance_std: 0.5,
            resistance_drift: 0.2,
            thermal_drift: 0.3,
            thermal_exponent_std: 0.3,
            hysteresis_rate: 25.0,
            hysteresis_gap_error: 0.3,
            learn_hysteresis_gap: true,
            voltage_under_load: true,
            load_diffusion_soc_per_c: if flat { 0.14 } else { 0.0 },
            load_soc_range: if flat { (0.2, 0.9) } else { (0.0, 1.0) },
            load_max_c: if flat { 0.7 } else { f32::INFINITY },
            load_teaches_capacity: !flat,
            max_reading_soc_std: if flat { 0.035 } else { 1.0 },
            read_rests: flat,
            rest_min_s: 60.0,
            rest_update_s: 60.0,
            rest_average_s: 20.0,
            rest_voltage_error_v: 0.001,
            diffusion_soc_per_c: if flat { 0.10 } else { 0.0 },
            diffusion_tau_s: 300.0,
            rest_diffusion_error: 0.3,
            full_charge_voltage_v: full_charge_voltage(chemistry),
            tail_current_c: if flat { 0.1 } else { 0.05 },
            full_charge_taper: flat,
            quiet_current_c: 0.05,
            anchor_soc_std: 0.015,
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
