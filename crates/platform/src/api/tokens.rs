//! API tokens: each user manages their own. A token acts with its user's current role; its
//! secret is shown once, on creation, and only its SHA-256 is kept.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::auth::{new_secret, secret_hash, token_id, Viewer, TOKEN_PREFIX};
use super::dto::{CreatedToken, NewToken, TokenView};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{shorten, JsonBody, PathParams};
use super::{record, ApiState};
use crate::model::{Credential, Timestamp};
use crate::store::Store;

/// Most tokens a user may hold.
const MAX_TOKENS: usize = 100;

/// Longest token label.
const MAX_LABEL: usize = 64;

/// Longest token lifetime, days.
const MAX_DAYS: u32 = 3650;

/// One's own API tokens.
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses(
        (status = 200, description = "The caller's tokens (without secrets)", body = Vec<TokenView>),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
pub(crate) async fn tokens<S: Store>(
    State(state): State<ApiState<S>>,
    Viewer(caller): Viewer,
) -> ApiResult<Json<Vec<TokenView>>> {
    let tokens = state.store.tokens_of(caller.user.id).await?;
    Ok(Json(tokens.iter().map(TokenView::from).collect()))
}

fn check_new_token(new: &NewToken) -> ApiResult<()> {
    let label = new.label.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL || label.chars().any(char::is_control)
    {
        return Err(ApiError::unprocessable(format!(
            "a token label has 1 to {MAX_LABEL} printable characters"
        )));
    }
    Ok(())
}

/// The lifetime in whole days (JSON may write an integer as `30.0`), if valid.
fn lifetime_days(new: &NewToken) -> ApiResult<Option<u32>> {
    let Some(days) = new.expires_in_days else {
        return Ok(None);
    };
    if days.fract() != 0.0 || !(1.0..=f64::from(MAX_DAYS)).contains(&days) {
        return Err(ApiError::unprocessable(format!(
            "expires_in_days is a whole number of days, 1 to {MAX_DAYS} (or absent for a \
             token without end)"
        )));
    }
    Ok(Some(days as u32))
}

/// Creates an API token for the caller, acting with the caller's role. The answer is the only
/// time the secret is shown.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = NewToken,
    responses(
        (status = 201, description = "Created; the secret is shown this once", body = CreatedToken),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 409, description = "Too many tokens", body = ErrorBody),
        (status = 422, description = "Invalid label or lifetime", body = ErrorBody),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = ErrorBody),
    ))]
pub(crate) async fn create_token<S: Store>(
    State(state): State<ApiState<S>>,
    Viewer(caller): Viewer,
    JsonBody(new): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    check_new_token(&new)?;
    let days = lifetime_days(&new)?;
    if state.store.tokens_of(caller.user.id).await?.len() >= MAX_TOKENS {
        return Err(ApiError::conflict(format!(
            "a user holds at most {MAX_TOKENS} tokens: revoke some first"
        )));
    }
    let secret = new_secret(TOKEN_PREFIX)?;
    let now = Timestamp::now();
    let lifetime = |days: u32| Duration::from_secs(u64::from(days) * 86_400);
    let credential = Credential {
        secret_hash: secret_hash(&secret),
        user_id: caller.user.id,
        is_token: true,
        label: new.label.trim().to_string(),
        expires: days.map(|days| now.plus(lifetime(days))),
        created: now,
    };
    state.store.insert_credential(credential.clone()).await?;
    let token = TokenView::from(&credential);
    let target = format!("token {} ({})", token.id, token.label);
    let entry = caller.audit_entry("create_token", target, "");
    record(&state.store, entry).await;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

/// Revokes one of the caller's tokens.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id (from the token list)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "The caller has no such token", body = ErrorBody),
    ))]
pub(crate) async fn revoke_token<S: Store>(
    State(state): State<ApiState<S>>,
    Viewer(caller): Viewer,
    PathParams(id): PathParams<String>,
) -> ApiResult<StatusCode> {
    let tokens = state.store.tokens_of(caller.user.id).await?;
    let Some(token) = tokens.iter().find(|t| token_id(&t.secret_hash) == id) else {
        return Err(ApiError::not_found(format!(
            "you have no token {:?}",
            shorten(&id, 40)
        )));
    };
    state
        .store
        .delete_credential(token.secret_hash.clone())
        .await?;
    let target = format!("token {id} ({})", token.label);
    let entry = caller.audit_entry("revoke_token", target, "");
    record(&state.store, entry).await;
    Ok(StatusCode::NO_CONTENT)
}
