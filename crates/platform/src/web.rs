//! The web app: the static files of `crates/platform/web/` (HTML, CSS, ES modules and the
//! vendored uPlot), embedded into the binary at compile time in debug and release builds
//! alike, so the platform needs nothing beside itself at run time.
//!
//! ```text
//!  GET /                 -> index.html          Cache-Control: no-cache
//!  GET /js/main.js       -> the file            Cache-Control: no-cache, ETag (304 on match)
//!  GET /no/such/file     -> 404 (plain text)
//!  POST /anything        -> 405
//! ```
//!
//! Every asset carries a strong `ETag` derived from its SHA-256, so browsers revalidate
//! cheaply (`If-None-Match` -> 304) and never run a stale module after an upgrade. The app
//! uses hash routes (`#/fleet`), so there is no catch-all to `index.html`. It plugs in as
//! the fallback of the API router: `api::router(state).fallback_service(web::web_app())`.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rust_embed::RustEmbed;

/// The app's files, from `crates/platform/web/`.
#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

/// The document served at `/`.
const INDEX: &str = "index.html";

/// What the app's pages may load and connect to: only this origin (inline style attributes
/// are allowed for uPlot and the cell bars).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The web app as a router that answers every path with an embedded file or 404; mount it as
/// the API router's fallback.
pub fn web_app() -> Router {
    Router::new().fallback(serve_asset)
}

/// Whether a file of that path is embedded (for tests and diagnostics).
pub fn has_asset(path: &str) -> bool {
    Assets::get(path).is_some()
}

async fn serve_asset(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed();
    }
    let Some(path) = asset_path(uri.path()) else {
        return not_found();
    };
    let Some(file) = Assets::get(&path) else {
        return not_found();
    };
    let etag = entity_tag(&file.metadata.sha256_hash());
    if matches_etag(&headers, &etag) {
        return not_modified(&path, &etag);
    }
    let mut response = Response::new(Body::from(file.data.into_owned()));
    set_asset_headers(response.headers_mut(), &path, &etag);
    response
}

/// The embedded file a request path names: `/` is the index; no empty segments, dot
/// segments or backslashes.
fn asset_path(request_path: &str) -> Option<String> {
    let relative = request_path.trim_start_matches('/');
    if relative.is_empty() {
        return Some(INDEX.to_string());
    }
    let safe = relative
        .split('/')
        .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
        && !relative.contains('\\');
    safe.then(|| relative.to_string())
}

/// A strong entity tag from a file's SHA-256 (its first 16 bytes, hex).
fn entity_tag(sha256: &[u8; 32]) -> String {
    let hex: String = sha256[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether `If-None-Match` lists `etag` (or is `*`).
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

fn set_asset_headers(headers: &mut HeaderMap, path: &str, etag: &str) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    set_validators(headers, path, etag);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path == INDEX {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
}

/// `ETag` and `Cache-Control`: every file is revalidated (module file names carry no hash,
/// so a cached copy must never outlive an upgrade); a match costs a 304 and no body.
fn set_validators(headers: &mut HeaderMap, path: &str, etag: &str) {
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    let cache = if path == INDEX {
        "no-cache"
    } else {
        "no-cache, public"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
}

/// The media type of a file, by its extension.
fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, extension)| extension);
    match extension.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "md" | "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn not_modified(path: &str, etag: &str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    set_validators(response.headers_mut(), path, etag);
    response
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

fn method_not_allowed() -> Response {
    let mut response = (StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_index_and_unsafe_paths_are_refused() {
        assert_eq!(asset_path("/").as_deref(), Some(INDEX));
        assert_eq!(asset_path("/js/main.js").as_deref(), Some("js/main.js"));
        assert_eq!(asset_path("/js/../Cargo.toml"), None);
        assert_eq!(asset_path("/js//main.js"), None);
        assert_eq!(asset_path("/js\\main.js"), None);
    }

    #[test]
    fn media_types_follow_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("js/api.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }

    #[test]
    fn entity_tags_match_exactly_weakly_or_by_star() {
        let etag = entity_tag(&[7; 32]);
        let mut headers = HeaderMap::new();
        assert!(!matches_etag(&headers, &etag));
        let listed = format!("\"other\", W/{etag}");
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&listed).unwrap_or_else(|_| HeaderValue::from_static("x")),
        );
        assert!(matches_etag(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches_etag(&headers, &etag));
    }

    #[test]
    fn the_app_is_embedded() {
        assert!(has_asset(INDEX));
        assert!(has_asset("js/main.js"));
        assert!(has_asset("vendor/uplot/uPlot.iife.min.js"));
    }
}
