//! Logging in and out, the caller, and one's own password.

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::{
    check_new_password, expired_cookie, hash_password, new_secret, secret_hash, session_cookie,
    session_from_cookies, verify_password, Caller, Viewer, MAX_NAME_LEN, MAX_PASSWORD_LEN,
};
use super::dto::{LoginRequest, LoginResponse, Me, PasswordChange, UserView};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{shorten, ClientAddress, JsonBody};
use super::{record, ApiState};
use crate::model::{AuditEntry, Credential, Timestamp, User};
use crate::store::Store;

fn login_entry(actor: &str, action: &str, name: &str, detail: String) -> AuditEntry {
    AuditEntry {
        at: Timestamp::now(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: format!("user {:?}", shorten(name, MAX_NAME_LEN)),
        detail,
    }
}

/// Logs in with a name and password: sets the `bmslink_session` cookie (HttpOnly,
/// SameSite=Strict). Failures are slowed and limited per client address.
#[utoipa::path(post, path = "/api/login", tag = "auth", request_body = LoginRequest,
    security(()),
    responses(
        (status = 200, description = "Logged in; the session is in the cookie", body = LoginResponse,
            headers(("set-cookie" = String, description = "bmslink_session=<secret>; HttpOnly; SameSite=Strict; Path=/; Max-Age=<session lifetime>"))),
        (status = 401, description = "Wrong user name or password", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this address", body = ErrorBody),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = ErrorBody),
        (status = 422, description = "The JSON body lacks a field or has one of the wrong type", body = ErrorBody),
    ))]
pub(crate) async fn login<S: Store>(
    State(state): State<ApiState<S>>,
    ClientAddress(address): ClientAddress,
    JsonBody(login): JsonBody<LoginRequest>,
) -> ApiResult<Response> {
    if let Err(retry) = state.limiter.check(&address, Instant::now()) {
        let detail = format!("refused: too many failures; from {address}");
        record(
            &state.store,
            login_entry("-", "login_failed", &login.name, detail),
        )
        .await;
        let seconds = retry.as_secs().max(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed logins from this address: try again in {seconds} s"),
        )
        .with_retry_after(seconds));
    }
    match check_login(&state, &login).await? {
        (Some(user), true) => start_session(&state, user, &address).await,
        (user, _) => Err(failed_login(&state, &login.name, user.is_some(), &address).await),
    }
}

/// The user of that name, and whether the password is theirs; takes as long for an unknown
/// name.
async fn check_login<S: Store>(
    state: &ApiState<S>,
    login: &LoginRequest,
) -> ApiResult<(Option<User>, bool)> {
    let plausible = login.name.chars().count() <= MAX_NAME_LEN
        && login.password.len() <= MAX_PASSWORD_LEN
        && !login.name.is_empty();
    let user = if plausible {
        state.store.user_by_name(login.name.clone()).await?
    } else {
        None
    };
    let password = if plausible {
        login.password.clone()
    } else {
        String::new()
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let verified = verify_password(password, hash).await;
    Ok((user, verified))
}

async fn failed_login<S: Store>(
    state: &ApiState<S>,
    name: &str,
    known: bool,
    address: &str,
) -> ApiError {
    state.limiter.failed(address, Instant::now());
    tokio::time::sleep(state.config.failed_login_delay).await;
    let (actor, why) = if known {
        (name, "wrong password")
    } else {
        ("-", "unknown user")
    };
    let detail = format!("{why}; from {address}");
    record(
        &state.store,
        login_entry(&shorten(actor, MAX_NAME_LEN), "login_failed", name, detail),
    )
    .await;
    ApiError::unauthorized("wrong user name or password")
}

async fn start_session<S: Store>(
    state: &ApiState<S>,
    user: User,
    address: &str,
) -> ApiResult<Response> {
    state.limiter.succeeded(address);
    let secret = new_secret("")?;
    let now = Timestamp::now();
    let expires = now.plus(state.config.session_lifetime);
    let credential = Credential {
        secret_hash: secret_hash(&secret),
        user_id: user.id,
        is_token: false,
        label: String::new(),
        expires: Some(expires),
        created: now,
    };
    state.store.insert_credential(credential).await?;
    let detail = format!("session until {} ms; from {address}", expires.millis());
    record(
        &state.store,
        login_entry(&user.name, "login", &user.name, detail),
    )
    .await;
    let cookie = session_cookie(&secret, &state.config)?;
    let body = LoginResponse {
        user: UserView::from(&user),
        expires: expires.millis(),
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// Ends the session of the cookie (if any) and removes the cookie. API tokens are revoked
/// with `DELETE /api/tokens/{id}` instead.
#[utoipa::path(post, path = "/api/logout", tag = "auth", security(()),
    responses(
        (status = 204, description = "Logged out; the cookie is cleared",
            headers(("set-cookie" = String, description = "bmslink_session=; Max-Age=0"))),
    ))]
pub(crate) async fn logout<S: Store>(
    State(state): State<ApiState<S>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(secret) = session_from_cookies(&headers) {
        let hash = secret_hash(&secret);
        let found = state
            .store
            .credential(hash.clone(), Timestamp::now())
            .await?;
        if let Some((credential, user)) = found.filter(|(c, _)| !c.is_token) {
            state
                .store
                .delete_credential(credential.secret_hash)
                .await?;
            let detail = format!("from {address}");
            record(
                &state.store,
                login_entry(&user.name, "logout", &user.name, detail),
            )
            .await;
        }
    }
    let cookie = expired_cookie(&state.config)?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// Who is calling, and with what credential.
#[utoipa::path(get, path = "/api/me", tag = "auth",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
pub(crate) async fn me(Viewer(caller): Viewer) -> Json<Me> {
    Json(me_of(&caller))
}

fn me_of(caller: &Caller) -> Me {
    Me {
        user: UserView::from(&caller.user),
        via: if caller.credential.is_token {
            "token"
        } else {
            "session"
        }
        .to_string(),
        expires: caller.credential.expires.map(|t| t.millis()),
    }
}

/// Changes one's own password (any role); needs the current one.
#[utoipa::path(put, path = "/api/me/password", tag = "auth", request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "The current password is wrong", body = ErrorBody),
        (status = 422, description = "The new password is too short or too long", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords from this address", body = ErrorBody),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = ErrorBody),
    ))]
pub(crate) async fn change_own_password<S: Store>(
    State(state): State<ApiState<S>>,
    Viewer(caller): Viewer,
    JsonBody(change): JsonBody<PasswordChange>,
) -> ApiResult<StatusCode> {
    if let Err(retry) = state.limiter.check(&caller.address, Instant::now()) {
        let seconds = retry.as_secs().max(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many wrong passwords from this address: try again in {seconds} s"),
        )
        .with_retry_after(seconds));
    }
    check_new_password(&change.new_password).map_err(ApiError::unprocessable)?;
    let current = shorten_password(change.current_password);
    if !verify_password(current, Some(caller.user.password_hash.clone())).await {
        state.limiter.failed(&caller.address, Instant::now());
        tokio::time::sleep(state.config.failed_login_delay).await;
        let target = format!("user {}", caller.user.name);
        let entry = caller.audit_entry("change_password_failed", target, "wrong password");
        record(&state.store, entry).await;
        return Err(ApiError::forbidden("the current password is wrong"));
    }
    let hash = hash_password(change.new_password)
        .await
        .map_err(ApiError::internal)?;
    state
        .store
        .update_user(caller.user.id, None, Some(hash))
        .await?;
    let entry = caller.audit_entry(
        "change_password",
        format!("user {}", caller.user.name),
        "own password",
    );
    record(&state.store, entry).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A password too long to be one is checked as the empty one (never right, same time).
fn shorten_password(password: String) -> String {
    if password.len() > MAX_PASSWORD_LEN {
        String::new()
    } else {
        password
    }
}
