//! The web app as the daemon serves it: the API router with the embedded app as its
//! fallback. The index and assets come with their media types and validators, unknown paths
//! are 404, and `/api` still answers JSON (unknown API routes included).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use bmslink_platform::api::{self, ApiConfig, ApiState};
use bmslink_platform::store::sqlite::SqliteStore;
use bmslink_platform::web;
use http_body_util::BodyExt;
use tower::ServiceExt;

struct App {
    router: Router,
    _dir: tempfile::TempDir,
}

fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("platform.db")).unwrap();
    let state = ApiState::new(store, ApiConfig::default());
    App {
        router: api::router(state).fallback_service(web::web_app()),
        _dir: dir,
    }
}

async fn send(app: &App, method: Method, path: &str, etag: Option<&str>) -> Response {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    let request = request.body(Body::empty()).unwrap();
    app.router.clone().oneshot(request).await.unwrap()
}

async fn get(app: &App, path: &str) -> Response {
    send(app, Method::GET, path, None).await
}

fn header_text(response: &Response, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

async fn body_text(response: Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_root_serves_the_index_uncached() {
    let app = app();
    let response = get(&app, "/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_text(&response, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(header_text(&response, header::CACHE_CONTROL), "no-cache");
    assert!(header_text(&response, header::CONTENT_SECURITY_POLICY).contains("default-src 'self'"));
    let html = body_text(response).await;
    assert!(html.contains("js/main.js"), "{html}");
    assert!(html.contains("vendor/uplot/uPlot.iife.min.js"), "{html}");
}

#[tokio::test]
async fn assets_have_their_media_types_and_etags() {
    let app = app();
    for (path, media_type) in [
        ("/js/main.js", "text/javascript; charset=utf-8"),
        ("/app.css", "text/css; charset=utf-8"),
        (
            "/vendor/uplot/uPlot.iife.min.js",
            "text/javascript; charset=utf-8",
        ),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let response = get(&app, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header_text(&response, header::CONTENT_TYPE),
            media_type,
            "{path}"
        );
        assert_eq!(
            header_text(&response, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        assert!(
            header_text(&response, header::ETAG).starts_with('"'),
            "{path}"
        );
        assert!(!body_text(response).await.is_empty(), "{path}");
    }
}

#[tokio::test]
async fn a_matching_etag_answers_not_modified_without_a_body() {
    let app = app();
    let first = get(&app, "/js/api.js").await;
    let etag = header_text(&first, header::ETAG).to_string();
    let again = send(&app, Method::GET, "/js/api.js", Some(&etag)).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header_text(&again, header::ETAG), etag);
    assert!(body_text(again).await.is_empty());
    let other = send(&app, Method::GET, "/js/api.js", Some("\"stale\"")).await;
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_and_unsafe_paths_are_not_found() {
    let app = app();
    for path in [
        "/nope.js",
        "/js/nope.js",
        "/js/../Cargo.toml",
        "/js//main.js",
        "/pack/0003E8",
    ] {
        let response = get(&app, path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn only_reads_are_allowed_on_assets() {
    let app = app();
    let head = send(&app, Method::HEAD, "/", None).await;
    assert_eq!(head.status(), StatusCode::OK);
    let post = send(&app, Method::POST, "/js/main.js", None).await;
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header_text(&post, header::ALLOW), "GET, HEAD");
}

#[tokio::test]
async fn the_api_still_answers_json_beside_the_app() {
    let app = app();
    let health = get(&app, "/api/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert!(header_text(&health, header::CONTENT_TYPE).starts_with("application/json"));
    let unknown = get(&app, "/api/no/such/route").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(header_text(&unknown, header::CONTENT_TYPE).starts_with("application/json"));
    assert!(body_text(unknown).await.contains("no such API route"));
    let me = get(&app, "/api/me").await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}
