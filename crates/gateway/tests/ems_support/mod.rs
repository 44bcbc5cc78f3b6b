//! Helpers of the EMS server's integration tests: a site snapshot from vector A03, the server on
//! 127.0.0.1:0, and a fake rack write backend (the poller's side of `RackHandle`) that confirms,
//! refuses or ignores writes and records what it got.

#![allow(dead_code)] // each test file uses its own subset
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bmslink_core::failsafe::FailsafeConfig;
use bmslink_core::session::LinkState;
use bmslink_core::time::Instant;
use bmslink_gateway::clock::Clock;
use bmslink_gateway::config::{self, EmsConfig};
use bmslink_gateway::ems::{run_ems_server, EmsLinks};
use bmslink_gateway::metrics::Metrics;
use bmslink_gateway::rack::{PackSnapshot, RackHandle, RackUpdate, WriteError, WriteOutcome};
use bmslink_gateway::site::{EmsCommand, RackIdentity, Site, SiteSnapshot};
use bmslink_proto::WriteValue;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// How the fake BMS answers writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Confirms every write (reads back what was written).
    Confirm,
    /// Reads back the old value: the BMS refused.
    Refuse,
    /// Never answers: no reply after the retries.
    Silent,
}

/// A site of `racks` racks named rack-1.., each with a reading of vector A03.
pub fn snapshot(racks: usize) -> SiteSnapshot {
    snapshot_at(racks, 1_000)
}

/// As [`snapshot`], the readings received at `millis`.
pub fn snapshot_at(racks: usize, millis: u64) -> SiteSnapshot {
    let identities = (0..racks)
        .map(|i| RackIdentity {
            name: format!("rack-{}", i + 1),
            link_text: format!("tcp://127.0.0.1:{}", 9000 + i),
        })
        .collect();
    let now = Instant::from_millis(millis);
    let mut site = Site::new(
        identities,
        Duration::from_secs(5),
        FailsafeConfig::default(),
        now,
    );
    let frame = bmslink_proto::vectors::bytes("A03").unwrap();
    for rack in 0..racks {
        let reading = Arc::new(PackSnapshot::parse(&frame, now).unwrap());
        site.handle_update(
            now,
            RackUpdate {
                rack,
                link: LinkState::Online,
                reading: Some(reading),
            },
        );
    }
    site.snapshot().clone()
}

/// The `[ems]` section `text` of an otherwise minimal configuration.
pub fn ems_config(text: &str) -> EmsConfig {
    let file = format!(
        "[[racks]]\nname = \"a\"\nlink = {{ port = \"tcp://127.0.0.1:9000\" }}\n[ems]\n{text}"
    );
    config::load("gateway.toml", &file).unwrap().ems
}

/// The unlock code of the configurations below.
pub const UNLOCK_CODE: &str = "site-7-unlock";

/// Writes enabled for 127.0.0.1, everyone on loopback may read.
pub fn writable_config() -> EmsConfig {
    ems_config(&format!(
        "allow = [\"127.0.0.0/8\"]\nwrites_enabled = true\nwrite_allow = [\"127.0.0.1\"]\nunlock_code = \"{UNLOCK_CODE}\"\n"
    ))
}

/// A running server and the other ends of its channels.
pub struct Harness {
    pub address: SocketAddr,
    pub site: watch::Sender<Arc<SiteSnapshot>>,
    pub heartbeat: watch::Receiver<Option<Instant>>,
    pub commands: mpsc::Receiver<EmsCommand>,
    pub metrics: Arc<Metrics>,
    /// Every value the fake BMSes were asked to write: (rack, value).
    pub written: Arc<Mutex<Vec<(usize, WriteValue)>>>,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts the server for a site of `racks` racks on 127.0.0.1:0.
pub async fn start(config: EmsConfig, racks: usize, backend: Backend) -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (site, site_rx) = watch::channel(Arc::new(snapshot(racks)));
    let (heartbeat_tx, heartbeat) = watch::channel(None);
    let (commands_tx, commands) = mpsc::channel(16);
    let metrics = Arc::new(Metrics::new());
    let written = Arc::new(Mutex::new(Vec::new()));
    let handles = (0..racks)
        .map(|rack| {
            let (handle, requests) = RackHandle::new(rack, format!("rack-{}", rack + 1));
            tokio::spawn(serve_writes(rack, requests, backend, Arc::clone(&written)));
            handle
        })
        .collect();
    let links = EmsLinks {
        heartbeat: heartbeat_tx,
        commands: commands_tx,
    };
    let server = tokio::spawn(run_ems_server(
        listener,
        config,
        site_rx,
        handles,
        links,
        Clock::start(),
        Arc::clone(&metrics),
    ));
    Harness {
        address,
        site,
        heartbeat,
        commands,
        metrics,
        written,
        server,
    }
}

async fn serve_writes(
    rack: usize,
    mut requests: mpsc::Receiver<bmslink_gateway::rack::WriteRequest>,
    backend: Backend,
    written: Arc<Mutex<Vec<(usize, WriteValue)>>>,
) {
    while let Some(request) = requests.recv().await {
        let value = request.value;
        let bytes = value.bytes().to_vec();
        let reply = match backend {
            Backend::Confirm => {
                written.lock().unwrap().push((rack, value));
                Ok(WriteOutcome {
                    id: value.id(),
                    old: None,
                    read_back: Some(bytes),
                })
            }
            Backend::Refuse => Err(WriteError::Refused {
                written: bytes,
                read_back: vec![0; value.bytes().len()],
            }),
            Backend::Silent => Err(WriteError::NoReply(
                "no reply from tcp://127.0.0.1:9000 to the write after 3 attempts".into(),
            )),
        };
        let _ = request.reply.send(reply);
    }
}

/// A metric's value in the text exposition ("name{labels} value"), 0 if absent.
pub fn metric(metrics: &Metrics, line_start: &str) -> f64 {
    metrics
        .encode()
        .lines()
        .find(|line| line.starts_with(line_start))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// `text` as `regs` registers of NUL-padded ASCII.
pub fn ascii_registers(text: &str, regs: usize) -> Vec<u16> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(regs * 2, 0);
    bytes
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect()
}
