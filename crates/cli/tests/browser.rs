//! The web app in a real browser: `bmslink demo` (simulated racks and data boxes, gateway,
//! platform on SQLite with the web app) driven by headless Chromium through playwright-core,
//! one node script per scenario (`tests/browser/*.mjs`):
//!
//! ```text
//!  login_fleet     wrong password refused with a message; the fleet lists every box and rack;
//!                  the search box filters the rows
//!  pack_live       a pack page updates without a reload; charts drawn; one bar per cell
//!  settings_write  an operator writes a protection threshold with confirmation and sees the
//!                  read-back; this side then reads the device again through the API
//!  alarm_live      a BMS fault (0xA3 below the pack's temperature) appears as an alarm on an
//!                  open alarms page without a reload; a viewer sees it without an acknowledge
//!                  button; the operator acknowledges it; cleared after the restore
//!  viewer          no write controls for a viewer; a forced PATCH (settings) or POST
//!                  (acknowledge) with its session is 403
//!  account         an operator changes their own password (a wrong current one refused with
//!                  the server's message) and logs in with the new one; a new API token's
//!                  secret is shown once, answers 200 on /api/me as a bearer token, 401 once
//!                  revoked; a terminal put back to pending shows in the nav's badge, a viewer
//!                  lists it without buttons, the operator approves it; the admin's audit log
//!                  lists the password change and the token, filtered by text
//!  phone           390 x 844: fleet, pack, alarms, account, registrations and audit pages
//!                  without horizontal overflow
//! ```
//!
//! Each scenario prints one `BMSLINK_RESULT {json}` line and exits 0 when it passed; this side
//! checks both, plus what the scenario did, through the API. Screenshots go to
//! `target/browser-artifacts/<scenario>/` (printed), with the scenario's log and the demo's.
//!
//! Needs node, `npm ci` in `tests/browser/` (playwright-core, pinned) and Chromium
//! (`/usr/bin/chromium` or `$BMSLINK_CHROMIUM`): without them the test says SKIPPED loudly,
//! and fails under CI=true, where `.ci/run` installs them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::TempDir;

/// Data boxes the demo starts (each a simulated pack with its own terminal).
const BOXES: usize = 2;
/// Racks behind the demo's gateway.
const RACKS: usize = 2;
/// Terminal number of the demo's first data box (its racks' uplinks count from 1).
const BOX_TERMINAL_BASE: u32 = 1001;
/// The parameter-change password (0xB2) of the demo's simulated BMSes.
const DEVICE_PASSWORD: &str = "123456";
/// The setting the settings scenario writes, and the values it moves between.
const SETTING: &str = "cell_over_voltage_protection";
/// The alarm scenario's fault threshold (restored by the scenario).
const FAULT_SETTING: &str = "charge_high_temperature_protection";
/// Longest one scenario may run.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(150);

const RESULT_PREFIX: &str = "BMSLINK_RESULT ";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips loudly (past the harness's capture), or fails under CI=true.
fn skip(reason: &str) {
    if in_ci() {
        panic!("the browser tests must run in CI (CI=true), but: {reason}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED browser tests: {reason} ***\n"
    );
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("BMSLINK_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// node, playwright-core beside the scripts, and Chromium; `false` after a skip.
fn tools_present() -> bool {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            skip(&format!("`node --version` failed ({})", out.status));
            return false;
        }
        Err(error) => {
            skip(&format!("node is not installed ({error}); CI installs it"));
            return false;
        }
    }
    let module = scripts_dir().join("node_modules/playwright-core/package.json");
    if !module.exists() {
        skip(&format!(
            "playwright-core is not installed: run `npm ci` in {}",
            scripts_dir().display()
        ));
        return false;
    }
    let browser = chromium();
    if !browser.exists() {
        skip(&format!(
            "no Chromium at {} (apt-get install chromium, or set BMSLINK_CHROMIUM)",
            browser.display()
        ));
        return false;
    }
    true
}

/// `target/browser-artifacts`, beside the binary's profile directory.
fn artifacts_root() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_bmslink"));
    binary
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("browser-artifacts"))
        .unwrap_or_else(|| std::env::temp_dir().join("bmslink-browser-artifacts"))
}

/// A running `bmslink demo`, stopped with SIGTERM on drop.
struct Demo {
    child: Child,
    url: String,
    admin_password: String,
    _data: TempDir,
}

impl Demo {
    fn start(log: &Path) -> Demo {
        let data = TempDir::new();
        let admin_password = format!("browser-admin-{}", std::process::id());
        let stderr = std::fs::File::create(log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_bmslink"))
            .args(["demo", "--http", "127.0.0.1:0", "--devices", "127.0.0.1:0"])
            .args(["--modbus", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
            .args(["--boxes", &BOXES.to_string(), "--racks", &RACKS.to_string()])
            .arg("--data-dir")
            .arg(data.path())
            .args(["--admin-password", &admin_password])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("cannot start bmslink demo");
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel();
        // Keeps reading after `demo ready` so the demo never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    // Nobody listens any more: keep draining.
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut seen = Vec::new();
        let mut url = None;
        let mut password = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines_rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "bmslink demo did not say `demo ready` in 90 s; it printed:\n{}\n(its log: {})",
                        seen.join("\n"),
                        log.display()
                    );
                }
            };
            eprintln!("demo: {line}");
            if let Some(rest) = line.strip_prefix("web app: ") {
                url = Some(rest.trim().to_string());
            }
            if let Some(rest) = line.strip_prefix("admin login: ") {
                password = rest.split(" / ").nth(1).map(|p| p.trim().to_string());
            }
            let ready = line.starts_with("demo ready");
            seen.push(line);
            if ready {
                break;
            }
        }
        let url = url.unwrap_or_else(|| panic!("no `web app:` line in {seen:?}"));
        let shown = password.unwrap_or_else(|| panic!("no `admin login:` line in {seen:?}"));
        assert_eq!(
            shown, admin_password,
            "the demo printed another admin password than --admin-password"
        );
        Demo {
            child,
            url,
            admin_password,
            _data: data,
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A logged-in API session (the `bmslink_session` cookie).
struct Api {
    client: reqwest::blocking::Client,
    base: String,
    cookie: String,
}

impl Api {
    fn login(base: &str, name: &str, password: &str) -> Api {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(45))
            .build()
            .unwrap();
        let base = base.trim_end_matches('/').to_string();
        let response = client
            .post(format!("{base}/api/login"))
            .json(&json!({"name": name, "password": password}))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "login of {name}");
        let cookie = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("bmslink_session="))
            .and_then(|v| v.split(';').next())
            .unwrap_or_else(|| panic!("no session cookie for {name}"))
            .to_string();
        Api {
            client,
            base,
            cookie,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, &self.cookie);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// A setting's value as the device reports it now (a read-all through the platform).
    fn device_setting(&self, terminal: &str, name: &str) -> f64 {
        let read = self.get(&format!("/api/terminals/{terminal}/settings"));
        let value = &read["values"][name]["value"];
        value
            .as_f64()
            .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {name} in the settings of {terminal}: {read}"))
    }

    fn write_setting(&self, terminal: &str, name: &str, value: &str) {
        let (status, body) = self.call(
            reqwest::Method::PATCH,
            &format!("/api/terminals/{terminal}/settings"),
            Some(json!({"values": {name: value}, "password": DEVICE_PASSWORD})),
        );
        assert!(
            status == 200 && body["ok"] == true,
            "writing {name}={value} to {terminal}: {status} {body}"
        );
    }
}

/// The status of `POST /api/login` for `name` with `password` (no session kept).
fn login_status(base: &str, name: &str, password: &str) -> u16 {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(45))
        .build()
        .unwrap();
    client
        .post(format!("{}/api/login", base.trim_end_matches('/')))
        .json(&json!({"name": name, "password": password}))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// One scenario's outcome: its result line, or why there is none.
struct Outcome {
    name: &'static str,
    result: Result<Value, String>,
}

/// Runs `tests/browser/<name>.mjs` with the demo's address, the users and `facts`.
fn run_scenario(name: &'static str, url: &str, users: &Value, facts: &Value) -> Outcome {
    let artifacts = artifacts_root().join(name);
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let log_path = artifacts.join("scenario.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // Past the harness's capture: where to look, for passing runs too.
    let _ = writeln!(
        std::io::stderr(),
        "browser scenario {name}: screenshots and log in {}",
        artifacts.display()
    );
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(scripts_dir().join(format!("{name}.mjs")))
        .current_dir(scripts_dir())
        .env("BMSLINK_URL", url)
        .env("BMSLINK_ARTIFACTS", &artifacts)
        .env("BMSLINK_CHROMIUM", chromium())
        .env("BMSLINK_USERS", users.to_string())
        .env("BMSLINK_FACTS", facts.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("cannot start node");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines.push(line);
        }
        lines
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SCENARIO_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines = reader.join().unwrap_or_default();
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    eprintln!(
        "--- {name} ({:.1} s) ---\n{log_text}",
        started.elapsed().as_secs_f64()
    );
    let result_line = lines
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix(RESULT_PREFIX));
    let result = match (status, result_line) {
        (None, _) => Err(format!(
            "timed out after {} s (log: {})",
            SCENARIO_TIMEOUT.as_secs(),
            log_path.display()
        )),
        (Some(_), None) => Err(format!(
            "no result line (stdout: {lines:?}; log: {})",
            log_path.display()
        )),
        (Some(status), Some(line)) => match serde_json::from_str::<Value>(line) {
            Err(error) => Err(format!("bad result line {line:?}: {error}")),
            Ok(result) if result["scenario"] != name => {
                Err(format!("the result names another scenario: {result}"))
            }
            Ok(result) if result["ok"] != true || !status.success() => Err(format!(
                "failed ({status}): {} (screenshots and log in {})",
                result["error"],
                artifacts.display()
            )),
            Ok(result) => Ok(result),
        },
    };
    Outcome { name, result }
}

/// Waits until the fleet lists at least `want` terminals that have uploaded; returns them.
fn wait_for_fleet(admin: &Api, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = admin.get("/api/fleet");
        let uploaded: Vec<Value> = page["terminals"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t["latest"].is_object())
            .collect();
        if uploaded.len() >= want {
            return uploaded;
        }
        assert!(
            Instant::now() < deadline,
            "the demo's fleet has {} terminals with uploads, not {want}: {page}",
            uploaded.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Records a failed scenario, or one whose result `check` refuses.
fn judge(
    failures: &mut Vec<String>,
    outcome: Outcome,
    check: &dyn Fn(&Value) -> Result<(), String>,
) {
    let verdict = outcome.result.and_then(|result| {
        eprintln!("{}: {result}", outcome.name);
        check(&result)
    });
    if let Err(why) = verdict {
        failures.push(format!("{}: {why}", outcome.name));
    }
}

fn ensure(ok: bool, why: String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why)
    }
}

#[test]
fn web_app_in_headless_chromium() {
    if !tools_present() {
        return;
    }
    let root = artifacts_root();
    std::fs::create_dir_all(&root).unwrap();
    eprintln!("browser artifacts: {}", root.display());
    let demo = Demo::start(&root.join("demo.log"));
    let admin = Api::login(&demo.url, "admin", &demo.admin_password);

    // The scenarios' users, created by the admin through the API.
    let mut users = json!({"admin": ["admin", demo.admin_password]});
    for role in ["operator", "viewer"] {
        let name = format!("browser-{role}");
        let password = format!("{role}-password-{}", std::process::id());
        let (status, body) = admin.call(
            reqwest::Method::POST,
            "/api/users",
            Some(json!({"name": name, "role": role, "password": password})),
        );
        assert!(
            status == 200 || status == 201,
            "creating {name}: {status} {body}"
        );
        users[role] = json!([name, password]);
    }
    let login = |role: &str| {
        Api::login(
            &demo.url,
            users[role][0].as_str().unwrap(),
            users[role][1].as_str().unwrap(),
        )
    };
    let operator = login("operator");
    let viewer = login("viewer");

    // Every box and every rack uploads; the settings and alarm scenarios use boxes.
    let fleet = wait_for_fleet(&admin, BOXES + RACKS);
    let terminals: Vec<String> = fleet
        .iter()
        .map(|t| t["terminal"].as_str().unwrap().to_string())
        .collect();
    let boxes: Vec<&Value> = fleet
        .iter()
        .filter(|t| {
            u32::from_str_radix(t["terminal"].as_str().unwrap(), 16)
                .is_ok_and(|n| n >= BOX_TERMINAL_BASE)
        })
        .collect();
    assert_eq!(boxes.len(), BOXES, "the data boxes in {terminals:?}");
    let id = |t: &Value| t["terminal"].as_str().unwrap().to_string();
    let pack = id(boxes[0]);
    let cells = boxes[0]["latest"]["cell_count"].as_u64().unwrap();
    let settings_terminal = id(boxes[0]);
    let alarm_terminal = id(boxes[boxes.len() - 1]);
    // A rack's uplink (no scenario reads its values) waits for approval once in `account`.
    let registration_terminal = terminals
        .iter()
        .find(|t| u32::from_str_radix(t, 16).is_ok_and(|n| n < BOX_TERMINAL_BASE))
        .cloned()
        .unwrap_or_else(|| panic!("no rack uplink among {terminals:?}"));
    let old = admin.device_setting(&settings_terminal, SETTING);
    let target = if (old - 3.60).abs() < 0.0005 {
        "3.55"
    } else {
        "3.60"
    };
    let fault_threshold = admin.device_setting(&alarm_terminal, FAULT_SETTING);
    let facts = json!({
        "terminals": terminals,
        "pack": pack,
        "cells": cells,
        "settings_terminal": settings_terminal,
        "setting": SETTING,
        "target": target,
        "alarm_terminal": alarm_terminal,
        "device_password": DEVICE_PASSWORD,
        "registration_terminal": registration_terminal,
    });
    eprintln!("facts: {facts}");

    let mut failures = Vec::new();

    judge(
        &mut failures,
        run_scenario("login_fleet", &demo.url, &users, &facts),
        &|r| {
            ensure(
                r["rows"].as_u64() >= Some(terminals.len() as u64),
                format!("{} rows for {} terminals", r["rows"], terminals.len()),
            )
        },
    );

    judge(
        &mut failures,
        run_scenario("pack_live", &demo.url, &users, &facts),
        &|r| {
            ensure(
                r["updated_to"].as_f64() > r["updated_from"].as_f64(),
                format!("no newer upload shown: {r}"),
            )?;
            ensure(
                r["cell_bars"].as_u64() == Some(cells),
                format!("{} cell bars for {cells} cells", r["cell_bars"]),
            )
        },
    );

    // The page says it wrote; the device itself must say so too, read again through the API
    // by another user, and the audit log must name the operator.
    judge(
        &mut failures,
        run_scenario("settings_write", &demo.url, &users, &facts),
        &|_| {
            let now = admin.device_setting(&settings_terminal, SETTING);
            let wanted: f64 = target.parse().unwrap();
            ensure(
                (now - wanted).abs() < 0.0005,
                format!("the device reports {SETTING} = {now} after the page wrote {target}"),
            )?;
            let audit = admin.get("/api/audit");
            let operator_name = users["operator"][0].as_str().unwrap();
            let recorded = audit.as_array().is_some_and(|entries| {
                entries.iter().any(|e| {
                    e["actor"] == operator_name
                        && e["action"] == "write_settings"
                        && e["target"]
                            .as_str()
                            .is_some_and(|t| t.contains(&settings_terminal))
                        && e["detail"].as_str().is_some_and(|d| d.contains(SETTING))
                })
            });
            ensure(
                recorded,
                format!(
                    "no write_settings of {SETTING} by {operator_name} in the audit log: {audit}"
                ),
            )
        },
    );
    if (admin.device_setting(&settings_terminal, SETTING) - old).abs() > 0.0005 {
        operator.write_setting(&settings_terminal, SETTING, &format!("{old:.3}"));
    }

    judge(
        &mut failures,
        run_scenario("alarm_live", &demo.url, &users, &facts),
        &|r| {
            let id = r["alarm"].as_i64().ok_or(format!("no alarm id in {r}"))?;
            let alarms = admin.get(&format!("/api/alarms?terminal={alarm_terminal}&limit=1000"));
            let alarm = alarms
                .as_array()
                .and_then(|all| all.iter().find(|a| a["id"] == id))
                .ok_or(format!("alarm {id} is not in the store: {alarms}"))?;
            ensure(
                alarm["kind"] == "bms" && alarm["acknowledged_by"] == users["operator"][0],
                format!("the stored alarm: {alarm}"),
            )
        },
    );
    let threshold_now = admin.device_setting(&alarm_terminal, FAULT_SETTING);
    if (threshold_now - fault_threshold).abs() > 0.5 {
        operator.write_setting(
            &alarm_terminal,
            FAULT_SETTING,
            &format!("{fault_threshold:.0}"),
        );
        failures.push(format!(
            "alarm_live left {FAULT_SETTING} at {threshold_now}, not {fault_threshold}"
        ));
    }

    // After the alarm scenario, so the viewer's alarms page has a row to (not) acknowledge.
    judge(
        &mut failures,
        run_scenario("viewer", &demo.url, &users, &facts),
        &|r| {
            ensure(
                r["inputs"].as_u64() > Some(0) && r["alarm_rows"].as_u64() > Some(0),
                format!("nothing was shown to the viewer: {r}"),
            )?;
            ensure(
                r["patch_status"] == 403 && r["ack_status"] == 403,
                format!(
                    "in the browser: PATCH {}, ack {}",
                    r["patch_status"], r["ack_status"]
                ),
            )?;
            let (status, body) = viewer.call(
                reqwest::Method::PATCH,
                &format!("/api/terminals/{settings_terminal}/settings"),
                Some(json!({"values": {SETTING: "3.50"}, "password": DEVICE_PASSWORD})),
            );
            ensure(
                status == 403,
                format!("a viewer's PATCH answered {status}: {body}"),
            )
        },
    );

    // Last but one: it changes the operator's password (the phone scenario is the admin's).
    let old_operator_password = users["operator"][1].as_str().unwrap().to_string();
    judge(
        &mut failures,
        run_scenario("account", &demo.url, &users, &facts),
        &|r| {
            let name = users["operator"][0].as_str().unwrap();
            ensure(
                r["token_status"] == 200 && r["revoked_status"] == 401,
                format!(
                    "the token answered {} and {} once revoked",
                    r["token_status"], r["revoked_status"]
                ),
            )?;
            let new_password = r["new_password"]
                .as_str()
                .ok_or(format!("no new_password in {r}"))?;
            ensure(
                login_status(&demo.url, name, &old_operator_password) == 401
                    && login_status(&demo.url, name, new_password) == 200,
                format!("after the change, {name} does not log in with the new password only"),
            )?;
            let audit = admin.get("/api/audit?limit=1000");
            let entries = audit.as_array().cloned().unwrap_or_default();
            let token = r["token"].as_str().unwrap_or_default();
            for action in ["change_password", "create_token", "revoke_token"] {
                ensure(
                    entries.iter().any(|e| {
                        e["actor"] == name
                            && e["action"] == action
                            && (action == "change_password"
                                || e["target"].as_str().is_some_and(|t| t.contains(token)))
                    }),
                    format!("no {action} by {name} in the audit log: {audit}"),
                )?;
            }
            let terminal = admin.get(&format!("/api/terminals/{registration_terminal}"));
            ensure(
                terminal
                    .to_string()
                    .contains("\"registration\":\"approved\""),
                format!("{registration_terminal} is not approved again: {terminal}"),
            )
        },
    );
    // Whatever the scenario did, the rack's uplink is approved again.
    let (status, body) = admin.call(
        reqwest::Method::PUT,
        &format!("/api/terminals/{registration_terminal}/registration"),
        Some(json!({"registration": "approved"})),
    );
    assert_eq!(
        status, 200,
        "approving {registration_terminal} again: {body}"
    );

    judge(
        &mut failures,
        run_scenario("phone", &demo.url, &users, &facts),
        &|_| Ok(()),
    );

    drop(demo);
    eprintln!("browser artifacts: {}", root.display());
    assert!(
        failures.is_empty(),
        "browser scenarios failed:\n{}",
        failures.join("\n")
    );
}
