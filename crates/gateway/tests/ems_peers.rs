//! Independent peers of the EMS server, none of them written by this project:
//!
//! - pysunspec2 (`peers/sunspec_scan.py`) scans the SunSpec map and reads every model;
//! - mbpoll (libmodbus) reads the "SunS" header and writes a setting;
//! - pymodbus (`peers/pymodbus_writes.py`) makes an allowed write, and writes that must change
//!   nothing: from outside `write_allow`, to a server with writes disabled, out of range, and a
//!   privileged one without the unlock code.
//!
//! The python interpreter is `$BMSLINK_PYTHON` (CI points it at the pinned venv of `.ci/run`),
//! else `python3`; mbpoll is found on `PATH`. Without them each test prints a loud
//! `SKIPPED: ... set BMSLINK_PYTHON` and passes, except under `CI=true`, where it fails.
//!
//! Run them here: `BMSLINK_PYTHON=~/.cache/bmslink/peers-venv-.../bin/python cargo test -p
//! bmslink-gateway --test ems_peers` (the venv's name is in `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is a failed test

mod common;
mod ems_support;

use bmslink_gateway::ems::settings;
use bmslink_proto::Identifier;
use std::process::{Command, Output};

use common::{json_lines, run_python};
use ems_support::{ems_config, start, writable_config, Backend};
use serde_json::Value;

fn address_of(id: Identifier) -> u16 {
    settings::rack_base(0).unwrap() + settings::point_of(id).unwrap().offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysunspec2_scans_the_server_and_reads_every_model() {
    let harness = start(writable_config(), 2, Backend::Confirm).await;
    let Some(output) =
        run_python("sunspec_scan.py", vec![harness.address.port().to_string()]).await
    else {
        return;
    };
    let result = &json_lines(&output)[0];
    let models: Vec<(u64, u64)> = result["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["error"], "", "pysunspec2 reports {m}");
            (m["id"].as_u64().unwrap(), m["len"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        models,
        vec![
            (1, 66),
            (802, 62),
            (803, 90),
            (804, 62),
            (804, 62),
            (805, 106),
            (805, 106)
        ]
    );
    assert_eq!(result["common"]["Mn"], "bmslink");
    assert_eq!(result["common"]["Md"], "bmslink-gateway");
    assert_eq!(result["common"]["Vr"], env!("CARGO_PKG_VERSION"));
    assert_eq!(result["common"]["SN"], "rack-1+rack-2");
    let battery = &result["battery"];
    assert_eq!(battery["SoC"].as_f64(), Some(15.0));
    assert_eq!(battery["V"].as_f64(), Some(51.2));
    assert_eq!(battery["A"].as_f64(), Some(-1.4), "two racks at -0.69 A");
    assert_eq!(battery["CellVMax"].as_f64(), Some(3.203));
    assert_eq!(battery["CellVMin"].as_f64(), Some(3.185));
    assert_eq!(battery["Typ"], 4);
    assert_eq!(battery["SetOp"], 1);
    assert_eq!(result["bank"]["NStr"], 2);
    assert_eq!(result["strings"][1]["Idx"], 2);
    let cells = result["cells"][0].as_array().unwrap();
    assert_eq!(cells.len(), 16);
    assert_eq!(cells[6].as_f64(), Some(3.185), "A03's cell 7");
}

/// mbpoll with `args`, or `None` after a skip.
async fn mbpoll(args: Vec<String>) -> Option<Output> {
    let run = tokio::task::spawn_blocking(move || Command::new("mbpoll").args(args).output());
    match run.await.unwrap() {
        Ok(output) => Some(output),
        Err(error) => {
            common::skip(&format!(
                "mbpoll is not installed ({error}); apt install mbpoll (CI installs it)"
            ));
            None
        }
    }
}

fn mbpoll_args(port: u16, reference: u16, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["-m", "tcp", "-a", "1", "-0", "-1", "-o", "2"]
        .iter()
        .map(ToString::to_string)
        .collect();
    args.extend([
        "-p".to_string(),
        port.to_string(),
        "-r".to_string(),
        reference.to_string(),
    ]);
    args.extend(extra.iter().map(ToString::to_string));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbpoll_reads_the_sunspec_header_and_writes_a_setting() {
    let harness = start(writable_config(), 1, Backend::Confirm).await;
    let port = harness.address.port();
    let Some(read) = mbpoll(mbpoll_args(
        port,
        40_000,
        &["-t", "4:hex", "-c", "4", "127.0.0.1"],
    ))
    .await
    else {
        return;
    };
    let text = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&read.stderr)
    );
    for expected in [
        "[40000]: \t0x5375",
        "[40001]: \t0x6E53",
        "[40002]: \t0x0001",
        "[40003]: \t0x0042",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    let ovp = address_of(Identifier::CellOverVoltageProtection);
    let write = mbpoll(mbpoll_args(port, ovp, &["-t", "4", "127.0.0.1", "3600"]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&write.stdout);
    assert!(
        write.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&write.stderr)
    );
    let written = harness.written.lock().unwrap().clone();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].1.bytes(), &[0x0E, 0x10]);
    let refused = mbpoll(mbpoll_args(port, ovp, &["-t", "4", "127.0.0.1", "4501"]))
        .await
        .unwrap();
    assert!(!refused.status.success(), "an out-of-range write must fail");
    let readback = mbpoll(mbpoll_args(port, ovp, &["-t", "4", "-c", "1", "127.0.0.1"]))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&readback.stdout).contains(&format!("[{ovp}]: \t3600")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_allowed_and_refused_writes() {
    let writable = start(writable_config(), 1, Backend::Confirm).await;
    let read_only = start(
        ems_config("allow = [\"127.0.0.0/8\"]\n"),
        1,
        Backend::Confirm,
    )
    .await;
    let addresses = serde_json::json!({
        "ovp": address_of(Identifier::CellOverVoltageProtection),
        "switch": address_of(Identifier::ChargeMosfetSwitch),
    });
    let args = vec![
        writable.address.port().to_string(),
        read_only.address.port().to_string(),
        addresses.to_string(),
    ];
    let Some(output) = run_python("pymodbus_writes.py", args).await else {
        return;
    };
    let cases = json_lines(&output);
    let expect = [
        ("allowed", Value::Null, 3650, 3600),
        ("not_in_write_allow", 1.into(), 3600, 3600),
        ("writes_disabled", 1.into(), 3650, 3650),
        ("out_of_range", 3.into(), 3600, 3600),
        ("locked_privileged", 1.into(), 1, 1),
    ];
    assert_eq!(cases.len(), expect.len(), "{cases:?}");
    for (case, (name, exception, before, after)) in cases.iter().zip(expect) {
        assert_eq!(case["case"], name);
        assert_eq!(case["exception"], exception, "{case}");
        assert_eq!(case["before"], before, "{case}");
        assert_eq!(case["after"], after, "{case}");
    }
    let written = writable.written.lock().unwrap().clone();
    assert_eq!(
        written.len(),
        1,
        "only the allowed write reached a BMS: {written:?}"
    );
    assert!(read_only.written.lock().unwrap().is_empty());
}
