//! Runs 16 packs x 16 cells for 24 simulated hours and prints how long it took (a quick check
//! of the simulation speed; the benchmark `cargo bench -p bmslink-sim` is the measurement).

use std::time::{Duration, Instant};

use bmslink_core::chemistry::Chemistry;
use bmslink_sim::bms::{BmsConfig, VirtualBms};
use bmslink_sim::pack::PackConfig;
use bmslink_sim::profile::LoadProfile;

fn main() {
    let mut packs: Vec<VirtualBms> = (0..16)
        .filter_map(|seed| {
            let mut config = BmsConfig::new(PackConfig::new(Chemistry::Lfp, 16, 280.0, seed));
            config.profile = LoadProfile::SolarDay {
                peak_charge_a: 100.0,
                night_discharge_a: 40.0,
            };
            VirtualBms::new(config).ok()
        })
        .collect();
    let started = Instant::now();
    for bms in &mut packs {
        bms.run_for(Duration::from_secs(86_400), Duration::from_secs(1));
    }
    let elapsed = started.elapsed();
    let soc: Vec<String> = packs
        .iter()
        .map(|b| format!("{:.1}", b.soc() * 100.0))
        .collect();
    println!(
        "16 packs x 16 cells, 24 h at 1 s: {:.3} s ({:.0} x real time); SOC % at the end: {}",
        elapsed.as_secs_f64(),
        86_400.0 / elapsed.as_secs_f64(),
        soc.join(" ")
    );
}
