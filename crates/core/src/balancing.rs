//! Passive cell balancing: which cells bleed, and only when the conditions hold.
//!
//! Conditions (the NW settings 0x9B..0x9D, and `battery.md`):
//! - the balancing switch (0x9D) is on;
//! - the highest cell is at or above the balance start voltage (0x9B): balancing tops the pack
//!   up where the OCV curve separates the cells (LFP's plateau hides differences), and stops
//!   when it falls below it;
//! - the spread (highest - lowest) reaches the trigger difference (0x9C) to start, and
//!   balancing continues until it falls to half of it (hysteresis, so it does not chatter);
//! - the current suits the configured mode (by default while charging or at rest: bleeding
//!   during a heavy discharge only wastes energy the load needs);
//! - no cell is below the cell under-voltage protection, and no cell is too hot to bleed.
//!
//! A cell bleeds while it is above the lowest cell by more than half the trigger difference.
//! The bleed current per cell is the slave module's (default 400 mA: the seeds' modules
//! balance at < 500 mA).

use alloc::vec::Vec;

use bmslink_proto::{Celsius, Milliamps, Millivolts};

use crate::settings::Settings;

/// When balancing may run, by pack current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BalanceWhen {
    /// Only while charging (above +50 mA).
    Charging,
    /// While charging or at rest (above -50 mA).
    ChargingOrRest,
    /// Whatever the current.
    Always,
}

/// Tuning the NW settings do not cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalancingConfig {
    /// When balancing may run.
    pub when: BalanceWhen,
    /// Bleed current of one cell's balancing resistor.
    pub bleed_current: Milliamps,
    /// No bleeding at or above this temperature (the resistors heat the pack).
    pub max_temperature: Celsius,
}

impl Default for BalancingConfig {
    fn default() -> Self {
        BalancingConfig {
            when: BalanceWhen::ChargingOrRest,
            bleed_current: Milliamps(400),
            max_temperature: Celsius(55),
        }
    }
}

/// The balancer of one pack.
#[derive(Clone, Debug)]
pub struct Balancer {
    config: BalancingConfig,
    bleeding: Vec<bool>,
    active: bool,
}

impl Balancer {
    /// A balancer with no cell bleeding.
    pub fn new(config: BalancingConfig) -> Balancer {
        Balancer {
            config,
            bleeding: Vec::new(),
            active: false,
        }
    }

    /// Decides which cells bleed for these measurements.
    pub fn update(
        &mut self,
        settings: &Settings,
        cells: &[Millivolts],
        current: Milliamps,
        hottest: Celsius,
    ) -> &[bool] {
        self.bleeding.clear();
        self.bleeding.resize(cells.len(), false);
        let (Some(low), Some(high)) = (cells.iter().min(), cells.iter().max()) else {
            self.active = false;
            return &self.bleeding;
        };
        let spread = high.0 - low.0;
        let trigger = u32::from(settings.balance_trigger_difference);
        let keep_going = self.active && spread > trigger / 2;
        let start = spread >= trigger;
        self.active = settings.balancing_enabled
            && high.0 >= u32::from(settings.balance_start_voltage)
            && (start || keep_going)
            && self.current_allows(current)
            && low.0 > u32::from(settings.cell_under_voltage_protection)
            && hottest < self.config.max_temperature;
        if self.active {
            let floor = low.0 + trigger / 2;
            for (bleed, cell) in self.bleeding.iter_mut().zip(cells) {
                *bleed = cell.0 > floor;
            }
        }
        &self.bleeding
    }

    fn current_allows(&self, current: Milliamps) -> bool {
        match self.config.when {
            BalanceWhen::Charging => current.0 > 50,
            BalanceWhen::ChargingOrRest => current.0 > -50,
            BalanceWhen::Always => true,
        }
    }

    /// Whether any cell bleeds (0x8C bit 2).
    pub fn is_active(&self) -> bool {
        self.active && self.bleeding.iter().any(|&b| b)
    }

    /// Which cells bleed, in cell order.
    pub fn bleeding(&self) -> &[bool] {
        &self.bleeding
    }

    /// The bleed current of each bleeding cell.
    pub fn bleed_current(&self) -> Milliamps {
        self.config.bleed_current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chemistry::Chemistry;

    fn cells(mv: &[u32]) -> Vec<Millivolts> {
        mv.iter().map(|&v| Millivolts(v)).collect()
    }

    fn balancer() -> (Balancer, Settings) {
        // LFP preset: start 3.400 V, trigger 15 mV.
        (
            Balancer::new(BalancingConfig::default()),
            Settings::preset(Chemistry::Lfp, 4, 100),
        )
    }

    const WARM: Celsius = Celsius(25);

    #[test]
    fn high_cells_bleed_once_above_start_voltage_and_trigger_difference() {
        let (mut b, s) = balancer();
        let pack = cells(&[3420, 3400, 3405, 3390]);
        assert_eq!(
            b.update(&s, &pack, Milliamps(5000), WARM),
            &[true, true, true, false]
        );
        assert!(b.is_active());
        // Below the start voltage nothing bleeds, whatever the spread.
        let low = cells(&[3350, 3300, 3320, 3290]);
        assert_eq!(b.update(&s, &low, Milliamps(5000), WARM), &[false; 4]);
        assert!(!b.is_active());
    }

    #[test]
    fn balancing_continues_to_half_the_trigger_then_stops() {
        let (mut b, s) = balancer();
        b.update(&s, &cells(&[3420, 3400, 3400, 3400]), Milliamps(0), WARM);
        assert!(b.is_active());
        // 10 mV: below the 15 mV trigger, above half of it: still balancing.
        assert_eq!(
            b.update(&s, &cells(&[3410, 3400, 3400, 3400]), Milliamps(0), WARM),
            &[true, false, false, false]
        );
        // 7 mV: done.
        b.update(&s, &cells(&[3407, 3400, 3400, 3400]), Milliamps(0), WARM);
        assert!(!b.is_active());
        // And 10 mV does not restart it.
        b.update(&s, &cells(&[3410, 3400, 3400, 3400]), Milliamps(0), WARM);
        assert!(!b.is_active());
    }

    #[test]
    fn switch_discharge_under_voltage_and_heat_stop_balancing() {
        let (mut b, mut s) = balancer();
        let pack = cells(&[3450, 3400, 3400, 3400]);
        assert!(
            b.update(&s, &pack, Milliamps(-2000), WARM)
                .iter()
                .all(|&x| !x),
            "discharging"
        );
        assert!(
            b.update(&s, &pack, Milliamps(0), Celsius(60))
                .iter()
                .all(|&x| !x),
            "too hot"
        );
        let weak = cells(&[3450, 3400, 3400, 2500]);
        assert!(
            b.update(&s, &weak, Milliamps(0), WARM).iter().all(|&x| !x),
            "a cell below UV"
        );
        s.balancing_enabled = false;
        assert!(
            b.update(&s, &pack, Milliamps(0), WARM).iter().all(|&x| !x),
            "switched off"
        );
        let always = BalancingConfig {
            when: BalanceWhen::Always,
            ..Default::default()
        };
        let mut b = Balancer::new(always);
        s.balancing_enabled = true;
        assert!(b.update(&s, &pack, Milliamps(-2000), WARM)[0]);
    }

    #[test]
    fn no_cells_no_balancing() {
        let (mut b, s) = balancer();
        assert_eq!(b.update(&s, &[], Milliamps(0), WARM), &[] as &[bool]);
        assert!(!b.is_active());
    }
}
