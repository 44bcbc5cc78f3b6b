//! `bmslink read` and `bmslink write` against a BMS peer (the core's responder seeded from a
//! real capture) over loopback TCP and over a real pseudo-terminal pair.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use bmslink_core::responder::Outcome;
use bmslink_proto::Identifier;
use common::{a03_bms, bmslink, pty_bms, stderr, stdout, tcp_bms};

fn tcp(address: std::net::SocketAddr) -> String {
    format!("tcp://{address}")
}

#[test]
fn read_all_over_tcp_as_json() {
    let (address, _) = tcp_bms(a03_bms(), false);
    let output = bmslink(&["read", "--port", &tcp(address), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let line: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(line["fields"]["total_voltage"]["value"], 51.21);
    assert_eq!(line["fields"]["cell_voltages"]["raw"][6], 3185);
    assert_eq!(line["fields"]["status"]["value"][0], "charge_mosfet_on");
    assert_eq!(line["missing"].as_array().unwrap().len(), 0);
}

#[test]
fn read_chosen_identifiers_by_name_and_hex() {
    let (address, _) = tcp_bms(a03_bms(), false);
    let output = bmslink(&["read", "--port", &tcp(address), "total_voltage", "0x85"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("total_voltage (0x83)") && text.contains("51.21 V"),
        "{text}"
    );
    assert!(
        text.contains("soc (0x85)") && text.contains("15%"),
        "{text}"
    );
    assert!(!text.contains("cell_voltages"), "{text}");
}

#[test]
fn single_reads_use_command_03() {
    let (address, seen) = tcp_bms(a03_bms(), false);
    let output = bmslink(&[
        "read",
        "--port",
        &tcp(address),
        "--single",
        "--json",
        "soc",
        "cycle_count",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let line: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(line["fields"]["soc"]["value"], 15);
    assert_eq!(line["fields"]["cycle_count"]["value"], 17);
    assert_eq!(
        seen.lock().unwrap().1.outcomes,
        vec![Outcome::Read, Outcome::Read]
    );
}

#[test]
fn unknown_identifier_is_named() {
    let output = bmslink(&["read", "--port", "tcp://127.0.0.1:1", "volts"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unknown identifier 'volts'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn write_pairs_with_the_password_and_confirms_by_read_back() {
    let (address, seen) = tcp_bms(a03_bms(), false);
    let output = bmslink(&[
        "write",
        "--port",
        &tcp(address),
        "--password",
        "123456",
        "cell_over_voltage_protection",
        "3600mV",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "cell_over_voltage_protection (0x90): 3.650 V -> 3.600 V (confirmed by read-back)"
    );
    let guard = seen.lock().unwrap();
    assert_eq!(
        guard.0.get(Identifier::CellOverVoltageProtection),
        Some(&3600u16.to_be_bytes()[..])
    );
    assert_eq!(
        guard.1.outcomes,
        vec![
            Outcome::Read,
            Outcome::Paired,
            Outcome::Written {
                id: Identifier::CellOverVoltageProtection
            },
            Outcome::Read
        ]
    );
}

#[test]
fn out_of_range_write_is_refused_before_anything_is_sent() {
    let (address, seen) = tcp_bms(a03_bms(), false);
    let output = bmslink(&[
        "write",
        "--port",
        &tcp(address),
        "cell_over_voltage_protection",
        "5",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .contains("cell_over_voltage_protection: 5.000 V is out of range 1.000 V ..= 4.500 V"),
        "{}",
        stderr(&output)
    );
    assert!(seen.lock().unwrap().1.outcomes.is_empty());
    let read_only = bmslink(&["write", "--port", &tcp(address), "soc", "50"]);
    assert!(
        stderr(&read_only).contains("soc is read-only"),
        "{}",
        stderr(&read_only)
    );
}

#[test]
fn wrong_password_is_an_actionable_error() {
    let (address, _) = tcp_bms(a03_bms(), false);
    let output = bmslink(&[
        "write",
        "--port",
        &tcp(address),
        "--timeout",
        "100ms",
        "--password",
        "999999",
        "charge_mosfet_switch",
        "off",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("no acknowledgement of the write"), "{err}");
    assert!(err.contains("check the password"), "{err}");
}

#[test]
fn silent_bms_gives_an_error_naming_the_port_the_timeout_and_what_to_check() {
    let (address, _) = tcp_bms(a03_bms(), true);
    let output = bmslink(&["read", "--port", &tcp(address), "--timeout", "100ms"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let expected =
        format!("no reply within 100 ms from tcp://{address} (read, 6 attempts, activation tried)");
    assert!(err.contains(&expected), "{err}");
    assert!(
        err.contains("reply timeout from"),
        "every timeout is logged: {err}"
    );
    assert!(err.contains("sending activate"), "{err}");
}

#[test]
fn unreachable_endpoints_say_what_failed() {
    let refused = bmslink(&["read", "--port", "tcp://127.0.0.1:1"]);
    assert!(
        stderr(&refused).contains("cannot connect to 127.0.0.1:1"),
        "{}",
        stderr(&refused)
    );
    let missing = bmslink(&["read", "--port", "/dev/ttyDOES_NOT_EXIST"]);
    assert!(
        stderr(&missing).contains("cannot open serial port /dev/ttyDOES_NOT_EXIST"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn watch_keeps_polling_at_the_interval() {
    let (address, seen) = tcp_bms(a03_bms(), false);
    let mut child = Command::new(env!("CARGO_BIN_EXE_bmslink"))
        .args([
            "read",
            "--port",
            &tcp(address),
            "--json",
            "--watch",
            "200ms",
            "soc",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let lines = stdout(&output).lines().count();
    assert!((4..=7).contains(&lines), "{lines} reads in 1.1 s at 200 ms");
    assert_eq!(seen.lock().unwrap().1.outcomes.len(), lines);
}

#[test]
fn read_and_write_over_a_serial_pty() {
    let Some((pty, seen)) = pty_bms(a03_bms()) else {
        return;
    };
    let port = pty.cli_end.to_str().unwrap();
    let output = bmslink(&["read", "--port", port, "--json", "total_voltage"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let line: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(line["fields"]["total_voltage"]["value"], 51.21);
    let output = bmslink(&[
        "write",
        "--port",
        port,
        "--password",
        "123456",
        "--json",
        "balancing_switch",
        "off",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let line: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(
        line,
        serde_json::json!({"identifier": "balancing_switch", "old": "on", "new": "off", "confirmed": true})
    );
    assert_eq!(
        seen.lock().unwrap().0.get(Identifier::BalancingSwitch),
        Some(&[0u8][..])
    );
}
