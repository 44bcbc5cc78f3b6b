//! The Victron extras, 0x372..=0x377.
//!
//! inverter-can.md states only: "0x372-0x377, DLC 8: Victron extras: modules online/blocking;
//! min/max cell V (mV) and T (Kelvin); ids of those cells". It gives no byte layout. What is
//! implemented here is what it states, laid out as the open-source gateways it cites
//! (diyBMS, Battery-Emulator) send it to Victron GX devices: little-endian u16 fields in the
//! stated order, and cell ids as 8-character ASCII names. The fourth u16 of 0x372 (modules
//! offline) is not in the document but is in those gateways' layout; it is sent as given
//! (0 when unknown).
//!
//! ```text
//! 0x372 ModuleCounts (DLC 8)
//!   0  u16  modules online
//!   2  u16  modules blocking charge
//!   4  u16  modules blocking discharge
//!   6  u16  modules offline
//! 0x373 CellExtremes (DLC 8)
//!   0  u16  lowest cell voltage, mV
//!   2  u16  highest cell voltage, mV
//!   4  u16  lowest cell temperature, K
//!   6  u16  highest cell temperature, K
//! 0x374 name of the cell with the lowest voltage        8 ASCII, space padded
//! 0x375 name of the cell with the highest voltage       (NUL padding accepted on decode)
//! 0x376 name of the cell with the lowest temperature
//! 0x377 name of the cell with the highest temperature
//! ```

use super::scale::{saturate_u16, Kelvin};
use super::text::ShortText;
use super::{id, le_u16, put_u16, CanError, CanFrame, CanId, MAX_DATA_LEN};
use crate::units::Millivolts;

const LENGTHS: &[u8] = &[8];

/// 0x372: how many modules are online, and how many block charging or discharging.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ModuleCounts {
    /// Modules online.
    pub online: u16,
    /// Modules blocking charge.
    pub blocking_charge: u16,
    /// Modules blocking discharge.
    pub blocking_discharge: u16,
    /// Modules offline.
    pub offline: u16,
}

impl ModuleCounts {
    const ONLINE: usize = 0;
    const BLOCKING_CHARGE: usize = 2;
    const BLOCKING_DISCHARGE: usize = 4;
    const OFFLINE: usize = 6;

    /// The frame.
    pub fn encode(&self) -> CanFrame {
        let mut data = [0; MAX_DATA_LEN];
        put_u16(&mut data, Self::ONLINE, self.online);
        put_u16(&mut data, Self::BLOCKING_CHARGE, self.blocking_charge);
        put_u16(&mut data, Self::BLOCKING_DISCHARGE, self.blocking_discharge);
        put_u16(&mut data, Self::OFFLINE, self.offline);
        CanFrame::from_array(id::MODULE_COUNTS, data, MAX_DATA_LEN)
    }

    /// Reads a 0x372 frame.
    pub fn decode(frame: &CanFrame) -> Result<ModuleCounts, CanError> {
        let data = frame.expect(id::MODULE_COUNTS, LENGTHS)?;
        Ok(ModuleCounts {
            online: le_u16(data, Self::ONLINE),
            blocking_charge: le_u16(data, Self::BLOCKING_CHARGE),
            blocking_discharge: le_u16(data, Self::BLOCKING_DISCHARGE),
            offline: le_u16(data, Self::OFFLINE),
        })
    }
}

/// 0x373: the extreme cell voltages and temperatures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CellExtremes {
    /// Lowest cell voltage (sent as u16 mV: saturates at 65534 mV).
    pub min_voltage: Millivolts,
    /// Highest cell voltage (as above).
    pub max_voltage: Millivolts,
    /// Lowest cell temperature.
    pub min_temperature: Kelvin,
    /// Highest cell temperature.
    pub max_temperature: Kelvin,
}

impl CellExtremes {
    const MIN_VOLTAGE: usize = 0;
    const MAX_VOLTAGE: usize = 2;
    const MIN_TEMPERATURE: usize = 4;
    const MAX_TEMPERATURE: usize = 6;

    /// The frame; a voltage above 65534 mV saturates (one short of SMA's 0xFFFF "invalid").
    pub fn encode(&self) -> CanFrame {
        let mut data = [0; MAX_DATA_LEN];
        let millivolts = |v: Millivolts| saturate_u16(i64::from(v.0));
        put_u16(&mut data, Self::MIN_VOLTAGE, millivolts(self.min_voltage));
        put_u16(&mut data, Self::MAX_VOLTAGE, millivolts(self.max_voltage));
        put_u16(&mut data, Self::MIN_TEMPERATURE, self.min_temperature.0);
        put_u16(&mut data, Self::MAX_TEMPERATURE, self.max_temperature.0);
        CanFrame::from_array(id::CELL_EXTREMES, data, MAX_DATA_LEN)
    }

    /// Reads a 0x373 frame.
    pub fn decode(frame: &CanFrame) -> Result<CellExtremes, CanError> {
        let data = frame.expect(id::CELL_EXTREMES, LENGTHS)?;
        let millivolts = |at: usize| Millivolts(u32::from(le_u16(data, at)));
        Ok(CellExtremes {
            min_voltage: millivolts(Self::MIN_VOLTAGE),
            max_voltage: millivolts(Self::MAX_VOLTAGE),
            min_temperature: Kelvin(le_u16(data, Self::MIN_TEMPERATURE)),
            max_temperature: Kelvin(le_u16(data, Self::MAX_TEMPERATURE)),
        })
    }
}

/// Which extreme a 0x374..=0x377 frame names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Extreme {
    /// 0x374.
    MinVoltage,
    /// 0x375.
    MaxVoltage,
    /// 0x376.
    MinTemperature,
    /// 0x377.
    MaxTemperature,
}

impl Extreme {
    /// All four, in identifier order.
    pub const ALL: [Extreme; 4] = [
        Extreme::MinVoltage,
        Extreme::MaxVoltage,
        Extreme::MinTemperature,
        Extreme::MaxTemperature,
    ];

    /// The frame's identifier.
    pub fn id(self) -> CanId {
        match self {
            Extreme::MinVoltage => id::MIN_CELL_VOLTAGE_NAME,
            Extreme::MaxVoltage => id::MAX_CELL_VOLTAGE_NAME,
            Extreme::MinTemperature => id::MIN_CELL_TEMPERATURE_NAME,
            Extreme::MaxTemperature => id::MAX_CELL_TEMPERATURE_NAME,
        }
    }

    /// The extreme a frame identifier names, if any.
    pub fn from_id(id: CanId) -> Option<Extreme> {
        Extreme::ALL.into_iter().find(|extreme| extreme.id() == id)
    }
}

/// 0x374..=0x377: the name of the cell at one extreme (e.g. "R2M3C07": rack 2, module 3,
/// cell 7; the format is the sender's choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtremeCellName {
    /// Which extreme.
    pub extreme: Extreme,
    /// The cell's name.
    pub name: ShortText,
}

impl ExtremeCellName {
    /// The frame, space padded to 8 bytes.
    pub fn encode(&self) -> CanFrame {
        CanFrame::from_array(self.extreme.id(), self.name.to_wire(), MAX_DATA_LEN)
    }

    /// Reads a 0x374..=0x377 frame.
    pub fn decode(frame: &CanFrame) -> Result<ExtremeCellName, CanError> {
        let extreme = Extreme::from_id(frame.id()).ok_or(CanError::WrongId {
            expected: id::MIN_CELL_VOLTAGE_NAME,
            found: frame.id(),
        })?;
        let data = frame.expect(extreme.id(), LENGTHS)?;
        Ok(ExtremeCellName {
            extreme,
            name: ShortText::from_wire(extreme.id(), data)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn module_counts_layout() {
        let counts = ModuleCounts {
            online: 3,
            blocking_charge: 1,
            blocking_discharge: 0,
            offline: 1,
        };
        assert_eq!(counts.encode().data(), &[3, 0, 1, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn cell_extremes_are_millivolts_and_kelvin() {
        let extremes = CellExtremes {
            min_voltage: Millivolts(3280),
            max_voltage: Millivolts(3342),
            min_temperature: Kelvin(291),
            max_temperature: Kelvin(298),
        };
        let bytes = [0xD0, 0x0C, 0x0E, 0x0D, 0x23, 0x01, 0x2A, 0x01];
        assert_eq!(extremes.encode().data(), &bytes);
        let frame = CanFrame::new(id::CELL_EXTREMES, &bytes).unwrap();
        assert_eq!(CellExtremes::decode(&frame), Ok(extremes));
    }

    #[test]
    fn a_cell_voltage_beyond_u16_saturates() {
        let extremes = CellExtremes {
            max_voltage: Millivolts(70_000),
            ..CellExtremes::default()
        };
        assert_eq!(&extremes.encode().data()[2..4], &[0xFE, 0xFF]);
    }

    #[test]
    fn cell_names_use_four_ids() {
        let name = ExtremeCellName {
            extreme: Extreme::MaxTemperature,
            name: ShortText::new(b"R2M3C07").unwrap(),
        };
        let frame = name.encode();
        assert_eq!(frame.id(), CanId::new(0x377).unwrap());
        assert_eq!(frame.data(), b"R2M3C07 ");
        assert_eq!(ExtremeCellName::decode(&frame), Ok(name));
        let wrong = CanFrame::new(id::CELL_EXTREMES, b"R2M3C07 ").unwrap();
        assert!(matches!(
            ExtremeCellName::decode(&wrong),
            Err(CanError::WrongId { .. })
        ));
    }

    proptest! {
        #[test]
        fn module_counts_round_trip(online: u16, charge: u16, discharge: u16, offline: u16) {
            let value = ModuleCounts {
                online,
                blocking_charge: charge,
                blocking_discharge: discharge,
                offline,
            };
            prop_assert_eq!(ModuleCounts::decode(&value.encode()), Ok(value));
        }

        #[test]
        fn cell_extremes_round_trip(
            min_v in 0u32..0xFFFF,
            max_v in 0u32..0xFFFF,
            min_t: u16,
            max_t: u16,
        ) {
            let value = CellExtremes {
                min_voltage: Millivolts(min_v),
                max_voltage: Millivolts(max_v),
                min_temperature: Kelvin(min_t),
                max_temperature: Kelvin(max_t),
            };
            prop_assert_eq!(CellExtremes::decode(&value.encode()), Ok(value));
        }

        #[test]
        fn cell_names_round_trip(
            which in 0usize..4,
            text in proptest::collection::vec(0x20u8..0x7F, 0..=8),
        ) {
            let value = ExtremeCellName {
                extreme: Extreme::ALL[which],
                name: ShortText::new(&text).unwrap(),
            };
            prop_assert_eq!(ExtremeCellName::decode(&value.encode()), Ok(value));
        }
    }
}
