//! Ingest benchmark of the stores: 16-cell telemetry rows in batches, for a fixed time,
//! reported as rows per second (a measurement, not a test).
//!
//! ```text
//! cargo run --release -p bmslink-platform --example ingest -- [sqlite|postgres|both]
//!     [--seconds 10] [--batch 1000] [--terminals 1000] [--writers 2] [--url postgres://...]
//!     [--prefill ROWS]
//! ```
//!
//! `--prefill ROWS` first stores that many rows the same way (printing the rate of every
//! million), so the timed run measures a table that already holds them: index layouts that
//! degrade with size only show on a big table.
//!
//! SQLite writes a fresh file under /tmp. PostgreSQL uses `--url`, or else starts a
//! throw-away server like the tests do (`tests/support/pg.rs`: fsync off, so the figure is the
//! platform's side, not a durable server's disk). `--writers` batches are in flight at once
//! (SQLite runs them one after another on its writer thread; PostgreSQL on as many
//! connections).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../tests/support/pg.rs"]
mod pg;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bmslink_platform::model::{Resolution, TelemetryRow, Terminal, Timestamp};
use bmslink_platform::store::postgres::PgStore;
use bmslink_platform::store::sqlite::SqliteStore;
use bmslink_platform::store::{Retention, Store};

#[derive(Clone)]
struct Options {
    backends: Vec<String>,
    seconds: u64,
    batch: usize,
    terminals: u32,
    writers: usize,
    url: Option<String>,
    prefill: u64,
}

fn options() -> Options {
    let mut options = Options {
        backends: vec!["sqlite".into(), "postgres".into()],
        seconds: 10,
        batch: 1000,
        terminals: 1000,
        writers: 2,
        url: None,
        prefill: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "sqlite" | "postgres" => options.backends = vec![arg.clone()],
            "both" => {}
            "--seconds" => options.seconds = value().parse().unwrap(),
            "--batch" => options.batch = value().parse().unwrap(),
            "--terminals" => options.terminals = value().parse().unwrap(),
            "--writers" => options.writers = value().parse().unwrap(),
            "--url" => options.url = Some(value()),
            "--prefill" => options.prefill = value().parse().unwrap(),
            other => panic!("unknown argument {other}"),
        }
    }
    options
}

/// Batch `n` (numbered over all writers): rows spread over the terminals, each terminal's
/// records increasing, about one upload per terminal per second of virtual time.
fn batch(options: &Options, n: u64, start: i64) -> Vec<TelemetryRow> {
    let size = options.batch as u64;
    (0..size)
        .map(|i| {
            let sequence = n * size + i;
            let terminal = (sequence % u64::from(options.terminals)) as u32;
            let record = (sequence / u64::from(options.terminals)) as u32 & 0x00FF_FFFF;
            let at = start + (sequence * 1000 / u64::from(options.terminals)) as i64;
            row(terminal, record, at)
        })
        .collect()
}

fn row(terminal: u32, record: u32, at: i64) -> TelemetryRow {
    TelemetryRow {
        terminal: Terminal(terminal),
        at: Timestamp(at),
        record,
        voltage_mv: 53_000 + record % 500,
        current_ma: -12_000 + (record % 100) as i32,
        soc: 80,
        temperatures: [Some(31), Some(27), Some(25)],
        cells_mv: (0..16)
            .map(|i| 3_300 + ((record + i) % 20) as u16)
            .collect(),
        warnings: 0,
        status: 0x0300,
        // A typical active upload is about 120 bytes.
        raw: vec![0x5A; 120],
    }
}

/// Where the writers are: the next batch number, shared.
#[derive(Clone)]
struct Progress {
    next: Arc<AtomicU64>,
    /// Start of the current million rows of the pre-fill.
    chunk: Arc<Mutex<Instant>>,
}

/// Runs `options.writers` writers until `until` says stop; returns rows stored and every
/// batch's latency.
async fn write_until<S: Store>(
    store: &S,
    options: &Options,
    start: i64,
    progress: &Progress,
    until: Until,
) -> (u64, Vec<Duration>) {
    let mut writers = Vec::new();
    for _ in 0..options.writers {
        let (store, options, progress) = (store.clone(), options.clone(), progress.clone());
        writers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut stored = 0;
            loop {
                let n = progress.next.fetch_add(1, Ordering::Relaxed);
                if until.done(n) {
                    progress.next.fetch_sub(1, Ordering::Relaxed);
                    break;
                }
                let rows = batch(&options, n, start);
                let sent = Instant::now();
                let report = store.insert_telemetry(rows).await.unwrap();
                latencies.push(sent.elapsed());
                stored += report.inserted;
                if let Until::Batches(_) = until {
                    progress.chunk_done(n, options.batch as u64);
                }
            }
            (stored, latencies)
        }));
    }
    let mut stored = 0;
    let mut latencies = Vec::new();
    for writer in writers {
        let (rows, mut times) = writer.await.unwrap();
        stored += rows;
        latencies.append(&mut times);
    }
    (stored, latencies)
}

/// When a phase ends.
#[derive(Clone, Copy)]
enum Until {
    /// Before batch number N.
    Batches(u64),
    /// At this instant.
    Deadline(Instant),
}

impl Until {
    fn done(self, n: u64) -> bool {
        match self {
            Until::Batches(last) => n >= last,
            Until::Deadline(at) => Instant::now() >= at,
        }
    }
}

impl Progress {
    /// Prints the rate of each million pre-filled rows.
    fn chunk_done(&self, n: u64, size: u64) {
        const CHUNK: u64 = 1_000_000;
        let (before, after) = (n * size, (n + 1) * size);
        if before / CHUNK == after / CHUNK {
            return;
        }
        let mut chunk = self.chunk.lock().unwrap();
        let rate = CHUNK as f64 / chunk.elapsed().as_secs_f64();
        *chunk = Instant::now();
        println!(
            "  pre-fill: {} M rows, last million at {rate:.0} rows/s",
            after / CHUNK
        );
    }
}

async fn run<S: Store>(name: &str, store: S, options: &Options) {
    let start = Timestamp::now().millis();
    let progress = Progress {
        next: Arc::new(AtomicU64::new(0)),
        chunk: Arc::new(Mutex::new(Instant::now())),
    };
    if options.prefill > 0 {
        let began = Instant::now();
        let batches = options.prefill.div_ceil(options.batch as u64);
        let (stored, _) =
            write_until(&store, options, start, &progress, Until::Batches(batches)).await;
        let elapsed = began.elapsed().as_secs_f64();
        println!(
            "{name}: pre-filled {stored} rows in {elapsed:.0} s = {:.0} rows/s",
            stored as f64 / elapsed
        );
    }
    let began = Instant::now();
    let deadline = Until::Deadline(began + Duration::from_secs(options.seconds));
    let (stored, mut latencies) = write_until(&store, options, start, &progress, deadline).await;
    let elapsed = began.elapsed().as_secs_f64();
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "{name}: {stored} rows in {elapsed:.1} s = {:.0} rows/s ({} batches of {}, {} writers, \
         {} terminals, {} rows before; batch latency p50 {:?}, p99 {:?})",
        stored as f64 / elapsed,
        latencies.len(),
        options.batch,
        options.writers,
        options.terminals,
        options.prefill,
        percentile(0.5),
        percentile(0.99),
    );
    history_probe(name, &store, options, start).await;
    let maintained = Instant::now();
    let report = store
        .maintain(Timestamp::now(), Retention::default())
        .await
        .unwrap();
    println!(
        "{name}: maintain after the run: {report:?} in {:?}",
        maintained.elapsed()
    );
}

/// Times raw history reads of a few terminals over the first hour of virtual time (every
/// row of a run shorter than that).
async fn history_probe<S: Store>(name: &str, store: &S, options: &Options, start: i64) {
    let (from, to) = (start, start + 3_600_000);
    let began = Instant::now();
    let mut points = 0;
    let probes = 20;
    for terminal in (0..probes).map(|i| i * (options.terminals / probes).max(1)) {
        let history = store
            .history(
                Terminal(terminal),
                Timestamp(from),
                Timestamp(to),
                Resolution::Raw,
            )
            .await
            .unwrap();
        points += history.len();
    }
    println!(
        "{name}: raw history of {probes} terminals over an hour: {points} points in {:?}",
        began.elapsed()
    );
}

#[tokio::main]
async fn main() {
    let options = options();
    for backend in &options.backends {
        match backend.as_str() {
            "sqlite" => {
                let dir = tempfile::Builder::new()
                    .prefix("bmslink-ingest-")
                    .tempdir_in("/tmp")
                    .unwrap();
                let store = SqliteStore::open(&dir.path().join("platform.sqlite")).unwrap();
                run("sqlite", store, &options).await;
            }
            _ => {
                let server;
                let url = match &options.url {
                    Some(url) => url.clone(),
                    None => {
                        server = pg::PgServer::start_or_skip("ingest benchmark");
                        let Some(server) = &server else { continue };
                        server.create_database("ingest")
                    }
                };
                let store = PgStore::connect(&url).await.unwrap();
                run("postgres", store, &options).await;
            }
        }
    }
}
