//! A fleet of simulated data boxes against a small TCP listener acting as the platform: every
//! box uploads with its terminal id and increasing record numbers, the acknowledgements are
//! counted, the boxes bind to the source addresses asked for, a read-all request is answered
//! with the pack's values, and after the platform drops every connection the boxes come back
//! spread out in time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bmslink_core::chemistry::Chemistry;
use bmslink_core::snapshot::PackSnapshot;
use bmslink_core::time::Instant as CoreInstant;
use bmslink_proto::frame::{FrameBuilder, Header, MAX_FRAME_LEN};
use bmslink_proto::{
    Command, Deframer, Event, RecordNumber, Request, Source, TerminalId, Transport,
};
use bmslink_sim::bms::{BmsConfig, VirtualBms};
use bmslink_sim::fleet::{parse_sources, Backoff, Fleet, FleetConfig};
use bmslink_sim::pack::PackConfig;
use bmslink_sim::serve::SharedBms;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// What the platform saw.
#[derive(Default)]
struct Seen {
    /// Record sequences per terminal, in arrival order.
    uploads: BTreeMap<u32, Vec<u32>>,
    /// Peer address of every connection.
    peers: Vec<SocketAddr>,
    /// When each connection was accepted.
    accepted: Vec<Instant>,
    /// Frames that were not uploads.
    others: Vec<Vec<u8>>,
}

type Shared = Arc<Mutex<Seen>>;

/// How the fake platform treats connections.
#[derive(Clone, Copy, PartialEq)]
enum Platform {
    /// Acknowledges every upload.
    Acknowledging,
    /// Closes each connection after its first upload.
    Dropping,
}

async fn platform(behaviour: Platform) -> (SocketAddr, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Shared::default();
    let for_task = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            {
                let mut seen = for_task.lock().unwrap();
                seen.peers.push(peer);
                seen.accepted.push(Instant::now());
            }
            tokio::spawn(connection(stream, for_task.clone(), behaviour));
        }
    });
    (address, seen)
}

/// The platform's response to an upload: transport 01, same terminal and record.
fn acknowledgement(header: Header) -> Vec<u8> {
    let mut buffer = [0u8; 64];
    let header = Header {
        source: Source::Pc,
        transport: Transport::Response,
        ..header
    };
    let mut builder = FrameBuilder::new(&mut buffer, header).unwrap();
    builder.push(&[0x00]).unwrap();
    builder.finish().unwrap().to_vec()
}

async fn connection(mut stream: TcpStream, seen: Shared, behaviour: Platform) {
    let mut deframer = Deframer::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut acks = Vec::new();
        deframer.feed(&buffer[..n], |event| {
            let Event::Frame(frame, _) = event else {
                return;
            };
            let header = frame.header().unwrap();
            let mut seen = seen.lock().unwrap();
            if header.transport == Transport::ActiveUpload {
                seen.uploads
                    .entry(header.terminal.number())
                    .or_default()
                    .push(header.record.sequence());
                acks.push(acknowledgement(header));
            } else {
                seen.others.push(frame.as_bytes().to_vec());
            }
        });
        if behaviour == Platform::Dropping && !acks.is_empty() {
            return;
        }
        for ack in acks {
            stream.write_all(&ack).await.unwrap();
        }
    }
}

fn pack(terminal: u32) -> SharedBms {
    let mut config = BmsConfig::new(PackConfig::new(
        Chemistry::Lfp,
        16,
        100.0,
        u64::from(terminal),
    ));
    config.terminal = TerminalId::new(0, terminal).unwrap();
    let mut bms = VirtualBms::new(config).unwrap();
    bms.step(Duration::from_secs(1));
    Arc::new(Mutex::new(bms))
}

/// `count` boxes, terminals 1000.., uploading every 100 ms.
fn start_fleet(config: FleetConfig, count: u32) -> Fleet {
    let fleet = Fleet::new(config).unwrap();
    for index in 0..count {
        tokio::spawn(fleet.clone().run_box(index as usize, pack(1000 + index)));
    }
    fleet
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_box_uploads_with_its_terminal_and_increasing_records_and_counts_the_acks() {
    let (address, seen) = platform(Platform::Acknowledging).await;
    let fleet = start_fleet(FleetConfig::new(address, Duration::from_millis(100)), 20);
    wait_until("every terminal uploaded 5 times", || {
        let seen = seen.lock().unwrap();
        seen.uploads.len() == 20 && seen.uploads.values().all(|r| r.len() >= 5)
    })
    .await;
    let seen = seen.lock().unwrap();
    let terminals: Vec<u32> = seen.uploads.keys().copied().collect();
    assert_eq!(terminals, (1000..1020).collect::<Vec<_>>());
    for (terminal, records) in &seen.uploads {
        assert!(
            records.windows(2).all(|w| w[1] == w[0] + 1),
            "terminal {terminal}: {records:?}"
        );
    }
    let counts = fleet.stats().counts();
    assert_eq!((counts.connected, counts.ever_connected), (20, 20));
    assert_eq!((counts.reconnects, counts.connect_failures), (0, 0));
    let stored: usize = seen.uploads.values().map(Vec::len).sum();
    assert!(counts.uploads >= stored as u64, "{counts:?} vs {stored}");
    // Acknowledgements in flight may not have arrived yet.
    assert!(
        counts.acknowledged + 20 >= stored as u64,
        "{counts:?} vs {stored}"
    );
    assert!(counts.acknowledged > 0);
}

#[tokio::test]
async fn boxes_spread_over_the_source_addresses_asked_for() {
    let (address, seen) = platform(Platform::Acknowledging).await;
    let mut config = FleetConfig::new(address, Duration::from_millis(100));
    config.sources = parse_sources("127.0.0.1-127.0.0.4").unwrap();
    let _fleet = start_fleet(config, 12);
    wait_until("12 connections", || seen.lock().unwrap().peers.len() == 12).await;
    let mut per_source: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for peer in &seen.lock().unwrap().peers {
        *per_source.entry(peer.ip()).or_default() += 1;
    }
    let expected: BTreeMap<IpAddr, usize> = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .map(|ip| (ip.parse().unwrap(), 3))
        .collect();
    assert_eq!(per_source, expected);
}

fn read_all_request(terminal: u32) -> Vec<u8> {
    let header = Header {
        terminal: TerminalId::new(0, terminal).unwrap(),
        record: RecordNumber::new(0, 77),
        ..Header::request(Command::ReadAll, Source::Pc)
    };
    let mut buffer = [0u8; 64];
    Request::ReadAll.emit(header, &mut buffer).unwrap().to_vec()
}

#[tokio::test]
async fn a_read_all_request_on_the_upload_connection_is_answered_with_the_pack() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // Uploads every 10 s: the first one comes within the interval, the answer at once.
    let fleet = start_fleet(FleetConfig::new(address, Duration::from_secs(10)), 1);
    let (mut stream, _) = listener.accept().await.unwrap();
    stream.write_all(&read_all_request(1000)).await.unwrap();
    let mut deframer = Deframer::new();
    let mut buffer = [0u8; MAX_FRAME_LEN];
    let mut reply = None;
    while reply.is_none() {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "the box closed the connection");
        deframer.feed(&buffer[..n], |event| {
            if let Event::Frame(frame, _) = event {
                if frame.transport_byte() == u8::from(Transport::Response) {
                    reply = Some(frame.as_bytes().to_vec());
                }
            }
        });
    }
    let reply = reply.unwrap();
    let header = bmslink_proto::Frame::new_checked(&reply[..])
        .unwrap()
        .header()
        .unwrap();
    assert_eq!(header.command, Command::ReadAll);
    assert_eq!(header.terminal.number(), 1000);
    assert_eq!(
        header.record.sequence(),
        77,
        "the reply carries the request's record"
    );
    let snapshot = PackSnapshot::parse(&reply, CoreInstant::ZERO).unwrap();
    assert_eq!(snapshot.cells.len(), 16);
    assert!(snapshot.settings.is_some());
    assert_eq!(fleet.stats().counts().answered, 1);
}

#[tokio::test]
async fn after_the_platform_drops_every_connection_the_boxes_come_back_spread_out() {
    let (address, seen) = platform(Platform::Dropping).await;
    let mut config = FleetConfig::new(address, Duration::from_millis(50));
    config.backoff = Backoff {
        initial: Duration::from_millis(400),
        max: Duration::from_secs(2),
    };
    let fleet = start_fleet(config, 30);
    wait_until("every box reconnected", || {
        fleet.stats().counts().reconnects >= 30
    })
    .await;
    let seen = seen.lock().unwrap();
    // The 30 reconnections after the first connections: not one burst.
    let mut again: Vec<Instant> = seen.accepted[30..].to_vec();
    again.sort();
    let spread = again[again.len() - 1] - again[0];
    assert!(
        spread > Duration::from_millis(150),
        "reconnections within {spread:?}"
    );
    let peers: BTreeSet<u16> = seen.peers.iter().map(SocketAddr::port).collect();
    assert_eq!(
        peers.len(),
        seen.peers.len(),
        "each connection is a new one"
    );
}
