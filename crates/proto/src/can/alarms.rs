//! Alarms and warnings: the profile-neutral [`Conditions`], and the two ways the family puts
//! them on the bus, Pylontech's 0x359 and SMA / Victron's 0x35A (inverter-can.md).
//!
//! ```text
//! 0x359 PylonAlarms (DLC 8; the DBC declares 7, which decoding also accepts)
//!   0  u8   protection: bit 1 over-voltage, 2 under-voltage, 3 over-temperature,
//!           4 under-temperature, 7 discharge over-current
//!   1  u8   protection: bit 0 charge over-current, bit 3 system error
//!   2  u8   warnings, the bits of byte 0
//!   3  u8   warnings: bit 0 charge high current, bit 3 internal communication failure
//!   4  u8   module count (some inverters size their limits from it)
//!   5  2    0x50 0x4E ("PN")
//!   7  u8   00
//!
//! 0x35A SmaAlarms (DLC 8): bytes 0-3 alarms, 4-7 warnings, 2 bits per item,
//!   01 = raised, 10 = cleared / OK (00 = not reported, 11 = reserved: both kept on decode)
//!          bits 0-1        bits 2-3            bits 4-5             bits 6-7
//!   byte 0 general         high voltage        low voltage          high temperature
//!   byte 1 low temperature high temp. charging low temp. charging   discharge over-current
//!   byte 2 charge o.-curr. contactor           short circuit        BMS internal
//!   byte 3 cell imbalance  reserved            reserved             reserved
//! ```
//!
//! From [`Conditions`] to 0x359 (Pylontech has fewer bits; no alarm is lost, some are merged):
//!
//! | condition | protection bit | warning bit |
//! |---|---|---|
//! | high voltage / low voltage | over- / under-voltage | high / low voltage |
//! | high temperature (or while charging) | over-temperature | high temperature |
//! | low temperature (or while charging) | under-temperature | low temperature |
//! | discharge over-current | discharge over-current | discharge high current |
//! | short circuit | discharge over-current + system error | — |
//! | charge over-current | charge over-current | charge high current |
//! | general, contactor, BMS internal, cell imbalance, internal communication | system error | — |
//! | BMS internal, internal communication | (as above) | internal communication failure |
//!
//! Warnings for general, contactor, short circuit and cell imbalance have no Pylontech bit and
//! are not sent in 0x359 (warnings only inform; every alarm has a bit).
//! To 0x35A: every condition has its own item, except internal communication, which raises
//! "BMS internal".

use bitflags::bitflags;

use super::{id, le_u16, put_u16, CanError, CanFrame, MAX_DATA_LEN};

bitflags! {
    /// Alarm or warning conditions, independent of the inverter profile. Alarms stop the
    /// inverter (SMA goes to standby on any 0x35A alarm); warnings are only logged.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Conditions: u16 {
        /// A fault without a more precise item.
        const GENERAL = 1 << 0;
        /// Pack or cell voltage too high.
        const HIGH_VOLTAGE = 1 << 1;
        /// Pack or cell voltage too low.
        const LOW_VOLTAGE = 1 << 2;
        /// Temperature too high.
        const HIGH_TEMPERATURE = 1 << 3;
        /// Temperature too low.
        const LOW_TEMPERATURE = 1 << 4;
        /// Temperature too high to charge.
        const HIGH_TEMPERATURE_CHARGE = 1 << 5;
        /// Temperature too low to charge.
        const LOW_TEMPERATURE_CHARGE = 1 << 6;
        /// Discharge current too high.
        const DISCHARGE_OVER_CURRENT = 1 << 7;
        /// Charge current too high.
        const CHARGE_OVER_CURRENT = 1 << 8;
        /// Contactor / MOSFET fault.
        const CONTACTOR = 1 << 9;
        /// Short circuit.
        const SHORT_CIRCUIT = 1 << 10;
        /// BMS internal fault.
        const BMS_INTERNAL = 1 << 11;
        /// Cell voltages too far apart.
        const CELL_IMBALANCE = 1 << 12;
        /// Communication inside the battery failed (a rack or BMS is silent).
        const INTERNAL_COMMUNICATION = 1 << 13;
    }
}

bitflags! {
    /// 0x359 bytes 0-1 (little-endian u16): protections acting. Unknown bits are kept.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct PylonProtection: u16 {
        /// Byte 0 bit 1.
        const OVER_VOLTAGE = 1 << 1;
        /// Byte 0 bit 2.
        const UNDER_VOLTAGE = 1 << 2;
        /// Byte 0 bit 3.
        const OVER_TEMPERATURE = 1 << 3;
        /// Byte 0 bit 4.
        const UNDER_TEMPERATURE = 1 << 4;
        /// Byte 0 bit 7.
        const DISCHARGE_OVER_CURRENT = 1 << 7;
        /// Byte 1 bit 0.
        const CHARGE_OVER_CURRENT = 1 << 8;
        /// Byte 1 bit 3.
        const SYSTEM_ERROR = 1 << 11;
    }
}

bitflags! {
    /// 0x359 bytes 2-3 (little-endian u16): warnings. Unknown bits are kept.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct PylonWarnings: u16 {
        /// Byte 2 bit 1.
        const HIGH_VOLTAGE = 1 << 1;
        /// Byte 2 bit 2.
        const LOW_VOLTAGE = 1 << 2;
        /// Byte 2 bit 3.
        const HIGH_TEMPERATURE = 1 << 3;
        /// Byte 2 bit 4.
        const LOW_TEMPERATURE = 1 << 4;
        /// Byte 2 bit 7.
        const DISCHARGE_HIGH_CURRENT = 1 << 7;
        /// Byte 3 bit 0.
        const CHARGE_HIGH_CURRENT = 1 << 8;
        /// Byte 3 bit 3.
        const INTERNAL_COMMUNICATION = 1 << 11;
    }
}

/// Sets `flag` in `out` when `conditions` has any of `any`.
fn map<T: bitflags::Flags + Copy>(out: &mut T, conditions: Conditions, any: Conditions, flag: T) {
    if conditions.intersects(any) {
        out.insert(flag);
    }
}

impl PylonProtection {
    /// The protection bits for alarm `conditions` (module doc's table).
    pub fn from_conditions(c: Conditions) -> PylonProtection {
        let mut p = PylonProtection::empty();
        map(&mut p, c, Conditions::HIGH_VOLTAGE, Self::OVER_VOLTAGE);
        map(&mut p, c, Conditions::LOW_VOLTAGE, Self::UNDER_VOLTAGE);
        let hot = Conditions::HIGH_TEMPERATURE | Conditions::HIGH_TEMPERATURE_CHARGE;
        map(&mut p, c, hot, Self::OVER_TEMPERATURE);
        let cold = Conditions::LOW_TEMPERATURE | Conditions::LOW_TEMPERATURE_CHARGE;
        map(&mut p, c, cold, Self::UNDER_TEMPERATURE);
        let discharge = Conditions::DISCHARGE_OVER_CURRENT | Conditions::SHORT_CIRCUIT;
        map(&mut p, c, discharge, Self::DISCHARGE_OVER_CURRENT);
        map(
            &mut p,
            c,
            Conditions::CHARGE_OVER_CURRENT,
            Self::CHARGE_OVER_CURRENT,
        );
        let system = Conditions::GENERAL
            | Conditions::CONTACTOR
            | Conditions::SHORT_CIRCUIT
            | Conditions::BMS_INTERNAL
            | Conditions::CELL_IMBALANCE
            | Conditions::INTERNAL_COMMUNICATION;
        map(&mut p, c, system, Self::SYSTEM_ERROR);
        p
    }
}

impl PylonWarnings {
    /// The warning bits for warning `conditions` (module doc's table).
    pub fn from_conditions(c: Conditions) -> PylonWarnings {
        let mut w = PylonWarnings::empty();
        map(&mut w, c, Conditions::HIGH_VOLTAGE, Self::HIGH_VOLTAGE);
        map(&mut w, c, Conditions::LOW_VOLTAGE, Self::LOW_VOLTAGE);
        let hot = Conditions::HIGH_TEMPERATURE | Conditions::HIGH_TEMPERATURE_CHARGE;
        map(&mut w, c, hot, Self::HIGH_TEMPERATURE);
        let cold = Conditions::LOW_TEMPERATURE | Conditions::LOW_TEMPERATURE_CHARGE;
        map(&mut w, c, cold, Self::LOW_TEMPERATURE);
        let discharge = Conditions::DISCHARGE_OVER_CURRENT;
        map(&mut w, c, discharge, Self::DISCHARGE_HIGH_CURRENT);
        map(
            &mut w,
            c,
            Conditions::CHARGE_OVER_CURRENT,
            Self::CHARGE_HIGH_CURRENT,
        );
        let internal = Conditions::BMS_INTERNAL | Conditions::INTERNAL_COMMUNICATION;
        map(&mut w, c, internal, Self::INTERNAL_COMMUNICATION);
        w
    }
}

/// 0x359: Pylontech protection and warning flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PylonAlarms {
    /// Bytes 0-1.
    pub protection: PylonProtection,
    /// Bytes 2-3.
    pub warnings: PylonWarnings,
    /// Byte 4: number of modules.
    pub module_count: u8,
}

impl PylonAlarms {
    const PROTECTION: usize = 0;
    const WARNINGS: usize = 2;
    const MODULES: usize = 4;
    const MARKER: usize = 5;
    /// Bytes 5-6: "PN".
    pub const MARKER_BYTES: [u8; 2] = *b"PN";
    /// inverter-can.md says 8; the shipped DBC (`Battery_Error_Warnings`) says 7.
    const LENGTHS: &'static [u8] = &[7, 8];

    /// The frame (8 bytes, as inverter-can.md gives it).
    pub fn encode(&self) -> CanFrame {
        let mut data = [0; MAX_DATA_LEN];
        put_u16(&mut data, Self::PROTECTION, self.protection.bits());
        put_u16(&mut data, Self::WARNINGS, self.warnings.bits());
        data[Self::MODULES] = self.module_count;
        data[Self::MARKER..Self::MARKER + 2].copy_from_slice(&Self::MARKER_BYTES);
        CanFrame::from_array(id::PYLON_ALARMS, data, MAX_DATA_LEN)
    }

    /// Reads a 0x359 frame of 7 or 8 bytes; bytes 5-6 must be "PN".
    pub fn decode(frame: &CanFrame) -> Result<PylonAlarms, CanError> {
        let data = frame.expect(id::PYLON_ALARMS, Self::LENGTHS)?;
        let marker = [data[Self::MARKER], data[Self::MARKER + 1]];
        if marker != Self::MARKER_BYTES {
            return Err(CanError::BadMarker {
                found: marker,
                offset: Self::MARKER,
            });
        }
        Ok(PylonAlarms {
            protection: PylonProtection::from_bits_retain(le_u16(data, Self::PROTECTION)),
            warnings: PylonWarnings::from_bits_retain(le_u16(data, Self::WARNINGS)),
            module_count: data[Self::MODULES],
        })
    }
}

/// One 2-bit item of 0x35A.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ItemState {
    /// 00: not reported (reserved items are sent so).
    #[default]
    NotReported,
    /// 01: raised.
    Raised,
    /// 10: cleared / OK.
    Cleared,
    /// 11: reserved; some implementations send it for "not supported".
    Reserved,
}

impl ItemState {
    fn from_bits(bits: u32) -> ItemState {
        match bits & 0b11 {
            0b00 => ItemState::NotReported,
            0b01 => ItemState::Raised,
            0b10 => ItemState::Cleared,
            _ => ItemState::Reserved,
        }
    }

    fn bits(self) -> u32 {
        match self {
            ItemState::NotReported => 0b00,
            ItemState::Raised => 0b01,
            ItemState::Cleared => 0b10,
            ItemState::Reserved => 0b11,
        }
    }
}

/// The items of 0x35A, in wire order (byte 0 bits 0-1 first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SmaItem {
    /// Byte 0 bits 0-1.
    General,
    /// Byte 0 bits 2-3.
    HighVoltage,
    /// Byte 0 bits 4-5.
    LowVoltage,
    /// Byte 0 bits 6-7.
    HighTemperature,
    /// Byte 1 bits 0-1.
    LowTemperature,
    /// Byte 1 bits 2-3.
    HighTemperatureCharge,
    /// Byte 1 bits 4-5.
    LowTemperatureCharge,
    /// Byte 1 bits 6-7.
    DischargeOverCurrent,
    /// Byte 2 bits 0-1.
    ChargeOverCurrent,
    /// Byte 2 bits 2-3.
    Contactor,
    /// Byte 2 bits 4-5.
    ShortCircuit,
    /// Byte 2 bits 6-7.
    BmsInternal,
    /// Byte 3 bits 0-1.
    CellImbalance,
}

impl SmaItem {
    /// Every item, in wire order.
    pub const ALL: [SmaItem; 13] = [
        SmaItem::General,
        SmaItem::HighVoltage,
        SmaItem::LowVoltage,
        SmaItem::HighTemperature,
        SmaItem::LowTemperature,
        SmaItem::HighTemperatureCharge,
        SmaItem::LowTemperatureCharge,
        SmaItem::DischargeOverCurrent,
        SmaItem::ChargeOverCurrent,
        SmaItem::Contactor,
        SmaItem::ShortCircuit,
        SmaItem::BmsInternal,
        SmaItem::CellImbalance,
    ];

    /// Bit position of the item's low bit in the 4 bytes read as a little-endian u32.
    fn shift(self) -> u32 {
        2 * self as u32
    }

    /// The conditions that raise the item.
    pub fn conditions(self) -> Conditions {
        match self {
            SmaItem::General => Conditions::GENERAL,
            SmaItem::HighVoltage => Conditions::HIGH_VOLTAGE,
            SmaItem::LowVoltage => Conditions::LOW_VOLTAGE,
            SmaItem::HighTemperature => Conditions::HIGH_TEMPERATURE,
            SmaItem::LowTemperature => Conditions::LOW_TEMPERATURE,
            SmaItem::HighTemperatureCharge => Conditions::HIGH_TEMPERATURE_CHARGE,
            SmaItem::LowTemperatureCharge => Conditions::LOW_TEMPERATURE_CHARGE,
            SmaItem::DischargeOverCurrent => Conditions::DISCHARGE_OVER_CURRENT,
            SmaItem::ChargeOverCurrent => Conditions::CHARGE_OVER_CURRENT,
            SmaItem::Contactor => Conditions::CONTACTOR,
            SmaItem::ShortCircuit => Conditions::SHORT_CIRCUIT,
            SmaItem::BmsInternal => Conditions::BMS_INTERNAL | Conditions::INTERNAL_COMMUNICATION,
            SmaItem::CellImbalance => Conditions::CELL_IMBALANCE,
        }
    }
}

/// Four bytes of 0x35A items (the alarm half or the warning half), as on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AlarmItems(pub [u8; 4]);

impl AlarmItems {
    /// Every item raised or cleared as `conditions` say; reserved items 00.
    pub fn from_conditions(conditions: Conditions) -> AlarmItems {
        SmaItem::ALL
            .iter()
            .fold(AlarmItems::default(), |items, &item| {
                let state = if conditions.intersects(item.conditions()) {
                    ItemState::Raised
                } else {
                    ItemState::Cleared
                };
                items.with(item, state)
            })
    }

    /// The state of one item.
    pub fn state(self, item: SmaItem) -> ItemState {
        ItemState::from_bits(u32::from_le_bytes(self.0) >> item.shift())
    }

    /// The items with `item` set to `state`.
    pub fn with(self, item: SmaItem, state: ItemState) -> AlarmItems {
        let word = u32::from_le_bytes(self.0) & !(0b11 << item.shift());
        AlarmItems((word | state.bits() << item.shift()).to_le_bytes())
    }

    /// The conditions of the raised items (a raised "BMS internal" reads as
    /// [`Conditions::BMS_INTERNAL`]).
    pub fn raised(self) -> Conditions {
        SmaItem::ALL
            .iter()
            .filter(|&&item| self.state(item) == ItemState::Raised)
            .fold(Conditions::empty(), |c, &item| match item {
                SmaItem::BmsInternal => c | Conditions::BMS_INTERNAL,
                other => c | other.conditions(),
            })
    }
}

/// 0x35A: SMA / Victron alarms and warnings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SmaAlarms {
    /// Bytes 0-3.
    pub alarms: AlarmItems,
    /// Bytes 4-7.
    pub warnings: AlarmItems,
}

impl SmaAlarms {
    const ALARMS: usize = 0;
    const WARNINGS: usize = 4;
    const LENGTHS: &'static [u8] = &[8];

    /// Alarms and warnings from profile-neutral conditions.
    pub fn from_conditions(alarms: Conditions, warnings: Conditions) -> SmaAlarms {
        SmaAlarms {
            alarms: AlarmItems::from_conditions(alarms),
            warnings: AlarmItems::from_conditions(warnings),
        }
    }

    /// The frame.
    pub fn encode(&self) -> CanFrame {
        let mut data = [0; MAX_DATA_LEN];
        data[Self::ALARMS..Self::WARNINGS].copy_from_slice(&self.alarms.0);
        data[Self::WARNINGS..].copy_from_slice(&self.warnings.0);
        CanFrame::from_array(id::SMA_ALARMS, data, MAX_DATA_LEN)
    }

    /// Reads a 0x35A frame; every 2-bit pattern is representable, so only id and DLC are checked.
    pub fn decode(frame: &CanFrame) -> Result<SmaAlarms, CanError> {
        let data = frame.expect(id::SMA_ALARMS, Self::LENGTHS)?;
        let half = |at: usize| AlarmItems([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        Ok(SmaAlarms {
            alarms: half(Self::ALARMS),
            warnings: half(Self::WARNINGS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::can::CanId;
    use proptest::prelude::*;

    fn frame(id: CanId, data: &[u8]) -> CanFrame {
        CanFrame::new(id, data).unwrap()
    }

    #[test]
    fn pylon_alarm_frame_layout() {
        let alarms = PylonAlarms {
            protection: PylonProtection::OVER_VOLTAGE | PylonProtection::SYSTEM_ERROR,
            warnings: PylonWarnings::LOW_TEMPERATURE | PylonWarnings::INTERNAL_COMMUNICATION,
            module_count: 3,
        };
        let bytes = [0x02, 0x08, 0x10, 0x08, 0x03, 0x50, 0x4E, 0x00];
        assert_eq!(alarms.encode().data(), &bytes);
        assert_eq!(
            PylonAlarms::decode(&frame(id::PYLON_ALARMS, &bytes)),
            Ok(alarms)
        );
        // The DBC's 7-byte form.
        assert_eq!(
            PylonAlarms::decode(&frame(id::PYLON_ALARMS, &bytes[..7])),
            Ok(alarms)
        );
    }

    #[test]
    fn pylon_alarms_without_pn_are_refused_at_byte_5() {
        let bytes = [0, 0, 0, 0, 1, b'X', b'N', 0];
        assert_eq!(
            PylonAlarms::decode(&frame(id::PYLON_ALARMS, &bytes)),
            Err(CanError::BadMarker {
                found: [b'X', b'N'],
                offset: 5
            })
        );
    }

    #[test]
    fn every_alarm_condition_sets_a_pylon_protection_bit() {
        for bit in 0..14 {
            let condition = Conditions::from_bits_truncate(1 << bit);
            assert!(
                !PylonProtection::from_conditions(condition).is_empty(),
                "{condition:?} is lost in 0x359"
            );
        }
        let short = PylonProtection::from_conditions(Conditions::SHORT_CIRCUIT);
        assert_eq!(
            short,
            PylonProtection::DISCHARGE_OVER_CURRENT | PylonProtection::SYSTEM_ERROR
        );
    }

    #[test]
    fn sma_items_are_01_raised_10_cleared_in_wire_order() {
        let alarms =
            SmaAlarms::from_conditions(Conditions::HIGH_VOLTAGE, Conditions::CELL_IMBALANCE);
        // Byte 0: general 10, high voltage 01, low voltage 10, high temperature 10.
        // Bytes 1-2: all cleared (AA); byte 3: cell imbalance, reserved 00.
        assert_eq!(
            alarms.encode().data(),
            &[0xA6, 0xAA, 0xAA, 0x02, 0xAA, 0xAA, 0xAA, 0x01]
        );
        assert_eq!(alarms.alarms.raised(), Conditions::HIGH_VOLTAGE);
        assert_eq!(alarms.warnings.raised(), Conditions::CELL_IMBALANCE);
        assert_eq!(alarms.alarms.state(SmaItem::General), ItemState::Cleared);
        let nothing = SmaAlarms::default().encode();
        assert_eq!(nothing.data(), &[0; 8]);
    }

    #[test]
    fn internal_communication_raises_bms_internal() {
        let items = AlarmItems::from_conditions(Conditions::INTERNAL_COMMUNICATION);
        assert_eq!(items.state(SmaItem::BmsInternal), ItemState::Raised);
        assert_eq!(items.raised(), Conditions::BMS_INTERNAL);
    }

    #[test]
    fn reserved_patterns_are_kept() {
        let bytes = [0xFF; 8];
        let alarms = SmaAlarms::decode(&frame(id::SMA_ALARMS, &bytes)).unwrap();
        assert_eq!(
            alarms.alarms.state(SmaItem::CellImbalance),
            ItemState::Reserved
        );
        assert!(alarms.alarms.raised().is_empty());
        assert_eq!(alarms.encode().data(), &bytes);
    }

    proptest! {
        #[test]
        fn pylon_alarms_round_trip(protection: u16, warnings: u16, modules: u8) {
            let value = PylonAlarms {
                protection: PylonProtection::from_bits_retain(protection),
                warnings: PylonWarnings::from_bits_retain(warnings),
                module_count: modules,
            };
            prop_assert_eq!(PylonAlarms::decode(&value.encode()), Ok(value));
        }

        #[test]
        fn sma_alarms_round_trip(alarms: [u8; 4], warnings: [u8; 4]) {
            let value = SmaAlarms { alarms: AlarmItems(alarms), warnings: AlarmItems(warnings) };
            prop_assert_eq!(SmaAlarms::decode(&value.encode()), Ok(value));
        }

        #[test]
        fn conditions_survive_0x35a(bits in 0u16..(1 << 13)) {
            // Every condition but internal communication has its own item.
            let conditions = Conditions::from_bits_truncate(bits);
            prop_assert_eq!(AlarmItems::from_conditions(conditions).raised(), conditions);
        }
    }
}
