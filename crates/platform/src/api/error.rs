//! The API's one error shape: `{ "error": "<what went wrong, in words>", "detail": <null, text
//! or structured data> }` with the status that says whose fault it is.
//!
//! Client mistakes are 4xx and say how to fix them; the store being unreachable is 503 (retry
//! later); only a bug or unreadable stored data is 500. Every 5xx is logged.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::store::StoreError;

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
    /// More: the fields at fault, the role needed, the command id... (`null` when there is
    /// nothing more to say).
    pub detail: Value,
}

/// An error response: a status and an [`ErrorBody`].
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status` and message, without detail.
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                detail: Value::Null,
            },
            retry_after: None,
        }
    }

    /// Adds structured detail.
    pub fn with_detail(mut self, detail: impl Into<Value>) -> ApiError {
        self.body.detail = detail.into();
        self
    }

    /// Adds a `Retry-After` header (seconds).
    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }

    /// 400: the request is malformed.
    pub fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    /// 401: no credentials, or credentials that do not work.
    pub fn unauthorized(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, error)
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, error)
    }

    /// 404: no such thing.
    pub fn not_found(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, error)
    }

    /// 409: the request contradicts the current state.
    pub fn conflict(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, error)
    }

    /// 422: well-formed, but a value is invalid.
    pub fn unprocessable(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error)
    }

    /// 500: a bug or unreadable stored data.
    pub fn internal(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.body.error)
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        let status = match &error {
            StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let api = ApiError::new(status, error.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            api.with_retry_after(5)
        } else {
            api
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, error = %self.body.error, "API request failed");
        }
        let mut response = (self.status, Json(self.body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"bmslink\""),
            );
        }
        response
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn store_errors_map_to_statuses_that_say_whose_fault_it_is() {
        let status = |e| ApiError::from(e).status();
        assert_eq!(
            status(StoreError::Unavailable("disk full".into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(StoreError::Conflict("name".into())),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(StoreError::NotFound("x".into())),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(StoreError::Corrupt("x".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn unavailable_store_asks_to_retry_and_unauthorized_names_the_scheme() {
        let response = ApiError::from(StoreError::Unavailable("x".into())).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let response = ApiError::unauthorized("log in").into_response();
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
