//! Measures the gateway's reaction time: from the last byte of a BMS frame that carries a
//! protection condition to the CAN frame that tells the inverter about it.
//!
//! One rack BMS (a responder seeded with the real capture A03) on loopback TCP, the whole
//! gateway (poller, site, failsafe, PCS link with the Pylontech v1.2 profile), and an SLCAN
//! adapter on loopback TCP that timestamps every line it receives. Each event: the BMS answers
//! one poll with the cell over-voltage bit set (a protection); the reaction ends when the
//! 0x359 frame with the over-voltage alarm has arrived at the adapter, that is, after the whole
//! safe set went out. Then the BMS reports normally until the inverter is back to normal
//! limits, and the next event starts. Timestamps are taken in this process on one monotonic
//! clock: after the BMS's `write_all` returns, and when the adapter's read returns.
//!
//! Run: `cargo run --release -p bmslink-gateway --example reaction -- [EVENTS]` (default 1000;
//! about 0.5 s per event, as polls come every 100 ms and recovery needs a set at the next tick).
//! The recovery hold is set to 10 ms here (the configuration file allows 1 s at least) only to
//! make the events come fast; it does not take part in the measured path.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bmslink_core::responder::BmsResponder;
use bmslink_gateway::config;
use bmslink_gateway::daemon::Gateway;
use bmslink_gateway::pcs::PcsCommand;
use bmslink_proto::slcan::{Decoder, Response};
use bmslink_proto::{vectors, Body, Identifier, Message, Warnings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What the BMS answers next: normal, or the protection bit (and when that answer went out).
#[derive(Default)]
struct Script {
    protect_next: bool,
    sent_protection: Option<Instant>,
}

type Shared = Arc<Mutex<Script>>;

fn responder() -> Result<BmsResponder, String> {
    let frame = vectors::bytes("A03").ok_or("no vector A03")?;
    let message = Message::parse(&frame).map_err(|e| e.to_string())?;
    let Body::Data(info) = message.body else {
        return Err("A03 is not a data frame".into());
    };
    Ok(BmsResponder::from_info(&info))
}

async fn serve_bms(listener: TcpListener, script: Shared) -> Result<(), String> {
    let mut bms = responder()?;
    let (mut stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut deframer = bmslink_proto::Deframer::new();
    let mut buffer = [0u8; 1024];
    loop {
        let n = stream.read(&mut buffer).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        let mut requests = Vec::new();
        deframer.feed(&buffer[..n], |event| {
            if let bmslink_proto::Event::Frame(frame, _) = event {
                requests.push(frame.as_bytes().to_vec());
            }
        });
        for request in requests {
            let protect = std::mem::take(&mut lock(&script).protect_next);
            let warnings = if protect {
                Warnings::CELL_OVER_VOLTAGE
            } else {
                Warnings::empty()
            };
            bms.set(Identifier::Warnings, &warnings.bits().to_be_bytes());
            let (reply, _) = bms.handle_request(bmslink_core::time::Instant::ZERO, &request);
            if let Some(reply) = reply {
                stream.write_all(&reply).await.map_err(|e| e.to_string())?;
                if protect {
                    lock(&script).sent_protection = Some(Instant::now());
                }
            }
        }
    }
}

fn lock(script: &Shared) -> std::sync::MutexGuard<'_, Script> {
    script
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The adapter: reports (arrival time, whether the 0x359 carries the over-voltage alarm).
async fn serve_can(listener: TcpListener, alarms: mpsc::UnboundedSender<(Instant, bool)>) {
    let Ok((mut stream, _)) = listener.accept().await else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let mut decoder = Decoder::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer).await {
        if n == 0 {
            return;
        }
        let at = Instant::now();
        decoder.feed(&buffer[..n], |event| {
            if let Ok(Response::Frame { frame, .. }) = event {
                if frame.id() == bmslink_proto::can::id::PYLON_ALARMS {
                    // Pylon 0x359 byte 0 bit 1: cell or module over-voltage protection.
                    let over_voltage = frame.data().first().is_some_and(|b| b & 0x02 != 0);
                    let _ = alarms.send((at, over_voltage));
                }
            }
        });
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    // BMSLINK_LOG=info (or debug) shows what the gateway does; quiet by default.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BMSLINK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let events: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().map_err(|_| format!("not a count: {a}")))
        .transpose()?
        .unwrap_or(1000);
    let bms = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let can = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let ems_port = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let text = format!(
        "poll_interval = \"100ms\"\nreply_timeout = \"100ms\"\nstale_timeout = \"1s\"\n\
         [[racks]]\nname = \"rack-1\"\nlink = {{ port = \"tcp://{}\" }}\n\
         [inverter]\nsend_interval = \"200ms\"\nkeepalive_timeout = \"off\"\n\
         [inverter.can]\nport = \"tcp://{}\"\n[ems]\nlisten = \"{}\"\n",
        bms.local_addr().map_err(|e| e.to_string())?,
        can.local_addr().map_err(|e| e.to_string())?,
        ems_port.local_addr().map_err(|e| e.to_string())?,
    );
    drop(ems_port);
    let mut config = config::load("reaction.toml", &text).map_err(|e| e.to_string())?;
    config.recovery_hold = Duration::from_millis(10);
    let script: Shared = Arc::default();
    tokio::spawn(serve_bms(bms, script.clone()));
    let (alarms_tx, mut alarms) = mpsc::unbounded_channel();
    tokio::spawn(serve_can(can, alarms_tx));
    let mut gateway = Gateway::start(&config).await.map_err(|e| e.to_string())?;

    let mut reactions = Vec::with_capacity(events);
    let progress_every = (events / 10).max(1);
    // Before each event: normal operation, and a frame set without alarm sent since.
    while reactions.len() < events {
        while !matches!(*gateway.pcs.borrow_and_update(), PcsCommand::Normal(_)) {
            gateway.pcs.changed().await.map_err(|e| e.to_string())?;
        }
        while alarms.try_recv().is_ok() {}
        loop {
            let (at, alarmed) = alarms.recv().await.ok_or("CAN link closed")?;
            if std::env::var("REACTION_DEBUG").is_ok() {
                eprintln!("{at:?} 0x359 alarmed={alarmed}");
            }
            if !alarmed {
                break;
            }
        }
        lock(&script).protect_next = true;
        let reacted = loop {
            let (at, alarmed) = alarms.recv().await.ok_or("CAN link closed")?;
            if alarmed {
                break at;
            }
        };
        let sent = lock(&script)
            .sent_protection
            .take()
            .ok_or("an alarm arrived before the BMS sent its frame")?;
        reactions.push(reacted.saturating_duration_since(sent).as_secs_f64() * 1000.0);
        if reactions.len() % progress_every == 0 {
            eprintln!("{}/{events} events", reactions.len());
        }
    }
    gateway.stop().await;
    reactions.sort_by(f64::total_cmp);
    println!(
        "reaction over {events} events (BMS frame's last byte -> CAN 0x359 with the alarm): \
         p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&reactions, 0.5),
        percentile(&reactions, 0.99),
        percentile(&reactions, 1.0)
    );
    Ok(())
}
