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

use crate::ident::{Identifier, LEN_BY_BYTE};
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
#[inline]
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
    pub fn parse(bytes: &'a [u8], base: usize) -> Result<Info<'a>, InfoError> {
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
    pub fn current_encoding(&self) -> CurrentEncoding {
        CurrentEncoding::for_protocol_version(self.protocol_version)
    }

    /// The pairs in wire order.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            bytes: self.bytes,
            pos: 0,
            base: self.base,
        }
    }

    /// The decoded values in wire order.
    pub fn values(&self) -> impl Iterator<Item = (Identifier, Value<'a>)> + 'a {
        let current = self.current_encoding();
        self.fields().map(move |field| {
            (
                field.id,
                Value::decode_trusted(field.id, field.bytes, current),
            )
        })
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

    fn next(&mut self) -> Option<Field<'a>> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        // The structure was checked by `Info::parse`; an error here cannot happen, and ends
        // the iteration rather than panicking.
        let (id, end) = step(self.bytes, self.pos, self.base).ok()?;
        let field = Field {
            id,
            offset: self.base + self.pos,
            bytes: self.bytes.get(self.pos + 1..end)?,
        };
        self.pos = end;
        Some(field)
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
