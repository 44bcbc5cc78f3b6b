//! User administration (admin) and the audit log (admin). The last admin can be neither
//! demoted nor deleted, so a platform always has someone who can manage users.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::{check_new_password, check_user_name, hash_password, role_name, Admin};
use super::dto::{AuditView, NewUser, UserUpdate, UserView};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{JsonBody, PathParams, QueryParams};
use super::{record, ApiState};
use crate::model::{Role, Timestamp, User};
use crate::store::{Store, StoreError};

/// Most audit entries in one answer.
const MAX_AUDIT: u32 = 10_000;

/// Every user.
#[utoipa::path(get, path = "/api/users", tag = "users",
    responses(
        (status = 200, description = "The users", body = Vec<UserView>),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
    ))]
pub(crate) async fn users<S: Store>(
    State(state): State<ApiState<S>>,
    _caller: Admin,
) -> ApiResult<Json<Vec<UserView>>> {
    let users = state.store.users().await?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

/// Creates a user (admin).
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "Invalid name or password", body = ErrorBody),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = ErrorBody),
    ))]
pub(crate) async fn create_user<S: Store>(
    State(state): State<ApiState<S>>,
    Admin(caller): Admin,
    JsonBody(new): JsonBody<NewUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    check_user_name(&new.name).map_err(ApiError::unprocessable)?;
    check_new_password(&new.password).map_err(ApiError::unprocessable)?;
    let hash = hash_password(new.password)
        .await
        .map_err(ApiError::internal)?;
    let role = Role::from(new.role);
    let user = state
        .store
        .create_user(new.name.clone(), role, hash, Timestamp::now())
        .await
        .map_err(|error| match error {
            StoreError::Conflict(_) => {
                ApiError::conflict(format!("a user named {:?} exists already", new.name))
            }
            other => other.into(),
        })?;
    let detail = format!("role {}", role_name(role));
    let entry = caller.audit_entry("create_user", format!("user {}", user.name), &detail);
    record(&state.store, entry).await;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// The user with `id` among `users`, or 404.
fn find(users: &[User], id: i64) -> ApiResult<&User> {
    users
        .iter()
        .find(|u| u.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no user {id} is known")))
}

/// 409 if `user` is the last admin and would stop being one.
fn keep_an_admin(users: &[User], user: &User, action: &str) -> ApiResult<()> {
    let admins = users.iter().filter(|u| u.role == Role::Admin).count();
    if user.role == Role::Admin && admins <= 1 {
        return Err(ApiError::conflict(format!(
            "{} is the last admin and cannot be {action}: make another user admin first",
            user.name
        )));
    }
    Ok(())
}

/// Changes a user's role and/or password (admin).
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", request_body = UserUpdate,
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "The user after the change", body = UserView),
        (status = 400, description = "Not a user id", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, description = "Unknown user", body = ErrorBody),
        (status = 409, description = "Would demote the last admin", body = ErrorBody),
        (status = 422, description = "Nothing to change, or an invalid password", body = ErrorBody),
        (status = 415, description = "The body is not JSON (Content-Type: application/json)", body = ErrorBody),
    ))]
pub(crate) async fn update_user<S: Store>(
    State(state): State<ApiState<S>>,
    Admin(caller): Admin,
    PathParams(id): PathParams<i64>,
    JsonBody(update): JsonBody<UserUpdate>,
) -> ApiResult<Json<UserView>> {
    if update.role.is_none() && update.password.is_none() {
        return Err(ApiError::unprocessable(
            "nothing to change: give a role, a password or both",
        ));
    }
    let users = state.store.users().await?;
    let user = find(&users, id)?;
    let role = update.role.map(Role::from);
    if role.is_some_and(|r| r != Role::Admin) {
        keep_an_admin(&users, user, "demoted")?;
    }
    let hash = match update.password {
        Some(password) => {
            check_new_password(&password).map_err(ApiError::unprocessable)?;
            Some(hash_password(password).await.map_err(ApiError::internal)?)
        }
        None => None,
    };
    let changed_password = hash.is_some();
    let updated = state.store.update_user(id, role, hash).await?;
    let mut changes = Vec::new();
    if let Some(role) = role {
        changes.push(format!("role {}", role_name(role)));
    }
    if changed_password {
        changes.push("password changed".to_string());
    }
    let target = format!("user {}", updated.name);
    let entry = caller.audit_entry("update_user", target, &changes.join(", "));
    record(&state.store, entry).await;
    Ok(Json(UserView::from(&updated)))
}

/// Deletes a user with their sessions and tokens (admin).
#[utoipa::path(delete, path = "/api/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a user id", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
        (status = 404, description = "Unknown user", body = ErrorBody),
        (status = 409, description = "The last admin", body = ErrorBody),
    ))]
pub(crate) async fn delete_user<S: Store>(
    State(state): State<ApiState<S>>,
    Admin(caller): Admin,
    PathParams(id): PathParams<i64>,
) -> ApiResult<StatusCode> {
    let users = state.store.users().await?;
    let user = find(&users, id)?;
    keep_an_admin(&users, user, "deleted")?;
    state.store.delete_user(id).await?;
    let entry = caller.audit_entry("delete_user", format!("user {}", user.name), "");
    record(&state.store, entry).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Audit log range.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// From, ms since the epoch (default: the beginning).
    #[param(minimum = 0)]
    from: Option<i64>,
    /// Until (exclusive), ms since the epoch (default: now).
    #[param(minimum = 1)]
    to: Option<i64>,
    /// Most entries, newest first (1 to 10000, default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// The audit log, newest first (admin): every login and every change, with who, what, on
/// what, and from where.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "Entries, newest first", body = Vec<AuditView>),
        (status = 400, description = "Bad range or limit", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Needs the admin role", body = ErrorBody),
    ))]
pub(crate) async fn audit_log<S: Store>(
    State(state): State<ApiState<S>>,
    _caller: Admin,
    QueryParams(query): QueryParams<AuditQuery>,
) -> ApiResult<Json<Vec<AuditView>>> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_AUDIT {
        return Err(ApiError::bad_request(format!(
            "limit is 1 to {MAX_AUDIT}, not {limit}"
        )));
    }
    let from = Timestamp(query.from.unwrap_or(0));
    if from.millis() < 0 {
        return Err(ApiError::bad_request("from must not be before 1970"));
    }
    let to = query.to.map_or_else(
        || Timestamp::now().plus(std::time::Duration::from_millis(1)),
        Timestamp,
    );
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    let entries = state.store.audit_log(from, to, limit).await?;
    Ok(Json(entries.iter().map(AuditView::from).collect()))
}
