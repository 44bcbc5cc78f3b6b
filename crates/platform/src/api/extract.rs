//! Request extractors whose rejections are [`ApiError`]s in the API's one error shape (axum's
//! own answer with plain text), the client's address, and the parsing of path values.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::ApiState;
use crate::model::Terminal;
use crate::store::Store;

/// A JSON body; a malformed one is a 400 (syntax), 415 (not JSON) or 422 (wrong shape).
pub(crate) struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = client_status(rejection.status());
    let error = match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "the body must be JSON (Content-Type: application/json)"
        }
        JsonRejection::JsonSyntaxError(_) => "the body is not valid JSON",
        JsonRejection::JsonDataError(_) => "the body does not have the expected fields",
        _ => "the body could not be read",
    };
    ApiError::new(status, error).with_detail(rejection.body_text())
}

/// Query parameters; malformed ones are a 400 naming the parameter.
pub(crate) struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(QueryParams(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid query parameters").with_detail(rejection.body_text())
}

/// Path parameters; malformed ones are a 400.
pub(crate) struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParams(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    let status = client_status(rejection.status());
    ApiError::new(status, "invalid path parameter").with_detail(rejection.body_text())
}

/// A rejection's status, unless axum calls its own misuse a server error: a client gets 400.
fn client_status(status: StatusCode) -> StatusCode {
    if status.is_client_error() {
        status
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// The address the request came from, for the audit log and the login rate limit: the TCP
/// peer, or the first `X-Forwarded-For` entry when the configuration trusts a reverse proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientAddress(pub String);

impl<S: Store> FromRequestParts<ApiState<S>> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState<S>,
    ) -> Result<Self, Self::Rejection> {
        Ok(client_address(parts, state.config.trust_forwarded_for))
    }
}

pub(crate) fn client_address(parts: &Parts, trust_forwarded_for: bool) -> ClientAddress {
    let forwarded = trust_forwarded_for
        .then(|| parts.headers.get("x-forwarded-for"))
        .flatten()
        .and_then(|value| value.to_str().ok())
        .and_then(|list| list.split(',').next())
        .map(str::trim)
        .filter(|first| !first.is_empty() && first.len() <= 64);
    if let Some(first) = forwarded {
        return ClientAddress(first.to_string());
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip().to_string());
    ClientAddress(peer.unwrap_or_else(|| "unknown".to_string()))
}

/// The `{terminal}` path parameter, for the OpenAPI document (handlers parse it with
/// [`parse_terminal`], which answers 400 with the rule).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TerminalPath {
    /// Terminal number, 1 to 6 hex digits.
    #[param(pattern = "^[0-9A-Fa-f]{1,6}$", example = "0003E8")]
    #[allow(dead_code)]
    terminal: String,
}

/// Parses a terminal as it appears in paths and JSON: its 24-bit number in 1 to 6 hex digits
/// (`0003E8`, as [`Terminal`] displays it).
pub(crate) fn parse_terminal(text: &str) -> Result<Terminal, ApiError> {
    let valid = (1..=6).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit());
    match u32::from_str_radix(text, 16) {
        Ok(number) if valid => Ok(Terminal(number)),
        _ => Err(ApiError::bad_request(format!(
            "a terminal is its number in 1 to 6 hex digits (like 0003E8), not {:?}",
            shorten(text, 40)
        ))),
    }
}

/// At most `max` characters of `text`, for echoing client input in messages.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn terminals_are_one_to_six_hex_digits() {
        assert_eq!(parse_terminal("0003E8").unwrap(), Terminal(1000));
        assert_eq!(parse_terminal("3e8").unwrap(), Terminal(1000));
        assert_eq!(parse_terminal("FFFFFF").unwrap(), Terminal(0xFF_FFFF));
        for bad in ["", "1000000", "+3E8", "xyz", "0x3E8", " 3E8"] {
            let error = parse_terminal(bad).unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    #[test]
    fn echoed_input_is_shortened_on_a_character_boundary() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("ééééé", 2), "éé...");
    }

    #[test]
    fn the_forwarded_address_is_used_only_when_trusted() {
        let request = axum::http::Request::builder()
            .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        assert_eq!(client_address(&parts, true).0, "203.0.113.7");
        assert_eq!(client_address(&parts, false).0, "unknown");
    }
}
