//! The `/metrics` endpoint end to end: the server on a loopback port, a plain HTTP/1.1 request
//! over TCP, the recorded values in the body, a 404 elsewhere, and the body validated by
//! Prometheus's own `promtool check metrics` (an independent judge of the exposition format).
//!
//! promtool comes with Debian's `prometheus` package (CI installs it). Two checks use it:
//! `promtool check metrics` (its linter, which reads the classic text format: the one finding
//! that only means "this is OpenMetrics", `x_total no help text` for a counter `x` with help,
//! is allowed), and `promtool tsdb create-blocks-from openmetrics` + `tsdb dump`, which parses
//! the text with the OpenMetrics parser Prometheus scrapes with and shows the stored values.
//! Without promtool these tests print a loud SKIPPED, except under `CI=true`, where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is a failed test

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use bmslink_core::failsafe::Cause;
use bmslink_gateway::metrics::{
    CanLabels, CauseLabels, Direction, FrameErrorLabels, Metrics, PollLabels, PollResult,
};
use bmslink_gateway::metrics_server::{serve_metrics, OPENMETRICS_CONTENT_TYPE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Metrics with one of each kind of event recorded.
fn recorded() -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::new());
    let polls = |result| PollLabels {
        rack: "rack1".into(),
        result,
    };
    metrics
        .polls
        .get_or_create(&polls(PollResult::Ok))
        .inc_by(3);
    metrics
        .polls
        .get_or_create(&polls(PollResult::Failed))
        .inc();
    metrics
        .timeouts
        .get_or_create(&Metrics::rack("rack1"))
        .inc();
    metrics
        .frame_errors
        .get_or_create(&FrameErrorLabels {
            rack: "rack1".into(),
            kind: "checksum".into(),
        })
        .inc();
    metrics
        .poll_latency
        .get_or_create(&Metrics::rack("rack1"))
        .observe(0.012);
    metrics
        .can_frames
        .get_or_create(&CanLabels {
            direction: Direction::Sent,
        })
        .inc_by(7);
    metrics
        .failsafe_entries
        .get_or_create(&CauseLabels {
            cause: Cause::NoFreshRack.name().into(),
        })
        .inc();
    metrics.failsafe_safe.set(1);
    metrics
}

/// Starts the server on a loopback port.
async fn start(metrics: Arc<Metrics>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve_metrics(listener, metrics));
    address
}

/// A response: status line, headers (names lowercased), body.
struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// GET `path` with HTTP/1.1 and `Connection: close`, reading to the end.
async fn get(address: SocketAddr, path: &str) -> Response {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("no end of headers");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_string();
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(key, value)| (key.to_ascii_lowercase(), value.to_string()))
        .collect();
    let response = Response {
        status,
        headers,
        body: body.to_string(),
    };
    assert_eq!(
        response.header("transfer-encoding"),
        None,
        "chunked bodies are not decoded by this client"
    );
    response
}

fn assert_has_line(body: &str, line: &str) {
    assert!(
        body.lines().any(|candidate| candidate == line),
        "no line `{line}` in:\n{body}"
    );
}

#[tokio::test]
async fn metrics_are_served_with_the_openmetrics_content_type() {
    let address = start(recorded()).await;
    let response = get(address, "/metrics").await;
    assert_eq!(response.status, "HTTP/1.1 200 OK");
    assert_eq!(
        response.header("content-type"),
        Some(OPENMETRICS_CONTENT_TYPE)
    );
    let body = &response.body;
    assert_has_line(
        body,
        r#"bmslink_gateway_rack_polls_total{rack="rack1",result="Ok"} 3"#,
    );
    assert_has_line(
        body,
        r#"bmslink_gateway_rack_polls_total{rack="rack1",result="Failed"} 1"#,
    );
    assert_has_line(
        body,
        r#"bmslink_gateway_rack_reply_timeouts_total{rack="rack1"} 1"#,
    );
    assert_has_line(
        body,
        r#"bmslink_gateway_rack_frame_errors_total{rack="rack1",kind="checksum"} 1"#,
    );
    assert_has_line(
        body,
        r#"bmslink_gateway_rack_poll_latency_seconds_count{rack="rack1"} 1"#,
    );
    assert_has_line(
        body,
        r#"bmslink_gateway_can_frames_total{direction="Sent"} 7"#,
    );
    assert_has_line(
        body,
        r#"bmslink_gateway_failsafe_entries_total{cause="no_fresh_rack"} 1"#,
    );
    assert_has_line(body, "bmslink_gateway_failsafe_safe 1");
    assert_eq!(body.lines().last(), Some("# EOF"));
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let address = start(Arc::new(Metrics::new())).await;
    for path in ["/", "/metric", "/metrics/x", "/favicon.ico"] {
        let response = get(address, path).await;
        assert_eq!(response.status, "HTTP/1.1 404 Not Found", "{path}");
    }
}

#[tokio::test]
async fn the_served_text_passes_promtool_check_metrics() {
    if !promtool_available() {
        return;
    }
    let address = start(recorded()).await;
    let body = get(address, "/metrics").await.body;
    let output = promtool(&["check", "metrics"], Some(&body));
    let findings = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    let real: Vec<&str> = findings
        .lines()
        .filter(|line| !line.trim().is_empty() && !is_openmetrics_counter_artefact(line, &body))
        .collect();
    // Exit 0: clean; 3: lint findings only (checked above); anything else: parse error.
    assert!(
        matches!(output.status.code(), Some(0 | 3)) && real.is_empty(),
        "promtool check metrics refused the text ({}):\n{findings}\n--- text ---\n{body}",
        output.status
    );
}

/// promtool 2.42's `check metrics` reads the classic text format, where an OpenMetrics counter
/// (`# HELP x`, `# TYPE x counter`, samples `x_total`) looks like an untyped `x_total` without
/// help. That finding, for a counter whose family does have help, is the format's, not ours.
fn is_openmetrics_counter_artefact(finding: &str, body: &str) -> bool {
    let Some(name) = finding.strip_suffix(" no help text") else {
        return false;
    };
    let Some(family) = name.strip_suffix("_total") else {
        return false;
    };
    body.contains(&format!("# HELP {family} "))
        && body.contains(&format!("# TYPE {family} counter"))
}

/// Prometheus's own OpenMetrics parser (the scraper's) reads the text, through promtool's
/// backfill (which wants a timestamp on every sample, so one is added), and the values come
/// back out of the stored block as Prometheus sees them.
#[tokio::test]
async fn prometheus_parses_the_served_text_as_openmetrics() {
    if !promtool_available() {
        return;
    }
    let address = start(recorded()).await;
    let body = get(address, "/metrics").await.body;
    let dir = std::env::temp_dir().join(format!("bmslink-metrics-tsdb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("wal")).unwrap();
    let input = dir.join("metrics.om");
    std::fs::write(&input, with_timestamps(&body, 1_700_000_000)).unwrap();
    let (input, blocks) = (input.display().to_string(), dir.display().to_string());
    let created = promtool(
        &["tsdb", "create-blocks-from", "openmetrics", &input, &blocks],
        None,
    );
    assert!(
        created.status.success(),
        "Prometheus's OpenMetrics parser refused the text: {}\n--- text ---\n{body}",
        String::from_utf8_lossy(&created.stderr)
    );
    let dump = promtool(&["tsdb", "dump", &blocks], None);
    let dump = String::from_utf8_lossy(&dump.stdout);
    for series in [
        r#"{__name__="bmslink_gateway_rack_polls_total", rack="rack1", result="Ok"} 3 "#,
        r#"{__name__="bmslink_gateway_rack_frame_errors_total", kind="checksum", rack="rack1"} 1 "#,
        r#"{__name__="bmslink_gateway_failsafe_entries_total", cause="no_fresh_rack"} 1 "#,
        r#"{__name__="bmslink_gateway_can_frames_total", direction="Sent"} 7 "#,
    ] {
        assert!(dump.contains(series), "no `{series}` in the dump:\n{dump}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `text` with ` seconds` appended to every sample line.
fn with_timestamps(text: &str, seconds: u64) -> String {
    text.lines()
        .map(|line| match line.starts_with('#') {
            true => format!("{line}\n"),
            false => format!("{line} {seconds}\n"),
        })
        .collect()
}

/// Runs promtool with `args`, `stdin` written to it.
fn promtool(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// Whether promtool runs; without it: a loud skip, or a failure under `CI=true`.
fn promtool_available() -> bool {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return true;
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("promtool is not installed, and CI=true: install Debian's `prometheus` package");
    }
    eprintln!(
        "\n=== SKIPPED: promtool not installed (apt-get install prometheus); \
         the /metrics text was not validated ===\n"
    );
    false
}
