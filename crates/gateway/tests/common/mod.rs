//! Helpers shared by the gateway's integration tests: socat pty pairs, the python peers, and
//! the skip-loudly-or-fail-in-CI rule for peers that may be missing locally.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A peer's exit status when a python package cannot be imported.
pub const SKIP_EXIT: i32 = 3;

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips loudly (past the harness's capture), or fails under CI=true.
pub fn skip(reason: &str) {
    if in_ci() {
        panic!("the independent peers must run in CI (CI=true), but: {reason}");
    }
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {reason} ***\n");
}

/// A socat pty pair in a temporary directory, killed and removed on drop.
pub struct PtyPair {
    socat: Child,
    dir: PathBuf,
}

impl PtyPair {
    pub fn new() -> Option<PtyPair> {
        let version = Command::new("socat")
            .arg("-V")
            .stdout(Stdio::null())
            .status();
        if version.is_err() {
            skip("socat is not installed, so the pty test cannot run (CI installs it)");
            return None;
        }
        static PAIRS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = PAIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bmslink-ptys-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socat = Command::new("socat")
            .arg(format!(
                "pty,raw,echo=0,link={}",
                dir.join("battery").display()
            ))
            .arg(format!(
                "pty,raw,echo=0,link={}",
                dir.join("inverter").display()
            ))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pair = PtyPair { socat, dir };
        pair.wait_for_links();
        Some(pair)
    }

    fn wait_for_links(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !(self.end("battery").exists() && self.end("inverter").exists()) {
            assert!(std::time::Instant::now() < deadline, "socat made no ptys");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn end(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The peer, started and ready (it printed `{"ready": true}`), or `None` after a skip.
pub struct Peer {
    pub child: Child,
    pub lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

pub fn python() -> String {
    std::env::var("BMSLINK_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Starts `tests/peers/<script>` with `args` under `$BMSLINK_PYTHON`.
pub fn start_peer(script: &str, args: &[String]) -> Option<Peer> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(script);
    let interpreter = python();
    let spawned = Command::new(&interpreter)
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            skip(&format!("cannot run {interpreter}: {error}"));
            return None;
        }
    };
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    if first.contains("ready") {
        return Some(Peer { child, lines });
    }
    let status = child.wait().unwrap();
    if status.code() == Some(SKIP_EXIT) {
        skip(&format!(
            "{interpreter}: {}",
            first.trim_start_matches("SKIPPED: ")
        ));
        return None;
    }
    panic!("the peer did not start ({status}): {first}");
}

/// Every JSON line the peer printed until it exited.
pub fn finish_peer(mut peer: Peer) -> Vec<Value> {
    let records = peer
        .lines
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect();
    let status = peer.child.wait().unwrap();
    assert!(status.success(), "the peer failed: {status}");
    records
}

pub fn signal(record: &Value, name: &str) -> f64 {
    record["signals"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {name} in {record}"))
}

/// Runs a peer script under the interpreter; `None` after a skip.
pub async fn run_python(script: &str, args: Vec<String>) -> Option<std::process::Output> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(script);
    let interpreter = python();
    let run = {
        let interpreter = interpreter.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(interpreter).arg(script).args(args).output()
        })
    };
    let output = match run.await.unwrap() {
        Ok(output) => output,
        Err(error) => {
            skip(&format!(
                "cannot run {interpreter} ({error}); set BMSLINK_PYTHON to the peers venv"
            ));
            return None;
        }
    };
    if output.status.code() == Some(SKIP_EXIT) {
        let said = String::from_utf8_lossy(&output.stdout).trim().to_string();
        skip(&format!(
            "{interpreter}: {said}; set BMSLINK_PYTHON to the peers venv"
        ));
        return None;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script_name} failed ({}):\n{stderr}",
        output.status,
        script_name = "peer"
    );
    Some(output)
}

pub fn json_lines(output: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Logs to stderr (shown for failing tests) at `BMSLINK_LOG`'s level, `info` by default.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BMSLINK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
