//! `bmslink demo`: the whole system on this machine, from embedded defaults, with nothing to
//! write first:
//!
//! ```text
//!  rack BMSes (sim) ─NW/TCP─► gateway ─SLCAN/TCP─► inverter (sim, logs what it is told)
//!                               │  ├─ EMS Modbus TCP (SunSpec) and /metrics
//!                               │  └─ uplink ─┐
//!  data boxes (sim) ─NW/TCP─────────────────► platform (SQLite) ─► web app + HTTP API
//! ```
//!
//! Start order: the platform (its device port is the uplink's target, its admin gets a
//! password), the racks, the inverter, the gateway, the data boxes; then every address is
//! printed (the first lines below are what tests parse) and "demo ready (Ctrl-C to stop)".
//! Ctrl-C or SIGTERM stops in the order data boxes, gateway (the inverter gets the safe state),
//! platform (it commits what it received), and removes the temporary data directory.

mod gateway;
mod inverter;
mod platform;
mod ports;
mod simulation;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bmslink_gateway::daemon::Gateway;
use bmslink_sim::profile::LoadProfile;
use clap::Args;
use tracing::info;

use gateway::{connect_address, SiteLinks};
use platform::{DataDir, DemoPlatform, ADMIN};
use ports::{check_distinct, Listen};
use simulation::{Boxes, Racks};

/// The packs' load by default: a solar day (charging up to 6.3 A around noon, 4 A out at
/// night), balanced so that SOC swings about 25 points a day without reaching either end.
pub const DEFAULT_PROFILE: &str = "solar:6.3,4";

/// The largest `--racks`.
const MAX_RACKS: usize = 16;
/// The largest `--boxes`.
const MAX_BOXES: usize = 1000;
/// Where the platform logs each data box's connection and disconnection.
const PER_CONNECTION_LOG: &str = "bmslink_platform::listener::connection";
/// Time the inverter gets to log what it was last told once the gateway closed the link.
const INVERTER_LAST_WORD: Duration = Duration::from_millis(200);

/// `bmslink demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated racks the gateway polls (1..=16).
    #[arg(long, default_value_t = 2)]
    racks: usize,
    /// Simulated data boxes uploading to the platform (0..=1000).
    #[arg(long, default_value_t = 36)]
    boxes: usize,
    /// Virtual time of the simulated packs per wall-clock time (60: a solar day in 24 minutes).
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// Load of every pack, as `bmslink sim --profile`: rest, constant:A, pulses:A,PERIOD_S,DUTY
    /// or solar:PEAK_A,NIGHT_A (positive A charges).
    #[arg(long, default_value = DEFAULT_PROFILE)]
    profile: String,
    /// The platform's web app and HTTP API (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    http: SocketAddr,
    /// The platform's port for data boxes and the gateway's uplink.
    #[arg(long, default_value = "127.0.0.1:7700", value_name = "ADDR")]
    devices: SocketAddr,
    /// The gateway's EMS server (Modbus TCP, SunSpec map at 40000).
    #[arg(long, default_value = "127.0.0.1:5502", value_name = "ADDR")]
    modbus: SocketAddr,
    /// The gateway's Prometheus metrics (http://ADDR/metrics).
    #[arg(long, default_value = "127.0.0.1:9100", value_name = "ADDR")]
    metrics: SocketAddr,
    /// Keep the platform's database in DIR (created if missing) instead of a temporary
    /// directory removed at exit.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The admin's password (at least 10 characters); default: a generated one. Printed.
    #[arg(long, value_name = "PASSWORD")]
    admin_password: Option<String>,
    /// Log level on stderr.
    #[arg(
        long,
        default_value = "info",
        value_parser = ["error", "warn", "info", "debug", "trace"]
    )]
    log_level: String,
}

impl DemoArgs {
    /// The log filter: `--log-level`, with the platform's line per data box connecting and
    /// leaving kept for `debug` and `trace` (at `info` they would be most of the log).
    pub fn log_filter(&self) -> String {
        match self.log_level.as_str() {
            "info" => format!("info,{PER_CONNECTION_LOG}=warn"),
            level => level.to_string(),
        }
    }

    fn check(&self) -> Result<()> {
        if !(1..=MAX_RACKS).contains(&self.racks) {
            bail!("--racks {} is outside 1..={MAX_RACKS}", self.racks);
        }
        if self.boxes > MAX_BOXES {
            bail!("--boxes {} is above {MAX_BOXES}", self.boxes);
        }
        if !(self.speed > 0.0 && self.speed <= 10_000.0) {
            bail!("--speed must be above 0 and at most 10000");
        }
        check_distinct(&self.listens())
    }

    fn http(&self) -> Listen {
        Listen::new("--http", self.http)
    }

    fn devices(&self) -> Listen {
        Listen::new("--devices", self.devices)
    }

    fn modbus(&self) -> Listen {
        Listen::new("--modbus", self.modbus)
    }

    fn metrics(&self) -> Listen {
        Listen::new("--metrics", self.metrics)
    }

    fn listens(&self) -> [Listen; 4] {
        [self.http(), self.devices(), self.modbus(), self.metrics()]
    }
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs) -> Result<()> {
    args.check()?;
    let profile = LoadProfile::parse(&args.profile).context("--profile")?;
    let data_dir = DataDir::open(args.data_dir.as_deref())?;
    let outcome = run_in(&args, &profile, &data_dir).await;
    data_dir.finish();
    outcome
}

/// Starts the platform in `data_dir`, runs the site and the data boxes against it, and stops
/// the platform last, whatever happened.
async fn run_in(args: &DemoArgs, profile: &LoadProfile, data_dir: &DataDir) -> Result<()> {
    let cloud = platform::start(
        data_dir.path(),
        args.devices(),
        args.http(),
        args.admin_password.clone(),
    )
    .await?;
    let outcome = run_site(args, profile, &cloud, data_dir).await;
    info!("stopping the platform: committing what it received");
    cloud.platform.stop().await;
    outcome
}

/// What is running besides the platform.
struct Site {
    racks: Racks,
    inverter: SocketAddr,
    inverter_profile: &'static str,
    inverter_task: tokio::task::JoinHandle<()>,
    gateway: Gateway,
    boxes: Boxes,
}

/// Starts racks, inverter, gateway and data boxes, prints where everything is, waits for the
/// signal and stops them.
async fn run_site(
    args: &DemoArgs,
    profile: &LoadProfile,
    cloud: &DemoPlatform,
    data_dir: &DataDir,
) -> Result<()> {
    let site = start_site(args, profile, cloud).await?;
    print_ready(&site, cloud, data_dir)?;
    crate::platform::wait_for_signal().await;
    stop_site(site).await;
    Ok(())
}

/// Starts the racks, the inverter, the gateway and the data boxes, in that order; on a
/// failure, stops what already runs.
async fn start_site(args: &DemoArgs, profile: &LoadProfile, cloud: &DemoPlatform) -> Result<Site> {
    let racks = simulation::start_racks(args.racks, profile, args.speed).await?;
    let (listener, inverter) = inverter::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let inverter_task = tokio::spawn(inverter::run_inverter(listener));
    let devices = cloud.platform.devices_address;
    let links = SiteLinks {
        racks: racks.addresses.clone(),
        inverter,
        platform: devices,
    };
    let config = gateway::demo_config(&links, args.modbus(), args.metrics())?;
    let gateway = match gateway::start(&config, args.modbus(), args.metrics()).await {
        Ok(gateway) => gateway,
        Err(error) => {
            inverter_task.abort();
            return Err(error);
        }
    };
    let boxes =
        match simulation::start_boxes(args.boxes, connect_address(devices), profile, args.speed) {
            Ok(boxes) => boxes,
            Err(error) => {
                gateway.stop().await;
                inverter_task.abort();
                return Err(error);
            }
        };
    Ok(Site {
        racks,
        inverter,
        inverter_profile: config.inverter.profile.name(),
        inverter_task,
        gateway,
        boxes,
    })
}

/// The lines tests parse, in this order, then "demo ready (Ctrl-C to stop)".
fn ready_lines(site: &Site, cloud: &DemoPlatform, data_dir: &DataDir) -> Result<Vec<String>> {
    let http = connect_address(cloud.platform.http_address);
    let metrics = site
        .gateway
        .metrics_address
        .context("the gateway started without its metrics endpoint")?;
    let data_note = match data_dir {
        DataDir::Temporary(_) => "temporary, removed at exit; --data-dir DIR keeps it",
        DataDir::Kept(_) => "kept",
    };
    let first_box = simulation::BOX_TERMINAL_BASE;
    let mut lines = vec![
        format!("web app: http://{http}/"),
        format!("HTTP API: http://{http}/api (document: http://{http}/api/openapi.json)"),
        format!("admin login: {ADMIN} / {}", cloud.admin_password),
        format!(
            "platform devices: {} ({} data boxes from terminal {first_box:06X}, and the racks)",
            cloud.platform.devices_address,
            site.boxes.count()
        ),
        format!(
            "EMS Modbus TCP: {} (unit 1, SunSpec at 40000)",
            site.gateway.ems_address
        ),
        format!(
            "gateway metrics: http://{}/metrics",
            connect_address(metrics)
        ),
        format!(
            "inverter CAN (SLCAN over TCP): {} (profile {})",
            site.inverter, site.inverter_profile
        ),
    ];
    for (index, rack) in site.racks.addresses.iter().enumerate() {
        lines.push(format!("rack {}: tcp://{rack}", index + 1));
    }
    lines.push(format!("data: {} ({data_note})", data_dir.path().display()));
    lines.push("demo ready (Ctrl-C to stop)".to_string());
    Ok(lines)
}

fn print_ready(site: &Site, cloud: &DemoPlatform, data_dir: &DataDir) -> Result<()> {
    use std::io::Write;
    let lines = ready_lines(site, cloud, data_dir)?;
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Data boxes first, then the gateway (its last word to the inverter is the safe state).
async fn stop_site(site: Site) {
    let counts = site.boxes.counts();
    info!("stopping {} data boxes ({counts})", site.boxes.count());
    site.boxes.stop().await;
    info!("stopping the gateway: the inverter gets the safe state");
    site.gateway.stop().await;
    tokio::time::sleep(INVERTER_LAST_WORD).await;
    site.inverter_task.abort();
}
