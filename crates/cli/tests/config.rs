//! `bmslink config print | check` end to end: the printed default passes `check`; a file with
//! several errors reports all of them with line numbers; unknown keys are named with their
//! line; exit codes 0, 1 and 2.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;
use std::process::{Command, Output};

fn bmslink(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bmslink"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `contents` to a file of its own in the test's temporary directory.
fn config_file(name: &str, contents: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("config-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn check(path: &std::path::Path) -> Output {
    bmslink(&["config", "check", path.to_str().unwrap()])
}

#[test]
fn printed_default_passes_check() {
    let printed = bmslink(&["config", "print"]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let default = text(&printed.stdout);
    assert!(default.contains("poll_interval = \"500ms\""), "{default}");
    let path = config_file("default.toml", &default);
    let output = check(&path);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout).trim(),
        format!(
            "{}: ok, 2 racks, profile pylontech-v1.2, EMS on 127.0.0.1:5020 (writes disabled)",
            path.display()
        )
    );
}

#[test]
fn every_error_is_reported_with_its_line() {
    let contents = "poll_interval = \"50ms\"\n\
                    [[racks]]\nname = \"a\"\nlink = { port = \"/dev/ttyUSB0\", baud = 12345 }\n\
                    [[racks]]\nname = \"a\"\nlink = { port = \"/dev/ttyUSB0\" }\n\
                    [inverter]\nprofile = \"victron\"\n\
                    [ems]\nwrites_enabled = true\n";
    let path = config_file("several-errors.toml", contents);
    let output = check(&path);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stdout).is_empty());
    let stderr = text(&output.stderr);
    let name = path.display().to_string();
    let expected = [
        format!("{name}:1:17: poll_interval: 50ms is outside 100ms..=1s"),
        format!("{name}:4:40: racks[0].link.baud: 12345 is not a standard baud rate"),
        format!("{name}:6:8: racks[1].name: \"a\" is also the name of racks[0]"),
        format!("{name}:7:17: racks[1].link.port: /dev/ttyUSB0 is already used by"),
        format!("{name}:11:18: ems.write_allow: writes_enabled = true needs write_allow"),
        format!("{name}:11:18: ems.unlock_code: writes_enabled = true needs an unlock_code"),
    ];
    for line in &expected {
        assert!(
            stderr.lines().any(|seen| seen.starts_with(line.as_str())),
            "missing {line:?} in:\n{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!("{name}: 7 errors")),
        "the poll interval also breaks reply_timeout <= poll_interval:\n{stderr}"
    );
}

#[test]
fn unknown_key_is_rejected_with_its_line() {
    let contents = "[[racks]]\nname = \"a\"\nlink = { port = \"/dev/ttyUSB0\" }\n\
                    [inverter]\nprofil = \"sma\"\n";
    let path = config_file("unknown-key.toml", contents);
    let output = check(&path);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    let first = stderr.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("{}:5:1: ", path.display()))
            && first.contains("unknown field `profil`"),
        "{stderr}"
    );
}

#[test]
fn missing_file_and_usage_errors() {
    let output = bmslink(&["config", "check", "/nonexistent/gateway.toml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("cannot read /nonexistent/gateway.toml"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(bmslink(&["config", "check"]).status.code(), Some(2));
    assert_eq!(bmslink(&["config"]).status.code(), Some(2));
}
