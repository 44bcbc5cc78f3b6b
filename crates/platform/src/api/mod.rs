//! The platform's HTTP API: JSON under `/api`, described by an OpenAPI 3.1 document at
//! `/api/openapi.json`, for the web app and for scripts.
//!
//! ```text
//!  method  path                                    least role  what
//!  GET     /api/health                             -           liveness and store reachability
//!  GET     /api/openapi.json                       -           this API's OpenAPI document
//!  POST    /api/login                              -           name + password -> session cookie
//!  POST    /api/logout                             -           ends the cookie's session
//!  GET     /api/me                                 viewer      who am I
//!  PUT     /api/me/password                        viewer      change one's own password
//!  GET     /api/fleet                              viewer      terminals with latest values
//!  GET     /api/terminals/{terminal}               viewer      record, latest upload, decoded
//!  PATCH   /api/terminals/{terminal}               operator    rename
//!  GET     /api/terminals/{terminal}/latest        viewer      latest frame, hex and decoded
//!  GET     /api/terminals/{terminal}/history       viewer      range, raw | minute | hour
//!  GET     /api/terminals/{terminal}/settings      viewer      read every setting from the device
//!  PATCH   /api/terminals/{terminal}/settings      operator    write settings, validated first
//!  PUT     /api/terminals/{terminal}/registration  operator    approve / reject
//!  GET     /api/registrations                      viewer      terminals waiting for approval
//!  GET     /api/settings/schema                    viewer      settings for forms, presets
//!  GET     /api/commands/{id}                      viewer      a remote command's state
//!  GET     /api/events                             viewer      live events (server-sent)
//!  GET     /api/alarms                             viewer      alarms (filters)
//!  POST    /api/alarms/{id}/acknowledge            operator    acknowledge
//!  GET     /api/users                              admin       users
//!  POST    /api/users                              admin       create a user
//!  PATCH   /api/users/{id}                         admin       change role or password
//!  DELETE  /api/users/{id}                         admin       delete (never the last admin)
//!  GET     /api/tokens                             viewer      one's own API tokens
//!  POST    /api/tokens                             viewer      new token; its secret shown once
//!  DELETE  /api/tokens/{id}                        viewer      revoke one's own token
//!  GET     /api/audit                              admin       the audit log
//! ```
//!
//! Authentication: a session cookie from `POST /api/login`, or an API token as
//! `Authorization: Bearer <secret>`; the least role of each route is checked (401 without
//! working credentials, 403 with too small a role). Every login (successful or not) and every
//! change (settings, acknowledgements, registrations, names, users, passwords, tokens) is
//! recorded with [`Store::audit`], with the client's address. The first admin comes from
//! [`create_admin`]: there is no default password. The BMS's parameter-change password (0xB2)
//! is masked for viewers wherever a device's values are shown.
//!
//! Errors have one shape, [`ErrorBody`]: `{"error": "...", "detail": ...}`. Bad client input is
//! always a 4xx that says what to fix; an unreachable store is 503 with `Retry-After`.
//!
//! Remote commands (reading and writing a device's settings) are queued in the store with
//! [`Store::enqueue_command`]; the listener process that holds the terminal's connection runs
//! them, and the API waits for the result (up to [`ApiConfig::command_timeout`], then 504; a
//! command still queued then is cancelled, so it never runs later unseen).
//!
//! The web app (its own issue) plugs in as the fallback of the returned router: `/api/*` paths
//! are all answered here (unknown ones with a JSON 404), everything else goes to
//! `router(state).fallback_service(assets)`, which is where the app's static files are served.

mod alarms;
mod auth;
mod decode;
mod dto;
mod error;
mod events;
mod extract;
mod fleet;
mod openapi;
mod sessions;
mod settings;
mod tokens;
mod users;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::OriginalUri;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, patch, post, put};
use axum::Router;
use tokio::net::TcpListener;

pub use auth::{
    create_admin, ensure_admin, generate_password, AdminAccount, CreateAdminError, SESSION_COOKIE,
    TOKEN_PREFIX,
};
pub use dto::*;
pub use error::{ApiError, ErrorBody};
pub use openapi::openapi;

use crate::config::HttpConfig;
use crate::live::LiveHub;
use crate::model::{AuditEntry, Timestamp};
use crate::store::Store;
use auth::{Caller, LoginLimiter};

/// How the API behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    /// How long a login session lasts (the cookie's Max-Age).
    pub session_lifetime: Duration,
    /// Mark the session cookie `Secure` (set when the platform is reached over HTTPS, as
    /// behind a TLS-terminating reverse proxy).
    pub secure_cookies: bool,
    /// How long a settings read or write waits for the terminal before answering 504.
    pub command_timeout: Duration,
    /// Delay added to every failed login (slows password guessing).
    pub failed_login_delay: Duration,
    /// Failed logins allowed per client address within [`login_window`](Self::login_window)
    /// before logins from it are refused with 429.
    pub login_failures_allowed: u32,
    /// The window of that count.
    pub login_window: Duration,
    /// Take the client address from the first `X-Forwarded-For` entry (only behind a reverse
    /// proxy that sets it; otherwise clients could choose their address).
    pub trust_forwarded_for: bool,
}

impl Default for ApiConfig {
    /// 12-hour sessions, plain cookies, 30 s command timeout, 1 s failed-login delay, 10
    /// failures per 15 minutes per address, no proxy.
    fn default() -> Self {
        ApiConfig {
            session_lifetime: Duration::from_secs(12 * 3600),
            secure_cookies: false,
            command_timeout: Duration::from_secs(30),
            failed_login_delay: Duration::from_secs(1),
            login_failures_allowed: 10,
            login_window: Duration::from_secs(15 * 60),
            trust_forwarded_for: false,
        }
    }
}

impl From<&HttpConfig> for ApiConfig {
    /// The `[http]` section of the platform's configuration file; the rest at defaults.
    fn from(http: &HttpConfig) -> ApiConfig {
        ApiConfig {
            session_lifetime: http.session_lifetime,
            secure_cookies: http.secure_cookies,
            command_timeout: http.command_timeout,
            ..ApiConfig::default()
        }
    }
}

/// What every request handler shares: the store, the configuration, the login limiter and
/// the live-event hub.
pub struct ApiState<S> {
    store: S,
    config: Arc<ApiConfig>,
    limiter: Arc<LoginLimiter>,
    hub: LiveHub,
}

impl<S: Store> ApiState<S> {
    /// The state of an API over `store`.
    pub fn new(store: S, config: ApiConfig) -> ApiState<S> {
        let limiter = LoginLimiter::new(config.login_failures_allowed, config.login_window);
        ApiState {
            store,
            config: Arc::new(config),
            limiter: Arc::new(limiter),
            hub: LiveHub::new(),
        }
    }

    /// Feeds `/api/events` from `hub` (the one the alarm task publishes on) instead of a hub
    /// of its own, which only carries the API's own acknowledgements.
    pub fn with_hub(mut self, hub: LiveHub) -> ApiState<S> {
        self.hub = hub;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.config
    }
}

impl<S: Clone> Clone for ApiState<S> {
    fn clone(&self) -> Self {
        ApiState {
            store: self.store.clone(),
            config: Arc::clone(&self.config),
            limiter: Arc::clone(&self.limiter),
            hub: self.hub.clone(),
        }
    }
}

/// The API's routes under `/api`. Paths outside `/api` fall through to the router's fallback:
/// add the web app there with `.fallback_service(...)`.
pub fn router<S: Store>(state: ApiState<S>) -> Router {
    let api = api_routes().layer(axum::middleware::map_response(no_store));
    Router::new().nest("/api", api).with_state(state)
}

fn api_routes<S: Store>() -> Router<ApiState<S>> {
    let terminal = "/terminals/{terminal}";
    Router::new()
        .route("/health", get(openapi::health::<S>))
        .route("/openapi.json", get(openapi::document))
        .route("/login", post(sessions::login::<S>))
        .route("/logout", post(sessions::logout::<S>))
        .route("/me", get(sessions::me))
        .route("/me/password", put(sessions::change_own_password::<S>))
        .route("/fleet", get(fleet::fleet::<S>))
        .route(
            terminal,
            get(fleet::terminal::<S>).patch(fleet::rename_terminal::<S>),
        )
        .route(&format!("{terminal}/latest"), get(fleet::latest_frame::<S>))
        .route(&format!("{terminal}/history"), get(fleet::history::<S>))
        .route(
            &format!("{terminal}/settings"),
            get(settings::read_settings::<S>).patch(settings::write_settings::<S>),
        )
        .route(
            &format!("{terminal}/registration"),
            put(fleet::set_registration::<S>),
        )
        .route("/registrations", get(fleet::pending_registrations::<S>))
        .route("/settings/schema", get(settings::settings_schema))
        .route("/commands/{id}", get(settings::command::<S>))
        .route("/events", get(events::events::<S>))
        .route("/alarms", get(alarms::alarms::<S>))
        .route(
            "/alarms/{id}/acknowledge",
            post(alarms::acknowledge_alarm::<S>),
        )
        .route(
            "/users",
            get(users::users::<S>).post(users::create_user::<S>),
        )
        .route(
            "/users/{id}",
            patch(users::update_user::<S>).delete(users::delete_user::<S>),
        )
        .route(
            "/tokens",
            get(tokens::tokens::<S>).post(tokens::create_token::<S>),
        )
        .route(
            "/tokens/{id}",
            axum::routing::delete(tokens::revoke_token::<S>),
        )
        .route("/audit", get(users::audit_log::<S>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// API answers are about live state: never cached.
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!(
        "no such API route: {} (see /api/openapi.json)",
        extract::shorten(uri.path(), 100)
    ))
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not allowed on {} (see /api/openapi.json)",
            extract::shorten(uri.path(), 100)
        ),
    )
}

/// Serves the API (and nothing else) on `listener` until the task is dropped.
pub async fn serve_api<S: Store>(listener: TcpListener, state: ApiState<S>) -> io::Result<()> {
    serve(listener, router(state), std::future::pending()).await
}

/// Serves `app` (the API router, maybe with the web app as its fallback) on `listener` until
/// `shutdown` completes, then finishes the requests under way. Client addresses reach the
/// handlers (for the audit log and the login rate limit). Answers are gzipped for clients
/// that accept it (not the live event streams, which must not be buffered).
pub async fn serve<F>(listener: TcpListener, app: Router, shutdown: F) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = app.layer(tower_http::compression::CompressionLayer::new());
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Appends to the audit log; a failure is logged with the whole entry (the change it records
/// has happened and is not undone).
async fn record<S: Store>(store: &S, entry: AuditEntry) {
    if let Err(error) = store.audit(entry.clone()).await {
        tracing::error!(%error, ?entry, "could not write the audit log");
    }
}

impl Caller {
    /// An audit entry of this caller's `action` on `target`, the client address appended to
    /// `detail`.
    fn audit_entry(&self, action: &str, target: String, detail: &str) -> AuditEntry {
        let from = format!("from {}", self.address);
        AuditEntry {
            at: Timestamp::now(),
            actor: self.actor(),
            action: action.to_string(),
            target,
            detail: if detail.is_empty() {
                from
            } else {
                format!("{detail}; {from}")
            },
        }
    }
}
