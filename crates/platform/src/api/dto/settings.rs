//! Remote commands, settings writes and their results, and the settings schema for forms
//! (derived from the identifier table).

use bmslink_proto::ident::Encoding;
use bmslink_proto::{Access, IdentifierInfo, TABLE};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{
    AdditionalProperties, Object, ObjectBuilder, OneOf, OneOfBuilder, Schema, Type,
};
use utoipa::ToSchema;

use crate::api::decode::range_view;
use crate::model::{Command, CommandRequest, CommandState};

/// A remote command and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct CommandView {
    /// Command id.
    pub id: i64,
    /// Target terminal.
    #[schema(example = "0003E8")]
    pub terminal: String,
    /// `read_all` or `write`.
    pub op: String,
    /// For writes, the settings written (name and value; the 0xB2 password masked).
    pub settings: Vec<SettingValue>,
    /// Who issued it.
    pub issued_by: String,
    /// When, ms since the epoch.
    pub issued_at: i64,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    /// When done: the result as the listener reported it (read: the values; write: per
    /// setting).
    pub result: Option<Value>,
    /// When failed: why.
    pub reason: Option<String>,
}

impl From<&Command> for CommandView {
    fn from(command: &Command) -> CommandView {
        let (op, settings) = match &command.request {
            CommandRequest::ReadAll => ("read_all", Vec::new()),
            CommandRequest::Write { values, .. } => ("write", masked(values)),
        };
        let (state, result, reason) = match &command.state {
            CommandState::Queued => ("queued", None, None),
            CommandState::Running => ("running", None, None),
            CommandState::Done { result } => ("done", Some(result.clone()), None),
            CommandState::Failed { reason } => ("failed", None, Some(reason.clone())),
        };
        CommandView {
            id: command.id,
            terminal: command.terminal.to_string(),
            op: op.to_string(),
            settings,
            issued_by: command.issued_by.clone(),
            issued_at: command.issued_at.millis(),
            state: state.to_string(),
            result,
            reason,
        }
    }
}

/// Settings with the 0xB2 password's value masked (for the audit log and command views).
pub(crate) fn masked(values: &[(String, String)]) -> Vec<SettingValue> {
    values
        .iter()
        .map(|(name, value)| {
            let shown = if name == bmslink_proto::Identifier::Password.name() {
                "********".to_string()
            } else {
                value.clone()
            };
            SettingValue {
                name: name.clone(),
                value: shown,
            }
        })
        .collect()
}

/// A setting and its value as text.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SettingValue {
    /// Setting name.
    pub name: String,
    /// Value in engineering units.
    pub value: String,
}

/// The settings read from a device.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SettingsRead {
    /// The terminal.
    #[schema(example = "0003E8")]
    pub terminal: String,
    /// The read-all command that fetched them.
    pub command: i64,
    /// Every value the device reported, keyed by identifier name, each `{value, unit, raw}`
    /// (the 0xB2 password masked for viewers).
    #[schema(value_type = std::collections::HashMap<String, Object>)]
    pub values: Value,
}

/// Settings to write, in order.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsWrite {
    /// Setting name (or its code, `0x90`) -> value, written in the order given.
    #[schema(schema_with = settings_values_schema,
             example = json!({"cell_over_voltage_protection": "3.65", "balancing_switch": "on"}))]
    pub values: serde_json::Map<String, Value>,
    /// The BMS's parameter-change password (0xB2), if it has one: printable ASCII, at most
    /// 10 bytes.
    #[schema(max_length = 10, pattern = "^[ -~]*$")]
    pub password: Option<String>,
}

/// What became of one setting of a write (as the listener reports it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SettingOutcome {
    /// Setting name.
    pub identifier: String,
    /// Identifier byte, `0x90`.
    pub code: String,
    /// The value text as requested.
    pub requested: String,
    /// The value as encoded and sent (`{value, unit, raw}`).
    pub written: Value,
    /// The value before the write (`{value, unit, raw}`, `null` if unknown).
    pub old: Value,
    /// The value read back after the write (`null` if it could not be read).
    pub read_back: Value,
    /// Whether this setting was applied.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// The schema of a write's `values`, from the identifier table: every read/write setting as
/// an optional property taking text, a number within its range, or (switches) a boolean.
fn settings_values_schema() -> Object {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Setting name -> value, written in the order given: text in the setting's unit \
             (\"3.65\", \"3650 mV\", \"on\", \"lfp\"), a number in that unit, or a boolean \
             for switches. GET /api/settings/schema describes every setting.",
        ))
        .min_properties(Some(1))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for info in TABLE.iter().filter(|i| i.access == Access::ReadWrite) {
        object = object.property(info.name, Schema::OneOf(setting_value_schema(info)));
    }
    object.build()
}

fn setting_value_schema(info: &IdentifierInfo) -> OneOf {
    let text = |builder: ObjectBuilder| builder.schema_type(Type::String).build();
    let mut one_of = OneOfBuilder::new().description(Some(info.description));
    one_of = match info.encoding {
        Encoding::Switch => one_of
            .item(text(ObjectBuilder::new().enum_values(Some(["on", "off"]))))
            .item(ObjectBuilder::new().schema_type(Type::Boolean).build()),
        Encoding::BatteryType => one_of.item(text(
            ObjectBuilder::new().enum_values(Some(["lfp", "nmc", "lto"])),
        )),
        Encoding::Text => one_of.item(text(
            ObjectBuilder::new()
                .max_length(info.fixed_len())
                .pattern(Some("^[ -~]*$")),
        )),
        _ => one_of
            .item(text(ObjectBuilder::new().pattern(Some(NUMBER_TEXT))))
            .item(number_schema(info)),
    };
    one_of.build()
}

/// A number with an optional unit ("3.65", "-20", "3650 mV").
const NUMBER_TEXT: &str = "^ *[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+) *([A-Za-z°]{1,4})? *$";

/// A number in the setting's unit: an integer where it has no decimals, else a multiple of
/// its resolution, within its range.
fn number_schema(info: &IdentifierInfo) -> Object {
    let range = range_view(info);
    let (kind, step) = match info.decimals {
        0 => (Type::Integer, None),
        decimals => (Type::Number, Some(10f64.powi(-i32::from(decimals)))),
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .multiple_of(step)
        .minimum(range.as_ref().map(|r| r.min))
        .maximum(range.as_ref().map(|r| r.max))
        .build()
}

/// The result of a settings write.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SettingsWritten {
    /// The terminal.
    #[schema(example = "0003E8")]
    pub terminal: String,
    /// The write command.
    pub command: i64,
    /// Whether every setting was applied.
    pub ok: bool,
    /// The result per setting, in the order written.
    pub settings: Vec<SettingOutcome>,
}

/// A valid range in engineering units.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct RangeView {
    /// Smallest valid value.
    pub min: f64,
    /// Largest valid value.
    pub max: f64,
    /// Unit symbol ("" for plain numbers).
    pub unit: String,
}

/// Why one setting of a write was refused.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SettingError {
    /// The setting as named in the request.
    pub field: String,
    /// The value given.
    pub value: Value,
    /// What is wrong, in words.
    pub error: String,
    /// The valid range, for numeric settings.
    pub range: Option<RangeView>,
}

/// One read/write setting, for forms.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SettingSchema {
    /// Stable name.
    #[schema(example = "cell_over_voltage_protection")]
    pub name: String,
    /// Identifier byte, `0x90`.
    pub code: String,
    /// One-line description.
    pub description: String,
    /// `voltage`, `current`, `temperature`, `balancing`, `capacity` or `system`.
    pub group: String,
    /// `number`, `switch`, `choice` or `text`.
    pub kind: String,
    /// Unit symbol ("" for plain numbers and non-numbers).
    pub unit: String,
    /// Decimal places of the value in its unit (the step is 10^-decimals).
    pub decimals: u8,
    /// Valid range in engineering units (numbers and switches).
    pub min: Option<f64>,
    /// Valid range in engineering units.
    pub max: Option<f64>,
    /// For `choice`: the accepted values.
    pub choices: Option<Vec<String>>,
    /// For `text`: most characters (printable ASCII).
    pub max_length: Option<usize>,
}

/// A chemistry preset: the values that configure a pack for its cell type.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct PresetView {
    /// `lfp`, `nmc` or `lto`.
    pub chemistry: String,
    /// Cell count the totals are computed for.
    pub cells: u8,
    /// Capacity the current limits are computed for, Ah.
    pub capacity_ah: u32,
    /// Setting name -> value text in engineering units, ready for a settings write (the
    /// pack's identity, password, switches and calibration are not part of a preset).
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub values: serde_json::Map<String, Value>,
}

/// Every read/write setting and the chemistry presets.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SettingsSchema {
    /// The settings, in wire order.
    pub settings: Vec<SettingSchema>,
    /// Presets for LFP, NMC and LTO.
    pub presets: Vec<PresetView>,
}
