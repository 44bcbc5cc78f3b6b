//! Load generator for the platform's ingest figure: N connections, each a data box with its own
//! terminal, sending 16-cell uploads (the fields of the real capture A03) as fast as the
//! platform acknowledges them, with at most W unacknowledged per connection. Reports
//! acknowledged uploads per second (every acknowledged upload is stored: the listener answers
//! only after the commit) and the upload -> acknowledgement latency.
//!
//! ```text
//! cargo run --release -p bmslink-platform --example flood -- HOST:PORT CONNECTIONS WINDOW SECONDS [TERMINAL_BASE] [INTERVAL_MS]
//! ```
//!
//! With INTERVAL_MS, each connection behaves like a real data box instead: one upload every
//! interval (from a random phase), whatever the acknowledgements do; WINDOW is then unused.
//! The report adds uploads sent, so sent vs stored shows whether the platform kept up.
//!
//! Connections are spread over 127.0.0.x source addresses (5,000 per address) for a loopback
//! platform. Frames are built once per upload with the protocol crate's `FrameBuilder` (the
//! record number changes); the generator does no physics, so most of the machine is left to
//! the platform.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bmslink_proto::frame::{FrameBuilder, MAX_FRAME_LEN};
use bmslink_proto::{
    vectors, Body, Command, Deframer, Event, Header, Message, RecordNumber, Source, TerminalId,
    Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// The (identifier, value bytes) pairs of A03, in wire order.
fn fields() -> Result<Vec<(bmslink_proto::Identifier, Vec<u8>)>, String> {
    let frame = vectors::bytes("A03").ok_or("no vector A03")?;
    let message = Message::parse(&frame).map_err(|e| e.to_string())?;
    let Body::Data(info) = message.body else {
        return Err("A03 is not data".into());
    };
    Ok(info.fields().map(|f| (f.id, f.bytes.to_vec())).collect())
}

fn upload(
    terminal: TerminalId,
    sequence: u32,
    fields: &[(bmslink_proto::Identifier, Vec<u8>)],
) -> Vec<u8> {
    let header = Header {
        terminal,
        command: Command::ReadAll,
        source: Source::DataBox,
        transport: Transport::ActiveUpload,
        record: RecordNumber::new(0, sequence),
    };
    let mut buffer = [0u8; MAX_FRAME_LEN];
    let Ok(mut builder) = FrameBuilder::new(&mut buffer, header) else {
        return Vec::new();
    };
    for (id, bytes) in fields {
        if builder.push_field(*id, bytes).is_err() {
            return Vec::new();
        }
    }
    builder.finish().map(<[u8]>::to_vec).unwrap_or_default()
}

#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    acked: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

/// How a connection paces its uploads.
#[derive(Clone, Copy)]
enum Pace {
    /// As fast as acknowledged, at most this many outstanding.
    Window(usize),
    /// One per interval.
    Every(Duration),
}

async fn run_box(
    platform: SocketAddr,
    source: IpAddr,
    terminal: TerminalId,
    pace: Pace,
    fields: Arc<Vec<(bmslink_proto::Identifier, Vec<u8>)>>,
    totals: Arc<Totals>,
    measuring: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let mut stream = socket
        .connect(platform)
        .await
        .map_err(|e| format!("connect {platform}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut reader, mut writer) = stream.split();
    let mut sequence = 0u32;
    let mut sent_at = std::collections::VecDeque::new();
    let mut deframer = Deframer::new();
    let mut buffer = vec![0u8; 4096];
    let mut latencies = Vec::new();
    let mut ticker = match pace {
        Pace::Every(interval) => {
            // Phases spread over the interval, so the uploads do not come in one burst.
            let step = u64::from(terminal.number() % 1000) * interval.as_micros() as u64 / 1000;
            let phase = Duration::from_micros(step);
            tokio::time::interval_at(tokio::time::Instant::now() + phase, interval)
        }
        Pace::Window(_) => tokio::time::interval(Duration::from_secs(3600)),
    };
    loop {
        if let Pace::Window(window) = pace {
            while sent_at.len() < window {
                sequence = (sequence + 1) & RecordNumber::MAX_SEQUENCE;
                let frame = upload(terminal, sequence, &fields);
                writer.write_all(&frame).await.map_err(|e| e.to_string())?;
                sent_at.push_back(Instant::now());
                if measuring.load(Ordering::Relaxed) {
                    totals.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let n = tokio::select! {
            read = reader.read(&mut buffer) => read.map_err(|e| e.to_string())?,
            _ = ticker.tick(), if matches!(pace, Pace::Every(_)) => {
                sequence = (sequence + 1) & RecordNumber::MAX_SEQUENCE;
                let frame = upload(terminal, sequence, &fields);
                writer.write_all(&frame).await.map_err(|e| e.to_string())?;
                sent_at.push_back(Instant::now());
                if measuring.load(Ordering::Relaxed) {
                    totals.sent.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
        };
        if n == 0 {
            return Err("the platform closed the connection".into());
        }
        let mut acks = 0;
        deframer.feed(&buffer[..n], |event| {
            if matches!(event, Event::Frame(..)) {
                acks += 1;
            }
        });
        for _ in 0..acks {
            if let Some(sent) = sent_at.pop_front() {
                if measuring.load(Ordering::Relaxed) {
                    totals.acked.fetch_add(1, Ordering::Relaxed);
                    latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                    if latencies.len() >= 16 {
                        if let Ok(mut all) = totals.latencies_us.lock() {
                            all.append(&mut latencies);
                        }
                    }
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: flood HOST:PORT CONNECTIONS WINDOW SECONDS [TERMINAL_BASE] [INTERVAL_MS]";
    let [platform, connections, window, seconds, rest @ ..] = args.as_slice() else {
        return Err(usage.into());
    };
    let platform: SocketAddr = platform.parse().map_err(|_| usage.to_string())?;
    let connections: usize = connections.parse().map_err(|_| usage.to_string())?;
    let window: usize = window.parse().map_err(|_| usage.to_string())?;
    let seconds: u64 = seconds.parse().map_err(|_| usage.to_string())?;
    let base: u32 = rest
        .first()
        .map_or(Ok(100_000), |b| b.parse())
        .map_err(|_| usage.to_string())?;
    let interval_ms: u64 = rest
        .get(1)
        .map_or(Ok(0), |i| i.parse())
        .map_err(|_| usage.to_string())?;
    let pace = if interval_ms > 0 {
        Pace::Every(Duration::from_millis(interval_ms))
    } else {
        Pace::Window(window)
    };
    let fields = Arc::new(fields()?);
    let totals = Arc::new(Totals::default());
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for i in 0..connections {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i / 5000) as u8));
        let terminal = TerminalId::new(0, base + i as u32).ok_or("terminal number too big")?;
        let (fields, totals, measuring) = (fields.clone(), totals.clone(), measuring.clone());
        tokio::spawn(async move {
            if let Err(error) =
                run_box(platform, source, terminal, pace, fields, totals, measuring).await
            {
                eprintln!("box {terminal:?}: {error}");
            }
        });
    }
    // Warm up (every connection up), then measure.
    tokio::time::sleep(Duration::from_secs(3 + connections as u64 / 2000)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    // The last uploads' acknowledgements: a moment to arrive.
    let sent = totals.sent.load(Ordering::Relaxed);
    let acked = totals.acked.load(Ordering::Relaxed);
    let mut latencies = totals
        .latencies_us
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    latencies.sort_unstable();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    println!(
        "{connections} connections x window {window}, {seconds} s: {sent} uploads sent, {acked} \
         acknowledged (= stored), {:.0} per second; upload -> acknowledgement p50 {:.1} ms, p99 \
         {:.1} ms",
        acked as f64 / elapsed,
        quantile(0.5),
        quantile(0.99)
    );
    Ok(())
}
