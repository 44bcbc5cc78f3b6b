//! Every frame of `data/nw-frames.txt` (real captures and documented requests, a copy of
//! `shared/vectors/nw-frames.txt`) decodes to the values written under it, and every NEGATIVE or
//! CORRUPTED frame is rejected for the reason written there.
//!
//! The expected values are read from the file's `decoded:` lines, produced by an independent
//! reference decoder, so this test checks this codec against that one field by field.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is a failed test

use std::collections::BTreeMap;

use bmslink_proto::{
    frame::FrameError, Body, Error, Frame, Identifier, Info, Message, Request, Value,
};

const VECTORS: &str = include_str!("data/nw-frames.txt");

#[derive(Debug)]
struct Vector {
    id: String,
    bytes: Vec<u8>,
    /// `decoded:` lines, keyed by their label (text before the first `:`, `=` or ` raw`).
    decoded: Vec<String>,
}

impl Vector {
    fn is_rejected(&self) -> bool {
        self.id.contains("NEGATIVE") || self.id.contains("CORRUPTED")
    }

    fn line(&self, prefix: &str) -> Option<&str> {
        self.decoded
            .iter()
            .find(|l| l.starts_with(prefix))
            .map(String::as_str)
    }
}

fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    for block in VECTORS.split("\n=== ").skip(1) {
        let mut lines = block.lines();
        let id = lines.next().unwrap().to_string();
        let mut hex = String::new();
        let mut decoded = Vec::new();
        let mut section = "";
        for line in lines {
            match line.trim_end() {
                "hex:" => section = "hex",
                "decoded:" => section = "decoded",
                l if !l.starts_with(' ') && l.ends_with(':') => section = "",
                l if l.starts_with("notes") || l.starts_with("source") || l.starts_with("kind") => {
                    section = ""
                }
                l if section == "hex" => {
                    hex.push_str(l);
                    hex.push(' ');
                }
                l if section == "decoded" => decoded.push(l.trim().to_string()),
                _ => {}
            }
        }
        let bytes = hex
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        out.push(Vector { id, bytes, decoded });
    }
    assert!(
        out.len() >= 16,
        "expected every block of the vector file, got {}",
        out.len()
    );
    out
}

fn after<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
    line[start..].split([' ', ';', ',']).next().unwrap()
}

fn hex_u32(text: &str) -> u32 {
    u32::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

/// Parses a Python bytes literal such as `b'123456\x00\x00'`.
fn python_bytes(literal: &str) -> Vec<u8> {
    let inner = literal
        .trim()
        .strip_prefix("b'")
        .unwrap()
        .strip_suffix('\'')
        .unwrap();
    let mut out = Vec::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next().unwrap() {
                'x' => {
                    let hi = chars.next().unwrap();
                    let lo = chars.next().unwrap();
                    out.push(u8::from_str_radix(&format!("{hi}{lo}"), 16).unwrap());
                }
                '\\' => out.push(b'\\'),
                '\'' => out.push(b'\''),
                other => panic!("escape {other}"),
            }
        } else {
            out.push(c as u8);
        }
    }
    out
}

fn check_framing(v: &Vector) {
    let framing = v.line("framing:").unwrap();
    let total: usize = after(framing, "total=").parse().unwrap();
    assert_eq!(v.bytes.len(), total, "{}", v.id);
    let checksum = v.line("checksum:").unwrap();
    let expected = hex_u32(after(checksum, "= ")) as u16;
    let received = hex_u32(after(checksum, "lo=")) as u16;
    let result = Frame::new_checked(&v.bytes[..]);
    if checksum.ends_with("INVALID") {
        assert!(
            v.is_rejected(),
            "{}: invalid checksum on a block not marked",
            v.id
        );
        assert_eq!(
            result.unwrap_err(),
            FrameError::Checksum {
                expected,
                received,
                offset: total - 2
            },
            "{}",
            v.id
        );
    } else {
        assert!(checksum.ends_with("VALID"));
        let frame = result.unwrap_or_else(|e| panic!("{}: {e}", v.id));
        assert_eq!(frame.checksum(), received);
    }
}

fn check_header(v: &Vector, message_header: bmslink_proto::Header) {
    let header = v.line("header:").unwrap();
    assert_eq!(
        message_header.terminal.to_be(),
        hex_u32(after(header, "terminal_id=")),
        "{}",
        v.id
    );
    assert_eq!(
        u8::from(message_header.command) as u32,
        hex_u32(after(header, "cmd="))
    );
    assert_eq!(
        u8::from(message_header.source) as u32,
        hex_u32(after(header, "src="))
    );
    assert_eq!(
        u8::from(message_header.transport) as u32,
        hex_u32(after(header, "type="))
    );
    assert_eq!(
        message_header.record.to_be(),
        hex_u32(after(header, "record_number="))
    );
}

fn number(info: &Info<'_>, id: Identifier) -> i64 {
    match info.get(id) {
        Some(Value::Number(n)) => n.raw,
        Some(Value::Switch(on)) => i64::from(on),
        Some(Value::BatteryType(t)) => i64::from(t.code()),
        other => panic!("{id:?}: {other:?}"),
    }
}

fn text(info: &Info<'_>, id: Identifier) -> Vec<u8> {
    match info.get(id) {
        Some(Value::Text(t)) => t.raw().to_vec(),
        other => panic!("{id:?}: {other:?}"),
    }
}

/// Checks the measurement lines (0x79..0x8C) of a read-all reply.
fn check_measurements(v: &Vector, info: &Info<'_>) {
    let cells_line = v.line("0x79:").unwrap();
    let mv: Vec<u32> = cells_line
        .split("mV:")
        .nth(1)
        .unwrap()
        .split('(')
        .next()
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let Some(Value::CellVoltages(cells)) = info.get(Identifier::CellVoltages) else {
        panic!()
    };
    let decoded: Vec<u32> = cells.iter().map(|c| c.voltage.0).collect();
    assert_eq!(decoded, mv, "{} cell voltages", v.id);
    let numbers: Vec<u8> = cells.iter().map(|c| c.number).collect();
    assert_eq!(numbers, (1..=mv.len() as u8).collect::<Vec<_>>());

    for (prefix, id) in [
        ("0x80", Identifier::MosfetTemperature),
        ("0x81", Identifier::BoxTemperature),
        ("0x82", Identifier::BatteryTemperature),
    ] {
        let line = v.line(prefix).unwrap();
        let raw: u16 = after(line, "raw=").parse().unwrap();
        let celsius: i16 = after(line, "-> ").parse().unwrap();
        let Some(Value::Temperature(t)) = info.get(id) else {
            panic!()
        };
        assert_eq!(t.raw, raw);
        assert_eq!(t.celsius().map(|c| c.0), Some(celsius), "{} {prefix}", v.id);
    }

    let volts: f64 = after(v.line("0x83").unwrap(), "= ").parse().unwrap();
    assert_eq!(
        number(info, Identifier::TotalVoltage),
        (volts * 100.0).round() as i64
    );

    let current_line = v.line("0x84").unwrap();
    let amps: f64 = current_line
        .split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let Some(Value::Current(current)) = info.get(Identifier::Current) else {
        panic!()
    };
    assert_eq!(current.raw as u32, hex_u32(after(current_line, "raw=")));
    assert_eq!(
        current.milliamps().unwrap().0,
        (amps * 1000.0).round() as i32,
        "{}",
        v.id
    );

    for (prefix, id) in [
        ("0x85 SOC", Identifier::Soc),
        ("0x86", Identifier::TemperatureSensorCount),
        ("0x87", Identifier::CycleCount),
        ("0x89", Identifier::TotalCycleCapacity),
        ("0x8A", Identifier::CellCount),
    ] {
        let expected: i64 = after(v.line(prefix).unwrap(), "= ").parse().unwrap();
        assert_eq!(number(info, id), expected, "{} {prefix}", v.id);
    }
    let Some(Value::Warnings(w)) = info.get(Identifier::Warnings) else {
        panic!()
    };
    assert_eq!(
        u32::from(w.bits()),
        hex_u32(after(v.line("0x8B").unwrap(), "= "))
    );
    let Some(Value::Status(s)) = info.get(Identifier::Status) else {
        panic!()
    };
    assert_eq!(
        u32::from(s.bits()),
        hex_u32(after(v.line("0x8C").unwrap(), "= "))
    );
}

/// Checks the settings, strings, protocol version and identifier order of a read-all reply.
fn check_settings(v: &Vector, info: &Info<'_>) {
    let settings = v.line("settings").unwrap().split("): ").nth(1).unwrap();
    let mut seen = BTreeMap::new();
    for pair in settings.split_whitespace() {
        let (id, value) = pair.split_once('=').unwrap();
        let id = Identifier::from_u8(u8::from_str_radix(id, 16).unwrap()).unwrap();
        assert_eq!(
            number(info, id),
            value.parse::<i64>().unwrap(),
            "{} {id}",
            v.id
        );
        seen.insert(id, ());
    }
    assert!(
        seen.len() >= 40,
        "{}: only {} settings checked",
        v.id,
        seen.len()
    );

    for (prefix, id) in [
        ("0xB2", Identifier::Password),
        ("0xB4", Identifier::DeviceId),
        ("0xB5", Identifier::ManufactureDate),
        ("0xB7", Identifier::SoftwareVersion),
        ("0xBA", Identifier::ManufacturerId),
    ] {
        let literal = v.line(prefix).unwrap().split(" = ").nth(1).unwrap();
        assert_eq!(text(info, id), python_bytes(literal), "{} {prefix}", v.id);
    }
    let version: u8 = after(v.line("0xC0").unwrap(), "= ").parse().unwrap();
    assert_eq!(info.protocol_version(), Some(version));

    let order: Vec<u8> = v
        .line("ID order:")
        .unwrap()
        .split_whitespace()
        .skip(2)
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let walked: Vec<u8> = info.fields().map(|f| f.id.code()).collect();
    assert_eq!(walked, order, "{}", v.id);
}

fn check_request(v: &Vector, request: Request<'_>) {
    let info_line = v.line("info field:").unwrap();
    let info: Vec<u8> = info_line
        .trim_start_matches("info field:")
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let expected = match (v.bytes[8], info.as_slice()) {
        (0x06, _) | (0x03, [0x00]) => Request::ReadAll,
        (0x03, [id]) => Request::Read(Identifier::from_u8(*id).unwrap()),
        (0x05, _) => Request::PairCode { password: None },
        (0x02, [id, value @ ..]) => Request::Write {
            id: Identifier::from_u8(*id).unwrap(),
            value: &v.bytes[12..12 + value.len()],
        },
        other => panic!("{}: {other:?}", v.id),
    };
    assert_eq!(request, expected, "{}", v.id);
}

#[test]
fn every_vector_decodes_to_its_written_values_or_is_rejected_for_its_reason() {
    let mut replies = 0;
    let mut requests = 0;
    let mut rejected = 0;
    for v in vectors() {
        check_framing(&v);
        match Message::parse(&v.bytes) {
            Err(Error::Frame(FrameError::Checksum { .. })) => {
                assert!(v.is_rejected(), "{}", v.id);
                rejected += 1;
                // The corrupted replies still parse structurally: only the checksum catches
                // their flipped bits, as the vector notes say.
                if v.bytes[10] == 0x01 {
                    let info = Info::parse(&v.bytes[11..v.bytes.len() - 9], 11).unwrap();
                    check_measurements(&v, &info);
                    check_settings(&v, &info);
                }
            }
            Err(e) => panic!("{}: {e}", v.id),
            Ok(message) => {
                assert!(!v.is_rejected(), "{} must be rejected", v.id);
                check_header(&v, message.header);
                match message.body {
                    Body::Data(info) => {
                        check_measurements(&v, &info);
                        check_settings(&v, &info);
                        replies += 1;
                    }
                    Body::Request(request) => {
                        check_request(&v, request);
                        requests += 1;
                    }
                    Body::WriteAck { .. } => panic!("{}: no write acks in the vectors", v.id),
                }
            }
        }
    }
    assert_eq!((replies, requests, rejected), (5, 8, 4));
}

#[test]
fn old_firmware_without_b8_to_c0_decodes_with_the_offset_current_encoding() {
    // Vector A03 cut after 0xB7, as NW_1_0_0_200428 firmware sends it, with the current set
    // to 11000 (document: 10.00 A discharge in the old encoding).
    let a03 = vectors()
        .into_iter()
        .find(|v| v.id.starts_with("A03"))
        .unwrap();
    let info = &a03.bytes[11..a03.bytes.len() - 9];
    let full = Info::parse(info, 0).unwrap();
    let offset_of = |id| full.fields().find(|f| f.id == id).unwrap().offset;
    let mut old = info[..offset_of(Identifier::StartCurrentCalibration)].to_vec();
    let current = offset_of(Identifier::Current);
    old[current + 1..current + 3].copy_from_slice(&11_000u16.to_be_bytes());
    let parsed = Info::parse(&old, 11).unwrap();
    assert_eq!(parsed.protocol_version(), None);
    let Some(Value::Current(c)) = parsed.get(Identifier::Current) else {
        panic!()
    };
    assert_eq!(c.milliamps().unwrap().0, -10_000);
    assert_eq!(
        parsed.fields().last().unwrap().id,
        Identifier::SoftwareVersion
    );
}
