//! The OpenAPI document of the API, generated from the handlers' annotations and the DTOs'
//! schemas (so it cannot drift from the code), served at `/api/openapi.json`; and the health
//! check.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi};

use super::dto::Health;
use super::error::{ApiResult, ErrorBody};
use super::{alarms, dto, events, fleet, sessions, settings, tokens, users, ApiState};
use crate::model::Terminal;
use crate::store::Store;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "bmslink platform API",
        description = "The bmslink monitoring platform: a fleet of BMS data boxes, their \
            telemetry, alarms and remote settings, users and the audit log.\n\n\
            Authenticate with the session cookie from `POST /api/login`, or an API token \
            (`POST /api/tokens`) as `Authorization: Bearer <secret>`. Roles: viewer < operator \
            (settings, acknowledgements, registrations) < admin (users, audit). Times are \
            milliseconds since the Unix epoch (UTC); terminals are their number in hex \
            (`0003E8`). Every error is `{\"error\": \"...\", \"detail\": ...}`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        health, document,
        sessions::login, sessions::logout, sessions::me, sessions::change_own_password,
        fleet::fleet, fleet::terminal, fleet::rename_terminal, fleet::latest_frame,
        fleet::history, fleet::set_registration, fleet::pending_registrations,
        settings::read_settings, settings::write_settings, settings::settings_schema,
        settings::command,
        alarms::alarms, alarms::acknowledge_alarm, events::events,
        users::users, users::create_user, users::update_user, users::delete_user,
        users::audit_log,
        tokens::tokens, tokens::create_token, tokens::revoke_token,
    ),
    components(schemas(ErrorBody, dto::SettingError, dto::RangeView, fleet::FleetSort, fleet::SortOrder)),
    modifiers(&Security),
    security(("token" = []), ("session" = [])),
    tags(
        (name = "auth", description = "Log in and out, the caller, one's own password"),
        (name = "fleet", description = "Every terminal with its latest values"),
        (name = "terminals", description = "One terminal: record, latest frame, history, name"),
        (name = "settings", description = "A device's settings: read, write (validated first), schema and presets, commands"),
        (name = "alarms", description = "Alarms and acknowledgement"),
        (name = "live", description = "Live events for open pages (server-sent events)"),
        (name = "registration", description = "Terminals waiting for approval"),
        (name = "users", description = "User administration (admin)"),
        (name = "tokens", description = "One's own API tokens"),
        (name = "audit", description = "The audit log (admin)"),
        (name = "system", description = "Health and this document"),
    ),
)]
struct ApiDoc;

/// Adds the two ways to authenticate.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An API token from POST /api/tokens"))
            .build();
        components.add_security_scheme("token", SecurityScheme::Http(bearer));
        let cookie = ApiKey::Cookie(ApiKeyValue::with_description(
            super::SESSION_COOKIE,
            "The session from POST /api/login",
        ));
        components.add_security_scheme("session", SecurityScheme::ApiKey(cookie));
        // The version is the crate's, not utoipa's default of the crate that derives.
        openapi.info.version = env!("CARGO_PKG_VERSION").to_string();
        // utoipa 5 writes `#[schema(min_properties = 1)]` as maxProperties: set it here.
        if let Some(RefOr::T(Schema::Object(update))) = components.schemas.get_mut("UserUpdate") {
            update.min_properties = Some(1);
            update.max_properties = None;
        }
    }
}

/// The API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as JSON text, made once.
fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| openapi().to_json().unwrap_or_default())
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub(crate) async fn document() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}

/// Liveness: 200 when the API answers and the store is reachable, 503 when it is not.
#[utoipa::path(get, path = "/api/health", tag = "system", security(()),
    responses(
        (status = 200, description = "Up", body = Health),
        (status = 503, description = "The store is unreachable", body = ErrorBody),
    ))]
pub(crate) async fn health<S: Store>(State(state): State<ApiState<S>>) -> ApiResult<Json<Health>> {
    state.store.terminal(Terminal(0)).await?;
    Ok(Json(Health {
        status: "ok".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }))
}
