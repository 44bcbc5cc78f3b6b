//! How frames and values look on a terminal (a readable table) and to programs (JSON).
//!
//! JSON field objects have the same shape for every identifier: `value` in engineering units
//! (number, string, bool or list), `unit` where there is one, and `raw` as on the wire.

use std::fmt::Write as _;

use bmslink_proto::value::flag_names;
use bmslink_proto::{
    Body, Command, CurrentEncoding, Frame, Header, Identifier, Info, Message, Request, Source,
    Transport, Value,
};
use serde_json::{json, Map, Value as Json};

use bmslink_platform::values::lower;
pub use bmslink_platform::values::{hex, value_json};

/// Which identifiers to show.
#[derive(Clone, Debug, Default)]
pub struct Selection(Option<Vec<Identifier>>);

impl Selection {
    /// Every identifier.
    pub fn all() -> Selection {
        Selection(None)
    }

    /// Only these.
    pub fn only(ids: Vec<Identifier>) -> Selection {
        Selection(if ids.is_empty() { None } else { Some(ids) })
    }

    fn includes(&self, id: Identifier) -> bool {
        self.0.as_ref().is_none_or(|ids| ids.contains(&id))
    }

    /// The chosen identifiers missing from `info`.
    pub fn missing_from(&self, info: &Info<'_>) -> Vec<Identifier> {
        let Some(ids) = &self.0 else {
            return Vec::new();
        };
        ids.iter()
            .copied()
            .filter(|id| info.get(*id).is_none())
            .collect()
    }
}

pub fn command_name(command: Command) -> &'static str {
    match command {
        Command::Activate => "activate",
        Command::Write => "write",
        Command::Read => "read",
        Command::PairCode => "pair_code",
        Command::ReadAll => "read_all",
    }
}

pub fn source_name(source: Source) -> &'static str {
    match source {
        Source::Bms => "bms",
        Source::Bluetooth => "bluetooth",
        Source::DataBox => "data_box",
        Source::Pc => "pc",
    }
}

pub fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Request => "request",
        Transport::Response => "response",
        Transport::ActiveUpload => "active_upload",
    }
}

fn header_line(header: &Header) -> String {
    format!(
        "{} {} from {} · terminal {} · record {}",
        command_name(header.command),
        transport_name(header.transport),
        source_name(header.source),
        header.terminal,
        header.record
    )
}

/// The value in engineering units as one line of text (cells as a summary).
pub fn value_text(value: &Value<'_>) -> String {
    match value {
        Value::CellVoltages(cells) => match (cells.min(), cells.max()) {
            (Some(min), Some(max)) => format!(
                "{} cells, min {} (#{}), max {} (#{}), spread {} mV",
                cells.len(),
                min.voltage,
                min.number,
                max.voltage,
                max.number,
                max.voltage.0 - min.voltage.0
            ),
            _ => "no cells".to_string(),
        },
        Value::Warnings(w) => flags_text(w.bits(), flag_names(*w)),
        Value::Status(s) => flags_text(s.bits(), flag_names(*s)),
        other => other.to_string(),
    }
}

fn flags_text<'a>(bits: u16, names: impl Iterator<Item = &'a str>) -> String {
    let names = lower(names);
    if names.is_empty() {
        format!("0x{bits:04X}")
    } else {
        format!("0x{bits:04X} ({})", names.join(", "))
    }
}

/// Lines listing each cell, eight to a line.
fn cell_lines(value: &Value<'_>) -> Vec<String> {
    let Value::CellVoltages(cells) = value else {
        return Vec::new();
    };
    let all: Vec<String> = cells
        .iter()
        .map(|c| {
            format!(
                "#{:<2} {}.{:03}",
                c.number,
                c.voltage.0 / 1000,
                c.voltage.0 % 1000
            )
        })
        .collect();
    all.chunks(8).map(|chunk| chunk.join("  ")).collect()
}

/// The selected values of an info field as JSON, keyed by identifier name.
pub fn fields_json(info: &Info<'_>, selection: &Selection) -> Json {
    let mut fields = Map::new();
    for (id, value) in info.values().filter(|(id, _)| selection.includes(*id)) {
        fields.insert(id.name().to_string(), value_json(&value));
    }
    Json::Object(fields)
}

/// The selected values of an info field as aligned table rows.
pub fn fields_table(info: &Info<'_>, selection: &Selection) -> String {
    let mut out = String::new();
    for (id, value) in info.values().filter(|(id, _)| selection.includes(*id)) {
        let label = format!("{} (0x{:02X})", id.name(), id.code());
        let _ = writeln!(out, "  {label:<44} {}", value_text(&value));
        for line in cell_lines(&value) {
            let _ = writeln!(out, "  {:<44} {line}", "");
        }
    }
    out
}

fn request_text(request: &Request<'_>) -> String {
    match request {
        Request::Activate => "activate".into(),
        Request::ReadAll => "read all".into(),
        Request::Read(id) => format!("read {id}"),
        Request::PairCode { password: Some(p) } => format!("pair code with password \"{p}\""),
        Request::PairCode { password: None } => "pair code (no password)".into(),
        Request::Write { id, value } => {
            match Value::decode(*id, value, CurrentEncoding::SignMagnitude) {
                Ok(decoded) => format!("write {id} = {}", value_text(&decoded)),
                Err(_) => format!("write {id} = {}", hex(value)),
            }
        }
    }
}

fn request_json(request: &Request<'_>) -> Json {
    match request {
        Request::Read(id) => json!({"request": "read", "identifier": id.name()}),
        Request::Write { id, value } => {
            let decoded = Value::decode(*id, value, CurrentEncoding::SignMagnitude).ok();
            json!({"request": "write", "identifier": id.name(),
                   "value": decoded.map(|v| value_json(&v)), "raw": hex(value)})
        }
        Request::PairCode { password } => {
            json!({"request": "pair_code", "password": password.map(|p| p.to_string())})
        }
        Request::Activate => json!({"request": "activate"}),
        Request::ReadAll => json!({"request": "read_all"}),
    }
}

/// One decoded frame as a JSON object.
pub fn frame_json(offset: Option<u64>, frame: &Frame<&[u8]>, selection: &Selection) -> Json {
    let mut object = json!({
        "len": frame.len(),
        "checksum": format!("0x{:04X}", frame.checksum()),
    });
    if let Some(offset) = offset {
        object["offset"] = json!(offset);
    }
    match Message::from_frame(*frame) {
        Ok(message) => {
            let h = message.header;
            object["command"] = json!(command_name(h.command));
            object["transport"] = json!(transport_name(h.transport));
            object["source"] = json!(source_name(h.source));
            object["terminal"] = json!(h.terminal.to_string());
            object["record"] = json!(h.record.to_string());
            match message.body {
                Body::Data(info) => object["fields"] = fields_json(&info, selection),
                Body::Request(request) => object["request"] = request_json(&request),
                Body::WriteAck { id, .. } => object["acknowledges"] = json!(id.name()),
            }
        }
        Err(error) => {
            object["error"] = json!(error.kind());
            object["message"] = json!(error.to_string());
            object["error_offset"] = json!(error.offset());
            object["hex"] = json!(hex(frame.as_bytes()));
        }
    }
    object
}

/// One decoded frame as readable text.
pub fn frame_table(offset: Option<u64>, frame: &Frame<&[u8]>, selection: &Selection) -> String {
    let at = offset
        .map(|o| format!(" at offset {o}"))
        .unwrap_or_default();
    let mut out = format!(
        "frame{at}: {} bytes, checksum 0x{:04X} ok\n",
        frame.len(),
        frame.checksum()
    );
    match Message::from_frame(*frame) {
        Ok(message) => {
            let _ = writeln!(out, "  {}", header_line(&message.header));
            match message.body {
                Body::Data(info) if info.is_empty() => out.push_str("  (no fields)\n"),
                Body::Data(info) => out.push_str(&fields_table(&info, selection)),
                Body::Request(request) => {
                    let _ = writeln!(out, "  {}", request_text(&request));
                }
                Body::WriteAck { id, .. } => {
                    let _ = writeln!(out, "  acknowledges the write of {id}");
                }
            }
        }
        Err(error) => {
            let _ = writeln!(
                out,
                "  malformed: {error}\n  hex: {}",
                hex(frame.as_bytes())
            );
        }
    }
    out
}
