//! The fleet and its terminals: the list with latest values, one terminal, its latest frame
//! and history, naming and registration.

use std::cmp::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::{Operator, Viewer};
use super::decode::{decode_frame, hex, hex_without_password};
use super::dto::{
    FleetCounts, FleetItem, FleetPage, HistoryView, LatestFrame, RegistrationDecision,
    RegistrationName, ResolutionName, TerminalDetail, TerminalRename, TerminalView,
};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{parse_terminal, JsonBody, PathParams, QueryParams, TerminalPath};
use super::{record, ApiState};
use crate::model::{FleetEntry, Registration, Resolution, Terminal, TerminalRecord, Timestamp};
use crate::store::{AlarmFilter, Store};

/// Most fleet items in one page.
const MAX_PAGE: u32 = 10_000;

/// Largest fleet offset (the document's int32 bound).
const MAX_OFFSET: u32 = i32::MAX as u32;

/// Longest terminal name.
const MAX_TERMINAL_NAME: usize = 64;

/// Fleet filters, sort and page.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FleetQuery {
    /// Only terminals with this registration.
    registration: Option<RegistrationName>,
    /// Only connected (`true`) or unconnected (`false`) terminals.
    online: Option<bool>,
    /// Only terminals with (`true`) or without (`false`) active alarms.
    alarm: Option<bool>,
    /// Only terminals whose number (hex) or name contains this text, ignoring case.
    search: Option<String>,
    /// Sort key (default `terminal`).
    sort: Option<FleetSort>,
    /// Sort order (default `asc`).
    order: Option<SortOrder>,
    /// Most items (1 to 10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// Items to skip (default 0).
    #[param(maximum = 2147483647)]
    offset: Option<u32>,
}

/// Fleet sort keys; terminals without the value sort last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FleetSort {
    /// Terminal number.
    Terminal,
    /// Name.
    Name,
    /// Last frame received.
    LastSeen,
    /// State of charge.
    Soc,
    /// Pack voltage.
    Voltage,
    /// Current.
    Current,
    /// Active alarms.
    Alarms,
}

/// Sort order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SortOrder {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

impl FleetQuery {
    fn matches(&self, entry: &FleetEntry) -> bool {
        let record = &entry.record;
        let registration = self
            .registration
            .is_none_or(|r| Registration::from(r) == record.registration);
        let online = self.online.is_none_or(|o| o == record.online);
        let alarm = self.alarm.is_none_or(|a| a == (entry.active_alarms > 0));
        registration && online && alarm && self.search_matches(record)
    }

    fn search_matches(&self, record: &TerminalRecord) -> bool {
        let Some(search) = self.search.as_deref().map(str::to_lowercase) else {
            return true;
        };
        let number = record.terminal.to_string().to_lowercase();
        let name = record.name.as_deref().unwrap_or_default().to_lowercase();
        number.contains(&search) || name.contains(&search)
    }
}

/// Compares two entries by `sort`, missing values last whatever the order.
fn compare(a: &FleetEntry, b: &FleetEntry, sort: FleetSort, order: SortOrder) -> Ordering {
    let key = |e: &FleetEntry| -> Option<f64> {
        let latest = e.latest.as_ref();
        match sort {
            FleetSort::Soc => latest.map(|l| f64::from(l.soc)),
            FleetSort::Voltage => latest.map(|l| f64::from(l.voltage_mv)),
            FleetSort::Current => latest.map(|l| f64::from(l.current_ma)),
            FleetSort::LastSeen => Some(e.record.last_seen.millis() as f64),
            FleetSort::Alarms => Some(f64::from(e.active_alarms)),
            FleetSort::Terminal | FleetSort::Name => None,
        }
    };
    let directed = |ordering: Ordering| match order {
        SortOrder::Asc => ordering,
        SortOrder::Desc => ordering.reverse(),
    };
    let by_key = match sort {
        FleetSort::Terminal => Some(directed(a.record.terminal.cmp(&b.record.terminal))),
        FleetSort::Name => match (&a.record.name, &b.record.name) {
            (Some(x), Some(y)) => Some(directed(x.to_lowercase().cmp(&y.to_lowercase()))),
            (Some(_), None) => Some(Ordering::Less),
            (None, Some(_)) => Some(Ordering::Greater),
            (None, None) => None,
        },
        _ => match (key(a), key(b)) {
            (Some(x), Some(y)) => Some(directed(x.total_cmp(&y))),
            (Some(_), None) => Some(Ordering::Less),
            (None, Some(_)) => Some(Ordering::Greater),
            (None, None) => None,
        },
    };
    by_key
        .filter(|o| o.is_ne())
        .unwrap_or_else(|| a.record.terminal.cmp(&b.record.terminal))
}

fn counts(entries: &[FleetEntry]) -> FleetCounts {
    let count = |f: &dyn Fn(&FleetEntry) -> bool| entries.iter().filter(|e| f(e)).count();
    FleetCounts {
        terminals: entries.len(),
        online: count(&|e| e.record.online),
        offline: count(&|e| !e.record.online),
        with_alarms: count(&|e| e.active_alarms > 0),
        active_alarms: entries.iter().map(|e| u64::from(e.active_alarms)).sum(),
        pending: count(&|e| e.record.registration == Registration::Pending),
    }
}

fn fleet_item(entry: &FleetEntry) -> FleetItem {
    FleetItem {
        terminal: TerminalView::new(&entry.record, entry.active_alarms),
        latest: entry.latest.as_ref().map(Into::into),
    }
}

/// The fleet: every terminal with its latest values.
///
/// Filters combine (all must hold); counts are over the whole fleet.
#[utoipa::path(get, path = "/api/fleet", tag = "fleet", params(FleetQuery),
    responses(
        (status = 200, description = "A page of the fleet", body = FleetPage),
        (status = 400, description = "Invalid filters", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
pub(crate) async fn fleet<S: Store>(
    State(state): State<ApiState<S>>,
    _caller: Viewer,
    QueryParams(query): QueryParams<FleetQuery>,
) -> ApiResult<Json<FleetPage>> {
    let limit = query.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit is 1 to {MAX_PAGE}, not {limit}"
        )));
    }
    let entries = state.store.fleet().await?;
    let mut matching: Vec<&FleetEntry> = entries.iter().filter(|e| query.matches(e)).collect();
    let sort = query.sort.unwrap_or(FleetSort::Terminal);
    let order = query.order.unwrap_or(SortOrder::Asc);
    matching.sort_by(|a, b| compare(a, b, sort, order));
    let offset = query.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::bad_request(format!(
            "offset is at most {MAX_OFFSET}, not {offset}"
        )));
    }
    let offset = offset as usize;
    let terminals = matching
        .iter()
        .skip(offset)
        .take(limit as usize)
        .map(|e| fleet_item(e))
        .collect();
    Ok(Json(FleetPage {
        counts: counts(&entries),
        total: matching.len(),
        offset,
        limit: limit as usize,
        terminals,
    }))
}

/// A terminal's record, or 404.
pub(crate) async fn known_terminal<S: Store>(
    store: &S,
    terminal: Terminal,
) -> ApiResult<TerminalRecord> {
    store
        .terminal(terminal)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no terminal {terminal} is known")))
}

async fn active_alarms<S: Store>(store: &S, terminal: Terminal) -> ApiResult<u32> {
    let filter = AlarmFilter {
        terminal: Some(terminal),
        active_only: true,
        limit: 10_000,
        ..AlarmFilter::default()
    };
    let alarms = store.alarms(filter).await?;
    Ok(u32::try_from(alarms.len()).unwrap_or(u32::MAX))
}

/// One terminal: its record, latest upload, and every value of that upload decoded.
#[utoipa::path(get, path = "/api/terminals/{terminal}", tag = "terminals",
    params(TerminalPath),
    responses(
        (status = 200, description = "The terminal", body = TerminalDetail),
        (status = 400, description = "Not a terminal number", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "Unknown terminal", body = ErrorBody),
    ))]
pub(crate) async fn terminal<S: Store>(
    State(state): State<ApiState<S>>,
    Viewer(caller): Viewer,
    PathParams(terminal): PathParams<String>,
) -> ApiResult<Json<TerminalDetail>> {
    let terminal = parse_terminal(&terminal)?;
    let record = known_terminal(&state.store, terminal).await?;
    let latest = state.store.latest(terminal).await?;
    let active = active_alarms(&state.store, terminal).await?;
    let mut values = latest
        .as_ref()
        .and_then(|row| decode_frame(&row.raw).ok())
        .unwrap_or_default();
    if !caller.sees_device_password() {
        values = values.without_password();
    }
    Ok(Json(TerminalDetail {
        terminal: TerminalView::new(&record, active),
        latest: latest.as_ref().map(Into::into),
        values,
    }))
}

/// A terminal's latest frame, as received (hex) and decoded.
#[utoipa::path(get, path = "/api/terminals/{terminal}/latest", tag = "terminals",
    params(TerminalPath),
    responses(
        (status = 200, description = "The latest frame", body = LatestFrame),
        (status = 400, description = "Not a terminal number", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "Unknown terminal, or nothing uploaded yet", body = ErrorBody),
    ))]
pub(crate) async fn latest_frame<S: Store>(
    State(state): State<ApiState<S>>,
    Viewer(caller): Viewer,
    PathParams(terminal): PathParams<String>,
) -> ApiResult<Json<LatestFrame>> {
    let terminal = parse_terminal(&terminal)?;
    known_terminal(&state.store, terminal).await?;
    let Some(row) = state.store.latest(terminal).await? else {
        return Err(ApiError::not_found(format!(
            "terminal {terminal} has not uploaded anything yet"
        )));
    };
    let (mut values, decode_error) = match decode_frame(&row.raw) {
        Ok(values) => (values, None),
        Err(error) => (Default::default(), Some(error)),
    };
    let reveal = caller.sees_device_password();
    if !reveal {
        values = values.without_password();
    }
    Ok(Json(LatestFrame {
        terminal: terminal.to_string(),
        at: row.at.millis(),
        record: row.record,
        length: row.raw.len(),
        hex: if reveal {
            hex(&row.raw)
        } else {
            hex_without_password(&row.raw)
        },
        values,
        decode_error,
    }))
}

/// History range and resolution.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Range start, ms since the epoch (default: `to` minus 1 hour for raw, 1 day for minute,
    /// 30 days for hour).
    #[param(minimum = 0)]
    from: Option<i64>,
    /// Range end (exclusive), ms since the epoch (default: now).
    #[param(minimum = 1)]
    to: Option<i64>,
    /// `raw` (at most 1 day), `minute` (at most 31 days) or `hour` (at most 3660 days);
    /// default `minute`.
    resolution: Option<ResolutionName>,
}

const DAY: Duration = Duration::from_secs(86_400);

/// Longest range of a history at each resolution (bounds the points of one answer).
pub(crate) fn max_range(resolution: Resolution) -> Duration {
    match resolution {
        Resolution::Raw => DAY,
        Resolution::Minute => DAY * 31,
        Resolution::Hour => DAY * 3660,
    }
}

fn default_range(resolution: Resolution) -> Duration {
    match resolution {
        Resolution::Raw => Duration::from_secs(3600),
        Resolution::Minute => DAY,
        Resolution::Hour => DAY * 30,
    }
}

/// The checked `[from, to)` and resolution of a history query at `now`.
fn history_range(
    query: &HistoryQuery,
    now: Timestamp,
) -> ApiResult<(Timestamp, Timestamp, ResolutionName)> {
    let name = query.resolution.unwrap_or(ResolutionName::Minute);
    let resolution = Resolution::from(name);
    let to = query.to.map_or(now, Timestamp);
    let from = query.from.map_or_else(
        || to.minus(default_range(resolution)).max(Timestamp(0)),
        Timestamp,
    );
    if from.millis() < 0 {
        return Err(ApiError::bad_request("from must not be before 1970"));
    }
    if from >= to {
        return Err(ApiError::bad_request(format!(
            "from ({}) must be before to ({})",
            from.millis(),
            to.millis()
        )));
    }
    let span = to.since(from);
    let max = max_range(resolution);
    if span > max {
        return Err(too_long(name, span, max));
    }
    Ok((from, to, name))
}

fn too_long(name: ResolutionName, span: Duration, max: Duration) -> ApiError {
    let advice = match name {
        ResolutionName::Raw => "use resolution=minute (up to 31 days) or hour",
        ResolutionName::Minute => "use resolution=hour (up to 3660 days)",
        ResolutionName::Hour => "ask for a shorter range",
    };
    let days = |d: Duration| d.as_secs_f64() / 86_400.0;
    ApiError::bad_request(format!(
        "a {} history covers at most {} days, and {:.1} days were asked for: {advice}",
        resolution_word(name),
        days(max),
        days(span)
    ))
    .with_detail(serde_json::json!({
        "resolution": resolution_word(name),
        "max_range_ms": max.as_millis() as u64,
        "asked_ms": span.as_millis() as u64,
    }))
}

fn resolution_word(name: ResolutionName) -> &'static str {
    match name {
        ResolutionName::Raw => "raw",
        ResolutionName::Minute => "minute",
        ResolutionName::Hour => "hour",
    }
}

/// A terminal's history over a range, at a resolution.
///
/// Raw rows are kept for the raw retention period; minute and hour roll-ups for longer.
#[utoipa::path(get, path = "/api/terminals/{terminal}/history", tag = "terminals",
    params(TerminalPath, HistoryQuery),
    responses(
        (status = 200, description = "The history, oldest first", body = HistoryView),
        (status = 400, description = "Bad range: empty, before 1970, or longer than the resolution allows", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "Unknown terminal", body = ErrorBody),
    ))]
pub(crate) async fn history<S: Store>(
    State(state): State<ApiState<S>>,
    _caller: Viewer,
    PathParams(terminal): PathParams<String>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> ApiResult<Json<HistoryView>> {
    let terminal = parse_terminal(&terminal)?;
    let (from, to, resolution) = history_range(&query, Timestamp::now())?;
    known_terminal(&state.store, terminal).await?;
    let points = state
        .store
        .history(terminal, from, to, resolution.into())
        .await?;
    Ok(Json(HistoryView {
        terminal: terminal.to_string(),
        from: from.millis(),
        to: to.millis(),
        resolution,
        points: points.iter().map(Into::into).collect(),
    }))
}

/// Names a terminal (operator).
#[utoipa::path(patch, path = "/api/terminals/{terminal}", tag = "terminals",
    params(TerminalPath),
    request_body = TerminalRename,
    responses(
        (status = 200, description = "The renamed terminal", body = TerminalView),
        (status = 400, description = "Not a terminal number", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, description = "Unknown terminal", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
        (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = ErrorBody),
    ))]
pub(crate) async fn rename_terminal<S: Store>(
    State(state): State<ApiState<S>>,
    Operator(caller): Operator,
    PathParams(terminal): PathParams<String>,
    JsonBody(rename): JsonBody<TerminalRename>,
) -> ApiResult<Json<TerminalView>> {
    let terminal = parse_terminal(&terminal)?;
    let name = checked_terminal_name(rename.name)?;
    known_terminal(&state.store, terminal).await?;
    state
        .store
        .set_terminal_name(terminal, name.clone())
        .await?;
    let detail = format!("name {:?}", name.as_deref().unwrap_or(""));
    let entry = caller.audit_entry("rename_terminal", format!("terminal {terminal}"), &detail);
    record(&state.store, entry).await;
    let record = known_terminal(&state.store, terminal).await?;
    let active = active_alarms(&state.store, terminal).await?;
    Ok(Json(TerminalView::new(&record, active)))
}

fn checked_terminal_name(name: Option<String>) -> ApiResult<Option<String>> {
    let Some(name) = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_TERMINAL_NAME {
        return Err(ApiError::unprocessable(format!(
            "a terminal name has at most {MAX_TERMINAL_NAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "a terminal name has no control characters",
        ));
    }
    Ok(Some(name))
}

/// Approves or rejects a terminal (operator).
#[utoipa::path(put, path = "/api/terminals/{terminal}/registration", tag = "registration",
    params(TerminalPath),
    request_body = RegistrationDecision,
    responses(
        (status = 200, description = "The terminal after the decision", body = TerminalView),
        (status = 400, description = "Not a terminal number", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, description = "Unknown terminal", body = ErrorBody),
        (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = ErrorBody),
        (status = 422, description = "The JSON body lacks a field or has one of the wrong type", body = ErrorBody),
    ))]
pub(crate) async fn set_registration<S: Store>(
    State(state): State<ApiState<S>>,
    Operator(caller): Operator,
    PathParams(terminal): PathParams<String>,
    JsonBody(decision): JsonBody<RegistrationDecision>,
) -> ApiResult<Json<TerminalView>> {
    let terminal = parse_terminal(&terminal)?;
    known_terminal(&state.store, terminal).await?;
    let registration = Registration::from(decision.registration);
    state.store.set_registration(terminal, registration).await?;
    let action = match registration {
        Registration::Approved => "approve_terminal",
        Registration::Rejected => "reject_terminal",
        Registration::Pending => "unregister_terminal",
    };
    let entry = caller.audit_entry(action, format!("terminal {terminal}"), "");
    record(&state.store, entry).await;
    let record = known_terminal(&state.store, terminal).await?;
    let active = active_alarms(&state.store, terminal).await?;
    Ok(Json(TerminalView::new(&record, active)))
}

/// Terminals waiting for approval (registration policy "approval").
#[utoipa::path(get, path = "/api/registrations", tag = "registration",
    responses(
        (status = 200, description = "Pending terminals, by number", body = Vec<TerminalView>),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
pub(crate) async fn pending_registrations<S: Store>(
    State(state): State<ApiState<S>>,
    _caller: Viewer,
) -> ApiResult<Json<Vec<TerminalView>>> {
    let mut entries = state.store.fleet().await?;
    entries.retain(|e| e.record.registration == Registration::Pending);
    entries.sort_by_key(|e| e.record.terminal);
    Ok(Json(
        entries
            .iter()
            .map(|e| TerminalView::new(&e.record, e.active_alarms))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use axum::http::StatusCode;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    fn query(from: Option<i64>, to: Option<i64>, resolution: ResolutionName) -> HistoryQuery {
        HistoryQuery {
            from,
            to,
            resolution: Some(resolution),
        }
    }

    #[test]
    fn history_ranges_default_to_a_window_ending_now() {
        let (from, to, _) = history_range(&HistoryQuery::default(), NOW).unwrap();
        assert_eq!(to, NOW);
        assert_eq!(to.since(from), DAY);
        let (from, _, r) = history_range(&query(None, None, ResolutionName::Raw), NOW).unwrap();
        assert_eq!(
            (NOW.since(from), r),
            (Duration::from_secs(3600), ResolutionName::Raw)
        );
    }

    #[test]
    fn history_ranges_are_bounded_per_resolution() {
        let day = 86_400_000;
        let ok = |from, to, r| history_range(&query(Some(from), Some(to), r), NOW).is_ok();
        assert!(ok(0, day, ResolutionName::Raw));
        assert!(!ok(0, day + 1, ResolutionName::Raw));
        assert!(ok(0, 31 * day, ResolutionName::Minute));
        assert!(!ok(0, 31 * day + 1, ResolutionName::Minute));
        assert!(ok(0, 3660 * day, ResolutionName::Hour));
        let error =
            history_range(&query(Some(0), Some(2 * day), ResolutionName::Raw), NOW).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.body().error.contains("resolution=minute"), "{error}");
    }

    #[test]
    fn empty_reversed_and_prehistoric_ranges_are_refused() {
        for (from, to) in [(5, 5), (6, 5), (-1, 5), (i64::MIN, i64::MAX)] {
            let q = query(Some(from), Some(to), ResolutionName::Hour);
            assert!(history_range(&q, NOW).is_err(), "{from}..{to}");
        }
    }

    #[test]
    fn terminal_names_are_trimmed_bounded_and_printable() {
        assert_eq!(checked_terminal_name(Some("  ".into())).unwrap(), None);
        assert_eq!(
            checked_terminal_name(Some(" rack 1 ".into())).unwrap(),
            Some("rack 1".into())
        );
        assert!(checked_terminal_name(Some("x".repeat(65))).is_err());
        assert!(checked_terminal_name(Some("a\u{7}".into())).is_err());
    }
}
