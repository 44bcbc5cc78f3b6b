//! How model values become column values and back, the same for both backends: enums as short
//! lower-case text, commands as JSON, cell voltages as big-endian `u16`s, and the per-row
//! extremes (temperature and cell minimum and maximum) the roll-ups aggregate.
//!
//! Reading back never panics: a value that does not fit its model type is a
//! [`StoreError::Corrupt`] naming the column.

use crate::model::{
    AlarmKind, CommandRequest, CommandState, ConnectionOwner, ProcessId, Registration, Role,
    TelemetryRow,
};
use crate::store::{StoreError, StoreResult};

/// `Registration` as stored.
pub(crate) fn registration_text(registration: Registration) -> &'static str {
    match registration {
        Registration::Approved => "approved",
        Registration::Pending => "pending",
        Registration::Rejected => "rejected",
    }
}

/// A stored registration.
pub(crate) fn registration_from_text(text: &str) -> StoreResult<Registration> {
    match text {
        "approved" => Ok(Registration::Approved),
        "pending" => Ok(Registration::Pending),
        "rejected" => Ok(Registration::Rejected),
        other => Err(corrupt("terminals.registration", other)),
    }
}

/// `Role` as stored.
pub(crate) fn role_text(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

/// A stored role.
pub(crate) fn role_from_text(text: &str) -> StoreResult<Role> {
    match text {
        "viewer" => Ok(Role::Viewer),
        "operator" => Ok(Role::Operator),
        "admin" => Ok(Role::Admin),
        other => Err(corrupt("users.role", other)),
    }
}

/// Prefix of a BMS warning alarm's stored kind (`bms:cell_over_voltage`).
const BMS_PREFIX: &str = "bms:";

/// `AlarmKind` as stored: one text, so "one active alarm per terminal and kind" is a plain
/// unique index.
pub(crate) fn alarm_kind_text(kind: &AlarmKind) -> String {
    match kind {
        AlarmKind::Bms(name) => format!("{BMS_PREFIX}{name}"),
        AlarmKind::Offline => "offline".to_owned(),
        AlarmKind::CellSpread => "cell_spread".to_owned(),
        AlarmKind::TemperatureRise => "temperature_rise".to_owned(),
        AlarmKind::SocLow => "soc_low".to_owned(),
    }
}

/// A stored alarm kind.
pub(crate) fn alarm_kind_from_text(text: &str) -> StoreResult<AlarmKind> {
    if let Some(name) = text.strip_prefix(BMS_PREFIX) {
        return Ok(AlarmKind::Bms(name.to_owned()));
    }
    match text {
        "offline" => Ok(AlarmKind::Offline),
        "cell_spread" => Ok(AlarmKind::CellSpread),
        "temperature_rise" => Ok(AlarmKind::TemperatureRise),
        "soc_low" => Ok(AlarmKind::SocLow),
        other => Err(corrupt("alarms.kind", other)),
    }
}

/// The short status column of a command (`queued`, `running`, `done`, `failed`), which
/// queries filter on; the full state is stored as JSON beside it.
pub(crate) fn command_status(state: &CommandState) -> &'static str {
    match state {
        CommandState::Queued => "queued",
        CommandState::Running => "running",
        CommandState::Done { .. } => "done",
        CommandState::Failed { .. } => "failed",
    }
}

/// A command request as stored (JSON).
pub(crate) fn request_json(request: &CommandRequest) -> StoreResult<String> {
    serde_json::to_string(request)
        .map_err(|e| StoreError::Corrupt(format!("command request not serialisable: {e}")))
}

/// A stored command request.
pub(crate) fn request_from_json(text: &str) -> StoreResult<CommandRequest> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("commands.request {text:?}: {e}")))
}

/// A command state as stored (JSON).
pub(crate) fn state_json(state: &CommandState) -> StoreResult<String> {
    serde_json::to_string(state)
        .map_err(|e| StoreError::Corrupt(format!("command state not serialisable: {e}")))
}

/// A stored command state.
pub(crate) fn state_from_json(text: &str) -> StoreResult<CommandState> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("commands.state {text:?}: {e}")))
}

/// Cell voltages as stored: big-endian `u16`s, in cell order.
pub(crate) fn cells_blob(cells: &[u16]) -> Vec<u8> {
    cells.iter().flat_map(|c| c.to_be_bytes()).collect()
}

/// Stored cell voltages.
pub(crate) fn cells_from_blob(blob: &[u8]) -> StoreResult<Vec<u16>> {
    if blob.len() % 2 != 0 {
        return Err(StoreError::Corrupt(format!(
            "telemetry.cells has {} bytes, not a whole number of u16s",
            blob.len()
        )));
    }
    Ok(blob
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect())
}

/// The extremes of one row, stored beside it so roll-ups are plain SQL aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowExtremes {
    /// Lowest reported temperature, degC.
    pub(crate) temperature_min: Option<i16>,
    /// Highest reported temperature, degC.
    pub(crate) temperature_max: Option<i16>,
    /// Lowest cell, mV.
    pub(crate) cell_min: Option<u16>,
    /// Highest cell, mV.
    pub(crate) cell_max: Option<u16>,
}

impl RowExtremes {
    /// The extremes of `row`.
    pub(crate) fn of(row: &TelemetryRow) -> RowExtremes {
        let temperatures = || row.temperatures.iter().flatten().copied();
        RowExtremes {
            temperature_min: temperatures().min(),
            temperature_max: temperatures().max(),
            cell_min: row.cells_mv.iter().copied().min(),
            cell_max: row.cells_mv.iter().copied().max(),
        }
    }
}

/// Narrows a stored integer to its model type, or says which column holds what.
pub(crate) fn narrow<T: TryFrom<i64>>(value: i64, column: &str) -> StoreResult<T> {
    T::try_from(value).map_err(|_| {
        StoreError::Corrupt(format!(
            "{column} holds {value}, out of range for {}",
            std::any::type_name::<T>()
        ))
    })
}

/// Narrows an optional stored integer.
pub(crate) fn narrow_opt<T: TryFrom<i64>>(
    value: Option<i64>,
    column: &str,
) -> StoreResult<Option<T>> {
    value.map(|v| narrow(v, column)).transpose()
}

/// A connection owner as stored: (`owner_process`, `owner_connection`).
pub(crate) fn owner_columns(owner: ConnectionOwner) -> StoreResult<(i64, i64)> {
    let connection = i64::try_from(owner.connection).map_err(|_| {
        StoreError::Conflict(format!(
            "connection number {} is out of range",
            owner.connection
        ))
    })?;
    Ok((owner.process.0, connection))
}

/// A stored connection owner: both columns or neither.
pub(crate) fn owner_from_columns(
    process: Option<i64>,
    connection: Option<i64>,
) -> StoreResult<Option<ConnectionOwner>> {
    match (process, connection) {
        (Some(process), Some(connection)) => Ok(Some(ConnectionOwner {
            process: ProcessId(process),
            connection: narrow(connection, "terminals.owner_connection")?,
        })),
        (None, None) => Ok(None),
        _ => Err(StoreError::Corrupt(
            "terminals.owner_process and owner_connection are not both set or both null".into(),
        )),
    }
}

fn corrupt(column: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{column} holds the unknown value {value:?}"))
}

/// Roll-up rules shared by both backends.
pub(crate) mod rollup {
    use crate::model::Timestamp;

    /// Minute bucket width, ms.
    pub(crate) const MINUTE_MS: i64 = 60_000;
    /// Hour bucket width, ms.
    pub(crate) const HOUR_MS: i64 = 3_600_000;
    /// Energy is integrated between consecutive rows of a terminal only when they are at most
    /// this far apart (ms): across a longer gap (terminal offline) nothing is known.
    pub(crate) const MAX_INTEGRATION_GAP_MS: i64 = 5 * 60_000;
    /// Rows may be stored a little after their receive time (batching); a maintenance pass
    /// recomputes the buckets of this last stretch (ms) again next time.
    pub(crate) const LATE_GRACE_MS: i64 = 60_000;

    /// Start of the bucket of width `width` holding `at`.
    pub(crate) fn bucket_start(at: i64, width: i64) -> i64 {
        at.div_euclid(width) * width
    }

    /// Where the next minute pass starts after a pass at `now` (the still-open stretch is
    /// recomputed), never going back before `previous`.
    pub(crate) fn next_minute_watermark(now: Timestamp, previous: Option<i64>) -> i64 {
        let next = bucket_start(now.millis() - LATE_GRACE_MS, MINUTE_MS);
        previous.map_or(next, |p| p.max(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_round_trip_big_endian() {
        let blob = cells_blob(&[0x0CE4, 3300]);
        assert_eq!(blob, vec![0x0C, 0xE4, 0x0C, 0xE4]);
        assert_eq!(cells_from_blob(&blob).unwrap(), vec![3300, 3300]);
        assert!(cells_from_blob(&[1, 2, 3]).is_err());
    }

    #[test]
    fn alarm_kinds_round_trip() {
        for kind in [
            AlarmKind::Bms("cell_over_voltage".into()),
            AlarmKind::Offline,
            AlarmKind::CellSpread,
            AlarmKind::TemperatureRise,
            AlarmKind::SocLow,
        ] {
            assert_eq!(alarm_kind_from_text(&alarm_kind_text(&kind)).unwrap(), kind);
        }
        assert!(alarm_kind_from_text("nonsense").is_err());
    }

    #[test]
    fn narrow_names_the_column() {
        let err = narrow::<u8>(300, "telemetry.soc").unwrap_err();
        assert!(err.to_string().contains("telemetry.soc"));
    }

    #[test]
    fn buckets_floor() {
        assert_eq!(rollup::bucket_start(119_999, rollup::MINUTE_MS), 60_000);
        assert_eq!(rollup::bucket_start(-1, rollup::MINUTE_MS), -60_000);
    }
}
