//! Charge and discharge limits of one pack: the current limits (CCL, DCL) and voltage limits
//! (CVL, DVL) an inverter is told to respect.
//!
//! A current limit is the smallest of (`battery.md`, "Current limits"):
//! - the configured C-rate (default 0.5 C charge, 1 C discharge);
//! - 90 % of the over-current protection (0x97 / 0x99), so the limit never trips the BMS;
//! - the physics bound: charge `(V_max - V_cell,max) / R_dc`, discharge
//!   `(V_cell,min - V_min) / R_dc`, with `V_max`/`V_min` 50 mV inside the cell protections and
//!   `R_dc` at the present temperature;
//! - temperature derating: linear from full at 10 K inside the temperature protections to zero
//!   at them;
//! - SOC tapering: charge from 90 % SOC down to 5 % of the C-rate at 100 %, discharge from 10 %
//!   SOC down to 5 % at 0 %;
//! - zero in a direction a protection or the user's switch has closed.
//!
//! Decreases apply at once; increases ramp (default 1 % of capacity per second), so an
//! inverter is never handed a step up. The calculation is idempotent: the same inputs at the
//! same instant give the same limits, however often it is called.

use bmslink_proto::{Celsius, Millivolts};

use crate::chemistry::Chemistry;
use crate::settings::Settings;
use crate::time::Instant;

/// Tuning of the limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitsConfig {
    /// Largest charge current as a C-rate.
    pub max_charge_c: f32,
    /// Largest discharge current as a C-rate.
    pub max_discharge_c: f32,
    /// Share of the over-current protection a limit may use.
    pub over_current_margin: f32,
    /// Distance kept from the cell voltage protections in the physics bound, in volts.
    pub voltage_margin_v: f32,
    /// Width of the temperature derating band, K.
    pub derating_band_k: f32,
    /// SOC above which the charge limit tapers.
    pub charge_taper_soc: f32,
    /// SOC below which the discharge limit tapers.
    pub discharge_taper_soc: f32,
    /// What is left of a limit at the end of its taper.
    pub taper_floor: f32,
    /// Fastest increase, in C per second.
    pub ramp_c_per_s: f32,
    /// Charge voltage per cell; `None` for the chemistry's target (LFP 3.50 V, NMC 4.15 V, LTO
    /// 2.70 V).
    pub charge_cell_voltage: Option<Millivolts>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_charge_c: 0.5,
            max_discharge_c: 1.0,
            over_current_margin: 0.9,
            voltage_margin_v: 0.05,
            derating_band_k: 10.0,
            charge_taper_soc: 0.9,
            discharge_taper_soc: 0.1,
            taper_floor: 0.05,
            ramp_c_per_s: 0.01,
            charge_cell_voltage: None,
        }
    }
}

/// The limits of a pack or a system.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PackLimits {
    /// Charge current limit (CCL), A, >= 0.
    pub charge_current_a: f32,
    /// Discharge current limit (DCL), A, >= 0.
    pub discharge_current_a: f32,
    /// Charge voltage limit (CVL), V.
    pub charge_voltage_v: f32,
    /// Discharge voltage limit (DVL), V.
    pub discharge_voltage_v: f32,
}

/// What the limits depend on, measured at one instant.
#[derive(Clone, Copy, Debug)]
pub struct LimitInputs<'a> {
    /// Every cell's voltage.
    pub cells: &'a [Millivolts],
    /// Battery temperature sensors.
    pub temperatures: &'a [Celsius],
    /// State of charge, 0..=1.
    pub soc: f32,
    /// DC resistance of one series element of the pack at the present temperature, ohm.
    pub cell_resistance_ohm: f32,
    /// Whether the charge MOSFET may be on (protections and the user's switch).
    pub charge_allowed: bool,
    /// Whether the discharge MOSFET may be on.
    pub discharge_allowed: bool,
}

/// DC resistance of one series element of a pack of `capacity_ah` made of `chemistry` cells in
/// parallel, at `celsius`: R0 + R1 + R2 of the typical cell, scaled by the parallel count.
pub fn series_element_resistance(chemistry: Chemistry, capacity_ah: f32, celsius: f32) -> f32 {
    let cell = chemistry.cell();
    let parallel = (capacity_ah / cell.capacity_ah).max(1.0);
    (cell.r0_ohm + cell.r1_ohm + cell.r2_ohm) / parallel * cell.resistance_factor(celsius)
}

/// Computes and ramps the limits of one pack.
#[derive(Clone, Debug)]
pub struct LimitCalculator {
    config: LimitsConfig,
    last: Option<(Instant, PackLimits)>,
}

fn ramp(previous: f32, target: f32, max_step: f32) -> f32 {
    if target <= previous {
        target
    } else {
        target.min(previous + max_step)
    }
}

/// 1 inside the band, falling linearly to 0 at the edge: `distance` is how far inside.
fn derate(distance: f32, band: f32) -> f32 {
    (distance / band).clamp(0.0, 1.0)
}

impl LimitCalculator {
    /// A calculator with no history (the first limits are not ramped).
    pub fn new(config: LimitsConfig) -> LimitCalculator {
        LimitCalculator { config, last: None }
    }

    /// The limits at `now`.
    pub fn update(
        &mut self,
        now: Instant,
        settings: &Settings,
        inputs: &LimitInputs<'_>,
    ) -> PackLimits {
        let target = self.target(settings, inputs);
        let limits = match self.last {
            Some((at, previous)) => {
                let seconds = (now - at).as_secs_f32();
                let step = self.config.ramp_c_per_s * settings.nominal_capacity_ah as f32 * seconds;
                PackLimits {
                    charge_current_a: ramp(
                        previous.charge_current_a,
                        target.charge_current_a,
                        step,
                    ),
                    discharge_current_a: ramp(
                        previous.discharge_current_a,
                        target.discharge_current_a,
                        step,
                    ),
                    ..target
                }
            }
            None => target,
        };
        // The output never exceeds the target, so a repeated call at the same instant (no time
        // to ramp) returns the same limits: the calculation does not drift.
        self.last = Some((now, limits));
        limits
    }

    /// The limits without ramping.
    fn target(&self, settings: &Settings, inputs: &LimitInputs<'_>) -> PackLimits {
        let c = &self.config;
        let capacity = settings.nominal_capacity_ah as f32;
        let cells = f32::from(settings.cell_count.max(1));
        let volts = |mv: u16| f32::from(mv) / 1000.0;
        let high_cell = inputs.cells.iter().max().map_or(0.0, |v| v.volts() as f32);
        let low_cell = inputs.cells.iter().min().map_or(0.0, |v| v.volts() as f32);
        let resistance = inputs.cell_resistance_ohm.max(1e-6);
        let v_max = volts(settings.cell_over_voltage_protection) - c.voltage_margin_v;
        let v_min = volts(settings.cell_under_voltage_protection) + c.voltage_margin_v;
        let hottest = inputs
            .temperatures
            .iter()
            .max()
            .map_or(25.0, |t| f32::from(t.0));
        let coldest = inputs
            .temperatures
            .iter()
            .min()
            .map_or(25.0, |t| f32::from(t.0));

        // 1 well inside a temperature window, falling to 0 at either of its protections.
        let window = |low: i16, high: u16| {
            derate(coldest - f32::from(low), c.derating_band_k)
                * derate(f32::from(high) - hottest, c.derating_band_k)
        };
        let charge_temperature = window(
            settings.charge_low_temperature_protection,
            settings.charge_high_temperature_protection,
        );
        let discharge_temperature = window(
            settings.discharge_low_temperature_protection,
            settings.discharge_high_temperature_protection,
        );
        let charge_taper = taper(1.0 - inputs.soc, 1.0 - c.charge_taper_soc, c.taper_floor);
        let discharge_taper = taper(inputs.soc, c.discharge_taper_soc, c.taper_floor);

        let charge = (c.max_charge_c * capacity * charge_taper)
            .min(c.over_current_margin * f32::from(settings.charge_over_current_protection))
            .min(((v_max - high_cell) / resistance).max(0.0))
            * charge_temperature;
        let discharge = (c.max_discharge_c * capacity * discharge_taper)
            .min(c.over_current_margin * f32::from(settings.discharge_over_current_protection))
            .min(((low_cell - v_min) / resistance).max(0.0))
            * discharge_temperature;

        PackLimits {
            charge_current_a: if inputs.charge_allowed {
                charge.max(0.0)
            } else {
                0.0
            },
            discharge_current_a: if inputs.discharge_allowed {
                discharge.max(0.0)
            } else {
                0.0
            },
            charge_voltage_v: cells * self.charge_cell_voltage(settings).min(v_max),
            discharge_voltage_v: cells
                * (volts(settings.cell_under_voltage_protection)
                    + volts(settings.cell_under_voltage_recovery))
                / 2.0,
        }
    }

    fn charge_cell_voltage(&self, settings: &Settings) -> f32 {
        if let Some(mv) = self.config.charge_cell_voltage {
            return mv.volts() as f32;
        }
        match settings.chemistry() {
            Some(Chemistry::Lfp) | None => 3.50,
            Some(Chemistry::Nmc) => 4.15,
            Some(Chemistry::Lto) => 2.70,
        }
    }
}

/// 1 while `room` (distance to the end of the range) is above `band`, then linear down to
/// `floor` at zero room.
fn taper(room: f32, band: f32, floor: f32) -> f32 {
    if band <= 0.0 || room >= band {
        1.0
    } else {
        floor + (1.0 - floor) * (room.max(0.0) / band)
    }
}

#[cfg(test)]
mod tests;
