//! Eight-byte ASCII fields: the manufacturer name (0x35E, "ASCII, space padded, e.g.
//! `PYLON   `", inverter-can.md) and the Victron cell names (0x374..0x377).
//!
//! ```text
//! byte  0   1   2   3   4   5   6   7
//!       P   Y   L   O   N   ' ' ' ' ' '    text, then padding to 8
//! ```
//!
//! Encoding pads with spaces. Decoding accepts spaces or NULs as trailing padding (C
//! implementations send NULs) and requires printable ASCII (0x20..=0x7E) before it.

use core::fmt;

use super::{CanError, CanId, MAX_DATA_LEN};

/// Up to 8 printable ASCII bytes without trailing spaces.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ShortText {
    bytes: [u8; MAX_DATA_LEN],
    len: u8,
}

/// The padding byte written after the text.
pub const PAD: u8 = b' ';

fn is_printable(byte: u8) -> bool {
    (0x20..=0x7E).contains(&byte)
}

impl ShortText {
    /// The text, or `None` when it is longer than 8 bytes or has a byte outside printable
    /// ASCII. Trailing spaces are dropped (they are padding on the wire).
    pub fn new(text: &[u8]) -> Option<ShortText> {
        if text.len() > MAX_DATA_LEN || !text.iter().all(|&b| is_printable(b)) {
            return None;
        }
        let len = text
            .iter()
            .rposition(|&b| b != PAD)
            .map_or(0, |last| last + 1);
        let mut bytes = [0; MAX_DATA_LEN];
        bytes[..len].copy_from_slice(&text[..len]);
        Some(ShortText {
            bytes,
            len: len as u8,
        })
    }

    /// The text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Printable ASCII is always UTF-8.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The 8 wire bytes, space padded.
    pub(crate) fn to_wire(self) -> [u8; MAX_DATA_LEN] {
        let mut wire = [PAD; MAX_DATA_LEN];
        wire[..usize::from(self.len)].copy_from_slice(self.as_bytes());
        wire
    }

    /// Reads 8 wire bytes of frame `id`: trailing spaces and NULs are padding.
    pub(crate) fn from_wire(id: CanId, wire: &[u8; MAX_DATA_LEN]) -> Result<ShortText, CanError> {
        let len = wire
            .iter()
            .rposition(|&b| b != PAD && b != 0)
            .map_or(0, |last| last + 1);
        if let Some(offset) = wire[..len].iter().position(|&b| !is_printable(b)) {
            return Err(CanError::NotAscii {
                id,
                offset,
                found: wire[offset],
            });
        }
        let mut bytes = [0; MAX_DATA_LEN];
        bytes[..len].copy_from_slice(&wire[..len]);
        Ok(ShortText {
            bytes,
            len: len as u8,
        })
    }
}

impl fmt::Debug for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::can::id;

    #[test]
    fn text_is_checked_and_trailing_spaces_dropped() {
        assert_eq!(ShortText::new(b"PYLON   ").map(|t| t.len), Some(5));
        assert!(ShortText::new(b"NINE CHAR").is_none());
        assert!(ShortText::new(b"A\x07").is_none());
        assert_eq!(ShortText::new(b"").map(|t| t.to_wire()), Some([PAD; 8]));
    }

    #[test]
    fn wire_padding_may_be_spaces_or_nuls() {
        let spaces = ShortText::from_wire(id::MANUFACTURER, b"PYLON   ").unwrap();
        let nuls = ShortText::from_wire(id::MANUFACTURER, b"PYLON\0\0\0").unwrap();
        assert_eq!(spaces, nuls);
        assert_eq!(spaces.as_str(), "PYLON");
        assert_eq!(spaces.to_wire(), *b"PYLON   ");
    }

    #[test]
    fn a_control_byte_inside_the_text_is_an_error_with_its_offset() {
        assert_eq!(
            ShortText::from_wire(id::MANUFACTURER, b"PY\0ON   "),
            Err(CanError::NotAscii {
                id: id::MANUFACTURER,
                offset: 2,
                found: 0
            })
        );
    }
}
