//! Cell chemistries: open-circuit voltage tables and the equivalent-circuit and thermal
//! parameters of a typical cell, shared by the SOC estimator and the pack simulator.
//!
//! Sources (`shared/design/battery.md`, `shared/reference/ocv_tables.csv`):
//! - OCV vs SOC in 5 % steps at 25 degC: LFP from PyBaMM Prada2013, NMC from PyBaMM Chen2020
//!   (the parameter set of the reference PyBaMM profile), LTO from the Aalborg 13 Ah cell table
//!   of LibreSolar's firmware;
//! - 2RC parameters fitted to PyBaMM DFN pulse responses at 25 degC, 50 % SOC (LFP, NMC), and a
//!   Toshiba SCiB datasheet resistance (LTO);
//! - resistance temperature dependence `R(T) = R25 exp[(Ea/R)(1/T - 1/298.15)]`, Ea ~ 32 kJ/mol.

use core::fmt;

use bmslink_proto::BatteryType;

/// A cell chemistry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Chemistry {
    /// Lithium iron phosphate: flat OCV plateau, hysteresis.
    Lfp,
    /// Nickel manganese cobalt ("ternary"): sloped OCV.
    Nmc,
    /// Lithium titanate: low voltage, wide temperature range.
    Lto,
}

impl Chemistry {
    /// All chemistries.
    pub const ALL: [Chemistry; 3] = [Chemistry::Lfp, Chemistry::Nmc, Chemistry::Lto];

    /// Lower-case name ("lfp", "nmc", "lto").
    pub fn name(self) -> &'static str {
        match self {
            Chemistry::Lfp => "lfp",
            Chemistry::Nmc => "nmc",
            Chemistry::Lto => "lto",
        }
    }

    /// Parses a name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Chemistry> {
        Chemistry::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The chemistry of an NW battery type (0xAF), if it is one of the three.
    pub fn from_battery_type(kind: BatteryType) -> Option<Chemistry> {
        match kind {
            BatteryType::Lfp => Some(Chemistry::Lfp),
            BatteryType::Nmc => Some(Chemistry::Nmc),
            BatteryType::Lto => Some(Chemistry::Lto),
            BatteryType::Other(_) => None,
        }
    }

    /// The NW battery type (0xAF) of this chemistry.
    pub fn battery_type(self) -> BatteryType {
        match self {
            Chemistry::Lfp => BatteryType::Lfp,
            Chemistry::Nmc => BatteryType::Nmc,
            Chemistry::Lto => BatteryType::Lto,
        }
    }

    /// The default OCV table at 25 degC.
    pub fn ocv(self) -> &'static OcvTable {
        match self {
            Chemistry::Lfp => &LFP_OCV,
            Chemistry::Nmc => &NMC_OCV,
            Chemistry::Lto => &LTO_OCV,
        }
    }

    /// Equivalent-circuit and thermal parameters of a typical cell.
    pub fn cell(self) -> CellParameters {
        match self {
            Chemistry::Lfp => CellParameters {
                capacity_ah: 2.3,
                r0_ohm: 0.0297,
                r1_ohm: 0.0022,
                tau1_s: 15.0,
                r2_ohm: 0.0023,
                tau2_s: 194.0,
                hysteresis_v: 0.015,
                mass_kg: 0.070,
                ..CellParameters::COMMON
            },
            Chemistry::Nmc => CellParameters {
                capacity_ah: 5.0,
                r0_ohm: 0.0237,
                r1_ohm: 0.0100,
                tau1_s: 24.5,
                r2_ohm: 0.0153,
                tau2_s: 168.0,
                hysteresis_v: 0.0,
                mass_kg: 0.070,
                ..CellParameters::COMMON
            },
            Chemistry::Lto => CellParameters {
                capacity_ah: 3.0,
                r0_ohm: 0.0018,
                r1_ohm: 0.0004,
                tau1_s: 10.0,
                r2_ohm: 0.0003,
                tau2_s: 120.0,
                hysteresis_v: 0.0,
                mass_kg: 0.110,
                ..CellParameters::COMMON
            },
        }
    }

    /// Usable cell voltage window (empty, full) in volts.
    pub fn voltage_window(self) -> (f32, f32) {
        match self {
            Chemistry::Lfp => (2.50, 3.65),
            Chemistry::Nmc => (2.80, 4.20),
            Chemistry::Lto => (1.80, 2.80),
        }
    }
}

impl fmt::Display for Chemistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Equivalent-circuit (R0 + two RC pairs) and lumped thermal parameters of one cell at 25 degC.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CellParameters {
    /// Capacity in amp-hours.
    pub capacity_ah: f32,
    /// Series resistance.
    pub r0_ohm: f32,
    /// First RC pair: resistance.
    pub r1_ohm: f32,
    /// First RC pair: time constant.
    pub tau1_s: f32,
    /// Second RC pair: resistance.
    pub r2_ohm: f32,
    /// Second RC pair: time constant.
    pub tau2_s: f32,
    /// Half the gap between the charge and discharge OCV branches (LFP: 5-25 mV).
    pub hysteresis_v: f32,
    /// Activation energy of the resistance, J/mol.
    pub activation_energy_j_mol: f32,
    /// Cell mass, kg.
    pub mass_kg: f32,
    /// Specific heat, J/(kg K).
    pub specific_heat_j_kg_k: f32,
    /// Heat transfer coefficient to ambient, W/(m^2 K).
    pub heat_transfer_w_m2_k: f32,
    /// Cooled surface, m^2 (a 21700 cell: ~0.0053).
    pub surface_m2: f32,
    /// Coulombic efficiency of charging.
    pub coulombic_efficiency: f32,
}

impl CellParameters {
    const COMMON: CellParameters = CellParameters {
        capacity_ah: 0.0,
        r0_ohm: 0.0,
        r1_ohm: 0.0,
        tau1_s: 1.0,
        r2_ohm: 0.0,
        tau2_s: 1.0,
        hysteresis_v: 0.0,
        activation_energy_j_mol: 32_000.0,
        mass_kg: 0.070,
        specific_heat_j_kg_k: 1000.0,
        heat_transfer_w_m2_k: 10.0,
        surface_m2: 0.0053,
        coulombic_efficiency: 0.999,
    };

    /// How much a resistance at 25 degC grows at `celsius` (Arrhenius).
    pub fn resistance_factor(&self, celsius: f32) -> f32 {
        const GAS_CONSTANT: f32 = 8.314;
        let kelvin = (celsius + 273.15).max(200.0);
        libm::expf(self.activation_energy_j_mol / GAS_CONSTANT * (1.0 / kelvin - 1.0 / 298.15))
    }
}

/// OCV at 25 degC in 21 points, 0 to 100 % SOC in 5 % steps, in units of 0.1 mV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OcvTable {
    points: [u16; 21],
}

/// LFP, PyBaMM Prada2013.
pub static LFP_OCV: OcvTable = OcvTable {
    points: [
        20000, 27853, 29781, 31080, 31685, 31857, 32058, 32324, 32525, 32621, 32660, 32678, 32688,
        32700, 32740, 32926, 33097, 33132, 33142, 33164, 36000,
    ],
};

/// NMC811, PyBaMM Chen2020.
pub static NMC_OCV: OcvTable = OcvTable {
    points: [
        25000, 31094, 32959, 34339, 34852, 35286, 35814, 36290, 36670, 37054, 37509, 37983, 38406,
        38896, 39479, 39943, 40421, 40809, 40967, 41236, 42000,
    ],
};

/// LTO, Aalborg 13 Ah cell (LibreSolar firmware table).
pub static LTO_OCV: OcvTable = OcvTable {
    points: [
        20000, 21050, 21250, 21410, 21540, 21660, 21770, 21870, 21980, 22100, 22240, 22400, 22590,
        22820, 23090, 23400, 23760, 24150, 24580, 25130, 28000,
    ],
};

/// Why an OCV table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OcvTableError {
    /// The voltage does not rise with SOC at this point (5 % steps).
    NotIncreasing {
        /// SOC in percent where the table stops rising.
        soc_percent: u8,
    },
    /// A voltage outside 0..6.5535 V.
    OutOfRange {
        /// SOC in percent of the bad point.
        soc_percent: u8,
    },
}

impl fmt::Display for OcvTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OcvTableError::NotIncreasing { soc_percent } => {
                write!(
                    f,
                    "OCV table must rise with SOC; it does not at {soc_percent} %"
                )
            }
            OcvTableError::OutOfRange { soc_percent } => {
                write!(f, "OCV at {soc_percent} % is outside 0..6.5 V")
            }
        }
    }
}

impl core::error::Error for OcvTableError {}

impl OcvTable {
    /// A table from 21 voltages (0, 5, ..., 100 % SOC); they must rise strictly.
    pub fn from_volts(volts: &[f32; 21]) -> Result<OcvTable, OcvTableError> {
        let mut points = [0u16; 21];
        for (i, &v) in volts.iter().enumerate() {
            let soc_percent = (i * 5) as u8;
            if !(0.0..6.5).contains(&v) {
                return Err(OcvTableError::OutOfRange { soc_percent });
            }
            points[i] = libm::roundf(v * 10_000.0) as u16;
            if i > 0 && points[i] <= points[i - 1] {
                return Err(OcvTableError::NotIncreasing { soc_percent });
            }
        }
        Ok(OcvTable { points })
    }

    /// The 21 voltages.
    pub fn volts(&self) -> [f32; 21] {
        self.points.map(|p| f32::from(p) / 10_000.0)
    }

    /// OCV in volts at `soc` (0..=1, clamped), linearly interpolated.
    pub fn voltage(&self, soc: f32) -> f32 {
        let position = soc.clamp(0.0, 1.0) * 20.0;
        let index = (position as usize).min(19);
        let fraction = position - index as f32;
        let low = f32::from(self.points[index]);
        let high = f32::from(self.points[index + 1]);
        (low + (high - low) * fraction) / 10_000.0
    }

    /// SOC (0..=1) at which the OCV is `volts`, clamped to the table's ends.
    pub fn soc(&self, volts: f32) -> f32 {
        let target = volts * 10_000.0;
        if target <= f32::from(self.points[0]) {
            return 0.0;
        }
        for index in 0..20 {
            let low = f32::from(self.points[index]);
            let high = f32::from(self.points[index + 1]);
            if target <= high {
                return (index as f32 + (target - low) / (high - low)) / 20.0;
            }
        }
        1.0
    }

    /// dOCV/dSOC at `soc` in volts per unit SOC (per 100 %).
    pub fn slope(&self, soc: f32) -> f32 {
        let index = ((soc.clamp(0.0, 1.0) * 20.0) as usize).min(19);
        (f32::from(self.points[index + 1]) - f32::from(self.points[index])) / 10_000.0 * 20.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocv_round_trips_between_voltage_and_soc() {
        for chemistry in Chemistry::ALL {
            let table = chemistry.ocv();
            for percent in 0..=100 {
                let soc = percent as f32 / 100.0;
                let back = table.soc(table.voltage(soc));
                assert!((back - soc).abs() < 1e-4, "{chemistry} {percent}: {back}");
            }
        }
        assert_eq!(NMC_OCV.voltage(0.5), 3.7509);
        assert_eq!(NMC_OCV.soc(2.0), 0.0);
        assert_eq!(NMC_OCV.soc(5.0), 1.0);
    }

    #[test]
    fn slopes_match_the_documented_flatness() {
        // battery.md: mV per % SOC between 30 and 70 %: NMC ~9, LTO ~3, LFP 0.8-1.7.
        let mv_per_percent = |c: Chemistry| c.ocv().slope(0.5) * 1000.0 / 100.0;
        assert!((7.0..12.0).contains(&mv_per_percent(Chemistry::Nmc)));
        assert!((2.0..4.0).contains(&mv_per_percent(Chemistry::Lto)));
        assert!(mv_per_percent(Chemistry::Lfp) < 1.7);
    }

    #[test]
    fn tables_must_rise() {
        let mut volts = NMC_OCV.volts();
        assert_eq!(OcvTable::from_volts(&volts), Ok(NMC_OCV));
        volts[10] = volts[9];
        assert_eq!(
            OcvTable::from_volts(&volts),
            Err(OcvTableError::NotIncreasing { soc_percent: 50 })
        );
    }

    #[test]
    fn resistance_triples_from_25_to_0_degrees() {
        let factor = Chemistry::Nmc.cell().resistance_factor(0.0);
        assert!((2.8..3.6).contains(&factor), "{factor}");
        assert!((Chemistry::Nmc.cell().resistance_factor(25.0) - 1.0).abs() < 1e-6);
    }
}
