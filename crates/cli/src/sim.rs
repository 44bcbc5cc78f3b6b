//! `bmslink sim`: virtual BMSes with simulated packs, on TCP ports or pseudo-terminals, or
//! uploading to a platform as 4G data boxes, with a live one-line-per-pack summary.
//!
//! Uploading comes in two sizes, through the same data boxes (`bmslink_sim::fleet`):
//! `--packs N --upload HOST:PORT` (up to 1000, a summary line per pack and one for the
//! connections), and `--fleet N --connect HOST:PORT` (up to 100,000, for load tests: a progress
//! bar while the connections ramp up, then one summary line). `--connect` is another name of
//! `--upload`; `--fleet N` takes the place of `--packs N`.

mod fleet;
pub(crate) mod packs;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bmslink_core::chemistry::Chemistry;
use bmslink_proto::value::flag_names;
use bmslink_sim::bms::{BmsEvent, VirtualBms};
use bmslink_sim::fleet::Fleet;
use bmslink_sim::profile::LoadProfile;
use bmslink_sim::serve::{self, lock, Faults, Pty, SharedBms};
use clap::Args;
use tracing::info;

use packs::PackSpec;

/// Arguments of `bmslink sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Number of packs, each with its own BMS and line (1..=1000).
    #[arg(long, default_value_t = 1)]
    packs: usize,
    /// A fleet of N data boxes uploading to --connect (1..=100000), each with its own pack and
    /// BMS: a progress bar while they connect, then one summary line.
    #[arg(
        long,
        value_name = "N",
        requires = "upload",
        conflicts_with_all = ["packs", "pty", "listen"]
    )]
    fleet: Option<usize>,
    /// Cells in series per pack (3..=32).
    #[arg(long, default_value_t = 16)]
    cells: u8,
    /// Cell chemistry: lfp, nmc or lto.
    #[arg(long, default_value = "lfp", value_parser = parse_chemistry)]
    chemistry: Chemistry,
    /// Pack capacity, Ah.
    #[arg(long, default_value_t = 100.0)]
    capacity_ah: f64,
    /// Address of the first pack's TCP port; pack N listens on the port + N - 1 (port 0: any
    /// free port for each pack; the ports are printed).
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Serve each pack on a pseudo-terminal (a serial port for other programs) instead of TCP.
    #[arg(long, conflicts_with = "upload")]
    pty: bool,
    /// Upload to a monitoring platform (HOST:PORT) as data boxes instead of listening.
    #[arg(long, visible_alias = "connect", value_name = "HOST:PORT")]
    upload: Option<String>,
    /// Source addresses of the data boxes' connections: "auto" (for a loopback platform, one
    /// 127.0.0.x per 5000 boxes), "system" (the system's choice), or addresses and ranges
    /// such as "127.0.0.1-127.0.0.50,127.0.1.1"; box N binds to the N-th, in turn.
    #[arg(long, default_value = "auto", value_name = "auto|system|LIST")]
    source_ips: String,
    /// Upload interval (virtual time still runs at --speed).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Terminal number of the first pack's data box.
    #[arg(long, default_value_t = 1)]
    terminal_base: u32,
    /// Virtual time per wall-clock time (1 = real time).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Load: rest, constant:A, pulses:A,PERIOD_S,DUTY, solar:PEAK_A,NIGHT_A or a CSV file
    /// (t_s,current_a with positive = discharge). Positive A charges.
    #[arg(long, default_value = "rest")]
    profile: String,
    /// Initial SOC, 0..1.
    #[arg(long, default_value_t = 0.5)]
    soc: f64,
    /// Ambient temperature, degC.
    #[arg(long, default_value_t = 25.0)]
    ambient: f64,
    /// Seed of the cell-to-cell spread and of the faults; pack N uses seed + N - 1.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Parameter-change password (0xB2) of the BMSes.
    #[arg(long, default_value = "123456")]
    password: String,
    /// Fault: probability of dropping a reply.
    #[arg(long, default_value_t = 0.0)]
    drop: f64,
    /// Fault: probability of flipping a bit in a reply.
    #[arg(long, default_value_t = 0.0)]
    corrupt: f64,
    /// Fault: delay before every reply.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    delay: Duration,
    /// Fault: send every reply in two pieces.
    #[arg(long)]
    split: bool,
    /// Fault: answer nothing.
    #[arg(long)]
    silent: bool,
    /// Fault: keep reporting the values of the start (stale data).
    #[arg(long)]
    stale: bool,
    /// How often to print the summary (default: every second on a terminal, else every 10 s).
    #[arg(long, value_parser = humantime::parse_duration)]
    summary: Option<Duration>,
}

fn parse_chemistry(text: &str) -> Result<Chemistry, String> {
    Chemistry::from_name(text).ok_or_else(|| format!("'{text}' is not lfp, nmc or lto"))
}

impl SimArgs {
    fn check(&self) -> Result<()> {
        if !(3..=32).contains(&self.cells) {
            bail!(
                "--cells {} is outside 3..=32 (the cell count setting 0xA9)",
                self.cells
            );
        }
        match self.fleet {
            Some(boxes) if !(1..=fleet::MAX_FLEET).contains(&boxes) => {
                bail!("--fleet {boxes} is outside 1..={}", fleet::MAX_FLEET)
            }
            None if self.packs == 0 || self.packs > 1000 => {
                bail!("--packs {} is outside 1..=1000", self.packs)
            }
            _ => {}
        }
        if self.interval.is_zero() {
            bail!("--interval must be above zero");
        }
        if !(self.speed > 0.0 && self.speed <= 1e6) {
            bail!("--speed must be above 0 and at most 1000000");
        }
        if !(0.0..=1.0).contains(&self.soc) {
            bail!("--soc must be within 0..1");
        }
        if !(0.0..=1.0).contains(&self.drop) || !(0.0..=1.0).contains(&self.corrupt) {
            bail!("--drop and --corrupt are probabilities within 0..1");
        }
        if self.password.len() > 10 || !self.password.is_ascii() {
            bail!("--password must be at most 10 ASCII characters");
        }
        if !(1.0..=100_000.0).contains(&self.capacity_ah) {
            bail!("--capacity-ah must be within 1..=100000");
        }
        Ok(())
    }

    fn faults(&self) -> Faults {
        Faults {
            drop: self.drop,
            corrupt: self.corrupt,
            delay: self.delay,
            split: self.split,
            silent: self.silent,
        }
    }

    /// What every pack has in common (`bmslink demo` builds its racks from the same).
    fn pack_spec(&self) -> PackSpec {
        PackSpec {
            chemistry: self.chemistry,
            cells: self.cells,
            capacity_ah: self.capacity_ah,
            initial_soc: self.soc,
            ambient_c: self.ambient,
            seed: self.seed,
            password: self.password.clone(),
            terminal_base: self.terminal_base,
            stale: self.stale,
        }
    }
}

/// Runs `bmslink sim` until Ctrl-C.
pub async fn run(args: SimArgs) -> Result<()> {
    args.check()?;
    let profile = LoadProfile::parse(&args.profile)?;
    let packs = args
        .pack_spec()
        .build_all(args.fleet.unwrap_or(args.packs), &profile)?;
    match (&args.upload, args.fleet) {
        (Some(platform), Some(_)) => fleet::run(&args, platform, packs).await,
        _ => run_packs(&args, packs).await,
    }
}

/// `--packs`: every pack on its line, a summary line per pack.
async fn run_packs(args: &SimArgs, packs: Vec<SharedBms>) -> Result<()> {
    let (endpoints, uploading) = start_lines(args, &packs).await?;
    for (index, endpoint) in endpoints.iter().enumerate() {
        println!("pack {}: {endpoint}", index + 1);
    }
    println!(
        "{} {} packs, {} cells, {} Ah, profile {}, speed {}x; password {}; Ctrl-C stops",
        args.packs,
        args.chemistry,
        args.cells,
        args.capacity_ah,
        args.profile,
        args.speed,
        args.password
    );
    std::io::stdout().flush()?;
    tokio::spawn(serve::run_clock(packs.clone(), args.speed));
    summarise(args, &packs, &endpoints, uploading.as_ref()).await;
    Ok(())
}

/// Starts every pack's line; returns what to connect to, and the data boxes when uploading.
async fn start_lines(args: &SimArgs, packs: &[SharedBms]) -> Result<(Vec<String>, Option<Fleet>)> {
    let faults = args.faults();
    let mut endpoints = Vec::new();
    let uploading = match &args.upload {
        Some(platform) => Some(fleet::start(args, platform, packs.len()).await?),
        None => None,
    };
    for (index, bms) in packs.iter().enumerate() {
        let seed = args.seed + index as u64;
        if let (Some(platform), Some(boxes)) = (&args.upload, &uploading) {
            let terminal = args.terminal_base + index as u32;
            tokio::spawn(boxes.clone().run_box(index, bms.clone()));
            endpoints.push(format!(
                "data box, terminal {terminal:06X}, uploading to {platform}"
            ));
        } else if args.pty {
            let pty = Pty::open().context("cannot open a pseudo-terminal")?;
            endpoints.push(pty.path.display().to_string());
            tokio::spawn(pty.serve(bms.clone(), faults, seed));
        } else {
            // Port 0 lets the system choose a free port for every pack.
            let address = packs::pack_address(args.listen, index)?;
            let bound = packs::serve_on_tcp(address, bms.clone(), faults, seed).await?;
            endpoints.push(format!("tcp://{bound}"));
        }
    }
    Ok((endpoints, uploading))
}

fn summary_line(index: usize, bms: &VirtualBms) -> String {
    let pack = bms.pack();
    let mut cells = Vec::new();
    pack.cell_voltages(&mut cells);
    let low = cells.iter().min().map_or(0, |c| c.0);
    let high = cells.iter().max().map_or(0, |c| c.0);
    let temperatures = pack.battery_temperatures();
    let limits = bms.limits();
    let warnings: Vec<String> = flag_names(bms.warnings())
        .map(str::to_ascii_lowercase)
        .collect();
    format!(
        "pack {:>2}  {:>7.2} V {:>8.2} A  SOC {:>5.1} %  cells {}.{:03}..{}.{:03} V  {}..{} °C  CCL {:>6.1} A  DCL {:>6.1} A{}{}",
        index + 1,
        pack.voltage(),
        pack.current_a(),
        bms.soc() * 100.0,
        low / 1000,
        low % 1000,
        high / 1000,
        high % 1000,
        temperatures[0].0.min(temperatures[1].0),
        temperatures[0].0.max(temperatures[1].0),
        limits.charge_current_a,
        limits.discharge_current_a,
        if warnings.is_empty() { String::new() } else { format!("  ! {}", warnings.join(",")) },
        if bms.is_dormant() { "  (dormant)" } else { "" },
    )
}

/// Prints the summary until Ctrl-C, and logs what the BMSes did.
async fn summarise(
    args: &SimArgs,
    packs: &[SharedBms],
    endpoints: &[String],
    uploading: Option<&Fleet>,
) {
    let terminal = std::io::stdout().is_terminal();
    let every = args.summary.unwrap_or(if terminal {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    });
    let mut ticker = tokio::time::interval(every);
    let mut printed = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => return,
        }
        let mut lines = Vec::new();
        for (index, bms) in packs.iter().enumerate() {
            let mut bms = lock(bms);
            while let Some(event) = bms.poll_event() {
                log_event(index, &endpoints[index], &event);
            }
            lines.push(summary_line(index, &bms));
        }
        if let Some(boxes) = uploading {
            lines.push(fleet::counts_line(boxes, packs.len()));
        }
        let mut out = std::io::stdout().lock();
        if terminal && printed > 0 {
            let _ = write!(out, "\x1b[{printed}A");
        }
        for line in &lines {
            let _ = writeln!(out, "{line}\x1b[K");
        }
        let _ = out.flush();
        printed = if terminal { lines.len() } else { 0 };
    }
}

fn log_event(index: usize, endpoint: &str, event: &BmsEvent) {
    let pack = index + 1;
    match event {
        BmsEvent::Protection(e) => info!("pack {pack} ({endpoint}): {e}"),
        BmsEvent::SettingChanged { id } => info!("pack {pack}: {} changed by a write", id.name()),
        BmsEvent::WriteRefused { id, reason } => {
            info!("pack {pack}: write of {} refused: {reason}", id.name())
        }
        BmsEvent::PairRefused => info!("pack {pack}: pair code with a wrong password"),
        BmsEvent::Dormant => {
            info!("pack {pack}: dormant after the sleep waiting time without requests")
        }
        BmsEvent::Activated => info!("pack {pack}: activated"),
        BmsEvent::Restarted => info!("pack {pack}: restarted, protection latches released"),
        BmsEvent::FactoryReset => info!("pack {pack}: factory reset"),
    }
}
