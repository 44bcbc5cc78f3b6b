//! From the identifier table and stored frames to what the API shows: decoded values (the
//! shape of `bmslink decode --json`: `value` in engineering units, `unit`, `raw`), value text
//! a settings write accepts back, and the settings schema the web app builds its forms from.
//! Nothing here retypes a name, unit, scaling or range: all come from
//! [`bmslink_proto::TABLE`].

use bmslink_proto::ident::{Encoding, Group};
use bmslink_proto::{
    Access, Body, CurrentEncoding, Identifier, IdentifierInfo, Message, Value, TABLE,
};
use serde_json::{json, Value as Json};

use super::dto::{DecodedValue, DecodedValues, RangeView, SettingSchema};
pub(crate) use crate::values::hex;
use crate::values::value_parts;

/// Every value of a stored frame, in wire order; `Err` says why the frame does not decode.
pub(crate) fn decode_frame(raw: &[u8]) -> Result<DecodedValues, String> {
    let message = Message::parse(raw).map_err(|error| error.to_string())?;
    let Body::Data(info) = message.body else {
        return Err("the frame carries no data".to_string());
    };
    Ok(DecodedValues(
        info.values()
            .map(|(id, value)| decoded(id, &value))
            .collect(),
    ))
}

fn decoded(id: Identifier, value: &Value<'_>) -> DecodedValue {
    let (value, unit, raw) = value_parts(value);
    DecodedValue {
        name: id.name().to_string(),
        code: format!("0x{:02X}", id.code()),
        value,
        unit: unit.map(str::to_string),
        raw,
    }
}

/// What stands for a hidden 0xB2 password.
pub(crate) const MASK: &str = "********";

/// A frame as hex with the bytes of its 0xB2 password value shown as `**` (for viewers: the
/// parameter-change password lets whoever knows it change settings over other links).
pub(crate) fn hex_without_password(raw: &[u8]) -> String {
    let hidden = password_bytes(raw);
    raw.iter()
        .enumerate()
        .map(|(i, b)| match &hidden {
            Some(range) if range.contains(&i) => "**".to_string(),
            _ => format!("{b:02X}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the 0xB2 value lies in a frame, if it carries one.
fn password_bytes(raw: &[u8]) -> Option<std::ops::Range<usize>> {
    let message = Message::parse(raw).ok()?;
    let Body::Data(info) = message.body else {
        return None;
    };
    let field = info.fields().find(|f| f.id == Identifier::Password)?;
    let start = field.offset + 1;
    Some(start..start + field.bytes.len())
}

impl DecodedValues {
    /// Hides the 0xB2 password's value.
    pub(crate) fn without_password(mut self) -> DecodedValues {
        for value in &mut self.0 {
            if value.name == Identifier::Password.name() {
                value.value = json!(MASK);
                value.raw = Json::Null;
            }
        }
        self
    }
}

/// Hides the 0xB2 password in a command result: a read-all's `values.password`, a write's
/// `settings[identifier = password]` (requested, written, old, read back).
pub(crate) fn hide_password(result: &mut Json) {
    let name = Identifier::Password.name();
    if let Some(value) = result.get_mut("values").and_then(|v| v.get_mut(name)) {
        *value = json!({ "value": MASK });
    }
    let Some(settings) = result.get_mut("settings").and_then(Json::as_array_mut) else {
        return;
    };
    for setting in settings {
        if setting.get("identifier").and_then(Json::as_str) == Some(name) {
            for key in ["requested", "written", "old", "read_back"] {
                if let Some(value) = setting.get_mut(key) {
                    *value = json!(MASK);
                }
            }
        }
    }
}

/// A setting's wire bytes as text that a settings write accepts back: a number in the unit
/// without the symbol ("3.650"), "on"/"off", a chemistry name, or the text.
pub(crate) fn setting_text(id: Identifier, bytes: &[u8]) -> Option<String> {
    let value = Value::decode(id, bytes, CurrentEncoding::SignMagnitude).ok()?;
    Some(match value {
        Value::Number(n) => scaled(n.raw, n.decimals),
        Value::Switch(on) => if on { "on" } else { "off" }.to_string(),
        Value::BatteryType(kind) => kind.name().to_string(),
        Value::Text(text) => text.to_string(),
        other => other.to_string(),
    })
}

/// `raw / 10^decimals`, exactly, as decimal text.
fn scaled(raw: i64, decimals: u8) -> String {
    let scale = 10u64.pow(u32::from(decimals));
    let sign = if raw < 0 { "-" } else { "" };
    let magnitude = raw.unsigned_abs();
    if decimals == 0 {
        return format!("{sign}{magnitude}");
    }
    let width = usize::from(decimals);
    format!("{sign}{}.{:0width$}", magnitude / scale, magnitude % scale)
}

/// A raw integer in engineering units.
fn engineering(raw: i64, decimals: u8) -> f64 {
    raw as f64 / 10f64.powi(i32::from(decimals))
}

/// An identifier's valid range in engineering units, for numeric ones.
pub(crate) fn range_view(info: &IdentifierInfo) -> Option<RangeView> {
    let (min, max) = info.range?;
    matches!(info.encoding, Encoding::Unsigned | Encoding::Signed).then(|| RangeView {
        min: engineering(min, info.decimals),
        max: engineering(max, info.decimals),
        unit: info.unit.symbol().to_string(),
    })
}

/// A user-interface group's name.
pub(crate) fn group_name(group: Group) -> &'static str {
    match group {
        Group::Telemetry => "telemetry",
        Group::Voltage => "voltage",
        Group::Current => "current",
        Group::Temperature => "temperature",
        Group::Balancing => "balancing",
        Group::Capacity => "capacity",
        Group::System => "system",
        Group::Command => "command",
        _ => "other",
    }
}

/// Every read/write identifier as a form field, in wire order.
pub(crate) fn settings_schema() -> Vec<SettingSchema> {
    TABLE
        .iter()
        .filter(|info| info.access == Access::ReadWrite)
        .map(setting_schema)
        .collect()
}

fn setting_schema(info: &IdentifierInfo) -> SettingSchema {
    let (kind, choices, max_length) = match info.encoding {
        Encoding::Switch => ("switch", None, None),
        Encoding::BatteryType => {
            let names = ["lfp", "nmc", "lto"].map(str::to_string).to_vec();
            ("choice", Some(names), None)
        }
        Encoding::Text => ("text", None, info.fixed_len()),
        _ => ("number", None, None),
    };
    let range = info.range.filter(|_| kind != "choice").map(|(min, max)| {
        (
            engineering(min, info.decimals),
            engineering(max, info.decimals),
        )
    });
    SettingSchema {
        name: info.name.to_string(),
        code: format!("0x{:02X}", info.id.code()),
        description: info.description.to_string(),
        group: group_name(info.group).to_string(),
        kind: kind.to_string(),
        unit: info.unit.symbol().to_string(),
        decimals: info.decimals,
        min: range.map(|(min, _)| min),
        max: range.map(|(_, max)| max),
        choices,
        max_length,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use bmslink_proto::{vectors, WriteValue};

    #[test]
    fn a_real_reply_decodes_with_units_and_raw_values() {
        let frame = vectors::bytes("A03").unwrap();
        let values = decode_frame(&frame).unwrap().0;
        let soc = values.iter().find(|v| v.name == "soc").unwrap();
        assert_eq!(
            (soc.value.clone(), soc.unit.clone()),
            (json!(15), Some("%".into()))
        );
        let ovp = values
            .iter()
            .find(|v| v.name == "cell_over_voltage_protection")
            .unwrap();
        assert_eq!(ovp.code, "0x90");
        assert_eq!(ovp.value, json!(3.65));
        assert_eq!(ovp.raw, json!(3650));
        assert!(decode_frame(&frame[..10]).is_err());
    }

    #[test]
    fn setting_text_is_accepted_back_by_a_write_for_every_setting() {
        let frame = vectors::bytes("A03").unwrap();
        let message = Message::parse(&frame).unwrap();
        let Body::Data(info) = message.body else {
            panic!("not data")
        };
        for field in info.fields() {
            if field.id.info().access != Access::ReadWrite {
                continue;
            }
            let text = setting_text(field.id, field.bytes).unwrap();
            let write = WriteValue::parse(field.id, &text)
                .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", field.id));
            assert!(write.matches(field.bytes), "{}: {text:?}", field.id);
        }
    }

    #[test]
    fn the_schema_lists_every_read_write_identifier_with_its_range() {
        let schema = settings_schema();
        let rw = TABLE
            .iter()
            .filter(|i| i.access == Access::ReadWrite)
            .count();
        assert_eq!(schema.len(), rw);
        let ovp = schema
            .iter()
            .find(|s| s.name == "cell_over_voltage_protection")
            .unwrap();
        assert_eq!((ovp.min, ovp.max), (Some(1.0), Some(4.5)));
        assert_eq!((ovp.unit.as_str(), ovp.decimals), ("V", 3));
        assert_eq!(ovp.group, "voltage");
        let chemistry = schema.iter().find(|s| s.name == "battery_type").unwrap();
        assert_eq!(chemistry.kind, "choice");
        let password = schema.iter().find(|s| s.name == "password").unwrap();
        assert_eq!(
            (password.kind.as_str(), password.max_length),
            ("text", Some(10))
        );
        assert!(schema.iter().all(|s| s.group != "command"));
    }

    #[test]
    fn the_password_is_hidden_from_decoded_values_hex_and_results() {
        let frame = vectors::bytes("A03").unwrap();
        let values = decode_frame(&frame).unwrap().without_password().0;
        let password = values.iter().find(|v| v.name == "password").unwrap();
        assert_eq!(
            (password.value.clone(), password.raw.clone()),
            (json!(MASK), Json::Null)
        );
        let hidden = hex_without_password(&frame);
        assert_eq!(hidden.matches("**").count(), 10);
        assert_eq!(hidden.len(), hex(&frame).len());
        let mut read = json!({"values": {"password": {"value": "123456"}, "soc": {"value": 5}}});
        hide_password(&mut read);
        assert_eq!(read["values"]["password"]["value"], MASK);
        assert_eq!(read["values"]["soc"]["value"], 5);
        let mut write = json!({"settings": [{"identifier": "password", "requested": "1"}]});
        hide_password(&mut write);
        assert_eq!(write["settings"][0]["requested"], MASK);
    }

    #[test]
    fn scaled_text_is_exact() {
        assert_eq!(scaled(3650, 3), "3.650");
        assert_eq!(scaled(-20, 0), "-20");
        assert_eq!(scaled(5, 2), "0.05");
        assert_eq!(scaled(-5, 2), "-0.05");
    }
}
