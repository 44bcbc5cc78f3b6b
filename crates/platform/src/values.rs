//! NW values as JSON, one shape everywhere (`bmslink read --json`, the platform's command
//! results and its API): every field is an object with `value` in engineering units (number,
//! string, bool or list), `unit` where there is one, and `raw` as on the wire, keyed by the
//! identifier table's snake_case name.

use bmslink_proto::value::flag_names;
use bmslink_proto::{CurrentEncoding, Identifier, Info, Unit, Value};
use serde_json::{json, Map, Value as Json};

/// Every value of an info field, keyed by identifier name, in wire order.
pub fn info_json(info: &Info<'_>) -> Json {
    let mut fields = Map::new();
    for (id, value) in info.values() {
        fields.insert(id.name().to_string(), value_json(&value));
    }
    Json::Object(fields)
}

/// The value bytes of one identifier as JSON (`null` if absent or undecodable).
pub fn field_json(id: Identifier, bytes: Option<&[u8]>) -> Json {
    bytes
        .and_then(|bytes| Value::decode(id, bytes, CurrentEncoding::SignMagnitude).ok())
        .map_or(Json::Null, |value| value_json(&value))
}

/// One value in engineering units: `{"value", "unit"?, "raw"?}`.
pub fn value_json(value: &Value<'_>) -> Json {
    let (value, unit, raw) = value_parts(value);
    let mut object = Map::new();
    object.insert("value".into(), value);
    if let Some(unit) = unit {
        object.insert("unit".into(), json!(unit));
    }
    if !raw.is_null() {
        object.insert("raw".into(), raw);
    }
    Json::Object(object)
}

/// (engineering value, unit, raw) of a value; raw is `null` where it adds nothing (switches).
pub fn value_parts(value: &Value<'_>) -> (Json, Option<&'static str>, Json) {
    match value {
        Value::CellVoltages(cells) => {
            let volts: Vec<f64> = cells.iter().map(|c| c.voltage.volts()).collect();
            let raw: Vec<u32> = cells.iter().map(|c| c.voltage.0).collect();
            (json!(volts), Some("V"), json!(raw))
        }
        Value::Temperature(t) => (json!(t.celsius().map(|c| c.0)), Some("°C"), json!(t.raw)),
        Value::Current(c) => (
            json!(c.milliamps().map(|ma| ma.amps())),
            Some("A"),
            json!(c.raw),
        ),
        Value::Number(n) => {
            let value = if n.decimals == 0 {
                json!(n.raw)
            } else {
                json!(n.to_f64())
            };
            let unit = (n.unit != Unit::None).then(|| n.unit.symbol());
            (value, unit, json!(n.raw))
        }
        Value::Switch(on) => (json!(on), None, Json::Null),
        Value::BatteryType(kind) => (json!(kind.name()), None, json!(kind.code())),
        Value::Warnings(w) => (json!(lower(flag_names(*w))), None, json!(w.bits())),
        Value::Status(s) => (json!(lower(flag_names(*s))), None, json!(s.bits())),
        Value::Text(text) => (json!(text.to_string()), None, json!(hex(text.raw()))),
        other => (json!(other.to_string()), None, Json::Null),
    }
}

/// Flag names in lower case ("cell_over_voltage").
pub fn lower<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    names.map(str::to_ascii_lowercase).collect()
}

/// Bytes as spaced upper-case hex ("4E 57").
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_out_in_engineering_units() {
        let json = field_json(Identifier::CellOverVoltageProtection, Some(&[0x0E, 0x10]));
        assert_eq!(json, json!({"value": 3.6, "unit": "V", "raw": 3600}));
        let json = field_json(Identifier::BalancingSwitch, Some(&[1]));
        assert_eq!(json, json!({"value": true}));
        assert_eq!(field_json(Identifier::BalancingSwitch, None), Json::Null);
        assert_eq!(hex(&[0x4E, 0x57]), "4E 57");
    }
}
