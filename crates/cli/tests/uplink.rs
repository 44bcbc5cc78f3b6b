//! The gateway's uplink against the real platform, as separate processes: two simulated racks
//! (`bmslink sim`), `bmslink gateway` uploading them as data boxes with a disk backlog while
//! the platform is down, then `bmslink platform` (SQLite) coming up. Every reading the gateway
//! kept arrives, in order, once: the platform's table holds each rack's record numbers
//! strictly increasing without gaps from the first to the last, and at least the uploads made
//! while it was down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, free_port_pair, TempDir};

struct Process(Child);

impl Process {
    fn start(args: &[&str]) -> Process {
        Process(
            Command::new(env!("CARGO_BIN_EXE_bmslink"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    /// SIGTERM, then the exit status and what it logged.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.0.wait().unwrap();
        let mut log = String::new();
        self.0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        (status, log)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Record numbers per terminal, in storage order.
fn stored_records(database: &std::path::Path, terminal: u32) -> Vec<u32> {
    let db = rusqlite::Connection::open(database).unwrap();
    let mut query = db
        .prepare("SELECT record FROM telemetry WHERE terminal = ?1 ORDER BY rowid")
        .unwrap();
    query
        .query_map([terminal], |row| row.get::<_, u32>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn the_backlog_reaches_the_platform_in_order_once() {
    let dir = TempDir::new();
    let racks = free_port_pair();
    let (devices, http, ems) = (free_port(), free_port(), free_port());
    let _sim = Process::start(&[
        "sim",
        "--packs",
        "2",
        "--listen",
        &format!("127.0.0.1:{racks}"),
    ]);
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
    let backlog = dir.path().join("backlog");
    let gateway_toml = dir.path().join("site.toml");
    std::fs::write(
        &gateway_toml,
        format!(
            "[[racks]]\nname = \"rack-1\"\nlink = {{ port = \"tcp://127.0.0.1:{racks}\" }}\n\
             password = \"123456\"\n\
             [[racks]]\nname = \"rack-2\"\nlink = {{ port = \"tcp://127.0.0.1:{}\" }}\n\
             password = \"123456\"\n\
             [inverter.can]\nport = \"tcp://127.0.0.1:{can_port}\"\n\
             [ems]\nlisten = \"127.0.0.1:{ems}\"\n\
             [uplink]\nserver = \"127.0.0.1:{devices}\"\ninterval = \"1s\"\n\
             reconnect_max = \"1s\"\n\
             backlog_dir = \"{}\"\n[uplink.terminals]\n\"rack-1\" = 2000\n\"rack-2\" = 2001\n",
            racks + 1,
            backlog.display()
        ),
    )
    .unwrap();
    let platform_toml = dir.path().join("platform.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &platform_toml,
        format!(
            "data_dir = \"{}\"\n[devices]\nlisten = \"127.0.0.1:{devices}\"\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\n",
            data.display()
        ),
    )
    .unwrap();

    // The platform is down: readings go to the backlog on disk.
    let gateway = Process::start(&["gateway", "--config", gateway_toml.to_str().unwrap()]);
    std::thread::sleep(Duration::from_secs(6));
    let platform = Process::start(&["platform", "--config", platform_toml.to_str().unwrap()]);
    let database = data.join("platform.sqlite");
    let deadline = Instant::now() + Duration::from_secs(20);
    let counts = || {
        [2000, 2001].map(|terminal| {
            std::panic::catch_unwind(|| stored_records(&database, terminal).len()).unwrap_or(0)
        })
    };
    while !(database.exists() && counts().iter().all(|&count| count >= 10)) {
        if Instant::now() >= deadline {
            let stored = counts();
            let (_, gateway_log) = gateway.stop();
            let (_, platform_log) = platform.stop();
            panic!(
                "the backlog did not arrive within 20 s: stored {stored:?} for terminals \
                 2000, 2001\n--- gateway ---\n{gateway_log}\n--- platform ---\n{platform_log}"
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let (gateway_status, gateway_log) = gateway.stop();
    let (platform_status, platform_log) = platform.stop();
    assert!(gateway_status.success(), "{gateway_log}");
    assert!(
        gateway_log.contains("reconnection waits of up to 1 s"),
        "reconnect_max reaches the uplink: {gateway_log}"
    );
    assert!(platform_status.success(), "{platform_log}");
    for terminal in [2000, 2001] {
        let records = stored_records(&database, terminal);
        assert!(records.len() >= 10, "terminal {terminal}: {records:?}");
        for pair in records.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "terminal {terminal}: in order, once, no gap: {records:?}"
            );
        }
    }
}
