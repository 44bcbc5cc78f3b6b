//! The vendor settings block: every writable NW identifier of every rack as holding registers,
//! derived from the identifier table (`bmslink_proto::TABLE`: the `ReadWrite` settings and the
//! `Write` commands 0xBB..=0xBF), pure and testable without I/O.
//!
//! Rack `r` (0-based, configuration order) starts at [`rack_base`]`(r)` = 1000 + 200 x r; its
//! points follow in table order, each identifier's wire bytes big-endian over
//! ceil(len / 2) registers, right-aligned (a 1-byte switch reads 0x0001, its high byte is zero).
//!
//! Reads: the rack's latest reading (or a confirmed write not yet polled back); 0xFFFF in every
//! register of a field the rack has not reported; zeros for the password (0xB2, never exposed)
//! and the write-only commands.

use std::sync::LazyLock;

use bmslink_proto::{
    Access, CurrentEncoding, Identifier, IdentifierInfo, Value, ValueError, WriteValue,
};

/// The first rack's block.
pub const VENDOR_BASE: u16 = 1000;
/// Registers between the starts of two racks' blocks.
pub const RACK_STRIDE: u16 = 200;
/// Racks the address map can hold (blocks end below the SunSpec map at 40000).
pub const MAX_RACKS: usize = ((super::sunspec::BASE - VENDOR_BASE) / RACK_STRIDE) as usize;

/// Identifiers whose writes need the unlock code: they cut power (MOSFET switches), change
/// what the BMS believes it is (cell count, chemistry, address, calibration), lock the gateway
/// out (password) or act at once (restart, factory reset, upgrade, data-box power).
pub const PRIVILEGED: [Identifier; 13] = [
    Identifier::CellCountSetting,
    Identifier::ChargeMosfetSwitch,
    Identifier::DischargeMosfetSwitch,
    Identifier::CurrentCalibration,
    Identifier::BoardAddress,
    Identifier::BatteryType,
    Identifier::Password,
    Identifier::StartCurrentCalibration,
    Identifier::Restart,
    Identifier::FactoryReset,
    Identifier::RemoteUpgrade,
    Identifier::DataBoxPowerOffVoltage,
    Identifier::DataBoxPowerOnVoltage,
];

/// One identifier in a rack's block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingPoint {
    /// Its row of the identifier table.
    pub info: &'static IdentifierInfo,
    /// First register, from the rack's base.
    pub offset: u16,
    /// Registers it spans.
    pub registers: u16,
    /// Wire bytes.
    pub len: usize,
}

impl SettingPoint {
    /// The identifier.
    pub fn id(&self) -> Identifier {
        self.info.id
    }

    /// Whether a write needs the unlock code.
    pub fn privileged(&self) -> bool {
        PRIVILEGED.contains(&self.info.id)
    }

    /// Whether reads show the value (not the password, not a command).
    pub fn readable(&self) -> bool {
        self.info.access == Access::ReadWrite && self.info.id != Identifier::Password
    }
}

static POINTS: LazyLock<Vec<SettingPoint>> = LazyLock::new(|| {
    let mut offset = 0;
    bmslink_proto::TABLE
        .iter()
        .filter(|info| matches!(info.access, Access::ReadWrite | Access::Write))
        .filter_map(|info| {
            let len = info.fixed_len()?;
            let registers = u16::try_from(len.div_ceil(2)).ok()?;
            let point = SettingPoint {
                info,
                offset,
                registers,
                len,
            };
            offset += registers;
            Some(point)
        })
        .collect()
});

/// Every point of a rack's block, in address order.
pub fn setting_points() -> &'static [SettingPoint] {
    &POINTS
}

/// Registers of one rack's block.
pub fn block_len() -> u16 {
    setting_points()
        .last()
        .map_or(0, |p| p.offset + p.registers)
}

/// The first register of rack `rack`'s block, if the map holds that many racks.
pub fn rack_base(rack: usize) -> Option<u16> {
    (rack < MAX_RACKS).then(|| VENDOR_BASE + RACK_STRIDE * rack as u16)
}

/// The rack and offset of a register inside some rack's block (not checked against the count
/// of racks configured).
pub fn locate(address: u16) -> Option<(usize, u16)> {
    let relative = address.checked_sub(VENDOR_BASE)?;
    let rack = usize::from(relative / RACK_STRIDE);
    let offset = relative % RACK_STRIDE;
    (rack < MAX_RACKS && offset < block_len()).then_some((rack, offset))
}

/// The point starting exactly at `offset` of a block.
pub fn point_at(offset: u16) -> Option<&'static SettingPoint> {
    setting_points().iter().find(|p| p.offset == offset)
}

/// The point of `id`.
pub fn point_of(id: Identifier) -> Option<&'static SettingPoint> {
    setting_points().iter().find(|p| p.id() == id)
}

/// Wire bytes as `registers` registers, right-aligned (leading zero byte for odd lengths).
pub fn to_registers(bytes: &[u8], registers: u16) -> Vec<u16> {
    let mut padded = vec![0u8; usize::from(registers) * 2];
    let start = padded.len().saturating_sub(bytes.len());
    let take = bytes.len().min(padded.len());
    padded[start..].copy_from_slice(&bytes[..take]);
    padded
        .chunks(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect()
}

/// The `len` wire bytes in `words`, or `None` if the padding byte (odd lengths) is not zero.
pub fn from_registers(words: &[u16], len: usize) -> Option<Vec<u8>> {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    let padding = bytes.len().checked_sub(len)?;
    bytes[..padding]
        .iter()
        .all(|&b| b == 0)
        .then(|| bytes[padding..].to_vec())
}

/// Why written registers are not a value of the point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadValue {
    /// The padding byte of a 1-byte field is not zero.
    Padding,
    /// Text with a byte that is neither printable ASCII nor NUL padding.
    NotText,
    /// The table refuses it (range, length, kind).
    Table(ValueError),
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadValue::Padding => f.write_str("the high byte of a one-byte value must be zero"),
            BadValue::NotText => f.write_str("text must be printable ASCII, NUL padded"),
            BadValue::Table(error) => write!(f, "{error}"),
        }
    }
}

/// The range-checked write of `words` to `point`.
pub fn write_value(point: &SettingPoint, words: &[u16]) -> Result<WriteValue, BadValue> {
    let id = point.id();
    let bytes = from_registers(words, point.len).ok_or(BadValue::Padding)?;
    Value::check_wire(id, &bytes).map_err(BadValue::Table)?;
    let value =
        Value::decode(id, &bytes, CurrentEncoding::SignMagnitude).map_err(BadValue::Table)?;
    if let Value::Text(text) = value {
        if !text
            .raw()
            .iter()
            .all(|&b| b == 0 || (0x20..0x7F).contains(&b))
        {
            return Err(BadValue::NotText);
        }
    }
    WriteValue::new(id, &value).map_err(BadValue::Table)
}

/// One rack's block as read: `field(id)` gives a field's current wire bytes.
pub fn block_registers<'a>(field: impl Fn(Identifier) -> Option<&'a [u8]>) -> Vec<u16> {
    let mut registers = Vec::with_capacity(usize::from(block_len()));
    for point in setting_points() {
        let words = match (point.readable(), field(point.id())) {
            (false, _) => vec![0; usize::from(point.registers)],
            (true, Some(bytes)) => to_registers(bytes, point.registers),
            (true, None) => vec![super::sunspec::NI_U16; usize::from(point.registers)],
        };
        registers.extend(words);
    }
    registers
}

/// A value's wire bytes in words, for logs ("3.650 V", else hex).
pub fn describe(id: Identifier, bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "unknown".to_string(),
        Some(_) if id == Identifier::Password => "<hidden>".to_string(),
        Some(bytes) => match Value::decode(id, bytes, CurrentEncoding::SignMagnitude) {
            Ok(value) => value.to_string(),
            Err(_) => format!("{bytes:02X?}"),
        },
    }
}
