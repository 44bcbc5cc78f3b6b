//! Racks: N packs (racks) in parallel seen as one battery, as a master BMS or cluster controller
//! presents them to an inverter and an EMS.
//!
//! The aggregate uses only racks whose data is fresh and whose link is online; the others are
//! listed with the reason they were left out. System current limits respect how parallel racks
//! share current: in proportion to their conductance (1 / resistance). A system current `I`
//! puts `I * G_i / sum(G)` through rack `i`, so the system limit is
//! `min_i(limit_i * sum(G) / G_i)`: the weakest rack bounds the string, and a missing rack (or
//! one whose MOSFET for that direction is open) removes its share (`battery.md`, "Multi-rack").

use alloc::vec::Vec;
use core::time::Duration;

use bmslink_proto::{Celsius, Milliamps, Millivolts, Warnings};

use crate::limits::PackLimits;
use crate::time::Instant;

/// The latest data of one rack.
#[derive(Clone, Debug, PartialEq)]
pub struct RackReport {
    /// Rack number (for reports).
    pub rack: usize,
    /// When the data was received.
    pub received_at: Instant,
    /// Whether its link is online.
    pub online: bool,
    /// Lowest cell: (1-based cell number, voltage).
    pub cell_min: (u8, Millivolts),
    /// Highest cell: (1-based cell number, voltage).
    pub cell_max: (u8, Millivolts),
    /// Lowest battery temperature.
    pub temperature_min: Celsius,
    /// Highest battery temperature.
    pub temperature_max: Celsius,
    /// State of charge, 0..=1.
    pub soc: f32,
    /// State of health, 0..=1.
    pub soh: f32,
    /// Capacity in Ah.
    pub capacity_ah: f32,
    /// Rack voltage.
    pub voltage: Millivolts,
    /// Rack current, positive = charging.
    pub current: Milliamps,
    /// Warning bits (0x8B).
    pub warnings: Warnings,
    /// Whether a protection holds a MOSFET open.
    pub protection: bool,
    /// Whether the charge MOSFET is on.
    pub charge_enabled: bool,
    /// Whether the discharge MOSFET is on.
    pub discharge_enabled: bool,
    /// The rack's own limits.
    pub limits: PackLimits,
    /// The rack's string resistance, ohm (for current sharing).
    pub resistance_ohm: f32,
}

/// Why a rack is not in the aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exclusion {
    /// Its data is older than the stale timeout.
    Stale {
        /// How old.
        age: Duration,
    },
    /// Its link is offline.
    Offline,
}

/// A cell of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellRef {
    /// Rack number.
    pub rack: usize,
    /// 1-based cell number in the rack.
    pub cell: u8,
    /// Its voltage.
    pub voltage: Millivolts,
}

/// A temperature of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemperatureRef {
    /// Rack number.
    pub rack: usize,
    /// The temperature.
    pub temperature: Celsius,
}

/// The racks as one battery.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemView {
    /// Racks in the aggregate.
    pub used: Vec<usize>,
    /// Racks left out, and why.
    pub excluded: Vec<(usize, Exclusion)>,
    /// Lowest cell of the used racks.
    pub cell_min: Option<CellRef>,
    /// Highest cell of the used racks.
    pub cell_max: Option<CellRef>,
    /// Lowest temperature.
    pub temperature_min: Option<TemperatureRef>,
    /// Highest temperature.
    pub temperature_max: Option<TemperatureRef>,
    /// Lowest rack SOC.
    pub soc_min: Option<f32>,
    /// Highest rack SOC.
    pub soc_max: Option<f32>,
    /// SOC of the whole, weighted by capacity.
    pub soc: Option<f32>,
    /// Lowest rack SOH.
    pub soh_min: Option<f32>,
    /// Capacity of the used racks, Ah.
    pub capacity_ah: f32,
    /// Mean voltage of the used racks.
    pub voltage: Option<Millivolts>,
    /// Sum of the used racks' currents, positive = charging.
    pub current: Milliamps,
    /// Warnings of every rack with data, merged.
    pub warnings: Warnings,
    /// Whether any used rack has a protection acting.
    pub protection: bool,
    /// System limits; all zero when no rack is used.
    pub limits: PackLimits,
}

/// Aggregates the racks' latest reports at `now`; data older than `stale_after` is left out.
pub fn aggregate(now: Instant, reports: &[RackReport], stale_after: Duration) -> SystemView {
    let mut used: Vec<&RackReport> = Vec::new();
    let mut excluded = Vec::new();
    let mut warnings = Warnings::empty();
    for report in reports {
        let age = now - report.received_at;
        if !report.online {
            excluded.push((report.rack, Exclusion::Offline));
        } else if age > stale_after {
            excluded.push((report.rack, Exclusion::Stale { age }));
        } else {
            used.push(report);
        }
        warnings |= report.warnings;
    }
    let capacity_ah: f32 = used.iter().map(|r| r.capacity_ah).sum();
    let soc = (capacity_ah > 0.0)
        .then(|| used.iter().map(|r| r.soc * r.capacity_ah).sum::<f32>() / capacity_ah);
    let voltage = (!used.is_empty())
        .then(|| Millivolts(used.iter().map(|r| r.voltage.0).sum::<u32>() / used.len() as u32));
    SystemView {
        cell_min: used
            .iter()
            .map(|r| cell(r, r.cell_min))
            .min_by_key(|c| c.voltage),
        cell_max: used
            .iter()
            .map(|r| cell(r, r.cell_max))
            .max_by_key(|c| c.voltage),
        temperature_min: used
            .iter()
            .map(|r| temperature(r, r.temperature_min))
            .min_by_key(|t| t.temperature),
        temperature_max: used
            .iter()
            .map(|r| temperature(r, r.temperature_max))
            .max_by_key(|t| t.temperature),
        soc_min: used.iter().map(|r| r.soc).reduce(f32::min),
        soc_max: used.iter().map(|r| r.soc).reduce(f32::max),
        soc,
        soh_min: used.iter().map(|r| r.soh).reduce(f32::min),
        capacity_ah,
        voltage,
        current: Milliamps(used.iter().map(|r| r.current.0).sum()),
        warnings,
        protection: used.iter().any(|r| r.protection),
        limits: system_limits(&used),
        used: used.iter().map(|r| r.rack).collect(),
        excluded,
    }
}

fn cell(report: &RackReport, (cell, voltage): (u8, Millivolts)) -> CellRef {
    CellRef {
        rack: report.rack,
        cell,
        voltage,
    }
}

fn temperature(report: &RackReport, temperature: Celsius) -> TemperatureRef {
    TemperatureRef {
        rack: report.rack,
        temperature,
    }
}

/// The largest system current that keeps every participating rack within its own limit.
fn shared_limit<'a>(racks: impl Iterator<Item = (&'a RackReport, f32)> + Clone) -> f32 {
    let conductance = |r: &RackReport| 1.0 / r.resistance_ohm.max(1e-6);
    let total: f32 = racks.clone().map(|(r, _)| conductance(r)).sum();
    racks
        .map(|(r, limit)| limit * total / conductance(r))
        .reduce(f32::min)
        .unwrap_or(0.0)
}

fn system_limits(used: &[&RackReport]) -> PackLimits {
    if used.is_empty() {
        return PackLimits::default();
    }
    let charging = used
        .iter()
        .filter(|r| r.charge_enabled)
        .map(|r| (*r, r.limits.charge_current_a));
    let discharging = used
        .iter()
        .filter(|r| r.discharge_enabled)
        .map(|r| (*r, r.limits.discharge_current_a));
    PackLimits {
        charge_current_a: shared_limit(charging),
        discharge_current_a: shared_limit(discharging),
        charge_voltage_v: used
            .iter()
            .map(|r| r.limits.charge_voltage_v)
            .reduce(f32::min)
            .unwrap_or(0.0),
        discharge_voltage_v: used
            .iter()
            .map(|r| r.limits.discharge_voltage_v)
            .reduce(f32::max)
            .unwrap_or(0.0),
    }
}

/// A healthy 100 Ah rack report for tests in this crate.
#[cfg(test)]
pub(crate) fn report(rack: usize, received_at: Instant) -> RackReport {
    RackReport {
        rack,
        received_at,
        online: true,
        cell_min: (3, Millivolts(3300)),
        cell_max: (9, Millivolts(3320)),
        temperature_min: Celsius(20),
        temperature_max: Celsius(24),
        soc: 0.5,
        soh: 0.98,
        capacity_ah: 100.0,
        voltage: Millivolts(53_000),
        current: Milliamps(-10_000),
        warnings: Warnings::empty(),
        protection: false,
        charge_enabled: true,
        discharge_enabled: true,
        limits: PackLimits {
            charge_current_a: 50.0,
            discharge_current_a: 100.0,
            charge_voltage_v: 56.0,
            discharge_voltage_v: 44.8,
        },
        resistance_ohm: 0.02,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn rack(rack: usize) -> RackReport {
        report(rack, Instant::from_millis(10_000))
    }

    const NOW: Instant = Instant::from_millis(11_000);
    const STALE: Duration = Duration::from_secs(5);

    #[test]
    fn equal_racks_add_up() {
        let view = aggregate(NOW, &[rack(0), rack(1), rack(2)], STALE);
        assert_eq!(view.used, vec![0, 1, 2]);
        assert!((view.limits.charge_current_a - 150.0).abs() < 1e-3);
        assert!((view.limits.discharge_current_a - 300.0).abs() < 1e-3);
        assert_eq!(view.current, Milliamps(-30_000));
        assert_eq!(view.capacity_ah, 300.0);
    }

    #[test]
    fn extremes_name_their_rack_and_cell() {
        let mut low = rack(1);
        low.cell_min = (7, Millivolts(3250));
        let mut hot = rack(2);
        hot.temperature_max = Celsius(41);
        let view = aggregate(NOW, &[rack(0), low, hot], STALE);
        assert_eq!(
            view.cell_min,
            Some(CellRef {
                rack: 1,
                cell: 7,
                voltage: Millivolts(3250)
            })
        );
        assert_eq!(
            view.temperature_max,
            Some(TemperatureRef {
                rack: 2,
                temperature: Celsius(41)
            })
        );
    }

    #[test]
    fn soc_is_weighted_by_capacity_and_soh_is_the_minimum() {
        let mut big = rack(0);
        big.capacity_ah = 300.0;
        big.soc = 0.8;
        let mut small = rack(1);
        small.soc = 0.4;
        small.soh = 0.85;
        let view = aggregate(NOW, &[big, small], STALE);
        assert!((view.soc.unwrap() - 0.7).abs() < 1e-6);
        assert_eq!(
            (view.soc_min, view.soc_max, view.soh_min),
            (Some(0.4), Some(0.8), Some(0.85))
        );
    }

    #[test]
    fn a_stale_or_offline_rack_leaves_and_takes_its_share_with_it() {
        let mut stale = rack(1);
        stale.received_at = Instant::from_millis(1_000);
        let mut offline = rack(2);
        offline.online = false;
        let view = aggregate(NOW, &[rack(0), stale, offline], STALE);
        assert_eq!(view.used, vec![0]);
        assert_eq!(
            view.excluded,
            vec![
                (
                    1,
                    Exclusion::Stale {
                        age: Duration::from_secs(10)
                    }
                ),
                (2, Exclusion::Offline)
            ]
        );
        assert!((view.limits.charge_current_a - 50.0).abs() < 1e-3);
    }

    #[test]
    fn the_weakest_rack_bounds_the_parallel_string() {
        let mut weak = rack(1);
        weak.limits.charge_current_a = 10.0;
        let view = aggregate(NOW, &[rack(0), weak], STALE);
        // Equal resistances share equally: 2 x 10 A, not 50 + 10 A.
        assert!((view.limits.charge_current_a - 20.0).abs() < 1e-3);
        // A rack with lower resistance takes more of the current.
        let mut stiff = rack(1);
        stiff.resistance_ohm = 0.01; // takes 2/3 of the current
        stiff.limits.charge_current_a = 50.0;
        let view = aggregate(NOW, &[rack(0), stiff], STALE);
        assert!((view.limits.charge_current_a - 75.0).abs() < 1e-3);
    }

    #[test]
    fn an_open_mosfet_removes_the_rack_from_that_direction_only() {
        let mut protected = rack(1);
        protected.charge_enabled = false;
        protected.protection = true;
        protected.warnings = Warnings::CELL_OVER_VOLTAGE;
        let view = aggregate(NOW, &[rack(0), protected], STALE);
        assert!((view.limits.charge_current_a - 50.0).abs() < 1e-3);
        assert!((view.limits.discharge_current_a - 200.0).abs() < 1e-3);
        assert!(view.protection);
        assert_eq!(view.warnings, Warnings::CELL_OVER_VOLTAGE);
    }

    #[test]
    fn no_fresh_rack_means_zero_limits() {
        let mut offline = rack(0);
        offline.online = false;
        let view = aggregate(NOW, &[offline], STALE);
        assert_eq!(view.limits, PackLimits::default());
        assert_eq!(view.soc, None);
        assert!(view.used.is_empty());
    }
}
