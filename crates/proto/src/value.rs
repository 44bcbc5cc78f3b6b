//! Typed values of NW identifiers: decoding from wire bytes, encoding with range validation, and
//! parsing engineering-unit text ("3.65", "3650mV", "on", "lfp") for writes.
//!
//! Decoding never fails on a value's content: odd values (a temperature raw of 200, an unknown
//! battery type) keep their raw value and report `None` where no engineering value exists.
//! Switches are the exception: any non-zero byte reads as "on", as devices treat it, so a
//! switch byte of 2 re-encodes as 1; [`Value::check_wire`] sees the raw byte. Only encoding
//! validates ranges, so a read-modify-write of a device's odd value is a visible error, not a
//! silent change.

use core::fmt;

use bitflags::bitflags;

use crate::ident::{Descriptor, Encoding, Identifier, IdentifierInfo, Unit, DESCRIPTORS};
use crate::units::{Celsius, Milliamps, Millivolts};

/// The longest fixed-width value (0xBA manufacturer id).
pub const MAX_FIXED_VALUE_LEN: usize = 24;

/// Most cells a 0x79 field can describe (its length byte is 3 x n <= 255).
pub const MAX_CELLS: usize = 85;

/// Why a value cannot be decoded, encoded or parsed. Names the field where it matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueError {
    /// Wire bytes of the wrong length for the identifier.
    Length {
        /// The identifier.
        id: Identifier,
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The value is outside the identifier's valid range.
    OutOfRange {
        /// The identifier.
        id: Identifier,
        /// The raw value given.
        raw: i64,
        /// Smallest valid raw value.
        min: i64,
        /// Largest valid raw value.
        max: i64,
    },
    /// The value's kind does not fit the identifier (a switch for a voltage, say).
    WrongKind {
        /// The identifier.
        id: Identifier,
    },
    /// Text is longer than the fixed-width field.
    TextTooLong {
        /// The identifier.
        id: Identifier,
        /// Field width.
        max: usize,
        /// Text length.
        len: usize,
    },
    /// Text has a byte outside printable ASCII.
    NotAscii {
        /// The identifier.
        id: Identifier,
    },
    /// Text for a numeric identifier is not a number in its unit.
    NotANumber {
        /// The identifier.
        id: Identifier,
    },
    /// The number has more decimal places than the field's resolution.
    TooPrecise {
        /// The identifier.
        id: Identifier,
    },
    /// A unit suffix that does not fit the identifier ("5 A" for a voltage).
    WrongUnit {
        /// The identifier.
        id: Identifier,
    },
    /// The identifier is read-only.
    NotWritable {
        /// The identifier.
        id: Identifier,
    },
    /// More cells than a 0x79 field can carry.
    TooManyCells {
        /// Cells given.
        count: usize,
    },
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
}

impl ValueError {
    fn range_text(id: Identifier, raw: i64) -> Number {
        Number::new(raw, id.info())
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ValueError::Length {
                id,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "{}: expected {expected} value bytes, got {actual}",
                    id.name()
                )
            }
            ValueError::OutOfRange { id, raw, min, max } => write!(
                f,
                "{}: {} is out of range {} ..= {}",
                id.name(),
                Self::range_text(id, raw),
                Self::range_text(id, min),
                Self::range_text(id, max)
            ),
            ValueError::WrongKind { id } => {
                write!(f, "{}: value of the wrong kind for this field", id.name())
            }
            ValueError::TextTooLong { id, max, len } => {
                write!(
                    f,
                    "{}: text of {len} bytes does not fit {max} bytes",
                    id.name()
                )
            }
            ValueError::NotAscii { id } => {
                write!(f, "{}: text must be printable ASCII", id.name())
            }
            ValueError::NotANumber { id } => {
                let info = id.info();
                write!(f, "{}: not a number", id.name())?;
                if info.unit != Unit::None {
                    write!(f, " in {}", info.unit.symbol())?;
                }
                Ok(())
            }
            ValueError::TooPrecise { id } => {
                let info = id.info();
                write!(
                    f,
                    "{}: resolution is {} decimal place(s) of {}",
                    id.name(),
                    info.decimals,
                    info.unit.symbol()
                )
            }
            ValueError::WrongUnit { id } => {
                write!(f, "{}: unit must be {}", id.name(), id.info().unit.symbol())
            }
            ValueError::NotWritable { id } => write!(f, "{} is read-only", id.name()),
            ValueError::TooManyCells { count } => {
                write!(
                    f,
                    "{count} cells do not fit a cell voltage field (at most {MAX_CELLS})"
                )
            }
            ValueError::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ValueError {}

/// A scaled integer with its unit: `raw / 10^decimals` in `unit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Number {
    /// The wire integer.
    pub raw: i64,
    /// Engineering unit.
    pub unit: Unit,
    /// Decimal places of the scaling.
    pub decimals: u8,
}

impl Number {
    #[inline]
    fn new(raw: i64, info: &IdentifierInfo) -> Number {
        Number {
            raw,
            unit: info.unit,
            decimals: info.decimals,
        }
    }

    /// The engineering value as floating point (for display and models, never for the wire).
    pub fn to_f64(self) -> f64 {
        let scale = (0..self.decimals).fold(1.0, |scale, _| scale * 10.0);
        self.raw as f64 / scale
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = 10u64.pow(u32::from(self.decimals));
        let sign = if self.raw < 0 { "-" } else { "" };
        let magnitude = self.raw.unsigned_abs();
        write!(f, "{sign}{}", magnitude / scale)?;
        if self.decimals > 0 {
            let width = usize::from(self.decimals);
            write!(f, ".{:0width$}", magnitude % scale)?;
        }
        match self.unit {
            Unit::None => Ok(()),
            Unit::Percent => write!(f, "%"),
            unit => write!(f, " {}", unit.symbol()),
        }
    }
}

/// 0x79: a zero-copy view of the cell voltage groups `[cell number, mV hi, mV lo]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellVoltages<'a> {
    groups: &'a [u8],
}

/// One cell's voltage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellVoltage {
    /// 1-based cell number as reported.
    pub number: u8,
    /// Voltage.
    pub voltage: Millivolts,
}

impl<'a> CellVoltages<'a> {
    /// Number of cells.
    pub fn len(&self) -> usize {
        self.groups.len() / 3
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.groups.len() < 3
    }

    /// The cells in wire order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = CellVoltage> + 'a {
        self.groups.chunks_exact(3).map(|group| CellVoltage {
            number: group[0],
            voltage: Millivolts(u32::from(u16::from_be_bytes([group[1], group[2]]))),
        })
    }

    /// The lowest cell, first one on a tie.
    pub fn min(&self) -> Option<CellVoltage> {
        self.iter()
            .reduce(|a, b| if b.voltage < a.voltage { b } else { a })
    }

    /// The highest cell, first one on a tie.
    pub fn max(&self) -> Option<CellVoltage> {
        self.iter()
            .reduce(|a, b| if b.voltage > a.voltage { b } else { a })
    }

    /// Writes a 0x79 value (length byte, then groups numbered from 1) for these voltages.
    pub fn encode(cells: &[Millivolts], out: &mut [u8]) -> Result<usize, ValueError> {
        if cells.len() > MAX_CELLS {
            return Err(ValueError::TooManyCells { count: cells.len() });
        }
        let needed = 1 + 3 * cells.len();
        let out = out
            .get_mut(..needed)
            .ok_or(ValueError::BufferTooSmall { needed })?;
        out[0] = (3 * cells.len()) as u8;
        for (index, (cell, group)) in cells.iter().zip(out[1..].chunks_exact_mut(3)).enumerate() {
            let mv = u16::try_from(cell.0).map_err(|_| ValueError::OutOfRange {
                id: Identifier::CellVoltages,
                raw: i64::from(cell.0),
                min: 0,
                max: i64::from(u16::MAX),
            })?;
            group[0] = (index + 1) as u8;
            group[1..].copy_from_slice(&mv.to_be_bytes());
        }
        Ok(needed)
    }
}

/// 0x80..0x82: a temperature with the "100 reference" for negatives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Temperature {
    /// The wire value, kept because sources disagree by 1 degC at exactly 100.
    pub raw: u16,
}

impl Temperature {
    /// The temperature, or `None` for a raw value above 140.
    #[inline]
    pub fn celsius(self) -> Option<Celsius> {
        match self.raw {
            0..=100 => Some(Celsius(self.raw as i16)),
            101..=140 => Some(Celsius(100 - self.raw as i16)),
            _ => None,
        }
    }

    /// The wire form of a temperature from -40 to 100 degC.
    pub fn from_celsius(celsius: Celsius) -> Option<Temperature> {
        match celsius.0 {
            0..=100 => Some(Temperature {
                raw: celsius.0 as u16,
            }),
            -40..=-1 => Some(Temperature {
                raw: (100 - celsius.0) as u16,
            }),
            _ => None,
        }
    }
}

/// Which of the two 0x84 encodings a frame uses, chosen by its 0xC0 protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurrentEncoding {
    /// Version 0x00 or no 0xC0: `(10000 - raw) x 10 mA`, charge positive.
    Offset10000,
    /// Version 0x01: bit 15 = charge, bits 0..14 = magnitude in 10 mA.
    SignMagnitude,
    /// A version this implementation does not know; the raw value is kept.
    Unknown(u8),
}

impl CurrentEncoding {
    /// The encoding for a frame's 0xC0 value (`None` when the frame has no 0xC0).
    #[inline]
    pub fn for_protocol_version(version: Option<u8>) -> CurrentEncoding {
        match version {
            None | Some(0x00) => CurrentEncoding::Offset10000,
            Some(0x01) => CurrentEncoding::SignMagnitude,
            Some(other) => CurrentEncoding::Unknown(other),
        }
    }
}

/// 0x84: the pack current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Current {
    /// The wire value.
    pub raw: u16,
    /// How to read it.
    pub encoding: CurrentEncoding,
}

impl Current {
    /// The current (positive = charging), or `None` under an unknown protocol version.
    #[inline]
    pub fn milliamps(self) -> Option<Milliamps> {
        match self.encoding {
            CurrentEncoding::SignMagnitude => {
                let magnitude = i32::from(self.raw & 0x7FFF) * 10;
                Some(Milliamps(if self.raw & 0x8000 != 0 {
                    magnitude
                } else {
                    -magnitude
                }))
            }
            CurrentEncoding::Offset10000 => Some(Milliamps((10_000 - i32::from(self.raw)) * 10)),
            CurrentEncoding::Unknown(_) => None,
        }
    }

    /// The wire form of a current, rounded to the protocol's 10 mA; `None` if it does not fit.
    pub fn from_milliamps(current: Milliamps, encoding: CurrentEncoding) -> Option<Current> {
        let tens = (i64::from(current.0) + if current.0 < 0 { -5 } else { 5 }) / 10;
        let raw = match encoding {
            CurrentEncoding::SignMagnitude => {
                let magnitude = u16::try_from(tens.unsigned_abs())
                    .ok()
                    .filter(|m| *m <= 0x7FFF)?;
                if tens > 0 {
                    magnitude | 0x8000
                } else {
                    magnitude
                }
            }
            CurrentEncoding::Offset10000 => u16::try_from(10_000 - tens).ok()?,
            CurrentEncoding::Unknown(_) => return None,
        };
        Some(Current { raw, encoding })
    }
}

/// 0xAF: battery chemistry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BatteryType {
    /// 0: lithium iron phosphate.
    Lfp,
    /// 1: ternary lithium (NMC).
    Nmc,
    /// 2: lithium titanate.
    Lto,
    /// A code outside the document.
    Other(u8),
}

impl BatteryType {
    /// From the wire byte.
    #[inline]
    pub fn from_code(code: u8) -> BatteryType {
        match code {
            0 => BatteryType::Lfp,
            1 => BatteryType::Nmc,
            2 => BatteryType::Lto,
            other => BatteryType::Other(other),
        }
    }

    /// The wire byte.
    #[inline]
    pub fn code(self) -> u8 {
        match self {
            BatteryType::Lfp => 0,
            BatteryType::Nmc => 1,
            BatteryType::Lto => 2,
            BatteryType::Other(code) => code,
        }
    }

    /// Short lower-case name ("lfp", "nmc", "lto").
    pub fn name(self) -> &'static str {
        match self {
            BatteryType::Lfp => "lfp",
            BatteryType::Nmc => "nmc",
            BatteryType::Lto => "lto",
            BatteryType::Other(_) => "other",
        }
    }
}

bitflags! {
    /// 0x8B warning bits (`nw.md`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Warnings: u16 {
        /// Bit 0: low capacity.
        const LOW_CAPACITY = 1 << 0;
        /// Bit 1: power tube (MOSFET) over-temperature.
        const MOSFET_OVER_TEMPERATURE = 1 << 1;
        /// Bit 2: charge over-voltage (total).
        const CHARGE_OVER_VOLTAGE = 1 << 2;
        /// Bit 3: discharge under-voltage (total).
        const DISCHARGE_UNDER_VOLTAGE = 1 << 3;
        /// Bit 4: battery over-temperature.
        const BATTERY_OVER_TEMPERATURE = 1 << 4;
        /// Bit 5: charge over-current.
        const CHARGE_OVER_CURRENT = 1 << 5;
        /// Bit 6: discharge over-current.
        const DISCHARGE_OVER_CURRENT = 1 << 6;
        /// Bit 7: cell voltage difference.
        const CELL_VOLTAGE_DIFFERENCE = 1 << 7;
        /// Bit 8: box over-temperature.
        const BOX_OVER_TEMPERATURE = 1 << 8;
        /// Bit 9: battery low temperature.
        const BATTERY_LOW_TEMPERATURE = 1 << 9;
        /// Bit 10: cell over-voltage.
        const CELL_OVER_VOLTAGE = 1 << 10;
        /// Bit 11: cell under-voltage.
        const CELL_UNDER_VOLTAGE = 1 << 11;
        /// Bit 12: 309_A protection.
        const PROTECTION_309_A = 1 << 12;
        /// Bit 13: 309_B protection.
        const PROTECTION_309_B = 1 << 13;
        // Bits 14 and 15 are reserved; unknown bits are kept by `from_bits_retain`.
        const _ = !0;
    }
}

bitflags! {
    /// 0x8C live status bits (`nw.md`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Status: u16 {
        /// Bit 0: charge MOSFET on.
        const CHARGE_MOSFET_ON = 1 << 0;
        /// Bit 1: discharge MOSFET on.
        const DISCHARGE_MOSFET_ON = 1 << 1;
        /// Bit 2: balancer active.
        const BALANCING = 1 << 2;
        /// Bit 3: battery online / "dropped" flag (document: 1 = normal; real 6.x-11.x frames
        /// show 0, so it is reported, not interpreted).
        const BATTERY_ONLINE_FLAG = 1 << 3;
        const _ = !0;
    }
}

/// Names of the defined bits of [`Warnings`] and [`Status`], for display.
pub fn flag_names<F: bitflags::Flags + Copy>(flags: F) -> impl Iterator<Item = &'static str> {
    F::FLAGS
        .iter()
        .filter(move |flag| !flag.name().is_empty() && flags.contains(*flag.value()))
        .map(|flag| flag.name())
}

/// A fixed-width text field: raw bytes kept, trailing NULs and spaces trimmed for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedText<'a> {
    raw: &'a [u8],
}

impl<'a> FixedText<'a> {
    /// Wraps raw field bytes.
    pub fn new(raw: &'a [u8]) -> FixedText<'a> {
        FixedText { raw }
    }

    /// The bytes as on the wire, padding included.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The bytes without trailing NULs and spaces.
    #[inline]
    pub fn trimmed(&self) -> &'a [u8] {
        let end = self
            .raw
            .iter()
            .rposition(|&b| b != 0 && b != b' ')
            .map_or(0, |i| i + 1);
        &self.raw[..end]
    }

    /// The trimmed text if it is printable ASCII throughout (no embedded NULs).
    pub fn as_str(&self) -> Option<&'a str> {
        let trimmed = self.trimmed();
        if trimmed.iter().all(|b| (0x20..0x7F).contains(b)) {
            core::str::from_utf8(trimmed).ok()
        } else {
            None
        }
    }
}

impl fmt::Display for FixedText<'_> {
    /// Printable ASCII as is; anything else (embedded NULs) as `\xNN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.trimmed() {
            if (0x20..0x7F).contains(&byte) && byte != b'\\' {
                write!(f, "{}", byte as char)?;
            } else {
                write!(f, "\\x{byte:02X}")?;
            }
        }
        Ok(())
    }
}

/// A decoded value of one identifier, in engineering terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Value<'a> {
    /// 0x79.
    CellVoltages(CellVoltages<'a>),
    /// 0x80..0x82.
    Temperature(Temperature),
    /// 0x84.
    Current(Current),
    /// Any scaled integer: voltages, delays, currents, counts, capacities, signed temperatures.
    Number(Number),
    /// A 0/1 switch.
    Switch(bool),
    /// 0xAF.
    BatteryType(BatteryType),
    /// 0x8B.
    Warnings(Warnings),
    /// 0x8C.
    Status(Status),
    /// Fixed-width ASCII.
    Text(FixedText<'a>),
}

#[inline]
fn unsigned_be(bytes: &[u8]) -> i64 {
    match *bytes {
        [a] => i64::from(a),
        [a, b] => i64::from(u16::from_be_bytes([a, b])),
        [a, b, c, d] => i64::from(u32::from_be_bytes([a, b, c, d])),
        _ => bytes.iter().fold(0i64, |acc, &b| (acc << 8) | i64::from(b)),
    }
}

impl<'a> Value<'a> {
    /// Decodes the value bytes of `id` (without the identifier byte). `current` is the 0x84
    /// encoding of the frame, from its 0xC0.
    pub fn decode(
        id: Identifier,
        bytes: &'a [u8],
        current: CurrentEncoding,
    ) -> Result<Value<'a>, ValueError> {
        let info = id.info();
        match info.fixed_len() {
            Some(expected) if expected != bytes.len() => {
                return Err(ValueError::Length {
                    id,
                    expected,
                    actual: bytes.len(),
                })
            }
            None if bytes.first().map(|&n| usize::from(n) + 1) != Some(bytes.len()) => {
                let expected = bytes.first().map_or(1, |&n| usize::from(n) + 1);
                return Err(ValueError::Length {
                    id,
                    expected,
                    actual: bytes.len(),
                });
            }
            _ => {}
        }
        Ok(Value::decode_trusted(id, bytes, current))
    }

    /// Decodes value bytes whose length was already checked against the table (by
    /// [`Value::decode`] or [`Info::parse`](crate::Info::parse)).
    #[inline]
    pub(crate) fn decode_trusted(
        id: Identifier,
        bytes: &'a [u8],
        current: CurrentEncoding,
    ) -> Value<'a> {
        Value::decode_described(&DESCRIPTORS[id as usize], bytes, current)
    }

    /// Decodes value bytes of the identifier `descriptor` describes; their length was checked.
    #[inline]
    pub(crate) fn decode_described(
        descriptor: &Descriptor,
        bytes: &'a [u8],
        current: CurrentEncoding,
    ) -> Value<'a> {
        let word = || match *bytes {
            [hi, lo, ..] => u16::from_be_bytes([hi, lo]),
            _ => 0,
        };
        let number = |raw| Number {
            raw,
            unit: descriptor.unit,
            decimals: descriptor.decimals,
        };
        match descriptor.encoding {
            Encoding::CellVoltages => {
                let groups = bytes.get(1..).unwrap_or(&[]);
                Value::CellVoltages(CellVoltages {
                    groups: &groups[..groups.len() / 3 * 3],
                })
            }
            Encoding::Temperature => Value::Temperature(Temperature { raw: word() }),
            Encoding::Current => Value::Current(Current {
                raw: word(),
                encoding: current,
            }),
            Encoding::Unsigned => Value::Number(number(unsigned_be(bytes))),
            Encoding::Signed => Value::Number(number(i64::from(word() as i16))),
            Encoding::Switch => Value::Switch(bytes.first().is_some_and(|&b| b != 0)),
            Encoding::BatteryType => {
                Value::BatteryType(BatteryType::from_code(bytes.first().copied().unwrap_or(0)))
            }
            Encoding::Warnings => Value::Warnings(Warnings::from_bits_retain(word())),
            Encoding::Status => Value::Status(Status::from_bits_retain(word())),
            Encoding::Text => Value::Text(FixedText { raw: bytes }),
        }
    }

    /// Checks wire bytes for `id` against the table: length, and for integer encodings the raw
    /// value against the range (decoding alone is lenient: a switch byte of 7 reads as "on").
    pub fn check_wire(id: Identifier, bytes: &[u8]) -> Result<(), ValueError> {
        let info = id.info();
        Value::decode(id, bytes, CurrentEncoding::SignMagnitude)?;
        let raw = match info.encoding {
            Encoding::Signed => i64::from(i16::from_be_bytes([bytes[0], bytes[1]])),
            Encoding::Unsigned
            | Encoding::Switch
            | Encoding::BatteryType
            | Encoding::Temperature => unsigned_be(bytes),
            _ => return Ok(()),
        };
        match info.range {
            Some((min, max)) if raw < min || raw > max => {
                Err(ValueError::OutOfRange { id, raw, min, max })
            }
            _ => Ok(()),
        }
    }

    /// The raw integer a value stands for on the wire, where it has one (for range checks).
    fn raw_integer(&self) -> Option<i64> {
        match *self {
            Value::Number(number) => Some(number.raw),
            Value::Switch(on) => Some(i64::from(on)),
            Value::BatteryType(kind) => Some(i64::from(kind.code())),
            Value::Temperature(t) => Some(i64::from(t.raw)),
            _ => None,
        }
    }

    /// Encodes this value for `id` into `out`, checking the kind and the table's range.
    /// Returns the bytes written (the value only, without the identifier byte).
    pub fn encode(&self, id: Identifier, out: &mut [u8]) -> Result<usize, ValueError> {
        let info = id.info();
        if let (Some(raw), Some((min, max))) = (self.raw_integer(), info.range) {
            if raw < min || raw > max {
                return Err(ValueError::OutOfRange { id, raw, min, max });
            }
        }
        let len = match info.fixed_len() {
            Some(len) => len,
            None => {
                let Value::CellVoltages(cells) = self else {
                    return Err(ValueError::WrongKind { id });
                };
                let needed = 1 + cells.groups.len();
                let out = out
                    .get_mut(..needed)
                    .ok_or(ValueError::BufferTooSmall { needed })?;
                out[0] = cells.groups.len() as u8;
                out[1..].copy_from_slice(cells.groups);
                return Ok(needed);
            }
        };
        let out = out
            .get_mut(..len)
            .ok_or(ValueError::BufferTooSmall { needed: len })?;
        match (info.encoding, *self) {
            (Encoding::Temperature, Value::Temperature(t)) => put_int(out, i64::from(t.raw)),
            (Encoding::Current, Value::Current(c)) => put_int(out, i64::from(c.raw)),
            (Encoding::Unsigned | Encoding::Signed, Value::Number(n)) => {
                if n.unit != info.unit || n.decimals != info.decimals {
                    return Err(ValueError::WrongUnit { id });
                }
                put_int(out, n.raw)
            }
            (Encoding::Switch, Value::Switch(on)) => put_int(out, i64::from(on)),
            (Encoding::BatteryType, Value::BatteryType(kind)) => {
                put_int(out, i64::from(kind.code()))
            }
            (Encoding::Warnings, Value::Warnings(w)) => put_int(out, i64::from(w.bits())),
            (Encoding::Status, Value::Status(s)) => put_int(out, i64::from(s.bits())),
            (Encoding::Text, Value::Text(text)) => put_text(id, out, text.raw)?,
            _ => return Err(ValueError::WrongKind { id }),
        }
        Ok(len)
    }

    /// Parses a value for `id` from engineering-unit text, range-checked: numbers with an
    /// optional unit ("3.65", "3.65 V", "3650mV", "-20", "300 s"), switches ("on", "off", "1",
    /// "0"), battery types ("lfp", "nmc", "lto" or a code), text (ASCII up to the width).
    pub fn parse(id: Identifier, text: &'a str) -> Result<Value<'a>, ValueError> {
        let info = id.info();
        let text = text.trim();
        let value = match info.encoding {
            Encoding::Unsigned | Encoding::Signed => {
                Value::Number(Number::new(parse_scaled(id, info, text)?, info))
            }
            Encoding::Switch => {
                Value::Switch(parse_switch(text).ok_or(ValueError::NotANumber { id })?)
            }
            Encoding::BatteryType => {
                Value::BatteryType(parse_battery_type(text).ok_or(ValueError::NotANumber { id })?)
            }
            Encoding::Text => {
                let len = info.fixed_len().unwrap_or(0);
                if text.len() > len {
                    return Err(ValueError::TextTooLong {
                        id,
                        max: len,
                        len: text.len(),
                    });
                }
                if !text.bytes().all(|b| (0x20..0x7F).contains(&b)) {
                    return Err(ValueError::NotAscii { id });
                }
                Value::Text(FixedText {
                    raw: text.as_bytes(),
                })
            }
            _ => return Err(ValueError::WrongKind { id }),
        };
        if let (Some(raw), Some((min, max))) = (value.raw_integer(), info.range) {
            if raw < min || raw > max {
                return Err(ValueError::OutOfRange { id, raw, min, max });
            }
        }
        Ok(value)
    }
}

fn put_int(out: &mut [u8], value: i64) {
    let bytes = value.to_be_bytes();
    out.copy_from_slice(&bytes[bytes.len() - out.len()..]);
}

fn put_text(id: Identifier, out: &mut [u8], text: &[u8]) -> Result<(), ValueError> {
    if text.len() > out.len() {
        return Err(ValueError::TextTooLong {
            id,
            max: out.len(),
            len: text.len(),
        });
    }
    out.fill(0);
    out[..text.len()].copy_from_slice(text);
    Ok(())
}

fn parse_switch(text: &str) -> Option<bool> {
    let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(text));
    if is(&["1", "on", "true", "yes"]) {
        Some(true)
    } else if is(&["0", "off", "false", "no"]) {
        Some(false)
    } else {
        None
    }
}

fn parse_battery_type(text: &str) -> Option<BatteryType> {
    let is = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(text));
    if is(&["lfp", "lifepo4"]) {
        Some(BatteryType::Lfp)
    } else if is(&["nmc", "ternary", "li-ion"]) {
        Some(BatteryType::Nmc)
    } else if is(&["lto"]) {
        Some(BatteryType::Lto)
    } else {
        text.parse::<u8>().ok().map(BatteryType::from_code)
    }
}

/// Splits "3.65 V" / "3650mV" into the number and a power-of-ten shift from its unit suffix.
fn split_unit<'t>(
    id: Identifier,
    info: &IdentifierInfo,
    text: &'t str,
) -> Result<(&'t str, i32), ValueError> {
    let end = text
        .rfind(|c: char| c.is_ascii_digit() || c == '.')
        .map_or(0, |i| i + 1);
    let (number, suffix) = text.split_at(end);
    if number.trim().is_empty() {
        return Err(ValueError::NotANumber { id });
    }
    let suffix = suffix.trim();
    if suffix.is_empty() {
        return Ok((number.trim(), 0));
    }
    let symbol = info.unit.symbol();
    let matches = |s: &str| s.eq_ignore_ascii_case(suffix);
    let celsius = info.unit == Unit::Celsius && (matches("C") || matches("degC"));
    if (!symbol.is_empty() && matches(symbol)) || celsius {
        return Ok((number.trim(), 0));
    }
    let milli = matches!(info.unit, Unit::Volt | Unit::Ampere)
        && suffix.len() == symbol.len() + 1
        && suffix.starts_with('m')
        && suffix[1..].eq_ignore_ascii_case(symbol);
    if milli {
        return Ok((number.trim(), -3));
    }
    Err(ValueError::WrongUnit { id })
}

/// Parses a decimal in the identifier's unit into its raw wire integer, exactly.
fn parse_scaled(id: Identifier, info: &IdentifierInfo, text: &str) -> Result<i64, ValueError> {
    let (number, shift) = split_unit(id, info, text)?;
    let not_a_number = ValueError::NotANumber { id };
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(not_a_number);
    }
    // mantissa x 10^exponent is the raw value.
    let mut mantissa: i64 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(b - b'0')))
            .ok_or(not_a_number)?;
    }
    let mut exponent = i32::from(info.decimals) + shift - fraction.len() as i32;
    while exponent < 0 {
        if mantissa % 10 != 0 {
            return Err(ValueError::TooPrecise { id });
        }
        mantissa /= 10;
        exponent += 1;
    }
    let raw = 10i64
        .checked_pow(exponent as u32)
        .and_then(|scale| mantissa.checked_mul(scale))
        .ok_or(not_a_number)?;
    Ok(if negative { -raw } else { raw })
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::CellVoltages(cells) => {
                for (i, cell) in cells.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{}:{}", cell.number, cell.voltage.0)?;
                }
                f.write_str(" mV")
            }
            Value::Temperature(t) => match t.celsius() {
                Some(c) => write!(f, "{c}"),
                None => write!(f, "raw {} (out of range)", t.raw),
            },
            Value::Current(c) => match c.milliamps() {
                Some(ma) => write!(f, "{ma}"),
                None => write!(f, "raw 0x{:04X} (unknown protocol version)", c.raw),
            },
            Value::Number(n) => write!(f, "{n}"),
            Value::Switch(on) => f.write_str(if *on { "on" } else { "off" }),
            Value::BatteryType(BatteryType::Other(code)) => write!(f, "unknown ({code})"),
            Value::BatteryType(kind) => f.write_str(kind.name()),
            Value::Warnings(w) => write_flags(f, w.bits(), flag_names(*w)),
            Value::Status(s) => write_flags(f, s.bits(), flag_names(*s)),
            Value::Text(text) => write!(f, "{text}"),
        }
    }
}

fn write_flags<'n>(
    f: &mut fmt::Formatter<'_>,
    bits: u16,
    names: impl Iterator<Item = &'n str>,
) -> fmt::Result {
    write!(f, "0x{bits:04X}")?;
    let mut first = true;
    for name in names {
        f.write_str(if first { " " } else { "|" })?;
        f.write_str(name)?;
        first = false;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn temperature_uses_the_100_reference_for_negatives() {
        let t = |raw| Temperature { raw }.celsius();
        assert_eq!(t(29), Some(Celsius(29)));
        assert_eq!(t(100), Some(Celsius(100)));
        assert_eq!(t(101), Some(Celsius(-1)));
        assert_eq!(t(140), Some(Celsius(-40)));
        assert_eq!(t(141), None);
        assert_eq!(
            Temperature::from_celsius(Celsius(-20)),
            Some(Temperature { raw: 120 })
        );
        assert_eq!(Temperature::from_celsius(Celsius(-41)), None);
    }

    #[test]
    fn current_follows_the_frames_protocol_version() {
        let sm = |raw| {
            Current {
                raw,
                encoding: CurrentEncoding::SignMagnitude,
            }
            .milliamps()
        };
        assert_eq!(sm(0x80D0), Some(Milliamps(2080)));
        assert_eq!(sm(0x0370), Some(Milliamps(-8800)));
        assert_eq!(sm(0x0000), Some(Milliamps(0)));
        let old = |raw| {
            Current {
                raw,
                encoding: CurrentEncoding::Offset10000,
            }
            .milliamps()
        };
        assert_eq!(old(11_000), Some(Milliamps(-10_000))); // document: 10.00 A discharge
        assert_eq!(old(9_500), Some(Milliamps(5_000))); // document: 5.00 A charge
        assert_eq!(old(10_000), Some(Milliamps(0)));
        let unknown = Current {
            raw: 1,
            encoding: CurrentEncoding::Unknown(7),
        };
        assert_eq!(unknown.milliamps(), None);
    }

    #[test]
    fn current_encoding_round_trips_at_10_ma_resolution() {
        for encoding in [CurrentEncoding::SignMagnitude, CurrentEncoding::Offset10000] {
            for ma in [-20_000, -8_800, -690, 0, 2_080, 45_300] {
                let current = Current::from_milliamps(Milliamps(ma), encoding).unwrap();
                assert_eq!(
                    current.milliamps(),
                    Some(Milliamps(ma)),
                    "{encoding:?} {ma}"
                );
            }
        }
        assert_eq!(
            Current::from_milliamps(Milliamps(400_000), CurrentEncoding::SignMagnitude),
            None
        );
    }

    #[test]
    fn parses_engineering_text_with_units() {
        let id = Identifier::CellOverVoltageProtection;
        let raw = |text| match Value::parse(id, text) {
            Ok(Value::Number(n)) => Ok(n.raw),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(raw("3.65"), Ok(3650));
        assert_eq!(raw("3.65 V"), Ok(3650));
        assert_eq!(raw("3650mV"), Ok(3650));
        assert_eq!(raw("3.6505"), Err(ValueError::TooPrecise { id }));
        assert_eq!(raw("3.65 A"), Err(ValueError::WrongUnit { id }));
        assert_eq!(raw("abc"), Err(ValueError::NotANumber { id }));
        assert_eq!(raw(""), Err(ValueError::NotANumber { id }));
        let err = raw("5").unwrap_err();
        assert_eq!(
            err,
            ValueError::OutOfRange {
                id,
                raw: 5000,
                min: 1000,
                max: 4500
            }
        );
        assert_eq!(
            err.to_string(),
            "cell_over_voltage_protection: 5.000 V is out of range 1.000 V ..= 4.500 V"
        );
    }

    #[test]
    fn parses_signed_switch_type_and_text() {
        let low = Identifier::ChargeLowTemperatureProtection;
        assert!(matches!(
            Value::parse(low, "-20"),
            Ok(Value::Number(Number { raw: -20, .. }))
        ));
        assert!(matches!(
            Value::parse(low, "-20 °C"),
            Ok(Value::Number(Number { raw: -20, .. }))
        ));
        assert!(matches!(
            Value::parse(low, "-46"),
            Err(ValueError::OutOfRange { .. })
        ));
        let switch = Identifier::ChargeMosfetSwitch;
        assert_eq!(Value::parse(switch, "off"), Ok(Value::Switch(false)));
        assert_eq!(Value::parse(switch, "ON"), Ok(Value::Switch(true)));
        assert!(Value::parse(switch, "2").is_err());
        assert_eq!(
            Value::parse(Identifier::BatteryType, "lfp"),
            Ok(Value::BatteryType(BatteryType::Lfp))
        );
        assert!(Value::parse(Identifier::BatteryType, "7").is_err());
        let password = Identifier::Password;
        assert!(matches!(
            Value::parse(password, "01234567890"),
            Err(ValueError::TextTooLong {
                max: 10,
                len: 11,
                ..
            })
        ));
        let mut out = [0xFFu8; 10];
        let value = Value::parse(password, "1234").unwrap();
        assert_eq!(value.encode(password, &mut out), Ok(10));
        assert_eq!(&out, b"1234\0\0\0\0\0\0");
    }

    #[test]
    fn encode_rejects_out_of_range_and_wrong_kinds() {
        let mut out = [0u8; 4];
        let id = Identifier::LowCapacityAlarm;
        let too_high = Value::Number(Number {
            raw: 81,
            unit: Unit::Percent,
            decimals: 0,
        });
        assert!(matches!(
            too_high.encode(id, &mut out),
            Err(ValueError::OutOfRange { .. })
        ));
        assert_eq!(
            Value::Switch(true).encode(id, &mut out),
            Err(ValueError::WrongKind { id })
        );
        let cells = [Millivolts(3300), Millivolts(3301)];
        let mut buf = [0u8; 7];
        assert_eq!(CellVoltages::encode(&cells, &mut buf), Ok(7));
        assert_eq!(buf, [6, 1, 0x0C, 0xE4, 2, 0x0C, 0xE5]);
    }

    #[test]
    fn wire_check_sees_raw_values_that_decoding_tolerates() {
        let switch = Identifier::ChargeMosfetSwitch;
        assert_eq!(
            Value::decode(switch, &[7], CurrentEncoding::SignMagnitude),
            Ok(Value::Switch(true))
        );
        assert_eq!(
            Value::check_wire(switch, &[7]),
            Err(ValueError::OutOfRange {
                id: switch,
                raw: 7,
                min: 0,
                max: 1
            })
        );
        assert_eq!(Value::check_wire(switch, &[1]), Ok(()));
        let low = Identifier::ChargeLowTemperatureProtection;
        assert_eq!(Value::check_wire(low, &[0xFF, 0xEC]), Ok(()));
        assert!(Value::check_wire(low, &[0xFF, 0x00]).is_err());
        assert!(matches!(
            Value::check_wire(low, &[0xFF]),
            Err(ValueError::Length { .. })
        ));
    }

    #[test]
    fn text_keeps_raw_bytes_and_trims_for_display() {
        let raw = b"beki\0\0\0\0\0\0\0\0JK_B1A24S15P";
        let text = FixedText::new(raw);
        assert_eq!(text.raw(), raw);
        assert_eq!(text.as_str(), None);
        assert!(text.to_string().starts_with("beki\\x00"));
        let padded = FixedText::new(b"123456\0\0\0\0");
        assert_eq!(padded.as_str(), Some("123456"));
    }
}
