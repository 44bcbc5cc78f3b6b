//! `bmslink sim` as a user runs it: packs on TCP ports and pseudo-terminals that `bmslink read`
//! and `write` reach like real BMSes, data boxes uploading to a platform, injected faults.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bmslink_proto::{Deframer, Event, Message, Transport};
use common::{bmslink, stderr, stdout};

/// A running `bmslink sim`, killed on drop.
struct Sim {
    child: Child,
    endpoints: Vec<String>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sim(args: &[&str]) -> Sim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bmslink"))
        .arg("sim")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut endpoints = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.ends_with("Ctrl-C stops") {
            break;
        }
        let (_, endpoint) = line.split_once(": ").unwrap();
        endpoints.push(endpoint.to_string());
    }
    // Keep reading the summary so the pipe never fills.
    std::thread::spawn(move || lines.for_each(drop));
    Sim { child, endpoints }
}

#[test]
fn packs_on_tcp_ports_answer_read_and_write() {
    let sim = sim(&[
        "--packs",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--profile",
        "constant:-20",
        "--chemistry",
        "nmc",
    ]);
    assert_eq!(sim.endpoints.len(), 2);
    assert!(sim.endpoints[1].starts_with("tcp://127.0.0.1:"));
    let output = bmslink(&[
        "read",
        "--port",
        &sim.endpoints[1],
        "--json",
        "cell_count",
        "current",
        "battery_type",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let line: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(line["fields"]["cell_count"]["value"], 16);
    assert_eq!(line["fields"]["current"]["value"], -20.0);
    assert_eq!(line["fields"]["battery_type"]["value"], "nmc");
    let output = bmslink(&[
        "write",
        "--port",
        &sim.endpoints[0],
        "--password",
        "123456",
        "low_capacity_alarm",
        "30%",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "low_capacity_alarm (0xB1): 20% -> 30% (confirmed by read-back)"
    );
}

#[test]
fn packs_on_pseudo_terminals_are_serial_ports() {
    let sim = sim(&["--pty", "--cells", "8", "--chemistry", "lto"]);
    assert!(
        sim.endpoints[0].starts_with("/dev/pts/"),
        "{:?}",
        sim.endpoints
    );
    let output = bmslink(&[
        "read",
        "--port",
        &sim.endpoints[0],
        "--json",
        "cell_count",
        "battery_type",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let line: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(line["fields"]["cell_count"]["value"], 8);
    assert_eq!(line["fields"]["battery_type"]["value"], "lto");
}

#[test]
fn data_boxes_upload_with_their_terminal_ids_and_record_numbers() {
    let platform = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = platform.local_addr().unwrap().to_string();
    let _sim = sim(&[
        "--packs",
        "2",
        "--upload",
        &address,
        "--interval",
        "100ms",
        "--terminal-base",
        "100",
    ]);
    let mut terminals = Vec::new();
    for _ in 0..2 {
        let (mut stream, _) = platform.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut deframer = Deframer::new();
        let mut uploads = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buffer = [0u8; 4096];
        while uploads.len() < 3 && Instant::now() < deadline {
            let n = stream.read(&mut buffer).unwrap();
            deframer.feed(&buffer[..n], |event| {
                if let Event::Frame(frame, _) = event {
                    let message = Message::from_frame(frame).unwrap();
                    uploads.push((
                        message.header.transport,
                        message.header.terminal.number(),
                        message.header.record.sequence(),
                    ));
                }
            });
        }
        assert!(uploads.len() >= 3, "{uploads:?}");
        assert!(uploads
            .iter()
            .all(|(transport, _, _)| *transport == Transport::ActiveUpload));
        assert_eq!(uploads[1].2, uploads[0].2 + 1, "record numbers count up");
        terminals.push(uploads[0].1);
    }
    terminals.sort();
    assert_eq!(terminals, vec![100, 101]);
}

#[test]
fn injected_corruption_is_seen_by_the_reader_as_checksum_errors() {
    let sim = sim(&["--listen", "127.0.0.1:0", "--corrupt", "1"]);
    let output = bmslink(&[
        "read",
        "--port",
        &sim.endpoints[0],
        "--timeout",
        "200ms",
        "--retries",
        "1",
        "--no-activate",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("no reply within 200 ms"), "{err}");
    assert!(
        err.contains("error")
            && (err.contains("checksum") || err.contains("malformed") || err.contains("bad")),
        "{err}"
    );
}

#[test]
fn out_of_range_options_are_refused() {
    let output = bmslink(&["sim", "--cells", "40"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--cells 40 is outside 3..=32"),
        "{}",
        stderr(&output)
    );
    let output = bmslink(&["sim", "--profile", "sinus"]);
    assert!(
        stderr(&output).contains("unknown profile 'sinus'"),
        "{}",
        stderr(&output)
    );
}

/// A platform for the fleet test: acknowledges every upload, counts them per terminal, and
/// records each connection's source address; on the first connection it also sends a read-all
/// request and keeps the answer.
#[derive(Default)]
struct FleetPlatform {
    uploads: std::collections::BTreeMap<u32, u32>,
    sources: std::collections::BTreeSet<std::net::IpAddr>,
    answer: Option<Vec<u8>>,
}

fn acknowledge(header: bmslink_proto::Header) -> Vec<u8> {
    let header = bmslink_proto::Header {
        source: bmslink_proto::Source::Pc,
        transport: Transport::Response,
        ..header
    };
    let mut buffer = [0u8; 64];
    let mut builder = bmslink_proto::frame::FrameBuilder::new(&mut buffer, header).unwrap();
    builder.push(&[0x00]).unwrap();
    builder.finish().unwrap().to_vec()
}

fn serve_fleet_connection(
    mut stream: std::net::TcpStream,
    platform: std::sync::Arc<std::sync::Mutex<FleetPlatform>>,
    ask: bool,
) {
    use std::io::Write as _;
    if ask {
        let header = bmslink_proto::Header::request(
            bmslink_proto::Command::ReadAll,
            bmslink_proto::Source::Pc,
        );
        let mut buffer = [0u8; 64];
        let request = bmslink_proto::Request::ReadAll
            .emit(header, &mut buffer)
            .unwrap();
        stream.write_all(request).unwrap();
    }
    let mut deframer = Deframer::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut acks = Vec::new();
        deframer.feed(&buffer[..n], |event| {
            let Event::Frame(frame, _) = event else {
                return;
            };
            let header = frame.header().unwrap();
            let mut platform = platform.lock().unwrap();
            match header.transport {
                Transport::ActiveUpload => {
                    *platform
                        .uploads
                        .entry(header.terminal.number())
                        .or_default() += 1;
                    acks.push(acknowledge(header));
                }
                _ => platform.answer = Some(frame.as_bytes().to_vec()),
            }
        });
        for ack in acks {
            if stream.write_all(&ack).is_err() {
                return;
            }
        }
    }
}

#[test]
fn a_fleet_uploads_from_the_source_addresses_asked_for_and_reports_its_counts() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let platform = std::sync::Arc::new(std::sync::Mutex::new(FleetPlatform::default()));
    let for_thread = platform.clone();
    std::thread::spawn(move || {
        for (index, stream) in listener.incoming().enumerate() {
            let stream = stream.unwrap();
            let peer = stream.peer_addr().unwrap().ip();
            for_thread.lock().unwrap().sources.insert(peer);
            let platform = for_thread.clone();
            std::thread::spawn(move || serve_fleet_connection(stream, platform, index == 0));
        }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_bmslink"))
        .args([
            "sim",
            "--fleet",
            "24",
            "--connect",
            &address,
            "--interval",
            "200ms",
            "--terminal-base",
            "500",
            "--source-ips",
            "127.0.0.1-127.0.0.3",
            "--summary",
            "300ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _sim = Sim {
        child,
        endpoints: Vec::new(),
    };
    let mut header = Vec::new();
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    for line in lines {
        let line = line.unwrap();
        if header.len() < 3 {
            header.push(line.clone());
        }
        let done = line.starts_with("24 data boxes: connected 24 ")
            && !line.contains(" acknowledged 0 ")
            && line.contains(" answered 1 ");
        last = line;
        if done || Instant::now() > deadline {
            break;
        }
    }
    assert!(
        header[0].starts_with("fleet: 24 data boxes, terminals 0001F4..00020B, uploading to "),
        "{header:?}"
    );
    assert!(
        header[0].ends_with("every 200ms from 127.0.0.1-127.0.0.3 (3 addresses)"),
        "{header:?}"
    );
    assert!(header[1].ends_with("Ctrl-C stops"), "{header:?}");
    assert!(
        header[2].starts_with("all 24 data boxes connected in "),
        "{header:?}"
    );
    assert!(last.contains(" reconnects 0  connect failures 0"), "{last}");
    assert!(last.contains(" answered 1 "), "{last}");
    let platform = platform.lock().unwrap();
    assert_eq!(platform.uploads.len(), 24, "{:?}", platform.uploads);
    assert_eq!(platform.uploads.keys().next(), Some(&500));
    assert!(platform.uploads.values().all(|&n| n >= 1));
    let sources: Vec<String> = platform.sources.iter().map(ToString::to_string).collect();
    assert_eq!(sources, ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    let answer = platform.answer.as_ref().expect("the read-all was answered");
    let message = Message::parse(answer).unwrap();
    assert_eq!(message.header.transport, Transport::Response);
    assert!(matches!(message.body, bmslink_proto::Body::Data(_)));
}

#[test]
fn fleet_options_that_cannot_work_are_refused() {
    let output = bmslink(&["sim", "--fleet", "0", "--connect", "127.0.0.1:9"]);
    assert!(
        stderr(&output).contains("--fleet 0 is outside 1..=100000"),
        "{}",
        stderr(&output)
    );
    let output = bmslink(&[
        "sim",
        "--fleet",
        "2",
        "--connect",
        "127.0.0.1:9",
        "--source-ips",
        "127.0.0.9-127.0.0.1",
    ]);
    assert!(
        stderr(&output)
            .contains("--source-ips: source addresses: 127.0.0.9-127.0.0.1 ends before it starts"),
        "{}",
        stderr(&output)
    );
    let output = bmslink(&["sim", "--fleet", "2"]);
    assert_eq!(output.status.code(), Some(2), "--fleet needs --connect");
    let output = bmslink(&[
        "sim",
        "--fleet",
        "2",
        "--packs",
        "3",
        "--connect",
        "127.0.0.1:9",
    ]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "--fleet takes the place of --packs"
    );
}
