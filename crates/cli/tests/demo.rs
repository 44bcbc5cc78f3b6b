//! `bmslink demo` as a user runs it, every port chosen by the system (`127.0.0.1:0`):
//!
//! - it prints every address and "demo ready";
//! - the printed admin password logs in to the platform's API, whose fleet list soon holds
//!   every data box and both of the gateway's racks, online and uploading;
//! - an EMS reading the gateway's Modbus server finds the SunSpec map ("SunS" at 40000, the
//!   battery model 802) with a state of charge that moves;
//! - the gateway's /metrics answers, and the simulated inverter logs what it is told;
//! - SIGTERM stops it with exit code 0, the inverter's last word is the safe state (zero
//!   current limits), and the temporary data directory is gone;
//! - a port already in use stops it at once with an error naming the flag to change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{terminate, TempDir};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_bmslink");
/// The demo's default number of data boxes, and their first terminal number (1001).
const BOXES: usize = 36;
const FIRST_BOX: u32 = 1001;
/// The gateway's racks' terminal numbers.
const RACKS: [&str; 2] = ["000001", "000002"];
/// Model 802 (battery) starts after "SunS" (2) and model 1 (2 + 66); its SoC is at offset 11
/// from the model's ID register.
const BATTERY_MODEL: u16 = 40_070;
const SOC_REGISTER: u16 = BATTERY_MODEL + 11;

/// Every port left to the system.
const ANY_PORTS: [&str; 8] = [
    "--http",
    "127.0.0.1:0",
    "--devices",
    "127.0.0.1:0",
    "--modbus",
    "127.0.0.1:0",
    "--metrics",
    "127.0.0.1:0",
];

/// Lines from the demo's stdout and stderr, in arrival order.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(&self, stream: impl Read + Send + 'static) -> JoinHandle<()> {
        let lines = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                lines.0.lock().unwrap().push(line);
            }
        })
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    fn find(&self, needle: &str) -> Option<String> {
        let lines = self.0.lock().unwrap();
        lines.iter().find(|line| line.contains(needle)).cloned()
    }

    /// The rest of the line that starts with `prefix`.
    fn after(&self, prefix: &str) -> String {
        let lines = self.0.lock().unwrap();
        let line = lines
            .iter()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line starts with {prefix:?}:\n{}", lines.join("\n")));
        line.to_string()
    }

    /// The first word after `prefix`.
    fn word_after(&self, prefix: &str) -> String {
        let rest = self.after(prefix);
        rest.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// A running `bmslink demo`, killed if the test fails.
struct Demo {
    child: Child,
    lines: Lines,
    readers: Vec<JoinHandle<()>>,
}

impl Demo {
    /// Starts the demo with every port free, its temporary directory under `tmp`.
    fn start(tmp: &Path, extra: &[&str]) -> Demo {
        let mut child = Command::new(BIN)
            .arg("demo")
            .args(ANY_PORTS)
            .args(extra)
            .env("TMPDIR", tmp)
            .env("NO_COLOR", "1")
            .env_remove("BMSLINK_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Lines::default();
        let readers = vec![
            lines.collect(child.stdout.take().unwrap()),
            lines.collect(child.stderr.take().unwrap()),
        ];
        Demo {
            child,
            lines,
            readers,
        }
    }

    /// Waits for a line containing `needle`; panics with the output if the demo exits or it
    /// takes longer than `within`.
    fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.lines.find(needle) {
                return line;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the demo exited ({status}) before {needle:?}:\n{}",
                    self.lines.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {within:?}:\n{}",
                self.lines.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM; the exit status and everything it wrote.
    fn stop(mut self) -> (ExitStatus, String) {
        terminate(&self.child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not stop within 60 s of SIGTERM:\n{}",
                self.lines.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        (status, self.lines.text())
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The platform's API with a logged-in session.
struct Api {
    base: String,
    client: reqwest::blocking::Client,
    cookie: String,
}

impl Api {
    fn login(base: &str, name: &str, password: &str) -> Api {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let response = client
            .post(format!("{base}api/login"))
            .json(&json!({"name": name, "password": password}))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "login with the printed password");
        let cookie = response
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .expect("a session cookie")
            .to_str()
            .unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        Api {
            base: base.to_string(),
            client,
            cookie,
        }
    }

    fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, &self.cookie)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().unwrap()
    }
}

/// Terminals online with at least one upload stored.
fn uploading(fleet: &Value) -> BTreeSet<String> {
    let terminals = fleet["terminals"].as_array().cloned().unwrap_or_default();
    terminals
        .iter()
        .filter(|t| t["online"] == true && !t["latest"].is_null())
        .filter_map(|t| t["terminal"].as_str().map(str::to_string))
        .collect()
}

fn expected_terminals() -> BTreeSet<String> {
    let boxes = (FIRST_BOX..FIRST_BOX + BOXES as u32).map(|n| format!("{n:06X}"));
    boxes.chain(RACKS.iter().map(|r| r.to_string())).collect()
}

/// Holding registers of the gateway's EMS server (unit 1), read as an EMS does.
fn read_registers(server: SocketAddr, address: u16, count: u16) -> Vec<u16> {
    use tokio_modbus::prelude::*;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut ctx = tcp::connect_slave(server, Slave(1)).await.unwrap();
        ctx.read_holding_registers(address, count)
            .await
            .unwrap()
            .unwrap()
    })
}

/// Polls the SoC of model 802 (0.1 %) until the racks have been read.
fn site_soc(server: SocketAddr, within: Duration) -> u16 {
    let deadline = Instant::now() + within;
    loop {
        let soc = read_registers(server, SOC_REGISTER, 1)[0];
        if soc != 0xFFFF {
            assert!(soc <= 1000, "SoC {soc} above 100.0 %");
            return soc;
        }
        assert!(Instant::now() < deadline, "no SoC in model 802");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_demo_runs_the_whole_system_and_stops_cleanly_on_sigterm() {
    let tmp = TempDir::new();
    // 600 x real time: a state of charge that moves within seconds.
    let mut demo = Demo::start(tmp.path(), &["--speed", "600"]);
    demo.wait_for("demo ready (Ctrl-C to stop)", Duration::from_secs(120));
    let lines = demo.lines.clone();
    let web = lines.word_after("web app: ");
    assert!(
        web.starts_with("http://127.0.0.1:") && web.ends_with('/'),
        "{web}"
    );
    let admin = lines.after("admin login: ");
    let (name, password) = admin
        .split_once(" / ")
        .expect("admin login: NAME / PASSWORD");
    let devices: SocketAddr = lines.word_after("platform devices: ").parse().unwrap();
    let modbus: SocketAddr = lines.word_after("EMS Modbus TCP: ").parse().unwrap();
    let metrics = lines.word_after("gateway metrics: ");
    let can: SocketAddr = lines
        .word_after("inverter CAN (SLCAN over TCP): ")
        .parse()
        .unwrap();
    let racks: Vec<String> = (1..=2)
        .map(|n| lines.word_after(&format!("rack {n}: ")))
        .collect();
    let data = PathBuf::from(lines.word_after("data: "));
    for port in [devices.port(), modbus.port(), can.port()] {
        assert_ne!(port, 0, "printed ports are the bound ones");
    }
    assert!(
        racks.iter().all(|r| r.starts_with("tcp://127.0.0.1:")),
        "{racks:?}"
    );
    assert!(
        data.starts_with(tmp.path()) && data.is_dir(),
        "{}",
        data.display()
    );

    let api = Api::login(&web, name, password.trim());
    let expected = expected_terminals();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let fleet = api.get("api/fleet");
        let seen = uploading(&fleet);
        if expected.is_subset(&seen) {
            break;
        }
        let missing: Vec<_> = expected.difference(&seen).collect();
        assert!(
            Instant::now() < deadline,
            "not uploading within 90 s: {missing:?}\n{}",
            lines.text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    assert_eq!(read_registers(modbus, 40_000, 4), [0x5375, 0x6E53, 1, 66]);
    assert_eq!(read_registers(modbus, BATTERY_MODEL, 2), [802, 62]);
    let first = site_soc(modbus, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while site_soc(modbus, Duration::from_secs(5)) == first {
        assert!(Instant::now() < deadline, "SoC stuck at {first} for 30 s");
        std::thread::sleep(Duration::from_millis(500));
    }

    let scraped = reqwest::blocking::get(&metrics).unwrap();
    assert_eq!(scraped.status(), 200, "{metrics}");
    assert!(scraped.text().unwrap().contains("bmslink_gateway_"));

    let told = demo.wait_for("inverter: charge limit", Duration::from_secs(30));
    assert!(told.contains("SOC") && told.contains("alarms"), "{told}");

    let (status, output) = demo.stop();
    assert!(status.success(), "exit {status}:\n{output}");
    assert!(
        output.contains("last told: charge limit 0.0 A, discharge limit 0.0 A"),
        "the inverter did not get the safe state:\n{output}"
    );
    assert!(!data.exists(), "{} left behind", data.display());
}

#[test]
fn a_port_in_use_stops_the_demo_with_the_flag_to_change() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    for flag in ["--http", "--modbus"] {
        let tmp = TempDir::new();
        let mut args: Vec<&str> = vec!["demo", "--boxes", "0"];
        args.extend(ANY_PORTS);
        let at = args.iter().position(|a| *a == flag).unwrap();
        args[at + 1] = &address;
        let output = Command::new(BIN)
            .args(&args)
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{flag}:\n{stderr}");
        assert!(
            stderr.contains(&format!("error: {address} is already in use"))
                && stderr.contains(&format!("choose another port with {flag} ADDR")),
            "{flag}:\n{stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{flag}: temporary files left: {left:?}");
    }
}
