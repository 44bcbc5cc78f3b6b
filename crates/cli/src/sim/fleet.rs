//! `bmslink sim --fleet N --connect HOST:PORT`: a fleet of data boxes for load tests, and the
//! data boxes of `--packs N --upload HOST:PORT`.
//!
//! The boxes run in `bmslink_sim::fleet`: one task each, one clock stepping every pack once a
//! second. Here:
//! resolving the platform once, choosing the source addresses, lifting the open-file limit
//! (one file per connection), the progress bar while the connections ramp up and the summary
//! line (connected, uploads sent, acknowledged, requests answered, reconnects, failures).
//!
//! Output: two header lines (the second ends with "Ctrl-C stops"), "all N data boxes
//! connected in X s" once each box has connected, and the summary line every `--summary`
//! (on a terminal: rewritten in place every second, after the progress bar on stderr).

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bmslink_sim::fleet::{
    auto_sources, describe_sources, parse_sources, raise_open_file_limit, Fleet, FleetConfig,
};
use bmslink_sim::serve::{self, lock, SharedBms};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::SimArgs;

/// How often the fleet's packs are stepped.
const CLOCK_TICK: Duration = Duration::from_secs(1);

/// The largest `--fleet`.
pub const MAX_FLEET: usize = 100_000;

/// Open files the process needs besides the connections.
const SPARE_FILES: u64 = 64;

/// Connections per source address beyond which its ephemeral ports (about 28,000) may run
/// out.
const PORTS_PER_SOURCE: usize = 28_000;

/// The data boxes for `boxes` packs, uploading to `platform`: resolved, sources chosen, the
/// file limit raised. Nothing connects until the boxes are spawned.
pub(super) async fn start(args: &SimArgs, platform: &str, boxes: usize) -> Result<Fleet> {
    let address = tokio::net::lookup_host(platform)
        .await
        .with_context(|| format!("cannot resolve the platform address {platform:?}"))?
        .next()
        .with_context(|| format!("the platform address {platform:?} resolves to nothing"))?;
    let sources = match args.source_ips.trim() {
        "auto" => auto_sources(address, boxes),
        "system" => Vec::new(),
        list => parse_sources(list).context("--source-ips")?,
    };
    check_ports(&sources, boxes);
    ensure_file_limit(boxes)?;
    let mut config = FleetConfig::new(address, args.interval);
    config.sources = sources;
    config.faults = args.faults();
    config.seed = args.seed;
    Ok(Fleet::new(config)?)
}

/// Warns when the boxes per source address may exhaust its ephemeral ports.
fn check_ports(sources: &[IpAddr], boxes: usize) {
    let per_source = boxes.div_ceil(sources.len().max(1));
    if per_source > PORTS_PER_SOURCE {
        warn!(
            "{per_source} connections per source address may exhaust its ~{PORTS_PER_SOURCE} \
             ephemeral ports; give more --source-ips"
        );
    }
}

/// Lifts the open-file limit to what `boxes` connections need, or says why it cannot.
fn ensure_file_limit(boxes: usize) -> Result<()> {
    let wanted = boxes as u64 + SPARE_FILES;
    match raise_open_file_limit(wanted) {
        Ok(limit) if limit < wanted => bail!(
            "{boxes} data boxes need {wanted} open files, but this process may open only \
             {limit} (the hard limit, `ulimit -Hn`); run several `bmslink sim --fleet` \
             processes with distinct --terminal-base and --source-ips"
        ),
        Ok(_) => Ok(()),
        Err(error) => {
            warn!("cannot read the open-file limit ({error}); going on");
            Ok(())
        }
    }
}

/// The summary line: "30 data boxes: connected 30  uploads 120  acknowledged 118  ...".
pub(super) fn counts_line(fleet: &Fleet, boxes: usize) -> String {
    format!("{boxes} data boxes: {}", fleet.stats().counts())
}

/// Runs the fleet until Ctrl-C.
pub(super) async fn run(args: &SimArgs, platform: &str, packs: Vec<SharedBms>) -> Result<()> {
    let boxes = packs.len();
    let fleet = start(args, platform, boxes).await?;
    print_header(args, platform, &fleet, boxes)?;
    for (index, bms) in packs.iter().enumerate() {
        tokio::spawn(fleet.clone().run_box(index, bms.clone()));
    }
    // Steps of 1 s: a tenth of the work of the 100 ms steps of a few packs, for thousands.
    tokio::spawn(serve::run_clock_every(
        packs.clone(),
        args.speed,
        CLOCK_TICK,
    ));
    summarise(args, &fleet, &packs).await;
    Ok(())
}

fn print_header(args: &SimArgs, platform: &str, fleet: &Fleet, boxes: usize) -> Result<()> {
    let first = args.terminal_base;
    let last = first + (boxes as u32).saturating_sub(1);
    let config = fleet.config();
    println!(
        "fleet: {boxes} data boxes, terminals {first:06X}..{last:06X}, uploading to {platform} \
         ({}) every {} from {}",
        config.platform,
        humantime::format_duration(args.interval),
        describe_sources(&config.sources)
    );
    println!(
        "{} cells {}, {} Ah, profile {}, speed {}x; password {}; Ctrl-C stops",
        args.cells, args.chemistry, args.capacity_ah, args.profile, args.speed, args.password
    );
    std::io::stdout().flush()?;
    Ok(())
}

/// The ramp-up's progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(boxes: usize) -> ProgressBar {
    let bar = ProgressBar::new(boxes as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} connecting [{bar:40}] {pos}/{len} data boxes, {elapsed} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Shows the ramp-up, then the summary line, until Ctrl-C; drains the BMSes' events.
async fn summarise(args: &SimArgs, fleet: &Fleet, packs: &[SharedBms]) {
    let boxes = packs.len();
    let on_terminal = std::io::stdout().is_terminal();
    let every = args.summary.unwrap_or(if on_terminal {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    });
    let started = Instant::now();
    let mut ramping = Some(progress_bar(boxes));
    let mut next_line = started + every;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let counts = fleet.stats().counts();
        if let Some(bar) = &ramping {
            bar.set_position(counts.connected as u64);
            bar.set_message(format!("(connect failures {})", counts.connect_failures));
            if counts.ever_connected >= boxes {
                bar.finish_and_clear();
                ramping = None;
                let seconds = started.elapsed().as_secs_f64();
                println!("all {boxes} data boxes connected in {seconds:.1} s");
            }
        }
        // On a terminal the progress bar shows the counts until the ramp is done.
        if Instant::now() >= next_line && !(on_terminal && ramping.is_some()) {
            next_line += every;
            drain_events(packs);
            print_line(&counts_line(fleet, boxes), on_terminal);
        }
    }
    if let Some(bar) = ramping {
        bar.abandon();
    }
    if on_terminal {
        println!();
    }
}

/// The summary line: rewritten in place on a terminal, one per period otherwise.
fn print_line(line: &str, on_terminal: bool) {
    let mut out = std::io::stdout().lock();
    let _ = if on_terminal {
        write!(out, "\r{line}\x1b[K")
    } else {
        writeln!(out, "{line}")
    };
    let _ = out.flush();
}

/// Takes what every BMS did (logged at debug level: a fleet of thousands would flood the log).
fn drain_events(packs: &[SharedBms]) {
    for (index, bms) in packs.iter().enumerate() {
        let mut bms = lock(bms);
        while let Some(event) = bms.poll_event() {
            debug!("data box {index}: {event:?}");
        }
    }
}
