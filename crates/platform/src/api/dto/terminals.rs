//! The fleet, terminals, their telemetry and history, and alarms.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

use super::{RegistrationName, ResolutionName};
use crate::model::{Alarm, AlarmKind, HistoryPoint, TelemetryRow, TerminalRecord};

/// A terminal as the platform knows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TerminalView {
    /// The terminal number, 6 hex digits.
    #[schema(example = "0003E8")]
    pub terminal: String,
    /// The name an operator gave it.
    pub name: Option<String>,
    /// Registration.
    pub registration: RegistrationName,
    /// Connected now (to any platform process).
    pub online: bool,
    /// First connection, ms since the epoch.
    pub first_seen: i64,
    /// Last frame received, ms since the epoch.
    pub last_seen: i64,
    /// Active alarms.
    pub active_alarms: u32,
}

impl TerminalView {
    /// The view of a record with its active alarm count.
    pub fn new(record: &TerminalRecord, active_alarms: u32) -> TerminalView {
        TerminalView {
            terminal: record.terminal.to_string(),
            name: record.name.clone(),
            registration: record.registration.into(),
            online: record.online,
            first_seen: record.first_seen.millis(),
            last_seen: record.last_seen.millis(),
            active_alarms,
        }
    }
}

/// Temperatures, degC (absent when not reported).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Temperatures {
    /// Power tube (MOSFET), 0x80.
    pub mosfet: Option<i16>,
    /// Battery box, 0x81.
    #[serde(rename = "box")]
    pub box_sensor: Option<i16>,
    /// Battery, 0x82.
    pub battery: Option<i16>,
}

/// Bit flags with the names of the bits set.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Flags {
    /// The 16 bits.
    pub bits: u16,
    /// Lower-case names of the bits set ("cell_over_voltage").
    pub names: Vec<String>,
}

impl Flags {
    fn warnings(bits: u16) -> Flags {
        let flags = bmslink_proto::Warnings::from_bits_retain(bits);
        Flags::named(bits, bmslink_proto::value::flag_names(flags))
    }

    fn status(bits: u16) -> Flags {
        let flags = bmslink_proto::Status::from_bits_retain(bits);
        Flags::named(bits, bmslink_proto::value::flag_names(flags))
    }

    fn named<'a>(bits: u16, names: impl Iterator<Item = &'a str>) -> Flags {
        Flags {
            bits,
            names: names.map(str::to_ascii_lowercase).collect(),
        }
    }
}

/// The values of one upload, without the cell list and frame.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct LatestSummary {
    /// When the platform received it, ms since the epoch.
    pub at: i64,
    /// The frame's record sequence number.
    pub record: u32,
    /// Pack voltage, mV.
    pub voltage_mv: u32,
    /// Current, mA, positive = charging.
    pub current_ma: i32,
    /// Power, W, positive = charging.
    pub power_w: f64,
    /// State of charge, %.
    pub soc: u8,
    /// Temperatures, degC.
    pub temperatures: Temperatures,
    /// Number of cells.
    pub cell_count: usize,
    /// Lowest cell voltage, mV.
    pub cell_min_mv: Option<u16>,
    /// Highest cell voltage, mV.
    pub cell_max_mv: Option<u16>,
    /// Highest minus lowest, mV.
    pub cell_spread_mv: Option<u16>,
    /// 0x8B warning bits.
    pub warnings: Flags,
    /// 0x8C status bits (MOSFETs, balancer).
    pub status: Flags,
}

impl From<&TelemetryRow> for LatestSummary {
    fn from(row: &TelemetryRow) -> LatestSummary {
        let min = row.cells_mv.iter().copied().min();
        let max = row.cells_mv.iter().copied().max();
        let [mosfet, box_sensor, battery] = row.temperatures;
        LatestSummary {
            at: row.at.millis(),
            record: row.record,
            voltage_mv: row.voltage_mv,
            current_ma: row.current_ma,
            power_w: row.power_w(),
            soc: row.soc,
            temperatures: Temperatures {
                mosfet,
                box_sensor,
                battery,
            },
            cell_count: row.cells_mv.len(),
            cell_min_mv: min,
            cell_max_mv: max,
            cell_spread_mv: min.zip(max).map(|(min, max)| max.saturating_sub(min)),
            warnings: Flags::warnings(row.warnings),
            status: Flags::status(row.status),
        }
    }
}

/// One line of the fleet list.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct FleetItem {
    /// The terminal.
    #[serde(flatten)]
    pub terminal: TerminalView,
    /// Its latest upload's values, if it ever uploaded.
    pub latest: Option<LatestSummary>,
}

/// Counts over the whole fleet (before filters).
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct FleetCounts {
    /// Terminals known.
    pub terminals: usize,
    /// Connected now.
    pub online: usize,
    /// Not connected.
    pub offline: usize,
    /// With at least one active alarm.
    pub with_alarms: usize,
    /// Active alarms in all.
    pub active_alarms: u64,
    /// Waiting for approval.
    pub pending: usize,
}

/// A page of the fleet list.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct FleetPage {
    /// Counts over the whole fleet.
    pub counts: FleetCounts,
    /// Terminals matching the filters (before paging).
    pub total: usize,
    /// First item's index among them.
    pub offset: usize,
    /// Most items in this page.
    pub limit: usize,
    /// The page.
    pub terminals: Vec<FleetItem>,
}

/// One upload's values, with every cell voltage.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TelemetryView {
    /// The values.
    #[serde(flatten)]
    pub summary: LatestSummary,
    /// Every cell voltage, mV, in cell order.
    pub cells_mv: Vec<u16>,
}

impl From<&TelemetryRow> for TelemetryView {
    fn from(row: &TelemetryRow) -> TelemetryView {
        TelemetryView {
            summary: row.into(),
            cells_mv: row.cells_mv.clone(),
        }
    }
}

/// One identifier's value in a decoded frame (the shape of `bmslink decode --json`).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct DecodedValue {
    /// Identifier name (the key it is listed under).
    #[serde(skip)]
    pub name: String,
    /// Identifier byte, `0x90`.
    #[schema(example = "0x90")]
    pub code: String,
    /// The value in engineering units: number, text, bool, or list (cell volts, flag names).
    pub value: Value,
    /// Unit symbol, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The value as on the wire (integer, hex text, or list), where it differs.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

/// Decoded values in wire order, as a JSON object keyed by identifier name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodedValues(pub Vec<DecodedValue>);

impl Serialize for DecodedValues {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for value in &self.0 {
            map.serialize_entry(&value.name, value)?;
        }
        map.end()
    }
}

/// One terminal: its record, latest upload and that upload's every value, decoded.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TerminalDetail {
    /// The terminal.
    #[serde(flatten)]
    pub terminal: TerminalView,
    /// Its latest upload, if any.
    pub latest: Option<TelemetryView>,
    /// Every value of the latest upload's frame, keyed by identifier name (for viewers, the
    /// 0xB2 password masked).
    #[schema(value_type = std::collections::HashMap<String, DecodedValue>)]
    pub values: DecodedValues,
}

/// A terminal's latest frame as received, and decoded.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct LatestFrame {
    /// The terminal.
    #[schema(example = "0003E8")]
    pub terminal: String,
    /// When it was received, ms since the epoch.
    pub at: i64,
    /// Record sequence number.
    pub record: u32,
    /// Frame length, bytes.
    pub length: usize,
    /// The whole frame, hex, upper case, bytes separated by spaces (for viewers, the 0xB2
    /// password's bytes are `**`).
    pub hex: String,
    /// Every value, keyed by identifier name.
    #[schema(value_type = std::collections::HashMap<String, DecodedValue>)]
    pub values: DecodedValues,
    /// Why the frame could not be decoded (it was stored for audit anyway), if it could not.
    pub decode_error: Option<String>,
}

/// One point of a history.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct HistoryPointView {
    /// Start of the bucket (or the upload's time), ms since the epoch.
    pub at: i64,
    /// Uploads in the bucket (1 for raw).
    pub samples: u32,
    /// Mean voltage, mV.
    pub voltage_mv: f64,
    /// Mean current, mA.
    pub current_ma: f64,
    /// Mean power, W.
    pub power_w: f64,
    /// Mean SOC, %.
    pub soc: f64,
    /// Lowest temperature, degC.
    pub temperature_min: Option<i16>,
    /// Highest temperature, degC.
    pub temperature_max: Option<i16>,
    /// Lowest cell voltage, mV.
    pub cell_min_mv: Option<u16>,
    /// Highest cell voltage, mV.
    pub cell_max_mv: Option<u16>,
    /// Energy charged, Wh.
    pub charged_wh: f64,
    /// Energy discharged, Wh.
    pub discharged_wh: f64,
}

impl From<&HistoryPoint> for HistoryPointView {
    fn from(point: &HistoryPoint) -> HistoryPointView {
        HistoryPointView {
            at: point.at.millis(),
            samples: point.samples,
            voltage_mv: point.voltage_mv,
            current_ma: point.current_ma,
            power_w: point.power_w,
            soc: point.soc,
            temperature_min: point.temperature_min,
            temperature_max: point.temperature_max,
            cell_min_mv: point.cell_min_mv,
            cell_max_mv: point.cell_max_mv,
            charged_wh: point.charged_wh,
            discharged_wh: point.discharged_wh,
        }
    }
}

/// A terminal's history.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct HistoryView {
    /// The terminal.
    #[schema(example = "0003E8")]
    pub terminal: String,
    /// Range start (inclusive), ms since the epoch.
    pub from: i64,
    /// Range end (exclusive), ms since the epoch.
    pub to: i64,
    /// Resolution.
    pub resolution: ResolutionName,
    /// The points, oldest first.
    pub points: Vec<HistoryPointView>,
}

/// A new name for a terminal.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminalRename {
    /// The name (`null` or empty clears it); at most 64 characters.
    #[schema(max_length = 64)]
    pub name: Option<String>,
}

/// An operator's registration decision.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationDecision {
    /// `approved` or `rejected` (or `pending` to undo a decision).
    pub registration: RegistrationName,
}

// --- Alarms ----------------------------------------------------------------------------------

/// An alarm.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AlarmView {
    /// Alarm id.
    pub id: i64,
    /// The terminal.
    #[schema(example = "0003E8")]
    pub terminal: String,
    /// What raised it: `bms` (a BMS warning bit), `offline`, `cell_spread`,
    /// `temperature_rise`, `soc_low`.
    pub kind: String,
    /// For `bms` alarms, the warning bit's name.
    pub warning: Option<String>,
    /// The value that raised it, in words.
    pub detail: String,
    /// Raised, ms since the epoch.
    pub started: i64,
    /// Cleared, ms since the epoch (`null`: active).
    pub ended: Option<i64>,
    /// Not cleared yet.
    pub active: bool,
    /// How long it lasted (until now while active), ms.
    pub duration_ms: i64,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When, ms since the epoch.
    pub acknowledged_at: Option<i64>,
}

/// An alarm kind as the API names it: `kind` (`bms`, `offline`, ...) and, for BMS alarms, the
/// warning bit's name.
pub(crate) fn alarm_kind_words(kind: &AlarmKind) -> (&'static str, Option<&str>) {
    match kind {
        AlarmKind::Bms(name) => ("bms", Some(name.as_str())),
        AlarmKind::Offline => ("offline", None),
        AlarmKind::CellSpread => ("cell_spread", None),
        AlarmKind::TemperatureRise => ("temperature_rise", None),
        AlarmKind::SocLow => ("soc_low", None),
    }
}

impl AlarmView {
    /// The view of an alarm at `now` (ms since the epoch).
    pub fn new(alarm: &Alarm, now: i64) -> AlarmView {
        let (kind, warning) = alarm_kind_words(&alarm.kind);
        let end = alarm.ended.map_or(now, |t| t.millis());
        AlarmView {
            id: alarm.id,
            terminal: alarm.terminal.to_string(),
            kind: kind.to_string(),
            warning: warning.map(str::to_string),
            detail: alarm.detail.clone(),
            started: alarm.started.millis(),
            ended: alarm.ended.map(|t| t.millis()),
            active: alarm.ended.is_none(),
            duration_ms: end.saturating_sub(alarm.started.millis()).max(0),
            acknowledged_by: alarm.acknowledged.as_ref().map(|(who, _)| who.clone()),
            acknowledged_at: alarm.acknowledged.as_ref().map(|(_, at)| at.millis()),
        }
    }
}
