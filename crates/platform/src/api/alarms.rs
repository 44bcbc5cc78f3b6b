//! Alarms: the list (filters) and acknowledgement.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::{Operator, Viewer};
use super::dto::AlarmView;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{parse_terminal, PathParams, QueryParams};
use super::{record, ApiState};
use crate::live::{AlarmChange, LiveEvent};
use crate::model::Timestamp;
use crate::store::{AlarmFilter, Store};

/// Most alarms in one answer.
const MAX_ALARMS: u32 = 1000;

/// Alarm filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlarmQuery {
    /// Only this terminal's (1 to 6 hex digits).
    #[param(pattern = "^[0-9A-Fa-f]{1,6}$", example = "0003E8")]
    terminal: Option<String>,
    /// Only alarms not cleared yet.
    active: Option<bool>,
    /// Raised at or after, ms since the epoch.
    from: Option<i64>,
    /// Raised before, ms since the epoch.
    to: Option<i64>,
    /// Most alarms, newest first (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

impl AlarmQuery {
    fn filter(&self) -> ApiResult<AlarmFilter> {
        let limit = self.limit.unwrap_or(100);
        if limit == 0 || limit > MAX_ALARMS {
            return Err(ApiError::bad_request(format!(
                "limit is 1 to {MAX_ALARMS}, not {limit}"
            )));
        }
        let terminal = self.terminal.as_deref().map(parse_terminal).transpose()?;
        Ok(AlarmFilter {
            terminal,
            active_only: self.active.unwrap_or(false),
            from: self.from.map(Timestamp),
            to: self.to.map(Timestamp),
            limit,
        })
    }
}

/// Alarms, newest first.
#[utoipa::path(get, path = "/api/alarms", tag = "alarms", params(AlarmQuery),
    responses(
        (status = 200, description = "Alarms, newest first", body = Vec<AlarmView>),
        (status = 400, description = "Invalid filters", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
pub(crate) async fn alarms<S: Store>(
    State(state): State<ApiState<S>>,
    _caller: Viewer,
    QueryParams(query): QueryParams<AlarmQuery>,
) -> ApiResult<Json<Vec<AlarmView>>> {
    let filter = query.filter()?;
    let alarms = state.store.alarms(filter).await?;
    let now = Timestamp::now().millis();
    Ok(Json(
        alarms.iter().map(|a| AlarmView::new(a, now)).collect(),
    ))
}

/// Acknowledges an alarm (operator); acknowledging twice keeps the first acknowledgement.
#[utoipa::path(post, path = "/api/alarms/{id}/acknowledge", tag = "alarms",
    params(("id" = i64, Path, description = "Alarm id", example = 1)),
    responses(
        (status = 200, description = "The acknowledged alarm", body = AlarmView),
        (status = 400, description = "Not an alarm id", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Needs the operator role", body = ErrorBody),
        (status = 404, description = "Unknown alarm", body = ErrorBody),
    ))]
pub(crate) async fn acknowledge_alarm<S: Store>(
    State(state): State<ApiState<S>>,
    Operator(caller): Operator,
    PathParams(id): PathParams<i64>,
) -> ApiResult<Json<AlarmView>> {
    let now = Timestamp::now();
    let alarm = state
        .store
        .acknowledge_alarm(id, caller.actor(), now)
        .await
        .map_err(|error| match error {
            crate::store::StoreError::NotFound(_) => {
                ApiError::not_found(format!("no alarm {id} is known"))
            }
            other => other.into(),
        })?;
    state.hub.publish(LiveEvent::Alarm {
        terminal: alarm.terminal,
        id: Some(id),
        kind: alarm.kind.clone(),
        change: AlarmChange::Acknowledged,
        at: now,
    });
    let target = format!("alarm {id} (terminal {})", alarm.terminal);
    let entry = caller.audit_entry("ack_alarm", target, &alarm.detail);
    record(&state.store, entry).await;
    Ok(Json(AlarmView::new(&alarm, now.millis())))
}
