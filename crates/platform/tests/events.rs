//! `GET /api/events` against a real SQLite store: what an open page hears (hello, coalesced
//! fleet uploads, one terminal's uploads, alarm changes from the hub, from an
//! acknowledgement and from the store check that covers other platform processes) and who
//! may open a feed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use bmslink_core::snapshot::PackSnapshot;
use bmslink_platform::api::{self, ApiConfig, ApiState};
use bmslink_platform::live::{AlarmChange, LiveEvent, LiveHub};
use bmslink_platform::model::{
    AlarmKind, ConnectionOwner, ProcessId, TelemetryRow, Terminal, Timestamp,
};
use bmslink_platform::store::sqlite::SqliteStore;
use bmslink_platform::store::Store;
use bmslink_proto::vectors;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const T1: Terminal = Terminal(0x0003E8);
const T2: Terminal = Terminal(0x0003E9);
const OWNER: ConnectionOwner = ConnectionOwner {
    process: ProcessId(1),
    connection: 1,
};
/// Longer than the feed's store check (5 s), with room for a loaded machine.
const STORE_CHECK_WAIT: Duration = Duration::from_secs(12);

struct Harness {
    store: SqliteStore,
    hub: LiveHub,
    app: Router,
    cookie: String,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("platform.db")).unwrap();
    let hub = LiveHub::new();
    let config = ApiConfig {
        failed_login_delay: Duration::from_millis(10),
        ..ApiConfig::default()
    };
    let state = ApiState::new(store.clone(), config).with_hub(hub.clone());
    let app = api::router(state);
    for terminal in [T1, T2] {
        upload(&store, terminal).await;
    }
    let password = api::create_admin(&store, "root").await.unwrap();
    let body = json!({"name": "root", "password": password});
    let request = Request::post("/api/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    Harness {
        store,
        hub,
        app,
        cookie,
        _dir: dir,
    }
}

/// Stores one upload of `terminal` (which makes it known).
async fn upload(store: &SqliteStore, terminal: Terminal) {
    store
        .terminal_connected(terminal, OWNER, Timestamp::now(), true)
        .await
        .unwrap();
    let frame = vectors::bytes("A03").unwrap();
    let snapshot = PackSnapshot::parse(&frame, bmslink_core::time::Instant::ZERO).unwrap();
    let record = (Timestamp::now().millis() % 0xFF_FFFF) as u32;
    let row = TelemetryRow::from_snapshot(terminal, Timestamp::now(), record, &snapshot, frame);
    store.insert_telemetry(vec![row]).await.unwrap();
}

/// An open feed: the events parsed from the body as they arrive.
struct Feed {
    body: BodyDataStream,
    buffer: String,
}

impl Feed {
    /// The next event's name and data; panics after `within`.
    async fn next(&mut self, within: Duration) -> (String, Value) {
        let read = async {
            loop {
                if let Some(event) = self.parse_one() {
                    return event;
                }
                let chunk = self.body.next().await.expect("the feed ended").unwrap();
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        };
        tokio::time::timeout(within, read)
            .await
            .unwrap_or_else(|_| panic!("no event within {within:?}; buffer {:?}", self.buffer))
    }

    /// Takes one complete event (comments skipped) off the buffer.
    fn parse_one(&mut self) -> Option<(String, Value)> {
        loop {
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_string();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim());
                }
            }
            if !data.is_empty() {
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
        }
    }

    /// Events until one named `name`, which is returned.
    async fn until(&mut self, name: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (event, data) = self.next(left).await;
            if event == name {
                return data;
            }
        }
    }
}

impl Harness {
    async fn open(&self, query: &str, cookie: Option<&str>) -> Result<Feed, (StatusCode, Value)> {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(format!("/api/events{query}"));
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        if status != StatusCode::OK {
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            return Err((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ));
        }
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert_eq!(content_type, "text/event-stream");
        let mut feed = Feed {
            body: response.into_body().into_data_stream(),
            buffer: String::new(),
        };
        let (hello, _) = feed.next(Duration::from_secs(5)).await;
        assert_eq!(hello, "hello");
        Ok(feed)
    }

    async fn feed(&self, query: &str) -> Feed {
        match self.open(query, Some(&self.cookie)).await {
            Ok(feed) => feed,
            Err((status, body)) => panic!("feed {query} refused: {status} {body}"),
        }
    }
}

fn upload_event(terminal: Terminal) -> LiveEvent {
    LiveEvent::Upload {
        terminal,
        at: Timestamp::now(),
    }
}

#[tokio::test]
async fn the_fleet_feed_gathers_uploads_into_one_event_a_second() {
    let h = harness().await;
    let mut feed = h.feed("").await;
    for _ in 0..50 {
        h.hub.publish(upload_event(T1));
        h.hub.publish(upload_event(T2));
    }
    let (name, data) = feed.next(Duration::from_secs(5)).await;
    assert_eq!(name, "fleet");
    assert_eq!(data, json!({"terminals": ["0003E8", "0003E9"]}));
    // Nothing more until the next upload, which comes in the next gathering.
    h.hub.publish(upload_event(T2));
    let (name, data) = feed.next(Duration::from_secs(5)).await;
    assert_eq!(
        (name.as_str(), data),
        ("fleet", json!({"terminals": ["0003E9"]}))
    );
}

#[tokio::test]
async fn a_terminal_feed_carries_only_that_terminals_uploads_and_alarms() {
    let h = harness().await;
    let mut feed = h.feed("?terminal=3e8").await;
    h.hub.publish(upload_event(T2));
    h.hub.publish(LiveEvent::Alarm {
        terminal: T2,
        id: Some(99),
        kind: AlarmKind::SocLow,
        change: AlarmChange::Raised,
        at: Timestamp(5),
    });
    h.hub.publish(LiveEvent::Upload {
        terminal: T1,
        at: Timestamp(1_700_000_000_000),
    });
    let (name, data) = feed.next(Duration::from_secs(5)).await;
    assert_eq!(name, "upload");
    assert_eq!(
        data,
        json!({"terminal": "0003E8", "at": 1_700_000_000_000_i64})
    );
    h.hub.publish(LiveEvent::Alarm {
        terminal: T1,
        id: Some(4),
        kind: AlarmKind::Bms("cell_over_voltage".into()),
        change: AlarmChange::Raised,
        at: Timestamp(6),
    });
    let (name, data) = feed.next(Duration::from_secs(5)).await;
    assert_eq!(name, "alarm");
    assert_eq!(
        data,
        json!({"change": "raised", "terminal": "0003E8", "id": 4, "kind": "bms",
               "warning": "cell_over_voltage", "at": 6})
    );
}

#[tokio::test]
async fn an_acknowledgement_through_the_api_reaches_open_feeds() {
    let h = harness().await;
    let (id, _) = h
        .store
        .raise_alarm(
            T1,
            AlarmKind::CellSpread,
            "spread 80 mV".into(),
            Timestamp::now(),
        )
        .await
        .unwrap();
    let mut feed = h.feed("").await;
    let request = Request::post(format!("/api/alarms/{id}/acknowledge"))
        .header(header::COOKIE, &h.cookie)
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let data = feed.until("alarm", Duration::from_secs(5)).await;
    assert_eq!(data["change"], "acknowledged");
    assert_eq!(data["id"], id);
    assert_eq!(data["kind"], "cell_spread");
}

#[tokio::test]
async fn what_another_process_stored_reaches_the_feed_through_the_store_check() {
    let h = harness().await;
    let mut terminal_feed = h.feed("?terminal=0003E8").await;
    let mut fleet_feed = h.feed("").await;
    // The first check learns the state; give it time before changing the store behind the
    // hub's back, as another platform process would.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (id, _) = h
        .store
        .raise_alarm(
            T1,
            AlarmKind::SocLow,
            "SOC 4 % < 10 %".into(),
            Timestamp::now(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    upload(&h.store, T1).await;

    let raised = fleet_feed.until("alarm", STORE_CHECK_WAIT).await;
    assert_eq!(
        (raised["change"].as_str(), raised["id"].as_i64()),
        (Some("raised"), Some(id))
    );
    let mut events = Vec::new();
    while events.len() < 2 {
        let (name, data) = terminal_feed.next(STORE_CHECK_WAIT).await;
        events.push((name, data));
    }
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert!(
        names.contains(&"upload") && names.contains(&"alarm"),
        "{events:?}"
    );

    h.store
        .clear_alarm(T1, AlarmKind::SocLow, Timestamp::now())
        .await
        .unwrap();
    let cleared = fleet_feed.until("alarm", STORE_CHECK_WAIT).await;
    assert_eq!(
        (cleared["change"].as_str(), cleared["id"].as_i64()),
        (Some("cleared"), Some(id))
    );
}

#[tokio::test]
async fn feeds_need_a_login_and_a_known_terminal() {
    let h = harness().await;
    let (status, _) = h.open("", None).await.err().expect("opened without login");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = h
        .open("?terminal=ABCDEF", Some(&h.cookie))
        .await
        .err()
        .expect("opened for an unknown terminal");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no terminal ABCDEF is known");
    let (status, _) = h
        .open("?terminal=xyz", Some(&h.cookie))
        .await
        .err()
        .expect("opened for a malformed terminal");
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Sends one raw HTTP/1.1 request to `address` and returns what arrives until `enough` says
/// so (or the server closes), as text.
async fn raw_http(address: std::net::SocketAddr, request: String, enough: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let read = async {
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            received.extend_from_slice(&buffer[..n]);
            if n == 0 || String::from_utf8_lossy(&received).contains(enough) {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("no complete answer within 10 s");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn answers_are_gzipped_but_the_event_stream_is_not() {
    let h = harness().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(api::serve(listener, h.app.clone(), std::future::pending()));

    let document = raw_http(
        address,
        "GET /api/openapi.json HTTP/1.1\r\nHost: test\r\nAccept-Encoding: gzip\r\n\
         Connection: close\r\n\r\n"
            .to_string(),
        "\r\n\r\n",
    )
    .await
    .to_ascii_lowercase();
    assert!(document.starts_with("http/1.1 200"), "{document}");
    assert!(document.contains("content-encoding: gzip"), "{document}");

    let events = raw_http(
        address,
        format!(
            "GET /api/events HTTP/1.1\r\nHost: test\r\nAccept-Encoding: gzip\r\nCookie: {}\r\n\r\n",
            h.cookie
        ),
        "event: hello",
    )
    .await;
    let lower = events.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: text/event-stream"),
        "{events}"
    );
    assert!(!lower.contains("content-encoding"), "{events}");
    server.abort();
}
