//! A pack: series elements with seeded cell-to-cell spread, balancing bleed, MOSFET gating, and
//! the sensors a BMS reads (cell voltages in mV, two battery temperature sensors, the box and
//! the power tube).
//!
//! Spread (`battery.md`, orders of magnitude): capacity sigma 1 %, resistance sigma 3 %, initial
//! SOC sigma 1.5 %, self-discharge 10-60 uA per 2-5 Ah of cell (what makes balancing necessary).
//! The same seed gives the same pack.

use bmslink_core::chemistry::Chemistry;
use bmslink_proto::{Celsius, Millivolts};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cell::{CellModel, CellState, Decay};

/// How much cells differ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// Relative standard deviation of capacity.
    pub capacity: f64,
    /// Relative standard deviation of resistance.
    pub resistance: f64,
    /// Standard deviation of the initial SOC (absolute).
    pub initial_soc: f64,
    /// Self-discharge range of one typical cell, A.
    pub leak_a: (f64, f64),
}

impl Default for Spread {
    fn default() -> Self {
        Spread {
            capacity: 0.01,
            resistance: 0.03,
            initial_soc: 0.015,
            leak_a: (10e-6, 60e-6),
        }
    }
}

impl Spread {
    /// Identical cells.
    pub fn none() -> Spread {
        Spread {
            capacity: 0.0,
            resistance: 0.0,
            initial_soc: 0.0,
            leak_a: (0.0, 0.0),
        }
    }
}

/// What pack to build.
#[derive(Clone, Debug, PartialEq)]
pub struct PackConfig {
    /// Cell chemistry.
    pub chemistry: Chemistry,
    /// Cells in series.
    pub cells: usize,
    /// Pack capacity, Ah (cells are paralleled to reach it).
    pub capacity_ah: f64,
    /// Mean initial SOC, 0..=1.
    pub initial_soc: f64,
    /// Ambient temperature, degC.
    pub ambient_c: f64,
    /// Cell-to-cell spread.
    pub spread: Spread,
    /// Seed of the spread.
    pub seed: u64,
}

impl PackConfig {
    /// A pack of `cells` cells of `chemistry` with the default spread, at 50 % SOC and 25 degC.
    pub fn new(chemistry: Chemistry, cells: usize, capacity_ah: f64, seed: u64) -> PackConfig {
        PackConfig {
            chemistry,
            cells,
            capacity_ah,
            initial_soc: 0.5,
            ambient_c: 25.0,
            spread: Spread::default(),
            seed,
        }
    }
}

/// Power tube (MOSFET) on-resistance, ohm, and its thermal mass and cooling.
const MOSFET_ON_OHM: f64 = 0.0015;
const MOSFET_HEAT_CAPACITY_J_K: f64 = 60.0;
const MOSFET_COOLING_W_K: f64 = 0.6;

/// A simulated pack.
#[derive(Clone, Debug)]
pub struct Pack {
    chemistry: Chemistry,
    models: Vec<CellModel>,
    states: Vec<CellState>,
    /// Ambient temperature, degC.
    pub ambient_c: f64,
    mosfet_c: f64,
    current_a: f64,
}

/// A normally distributed sample (Box-Muller) with mean 0 and standard deviation 1.
fn gaussian(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * core::f64::consts::PI * u2)
}

impl Pack {
    /// Builds a pack; the seed fixes every cell's deviation.
    pub fn new(config: &PackConfig) -> Pack {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let typical = config.chemistry.cell();
        let parallel = config.capacity_ah / f64::from(typical.capacity_ah);
        let spread = config.spread;
        let mut models = Vec::with_capacity(config.cells);
        let mut states = Vec::with_capacity(config.cells);
        for _ in 0..config.cells {
            let mut model = CellModel::from_parameters(&typical, *config.chemistry.ocv(), parallel);
            model.capacity_ah *= 1.0 + spread.capacity * gaussian(&mut rng);
            let resistance = 1.0 + spread.resistance * gaussian(&mut rng);
            model.r0_ohm *= resistance;
            model.r1_ohm *= resistance;
            model.r2_ohm *= resistance;
            let (low, high) = spread.leak_a;
            model.leak_a = (low + (high - low) * rng.random::<f64>()) * parallel.max(1.0);
            let soc = config.initial_soc + spread.initial_soc * gaussian(&mut rng);
            states.push(CellState::rested(soc, config.ambient_c));
            models.push(model);
        }
        Pack {
            chemistry: config.chemistry,
            models,
            states,
            ambient_c: config.ambient_c,
            mosfet_c: config.ambient_c,
            current_a: 0.0,
        }
    }

    /// The chemistry.
    pub fn chemistry(&self) -> Chemistry {
        self.chemistry
    }

    /// Cells in series.
    pub fn cell_count(&self) -> usize {
        self.states.len()
    }

    /// Nominal capacity: the smallest element's.
    pub fn capacity_ah(&self) -> f64 {
        self.models
            .iter()
            .map(|m| m.capacity_ah)
            .fold(f64::INFINITY, f64::min)
    }

    /// Advances by `dt` seconds with `current_a` (positive = charge) through the pack; cells
    /// marked in `bleed` also discharge through their balancing resistor at `bleed_a`.
    pub fn step(&mut self, dt: f64, current_a: f64, bleed: &[bool], bleed_a: f64) {
        let Some(first) = self.models.first() else {
            return;
        };
        // Spread scales resistances, not time constants: one decay serves every element.
        let decay = Decay::new(first, dt);
        for (index, (model, state)) in self.models.iter().zip(self.states.iter_mut()).enumerate() {
            let bleeding = bleed.get(index).copied().unwrap_or(false);
            let current = if bleeding {
                current_a - bleed_a
            } else {
                current_a
            };
            state.step_with(model, &decay, current, self.ambient_c);
        }
        let heat = current_a * current_a * MOSFET_ON_OHM;
        let cooling = MOSFET_COOLING_W_K * (self.mosfet_c - self.ambient_c);
        self.mosfet_c += (heat - cooling) * dt / MOSFET_HEAT_CAPACITY_J_K;
        self.current_a = current_a;
    }

    /// The current of the last step, A (positive = charge).
    pub fn current_a(&self) -> f64 {
        self.current_a
    }

    /// Cell terminal voltages as the BMS measures them (whole mV).
    pub fn cell_voltages(&self, out: &mut Vec<Millivolts>) {
        out.clear();
        out.extend(
            self.models.iter().zip(&self.states).map(|(m, s)| {
                Millivolts(libm::round(s.terminal_voltage(m).max(0.0) * 1000.0) as u32)
            }),
        );
    }

    /// Pack voltage, V.
    pub fn voltage(&self) -> f64 {
        self.models
            .iter()
            .zip(&self.states)
            .map(|(m, s)| s.terminal_voltage(m))
            .sum()
    }

    /// Mean true SOC, 0..=1.
    pub fn soc(&self) -> f64 {
        self.states.iter().map(|s| s.soc).sum::<f64>() / self.states.len().max(1) as f64
    }

    /// The lowest element's true SOC (what the pack can still deliver).
    pub fn soc_min(&self) -> f64 {
        self.states
            .iter()
            .map(|s| s.soc)
            .fold(f64::INFINITY, f64::min)
    }

    /// The states of the elements (for tests and detailed views).
    pub fn states(&self) -> &[CellState] {
        &self.states
    }

    /// Two battery temperature sensors, at a quarter and three quarters of the string (whole
    /// degC, as the BMS reports).
    pub fn battery_temperatures(&self) -> [Celsius; 2] {
        let n = self.states.len();
        let at = |i: usize| {
            self.states
                .get(i)
                .map_or(self.ambient_c, |s| s.temperature_c)
        };
        [whole(at(n / 4)), whole(at(3 * n / 4))]
    }

    /// Box temperature sensor: between ambient and the mean cell temperature.
    pub fn box_temperature(&self) -> Celsius {
        let mean = self.states.iter().map(|s| s.temperature_c).sum::<f64>()
            / self.states.len().max(1) as f64;
        whole((mean + self.ambient_c) / 2.0)
    }

    /// Power tube (MOSFET) temperature.
    pub fn mosfet_temperature(&self) -> Celsius {
        whole(self.mosfet_c)
    }

    /// Hottest cell, degC.
    pub fn max_temperature_c(&self) -> f64 {
        self.states
            .iter()
            .map(|s| s.temperature_c)
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

fn whole(celsius: f64) -> Celsius {
    Celsius(libm::round(celsius).clamp(-100.0, 200.0) as i16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_builds_the_same_pack_and_another_seed_does_not() {
        let config = PackConfig::new(Chemistry::Lfp, 16, 100.0, 7);
        let (a, b) = (Pack::new(&config), Pack::new(&config));
        assert_eq!(a.states(), b.states());
        let other = Pack::new(&PackConfig { seed: 8, ..config });
        assert_ne!(a.states(), other.states());
    }

    #[test]
    fn spread_is_of_the_configured_size() {
        let pack = Pack::new(&PackConfig::new(Chemistry::Nmc, 200, 50.0, 1));
        let socs: Vec<f64> = pack.states().iter().map(|s| s.soc).collect();
        let mean = socs.iter().sum::<f64>() / socs.len() as f64;
        let sigma =
            (socs.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / socs.len() as f64).sqrt();
        assert!((0.01..0.02).contains(&sigma), "{sigma}");
        assert!((mean - 0.5).abs() < 0.005);
    }

    #[test]
    fn bleeding_lowers_only_the_bleeding_cells() {
        let mut config = PackConfig::new(Chemistry::Lfp, 4, 2.3, 1);
        config.spread = Spread::none();
        let mut pack = Pack::new(&config);
        for _ in 0..3600 {
            pack.step(1.0, 0.0, &[true, false, false, false], 0.4);
        }
        let socs: Vec<f64> = pack.states().iter().map(|s| s.soc).collect();
        assert!((socs[1] - socs[0] - 0.4 / 2.3).abs() < 1e-6, "{socs:?}");
        assert_eq!(socs[1], socs[2]);
    }

    #[test]
    fn sensors_report_whole_units() {
        let pack = Pack::new(&PackConfig::new(Chemistry::Nmc, 16, 100.0, 3));
        let mut cells = Vec::new();
        pack.cell_voltages(&mut cells);
        assert_eq!(cells.len(), 16);
        assert!(
            cells.iter().all(|c| (3600..3900).contains(&c.0)),
            "{cells:?}"
        );
        assert_eq!(pack.battery_temperatures(), [Celsius(25), Celsius(25)]);
        assert_eq!(pack.mosfet_temperature(), Celsius(25));
    }
}
