//! The platform uplink against a small TCP listener acting as the platform (it acknowledges
//! every upload, as the real one does after storing it):
//!
//! - `the_backlog_on_disk_carries_every_reading_through_an_outage_and_a_restart`: uploads
//!   arrive with increasing record numbers per terminal; the platform goes away for a while
//!   (the readings accumulate on disk), comes back (every reading arrives, once, in order);
//!   the gateway restarts (a new uplink on the same directory) while the platform is away, and
//!   sends what was left when it returns;
//! - `the_backlog_in_memory_carries_every_reading_through_an_outage`: the same without a
//!   directory;
//! - `the_platform_reads_and_writes_a_simulated_rack_through_the_gateway`: the whole gateway
//!   (`Gateway::start` with an `[uplink]` section) over simulated racks: uploads carry the
//!   racks' values, a read-all request is answered with the rack's latest reading, and a write
//!   (pair code with the rack's password, write) reaches the simulated BMS, is answered after
//!   the read-back, and shows in the next upload.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bmslink_core::chemistry::Chemistry;
use bmslink_core::time::Instant as CoreInstant;
use bmslink_gateway::config::{self, UplinkConfig};
use bmslink_gateway::daemon::Gateway;
use bmslink_gateway::rack::{PackSnapshot, RackHandle};
use bmslink_gateway::site::{RackIdentity, Site, SiteSnapshot};
use bmslink_gateway::uplink::{run_uplink, UplinkOptions, UplinkRack};
use bmslink_proto::frame::{FrameBuilder, Header};
use bmslink_proto::value::FixedText;
use bmslink_proto::{
    vectors, Body, Command, Deframer, Event, Identifier, Message, RecordNumber, Request, Source,
    TerminalId, Transport,
};
use bmslink_sim::bms::{BmsConfig, VirtualBms};
use bmslink_sim::pack::PackConfig;
use bmslink_sim::serve::{self, Faults, SharedBms};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

// --- The platform -------------------------------------------------------------------------------

/// What the platform received.
#[derive(Default)]
struct Seen {
    /// (terminal, record sequence) of every upload, in arrival order, duplicates included.
    uploads: Vec<(u32, u32)>,
    /// Frames that were not uploads (answers to the platform's requests).
    answers: Vec<Vec<u8>>,
}

impl Seen {
    /// Each terminal's records as the platform stores them: once each, in arrival order.
    fn stored(&self) -> BTreeMap<u32, Vec<u32>> {
        let mut stored: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &(terminal, record) in &self.uploads {
            let records = stored.entry(terminal).or_default();
            if !records.contains(&record) {
                records.push(record);
            }
        }
        stored
    }
}

type Shared = Arc<Mutex<Seen>>;

/// A platform that acknowledges every upload; `requests` are sent on each new connection.
struct Platform {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Platform {
    async fn start(
        address: SocketAddr,
        seen: Shared,
        requests: mpsc::Sender<TcpWriter>,
    ) -> Platform {
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (reader, writer) = stream.into_split();
                let writer = Arc::new(tokio::sync::Mutex::new(writer));
                let _ = requests.try_send(writer.clone());
                connections.spawn(platform_connection(reader, writer, seen.clone()));
            }
        });
        Platform { address, task }
    }

    /// Goes away: the listener and every connection close.
    fn stop(self) {
        self.task.abort();
    }
}

type TcpWriter = Arc<tokio::sync::Mutex<tokio::net::tcp::OwnedWriteHalf>>;

fn acknowledgement(header: Header) -> Vec<u8> {
    let header = Header {
        source: Source::Pc,
        transport: Transport::Response,
        ..header
    };
    let mut buffer = [0u8; 64];
    let mut builder = FrameBuilder::new(&mut buffer, header).unwrap();
    builder.push(&[0x00]).unwrap();
    builder.finish().unwrap().to_vec()
}

async fn platform_connection(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    writer: TcpWriter,
    seen: Shared,
) {
    let mut deframer = Deframer::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut acks = Vec::new();
        deframer.feed(&buffer[..n], |event| {
            let Event::Frame(frame, _) = event else {
                panic!("the gateway sent a malformed frame");
            };
            let header = frame.header().unwrap();
            let mut seen = seen.lock().unwrap();
            if header.transport == Transport::ActiveUpload {
                assert_eq!(header.source, Source::DataBox);
                seen.uploads
                    .push((header.terminal.number(), header.record.sequence()));
                acks.push(acknowledgement(header));
            } else {
                seen.answers.push(frame.as_bytes().to_vec());
            }
        });
        let mut writer = writer.lock().await;
        for ack in acks {
            if writer.write_all(&ack).await.is_err() {
                return;
            }
        }
    }
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// --- A site whose racks always have a fresh reading ---------------------------------------------

const TERMINALS: [u32; 2] = [1000, 1001];

/// A site of two racks publishing a new reading (vector A03) for each every 50 ms.
fn fresh_readings() -> watch::Receiver<Arc<SiteSnapshot>> {
    let identities = (1..=2)
        .map(|n| RackIdentity {
            name: format!("rack-{n}"),
            link_text: "test".into(),
        })
        .collect();
    let failsafe = config::default_config().unwrap().failsafe_config();
    let site = Site::new(
        identities,
        Duration::from_secs(5),
        failsafe,
        CoreInstant::ZERO,
    );
    let (sender, receiver) = watch::channel(Arc::new(site.snapshot().clone()));
    let reading = PackSnapshot::parse(&vectors::bytes("A03").unwrap(), CoreInstant::ZERO).unwrap();
    tokio::spawn(async move {
        loop {
            let mut snapshot = site.snapshot().clone();
            for rack in &mut snapshot.racks {
                rack.reading = Some(Arc::new(reading.clone()));
            }
            if sender.send(Arc::new(snapshot)).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    receiver
}

fn uplink_config(server: SocketAddr, backlog_dir: Option<PathBuf>) -> UplinkConfig {
    UplinkConfig {
        server: server.to_string(),
        terminals: TERMINALS
            .iter()
            .map(|&n| TerminalId::new(0, n).unwrap())
            .collect(),
        interval: Duration::from_millis(100),
        backlog_dir,
        // Not read here: `quick_options` gives the uplink its waits.
        reconnect_max: Duration::from_secs(1),
    }
}

fn quick_options() -> UplinkOptions {
    UplinkOptions {
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(300),
        ack_timeout: Duration::from_secs(2),
        ..UplinkOptions::default()
    }
}

/// Starts the uplink of the two racks; the write handles' receivers are kept alive.
fn start_uplink(
    config: UplinkConfig,
    snapshot: watch::Receiver<Arc<SiteSnapshot>>,
) -> (
    JoinHandle<()>,
    Vec<mpsc::Receiver<bmslink_gateway::rack::WriteRequest>>,
) {
    let mut racks = Vec::new();
    let mut receivers = Vec::new();
    for index in 0..2 {
        let (handle, writes) = RackHandle::new(index, format!("rack-{}", index + 1));
        racks.push(UplinkRack {
            handle,
            password: None,
        });
        receivers.push(writes);
    }
    let task = tokio::spawn(run_uplink(config, racks, snapshot, quick_options()));
    (task, receivers)
}

fn stored_count(seen: &Shared, terminal: u32) -> usize {
    seen.lock()
        .unwrap()
        .stored()
        .get(&terminal)
        .map_or(0, Vec::len)
}

/// Every terminal has `count` more stored readings than in `before`.
async fn wait_for_more(seen: &Shared, before: &BTreeMap<u32, usize>, count: usize, what: &str) {
    wait_until(what, Duration::from_secs(15), || {
        TERMINALS
            .iter()
            .all(|t| stored_count(seen, *t) >= before.get(t).copied().unwrap_or(0) + count)
    })
    .await;
}

fn counts(seen: &Shared) -> BTreeMap<u32, usize> {
    TERMINALS
        .iter()
        .map(|&t| (t, stored_count(seen, t)))
        .collect()
}

/// Each terminal's stored records are consecutive and arrived in increasing order: nothing
/// lost, nothing out of order.
fn assert_complete_and_in_order(seen: &Shared) {
    let seen = seen.lock().unwrap();
    for (terminal, records) in seen.stored() {
        for pair in records.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "terminal {terminal}: {} readings stored, a gap or a reordering at {pair:?}",
                records.len()
            );
        }
    }
}

fn segment_bytes(dir: &Path) -> u64 {
    let mut bytes = 0;
    for terminal in std::fs::read_dir(dir).unwrap() {
        for file in std::fs::read_dir(terminal.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "nwseg") {
                bytes += std::fs::metadata(path).unwrap().len();
            }
        }
    }
    bytes
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "bmslink-uplink-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn no_requests() -> mpsc::Sender<TcpWriter> {
    mpsc::channel(16).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_on_disk_carries_every_reading_through_an_outage_and_a_restart() {
    common::init_logging();
    let dir = TempDir::new("disk");
    let seen = Shared::default();
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let platform = Platform::start(any_port, seen.clone(), no_requests()).await;
    let address = platform.address;
    let snapshot = fresh_readings();
    let config = uplink_config(address, Some(dir.0.clone()));
    let (uplink, _writes) = start_uplink(config.clone(), snapshot.clone());
    wait_for_more(&seen, &BTreeMap::new(), 5, "5 uploads per terminal").await;
    {
        let seen = seen.lock().unwrap();
        for records in seen.stored().values() {
            assert!(records.windows(2).all(|w| w[1] > w[0]), "{records:?}");
        }
    }

    // The platform goes away: the readings go to disk.
    platform.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let on_disk = segment_bytes(&dir.0);
    assert!(on_disk > 10 * 290, "only {on_disk} bytes on disk");
    let before = counts(&seen);
    let platform = Platform::start(address, seen.clone(), no_requests()).await;
    wait_for_more(&seen, &before, 15, "the backlog and new readings").await;
    assert_complete_and_in_order(&seen);

    // The platform goes away again, and the gateway restarts meanwhile.
    platform.stop();
    tokio::time::sleep(Duration::from_millis(600)).await;
    uplink.abort();
    let _ = uplink.await;
    let (_uplink, _writes) = start_uplink(config, snapshot);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = counts(&seen);
    let _platform = Platform::start(address, seen.clone(), no_requests()).await;
    wait_for_more(&seen, &before, 15, "what was left, and new readings").await;
    assert_complete_and_in_order(&seen);
    let seen = seen.lock().unwrap();
    let resent = seen.uploads.len() - seen.stored().values().map(Vec::len).sum::<usize>();
    // Only frames in flight when a connection broke come twice (the platform stores them once).
    assert!(resent <= 2 * 2 * 8, "{resent} frames sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_in_memory_carries_every_reading_through_an_outage() {
    common::init_logging();
    let seen = Shared::default();
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let platform = Platform::start(any_port, seen.clone(), no_requests()).await;
    let address = platform.address;
    let (_uplink, _writes) = start_uplink(uplink_config(address, None), fresh_readings());
    wait_for_more(&seen, &BTreeMap::new(), 3, "3 uploads per terminal").await;
    platform.stop();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = counts(&seen);
    let _platform = Platform::start(address, seen.clone(), no_requests()).await;
    wait_for_more(&seen, &before, 12, "the backlog and new readings").await;
    assert_complete_and_in_order(&seen);
}

// --- The whole gateway over simulated racks -------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two simulated racks on loopback TCP (password "123456").
async fn simulated_racks() -> (Vec<SharedBms>, Vec<String>) {
    let mut packs = Vec::new();
    let mut ports = Vec::new();
    for seed in 0..2u64 {
        let pack = PackConfig::new(Chemistry::Lfp, 16, 100.0, 70 + seed);
        let bms: SharedBms = Arc::new(Mutex::new(VirtualBms::new(BmsConfig::new(pack)).unwrap()));
        let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        ports.push(format!("tcp://{}", listener.local_addr().unwrap()));
        tokio::spawn(serve::serve_tcp(
            listener,
            bms.clone(),
            Faults::default(),
            seed,
        ));
        packs.push(bms);
    }
    tokio::spawn(serve::run_clock(packs.clone(), 1.0));
    (packs, ports)
}

fn gateway_config(ports: &[String], platform: SocketAddr) -> config::GatewayConfig {
    let mut text = String::from("poll_interval = \"200ms\"\nreply_timeout = \"150ms\"\n");
    for (index, port) in ports.iter().enumerate() {
        text.push_str(&format!(
            "[[racks]]\nname = \"rack-{}\"\nlink = {{ port = \"{port}\" }}\npassword = \"123456\"\n",
            index + 1
        ));
    }
    text.push_str(&format!(
        "[inverter.can]\nport = \"tcp://127.0.0.1:1\"\n[ems]\nlisten = \"127.0.0.1:{}\"\n\
         [uplink]\nserver = \"{platform}\"\ninterval = \"1s\"\n\
         [uplink.terminals]\n\"rack-1\" = 1000\n\"rack-2\" = 1001\n",
        free_port()
    ));
    config::load("test.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn request(request: Request<'_>, terminal: u32, record: u32) -> Vec<u8> {
    let header = Header {
        terminal: TerminalId::new(0, terminal).unwrap(),
        record: RecordNumber::new(0, record),
        ..Header::request(request.command(), Source::Pc)
    };
    let mut buffer = [0u8; 64];
    request.emit(header, &mut buffer).unwrap().to_vec()
}

/// The first answer of the gateway with record `record`, waiting for it.
async fn answer(seen: &Shared, record: u32) -> Vec<u8> {
    let mut found = None;
    wait_until("an answer", Duration::from_secs(10), || {
        let seen = seen.lock().unwrap();
        found = seen
            .answers
            .iter()
            .find(|a| Message::parse(a).unwrap().header.record.sequence() == record)
            .cloned();
        found.is_some()
    })
    .await;
    found.unwrap()
}

/// The connection of `terminal` (the first frame of each connection is an upload naming it).
async fn connection_of(
    writers: &mut mpsc::Receiver<TcpWriter>,
    seen: &Shared,
    terminal: u32,
) -> TcpWriter {
    let mut by_order = Vec::new();
    while by_order.len() < 2 {
        by_order.push(writers.recv().await.unwrap());
    }
    // Ask each connection: a read-all naming terminal 0 is answered with its own terminal id.
    for (index, writer) in by_order.iter().enumerate() {
        let bytes = request(Request::ReadAll, 0, 500 + index as u32);
        writer.lock().await.write_all(&bytes).await.unwrap();
    }
    for (index, writer) in by_order.into_iter().enumerate() {
        let reply = answer(seen, 500 + index as u32).await;
        if Message::parse(&reply).unwrap().header.terminal.number() == terminal {
            return writer;
        }
    }
    panic!("no connection of terminal {terminal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_reads_and_writes_a_simulated_rack_through_the_gateway() {
    common::init_logging();
    let (packs, ports) = simulated_racks().await;
    let seen = Shared::default();
    let (writers_tx, mut writers) = mpsc::channel(16);
    let platform = Platform::start("127.0.0.1:0".parse().unwrap(), seen.clone(), writers_tx).await;
    let gateway = Gateway::start(&gateway_config(&ports, platform.address))
        .await
        .unwrap();
    wait_for_more(&seen, &BTreeMap::new(), 2, "2 uploads per rack").await;

    // A read-all on rack-2's connection: its latest reading, its own terminal id.
    let rack_2 = connection_of(&mut writers, &seen, 1001).await;
    rack_2
        .lock()
        .await
        .write_all(&request(Request::ReadAll, 1001, 77))
        .await
        .unwrap();
    let reply = answer(&seen, 77).await;
    let message = Message::parse(&reply).unwrap();
    assert_eq!(message.header.transport, Transport::Response);
    assert_eq!(message.header.command, Command::ReadAll);
    let reading = PackSnapshot::parse(&reply, CoreInstant::ZERO).unwrap();
    let simulated = bmslink_sim::serve::lock(&packs[1]).pack().cell_count();
    assert_eq!(reading.cells.len(), simulated);

    // A write: pair code with the rack's password, then the low-capacity alarm to 30 %.
    let mut password = [0u8; 10];
    password[..6].copy_from_slice(b"123456");
    let pair = request(
        Request::PairCode {
            password: Some(FixedText::new(&password)),
        },
        1001,
        78,
    );
    let write = request(
        Request::Write {
            id: Identifier::LowCapacityAlarm,
            value: &[30],
        },
        1001,
        79,
    );
    {
        let mut writer = rack_2.lock().await;
        writer.write_all(&pair).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.write_all(&write).await.unwrap();
    }
    let reply = answer(&seen, 79).await;
    assert_eq!(
        Message::parse(&reply).unwrap().body,
        Body::WriteAck {
            id: Identifier::LowCapacityAlarm,
            value: Some(&[30][..])
        },
        "answered after the read-back"
    );
    assert_eq!(
        bmslink_sim::serve::lock(&packs[1])
            .settings()
            .low_capacity_alarm_percent,
        30
    );
    gateway.stop().await;
    platform.stop();
}
