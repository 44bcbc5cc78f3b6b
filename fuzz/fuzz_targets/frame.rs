//! Single-frame parsing and value handling on arbitrary bytes.
//!
//! 1. `Message::parse` on the whole input, and again on the input with its framing (start,
//!    LENGTH, end byte, checksum) overwritten to be valid, so that mutated frames reach the
//!    header, info and value parsers. On success every value of a data frame is decoded
//!    (`Info::values`), checked against `Value::decode` of its field bytes and `Info::get`,
//!    formatted with `Display`, and encoded back where its range allows (the bytes must come back
//!    unchanged, except a switch byte other than 0/1, which decodes to a bool); a request is
//!    emitted again and must parse to the same request. On error the error formats and its
//!    offset lies within the input.
//! 2. `Value::parse` for an identifier chosen by the first byte, with the rest as (lossy) UTF-8
//!    text. If it parses, `WriteValue::new` must either succeed or return a typed error; on
//!    success the encoded bytes decode (`Value::decode`) to the same value and encode to the same
//!    bytes again, and the write request round-trips through a frame.

#![no_main]

use std::fmt::Write as _;

use bmslink_proto::frame::{checksum, Command, Header, Source, MAX_FRAME_LEN, MIN_FRAME_LEN};
use bmslink_proto::{
    Body, CurrentEncoding, Frame, Identifier, Message, Request, Value, WriteValue, TABLE,
};
use libfuzzer_sys::fuzz_target;

fn check_message(data: &[u8], message: &Message<'_>) {
    let mut text = String::new();
    let _ = write!(
        text,
        "{} {} {:?}",
        message.header.terminal, message.header.record, message.header
    );
    match message.body {
        Body::Data(info) => {
            let encoding = info.current_encoding();
            let mut count = 0;
            for (field, (id, value)) in info.fields().zip(info.values()) {
                count += 1;
                assert_eq!(field.id, id);
                assert!(field.offset < data.len());
                let decoded = Value::decode(id, field.bytes, encoding)
                    .unwrap_or_else(|e| panic!("checked field {id:?} does not decode: {e}"));
                assert_eq!(decoded, value, "decode and values() disagree on {id:?}");
                assert_eq!(info.get(id), Some(value), "get({id:?})");
                let _ = writeln!(text, "{} = {value}", id.name());
                match value {
                    Value::CellVoltages(cells) => {
                        let _ = (cells.len(), cells.is_empty(), cells.min(), cells.max());
                    }
                    Value::Text(t) => {
                        let _ = (t.as_str(), t.trimmed());
                    }
                    Value::Temperature(t) => {
                        let _ = t.celsius();
                    }
                    Value::Current(c) => {
                        let _ = c.milliamps();
                    }
                    _ => {}
                }
                let mut out = [0u8; 256];
                match value.encode(id, &mut out) {
                    Ok(len) => {
                        let lossy_switch =
                            matches!(value, Value::Switch(_)) && field.bytes.first() > Some(&1);
                        if !lossy_switch {
                            assert_eq!(&out[..len], field.bytes, "{id:?} does not re-encode");
                        }
                    }
                    Err(e) => {
                        let _ = e.to_string();
                    }
                }
            }
            assert_eq!(count, info.len(), "fields walked vs Info::len");
            assert_eq!(info.fields().count(), info.len());
        }
        Body::WriteAck { id, value } => {
            let _ = write!(text, "{} {:?}", id.name(), value);
        }
        Body::Request(request) => {
            let _ = write!(text, "{request:?} {}", request.expects_reply());
            let mut buffer = [0u8; 1100];
            let emitted = request
                .emit(message.header, &mut buffer)
                .unwrap_or_else(|e| panic!("parsed request {request:?} does not emit: {e}"));
            let again = Message::parse(emitted)
                .unwrap_or_else(|e| panic!("emitted request {request:?} does not parse: {e}"));
            assert_eq!(
                again.body,
                Body::Request(request),
                "request does not round-trip"
            );
        }
    }
}

fn check_value_parse(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let id = TABLE[usize::from(selector) % TABLE.len()].id;
    let text = String::from_utf8_lossy(rest);
    let _ = Identifier::lookup(&text);
    let parsed = Value::parse(id, &text);
    let via_write_value = WriteValue::parse(id, &text);
    let value = match parsed {
        Ok(value) => value,
        Err(e) => {
            let _ = e.to_string();
            assert_eq!(
                via_write_value,
                Err(e),
                "WriteValue::parse and Value::parse disagree"
            );
            return;
        }
    };
    let _ = value.to_string();
    let written = WriteValue::new(id, &value);
    assert_eq!(
        written, via_write_value,
        "WriteValue::parse vs Value::parse + WriteValue::new"
    );
    let write = match written {
        Ok(write) => write,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let bytes = write.bytes();
    assert_eq!(write.id(), id);
    assert!(write.matches(bytes));
    for encoding in [CurrentEncoding::Offset10000, CurrentEncoding::SignMagnitude] {
        let decoded = Value::decode(id, bytes, encoding)
            .unwrap_or_else(|e| panic!("{id:?}: written bytes {bytes:02X?} do not decode: {e}"));
        match (value, decoded) {
            (Value::Text(a), Value::Text(b)) => {
                assert_eq!(a.raw(), b.trimmed(), "{id:?}: text does not round-trip")
            }
            (a, b) => assert_eq!(
                a, b,
                "{id:?}: value does not round-trip through {bytes:02X?}"
            ),
        }
        let again = WriteValue::new(id, &decoded)
            .unwrap_or_else(|e| panic!("{id:?}: decoded {decoded:?} does not re-encode: {e}"));
        assert_eq!(
            again.bytes(),
            bytes,
            "{id:?}: encode -> decode -> encode changed the bytes"
        );
    }
    let mut buffer = [0u8; 64];
    let request = write.request();
    let frame = request
        .emit(Header::request(Command::Write, Source::Pc), &mut buffer)
        .unwrap_or_else(|e| panic!("write of {id:?} does not emit: {e}"));
    let message =
        Message::parse(frame).unwrap_or_else(|e| panic!("write of {id:?} does not parse: {e}"));
    assert_eq!(
        message.body,
        Body::Request(Request::Write { id, value: bytes })
    );
}

/// The input made into a well-framed frame: start bytes, LENGTH, end byte and checksum
/// overwritten. Random bytes almost never carry a right byte sum, so without this the header,
/// info and value parsers would see few inputs.
fn with_valid_framing(data: &[u8]) -> Option<Vec<u8>> {
    if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&data.len()) {
        return None;
    }
    let mut frame = data.to_vec();
    let len = frame.len();
    frame[..2].copy_from_slice(&[0x4E, 0x57]);
    frame[2..4].copy_from_slice(&((len - 2) as u16).to_be_bytes());
    frame[len - 5] = 0x68;
    frame[len - 4..len - 2].copy_from_slice(&[0, 0]);
    let sum = checksum(&frame[..len - 4]);
    frame[len - 2..].copy_from_slice(&sum.to_be_bytes());
    Some(frame)
}

fn check_parse(data: &[u8]) {
    match Message::parse(data) {
        Ok(message) => {
            check_message(data, &message);
            let frame = Frame::new_checked(data).expect("parsed bytes are a checked frame");
            assert_eq!(Message::from_frame(frame), Ok(message));
            let _ = (
                frame.info(),
                frame.checksum(),
                frame.record_number(),
                frame.len(),
            );
        }
        Err(error) => {
            let _ = (error.to_string(), error.kind());
            assert!(
                error.offset() <= data.len(),
                "error offset past the input: {error:?}"
            );
            if let Ok(frame) = Frame::new_checked(data) {
                // A framing-valid input that fails to parse: header or info error.
                let _ = frame.header().map_err(|e| e.to_string());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_parse(data);
    if let Some(framed) = with_valid_framing(data) {
        assert!(
            Frame::new_checked(framed.as_slice()).is_ok(),
            "fixed-up framing rejected"
        );
        check_parse(&framed);
    }
    check_value_parse(data);
});
