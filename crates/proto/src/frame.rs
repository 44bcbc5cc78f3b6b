//! The NW frame: a zero-copy view ([`Frame`]), its parsed header ([`Header`]), and a builder
//! that emits frames into a caller's buffer ([`FrameBuilder`]).
//!
//! ```text
//! off   len  field
//! 0     2    STX            4E 57 ("NW")
//! 2     2    LENGTH         total frame bytes - 2
//! 4     4    terminal id    [standby number][terminal number, 24 bits]
//! 8     1    command        01 activate, 02 write, 03 read, 05 pair code, 06 read all
//! 9     1    frame source   00 BMS, 01 Bluetooth, 02 GPS / data box, 03 PC
//! 10    1    transport type 00 request, 01 response, 02 active upload
//! 11    N    info           identifier + value pairs (or a request's identifier)
//! -9    4    record number  [random code][sequence, 24 bits]
//! -5    1    end            68
//! -4    2    checksum hi    00 00 ("CRC16, not enabled")
//! -2    2    checksum lo    low 16 bits of the byte sum of everything before the checksum
//! ```
//!
//! All multi-byte fields are big-endian (`nw.md`, "Frame").
//!
//! Once [`Frame::new_checked`] has succeeded, no accessor panics.

use core::fmt;

/// Field offsets, as in the diagram above. Trailer offsets count back from the frame's end.
mod field {
    use core::ops::Range;

    pub const STX: Range<usize> = 0..2;
    pub const LENGTH: Range<usize> = 2..4;
    pub const TERMINAL: Range<usize> = 4..8;
    pub const COMMAND: usize = 8;
    pub const SOURCE: usize = 9;
    pub const TRANSPORT: usize = 10;
    pub const INFO_START: usize = 11;
    /// Record number (4) + end (1) + checksum (4).
    pub const TRAILER_LEN: usize = 9;

    pub const fn info(len: usize) -> Range<usize> {
        INFO_START..len - TRAILER_LEN
    }
    pub const fn record(len: usize) -> Range<usize> {
        len - 9..len - 5
    }
    pub const fn end(len: usize) -> usize {
        len - 5
    }
    pub const fn checksum_high(len: usize) -> Range<usize> {
        len - 4..len - 2
    }
    pub const fn checksum_low(len: usize) -> Range<usize> {
        len - 2..len
    }
}

/// The two start bytes, "NW".
pub const STX: [u8; 2] = [0x4E, 0x57];
/// The end byte before the checksum.
pub const END: u8 = 0x68;
/// The shortest frame: header, empty info field, trailer (`nw.md`: a 20-byte read-all).
pub const MIN_FRAME_LEN: usize = field::INFO_START + field::TRAILER_LEN;
/// Bytes of a frame that are not the info field.
pub const OVERHEAD: usize = MIN_FRAME_LEN;
/// The longest frame this implementation accepts. A 32-cell read-all reply is 339 bytes; the
/// limit leaves room for firmware that adds fields while bounding every buffer.
pub const MAX_FRAME_LEN: usize = 1024;

/// Why bytes are not a well-formed NW frame. Every variant knows its byte offset in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer bytes than the shortest frame, or than LENGTH announces.
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The first two bytes are not `4E 57`.
    BadStart {
        /// The bytes found.
        found: [u8; 2],
    },
    /// LENGTH is below the minimum or above [`MAX_FRAME_LEN`] - 2.
    BadLength {
        /// The LENGTH field.
        declared: u16,
    },
    /// LENGTH does not match the number of bytes given (for a single-frame parse).
    LengthMismatch {
        /// The LENGTH field.
        declared: u16,
        /// Total bytes given.
        actual: usize,
    },
    /// The byte before the checksum is not `68`.
    BadEnd {
        /// The byte found.
        found: u8,
        /// Its offset.
        offset: usize,
    },
    /// The two high checksum bytes ("CRC16, not enabled") are not zero.
    ChecksumHighNotZero {
        /// The value found.
        found: u16,
        /// Its offset.
        offset: usize,
    },
    /// The byte sum does not match.
    Checksum {
        /// What the bytes sum to.
        expected: u16,
        /// What the frame says.
        received: u16,
        /// Offset of the low checksum bytes.
        offset: usize,
    },
}

impl FrameError {
    /// Byte offset of the offending field within the frame.
    pub fn offset(&self) -> usize {
        match *self {
            FrameError::Truncated { len, .. } => len,
            FrameError::BadStart { .. } => field::STX.start,
            FrameError::BadLength { .. } | FrameError::LengthMismatch { .. } => field::LENGTH.start,
            FrameError::BadEnd { offset, .. }
            | FrameError::ChecksumHighNotZero { offset, .. }
            | FrameError::Checksum { offset, .. } => offset,
        }
    }

    /// A short stable name for statistics ("checksum", "bad_end", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            FrameError::Truncated { .. } => "truncated",
            FrameError::BadStart { .. } => "bad_start",
            FrameError::BadLength { .. } => "bad_length",
            FrameError::LengthMismatch { .. } => "length_mismatch",
            FrameError::BadEnd { .. } => "bad_end",
            FrameError::ChecksumHighNotZero { .. } => "checksum_high_not_zero",
            FrameError::Checksum { .. } => "checksum",
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::Truncated { len, needed } => {
                write!(f, "truncated frame: {len} bytes, need {needed}")
            }
            FrameError::BadStart { found } => {
                write!(
                    f,
                    "bad start: expected 4E 57, got {:02X} {:02X}",
                    found[0], found[1]
                )
            }
            FrameError::BadLength { declared } => write!(
                f,
                "bad LENGTH 0x{declared:04X}: a frame is {MIN_FRAME_LEN}..={MAX_FRAME_LEN} bytes"
            ),
            FrameError::LengthMismatch { declared, actual } => write!(
                f,
                "LENGTH 0x{declared:04X} announces {} bytes, got {actual}",
                usize::from(declared) + 2
            ),
            FrameError::BadEnd { found, offset } => {
                write!(
                    f,
                    "bad end byte at offset {offset}: expected 0x68, got 0x{found:02X}"
                )
            }
            FrameError::ChecksumHighNotZero { found, offset } => write!(
                f,
                "checksum high bytes at offset {offset} are 0x{found:04X}, expected 0x0000"
            ),
            FrameError::Checksum {
                expected, received, ..
            } => {
                write!(
                    f,
                    "checksum error: expected 0x{expected:04X}, got 0x{received:04X}"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FrameError {}

/// The low 16 bits of the plain byte sum, as the NW checksum is defined.
pub fn checksum(bytes: &[u8]) -> u16 {
    // Summing in chunks into u32 lanes lets the compiler vectorise; 64 bytes of at most 255
    // cannot overflow a u32 lane.
    let mut total: u32 = 0;
    let mut chunks = bytes.chunks_exact(64);
    for chunk in &mut chunks {
        total = total.wrapping_add(chunk.iter().map(|&b| u32::from(b)).sum::<u32>());
    }
    for &b in chunks.remainder() {
        total = total.wrapping_add(u32::from(b));
    }
    total as u16
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Checks start, LENGTH (against `available` bytes) and bounds of a frame prefix. Returns the
/// total frame length announced. Shared by [`Frame::new_checked`] and the deframer.
pub(crate) fn announced_len(bytes: &[u8]) -> Result<usize, FrameError> {
    if bytes.len() < field::LENGTH.end {
        return Err(FrameError::Truncated {
            len: bytes.len(),
            needed: MIN_FRAME_LEN,
        });
    }
    if bytes[field::STX] != STX {
        return Err(FrameError::BadStart {
            found: [bytes[0], bytes[1]],
        });
    }
    let declared = be16(bytes, field::LENGTH.start);
    let total = usize::from(declared) + 2;
    if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&total) {
        return Err(FrameError::BadLength { declared });
    }
    Ok(total)
}

/// Checks end byte and checksum of exactly one frame (`bytes.len()` = announced length).
pub(crate) fn check_trailer(bytes: &[u8]) -> Result<(), FrameError> {
    let len = bytes.len();
    let end = bytes[field::end(len)];
    if end != END {
        return Err(FrameError::BadEnd {
            found: end,
            offset: field::end(len),
        });
    }
    let expected = checksum(&bytes[..field::checksum_high(len).start]);
    let received = be16(bytes, field::checksum_low(len).start);
    if expected != received {
        return Err(FrameError::Checksum {
            expected,
            received,
            offset: field::checksum_low(len).start,
        });
    }
    let high = be16(bytes, field::checksum_high(len).start);
    if high != 0 {
        return Err(FrameError::ChecksumHighNotZero {
            found: high,
            offset: field::checksum_high(len).start,
        });
    }
    Ok(())
}

/// A zero-copy view of one checked NW frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps exactly one frame after checking start, LENGTH, end byte and checksum.
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        let bytes = buffer.as_ref();
        let total = announced_len(bytes)?;
        if total != bytes.len() {
            if bytes.len() < total {
                return Err(FrameError::Truncated {
                    len: bytes.len(),
                    needed: total,
                });
            }
            let declared = be16(bytes, field::LENGTH.start);
            return Err(FrameError::LengthMismatch {
                declared,
                actual: bytes.len(),
            });
        }
        check_trailer(bytes)?;
        Ok(Frame { buffer })
    }

    /// Wraps bytes the deframer has already checked.
    pub(crate) fn new_trusted(buffer: T) -> Self {
        Frame { buffer }
    }

    /// The whole frame.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Total length in bytes.
    #[allow(clippy::len_without_is_empty)] // a checked frame is never empty
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// The terminal id.
    pub fn terminal_id(&self) -> TerminalId {
        TerminalId::from_be(be32(self.as_bytes(), field::TERMINAL.start))
    }

    /// The raw command byte.
    pub fn command_byte(&self) -> u8 {
        self.as_bytes()[field::COMMAND]
    }

    /// The raw frame source byte.
    pub fn source_byte(&self) -> u8 {
        self.as_bytes()[field::SOURCE]
    }

    /// The raw transport type byte.
    pub fn transport_byte(&self) -> u8 {
        self.as_bytes()[field::TRANSPORT]
    }

    /// The info field (may be empty).
    pub fn info(&self) -> &[u8] {
        &self.as_bytes()[field::info(self.len())]
    }

    /// Offset of the info field within the frame.
    pub const INFO_OFFSET: usize = field::INFO_START;

    /// The record number.
    pub fn record_number(&self) -> RecordNumber {
        RecordNumber::from_be(be32(self.as_bytes(), field::record(self.len()).start))
    }

    /// The checksum as received (low 16 bits).
    pub fn checksum(&self) -> u16 {
        be16(self.as_bytes(), field::checksum_low(self.len()).start)
    }

    /// The parsed header; fails on a command, source or transport byte outside the protocol.
    pub fn header(&self) -> Result<Header, HeaderError> {
        Ok(Header {
            terminal: self.terminal_id(),
            command: Command::try_from(self.command_byte())?,
            source: Source::try_from(self.source_byte())?,
            transport: Transport::try_from(self.transport_byte())?,
            record: self.record_number(),
        })
    }
}

/// A header byte outside the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// Command byte (offset 8) is not 01, 02, 03, 05 or 06.
    UnknownCommand(u8),
    /// Frame source byte (offset 9) is not 00..03.
    UnknownSource(u8),
    /// Transport type byte (offset 10) is not 00..02.
    UnknownTransport(u8),
}

impl HeaderError {
    /// Byte offset of the offending field.
    pub fn offset(&self) -> usize {
        match self {
            HeaderError::UnknownCommand(_) => field::COMMAND,
            HeaderError::UnknownSource(_) => field::SOURCE,
            HeaderError::UnknownTransport(_) => field::TRANSPORT,
        }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = self.offset();
        match self {
            HeaderError::UnknownCommand(b) => {
                write!(f, "unknown command 0x{b:02X} at offset {offset}")
            }
            HeaderError::UnknownSource(b) => {
                write!(f, "unknown frame source 0x{b:02X} at offset {offset}")
            }
            HeaderError::UnknownTransport(b) => {
                write!(f, "unknown transport type 0x{b:02X} at offset {offset}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HeaderError {}

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident, $error:ident { $($(#[$vdoc:meta])* $variant:ident = $value:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $value,)*
        }

        impl TryFrom<u8> for $name {
            type Error = HeaderError;
            fn try_from(byte: u8) -> Result<Self, HeaderError> {
                match byte {
                    $($value => Ok($name::$variant),)*
                    other => Err(HeaderError::$error(other)),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                value as u8
            }
        }
    };
}

wire_enum!(
    /// The command byte (offset 8). A reply echoes the request's command.
    Command, UnknownCommand {
        /// 01: wake a dormant BMS.
        Activate = 0x01,
        /// 02: write one identifier (after a pair-code frame).
        Write = 0x02,
        /// 03: read one identifier (00 = all).
        Read = 0x03,
        /// 05: pair code / password before a write; real BMSes do not answer it.
        PairCode = 0x05,
        /// 06: read all.
        ReadAll = 0x06,
    }
);

wire_enum!(
    /// Who sent the frame (offset 9).
    Source, UnknownSource {
        /// 00: the BMS.
        Bms = 0x00,
        /// 01: Bluetooth.
        Bluetooth = 0x01,
        /// 02: GPS / 4G data box.
        DataBox = 0x02,
        /// 03: PC / upper computer (bench tools, gateway).
        Pc = 0x03,
    }
);

wire_enum!(
    /// Transport type (offset 10).
    Transport, UnknownTransport {
        /// 00: a request from the controller.
        Request = 0x00,
        /// 01: a response.
        Response = 0x01,
        /// 02: an active upload initiated by the BMS or its data box.
        ActiveUpload = 0x02,
    }
);

/// Terminal id: a standby (management) byte and a 24-bit terminal number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TerminalId {
    /// Management / standby number (default 0).
    pub standby: u8,
    number: u32,
}

impl TerminalId {
    /// The largest terminal number (24 bits).
    pub const MAX_NUMBER: u32 = 0x00FF_FFFF;

    /// A terminal id; `None` if `number` does not fit 24 bits.
    pub fn new(standby: u8, number: u32) -> Option<TerminalId> {
        (number <= Self::MAX_NUMBER).then_some(TerminalId { standby, number })
    }

    /// The 24-bit terminal number.
    pub fn number(self) -> u32 {
        self.number
    }

    /// From the four wire bytes as a big-endian u32.
    pub fn from_be(raw: u32) -> TerminalId {
        TerminalId {
            standby: (raw >> 24) as u8,
            number: raw & Self::MAX_NUMBER,
        }
    }

    /// To the four wire bytes as a big-endian u32.
    pub fn to_be(self) -> u32 {
        (u32::from(self.standby) << 24) | self.number
    }
}

impl fmt::Display for TerminalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}", self.to_be())
    }
}

/// Record number: a random byte (reserved for encryption) and a 24-bit sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordNumber {
    /// Random code, reserved for encryption.
    pub random: u8,
    sequence: u32,
}

impl RecordNumber {
    /// The largest sequence (24 bits).
    pub const MAX_SEQUENCE: u32 = 0x00FF_FFFF;

    /// A record number; the sequence wraps to 24 bits.
    pub fn new(random: u8, sequence: u32) -> RecordNumber {
        RecordNumber {
            random,
            sequence: sequence & Self::MAX_SEQUENCE,
        }
    }

    /// The 24-bit sequence.
    pub fn sequence(self) -> u32 {
        self.sequence
    }

    /// From the four wire bytes as a big-endian u32.
    pub fn from_be(raw: u32) -> RecordNumber {
        RecordNumber {
            random: (raw >> 24) as u8,
            sequence: raw & Self::MAX_SEQUENCE,
        }
    }

    /// To the four wire bytes as a big-endian u32.
    pub fn to_be(self) -> u32 {
        (u32::from(self.random) << 24) | self.sequence
    }
}

impl fmt::Display for RecordNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}", self.to_be())
    }
}

/// The parsed fixed fields of a frame (everything but the info field and checksum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Terminal id.
    pub terminal: TerminalId,
    /// Command.
    pub command: Command,
    /// Frame source.
    pub source: Source,
    /// Transport type.
    pub transport: Transport,
    /// Record number.
    pub record: RecordNumber,
}

impl Header {
    /// A request header from a controller with zero terminal id and record number, as every
    /// captured controller sends.
    pub fn request(command: Command, source: Source) -> Header {
        Header {
            terminal: TerminalId::default(),
            command,
            source,
            transport: Transport::Request,
            record: RecordNumber::default(),
        }
    }

    /// The header of the BMS's reply to a request with this header: same command, terminal and
    /// record number, source BMS, transport response.
    pub fn reply(&self) -> Header {
        Header {
            source: Source::Bms,
            transport: Transport::Response,
            ..*self
        }
    }
}

/// The caller's buffer is too small for the frame being emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall {
    /// Bytes the frame needs so far.
    pub needed: usize,
    /// Bytes the buffer has.
    pub capacity: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frame needs {} bytes, buffer holds {}",
            self.needed, self.capacity
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BufferTooSmall {}

/// Emits one frame into a caller's buffer: header first, then info bytes, then
/// [`finish`](FrameBuilder::finish) writes the trailer and checksum. No allocation.
///
/// ```
/// use bmslink_proto::frame::{Command, FrameBuilder, Header, Source};
/// let mut buf = [0u8; 64];
/// let mut builder = FrameBuilder::new(&mut buf, Header::request(Command::ReadAll, Source::Pc))?;
/// builder.push(&[0x00])?;
/// let frame = builder.finish()?;
/// assert_eq!(frame.len(), 21);
/// assert_eq!(&frame[frame.len() - 2..], &[0x01, 0x29]);
/// # Ok::<(), bmslink_proto::frame::BufferTooSmall>(())
/// ```
pub struct FrameBuilder<'b> {
    buffer: &'b mut [u8],
    len: usize,
    record: RecordNumber,
}

impl<'b> FrameBuilder<'b> {
    /// Starts a frame with `header` in `buffer`.
    pub fn new(buffer: &'b mut [u8], header: Header) -> Result<Self, BufferTooSmall> {
        let capacity = buffer.len();
        let needed = field::INFO_START;
        let head = buffer
            .get_mut(..needed)
            .ok_or(BufferTooSmall { needed, capacity })?;
        head[field::STX].copy_from_slice(&STX);
        head[field::TERMINAL].copy_from_slice(&header.terminal.to_be().to_be_bytes());
        head[field::COMMAND] = header.command.into();
        head[field::SOURCE] = header.source.into();
        head[field::TRANSPORT] = header.transport.into();
        Ok(FrameBuilder {
            buffer,
            len: needed,
            record: header.record,
        })
    }

    /// Appends raw info bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Result<&mut Self, BufferTooSmall> {
        let end = self.len + bytes.len();
        let capacity = self.buffer.len();
        let slot = self.buffer.get_mut(self.len..end).ok_or(BufferTooSmall {
            needed: end + field::TRAILER_LEN,
            capacity,
        })?;
        slot.copy_from_slice(bytes);
        self.len = end;
        Ok(self)
    }

    /// Appends an identifier and its already-encoded value.
    pub fn push_field(
        &mut self,
        id: crate::Identifier,
        value: &[u8],
    ) -> Result<&mut Self, BufferTooSmall> {
        self.push(&[id.code()])?.push(value)
    }

    /// Bytes of info written so far.
    pub fn info_len(&self) -> usize {
        self.len - field::INFO_START
    }

    /// Writes record number, end byte, LENGTH and checksum; returns the finished frame.
    pub fn finish(self) -> Result<&'b [u8], BufferTooSmall> {
        let total = self.len + field::TRAILER_LEN;
        let capacity = self.buffer.len();
        if total > capacity || total > MAX_FRAME_LEN {
            return Err(BufferTooSmall {
                needed: total,
                capacity: capacity.min(MAX_FRAME_LEN),
            });
        }
        let frame = &mut self.buffer[..total];
        frame[field::LENGTH].copy_from_slice(&((total - 2) as u16).to_be_bytes());
        frame[field::record(total)].copy_from_slice(&self.record.to_be().to_be_bytes());
        frame[field::end(total)] = END;
        frame[field::checksum_high(total)].copy_from_slice(&[0, 0]);
        let sum = checksum(&frame[..field::checksum_high(total).start]);
        frame[field::checksum_low(total)].copy_from_slice(&sum.to_be_bytes());
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vector R01: the canonical read-all request.
    const R01: [u8; 21] = [
        0x4E, 0x57, 0x00, 0x13, 0x00, 0x00, 0x00, 0x00, 0x06, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x68, 0x00, 0x00, 0x01, 0x29,
    ];

    #[test]
    fn deconstruct_read_all_request() {
        let frame = Frame::new_checked(&R01[..]).unwrap();
        let header = frame.header().unwrap();
        assert_eq!(header.command, Command::ReadAll);
        assert_eq!(header.source, Source::Pc);
        assert_eq!(header.transport, Transport::Request);
        assert_eq!(header.terminal, TerminalId::default());
        assert_eq!(frame.info(), &[0x00]);
        assert_eq!(frame.checksum(), 0x0129);
    }

    #[test]
    fn construct_read_all_request() {
        let mut buf = [0u8; 32];
        let mut builder =
            FrameBuilder::new(&mut buf, Header::request(Command::ReadAll, Source::Pc)).unwrap();
        builder.push(&[0x00]).unwrap();
        assert_eq!(builder.finish().unwrap(), &R01[..]);
    }

    #[test]
    fn terminal_and_record_round_trip_in_their_fields() {
        let header = Header {
            terminal: TerminalId::new(0x12, 0x345678).unwrap(),
            command: Command::Read,
            source: Source::DataBox,
            transport: Transport::ActiveUpload,
            record: RecordNumber::new(0x9A, 0xBCDEF0),
        };
        let mut buf = [0u8; 32];
        let mut builder = FrameBuilder::new(&mut buf, header).unwrap();
        builder.push(&[0x85, 0x40]).unwrap();
        let bytes = builder.finish().unwrap();
        assert_eq!(&bytes[4..8], &[0x12, 0x34, 0x56, 0x78]);
        assert_eq!(&bytes[13..17], &[0x9A, 0xBC, 0xDE, 0xF0]);
        let frame = Frame::new_checked(bytes).unwrap();
        assert_eq!(frame.header().unwrap(), header);
        assert_eq!(TerminalId::new(0, 0x0100_0000), None);
    }

    #[test]
    fn checked_view_rejects_each_structural_fault_with_its_offset() {
        let mut bad_start = R01;
        bad_start[1] = 0x58;
        assert_eq!(
            Frame::new_checked(&bad_start[..]),
            Err(FrameError::BadStart {
                found: [0x4E, 0x58]
            })
        );

        let mut bad_end = R01;
        bad_end[16] = 0x69;
        bad_end[20] = 0x2A; // keep the sum right so only the end byte is wrong
        assert_eq!(
            Frame::new_checked(&bad_end[..]),
            Err(FrameError::BadEnd {
                found: 0x69,
                offset: 16
            })
        );

        let mut bad_sum = R01;
        bad_sum[20] = 0x28;
        let err = Frame::new_checked(&bad_sum[..]).unwrap_err();
        assert_eq!(
            err,
            FrameError::Checksum {
                expected: 0x0129,
                received: 0x0128,
                offset: 19
            }
        );
        assert_eq!(
            err.to_string(),
            "checksum error: expected 0x0129, got 0x0128"
        );

        let mut high = R01;
        high[18] = 0x01;
        assert!(matches!(
            Frame::new_checked(&high[..]),
            Err(FrameError::ChecksumHighNotZero {
                found: 0x0001,
                offset: 17
            })
        ));

        assert_eq!(
            Frame::new_checked(&R01[..20]),
            Err(FrameError::Truncated {
                len: 20,
                needed: 21
            })
        );
        let mut long = [0u8; 22];
        long[..21].copy_from_slice(&R01);
        assert_eq!(
            Frame::new_checked(&long[..]),
            Err(FrameError::LengthMismatch {
                declared: 0x13,
                actual: 22
            })
        );
        let mut tiny = R01;
        tiny[3] = 0x05;
        assert_eq!(
            Frame::new_checked(&tiny[..]),
            Err(FrameError::BadLength { declared: 5 })
        );
    }

    #[test]
    fn unknown_header_bytes_are_typed_errors() {
        let mut buf = [0u8; 32];
        let builder =
            FrameBuilder::new(&mut buf, Header::request(Command::ReadAll, Source::Pc)).unwrap();
        let bytes: std::vec::Vec<u8> = builder.finish().unwrap().to_vec();
        let mut odd = bytes.clone();
        odd[8] = 0x04;
        let sum = checksum(&odd[..16]);
        odd[18..20].copy_from_slice(&sum.to_be_bytes()); // keep the checksum valid
        let frame = Frame::new_checked(&odd[..]).unwrap();
        let err = frame.header().unwrap_err();
        assert_eq!(err, HeaderError::UnknownCommand(0x04));
        assert_eq!(err.offset(), 8);
    }

    #[test]
    fn builder_refuses_a_small_buffer_without_panicking() {
        let mut buf = [0u8; 15];
        let mut builder =
            FrameBuilder::new(&mut buf, Header::request(Command::Read, Source::Pc)).unwrap();
        builder.push(&[0x83]).unwrap();
        assert!(builder.finish().is_err());
        let mut tiny = [0u8; 4];
        assert!(FrameBuilder::new(&mut tiny, Header::request(Command::Read, Source::Pc)).is_err());
    }
}
