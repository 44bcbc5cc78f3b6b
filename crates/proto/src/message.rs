//! Messages: what a checked frame means, by command and transport type.
//!
//! | transport | command           | info                              | body                 |
//! |-----------|-------------------|-----------------------------------|----------------------|
//! | request   | 06 read all       | empty or `00`                     | `Request::ReadAll`   |
//! | request   | 03 read           | one identifier, `00` = all        | `Request::Read`      |
//! | request   | 02 write          | identifier + value                | `Request::Write`     |
//! | request   | 05 pair code      | `00 00`, `B2 00`, or `B2` + 10 B  | `Request::PairCode`  |
//! | request   | 01 activate       | anything (ignored)                | `Request::Activate`  |
//! | response  | 02 write          | the identifier (+ value)          | `Body::WriteAck`     |
//! | response / upload | any       | identifier + value pairs, or `00` | `Body::Data`         |
//!
//! Real BMSes do not answer the pair-code frame (`nw.md`, "Commands and exchanges").

use core::fmt;

use crate::frame::{
    BufferTooSmall, Command, Frame, FrameBuilder, FrameError, Header, HeaderError, Transport,
};
use crate::ident::Identifier;
use crate::info::{Info, InfoError};
use crate::value::{FixedText, Value, ValueError, MAX_FIXED_VALUE_LEN};

/// Length of the password field 0xB2.
pub const PASSWORD_LEN: usize = 10;

/// A controller's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// 01: wake a dormant BMS.
    Activate,
    /// 06 (or 03 with identifier 00): every identifier.
    ReadAll,
    /// 03: one identifier.
    Read(Identifier),
    /// 05: the pair code before a write, with the 0xB2 password when the controller sends one.
    PairCode {
        /// The password bytes (10, NUL padded), or `None` for the `00 00` form.
        password: Option<FixedText<'a>>,
    },
    /// 02: write one identifier; `value` is already encoded and of the table's length.
    Write {
        /// The identifier.
        id: Identifier,
        /// Encoded value bytes.
        value: &'a [u8],
    },
}

impl Request<'_> {
    /// The command byte this request is sent with.
    pub fn command(&self) -> Command {
        match self {
            Request::Activate => Command::Activate,
            Request::ReadAll => Command::ReadAll,
            Request::Read(_) => Command::Read,
            Request::PairCode { .. } => Command::PairCode,
            Request::Write { .. } => Command::Write,
        }
    }

    /// Whether a BMS answers this request (it does not answer the pair code).
    pub fn expects_reply(&self) -> bool {
        !matches!(self, Request::PairCode { .. })
    }

    /// Emits this request as a frame into `buffer` with the given header fields (the header's
    /// command is replaced by the request's own).
    pub fn emit<'b>(
        &self,
        header: Header,
        buffer: &'b mut [u8],
    ) -> Result<&'b [u8], BufferTooSmall> {
        let header = Header {
            command: self.command(),
            transport: Transport::Request,
            ..header
        };
        let mut builder = FrameBuilder::new(buffer, header)?;
        match *self {
            Request::Activate | Request::ReadAll => builder.push(&[0x00])?,
            Request::Read(id) => builder.push(&[id.code()])?,
            Request::PairCode { password: None } => builder.push(&[0x00, 0x00])?,
            Request::PairCode {
                password: Some(password),
            } => {
                let mut padded = [0u8; PASSWORD_LEN];
                let raw = password.raw();
                let len = raw.len().min(PASSWORD_LEN);
                padded[..len].copy_from_slice(&raw[..len]);
                builder.push_field(Identifier::Password, &padded)?
            }
            Request::Write { id, value } => builder.push_field(id, value)?,
        };
        builder.finish()
    }
}

/// An encoded value ready to be written: the identifier and its value bytes, owned, checked
/// against the table's access and range. No allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteValue {
    id: Identifier,
    len: u8,
    bytes: [u8; MAX_FIXED_VALUE_LEN],
}

impl WriteValue {
    /// Encodes `value` for a write of `id`; fails if `id` is read-only or the value is out of
    /// range or of the wrong kind.
    pub fn new(id: Identifier, value: &Value<'_>) -> Result<WriteValue, ValueError> {
        if !id.info().is_writable() {
            return Err(ValueError::NotWritable { id });
        }
        let mut bytes = [0u8; MAX_FIXED_VALUE_LEN];
        let len = value.encode(id, &mut bytes)?;
        Ok(WriteValue {
            id,
            len: len as u8,
            bytes,
        })
    }

    /// Parses engineering-unit text and encodes it (see [`Value::parse`]).
    pub fn parse(id: Identifier, text: &str) -> Result<WriteValue, ValueError> {
        WriteValue::new(id, &Value::parse(id, text)?)
    }

    /// The identifier.
    pub fn id(&self) -> Identifier {
        self.id
    }

    /// The encoded value bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The write request carrying this value.
    pub fn request(&self) -> Request<'_> {
        Request::Write {
            id: self.id,
            value: self.bytes(),
        }
    }

    /// Whether `bytes` (a read-back value) equals what was written.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.bytes() == bytes
    }
}

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// A controller's request.
    Request(Request<'a>),
    /// Data: a reply to a read or read-all, an active upload, or an empty acknowledgement.
    Data(Info<'a>),
    /// A BMS's reply to a write, naming the identifier (and its value, if the BMS sends it).
    WriteAck {
        /// The identifier written.
        id: Identifier,
        /// The value bytes, if present.
        value: Option<&'a [u8]>,
    },
}

/// A parsed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Header fields.
    pub header: Header,
    /// What it carries.
    pub body: Body<'a>,
}

/// A request whose info field does not fit its command. Offsets are from the frame start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// A read or write with no identifier.
    MissingIdentifier {
        /// Offset where the identifier should be.
        offset: usize,
    },
    /// An identifier byte outside the table.
    UnknownIdentifier {
        /// The byte.
        id: u8,
        /// Its offset.
        offset: usize,
    },
    /// A write whose value is not of the identifier's length.
    ValueLength {
        /// The identifier.
        id: Identifier,
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        actual: usize,
        /// Offset of the value.
        offset: usize,
    },
    /// A read request with more than one identifier.
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
    },
}

impl RequestError {
    /// Byte offset of the fault within the frame.
    pub fn offset(&self) -> usize {
        match *self {
            RequestError::MissingIdentifier { offset }
            | RequestError::UnknownIdentifier { offset, .. }
            | RequestError::ValueLength { offset, .. }
            | RequestError::TrailingBytes { offset } => offset,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RequestError::MissingIdentifier { offset } => {
                write!(f, "request without an identifier at offset {offset}")
            }
            RequestError::UnknownIdentifier { id, offset } => {
                write!(f, "unknown identifier 0x{id:02X} at offset {offset}")
            }
            RequestError::ValueLength {
                id,
                expected,
                actual,
                offset,
            } => write!(
                f,
                "write of {} at offset {offset}: value is {actual} bytes, expected {expected}",
                id.name()
            ),
            RequestError::TrailingBytes { offset } => {
                write!(
                    f,
                    "unexpected bytes after the identifier at offset {offset}"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RequestError {}

/// Any reason bytes are not a valid NW message. Every variant knows its byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Framing: start, LENGTH, end byte or checksum.
    Frame(FrameError),
    /// A header byte outside the protocol.
    Header(HeaderError),
    /// A malformed info field in a reply or upload.
    Info(InfoError),
    /// A malformed request.
    Request(RequestError),
}

impl Error {
    /// Byte offset of the fault within the frame.
    pub fn offset(&self) -> usize {
        match self {
            Error::Frame(e) => e.offset(),
            Error::Header(e) => e.offset(),
            Error::Info(e) => e.offset(),
            Error::Request(e) => e.offset(),
        }
    }

    /// A short stable name for statistics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Frame(e) => e.kind(),
            Error::Header(HeaderError::UnknownCommand(_)) => "unknown_command",
            Error::Header(HeaderError::UnknownSource(_)) => "unknown_source",
            Error::Header(_) => "unknown_transport",
            Error::Info(e) => e.kind(),
            Error::Request(_) => "bad_request",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Frame(e) => e.fmt(f),
            Error::Header(e) => e.fmt(f),
            Error::Info(e) => e.fmt(f),
            Error::Request(e) => e.fmt(f),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        Error::Frame(e)
    }
}
impl From<HeaderError> for Error {
    fn from(e: HeaderError) -> Self {
        Error::Header(e)
    }
}
impl From<InfoError> for Error {
    fn from(e: InfoError) -> Self {
        Error::Info(e)
    }
}
impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        Error::Request(e)
    }
}

impl<'a> Message<'a> {
    /// Checks and parses exactly one frame.
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>, Error> {
        Message::from_frame(Frame::new_checked(bytes)?)
    }

    /// Parses a checked frame.
    pub fn from_frame(frame: Frame<&'a [u8]>) -> Result<Message<'a>, Error> {
        let header = frame.header()?;
        let info = &frame.into_inner()[Frame::<&[u8]>::INFO_OFFSET..];
        let info = &info[..info.len() - 9];
        let base = Frame::<&[u8]>::INFO_OFFSET;
        let body = match (header.transport, header.command) {
            (Transport::Request, command) => Body::Request(parse_request(command, info, base)?),
            (Transport::Response, Command::Write) => parse_write_ack(info, base)?,
            (_, _) if info == [0x00] => Body::Data(Info::parse(&[], base)?),
            (_, _) => Body::Data(Info::parse(info, base)?),
        };
        Ok(Message { header, body })
    }
}

fn known_identifier(info: &[u8], at: usize, base: usize) -> Result<Identifier, RequestError> {
    let code = *info
        .get(at)
        .ok_or(RequestError::MissingIdentifier { offset: base + at })?;
    Identifier::from_u8(code).ok_or(RequestError::UnknownIdentifier {
        id: code,
        offset: base + at,
    })
}

fn parse_request(command: Command, info: &[u8], base: usize) -> Result<Request<'_>, RequestError> {
    Ok(match command {
        Command::Activate => Request::Activate,
        Command::ReadAll => Request::ReadAll,
        Command::Read => match info {
            [] | [0x00] => Request::ReadAll,
            [_] => Request::Read(known_identifier(info, 0, base)?),
            _ => return Err(RequestError::TrailingBytes { offset: base + 1 }),
        },
        Command::PairCode => match info {
            [0xB2, password @ ..] if password.len() == PASSWORD_LEN => Request::PairCode {
                password: Some(FixedText::new(password)),
            },
            _ => Request::PairCode { password: None },
        },
        Command::Write => {
            let id = known_identifier(info, 0, base)?;
            let value = &info[1..];
            let expected = id.info().fixed_len().unwrap_or(0);
            if value.len() != expected || expected == 0 {
                return Err(RequestError::ValueLength {
                    id,
                    expected,
                    actual: value.len(),
                    offset: base + 1,
                });
            }
            Request::Write { id, value }
        }
    })
}

fn parse_write_ack(info: &[u8], base: usize) -> Result<Body<'_>, Error> {
    let id = known_identifier(info, 0, base)?;
    let value = &info[1..];
    if value.is_empty() {
        return Ok(Body::WriteAck { id, value: None });
    }
    // With a value, it must be exactly one well-formed pair.
    let checked = Info::parse(info, base)?;
    if checked.len() != 1 {
        return Err(RequestError::TrailingBytes {
            offset: base + 1 + id.info().fixed_len().unwrap_or(0),
        }
        .into());
    }
    Ok(Body::WriteAck {
        id,
        value: Some(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Source;

    fn emit(request: Request<'_>) -> std::vec::Vec<u8> {
        let mut buf = [0u8; 64];
        request
            .emit(
                Header::request(request.command(), Source::DataBox),
                &mut buf,
            )
            .unwrap()
            .to_vec()
    }

    #[test]
    fn requests_round_trip_through_their_frames() {
        let write = WriteValue::parse(Identifier::ChargeMosfetSwitch, "off").unwrap();
        let password = FixedText::new(b"123456\0\0\0\0");
        for request in [
            Request::Activate,
            Request::ReadAll,
            Request::Read(Identifier::TotalVoltage),
            Request::PairCode { password: None },
            Request::PairCode {
                password: Some(password),
            },
            write.request(),
        ] {
            let bytes = emit(request);
            let message = Message::parse(&bytes).unwrap();
            assert_eq!(message.body, Body::Request(request), "{request:?}");
        }
    }

    #[test]
    fn write_request_matches_vector_r07() {
        // R07: 4E 57 00 14 00 00 00 00 02 02 00 AB 00 00 00 00 00 68 00 00 01 D0
        let write = WriteValue::parse(Identifier::ChargeMosfetSwitch, "0").unwrap();
        let bytes = emit(write.request());
        assert_eq!(&bytes[bytes.len() - 2..], &[0x01, 0xD0]);
        assert_eq!(bytes.len(), 22);
    }

    #[test]
    fn read_only_identifiers_cannot_be_written() {
        assert_eq!(
            WriteValue::parse(Identifier::Soc, "50"),
            Err(ValueError::NotWritable {
                id: Identifier::Soc
            })
        );
    }

    #[test]
    fn write_ack_with_and_without_value() {
        let mut buf = [0u8; 64];
        let header = Header::request(Command::Write, Source::Bms).reply();
        for info in [&[0xABu8][..], &[0xAB, 0x01][..]] {
            let mut builder = FrameBuilder::new(&mut buf, header).unwrap();
            builder.push(info).unwrap();
            let bytes = builder.finish().unwrap().to_vec();
            let message = Message::parse(&bytes).unwrap();
            let Body::WriteAck { id, value } = message.body else {
                panic!("{message:?}")
            };
            assert_eq!(id, Identifier::ChargeMosfetSwitch);
            assert_eq!(value, info.get(1..).filter(|v| !v.is_empty()));
        }
    }

    #[test]
    fn malformed_write_requests_are_typed_errors() {
        let mut buf = [0u8; 64];
        let mut builder =
            FrameBuilder::new(&mut buf, Header::request(Command::Write, Source::Pc)).unwrap();
        builder.push(&[0x90, 0x0E]).unwrap(); // 0x90 needs two bytes
        let bytes = builder.finish().unwrap().to_vec();
        assert_eq!(
            Message::parse(&bytes),
            Err(Error::Request(RequestError::ValueLength {
                id: Identifier::CellOverVoltageProtection,
                expected: 2,
                actual: 1,
                offset: 12
            }))
        );
    }
}
