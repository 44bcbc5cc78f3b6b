//! The info field of a reply or active upload: identifier + value pairs, walked by length.
//!
//! ```text
//! info:  [id][value: len(id) bytes] [id][value] ...
//! 0x79:  [79][3n][cell 1][mV hi][mV lo] ... [cell n][mV hi][mV lo]
//! ```
//!
//! Identifier bytes also occur inside values, so the field is walked by the lengths of the
//! identifier table, never searched. [`Info::parse`] checks the whole structure once: every
//! identifier known (an unknown one has an unknown length, so the walk stops there with its
//! offset), lengths within the field, strictly ascending order, a 0x79 length that is a multiple
//! of three and agrees with 0x8A. After that, iterating fields and decoding values cannot fail.
//!
//! The 0x84 current is decoded with the 0xC0 protocol version of the same frame, which comes last:
//! the check pass records it, so values are decoded correctly whatever their order.

use core::fmt;

use crate::ident::{
    Identifier, DESCRIPTORS, FULL_LAYOUT, FULL_LAYOUT_FIELDS, FULL_LAYOUT_LEN, LEN_BY_BYTE,
};

/// Position of 0x8A in the full layout.
const CELL_COUNT_FIELD: usize = {
    let mut i = 0;
    while FULL_LAYOUT[i].0 != Identifier::CellCount.code() {
        i += 1;
    }
    i
};
use crate::value::{CurrentEncoding, Value};

/// Why an info field is malformed. Offsets are from the start of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfoError {
    /// An identifier byte outside the table: the rest cannot be walked.
    UnknownIdentifier {
        /// The byte.
        id: u8,
        /// Its offset.
        offset: usize,
    },
    /// A value runs past the end of the info field.
    Truncated {
        /// The identifier.
        id: Identifier,
        /// Offset of the identifier byte.
        offset: usize,
        /// Value bytes needed.
        needed: usize,
        /// Value bytes left.
        available: usize,
    },
    /// Identifiers not in strictly ascending order (a repeat or a step back).
    OutOfOrder {
        /// The identifier found.
        id: Identifier,
        /// The identifier before it.
        previous: Identifier,
        /// Offset of the identifier byte.
        offset: usize,
    },
    /// The 0x79 length byte is not a multiple of three.
    CellListLength {
        /// The length byte.
        len: u8,
        /// Offset of the length byte.
        offset: usize,
    },
    /// The 0x79 list and 0x8A cell count disagree.
    CellCountMismatch {
        /// Cells in the 0x79 list.
        listed: usize,
        /// The 0x8A value.
        count: u16,
        /// Offset of the 0x8A identifier byte.
        offset: usize,
    },
}

impl InfoError {
    /// Byte offset of the fault within the frame.
    pub fn offset(&self) -> usize {
        match *self {
            InfoError::UnknownIdentifier { offset, .. }
            | InfoError::Truncated { offset, .. }
            | InfoError::OutOfOrder { offset, .. }
            | InfoError::CellListLength { offset, .. }
            | InfoError::CellCountMismatch { offset, .. } => offset,
        }
    }

    /// A short stable name for statistics.
    pub fn kind(&self) -> &'static str {
        match self {
            InfoError::UnknownIdentifier { .. } => "unknown_identifier",
            InfoError::Truncated { .. } => "value_truncated",
            InfoError::OutOfOrder { .. } => "out_of_order",
            InfoError::CellListLength { .. } => "cell_list_length",
            InfoError::CellCountMismatch { .. } => "cell_count_mismatch",
        }
    }
}

impl fmt::Display for InfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InfoError::UnknownIdentifier { id, offset } => write!(
                f,
                "unknown identifier 0x{id:02X} at offset {offset}: its length is unknown, the rest of the frame cannot be walked"
            ),
            InfoError::Truncated { id, offset, needed, available } => write!(
                f,
                "{} at offset {offset} needs {needed} value bytes, {available} left",
                id.name()
            ),
            InfoError::OutOfOrder { id, previous, offset } => write!(
                f,
                "identifier 0x{:02X} at offset {offset} follows 0x{:02X}: identifiers must be strictly ascending",
                id.code(),
                previous.code()
            ),
            InfoError::CellListLength { len, offset } => write!(
                f,
                "cell voltage length byte {len} at offset {offset} is not a multiple of 3"
            ),
            InfoError::CellCountMismatch { listed, count, offset } => write!(
                f,
                "cell_count at offset {offset} says {count} cells, the cell voltage list has {listed}"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for InfoError {}

/// One identifier and its value bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// The identifier.
    pub id: Identifier,
    /// Offset of the identifier byte from the start of the frame.
    pub offset: usize,
    /// The value bytes (for 0x79 including its length byte).
    pub bytes: &'a [u8],
}

/// One step of the walk: the identifier at `pos` and where its value ends.
#[inline(always)]
fn step(info: &[u8], pos: usize, base: usize) -> Result<(Identifier, usize), InfoError> {
    let code = info[pos];
    let offset = base + pos;
    let id = Identifier::from_u8(code).ok_or(InfoError::UnknownIdentifier { id: code, offset })?;
    let available = info.len() - pos - 1;
    let needed = match LEN_BY_BYTE[usize::from(code)] {
        0xFF => match info.get(pos + 1) {
            Some(&len) if len % 3 != 0 => {
                return Err(InfoError::CellListLength {
                    len,
                    offset: offset + 1,
                })
            }
            Some(&len) => 1 + usize::from(len),
            None => 1,
        },
        fixed => usize::from(fixed),
    };
    if needed > available {
        return Err(InfoError::Truncated {
            id,
            offset,
            needed,
            available,
        });
    }
    Ok((id, pos + 1 + needed))
}

/// A checked info field of a reply or upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info<'a> {
    bytes: &'a [u8],
    base: usize,
    protocol_version: Option<u8>,
    fields: usize,
}

impl<'a> Info<'a> {
    /// Checks the structure of `bytes`, an info field that starts `base` bytes into its frame.
    #[inline]
    pub fn parse(bytes: &'a [u8], base: usize) -> Result<Info<'a>, InfoError> {
        if let Some(info) = Info::parse_full_layout(bytes, base) {
            return Ok(info);
        }
        // The general path checks everything the checking walk does, in fewer steps; on any
        // fault it hands over to that walk, which names the fault and its offset.
        let n = bytes.len();
        let mut pos = 0;
        let mut previous = 0u8;
        let mut listed_cells = None;
        // 0x79 is the lowest identifier, so in an ascending field it can only come first; it is
        // also the only length-prefixed one, so the loop below deals with fixed lengths only.
        if bytes.first() == Some(&Identifier::CellVoltages.code()) {
            let len = usize::from(bytes.get(1).copied().unwrap_or(1));
            if len % 3 != 0 || 2 + len > n {
                return Err(Info::error(bytes, base));
            }
            listed_cells = Some(len / 3);
            pos = 2 + len;
            previous = Identifier::CellVoltages.code();
        }
        let mut fields = usize::from(pos > 0);
        let mut cell_count_at = usize::MAX;
        let mut last = 0;
        while pos < n {
            let code = bytes[pos];
            let len = usize::from(LEN_BY_BYTE[usize::from(code)]);
            let end = pos + 1 + len;
            // Unknown (length 0), a second length-prefixed field (0xFF), a step back, a repeat
            // or a value past the end.
            if len.wrapping_sub(1) >= 0xFE || code <= previous || end > n {
                return Err(Info::error(bytes, base));
            }
            cell_count_at = if code == Identifier::CellCount.code() {
                pos
            } else {
                cell_count_at
            };
            previous = code;
            last = pos;
            fields += 1;
            pos = end;
        }
        if let (Some(listed), Some(at)) = (
            listed_cells,
            Some(cell_count_at).filter(|&at| at != usize::MAX),
        ) {
            let count = bytes
                .get(at + 1..at + 3)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            if usize::from(count) != listed {
                return Err(Info::error(bytes, base));
            }
        }
        // 0xC0 is the highest identifier: only the last field can be it.
        let protocol_version = if previous == Identifier::ProtocolVersion.code() {
            bytes.get(last + 1).copied()
        } else {
            None
        };
        Ok(Info {
            bytes,
            base,
            protocol_version,
            fields,
        })
    }

    /// The common case: a full read-all reply (0x79, then every readable identifier up to
    /// 0xC0 in order). Its layout after the cell list is fixed, so checking it is comparing the
    /// identifier bytes at their known offsets, and the cell count at its own. `None` when the
    /// field is laid out otherwise (the general walk then decides).
    #[inline]
    fn parse_full_layout(bytes: &'a [u8], base: usize) -> Option<Info<'a>> {
        let [0x79, cell_bytes, ..] = *bytes else {
            return None;
        };
        let cell_bytes = usize::from(cell_bytes);
        let rest: &[u8; FULL_LAYOUT_LEN] = bytes.get(2 + cell_bytes..)?.try_into().ok()?;
        if cell_bytes % 3 != 0 {
            return None;
        }
        // Compare every identifier byte without early exit: the loop stays branch-free.
        let mismatch = FULL_LAYOUT.iter().fold(0u8, |acc, &(id, offset)| {
            acc | (rest[usize::from(offset)] ^ id)
        });
        if mismatch != 0 {
            return None;
        }
        let cell_count_at = usize::from(FULL_LAYOUT[CELL_COUNT_FIELD].1) + 1;
        let count = u16::from_be_bytes([rest[cell_count_at], rest[cell_count_at + 1]]);
        if usize::from(count) != cell_bytes / 3 {
            return None;
        }
        Some(Info {
            bytes,
            base,
            protocol_version: Some(rest[FULL_LAYOUT_LEN - 1]),
            fields: 1 + FULL_LAYOUT_FIELDS,
        })
    }

    /// The error of a malformed field, found by the full checking walk (cold path).
    #[cold]
    #[inline(never)]
    fn error(bytes: &'a [u8], base: usize) -> InfoError {
        match Info::parse_checked(bytes, base) {
            Err(error) => error,
            Ok(_) => InfoError::UnknownIdentifier {
                id: 0,
                offset: base,
            },
        }
    }

    fn parse_checked(bytes: &'a [u8], base: usize) -> Result<Info<'a>, InfoError> {
        let mut pos = 0;
        let mut previous: Option<Identifier> = None;
        let mut listed_cells: Option<usize> = None;
        let mut protocol_version = None;
        let mut fields = 0;
        while pos < bytes.len() {
            let (id, end) = step(bytes, pos, base)?;
            if let Some(previous) = previous.filter(|&p| p >= id) {
                return Err(InfoError::OutOfOrder {
                    id,
                    previous,
                    offset: base + pos,
                });
            }
            match id {
                Identifier::CellVoltages => listed_cells = Some((end - pos - 2) / 3),
                Identifier::CellCount => {
                    let count = u16::from_be_bytes([bytes[pos + 1], bytes[pos + 2]]);
                    if let Some(listed) = listed_cells.filter(|&n| n != usize::from(count)) {
                        return Err(InfoError::CellCountMismatch {
                            listed,
                            count,
                            offset: base + pos,
                        });
                    }
                }
                Identifier::ProtocolVersion => protocol_version = Some(bytes[pos + 1]),
                _ => {}
            }
            previous = Some(id);
            fields += 1;
            pos = end;
        }
        Ok(Info {
            bytes,
            base,
            protocol_version,
            fields,
        })
    }

    /// The raw info bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of identifier + value pairs.
    pub fn len(&self) -> usize {
        self.fields
    }

    /// Whether the field has no pairs.
    pub fn is_empty(&self) -> bool {
        self.fields == 0
    }

    /// The 0xC0 protocol version, if the frame carries one (old firmware does not).
    pub fn protocol_version(&self) -> Option<u8> {
        self.protocol_version
    }

    /// How this frame encodes 0x84.
    #[inline]
    pub fn current_encoding(&self) -> CurrentEncoding {
        CurrentEncoding::for_protocol_version(self.protocol_version)
    }

    /// The pairs in wire order.
    #[inline]
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            bytes: self.bytes,
            pos: 0,
            base: self.base,
        }
    }

    /// The decoded values in wire order.
    #[inline]
    pub fn values(&self) -> Values<'a> {
        Values {
            bytes: self.bytes,
            pos: 0,
            current: self.current_encoding(),
        }
    }

    /// The value of one identifier, if present.
    pub fn get(&self, id: Identifier) -> Option<Value<'a>> {
        let current = self.current_encoding();
        self.fields()
            .find(|field| field.id == id)
            .map(|field| Value::decode_trusted(field.id, field.bytes, current))
    }
}

/// Iterator over the pairs of a checked [`Info`].
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    #[inline]
    fn next(&mut self) -> Option<Field<'a>> {
        let (id, start, end) = walk(self.bytes, self.pos)?;
        let field = Field {
            id,
            offset: self.base + self.pos,
            bytes: self.bytes.get(start..end)?,
        };
        self.pos = end;
        Some(field)
    }
}

/// One step of the walk over a checked field: the identifier at `pos` and its value's range.
/// `None` at the end (the structure was checked by `Info::parse`; a fault also ends the walk
/// rather than panicking).
#[inline(always)]
fn walk(bytes: &[u8], pos: usize) -> Option<(Identifier, usize, usize)> {
    let code = *bytes.get(pos)?;
    let descriptor = &DESCRIPTORS[usize::from(code)];
    let start = pos + 1;
    let len = match descriptor.len {
        0xFF => 1 + usize::from(*bytes.get(start)?),
        fixed => usize::from(fixed),
    };
    Some((descriptor.id?, start, start + len))
}

/// Iterator over the decoded values of a checked [`Info`], in wire order.
#[derive(Clone, Debug)]
pub struct Values<'a> {
    bytes: &'a [u8],
    pos: usize,
    current: CurrentEncoding,
}

impl<'a> Iterator for Values<'a> {
    type Item = (Identifier, Value<'a>);

    #[inline]
    fn next(&mut self) -> Option<(Identifier, Value<'a>)> {
        let (id, start, end) = walk(self.bytes, self.pos)?;
        let bytes = self.bytes.get(start..end)?;
        self.pos = end;
        Some((
            id,
            Value::decode_described(&DESCRIPTORS[id as usize], bytes, self.current),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Millivolts;
    use crate::value::CellVoltages;

    #[test]
    fn walks_pairs_by_length_even_when_values_contain_identifier_bytes() {
        // 0x85 = 0x8B (an identifier byte as a value), 0x8B = 0x0085.
        let info = [0x85, 0x8B, 0x8B, 0x00, 0x85];
        let parsed = Info::parse(&info, 11).unwrap();
        let fields: std::vec::Vec<_> = parsed.fields().collect();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].id, Identifier::Soc);
        assert_eq!(fields[0].bytes, &[0x8B]);
        assert_eq!(fields[1].id, Identifier::Warnings);
        assert_eq!(fields[1].offset, 13);
    }

    #[test]
    fn unknown_identifier_stops_the_walk_with_its_offset() {
        let info = [0x85, 0x10, 0x88, 0x00, 0x00];
        assert_eq!(
            Info::parse(&info, 11),
            Err(InfoError::UnknownIdentifier {
                id: 0x88,
                offset: 13
            })
        );
    }

    #[test]
    fn order_and_cell_structure_are_checked() {
        assert!(matches!(
            Info::parse(&[0x85, 0x10, 0x85, 0x11], 11),
            Err(InfoError::OutOfOrder { offset: 13, .. })
        ));
        assert!(matches!(
            Info::parse(&[0x85, 0x10, 0x83, 0x00, 0x01], 11),
            Err(InfoError::OutOfOrder { .. })
        ));
        assert_eq!(
            Info::parse(&[0x79, 0x04, 1, 2, 3, 4], 11),
            Err(InfoError::CellListLength { len: 4, offset: 12 })
        );
        let mut info = [0u8; 7 + 3];
        CellVoltages::encode(&[Millivolts(3300), Millivolts(3301)], &mut info[1..]).unwrap();
        info[0] = 0x79;
        info[8..].copy_from_slice(&[0x8A, 0x00]);
        assert!(matches!(
            Info::parse(&info, 11),
            Err(InfoError::Truncated { .. })
        ));
        let mut full = [0u8; 11];
        full[..8].copy_from_slice(&info[..8]);
        full[8..].copy_from_slice(&[0x8A, 0x00, 0x03]);
        assert_eq!(
            Info::parse(&full, 11),
            Err(InfoError::CellCountMismatch {
                listed: 2,
                count: 3,
                offset: 19
            })
        );
        full[10] = 0x02;
        assert_eq!(Info::parse(&full, 11).unwrap().len(), 2);
    }

    #[test]
    fn the_full_layout_fast_path_agrees_with_the_checking_walk_on_every_single_byte_change() {
        let frame = crate::vectors_for_tests::a03();
        let info = &frame[11..frame.len() - 9];
        assert!(
            Info::parse_full_layout(info, 11).is_some(),
            "A03 is a full read-all reply"
        );
        let mut mutated = info.to_vec();
        for at in 0..info.len() {
            for value in [0x00, 0x79, 0x8A, 0x8B, 0xC0, 0xFF, info[at].wrapping_add(1)] {
                mutated[at] = value;
                let checked = Info::parse_checked(&mutated, 11);
                if let Some(fast) = Info::parse_full_layout(&mutated, 11) {
                    assert_eq!(Ok(fast), checked, "offset {at} = {value:#04X}");
                }
                assert_eq!(
                    Info::parse(&mutated, 11),
                    checked,
                    "offset {at} = {value:#04X}"
                );
                mutated[at] = info[at];
            }
        }
    }

    #[test]
    fn truncated_values_report_what_is_missing() {
        assert_eq!(
            Info::parse(&[0x83, 0x14], 11),
            Err(InfoError::Truncated {
                id: Identifier::TotalVoltage,
                offset: 11,
                needed: 2,
                available: 1
            })
        );
        assert!(matches!(
            Info::parse(&[0x79], 11),
            Err(InfoError::Truncated { .. })
        ));
    }
}
