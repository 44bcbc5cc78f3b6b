//! One series element of a pack (one cell, or several in parallel): a second-order equivalent
//! circuit with one-state hysteresis and a lumped thermal model.
//!
//! ```text
//!        R0(T)        R1(T)          R2(T)
//!  +---/\/\/\----+--/\/\/\--+---+--/\/\/\--+---+
//!  |             |          |   |          |   |
//! OCV(SOC)+M*h   +---||-----+   +---||-----+  terminal      I > 0 charges
//!                    C1 (tau1)      C2 (tau2)
//! ```
//!
//! - `SOC' = (eta * I - I_leak) / (3600 * Q)` (coulombic efficiency `eta` on charge only);
//! - `v_k' = -v_k / tau_k + I / C_k` (exact discretisation for constant current over a step);
//! - hysteresis (LFP): `h' = -gamma * |I| / (3600 * Q) * (h - sign(I))`, voltage `M * h`;
//! - heat: `m cp T' = I^2 R0 + v1^2 / R1 + v2^2 / R2 - hA (T - T_ambient)`;
//! - resistances follow Arrhenius: `R(T) = R25 * exp[(Ea/R)(1/T - 1/298.15)]`.
//!
//! Parameters: `shared/design/battery.md` via `bmslink_core::chemistry`.

use bmslink_core::chemistry::{CellParameters, OcvTable};

/// How fast the hysteresis state moves, per unit of SOC throughput (full swing within ~3 %).
const HYSTERESIS_RATE: f64 = 80.0;

/// The fixed properties of one series element.
#[derive(Clone, Debug, PartialEq)]
pub struct CellModel {
    /// Capacity, Ah.
    pub capacity_ah: f64,
    /// Series resistance at 25 degC, ohm.
    pub r0_ohm: f64,
    /// First RC resistance at 25 degC, ohm.
    pub r1_ohm: f64,
    /// First RC time constant, s.
    pub tau1_s: f64,
    /// Second RC resistance at 25 degC, ohm.
    pub r2_ohm: f64,
    /// Second RC time constant, s.
    pub tau2_s: f64,
    /// Hysteresis voltage magnitude, V.
    pub hysteresis_v: f64,
    /// Internal leak (self-discharge), A.
    pub leak_a: f64,
    /// Heat capacity, J/K.
    pub heat_capacity_j_k: f64,
    /// Heat transfer to ambient, W/K.
    pub heat_transfer_w_k: f64,
    /// Activation energy of the resistances, J/mol.
    pub activation_energy: f64,
    /// Coulombic efficiency of charging.
    pub coulombic_efficiency: f64,
    /// Open-circuit voltage.
    pub ocv: OcvTable,
}

impl CellModel {
    /// A series element of `parallel` typical cells of `cell`.
    pub fn from_parameters(cell: &CellParameters, ocv: OcvTable, parallel: f64) -> CellModel {
        let p = parallel.max(1e-3);
        CellModel {
            capacity_ah: f64::from(cell.capacity_ah) * p,
            r0_ohm: f64::from(cell.r0_ohm) / p,
            r1_ohm: f64::from(cell.r1_ohm) / p,
            tau1_s: f64::from(cell.tau1_s),
            r2_ohm: f64::from(cell.r2_ohm) / p,
            tau2_s: f64::from(cell.tau2_s),
            hysteresis_v: f64::from(cell.hysteresis_v),
            leak_a: 0.0,
            heat_capacity_j_k: f64::from(cell.mass_kg * cell.specific_heat_j_kg_k) * p,
            heat_transfer_w_k: f64::from(cell.heat_transfer_w_m2_k * cell.surface_m2) * p,
            activation_energy: f64::from(cell.activation_energy_j_mol),
            coulombic_efficiency: f64::from(cell.coulombic_efficiency),
            ocv,
        }
    }

    fn resistance_factor(&self, celsius: f64) -> f64 {
        const GAS_CONSTANT: f64 = 8.314;
        let kelvin = (celsius + 273.15).max(200.0);
        libm::exp(self.activation_energy / GAS_CONSTANT * (1.0 / kelvin - 1.0 / 298.15))
    }
}

/// The changing state of one series element.
#[derive(Clone, Debug, PartialEq)]
pub struct CellState {
    /// True state of charge, 0..=1.
    pub soc: f64,
    /// Voltage over the first RC pair, V.
    pub v1: f64,
    /// Voltage over the second RC pair, V.
    pub v2: f64,
    /// Hysteresis state, -1 (discharge branch) ..= 1 (charge branch).
    pub hysteresis: f64,
    /// Temperature, degC.
    pub temperature_c: f64,
    /// Current through the element in the last step, A (positive = charge).
    pub current_a: f64,
    /// Resistance factor at the temperature of the last step.
    resistance_factor: f64,
}

impl CellState {
    /// A rested element.
    pub fn rested(soc: f64, temperature_c: f64) -> CellState {
        CellState {
            soc: soc.clamp(0.0, 1.0),
            v1: 0.0,
            v2: 0.0,
            hysteresis: 0.0,
            temperature_c,
            current_a: 0.0,
            resistance_factor: 1.0,
        }
    }

    /// Advances by `dt` seconds with `current_a` (positive = charge) through the element.
    pub fn step(&mut self, model: &CellModel, dt: f64, current_a: f64, ambient_c: f64) {
        if dt > 0.0 {
            self.step_with(model, &Decay::new(model, dt), current_a, ambient_c);
        }
    }

    /// As [`step`](Self::step), with the RC decay factors of this step precomputed (elements of
    /// one pack share their time constants, so a pack computes them once per step).
    pub fn step_with(&mut self, model: &CellModel, decay: &Decay, current_a: f64, ambient_c: f64) {
        let dt = decay.dt;
        if dt <= 0.0 {
            return;
        }
        self.resistance_factor = model.resistance_factor(self.temperature_c);
        let factor = self.resistance_factor;
        let (r0, r1, r2) = (
            model.r0_ohm * factor,
            model.r1_ohm * factor,
            model.r2_ohm * factor,
        );
        let charge_in = if current_a > 0.0 {
            current_a * model.coulombic_efficiency
        } else {
            current_a
        };
        let coulombs = 3600.0 * model.capacity_ah;
        self.soc = (self.soc + (charge_in - model.leak_a) * dt / coulombs).clamp(0.0, 1.0);
        self.v1 = r1 * current_a + (self.v1 - r1 * current_a) * decay.rc1;
        self.v2 = r2 * current_a + (self.v2 - r2 * current_a) * decay.rc2;
        if current_a != 0.0 && model.hysteresis_v != 0.0 {
            let rate = HYSTERESIS_RATE * current_a.abs() * dt / coulombs;
            let target = current_a.signum();
            self.hysteresis = target + (self.hysteresis - target) * exp_neg(rate);
        }
        let heat = current_a * current_a * r0
            + self.v1 * self.v1 / r1.max(1e-9)
            + self.v2 * self.v2 / r2.max(1e-9);
        let cooling = model.heat_transfer_w_k * (self.temperature_c - ambient_c);
        self.temperature_c += (heat - cooling) * dt / model.heat_capacity_j_k.max(1e-9);
        self.current_a = current_a;
    }

    /// Open-circuit voltage including hysteresis, V.
    pub fn open_circuit_voltage(&self, model: &CellModel) -> f64 {
        f64::from(model.ocv.voltage(self.soc as f32)) + model.hysteresis_v * self.hysteresis
    }

    /// Terminal voltage under the last step's current, V.
    pub fn terminal_voltage(&self, model: &CellModel) -> f64 {
        let r0 = model.r0_ohm * self.resistance_factor;
        self.open_circuit_voltage(model) + r0 * self.current_a + self.v1 + self.v2
    }
}

/// The RC decay factors of one time step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decay {
    dt: f64,
    rc1: f64,
    rc2: f64,
}

impl Decay {
    /// The decays of `model`'s RC pairs over `dt` seconds.
    pub fn new(model: &CellModel, dt: f64) -> Decay {
        Decay {
            dt,
            rc1: libm::exp(-dt / model.tau1_s),
            rc2: libm::exp(-dt / model.tau2_s),
        }
    }
}

/// `exp(-x)`, by its series where `x` is small (the hysteresis moves little per step).
fn exp_neg(x: f64) -> f64 {
    if x < 1e-3 {
        1.0 - x + x * x / 2.0
    } else {
        libm::exp(-x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bmslink_core::chemistry::Chemistry;

    fn nmc() -> CellModel {
        let chemistry = Chemistry::Nmc;
        CellModel::from_parameters(&chemistry.cell(), *chemistry.ocv(), 1.0)
    }

    #[test]
    fn one_hour_at_1c_discharges_the_whole_capacity() {
        let model = nmc();
        let mut cell = CellState::rested(1.0, 25.0);
        for _ in 0..3600 {
            cell.step(&model, 1.0, -model.capacity_ah, 25.0);
        }
        assert!(cell.soc.abs() < 1e-9, "{}", cell.soc);
    }

    #[test]
    fn voltage_sags_under_load_and_relaxes_with_the_time_constants() {
        let model = nmc();
        let mut cell = CellState::rested(0.5, 25.0);
        let rest = cell.terminal_voltage(&model);
        cell.step(&model, 1.0, -5.0, 25.0);
        let instant = rest - cell.terminal_voltage(&model);
        assert!(
            instant > 5.0 * model.r0_ohm * 0.99,
            "R0 drop plus the start of the RC drops"
        );
        for _ in 0..600 {
            cell.step(&model, 1.0, -5.0, 25.0);
        }
        let settled = f64::from(model.ocv.voltage(cell.soc as f32)) - cell.terminal_voltage(&model);
        // The cell warmed under load, so its resistance is lower than at 25 degC.
        assert!(cell.temperature_c > 28.0);
        let factor = model.resistance_factor(cell.temperature_c);
        let expected = 5.0 * (model.r0_ohm + model.r1_ohm + model.r2_ohm) * factor;
        assert!(
            (settled - expected).abs() < 0.05 * expected,
            "{settled} vs {expected}"
        );
        for _ in 0..2000 {
            cell.step(&model, 1.0, 0.0, 25.0);
        }
        assert!((cell.terminal_voltage(&model) - cell.open_circuit_voltage(&model)).abs() < 1e-4);
    }

    #[test]
    fn lfp_hysteresis_separates_charge_and_discharge_branches() {
        let chemistry = Chemistry::Lfp;
        let model = CellModel::from_parameters(&chemistry.cell(), *chemistry.ocv(), 1.0);
        let mut cell = CellState::rested(0.5, 25.0);
        for _ in 0..600 {
            cell.step(&model, 1.0, 1.0, 25.0);
        }
        let charged =
            cell.open_circuit_voltage(&model) - f64::from(model.ocv.voltage(cell.soc as f32));
        assert!((charged - model.hysteresis_v).abs() < 1e-3, "{charged}");
        for _ in 0..600 {
            cell.step(&model, 1.0, -1.0, 25.0);
        }
        let discharged =
            cell.open_circuit_voltage(&model) - f64::from(model.ocv.voltage(cell.soc as f32));
        assert!(
            (discharged + model.hysteresis_v).abs() < 1e-3,
            "{discharged}"
        );
    }

    #[test]
    fn heat_raises_the_temperature_toward_a_steady_state() {
        let model = nmc();
        let mut cell = CellState::rested(1.0, 25.0);
        for _ in 0..1800 {
            cell.step(&model, 1.0, -10.0, 25.0);
        }
        assert!(cell.temperature_c > 30.0, "{}", cell.temperature_c);
        for _ in 0..20_000 {
            cell.step(&model, 1.0, 0.0, 25.0);
        }
        assert!((cell.temperature_c - 25.0).abs() < 0.1);
    }

    #[test]
    fn zero_step_changes_nothing() {
        let model = nmc();
        let mut cell = CellState::rested(0.3, 25.0);
        let before = cell.clone();
        cell.step(&model, 0.0, 100.0, 25.0);
        assert_eq!(cell, before);
    }
}
