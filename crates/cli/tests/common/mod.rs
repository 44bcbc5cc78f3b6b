//! Test peers for the `bmslink` binary: a BMS (the core's responder, seeded from a real capture)
//! on a loopback TCP port or on one end of a pseudo-terminal pair made by socat.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // shared test code

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use bmslink_core::responder::{BmsResponder, Outcome};
use bmslink_core::time::Instant;
use bmslink_proto::{Deframer, Event, Info};

/// The bytes of one vector block of nw-frames.txt.
pub fn vector(id: &str) -> Vec<u8> {
    bmslink_proto::vectors::bytes(id).unwrap()
}

/// A vector as one hex string argument.
pub fn vector_hex(id: &str) -> String {
    vector(id)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A BMS answering like the one captured in vector A03 (16 cells, password "123456").
pub fn a03_bms() -> BmsResponder {
    let frame = vector("A03");
    BmsResponder::from_info(&Info::parse(&frame[11..frame.len() - 9], 11).unwrap())
}

/// What the test BMS saw.
#[derive(Default)]
pub struct Seen {
    pub outcomes: Vec<Outcome>,
}

pub type Shared = Arc<Mutex<(BmsResponder, Seen)>>;

/// Answers requests from `line` until it closes. `silent` BMSes read but never answer.
fn serve(mut line: impl Read + Write, bms: Shared, silent: bool) {
    let started = StdInstant::now();
    let mut deframer = Deframer::new();
    let mut buffer = [0u8; 1024];
    loop {
        let n = match line.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut replies = Vec::new();
        deframer.feed(&buffer[..n], |event| {
            if let Event::Frame(frame, _) = event {
                let now = Instant::from_micros(started.elapsed().as_micros() as u64);
                let mut guard = bms.lock().unwrap();
                let (reply, outcome) = guard.0.handle_request(now, frame.as_bytes());
                guard.1.outcomes.push(outcome);
                if let Some(reply) = reply.filter(|_| !silent) {
                    replies.push(reply);
                }
            }
        });
        for reply in replies {
            if line.write_all(&reply).and_then(|()| line.flush()).is_err() {
                return;
            }
        }
    }
}

/// A BMS on a loopback TCP port, one connection at a time.
pub fn tcp_bms(bms: BmsResponder, silent: bool) -> (SocketAddr, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let shared: Shared = Arc::new(Mutex::new((bms, Seen::default())));
    let for_thread = shared.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            serve(stream, for_thread.clone(), silent);
        }
    });
    (address, shared)
}

/// A pseudo-terminal pair made by socat: the BMS serves one end; returns the other end's path
/// for the CLI. `None` (after saying so loudly) when socat is not installed.
pub struct PtyPair {
    socat: Child,
    pub cli_end: PathBuf,
    _dir: TempDir,
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}

pub fn pty_bms(bms: BmsResponder) -> Option<(PtyPair, Shared)> {
    if Command::new("socat")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!(
            "SKIPPED: socat is not installed, so the serial (pty) test cannot run; CI installs it"
        );
        return None;
    }
    let dir = TempDir::new();
    let bms_end = dir.path().join("bms");
    let cli_end = dir.path().join("cli");
    let socat = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", bms_end.display()))
        .arg(format!("pty,raw,echo=0,link={}", cli_end.display()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = StdInstant::now() + Duration::from_secs(5);
    while !(bms_end.exists() && cli_end.exists()) {
        assert!(
            StdInstant::now() < deadline,
            "socat did not create the ptys"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let line = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&bms_end)
        .unwrap();
    let shared: Shared = Arc::new(Mutex::new((bms, Seen::default())));
    let for_thread = shared.clone();
    std::thread::spawn(move || serve(line, for_thread, false));
    Some((
        PtyPair {
            socat,
            cli_end,
            _dir: dir,
        },
        shared,
    ))
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("bmslink-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary to completion.
pub fn bmslink(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bmslink"))
        .args(args)
        .output()
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A loopback port free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two consecutive free ports (`bmslink sim` listens on PORT and PORT + 1).
pub fn free_port_pair() -> u16 {
    loop {
        let port = free_port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Sends SIGTERM to a child (what a service manager or `kill` sends to stop it).
pub fn terminate(child: &Child) {
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success(), "kill -TERM {pid} failed");
}
