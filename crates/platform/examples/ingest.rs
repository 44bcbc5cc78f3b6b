//! Ingest benchmark of the stores: 16-cell telemetry rows in batches, for a fixed time,
//! reported as rows per second (a measurement, not a test).
//!
//! ```text
//! cargo run --release -p bmslink-platform --example ingest -- [sqlite|postgres|both]
//!     [--seconds 10] [--batch 1000] [--terminals 1000] [--writers 2] [--url postgres://...]
//! ```
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

use std::time::{Duration, Instant};

use bmslink_platform::model::{TelemetryRow, Terminal, Timestamp};
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
}

fn options() -> Options {
    let mut options = Options {
        backends: vec!["sqlite".into(), "postgres".into()],
        seconds: 10,
        batch: 1000,
        terminals: 1000,
        writers: 2,
        url: None,
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
            other => panic!("unknown argument {other}"),
        }
    }
    options
}

/// Batch `n` of writer `writer`: rows spread over the terminals, each terminal's records
/// increasing, about one upload per terminal per second of virtual time.
fn batch(options: &Options, writer: usize, n: u64, start: i64) -> Vec<TelemetryRow> {
    let size = options.batch as u64;
    (0..size)
        .map(|i| {
            let sequence = (n * size + i) * options.writers as u64 + writer as u64;
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

async fn run<S: Store>(name: &str, store: S, options: &Options) {
    let start = Timestamp::now().millis();
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let began = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..options.writers {
        let store = store.clone();
        let options = options.clone();
        writers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut stored = 0;
            let mut n = 0;
            while Instant::now() < deadline {
                let rows = batch(&options, writer, n, start);
                let sent = Instant::now();
                let report = store.insert_telemetry(rows).await.unwrap();
                latencies.push(sent.elapsed());
                stored += report.inserted;
                n += 1;
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
    let elapsed = began.elapsed().as_secs_f64();
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "{name}: {stored} rows in {elapsed:.1} s = {:.0} rows/s ({} batches of {}, {} writers; \
         batch latency p50 {:?}, p99 {:?})",
        stored as f64 / elapsed,
        latencies.len(),
        options.batch,
        options.writers,
        percentile(0.5),
        percentile(0.99),
    );
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
