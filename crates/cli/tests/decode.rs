//! `bmslink decode` on real captured frames: hex arguments, raw and hex-dump capture files,
//! stdin, JSON lines, bad frames with reason and offset, and `--stats` on a large capture.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{bmslink, stderr, stdout, vector, vector_hex, TempDir};

#[test]
fn hex_argument_decodes_a_real_reply_as_a_table() {
    let output = bmslink(&["decode", &vector_hex("A01")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "285 bytes, checksum 0x54D1 ok",
        "read_all response from bms",
        "14 cells, min 3.811 V (#9), max 3.835 V (#12), spread 24 mV",
        "53.59 V",
        "2.080 A",
        "15%",
        "0x0007 (charge_mosfet_on, discharge_mosfet_on, balancing)",
        "-20 °C",
        "H6.X__S6.1.3S__",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn corrupted_capture_is_reported_with_reason_and_offset_and_a_failing_exit_code() {
    let output = bmslink(&["decode", &vector_hex("C01")]);
    assert_eq!(output.status.code(), Some(3), "no good frame at all");
    let strict = bmslink(&["decode", "--strict", &vector_hex("A01"), &vector_hex("C01")]);
    assert_eq!(strict.status.code(), Some(3));
    let lenient = bmslink(&["decode", &vector_hex("A01"), &vector_hex("C01")]);
    assert_eq!(lenient.status.code(), Some(0));
    let text = stdout(&output);
    assert!(
        text.contains("bad frame at offset 0: checksum error: expected 0x47F0, got 0x4882"),
        "{text}"
    );
}

#[test]
fn raw_capture_with_noise_becomes_json_lines_in_order() {
    let dir = TempDir::new();
    let path = dir.path().join("capture.bin");
    let stream: Vec<u8> = [
        vec![0x00, 0xFF, 0x13],
        vector("R01"),
        vector("A03"),
        vector("C02"),
        vec![0x4E],
        vector("R07"),
    ]
    .concat();
    std::fs::write(&path, &stream).unwrap();
    let output = bmslink(&[
        "decode",
        "--strict",
        "--json",
        "--file",
        path.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["offset"], 3);
    assert_eq!(lines[0]["request"]["request"], "read_all");
    assert_eq!(lines[1]["fields"]["total_voltage"]["value"], 51.21);
    assert_eq!(lines[1]["fields"]["current"]["value"], -0.69);
    assert_eq!(
        lines[1]["fields"]["charge_low_temperature_protection"]["value"],
        0
    );
    assert_eq!(lines[2]["error"], "checksum");
    assert_eq!(lines[2]["offset"], 3 + 21 + 291);
    assert_eq!(lines[3]["request"]["identifier"], "charge_mosfet_switch");
    assert_eq!(lines[3]["request"]["value"]["value"], false);
}

#[test]
fn hex_dumps_from_stdin_in_xxd_format_are_decoded() {
    let bytes = vector("A06");
    let mut dump = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = chunk
            .chunks(2)
            .map(|p| p.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if (0x20..0x7F).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        dump.push_str(&format!("{:08x}: {:<40} {ascii}\n", i * 16, hex.join(" ")));
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_bmslink"))
        .args(["decode", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dump.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let line: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(line["fields"]["current"]["value"], 10.12);
    assert_eq!(
        line["fields"]["manufacturer_id"]["raw"],
        "62 65 6B 69 00 00 00 00 00 00 00 00 4A 4B 5F 42 31 41 32 34 53 31 35 50"
    );
}

#[test]
fn stats_summarise_a_large_capture() {
    let dir = TempDir::new();
    let path = dir.path().join("large.bin");
    let mut stream = Vec::new();
    for i in 0..20_000 {
        stream.extend(vector(if i % 2 == 0 { "R01" } else { "A03" }));
        if i % 1000 == 999 {
            stream.extend(vector("C01"));
            stream.extend([0xAA; 7]);
        }
    }
    std::fs::write(&path, &stream).unwrap();
    let output = bmslink(&[
        "decode",
        "--stats",
        "--json",
        "--file",
        path.to_str().unwrap(),
    ]);
    let stats: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(stats["frames"], 20_000);
    assert_eq!(stats["frames_by_kind"]["read_all"], 20_000);
    assert_eq!(stats["errors"]["checksum"], 20);
    assert_eq!(stats["bytes"], stream.len());
    assert_eq!(stats["bytes_dropped"], 20 * (285 + 7));
    assert!(stats["megabytes_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_hex_is_a_clear_error() {
    let output = bmslink(&["decode", "4E 57 0"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("'0' is not hex bytes"),
        "{}",
        stderr(&output)
    );
}
