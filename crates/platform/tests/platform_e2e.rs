//! The whole platform (`Platform::start_with`: device listener, alarms, maintenance, HTTP API)
//! with simulated data boxes (`bmslink-sim`: pack physics and a BMS behind the NW protocol)
//! uploading over real TCP, on SQLite and on a PostgreSQL the test starts:
//! upload -> store -> API (fleet, latest, history), a remote settings write that reaches the
//! simulated BMS, the same write refused for a viewer (and nothing sent), and an alarm raised
//! by a simulated fault (a BMS warning bit) seen through the API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bmslink_core::chemistry::Chemistry;
use bmslink_platform::api::create_admin;
use bmslink_platform::config;
use bmslink_platform::daemon::Platform;
use bmslink_platform::store::postgres::PgStore;
use bmslink_platform::store::sqlite::SqliteStore;
use bmslink_platform::store::Store;
use bmslink_proto::TerminalId;
use bmslink_sim::bms::{BmsConfig, VirtualBms};
use bmslink_sim::pack::PackConfig;
use bmslink_sim::serve::{self, lock, Faults, SharedBms};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 exchange on a fresh connection: (status, headers, JSON body or Null).
async fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(auth) = auth {
        request.push_str(&format!("Authorization: Bearer {auth}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = decode_body(head, rest);
    (status, head.to_string(), json)
}

/// The body as JSON, undoing chunked transfer encoding.
fn decode_body(head: &str, rest: &str) -> Value {
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut remaining = rest;
        while let Some((size, after)) = remaining.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            out.push_str(&after[..size]);
            remaining = &after[size + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Logs in and creates an API token for `name`.
async fn token(address: SocketAddr, name: &str, password: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let body = json!({"name": name, "password": password}).to_string();
    let request = format!(
        "POST /api/login HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let cookie = response
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or(l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie: {response}"))
        .to_string();
    // A token, made with the session.
    let mut stream = TcpStream::connect(address).await.unwrap();
    let body = json!({"label": "e2e"}).to_string();
    let request = format!(
        "POST /api/tokens HTTP/1.1\r\nHost: test\r\nConnection: close\r\nCookie: {cookie}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, rest) = response.split_once("\r\n\r\n").unwrap();
    let json = decode_body(head, rest);
    json["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("no token secret: {head}\n{json}"))
        .to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn platform_config(dir: &std::path::Path) -> config::PlatformConfig {
    let text = format!(
        "data_dir = \"{}\"\n[devices]\nlisten = \"127.0.0.1:{}\"\n[http]\nlisten = \"127.0.0.1:{}\"\n\
         command_timeout = \"20s\"\n",
        dir.display(),
        free_port(),
        free_port()
    );
    config::load("e2e.toml", &text).unwrap()
}

/// `count` simulated data boxes with terminals 1000.., uploading every second.
fn start_boxes(platform: SocketAddr, count: u32) -> Vec<SharedBms> {
    let packs: Vec<SharedBms> = (0..count)
        .map(|i| {
            let mut config =
                BmsConfig::new(PackConfig::new(Chemistry::Lfp, 16, 100.0, u64::from(i) + 7));
            config.terminal = TerminalId::new(0, 1000 + i).unwrap();
            Arc::new(Mutex::new(VirtualBms::new(config).unwrap()))
        })
        .collect();
    for (i, bms) in packs.iter().enumerate() {
        tokio::spawn(serve::run_data_box(
            platform.to_string(),
            bms.clone(),
            Duration::from_secs(1),
            Faults::default(),
            i as u64,
        ));
    }
    tokio::spawn(serve::run_clock(packs.clone(), 1.0));
    packs
}

/// Polls `GET path` until `done` holds for its JSON, or fails after `within`.
async fn wait_for(
    api: SocketAddr,
    token: &str,
    path: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (status, _, json) = http(api, "GET", path, Some(token), None).await;
        if status == 200 && done(&json) {
            return json;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: GET {path} -> {status} {json}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn fleet_entries(fleet: &Value) -> Vec<Value> {
    fleet["terminals"]
        .as_array()
        .or(fleet.as_array())
        .cloned()
        .unwrap_or_default()
}

async fn round_trip<S: Store>(store: S, dir: &std::path::Path) {
    let password = create_admin(&store, "admin").await.unwrap();
    let config = platform_config(dir);
    let platform = Platform::start_with(store, &config).await.unwrap();
    let api = platform.http_address;
    let admin = token(api, "admin", &password).await;
    let (status, _, _) = http(
        api,
        "POST",
        "/api/users",
        Some(&admin),
        Some(&json!({"name": "vera", "role": "viewer", "password": "viewer-password-1"})),
    )
    .await;
    assert_eq!(status, 201, "create a viewer");
    let viewer = token(api, "vera", "viewer-password-1").await;

    let packs = start_boxes(platform.devices_address, 3);
    // Upload -> store -> API: three terminals online with their latest values.
    let fleet = wait_for(api, &admin, "/api/fleet", Duration::from_secs(15), |f| {
        let entries = fleet_entries(f);
        entries.len() == 3 && entries.iter().all(|e| !e["latest"].is_null())
    })
    .await;
    let soc = lock(&packs[0]).soc();
    let first = fleet_entries(&fleet)
        .into_iter()
        .find(|e| e.to_string().contains("0003E8"))
        .unwrap_or_else(|| panic!("terminal 0003E8 in {fleet}"));
    assert!(first.to_string().contains("voltage"), "{first}");
    let (status, _, latest) = http(
        api,
        "GET",
        "/api/terminals/0003E8/latest",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200, "{latest}");
    let reported = latest.to_string();
    assert!(
        reported.contains("cell_voltages") || reported.contains("cells"),
        "{reported}"
    );
    let now = bmslink_platform::model::Timestamp::now().millis();
    let history = format!(
        "/api/terminals/0003E8/history?from={}&to={}&resolution=raw",
        now - 60_000,
        now + 1_000
    );
    let points = wait_for(api, &viewer, &history, Duration::from_secs(10), |h| {
        h["points"].as_array().is_some_and(|p| p.len() >= 2)
    })
    .await;
    assert_eq!(
        points["points"][0]["cell_min_mv"]
            .as_u64()
            .map(|mv| mv > 2500),
        Some(true)
    );
    assert!((0.0..=1.0).contains(&soc));

    // A viewer may not write: 403, and the BMS keeps its value.
    let write = json!({"values": {"cell_over_voltage_protection": "3.600"}, "password": "123456"});
    let path = "/api/terminals/0003E8/settings";
    let (status, _, body) = http(api, "PATCH", path, Some(&viewer), Some(&write)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        lock(&packs[0]).settings().cell_over_voltage_protection,
        3650
    );
    // The admin's write reaches the simulated BMS through the data box's connection.
    let (status, _, body) = http(api, "PATCH", path, Some(&admin), Some(&write)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(
        lock(&packs[0]).settings().cell_over_voltage_protection,
        3600
    );
    // A remote read-all answers with the new value.
    let (status, _, read) = http(api, "GET", path, Some(&viewer), None).await;
    assert_eq!(status, 200, "{read}");
    assert!(read.to_string().contains("3.6"), "{read}");

    // A simulated fault: the charge high-temperature protection lowered below the pack's
    // temperature trips it; the BMS's warning bit becomes an alarm on the platform.
    let trip =
        json!({"values": {"charge_high_temperature_protection": "20"}, "password": "123456"});
    let (status, _, body) = http(
        api,
        "PATCH",
        "/api/terminals/0003E9/settings",
        Some(&admin),
        Some(&trip),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let alarms = wait_for(
        api,
        &viewer,
        "/api/alarms?active=true",
        Duration::from_secs(20),
        |a| a.to_string().contains("battery_over_temperature"),
    )
    .await;
    assert!(
        alarms.to_string().contains("0003E9") || alarms.to_string().contains("1001"),
        "{alarms}"
    );
    platform.stop().await;
}

#[test]
fn sqlite_upload_store_api_and_remote_write() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = SqliteStore::open(&dir.path().join("platform.sqlite")).unwrap();
            round_trip(store, dir.path()).await;
        });
}

#[test]
fn postgres_upload_store_api_and_remote_write() {
    let Some(server) = support::pg::PgServer::start_or_skip("platform_e2e") else {
        return;
    };
    let url = server.create_database("e2e");
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = PgStore::connect(&url).await.unwrap();
            round_trip(store, dir.path()).await;
        });
}
