//! `bmslink gateway` end to end: a configuration error stops it before anything starts; the
//! dry-contact test runs the configured open and close programs; the daemon polls two simulated
//! racks (`bmslink sim`), serves their state in `/metrics`, and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bmslink, free_port, free_port_pair, stderr, stdout, TempDir};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_configuration_error_starts_nothing() {
    let dir = TempDir::new();
    let path = dir.path().join("site.toml");
    std::fs::write(&path, "poll_interval = \"20ms\"\n").unwrap();
    let output = bmslink(&["gateway", "--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("site.toml:1:17: poll_interval:"), "{text}");
    assert!(text.contains("nothing started"), "{text}");
}

#[test]
fn the_contact_test_opens_and_closes_the_contact() {
    let dir = TempDir::new();
    let log = dir.path().join("relay.log");
    let config = dir.path().join("site.toml");
    std::fs::write(
        &config,
        format!(
            "[[racks]]\nname = \"r1\"\nlink = {{ port = \"tcp://127.0.0.1:9\" }}\n\
             [dry_contact]\nbackend = \"command\"\n\
             open = [\"sh\", \"-c\", \"echo open >> {0}\"]\n\
             close = [\"sh\", \"-c\", \"echo close >> {0}\"]\n",
            log.display()
        ),
    )
    .unwrap();
    let output = bmslink(&[
        "gateway",
        "--config",
        config.to_str().unwrap(),
        "--test-contact",
        "--hold",
        "100ms",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "open\nclose\n");
    assert!(stdout(&output).contains("opened and closed again"));
}

fn get_metrics(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

#[test]
fn the_daemon_polls_simulated_racks_and_stops_on_sigterm() {
    let racks = free_port_pair();
    let _sim = Killed(
        Command::new(env!("CARGO_BIN_EXE_bmslink"))
            .args([
                "sim",
                "--packs",
                "2",
                "--listen",
                &format!("127.0.0.1:{racks}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // An SLCAN adapter on TCP that takes the frames.
    let can = TcpListener::bind("127.0.0.1:0").unwrap();
    let can_port = can.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in can.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut sink = [0u8; 1024];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    let metrics = free_port();
    let dir = TempDir::new();
    let config = dir.path().join("site.toml");
    std::fs::write(
        &config,
        format!(
            "[[racks]]\nname = \"rack-1\"\nlink = {{ port = \"tcp://127.0.0.1:{racks}\" }}\n\
             [[racks]]\nname = \"rack-2\"\nlink = {{ port = \"tcp://127.0.0.1:{}\" }}\n\
             [inverter.can]\nport = \"tcp://127.0.0.1:{can_port}\"\n\
             [ems]\nlisten = \"127.0.0.1:{}\"\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n",
            racks + 1,
            free_port()
        ),
    )
    .unwrap();
    let mut gateway = Killed(
        Command::new(env!("CARGO_BIN_EXE_bmslink"))
            .args(["gateway", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    loop {
        if let Some(text) = get_metrics(metrics) {
            let used = |rack: &str| {
                text.contains(&format!(
                    "bmslink_gateway_rack_in_aggregate{{rack=\"{rack}\"}} 1"
                ))
            };
            if used("rack-1") && used("rack-2") {
                assert!(
                    text.contains(
                        "bmslink_gateway_rack_polls_total{rack=\"rack-1\",result=\"Ok\"}"
                    ),
                    "{text}"
                );
                break;
            }
            last = text;
        }
        assert!(
            Instant::now() < deadline,
            "racks never joined the aggregate:\n{last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = gateway.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = gateway.0.wait().unwrap();
    let mut log = String::new();
    gateway
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "{status}:\n{log}");
    assert!(log.contains("gateway started: 2 racks"), "{log}");
    assert!(
        log.contains("stopping: the inverter gets the safe state"),
        "{log}"
    );
}
