//! Two `bmslink platform` processes sharing one PostgreSQL (started by the test), with a
//! simulated data box (`bmslink sim`, a third process) connected to process B, driven through
//! the HTTP API of process A:
//!
//! ```text
//!  test ──HTTP──► platform A ──┐                ┌── platform B ◄──TCP── bmslink sim (data box)
//!                              └─► PostgreSQL ◄─┘
//!                     (commands: LISTEN/NOTIFY; online: owner + heartbeats)
//! ```
//!
//! - the box's uploads reach A's fleet list (online, with a latest upload);
//! - a settings read-all and a settings write issued through A reach the box connected to B
//!   (queued in the database, announced with NOTIFY, run by B's connection), the write read
//!   back with the new value;
//! - B is killed (SIGKILL: no clean stop, its terminals left "online"); once its heartbeat
//!   is older than `[cluster] process_timeout` (3 s here), A's liveness sweep marks the
//!   terminal offline, and A refuses commands for it.
//!
//! Without PostgreSQL binaries the test prints `SKIPPED` and passes, except under `CI=true`,
//! where it fails (see `support/pg.rs` of the platform crate).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[allow(dead_code)]
#[path = "../../platform/tests/support/pg.rs"]
mod pg;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_bmslink");
/// The simulated box's terminal number (`--terminal-base 7000`), as the API writes it.
const TERMINAL: &str = "001B58";
/// The liveness timeout of both processes.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(3);

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test leaves none.
struct Running {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Running {
    fn spawn(name: &'static str, dir: &Path, args: &[&str]) -> Running {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {BIN}: {e}"));
        Running { name, child, log }
    }

    /// Everything the process wrote so far.
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fails the test with this process's output if it has exited.
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.output());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A platform configuration file: its own ports, the shared database, a short timeout.
fn write_config(dir: &Path, name: &str, url: &str, devices: u16, http: u16) -> PathBuf {
    let data = dir.join(format!("data-{name}"));
    let text = format!(
        "log_level = \"info\"\n\
         data_dir = \"{}\"\n\
         [devices]\nlisten = \"127.0.0.1:{devices}\"\n\
         [database]\nbackend = \"postgres\"\nurl = \"{url}\"\n\
         [http]\nlisten = \"127.0.0.1:{http}\"\ncommand_timeout = \"20s\"\n\
         [cluster]\nprocess_timeout = \"{}s\"\n",
        data.display(),
        PROCESS_TIMEOUT.as_secs()
    );
    let path = dir.join(format!("platform-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// An HTTP response: status, headers (lower-case names), JSON body (`null` if none).
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
fn http(
    api: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut stream = TcpStream::connect(api).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n");
    if let Some(cookie) = cookie {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    let body = serde_json::from_str(&body).unwrap_or(Value::Null);
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || tail.len() < size {
            break;
        }
        body.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    body
}

/// Logs in; returns the session cookie (`bmslink_session=...`).
fn login(api: SocketAddr, name: &str, password: &str) -> String {
    let response = http(
        api,
        "POST",
        "/api/login",
        None,
        Some(&json!({"name": name, "password": password})),
    );
    assert_eq!(response.status, 200, "login: {}", response.body);
    let cookie = response.header("set-cookie").expect("a session cookie");
    cookie.split(';').next().unwrap().to_string()
}

/// Polls until `api` answers its health check.
fn wait_until_serving(api: SocketAddr, process: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        process.check_alive();
        if TcpStream::connect(api).is_ok()
            && http(api, "GET", "/api/health", None, None).status == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} does not serve HTTP:\n{}",
            process.name,
            process.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The terminal's entry in A's fleet list, if listed.
fn fleet_entry(api: SocketAddr, cookie: &str) -> Option<Value> {
    let fleet = http(api, "GET", "/api/fleet", Some(cookie), None);
    assert_eq!(fleet.status, 200, "fleet: {}", fleet.body);
    fleet.body["terminals"]
        .as_array()?
        .iter()
        .find(|entry| entry["terminal"] == TERMINAL)
        .cloned()
}

/// Polls the fleet list until `done` holds for the terminal's entry; returns it and how long
/// it took.
fn wait_for_entry(
    api: SocketAddr,
    cookie: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
    processes: &mut [&mut Running],
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let entry = fleet_entry(api, cookie);
        if let Some(entry) = entry.as_ref().filter(|e| done(e)) {
            return (entry.clone(), started.elapsed());
        }
        if started.elapsed() > within {
            let logs: Vec<String> = processes
                .iter()
                .map(|p| format!("--- {}:\n{}", p.name, p.output()))
                .collect();
            panic!(
                "{what}: not within {within:?}; the entry: {entry:?}\n{}",
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A setting's raw value (the BMS's integer: mV for voltages).
fn setting(values: &Value, name: &str) -> Value {
    values[name]["raw"].clone()
}

#[test]
fn two_processes_share_postgres_and_commands_reach_a_box_on_the_other() {
    let Some(server) = pg::PgServer::start_or_skip("two platform processes on PostgreSQL") else {
        return;
    };
    let url = server.create_database("two_processes");
    let dir = tempfile::tempdir().unwrap();
    let (devices_a, http_a) = (free_port(), free_port());
    let (devices_b, http_b) = (free_port(), free_port());
    let config_a = write_config(dir.path(), "a", &url, devices_a, http_a);
    let config_b = write_config(dir.path(), "b", &url, devices_b, http_b);
    let config_a = config_a.to_str().unwrap();
    let config_b = config_b.to_str().unwrap();

    let created = Command::new(BIN)
        .args(["platform", "create-admin", "admin", "--config", config_a])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&created.stdout);
    assert!(
        created.status.success(),
        "create-admin: {printed}{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let password = printed
        .rsplit_once(": ")
        .map(|(_, password)| password.trim().to_string())
        .expect("the generated password");

    let mut a = Running::spawn(
        "platform A",
        dir.path(),
        &["platform", "--config", config_a],
    );
    let mut b = Running::spawn(
        "platform B",
        dir.path(),
        &["platform", "--config", config_b],
    );
    let api = SocketAddr::from(([127, 0, 0, 1], http_a));
    wait_until_serving(api, &mut a);
    wait_until_serving(SocketAddr::from(([127, 0, 0, 1], http_b)), &mut b);
    let upload = format!("127.0.0.1:{devices_b}");
    let mut sim = Running::spawn(
        "bmslink sim",
        dir.path(),
        &[
            "sim",
            "--packs",
            "1",
            "--upload",
            &upload,
            "--interval",
            "1s",
            "--terminal-base",
            "7000",
        ],
    );
    let cookie = login(api, "admin", &password);

    // The box, connected to B, is online with a latest upload in A's fleet list.
    let (entry, _) = wait_for_entry(
        api,
        &cookie,
        Duration::from_secs(60),
        "the box online with an upload, seen through A",
        |e| e["online"] == true && !e["latest"].is_null(),
        &mut [&mut a, &mut b, &mut sim],
    );
    assert_eq!(entry["registration"], "approved", "{entry}");

    // A read-all through A reaches the box through B.
    let path = format!("/api/terminals/{TERMINAL}/settings");
    let read = http(api, "GET", &path, Some(&cookie), None);
    assert_eq!(read.status, 200, "read through A: {}", read.body);
    assert_eq!(read.body["terminal"], TERMINAL);
    let values = &read.body["values"];
    assert_eq!(values["cell_count"]["value"], 16, "{values}");
    assert_eq!(
        setting(values, "cell_over_voltage_protection"),
        3650,
        "{values}"
    );

    // A write through A: applied by the BMS behind B, and read back.
    let write = json!({
        "values": {"cell_over_voltage_protection": "3.600"},
        "password": "123456",
    });
    let written = http(api, "PATCH", &path, Some(&cookie), Some(&write));
    assert_eq!(written.status, 200, "write through A: {}", written.body);
    assert_eq!(written.body["ok"], true, "{}", written.body);
    let outcome = &written.body["settings"][0];
    assert_eq!(outcome["identifier"], "cell_over_voltage_protection");
    assert_eq!(outcome["old"]["raw"], 3650, "{outcome}");
    assert_eq!(outcome["read_back"]["raw"], 3600, "{outcome}");
    // A second read-all (through A again) finds the BMS's new setting.
    let again = http(api, "GET", &path, Some(&cookie), None);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        setting(&again.body["values"], "cell_over_voltage_protection"),
        3600
    );

    // B crashes: nothing marks the terminal offline but A's liveness sweep, once B's
    // heartbeat is older than the timeout.
    a.check_alive();
    b.kill();
    let (entry, took) = wait_for_entry(
        api,
        &cookie,
        PROCESS_TIMEOUT + Duration::from_secs(20),
        "the terminal offline after B was killed",
        |e| e["online"] == false,
        &mut [&mut a, &mut sim],
    );
    eprintln!("offline {took:?} after B was killed (process timeout {PROCESS_TIMEOUT:?})");
    assert!(
        a.output().contains("liveness sweep"),
        "A logs its sweep:\n{}",
        a.output()
    );
    assert!(entry["last_seen"].as_i64().unwrap() > 0);
    // ... and A refuses commands for it, rather than queueing them for nobody.
    let refused = http(api, "GET", &path, Some(&cookie), None);
    assert_eq!(refused.status, 409, "{}", refused.body);
    a.check_alive();
}
