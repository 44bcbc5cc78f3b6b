//! The battery <-> inverter CAN link of the "Pylontech low-voltage" family
//! (`shared/protocols/inverter-can.md`): a [`CanFrame`], every frame of the family as a typed
//! struct with `encode` / `decode`, and the inverter [`profile`]s that choose which frames are
//! sent and how a safe state is expressed.
//!
//! ```text
//! CAN 2.0A data frame as this module sees it (arbitration, CRC and stuffing are the
//! controller's business):
//!
//! +-------------+-----+---------------------------------+
//! | id (11 bit) | DLC | data, 0..=8 bytes, little-endian |
//! +-------------+-----+---------------------------------+
//!
//! battery -> inverter, every 1 s (inverter-can.md, "Bus rules"):
//! 0x351 limits        CVL u16 0.1 V | CCL s16 0.1 A | DCL s16 0.1 A (positive) | DVL u16 0.1 V
//! 0x355 SOC/SOH       SOC u16 % | SOH u16 % | [SOC u16 0.01 %] | [remaining u16]
//! 0x356 measurements  U s16 0.01 V | I s16 0.1 A (+ = charging) | T s16 0.1 degC
//! 0x359 Pylon alarms  protection u16 | warnings u16 | modules u8 | 'P' 'N' | 00
//! 0x35A SMA alarms    4 bytes alarms, 4 bytes warnings, 2 bits per item
//! 0x35C requests      flags u8 | 00
//! 0x35E manufacturer  8 ASCII, space padded
//! 0x35F product       type u16 | firmware u16 | capacity u16 Ah | hardware id u16
//! 0x372..0x377        Victron extras (module counts, cell extremes, their cells' names)
//! 0x379 capacity      installed capacity u16 Ah
//! inverter -> battery:
//! 0x305 keep-alive    8 x 00 (Pylon mode) or SMA's measurements
//! ```
//!
//! Sign conventions. bmslink (and the NW protocol): current positive = charging. CAN 0x356:
//! the same. 0x351's discharge limit is a magnitude, sent positive (the shipped DBC declares
//! `[-500|0]`, which real packs and inverters contradict). SMA's 0x305: negative = charging;
//! [`KeepAlive`] converts it to positive = charging, so no code above this module ever sees the
//! SMA sign.
//!
//! Decoding checks the id, the DLC (the lengths inverter-can.md gives; 0x359 also accepts the
//! DBC's 7) and the ranges the document states (SOC and SOH at most 100 %, limits not
//! negative), and reports every failure as a [`CanError`] with the byte offset. Unknown flag
//! bits are kept, never rejected. Encoding a typed frame is exact; saturation happens once, when
//! engineering values become wire units ([`scale`]), and is explicit there.

use core::fmt;

pub mod alarms;
pub mod frames;
pub mod inverter;
pub mod profile;
pub mod scale;
pub mod text;
pub mod victron;

pub use alarms::{AlarmItems, Conditions, ItemState, PylonAlarms, PylonProtection, PylonWarnings};
pub use alarms::{SmaAlarms, SmaItem};
pub use frames::{
    InstalledCapacity, Limits, Manufacturer, Measurements, ProductInfo, RequestFlags, Requests,
    SocSoh,
};
pub use inverter::{InverterMeasurements, KeepAlive};
pub use profile::{
    frames, safe_state, BatteryState, CellExtremesState, FrameSet, Modules, Options,
    ProductIdentity, Profile, StateLimits,
};
pub use scale::{
    AmpHours, CentiPercent, CentiVolts, DeciAmps, DeciCelsius, DeciPercent, DeciVolts, Kelvin,
    Percent, Rounding,
};
pub use text::ShortText;
pub use victron::{CellExtremes, Extreme, ExtremeCellName, ModuleCounts};

/// The identifiers of the family (inverter-can.md, "Battery -> inverter frames" and
/// "Inverter -> battery").
pub mod id {
    use super::CanId;

    /// Inverter keep-alive (Pylon: 8 x 00; SMA: its measurements).
    pub const KEEP_ALIVE: CanId = CanId(0x305);
    /// CVL, CCL, DCL, DVL.
    pub const LIMITS: CanId = CanId(0x351);
    /// SOC, SOH, high-resolution SOC, remaining capacity.
    pub const SOC_SOH: CanId = CanId(0x355);
    /// Pack voltage, current, temperature.
    pub const MEASUREMENTS: CanId = CanId(0x356);
    /// Pylontech protection and warning flags, module count, "PN".
    pub const PYLON_ALARMS: CanId = CanId(0x359);
    /// SMA / Victron alarms and warnings, 2 bits per item.
    pub const SMA_ALARMS: CanId = CanId(0x35A);
    /// Request flags (charge / discharge enable, force charge, full charge).
    pub const REQUESTS: CanId = CanId(0x35C);
    /// Manufacturer name.
    pub const MANUFACTURER: CanId = CanId(0x35E);
    /// Battery type, firmware version, capacity, hardware id.
    pub const PRODUCT_INFO: CanId = CanId(0x35F);
    /// Victron: module counts.
    pub const MODULE_COUNTS: CanId = CanId(0x372);
    /// Victron: min / max cell voltage and temperature.
    pub const CELL_EXTREMES: CanId = CanId(0x373);
    /// Victron: name of the cell with the lowest voltage.
    pub const MIN_CELL_VOLTAGE_NAME: CanId = CanId(0x374);
    /// Victron: name of the cell with the highest voltage.
    pub const MAX_CELL_VOLTAGE_NAME: CanId = CanId(0x375);
    /// Victron: name of the cell with the lowest temperature.
    pub const MIN_CELL_TEMPERATURE_NAME: CanId = CanId(0x376);
    /// Victron: name of the cell with the highest temperature.
    pub const MAX_CELL_TEMPERATURE_NAME: CanId = CanId(0x377);
    /// Installed capacity (Victron, Sol-Ark, Luxpower).
    pub const INSTALLED_CAPACITY: CanId = CanId(0x379);
}

/// The most data bytes a classic CAN frame carries.
pub const MAX_DATA_LEN: usize = 8;

/// The largest 11-bit (CAN 2.0A) identifier.
pub const MAX_STANDARD_ID: u16 = 0x7FF;

/// An 11-bit standard identifier (inverters ignore 29-bit ones, inverter-can.md "Bus rules").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CanId(u16);

impl CanId {
    /// The identifier, or `None` above 0x7FF.
    pub const fn new(raw: u16) -> Option<CanId> {
        if raw <= MAX_STANDARD_ID {
            Some(CanId(raw))
        } else {
            None
        }
    }

    /// The numeric identifier, 0..=0x7FF.
    pub const fn raw(self) -> u16 {
        self.0
    }
}

impl fmt::Display for CanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:03X}", self.0)
    }
}

/// A classic CAN data frame with a standard identifier: id, 0..=8 data bytes. No allocation;
/// the unused data bytes are always zero, so two equal frames compare equal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CanFrame {
    id: CanId,
    len: u8,
    data: [u8; MAX_DATA_LEN],
}

impl CanFrame {
    /// A frame with `data` (at most 8 bytes).
    pub fn new(id: CanId, data: &[u8]) -> Result<CanFrame, CanError> {
        let mut bytes = [0; MAX_DATA_LEN];
        bytes
            .get_mut(..data.len())
            .ok_or(CanError::TooLong { len: data.len() })?
            .copy_from_slice(data);
        Ok(CanFrame {
            id,
            len: data.len() as u8,
            data: bytes,
        })
    }

    /// A frame of the first `len` bytes of `data` (for encoders that know `len <= 8`).
    pub(crate) fn from_array(id: CanId, data: [u8; MAX_DATA_LEN], len: usize) -> CanFrame {
        let len = len.min(MAX_DATA_LEN);
        let mut bytes = [0; MAX_DATA_LEN];
        bytes[..len].copy_from_slice(&data[..len]);
        CanFrame {
            id,
            len: len as u8,
            data: bytes,
        }
    }

    /// The identifier.
    pub fn id(&self) -> CanId {
        self.id
    }

    /// The data bytes (DLC of them).
    pub fn data(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }

    /// The data length code, 0..=8.
    pub fn dlc(&self) -> usize {
        usize::from(self.len)
    }

    /// Checks the id and that the DLC is one of `allowed`; returns the data padded to 8.
    pub(crate) fn expect(
        &self,
        id: CanId,
        allowed: &'static [u8],
    ) -> Result<&[u8; MAX_DATA_LEN], CanError> {
        if self.id != id {
            return Err(CanError::WrongId {
                expected: id,
                found: self.id,
            });
        }
        if !allowed.contains(&self.len) {
            return Err(CanError::WrongLength {
                id,
                found: self.len,
                allowed,
            });
        }
        Ok(&self.data)
    }
}

impl fmt::Display for CanFrame {
    /// candump style: `351#1402C012C012C201`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03X}#", self.id.0)?;
        for byte in self.data() {
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

/// Why a CAN frame is not the typed frame asked for, or cannot be built. Offsets count data
/// bytes from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CanError {
    /// More than 8 data bytes for a frame.
    TooLong {
        /// Bytes given.
        len: usize,
    },
    /// The frame has another identifier than the type decodes.
    WrongId {
        /// The identifier the type decodes.
        expected: CanId,
        /// The frame's identifier.
        found: CanId,
    },
    /// An identifier none of the family's frames use (from [`BatteryMessage::decode`]).
    UnknownId {
        /// The frame's identifier.
        found: CanId,
    },
    /// The DLC is not one the frame is sent with.
    WrongLength {
        /// The frame's identifier.
        id: CanId,
        /// The frame's DLC.
        found: u8,
        /// The DLCs the frame may have.
        allowed: &'static [u8],
    },
    /// A field is outside the range the document gives.
    OutOfRange {
        /// The frame's identifier.
        id: CanId,
        /// The field's name.
        field: &'static str,
        /// Offset of the field's first byte.
        offset: usize,
        /// The wire value.
        raw: i32,
    },
    /// A text byte is not printable ASCII (NUL and space padding at the end is allowed).
    NotAscii {
        /// The frame's identifier.
        id: CanId,
        /// Offset of the byte.
        offset: usize,
        /// The byte.
        found: u8,
    },
    /// 0x359 bytes 5-6 are not "PN" (0x50 0x4E).
    BadMarker {
        /// The two bytes found.
        found: [u8; 2],
        /// Offset of the first.
        offset: usize,
    },
}

impl CanError {
    /// Offset in the data field of the offending byte (0 for id and length errors).
    pub fn offset(&self) -> usize {
        match *self {
            CanError::OutOfRange { offset, .. }
            | CanError::NotAscii { offset, .. }
            | CanError::BadMarker { offset, .. } => offset,
            _ => 0,
        }
    }
}

fn write_lengths(f: &mut fmt::Formatter<'_>, allowed: &[u8]) -> fmt::Result {
    for (index, len) in allowed.iter().enumerate() {
        let separator = match index {
            0 => "",
            i if i + 1 == allowed.len() => " or ",
            _ => ", ",
        };
        write!(f, "{separator}{len}")?;
    }
    Ok(())
}

impl fmt::Display for CanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CanError::TooLong { len } => write!(f, "{len} data bytes do not fit a CAN frame (8)"),
            CanError::WrongId { expected, found } => {
                write!(f, "frame {found} is not {expected}")
            }
            CanError::UnknownId { found } => write!(f, "frame {found} is not a battery frame"),
            CanError::WrongLength { id, found, allowed } => {
                write!(f, "frame {id}: DLC {found}, expected ")?;
                write_lengths(f, allowed)
            }
            CanError::OutOfRange {
                id,
                field,
                offset,
                raw,
            } => write!(
                f,
                "frame {id}: {field} (byte {offset}) = {raw} is out of range"
            ),
            CanError::NotAscii { id, offset, found } => write!(
                f,
                "frame {id}: byte {offset} = 0x{found:02X} is not printable ASCII"
            ),
            CanError::BadMarker { found, offset } => write!(
                f,
                "frame 0x359: bytes {offset}-{} are {:02X} {:02X}, expected 50 4E (\"PN\")",
                offset + 1,
                found[0],
                found[1]
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CanError {}

/// Little-endian u16 at `at` of a padded data field.
pub(crate) fn le_u16(data: &[u8; MAX_DATA_LEN], at: usize) -> u16 {
    u16::from_le_bytes([data[at], data[at + 1]])
}

/// Little-endian i16 at `at` of a padded data field.
pub(crate) fn le_i16(data: &[u8; MAX_DATA_LEN], at: usize) -> i16 {
    i16::from_le_bytes([data[at], data[at + 1]])
}

/// Writes `value` little-endian at `at`.
pub(crate) fn put_u16(data: &mut [u8; MAX_DATA_LEN], at: usize, value: u16) {
    data[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

/// Writes `value` little-endian at `at`.
pub(crate) fn put_i16(data: &mut [u8; MAX_DATA_LEN], at: usize, value: i16) {
    data[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

/// Any battery -> inverter frame of the family, decoded by its identifier (what a simulated
/// inverter, or a bus monitor, reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatteryMessage {
    /// 0x351.
    Limits(Limits),
    /// 0x355.
    SocSoh(SocSoh),
    /// 0x356.
    Measurements(Measurements),
    /// 0x359.
    PylonAlarms(PylonAlarms),
    /// 0x35A.
    SmaAlarms(SmaAlarms),
    /// 0x35C.
    Requests(Requests),
    /// 0x35E.
    Manufacturer(Manufacturer),
    /// 0x35F.
    ProductInfo(ProductInfo),
    /// 0x372.
    ModuleCounts(ModuleCounts),
    /// 0x373.
    CellExtremes(CellExtremes),
    /// 0x374..=0x377.
    ExtremeCellName(ExtremeCellName),
    /// 0x379.
    InstalledCapacity(InstalledCapacity),
}

impl BatteryMessage {
    /// Decodes `frame` as the family's frame with its identifier.
    pub fn decode(frame: &CanFrame) -> Result<BatteryMessage, CanError> {
        Ok(match frame.id() {
            id::LIMITS => BatteryMessage::Limits(Limits::decode(frame)?),
            id::SOC_SOH => BatteryMessage::SocSoh(SocSoh::decode(frame)?),
            id::MEASUREMENTS => BatteryMessage::Measurements(Measurements::decode(frame)?),
            id::PYLON_ALARMS => BatteryMessage::PylonAlarms(PylonAlarms::decode(frame)?),
            id::SMA_ALARMS => BatteryMessage::SmaAlarms(SmaAlarms::decode(frame)?),
            id::REQUESTS => BatteryMessage::Requests(Requests::decode(frame)?),
            id::MANUFACTURER => BatteryMessage::Manufacturer(Manufacturer::decode(frame)?),
            id::PRODUCT_INFO => BatteryMessage::ProductInfo(ProductInfo::decode(frame)?),
            id::MODULE_COUNTS => BatteryMessage::ModuleCounts(ModuleCounts::decode(frame)?),
            id::CELL_EXTREMES => BatteryMessage::CellExtremes(CellExtremes::decode(frame)?),
            id::INSTALLED_CAPACITY => {
                BatteryMessage::InstalledCapacity(InstalledCapacity::decode(frame)?)
            }
            found if Extreme::from_id(found).is_some() => {
                BatteryMessage::ExtremeCellName(ExtremeCellName::decode(frame)?)
            }
            found => return Err(CanError::UnknownId { found }),
        })
    }

    /// The frame again.
    pub fn encode(&self) -> CanFrame {
        match self {
            BatteryMessage::Limits(m) => m.encode(),
            BatteryMessage::SocSoh(m) => m.encode(),
            BatteryMessage::Measurements(m) => m.encode(),
            BatteryMessage::PylonAlarms(m) => m.encode(),
            BatteryMessage::SmaAlarms(m) => m.encode(),
            BatteryMessage::Requests(m) => m.encode(),
            BatteryMessage::Manufacturer(m) => m.encode(),
            BatteryMessage::ProductInfo(m) => m.encode(),
            BatteryMessage::ModuleCounts(m) => m.encode(),
            BatteryMessage::CellExtremes(m) => m.encode(),
            BatteryMessage::ExtremeCellName(m) => m.encode(),
            BatteryMessage::InstalledCapacity(m) => m.encode(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn ids_above_eleven_bits_are_refused() {
        assert_eq!(CanId::new(0x7FF).map(CanId::raw), Some(0x7FF));
        assert_eq!(CanId::new(0x800), None);
    }

    #[test]
    fn a_frame_holds_zero_to_eight_bytes_and_zero_pads() {
        let frame = CanFrame::new(id::REQUESTS, &[0xC0, 0x00]).unwrap();
        assert_eq!(frame.data(), &[0xC0, 0x00]);
        assert_eq!(frame.dlc(), 2);
        assert_eq!(
            frame.expect(id::REQUESTS, &[2]),
            Ok(&[0xC0, 0, 0, 0, 0, 0, 0, 0])
        );
        assert!(CanFrame::new(id::REQUESTS, &[]).is_ok());
        assert_eq!(
            CanFrame::new(id::REQUESTS, &[0; 9]),
            Err(CanError::TooLong { len: 9 })
        );
    }

    #[test]
    fn display_is_candump_style() {
        let frame = CanFrame::new(id::LIMITS, &[0x14, 0x02, 0xC0, 0x12]).unwrap();
        assert_eq!(frame.to_string(), "351#1402C012");
    }

    #[test]
    fn errors_name_the_frame_and_the_lengths() {
        let frame = CanFrame::new(id::SOC_SOH, &[0; 5]).unwrap();
        let error = SocSoh::decode(&frame).unwrap_err();
        assert_eq!(error.to_string(), "frame 0x355: DLC 5, expected 4, 6 or 8");
        let error = Limits::decode(&frame).unwrap_err();
        assert_eq!(error.to_string(), "frame 0x355 is not 0x351");
    }

    #[test]
    fn battery_message_dispatches_by_id_and_refuses_strangers() {
        let frame = CanFrame::new(
            id::LIMITS,
            &[0x14, 0x02, 0xC0, 0x12, 0xC0, 0x12, 0xC2, 0x01],
        )
        .unwrap();
        let message = BatteryMessage::decode(&frame).unwrap();
        assert!(matches!(message, BatteryMessage::Limits(_)));
        assert_eq!(message.encode(), frame);
        let name = CanFrame::new(id::MAX_CELL_VOLTAGE_NAME, b"R1C07   ").unwrap();
        assert!(matches!(
            BatteryMessage::decode(&name),
            Ok(BatteryMessage::ExtremeCellName(_))
        ));
        let stranger = CanFrame::new(CanId(0x123), &[]).unwrap();
        assert_eq!(
            BatteryMessage::decode(&stranger),
            Err(CanError::UnknownId {
                found: CanId(0x123)
            })
        );
    }
}
