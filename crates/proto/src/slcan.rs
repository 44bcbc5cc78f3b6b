//! SLCAN (the Lawicel ASCII protocol of USB-CAN adapters: CANable, CANtact, USBtin, ...): CAN
//! frames as text lines over a serial port. Sans-I/O: [`encode`] gives the bytes of a line to
//! write, [`Decoder`] turns the adapter's bytes into [`Response`]s and typed errors.
//!
//! ```text
//! host -> adapter                        adapter -> host
//! C\r          close the channel         \r           OK (command accepted)
//! S6\r         500 kbit/s (S0..S8)       \x07         error (BEL, no \r)
//! O\r          open the channel          z\r          standard frame queued (after t)
//! tIIILDD..\r  send a standard frame     Z\r          extended frame queued (after T)
//!                                        tIIILDD..[TTTT]\r        standard frame received
//!                                        TIIIIIIIILDD..[TTTT]\r   extended frame received
//!                                        rIIIL[TTTT]\r / RIIIIIIIIL[TTTT]\r  remote frames
//!                                        Fxx\r  status flags   Vxxxx\r / Nxxxx\r  version, serial
//!
//! III: 3 hex digits, 000..7FF; IIIIIIII: 8 hex digits, up to 1FFFFFFF; L: DLC 0..8;
//! DD: one byte, 2 hex digits; TTTT: optional timestamp (ms, 0000..EA5F) when enabled.
//! ```
//!
//! Encoding writes upper-case hex; decoding accepts either case. Extended (29-bit) frames are
//! decoded but kept apart ([`Response::Extended`]): the inverter family uses 11-bit ids only, so
//! the gateway ignores them.
//!
//! The [`Decoder`] is the SLCAN counterpart of the NW deframer: push bytes in any chunks, get
//! one event per line. It holds at most `N` bytes (default [`LINE_BUFFER`]); a line longer than
//! that, or one that does not parse, is reported with its stream offset and the decoder
//! resynchronises at the next `\r`. It never panics and never allocates.

use core::fmt;

use crate::can::{CanFrame, CanId, MAX_DATA_LEN, MAX_STANDARD_ID};

/// Carriage return: ends every line.
pub const CR: u8 = b'\r';
/// BEL: the adapter's error reply.
pub const BEL: u8 = 0x07;
/// Close the channel (before changing the bit rate).
pub const CLOSE: &[u8] = b"C\r";
/// Open the channel.
pub const OPEN: &[u8] = b"O\r";
/// Set 500 kbit/s, the family's bit rate (inverter-can.md, "Bus rules").
pub const BITRATE_500K: &[u8] = b"S6\r";
/// What to write, in order, to start a 500 kbit/s session (close first, in case the adapter
/// was left open: a bit rate can only be set while closed).
pub const SETUP_500K: [&[u8]; 3] = [CLOSE, BITRATE_500K, OPEN];

/// The largest extended data line without its `\r`: `T`, 8 id digits, DLC, 16 data digits,
/// 4 timestamp digits.
pub const MAX_LINE_LEN: usize = 1 + 8 + 1 + 2 * MAX_DATA_LEN + 4;
/// Default decoder buffer: the longest valid line plus room to spare.
pub const LINE_BUFFER: usize = 32;

/// The largest 29-bit identifier.
pub const MAX_EXTENDED_ID: u32 = 0x1FFF_FFFF;

/// The standard bit rates, `S0`..`S8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bitrate {
    /// S0.
    K10,
    /// S1.
    K20,
    /// S2.
    K50,
    /// S3.
    K100,
    /// S4.
    K125,
    /// S5.
    K250,
    /// S6: the inverter family's rate.
    K500,
    /// S7.
    K800,
    /// S8.
    M1,
}

impl Bitrate {
    /// The `Sn\r` command.
    pub fn command(self) -> [u8; 3] {
        [b'S', b'0' + self as u8, CR]
    }
}

/// One encoded line (at most [`MAX_LINE_LEN`] + `\r` bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Line {
    bytes: [u8; LINE_BUFFER],
    len: usize,
}

impl Line {
    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn push_hex(&mut self, value: u32, digits: u32) {
        for shift in (0..digits).rev() {
            self.push(HEX[((value >> (4 * shift)) & 0xF) as usize]);
        }
    }

    /// The bytes to write.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The line that sends `frame`: `tIIILDD..\r`.
pub fn encode(frame: &CanFrame) -> Line {
    let mut line = Line {
        bytes: [0; LINE_BUFFER],
        len: 0,
    };
    line.push(b't');
    line.push_hex(u32::from(frame.id().raw()), 3);
    line.push_hex(frame.dlc() as u32, 1);
    for &byte in frame.data() {
        line.push_hex(u32::from(byte), 2);
    }
    line.push(CR);
    line
}

/// A received frame with a 29-bit identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtendedFrame {
    /// The identifier, up to 0x1FFFFFFF.
    pub id: u32,
    len: u8,
    data: [u8; MAX_DATA_LEN],
}

impl ExtendedFrame {
    /// The data bytes.
    pub fn data(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }
}

/// One line from the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Response {
    /// `t...`: a standard data frame, with the adapter's timestamp when enabled.
    Frame {
        /// The frame.
        frame: CanFrame,
        /// Milliseconds, when timestamps are on.
        timestamp: Option<u16>,
    },
    /// `T...`: an extended data frame (the inverter family ignores these).
    Extended {
        /// The frame.
        frame: ExtendedFrame,
        /// Milliseconds, when timestamps are on.
        timestamp: Option<u16>,
    },
    /// `r...` / `R...`: a remote (RTR) frame.
    Remote {
        /// The identifier.
        id: u32,
        /// Whether it is 29-bit.
        extended: bool,
        /// The requested length.
        dlc: u8,
        /// Milliseconds, when timestamps are on.
        timestamp: Option<u16>,
    },
    /// `z\r`: a standard frame was queued.
    Transmitted,
    /// `Z\r`: an extended frame was queued.
    TransmittedExtended,
    /// `\r` alone: the command was accepted.
    Ok,
    /// BEL: the command was refused (or the adapter's queue is full).
    Error,
    /// `Fxx`: status flags (bus errors, overruns).
    Status(u8),
    /// `Vxxxx`: hardware and software version, as sent.
    Version([u8; 4]),
    /// `Nxxxx`: serial number, as sent.
    Serial([u8; 4]),
}

/// Why a line is not a valid adapter line. Offsets count from the line's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineError {
    /// The first byte is not a known reply.
    UnknownCommand {
        /// The byte.
        found: u8,
    },
    /// A byte that should be a hex digit is not one.
    BadHex {
        /// Its offset.
        offset: usize,
        /// The byte.
        found: u8,
    },
    /// The DLC digit is above 8.
    DlcOutOfRange {
        /// Its offset.
        offset: usize,
        /// The DLC.
        found: u8,
    },
    /// An identifier above 0x7FF (`t`, `r`) or 0x1FFFFFFF (`T`, `R`).
    IdOutOfRange {
        /// The identifier.
        id: u32,
    },
    /// The line is not as long as its kind and DLC say (with or without a 4-digit timestamp).
    BadLength {
        /// Bytes expected, without a timestamp.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// No `\r` within the buffer: the line was dropped up to the next `\r`.
    TooLong {
        /// Bytes dropped, including the `\r`.
        len: u64,
    },
    /// A BEL arrived in the middle of a line: the partial line was dropped.
    Interrupted {
        /// Bytes dropped.
        len: usize,
    },
}

impl LineError {
    /// Offset of the fault within the line.
    pub fn offset(&self) -> usize {
        match *self {
            LineError::BadHex { offset, .. } | LineError::DlcOutOfRange { offset, .. } => offset,
            LineError::IdOutOfRange { .. } => 1,
            _ => 0,
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LineError::UnknownCommand { found } => {
                write!(f, "unknown SLCAN line starting with 0x{found:02X}")
            }
            LineError::BadHex { offset, found } => {
                write!(f, "byte {offset} = 0x{found:02X} is not a hex digit")
            }
            LineError::DlcOutOfRange { offset, found } => {
                write!(f, "DLC {found} at byte {offset} is above 8")
            }
            LineError::IdOutOfRange { id } => write!(f, "identifier 0x{id:X} is out of range"),
            LineError::BadLength { expected, found } => write!(
                f,
                "line of {found} bytes, expected {expected} (or {} with a timestamp)",
                expected + 4
            ),
            LineError::TooLong { len } => write!(f, "line of {len} bytes without \\r dropped"),
            LineError::Interrupted { len } => {
                write!(f, "BEL after {len} bytes of a line: partial line dropped")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LineError {}

/// A line error at a position in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlcanError {
    /// What was wrong.
    pub error: LineError,
    /// Offset of the line's first byte in the stream.
    pub stream_offset: u64,
}

impl fmt::Display for SlcanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (line at stream offset {})",
            self.error, self.stream_offset
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SlcanError {}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

/// The hex number in `line[at..at + digits]` (the caller checked the length).
fn hex_value(line: &[u8], at: usize, digits: usize) -> Result<u32, LineError> {
    line[at..at + digits]
        .iter()
        .enumerate()
        .try_fold(0u32, |value, (index, &byte)| {
            let digit = hex_digit(byte).ok_or(LineError::BadHex {
                offset: at + index,
                found: byte,
            })?;
            Ok(value << 4 | u32::from(digit))
        })
}

/// The shape of a frame line.
#[derive(Clone, Copy)]
struct FrameKind {
    id_digits: usize,
    max_id: u32,
    remote: bool,
}

/// A frame line's parts.
struct FrameParts {
    id: u32,
    dlc: u8,
    data: [u8; MAX_DATA_LEN],
    timestamp: Option<u16>,
}

fn check_len(line: &[u8], expected: usize) -> Result<(), LineError> {
    if line.len() < expected {
        return Err(LineError::BadLength {
            expected,
            found: line.len(),
        });
    }
    Ok(())
}

fn parse_dlc(line: &[u8], at: usize) -> Result<u8, LineError> {
    check_len(line, at + 1)?;
    let dlc = hex_value(line, at, 1)? as u8;
    if usize::from(dlc) > MAX_DATA_LEN {
        return Err(LineError::DlcOutOfRange {
            offset: at,
            found: dlc,
        });
    }
    Ok(dlc)
}

fn parse_timestamp(line: &[u8], at: usize) -> Result<Option<u16>, LineError> {
    match line.len() - at {
        0 => Ok(None),
        4 => Ok(Some(hex_value(line, at, 4)? as u16)),
        _ => Err(LineError::BadLength {
            expected: at,
            found: line.len(),
        }),
    }
}

fn parse_frame(line: &[u8], kind: FrameKind) -> Result<FrameParts, LineError> {
    check_len(line, 1 + kind.id_digits)?;
    let id = hex_value(line, 1, kind.id_digits)?;
    if id > kind.max_id {
        return Err(LineError::IdOutOfRange { id });
    }
    let dlc_at = 1 + kind.id_digits;
    let dlc = parse_dlc(line, dlc_at)?;
    let data_len = if kind.remote { 0 } else { usize::from(dlc) };
    let data_at = dlc_at + 1;
    check_len(line, data_at + 2 * data_len)?;
    let mut data = [0; MAX_DATA_LEN];
    for (index, byte) in data.iter_mut().take(data_len).enumerate() {
        *byte = hex_value(line, data_at + 2 * index, 2)? as u8;
    }
    let timestamp = parse_timestamp(line, data_at + 2 * data_len)?;
    Ok(FrameParts {
        id,
        dlc,
        data,
        timestamp,
    })
}

const STANDARD: FrameKind = FrameKind {
    id_digits: 3,
    max_id: MAX_STANDARD_ID as u32,
    remote: false,
};
const EXTENDED: FrameKind = FrameKind {
    id_digits: 8,
    max_id: MAX_EXTENDED_ID,
    remote: false,
};

fn standard_frame(line: &[u8]) -> Result<Response, LineError> {
    let parts = parse_frame(line, STANDARD)?;
    let id = CanId::new(parts.id as u16).ok_or(LineError::IdOutOfRange { id: parts.id })?;
    let len = usize::from(parts.dlc);
    Ok(Response::Frame {
        frame: CanFrame::from_array(id, parts.data, len),
        timestamp: parts.timestamp,
    })
}

fn extended_frame(line: &[u8]) -> Result<Response, LineError> {
    let parts = parse_frame(line, EXTENDED)?;
    Ok(Response::Extended {
        frame: ExtendedFrame {
            id: parts.id,
            len: parts.dlc,
            data: parts.data,
        },
        timestamp: parts.timestamp,
    })
}

fn remote_frame(line: &[u8], base: FrameKind) -> Result<Response, LineError> {
    let parts = parse_frame(
        line,
        FrameKind {
            remote: true,
            ..base
        },
    )?;
    Ok(Response::Remote {
        id: parts.id,
        extended: base.id_digits == EXTENDED.id_digits,
        dlc: parts.dlc,
        timestamp: parts.timestamp,
    })
}

/// `K` followed by exactly `N` bytes.
fn fixed<const N: usize>(line: &[u8]) -> Result<[u8; N], LineError> {
    let mut out = [0; N];
    match line.get(1..) {
        Some(rest) if rest.len() == N => {
            out.copy_from_slice(rest);
            Ok(out)
        }
        _ => Err(LineError::BadLength {
            expected: 1 + N,
            found: line.len(),
        }),
    }
}

/// `Fxx`: two hex digits of status flags.
fn status(line: &[u8]) -> Result<Response, LineError> {
    fixed::<2>(line)?;
    Ok(Response::Status(hex_value(line, 1, 2)? as u8))
}

/// Parses one line, without its `\r`.
pub fn parse_line(line: &[u8]) -> Result<Response, LineError> {
    let Some(&first) = line.first() else {
        return Ok(Response::Ok);
    };
    match first {
        b't' => standard_frame(line),
        b'T' => extended_frame(line),
        b'r' => remote_frame(line, STANDARD),
        b'R' => remote_frame(line, EXTENDED),
        b'z' => fixed::<0>(line).map(|_| Response::Transmitted),
        b'Z' => fixed::<0>(line).map(|_| Response::TransmittedExtended),
        b'F' => status(line),
        b'V' => fixed::<4>(line).map(Response::Version),
        b'N' => fixed::<4>(line).map(Response::Serial),
        found => Err(LineError::UnknownCommand { found }),
    }
}

/// What the decoder has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes fed.
    pub bytes: u64,
    /// Lines (and BELs) decoded.
    pub responses: u64,
    /// Standard data frames among them.
    pub frames: u64,
    /// Extended data frames among them.
    pub extended_frames: u64,
    /// Lines rejected.
    pub errors: u64,
}

/// The streaming line decoder; `N` bytes of buffer (a longer line is dropped and reported).
#[derive(Clone, Debug)]
pub struct Decoder<const N: usize = LINE_BUFFER> {
    buffer: [u8; N],
    len: usize,
    /// Bytes of the current line that did not fit (the line is dropped at its `\r`).
    overflow: u64,
    /// Stream offset of the current line's first byte.
    line_start: u64,
    stats: Stats,
}

impl Default for Decoder<LINE_BUFFER> {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder<LINE_BUFFER> {
    /// A decoder with the default buffer.
    pub fn new() -> Self {
        Decoder::new_sized()
    }
}

impl<const N: usize> Decoder<N> {
    /// A decoder with an `N`-byte buffer.
    pub fn new_sized() -> Self {
        Decoder {
            buffer: [0; N],
            len: 0,
            overflow: 0,
            line_start: 0,
            stats: Stats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes of an unfinished line held.
    pub fn buffered(&self) -> usize {
        self.len
    }

    /// Feeds bytes in any chunking; `on_event` gets one result per completed line or BEL.
    pub fn feed(&mut self, bytes: &[u8], mut on_event: impl FnMut(Result<Response, SlcanError>)) {
        for &byte in bytes {
            self.push_byte(byte, &mut on_event);
        }
    }

    fn push_byte(&mut self, byte: u8, on_event: &mut impl FnMut(Result<Response, SlcanError>)) {
        self.stats.bytes += 1;
        match byte {
            CR => self.end_line(on_event),
            BEL => self.bell(on_event),
            // A line feed after the \r (some adapters send \r\n) is not a line.
            b'\n' if self.len == 0 && self.overflow == 0 => self.line_start += 1,
            _ if self.len < N && self.overflow == 0 => {
                self.buffer[self.len] = byte;
                self.len += 1;
            }
            _ => self.overflow += 1,
        }
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(Result<Response, SlcanError>)) {
        let result = if self.overflow > 0 {
            Err(LineError::TooLong {
                len: self.len as u64 + self.overflow + 1,
            })
        } else {
            parse_line(&self.buffer[..self.len])
        };
        self.report(result, on_event);
        self.next_line(1);
    }

    fn bell(&mut self, on_event: &mut impl FnMut(Result<Response, SlcanError>)) {
        let dropped = self.len as u64 + self.overflow;
        if dropped > 0 {
            let len = usize::try_from(dropped).unwrap_or(usize::MAX);
            self.report(Err(LineError::Interrupted { len }), on_event);
            self.next_line(0);
        }
        self.report(Ok(Response::Error), on_event);
        self.next_line(1);
    }

    fn report(
        &mut self,
        result: Result<Response, LineError>,
        on_event: &mut impl FnMut(Result<Response, SlcanError>),
    ) {
        match result {
            Ok(response) => {
                self.stats.responses += 1;
                match response {
                    Response::Frame { .. } => self.stats.frames += 1,
                    Response::Extended { .. } => self.stats.extended_frames += 1,
                    _ => {}
                }
                on_event(Ok(response));
            }
            Err(error) => {
                self.stats.errors += 1;
                on_event(Err(SlcanError {
                    error,
                    stream_offset: self.line_start,
                }));
            }
        }
    }

    /// Starts a new line after the current one and `terminator` more bytes.
    fn next_line(&mut self, terminator: u64) {
        self.line_start += self.len as u64 + self.overflow + terminator;
        self.len = 0;
        self.overflow = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::can::id;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn decode_all(bytes: &[u8]) -> Vec<Result<Response, SlcanError>> {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        decoder.feed(bytes, |event| out.push(event));
        out
    }

    fn us5000() -> CanFrame {
        CanFrame::new(
            id::LIMITS,
            &[0x14, 0x02, 0xC0, 0x12, 0xC0, 0x12, 0xC2, 0x01],
        )
        .unwrap()
    }

    #[test]
    fn setup_is_close_bitrate_open() {
        assert_eq!(SETUP_500K.concat(), b"C\rS6\rO\r");
        assert_eq!(&Bitrate::K500.command(), BITRATE_500K);
        assert_eq!(&Bitrate::K10.command(), b"S0\r");
        assert_eq!(&Bitrate::M1.command(), b"S8\r");
    }

    #[test]
    fn a_standard_frame_encodes_as_t_line() {
        assert_eq!(encode(&us5000()).as_bytes(), b"t35181402C012C012C201\r");
        let empty = CanFrame::new(id::KEEP_ALIVE, &[]).unwrap();
        assert_eq!(encode(&empty).as_bytes(), b"t3050\r");
    }

    #[test]
    fn known_lines_round_trip() {
        let line = b"t35181402C012C012C201\r";
        assert_eq!(
            decode_all(line),
            vec![Ok(Response::Frame {
                frame: us5000(),
                timestamp: None
            })]
        );
        let keep_alive = b"t30580000000000000000\r";
        let [Ok(Response::Frame { frame, .. })] = decode_all(keep_alive)[..] else {
            panic!("not one frame");
        };
        assert_eq!(encode(&frame).as_bytes(), keep_alive);
    }

    #[test]
    fn lower_case_hex_and_timestamps_are_accepted() {
        let events = decode_all(b"t35c2c000EA60\r");
        let expected = CanFrame::new(id::REQUESTS, &[0xC0, 0x00]).unwrap();
        assert_eq!(
            events,
            vec![Ok(Response::Frame {
                frame: expected,
                timestamp: Some(0xEA60)
            })]
        );
    }

    #[test]
    fn extended_and_remote_frames_are_flagged() {
        let events = decode_all(b"T1FFFFFFF2ABCD\rr3510\rR000001233\r");
        let Ok(Response::Extended { frame, timestamp }) = events[0] else {
            panic!("{:?}", events[0]);
        };
        assert_eq!(
            (frame.id, frame.data(), timestamp),
            (0x1FFF_FFFF, &[0xAB, 0xCD][..], None)
        );
        assert_eq!(
            events[1],
            Ok(Response::Remote {
                id: 0x351,
                extended: false,
                dlc: 0,
                timestamp: None
            })
        );
        assert!(matches!(
            events[2],
            Ok(Response::Remote {
                id: 0x123,
                extended: true,
                dlc: 3,
                ..
            })
        ));
    }

    #[test]
    fn acks_ok_and_bel_errors() {
        let events = decode_all(b"z\rZ\r\r\x07F00\rV1013\rN A01\r");
        assert_eq!(
            events,
            vec![
                Ok(Response::Transmitted),
                Ok(Response::TransmittedExtended),
                Ok(Response::Ok),
                Ok(Response::Error),
                Ok(Response::Status(0)),
                Ok(Response::Version(*b"1013")),
                Ok(Response::Serial(*b" A01")),
            ]
        );
    }

    #[test]
    fn bad_lines_are_typed_errors_with_offsets() {
        let cases: [(&[u8], LineError, usize); 6] = [
            (b"x123", LineError::UnknownCommand { found: b'x' }, 0),
            (
                b"t35G0",
                LineError::BadHex {
                    offset: 3,
                    found: b'G',
                },
                3,
            ),
            (
                b"t3519",
                LineError::DlcOutOfRange {
                    offset: 4,
                    found: 9,
                },
                4,
            ),
            (b"t8000", LineError::IdOutOfRange { id: 0x800 }, 1),
            (
                b"t35120",
                LineError::BadLength {
                    expected: 9,
                    found: 6,
                },
                0,
            ),
            (
                b"t351",
                LineError::BadLength {
                    expected: 5,
                    found: 4,
                },
                0,
            ),
        ];
        for (line, error, offset) in cases {
            assert_eq!(parse_line(line), Err(error), "{line:?}");
            assert_eq!(error.offset(), offset);
        }
        assert_eq!(
            parse_line(b"T200000000"),
            Err(LineError::IdOutOfRange { id: 0x2000_0000 })
        );
        assert!(matches!(
            parse_line(b"z1"),
            Err(LineError::BadLength { .. })
        ));
    }

    #[test]
    fn garbage_is_reported_and_the_next_line_decodes() {
        let stream = b"\x00garbage\rt3050\r";
        let events = decode_all(stream);
        assert_eq!(events.len(), 2);
        assert!(matches!(
            events[0],
            Err(SlcanError {
                error: LineError::UnknownCommand { found: 0 },
                stream_offset: 0
            })
        ));
        let empty = CanFrame::new(id::KEEP_ALIVE, &[]).unwrap();
        assert_eq!(
            events[1],
            Ok(Response::Frame {
                frame: empty,
                timestamp: None
            })
        );
    }

    #[test]
    fn an_overlong_line_is_dropped_up_to_the_next_cr_with_bounded_memory() {
        let mut stream = vec![b'A'; 100];
        stream.extend_from_slice(b"\rz\r");
        let mut decoder = Decoder::new();
        let mut events = Vec::new();
        decoder.feed(&stream[..50], |e| events.push(e));
        assert_eq!(decoder.buffered(), LINE_BUFFER);
        decoder.feed(&stream[50..], |e| events.push(e));
        assert_eq!(
            events,
            vec![
                Err(SlcanError {
                    error: LineError::TooLong { len: 101 },
                    stream_offset: 0
                }),
                Ok(Response::Transmitted)
            ]
        );
        assert_eq!(decoder.stats().errors, 1);
        assert_eq!(decoder.stats().responses, 1);
    }

    #[test]
    fn bel_inside_a_line_drops_the_partial_line() {
        let events = decode_all(b"t35\x07z\r");
        assert_eq!(
            events,
            vec![
                Err(SlcanError {
                    error: LineError::Interrupted { len: 3 },
                    stream_offset: 0
                }),
                Ok(Response::Error),
                Ok(Response::Transmitted),
            ]
        );
    }

    #[test]
    fn crlf_line_ends_and_offsets() {
        let mut decoder = Decoder::new();
        let mut events = Vec::new();
        decoder.feed(b"z\r\nbad\r\n", |e| events.push(e));
        assert_eq!(events[0], Ok(Response::Transmitted));
        assert!(matches!(
            events[1],
            Err(SlcanError {
                stream_offset: 3,
                ..
            })
        ));
        assert_eq!(decoder.stats().bytes, 8);
    }

    fn any_frame() -> impl Strategy<Value = CanFrame> {
        (0u16..=0x7FF, proptest::collection::vec(any::<u8>(), 0..=8)).prop_map(|(id, data)| {
            CanFrame::new(CanId::new(id).unwrap_or_default(), &data).unwrap()
        })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity_for_every_standard_frame(frame in any_frame()) {
            let events = decode_all(encode(&frame).as_bytes());
            prop_assert_eq!(events, vec![Ok(Response::Frame { frame, timestamp: None })]);
        }

        #[test]
        fn frames_survive_any_chunking_and_garbage_lines(
            frames in proptest::collection::vec(any_frame(), 1..6),
            garbage in proptest::collection::vec(
                proptest::collection::vec(any::<u8>().prop_filter("no line end", |b| *b != CR && *b != BEL && *b != b'\n'), 1..40),
                0..4,
            ),
            chunk in 1usize..9,
        ) {
            let mut stream = Vec::new();
            for (index, frame) in frames.iter().enumerate() {
                if let Some(noise) = garbage.get(index) {
                    stream.extend_from_slice(noise);
                    stream.push(CR);
                }
                stream.extend_from_slice(encode(frame).as_bytes());
            }
            let mut decoder = Decoder::new();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                decoder.feed(piece, |event| {
                    if let Ok(Response::Frame { frame, .. }) = event {
                        got.push(frame);
                    }
                });
            }
            // A garbage line can itself be a valid frame line; the real ones are all there, in order.
            let mut expected = frames.iter();
            let mut next = expected.next();
            for frame in &got {
                if Some(frame) == next {
                    next = expected.next();
                }
            }
            prop_assert!(next.is_none(), "lost a frame: {:?}", next);
            prop_assert_eq!(decoder.buffered(), 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_memory_stays_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut decoder = Decoder::new();
            decoder.feed(&bytes, |_| {});
            prop_assert!(decoder.buffered() <= LINE_BUFFER);
            prop_assert_eq!(decoder.stats().bytes, bytes.len() as u64);
        }
    }
}
