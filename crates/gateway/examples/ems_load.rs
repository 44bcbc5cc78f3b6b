//! Load generator for the EMS server's figure: Modbus TCP requests per second on loopback for a
//! 125-register read at 40000, from the bmslink server and from any other server holding the
//! same map (pymodbus, `tests/peers/pymodbus_image_server.py`).
//!
//! ```text
//! # 1. the bmslink server (2 racks of vector A03) on :15020; writes its SunSpec image as JSON
//! cargo run --release -p bmslink-gateway --example ems_load -- serve 15020 /tmp/ems-image.json
//! # 2. pymodbus serving the same image on :15021
//! $BMSLINK_PYTHON crates/gateway/tests/peers/pymodbus_image_server.py 15021 /tmp/ems-image.json
//! # 3. N concurrent clients for S seconds against each
//! cargo run --release -p bmslink-gateway --example ems_load -- load 127.0.0.1:15020 8 10
//! cargo run --release -p bmslink-gateway --example ems_load -- load 127.0.0.1:15021 8 10
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench tool, not the daemon

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use bmslink_gateway::clock::Clock;
use bmslink_gateway::ems::sunspec::{sunspec_image, Nameplate};
use bmslink_gateway::ems::{run_ems_server, EmsLinks};
use bmslink_gateway::metrics::Metrics;
use bmslink_gateway::rack::RackHandle;
use tokio::sync::{mpsc, watch};
use tokio_modbus::prelude::*;

/// The EMS tests' site: racks with readings of the real capture A03.
#[path = "../tests/ems_support/mod.rs"]
mod ems_support;
use ems_support::snapshot;

async fn serve(port: u16, image_path: &str) {
    let snapshot = snapshot(2);
    let config = bmslink_gateway::config::load(
        "bench.toml",
        "[[racks]]\nname = \"rack-1\"\nlink = { port = \"tcp://127.0.0.1:9000\" }\n\
         [[racks]]\nname = \"rack-2\"\nlink = { port = \"tcp://127.0.0.1:9001\" }\n",
    )
    .unwrap()
    .ems;
    let nameplate = Nameplate {
        serial: "rack-1+rack-2".into(),
        unit_id: config.unit_id,
        remote_control: false,
    };
    let image = sunspec_image(&snapshot, &nameplate, 0);
    std::fs::write(
        image_path,
        serde_json::to_string(&serde_json::json!({ "start": 40_000, "registers": image })).unwrap(),
    )
    .unwrap();
    let (_site_tx, site) = watch::channel(Arc::new(snapshot));
    let (heartbeat, _heartbeat_rx) = watch::channel(None);
    let (commands, _commands_rx) = mpsc::channel(16);
    let racks: Vec<RackHandle> = (0..2)
        .map(|i| RackHandle::new(i, format!("rack-{}", i + 1)).0)
        .collect();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    println!(
        "bmslink EMS server on 127.0.0.1:{port}; image ({} registers) in {image_path}",
        image.len()
    );
    let links = EmsLinks {
        heartbeat,
        commands,
    };
    run_ems_server(
        listener,
        config,
        site,
        racks,
        links,
        Clock::start(),
        Arc::new(Metrics::new()),
    )
    .await
    .unwrap();
}

async fn load(server: SocketAddr, clients: usize, seconds: u64) {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = StdInstant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let mut ctx = tcp::connect_slave(server, Slave(1)).await.unwrap();
            let first = ctx
                .read_holding_registers(40_000, 125)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&first[..2], &[0x5375, 0x6E53], "no SunS marker at 40000");
            while StdInstant::now() < deadline {
                let registers = ctx
                    .read_holding_registers(40_000, 125)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(registers.len(), 125);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = done.load(Ordering::Relaxed);
    println!(
        "{server}: {clients} clients, {seconds} s: {total} reads of 125 registers, {:.0} requests/s",
        total as f64 / seconds as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", port, image] => runtime.block_on(serve(port.parse().unwrap(), image)),
        ["load", server, clients, seconds] => runtime.block_on(load(
            server.parse().unwrap(),
            clients.parse().unwrap(),
            seconds.parse().unwrap(),
        )),
        _ => eprintln!(
            "usage: ems_load serve PORT IMAGE_JSON | ems_load load HOST:PORT CLIENTS SECONDS"
        ),
    }
}
