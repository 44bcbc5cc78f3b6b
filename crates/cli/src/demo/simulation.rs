//! The demo's simulated hardware, made as `bmslink sim` makes it (`crate::sim::packs`): rack
//! BMSes on loopback TCP ports for the gateway, and data boxes uploading to the platform
//! (`bmslink_sim::fleet`), each on its own simulated pack stepped at `--speed`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use bmslink_core::chemistry::Chemistry;
use bmslink_sim::fleet::{Fleet, FleetConfig, FleetCounts};
use bmslink_sim::profile::LoadProfile;
use bmslink_sim::serve::{self, Faults, SharedBms};
use tokio::task::JoinSet;

use super::gateway::RACK_PASSWORD;
use crate::sim::packs::{self, PackSpec};

/// Cells in series of every pack (a 48 V LFP pack).
pub const CELLS: u8 = 16;
/// Capacity of every pack, Ah.
pub const CAPACITY_AH: f64 = 100.0;
/// Terminal number of data box 1 (the racks' uplinks count from 1).
pub const BOX_TERMINAL_BASE: u32 = 1001;
/// Time between two uploads of a data box.
pub const BOX_UPLOAD_INTERVAL: Duration = Duration::from_secs(5);
/// How often the boxes' packs are stepped (thousands would be stepped every second too).
const BOX_CLOCK_TICK: Duration = Duration::from_secs(1);
/// Initial SOCs of the data boxes' packs, in turn, so the fleet list is not uniform.
const BOX_INITIAL_SOCS: [f64; 6] = [0.35, 0.5, 0.65, 0.8, 0.45, 0.9];

/// The packs the demo simulates, all LFP.
fn spec(initial_soc: f64, seed: u64, terminal_base: u32) -> PackSpec {
    PackSpec {
        chemistry: Chemistry::Lfp,
        cells: CELLS,
        capacity_ah: CAPACITY_AH,
        initial_soc,
        ambient_c: 25.0,
        seed,
        password: RACK_PASSWORD.to_string(),
        terminal_base,
        stale: false,
    }
}

/// The racks: their BMSes on loopback ports, stepped at `speed` until the process ends.
pub struct Racks {
    /// Where rack N's BMS answers (index N - 1).
    pub addresses: Vec<SocketAddr>,
}

/// Starts `count` rack BMSes on `profile`, each on a free loopback port.
pub async fn start_racks(count: usize, profile: &LoadProfile, speed: f64) -> Result<Racks> {
    let packs = spec(0.5, 1, 1).build_all(count, profile)?;
    let mut addresses = Vec::with_capacity(count);
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    for (index, bms) in packs.iter().enumerate() {
        let address = packs::serve_on_tcp(any_port, bms.clone(), Faults::default(), index as u64)
            .await
            .with_context(|| format!("rack {}", index + 1))?;
        addresses.push(address);
    }
    tokio::spawn(serve::run_clock(packs, speed));
    Ok(Racks { addresses })
}

/// The data boxes: one task each and their packs' clock.
pub struct Boxes {
    fleet: Fleet,
    count: usize,
    tasks: JoinSet<()>,
}

impl Boxes {
    /// Connected, uploads sent, acknowledged, ...
    pub fn counts(&self) -> FleetCounts {
        self.fleet.stats().counts()
    }

    /// How many boxes there are.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Disconnects every box and stops their clock.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

/// Starts `count` data boxes on `profile` uploading to `platform` every few seconds.
pub fn start_boxes(
    count: usize,
    platform: SocketAddr,
    profile: &LoadProfile,
    speed: f64,
) -> Result<Boxes> {
    let packs: Vec<SharedBms> = (0..count)
        .map(|index| {
            let soc = BOX_INITIAL_SOCS[index % BOX_INITIAL_SOCS.len()];
            let bms = spec(soc, 1000, BOX_TERMINAL_BASE).build(index, profile)?;
            Ok(SharedBms::new(bms.into()))
        })
        .collect::<Result<_>>()?;
    let fleet = Fleet::new(FleetConfig::new(platform, BOX_UPLOAD_INTERVAL))
        .context("the data boxes' settings")?;
    let mut tasks = JoinSet::new();
    for (index, bms) in packs.iter().enumerate() {
        tasks.spawn(fleet.clone().run_box(index, bms.clone()));
    }
    tasks.spawn(serve::run_clock_every(packs, speed, BOX_CLOCK_TICK));
    Ok(Boxes {
        fleet,
        count,
        tasks,
    })
}
