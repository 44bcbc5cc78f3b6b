//! A device's settings through the platform: read all, write some (validated before anything
//! is queued), the settings schema for forms with the chemistry presets, and commands' state.
//!
//! A write is checked in two steps before it is queued:
//! 1. each value against the identifier table: the name must be a read/write setting (not a
//!    measurement, not a write-only command), and the value must parse in its unit and lie in
//!    its range ([`WriteValue::parse`]);
//! 2. when the terminal's latest upload carries its settings, the settings as they would be
//!    after the write against the cross-field rules of [`Settings::validate`] (a recovery
//!    inside its protection, ...), reporting only a rule the write itself breaks.
//!
//! Any failure is a 422 listing every refused setting with its field, value, range and reason,
//! and nothing is sent. Then the write is queued as one [`CommandRequest::Write`] and the
//! listener's result per setting is returned.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bmslink_core::chemistry::Chemistry;
use bmslink_core::settings::{Settings, SettingsError};
use bmslink_core::snapshot::PackSnapshot;
use bmslink_core::time::Instant;
use bmslink_proto::message::PASSWORD_LEN;
use bmslink_proto::{Access, Identifier, WriteValue};
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};
use tokio::sync::broadcast::{self, error::RecvError};
use utoipa::IntoParams;

use super::auth::{Operator, Viewer};
use super::decode::{
    hide_password, range_view, setting_text, settings_schema as schema_rows, MASK,
};
use super::dto::{
    masked, CommandView, PresetView, SettingError, SettingOutcome, SettingsRead, SettingsSchema,
    SettingsWrite, SettingsWritten,
};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{parse_terminal, shorten, JsonBody, PathParams, QueryParams, TerminalPath};
use super::fleet::known_terminal;
use super::{record, ApiState};
use crate::model::{
    Command, CommandRequest, CommandState, Registration, Terminal, TerminalRecord, Timestamp,
};
use crate::store::{CommandNotice, Store, StoreError, StoreResult};

/// Most settings in one write.
const MAX_WRITES: usize = 64;

/// How often a waiting request looks at its command in the store, in case a notice was lost.
const POLL: Duration = Duration::from_millis(500);

/// Settings a chemistry preset leaves alone: the pack's identity, password, switches,
/// calibration, and its cell count and capacity (as [`Settings::with_chemistry`] keeps them).
const NOT_IN_PRESETS: [Identifier; 15] = [
    Identifier::CellCountSetting,
    Identifier::NominalCapacity,
    Identifier::ChargeMosfetSwitch,
    Identifier::DischargeMosfetSwitch,
    Identifier::CurrentCalibration,
    Identifier::BoardAddress,
    Identifier::SleepWaitTime,
    Identifier::Password,
    Identifier::DedicatedChargerSwitch,
    Identifier::DeviceId,
    Identifier::ManufactureDate,
    Identifier::WorkingTime,
    Identifier::StartCurrentCalibration,
    Identifier::ActualCapacity,
    Identifier::ManufacturerId,
];

// --- Schema ----------------------------------------------------------------------------------

/// The pack the presets are computed for.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SchemaQuery {
    /// Cells in series (3 to 32, default 16): sets the total voltage limits.
    #[param(minimum = 3, maximum = 32)]
    cells: Option<u8>,
    /// Capacity, Ah (1 to 100000, default 100): sets the current limits.
    #[param(minimum = 1, maximum = 100000)]
    capacity_ah: Option<u32>,
}

/// Every read/write setting (name, description, unit, decimals, range in engineering units,
/// group) for forms, and the LFP, NMC and LTO presets for a pack.
#[utoipa::path(get, path = "/api/settings/schema", tag = "settings", params(SchemaQuery),
    responses(
        (status = 200, description = "The settings and presets", body = SettingsSchema),
        (status = 400, description = "Cells or capacity out of range", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
pub(crate) async fn settings_schema(
    _caller: Viewer,
    QueryParams(query): QueryParams<SchemaQuery>,
) -> ApiResult<Json<SettingsSchema>> {
    let cells = query.cells.unwrap_or(16);
    let capacity_ah = query.capacity_ah.unwrap_or(100);
    if !(3..=32).contains(&cells) {
        return Err(ApiError::bad_request(format!(
            "cells is 3 to 32, not {cells}"
        )));
    }
    if !(1..=100_000).contains(&capacity_ah) {
        return Err(ApiError::bad_request(format!(
            "capacity_ah is 1 to 100000, not {capacity_ah}"
        )));
    }
    let presets = Chemistry::ALL
        .iter()
        .map(|&chemistry| preset(chemistry, cells, capacity_ah))
        .collect();
    Ok(Json(SettingsSchema {
        settings: schema_rows(),
        presets,
    }))
}

fn preset(chemistry: Chemistry, cells: u8, capacity_ah: u32) -> PresetView {
    let settings = Settings::preset(chemistry, cells, capacity_ah);
    let values = settings
        .registers()
        .into_iter()
        .filter(|(id, _)| !NOT_IN_PRESETS.contains(id))
        .filter_map(|(id, bytes)| Some((id.name().to_string(), json!(setting_text(id, &bytes)?))))
        .collect();
    PresetView {
        chemistry: chemistry.name().to_string(),
        cells,
        capacity_ah,
        values,
    }
}

// --- Commands --------------------------------------------------------------------------------

/// A command queued, with the subscription that will hear it finish.
struct Queued {
    id: i64,
    notices: broadcast::Receiver<CommandNotice>,
}

/// 409 unless the terminal is approved and connected: commands reach a terminal only over its
/// connection.
fn check_reachable(record: &TerminalRecord) -> ApiResult<()> {
    let terminal = record.terminal;
    if record.registration != Registration::Approved {
        return Err(ApiError::conflict(format!(
            "terminal {terminal} is not approved: approve it first"
        )));
    }
    if !record.online {
        return Err(ApiError::conflict(format!(
            "terminal {terminal} is offline (last frame at {} ms): commands reach a terminal \
             only while it is connected",
            record.last_seen.millis()
        ))
        .with_detail(json!({ "last_seen": record.last_seen.millis() })));
    }
    Ok(())
}

/// Queues `request` for a reachable terminal.
async fn queue<S: Store>(
    store: &S,
    terminal: Terminal,
    request: CommandRequest,
    actor: String,
) -> ApiResult<Queued> {
    check_reachable(&known_terminal(store, terminal).await?)?;
    // Subscribe first, so the notice of a quick finish is not missed.
    let notices = store.subscribe_commands();
    let id = store
        .enqueue_command(terminal, request, actor, Timestamp::now())
        .await?;
    Ok(Queued { id, notices })
}

/// The command's result, waiting at most the configured timeout.
async fn result<S: Store>(state: &ApiState<S>, queued: Queued) -> ApiResult<JsonValue> {
    let Queued { id, mut notices } = queued;
    let timeout = state.config.command_timeout;
    match tokio::time::timeout(timeout, finished(&state.store, &mut notices, id)).await {
        Ok(command) => outcome(command?),
        Err(_) => Err(give_up(&state.store, id, timeout).await),
    }
}

/// Waits for the command to finish: on its notice, or by looking every [`POLL`].
async fn finished<S: Store>(
    store: &S,
    notices: &mut broadcast::Receiver<CommandNotice>,
    id: i64,
) -> StoreResult<Command> {
    loop {
        match tokio::time::timeout(POLL, notices.recv()).await {
            Ok(Ok(CommandNotice::Finished { id: done })) if done == id => {}
            Ok(Ok(_)) => continue,
            Ok(Err(RecvError::Closed)) => tokio::time::sleep(POLL).await,
            Ok(Err(RecvError::Lagged(_))) | Err(_) => {}
        }
        let Some(command) = store.command(id).await? else {
            return Err(StoreError::NotFound(format!("command {id}")));
        };
        if matches!(
            command.state,
            CommandState::Done { .. } | CommandState::Failed { .. }
        ) {
            return Ok(command);
        }
    }
}

fn outcome(command: Command) -> ApiResult<JsonValue> {
    match command.state {
        CommandState::Done { result } => Ok(result),
        CommandState::Failed { reason } => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "terminal {} could not run command {}: {reason}",
                command.terminal, command.id
            ),
        )
        .with_detail(json!({ "command": command.id, "reason": reason }))),
        _ => Err(ApiError::internal(format!(
            "command {} was reported finished but is not",
            command.id
        ))),
    }
}

/// After a timeout: cancels the command if it has not started (so it never runs unseen
/// later), and says so in a 504.
async fn give_up<S: Store>(store: &S, id: i64, timeout: Duration) -> ApiError {
    let seconds = timeout.as_secs_f64();
    let cancelled = match store.claim_command(id).await {
        Ok(Some(_)) => {
            let reason = format!("cancelled: the terminal did not take it within {seconds} s");
            store
                .finish_command(id, CommandState::Failed { reason })
                .await
                .is_ok()
        }
        _ => false,
    };
    let (what, state) = if cancelled {
        ("the command was cancelled before it started", "cancelled")
    } else {
        (
            "the command is still running at the terminal: see GET /api/commands/{id}",
            "running",
        )
    };
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!("no answer from the terminal within {seconds} s; {what}"),
    )
    .with_detail(json!({ "command": id, "state": state }))
}

/// Reads every setting from the device (a read-all command through its connection).
#[utoipa::path(get, path = "/api/terminals/{terminal}/settings", tag = "settings",
    params(TerminalPath),
    responses(
        (status = 200, description = "The values the device reported", body = SettingsRead),
        (status = 400, description = "Not a terminal number", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "Unknown terminal", body = ErrorBody),
        (status = 409, description = "The terminal is offline or not approved", body = ErrorBody),
        (status = 502, description = "The terminal could not run the read", body = ErrorBody),
        (status = 504, description = "No answer within the command timeout", body = ErrorBody),
    ))]
pub(crate) async fn read_settings<S: Store>(
    State(state): State<ApiState<S>>,
    Viewer(caller): Viewer,
    PathParams(terminal): PathParams<String>,
) -> ApiResult<Json<SettingsRead>> {
    let terminal = parse_terminal(&terminal)?;
    let queued = queue(
        &state.store,
        terminal,
        CommandRequest::ReadAll,
        caller.actor(),
    )
    .await?;
    let command = queued.id;
    let mut result = result(&state, queued).await?;
    if !caller.sees_device_password() {
        hide_password(&mut result);
    }
    // The listener reports `{"values": {...}}`.
    let values = match result.get_mut("values") {
        Some(values) => values.take(),
        None => result,
    };
    Ok(Json(SettingsRead {
        terminal: terminal.to_string(),
        command,
        values,
    }))
}

/// Writes settings (operator): validated with the identifier table (and the cross-field rules
/// against the latest reported settings) before anything is sent, then written in order with
/// pair code, password and read-back; the result per setting.
#[utoipa::path(patch, path = "/api/terminals/{terminal}/settings", tag = "settings",
    params(TerminalPath),
    request_body = SettingsWrite,
    responses(
        (status = 200, description = "The result per setting", body = SettingsWritten),
        (status = 400, description = "Not a terminal number, or not JSON", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, description = "Unknown terminal", body = ErrorBody),
        (status = 409, description = "The terminal is offline or not approved", body = ErrorBody),
        (status = 422, description = "Invalid settings; detail lists each with field, value, range and reason", body = ErrorBody),
        (status = 502, description = "The terminal could not run the write", body = ErrorBody),
        (status = 504, description = "No answer within the command timeout", body = ErrorBody),
        (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = ErrorBody),
    ))]
pub(crate) async fn write_settings<S: Store>(
    State(state): State<ApiState<S>>,
    Operator(caller): Operator,
    PathParams(terminal): PathParams<String>,
    JsonBody(write): JsonBody<SettingsWrite>,
) -> ApiResult<Json<SettingsWritten>> {
    let terminal = parse_terminal(&terminal)?;
    known_terminal(&state.store, terminal).await?;
    let values = checked_writes(&state.store, terminal, &write).await?;
    let listed: Vec<String> = masked(&values)
        .iter()
        .map(|s| format!("{}={}", s.name, s.value))
        .collect();
    let request = CommandRequest::Write {
        values,
        password: write.password,
    };
    let queued = queue(&state.store, terminal, request, caller.actor()).await?;
    let command = queued.id;
    let detail = format!("command {command}: {}", listed.join(", "));
    let entry = caller.audit_entry("write_settings", format!("terminal {terminal}"), &detail);
    record(&state.store, entry).await;
    let result = result(&state, queued).await?;
    let written: WriteResult = serde_json::from_value(result).map_err(|error| {
        ApiError::internal(format!(
            "command {command} finished with a result of an unexpected shape: {error}"
        ))
    })?;
    Ok(Json(SettingsWritten {
        terminal: terminal.to_string(),
        command,
        ok: written.ok,
        settings: written.settings,
    }))
}

/// The settings of a write as (name, text), checked against the table and against the
/// terminal's latest reported settings; 422 with every refused setting.
async fn checked_writes<S: Store>(
    store: &S,
    terminal: Terminal,
    write: &SettingsWrite,
) -> ApiResult<Vec<(String, String)>> {
    check_password(write.password.as_deref())?;
    let writes = parse_writes(&write.values).map_err(refused)?;
    let latest = store.latest(terminal).await?;
    let conflicts = cross_check(latest.as_ref().map(|row| row.raw.as_slice()), &writes);
    if !conflicts.is_empty() {
        return Err(refused(conflicts));
    }
    Ok(writes
        .iter()
        .map(|w| (w.id.name().to_string(), w.text.clone()))
        .collect())
}

/// A write command's result, as the listener reports it.
#[derive(Deserialize)]
struct WriteResult {
    ok: bool,
    settings: Vec<SettingOutcome>,
}

/// The request's 0xB2 password: printable ASCII that fits the field.
fn check_password(password: Option<&str>) -> ApiResult<()> {
    let Some(password) = password else {
        return Ok(());
    };
    let fits =
        password.len() <= PASSWORD_LEN && password.bytes().all(|b| (0x20..0x7F).contains(&b));
    if fits {
        return Ok(());
    }
    let error = format!("the BMS password is printable ASCII of at most {PASSWORD_LEN} bytes");
    let given = JsonValue::String(MASK.to_string());
    Err(refused(vec![setting_error(
        "password", &given, &error, None,
    )]))
}

/// One setting of a write, checked.
#[derive(Debug)]
struct Write {
    id: Identifier,
    text: String,
    value: WriteValue,
}

fn refused(errors: Vec<SettingError>) -> ApiError {
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    let error = format!(
        "nothing was written: invalid {} ({})",
        if errors.len() == 1 {
            "setting"
        } else {
            "settings"
        },
        fields.join(", ")
    );
    ApiError::unprocessable(error).with_detail(serde_json::to_value(&errors).unwrap_or_default())
}

/// Checks every setting of a write against the identifier table; all errors at once.
fn parse_writes(
    values: &serde_json::Map<String, JsonValue>,
) -> Result<Vec<Write>, Vec<SettingError>> {
    if values.is_empty() {
        let error = setting_error("values", &JsonValue::Null, "no settings given", None);
        return Err(vec![error]);
    }
    if values.len() > MAX_WRITES {
        let error = format!("at most {MAX_WRITES} settings per write");
        return Err(vec![setting_error(
            "values",
            &JsonValue::Null,
            &error,
            None,
        )]);
    }
    let mut writes: Vec<Write> = Vec::new();
    let mut errors = Vec::new();
    for (field, given) in values {
        match parse_write(field, given) {
            Ok(write) if writes.iter().any(|w| w.id == write.id) => {
                let error = format!("{} is given twice", write.id.name());
                errors.push(setting_error(field, given, &error, None));
            }
            Ok(write) => writes.push(write),
            Err(error) => errors.push(*error),
        }
    }
    if errors.is_empty() {
        Ok(writes)
    } else {
        Err(errors)
    }
}

fn parse_write(field: &str, given: &JsonValue) -> Result<Write, Box<SettingError>> {
    let text = match given {
        JsonValue::String(text) => text.clone(),
        JsonValue::Number(number) => number.to_string(),
        JsonValue::Bool(on) => if *on { "on" } else { "off" }.to_string(),
        _ => {
            let error = "a value is text, a number or a boolean";
            return Err(Box::new(setting_error(field, given, error, None)));
        }
    };
    let Some(id) = Identifier::lookup(field) else {
        let error = "unknown setting (GET /api/settings/schema lists them)";
        return Err(Box::new(setting_error(field, given, error, None)));
    };
    let info = id.info();
    let range = range_view(info);
    match info.access {
        Access::ReadWrite => {}
        Access::Read => {
            let error = format!("{} is read-only: a measurement, not a setting", id.name());
            return Err(Box::new(setting_error(field, given, &error, range)));
        }
        Access::Write => {
            let error = format!(
                "{} is a write-only command, not a setting: it is not written here",
                id.name()
            );
            return Err(Box::new(setting_error(field, given, &error, range)));
        }
    }
    match WriteValue::parse(id, &text) {
        Ok(value) => Ok(Write {
            id,
            text: text.trim().to_string(),
            value,
        }),
        Err(error) => Err(Box::new(setting_error(
            field,
            given,
            &error.to_string(),
            range,
        ))),
    }
}

fn setting_error(
    field: &str,
    given: &JsonValue,
    error: &str,
    range: Option<super::dto::RangeView>,
) -> SettingError {
    let value = match given {
        JsonValue::String(text) => JsonValue::String(shorten(text, 100)),
        JsonValue::Array(_) | JsonValue::Object(_) => JsonValue::String("(structured)".to_string()),
        other => other.clone(),
    };
    SettingError {
        field: shorten(field, 100),
        value,
        error: error.to_string(),
        range,
    }
}

/// Cross-field rules on the settings as they would be after the writes, when the latest
/// upload carries the settings; only a failure the writes introduce is reported.
fn cross_check(latest_raw: Option<&[u8]>, writes: &[Write]) -> Vec<SettingError> {
    let Some(before) = latest_raw
        .and_then(|raw| PackSnapshot::parse(raw, Instant::ZERO).ok())
        .and_then(|snapshot| snapshot.settings)
    else {
        return Vec::new();
    };
    let mut after = before.clone();
    for write in writes {
        let _ = after.set_register(write.id, write.value.bytes());
    }
    let broken = match after.validate() {
        Err(error) if before.validate() != Err(error) => error,
        _ => return Vec::new(),
    };
    let written = |id: Identifier| writes.iter().find(|w| w.id == id);
    let SettingsError::Inconsistent { field, other, rule } = broken else {
        return Vec::new();
    };
    let Some(write) = written(field).or_else(|| written(other)) else {
        return Vec::new();
    };
    let shown = |id: Identifier| {
        let bytes = after
            .registers()
            .into_iter()
            .find(|(r, _)| *r == id)
            .map(|(_, b)| b);
        let text = bytes.and_then(|b| setting_text(id, &b)).unwrap_or_default();
        format!("{} {text} {}", id.name(), id.info().unit.symbol())
            .trim_end()
            .to_string()
    };
    let error = format!(
        "{} {rule} {}: after this write {} and {}",
        field.name(),
        other.name(),
        shown(field),
        shown(other)
    );
    let given = JsonValue::String(write.text.clone());
    vec![setting_error(
        write.id.name(),
        &given,
        &error,
        range_view(write.id.info()),
    )]
}

/// A remote command and where it stands.
#[utoipa::path(get, path = "/api/commands/{id}", tag = "settings",
    params(("id" = i64, Path, description = "Command id", example = 1)),
    responses(
        (status = 200, description = "The command", body = CommandView),
        (status = 400, description = "Not a command id", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "Unknown command", body = ErrorBody),
    ))]
pub(crate) async fn command<S: Store>(
    State(state): State<ApiState<S>>,
    Viewer(caller): Viewer,
    PathParams(id): PathParams<i64>,
) -> ApiResult<Json<CommandView>> {
    let Some(command) = state.store.command(id).await? else {
        return Err(ApiError::not_found(format!("no command {id} is known")));
    };
    let mut view = CommandView::from(&command);
    if !caller.sees_device_password() {
        if let Some(result) = view.result.as_mut() {
            hide_password(result);
        }
    }
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use bmslink_proto::vectors;

    fn values(pairs: JsonValue) -> serde_json::Map<String, JsonValue> {
        pairs.as_object().unwrap().clone()
    }

    #[test]
    fn valid_writes_keep_their_order_and_text() {
        let writes = parse_writes(&values(json!({
            "cell_over_voltage_protection": "3.65 V",
            "0x9D": true,
            "discharge_over_current_delay": 30,
        })))
        .unwrap();
        let ids: Vec<Identifier> = writes.iter().map(|w| w.id).collect();
        assert_eq!(
            ids,
            [
                Identifier::CellOverVoltageProtection,
                Identifier::BalancingSwitch,
                Identifier::DischargeOverCurrentDelay
            ]
        );
        assert_eq!(writes[0].text, "3.65 V");
        assert_eq!(writes[1].text, "on");
        assert_eq!(writes[2].value.bytes(), &[0, 30]);
    }

    #[test]
    fn every_invalid_setting_is_named_with_its_range() {
        let errors = parse_writes(&values(json!({
            "cell_over_voltage_protection": "9.9",
            "soc": "50",
            "restart": "1",
            "nonsense": "1",
            "balance_start_voltage": [1],
        })))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "cell_over_voltage_protection",
                "soc",
                "restart",
                "nonsense",
                "balance_start_voltage"
            ]
        );
        let ovp = &errors[0];
        assert!(ovp.error.contains("out of range"), "{}", ovp.error);
        let range = ovp.range.as_ref().unwrap();
        assert_eq!((range.min, range.max, range.unit.as_str()), (1.0, 4.5, "V"));
        assert!(errors[1].error.contains("read-only"));
        assert!(errors[2].error.contains("write-only"));
    }

    #[test]
    fn empty_and_duplicate_writes_are_refused() {
        assert!(parse_writes(&serde_json::Map::new()).is_err());
        let errors = parse_writes(&values(json!({
            "balancing_switch": "on", "0x9d": "off"
        })))
        .unwrap_err();
        assert!(errors[0].error.contains("twice"));
    }

    #[test]
    fn a_write_breaking_a_cross_field_rule_of_the_latest_settings_is_refused() {
        // A03 reports cell over-voltage protection 3.65 V with its recovery below it.
        let frame = vectors::bytes("A03").unwrap();
        let writes = parse_writes(&values(json!({"cell_over_voltage_recovery": "4.0"}))).unwrap();
        let errors = cross_check(Some(&frame), &writes);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "cell_over_voltage_recovery");
        assert!(
            errors[0].error.contains("must be below"),
            "{}",
            errors[0].error
        );
        let fine = parse_writes(&values(json!({"cell_over_voltage_recovery": "3.4"}))).unwrap();
        assert!(cross_check(Some(&frame), &fine).is_empty());
        assert!(cross_check(None, &writes).is_empty(), "no latest settings");
    }

    #[test]
    fn presets_are_valid_writes() {
        for chemistry in Chemistry::ALL {
            let preset = preset(chemistry, 16, 100);
            assert!(preset.values.len() > 20, "{}", preset.chemistry);
            assert!(!preset.values.contains_key("password"));
            parse_writes(&preset.values).unwrap_or_else(|e| panic!("{e:?}"));
        }
    }
}
