//! Simulation speed: 16 packs x 16 cells for 24 simulated hours at 1 s steps, each pack with its
//! virtual BMS (protection, balancing, limits) running at every step, on one core.
//! Target (issue 3): under 2 s, i.e. over 40,000 x real time.

use std::hint::black_box;
use std::time::Duration;

use bmslink_core::chemistry::Chemistry;
use bmslink_sim::bms::{BmsConfig, VirtualBms};
use bmslink_sim::pack::PackConfig;
use bmslink_sim::profile::LoadProfile;
use criterion::{criterion_group, criterion_main, Criterion};

fn site() -> Vec<VirtualBms> {
    (0..16)
        .filter_map(|seed| {
            let mut config = BmsConfig::new(PackConfig::new(Chemistry::Lfp, 16, 280.0, seed));
            config.profile = LoadProfile::SolarDay {
                peak_charge_a: 100.0,
                night_discharge_a: 40.0,
            };
            VirtualBms::new(config).ok()
        })
        .collect()
}

fn one_day(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulation");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("16 packs x 16 cells, 24 h at 1 s steps", |b| {
        b.iter_batched(
            site,
            |mut packs| {
                for bms in &mut packs {
                    bms.run_for(Duration::from_secs(86_400), Duration::from_secs(1));
                }
                black_box(packs)
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, one_day);
criterion_main!(benches);
