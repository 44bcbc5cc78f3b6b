//! `bmslink`: the one binary of the bmslink stack. Thin: parses the command line, runs a
//! subcommand from the library crates, reports an error once and returns an exit code.
//!
//! Exit codes: 0 success; 1 an error (reported on stderr); 2 a usage error; 3 `decode` found
//! no frame at all, or with `--strict` a bad or malformed one.

mod config;
mod decode;
mod demo;
mod gateway;
mod identifiers;
mod link;
mod platform;
mod read;
mod render;
mod sim;
mod soc_eval;
mod write;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// An open battery-management communication stack: the NW protocol's bench tools.
#[derive(Debug, Parser)]
#[command(name = "bmslink", version, about, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v: debug, -vv: trace with the bytes on the line).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode NW frames from hex, a capture file or stdin.
    Decode(decode::DecodeArgs),
    /// Read all or chosen identifiers from a BMS over a serial port or TCP.
    Read(read::ReadArgs),
    /// Write one setting to a BMS: range-checked, paired, read back.
    Write(write::WriteArgs),
    /// List the protocol's identifiers with access, unit and valid range.
    Identifiers(identifiers::IdentifiersArgs),
    /// Simulated packs and BMSes on TCP ports or serial ptys, or uploading as data boxes.
    Sim(sim::SimArgs),
    /// Replay a current/voltage/temperature profile through the SOC estimator; report accuracy.
    SocEval(soc_eval::SocEvalArgs),
    /// The gateway's configuration: print the embedded default, or check a file.
    Config(config::ConfigArgs),
    /// The site gateway: racks to one battery for the inverter (CAN) and the EMS (Modbus TCP).
    Gateway(gateway::GatewayArgs),
    /// The monitoring platform: data boxes over TCP, storage, alarms, HTTP API.
    Platform(platform::PlatformArgs),
    /// The whole system on this machine: simulated racks and inverter, the gateway, the
    /// platform with its web app, simulated data boxes. Prints every address.
    Demo(demo::DemoArgs),
}

/// Logging on stderr: `BMSLINK_LOG` if set, else `-v`/`-vv`, else `default`.
fn init_logging(verbose: u8, default: &str) {
    let default = match verbose {
        0 => default,
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("BMSLINK_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .compact()
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // The gateway's log level comes from its configuration file.
        Command::Gateway(args) => run_gateway(args, cli.verbose),
        Command::Platform(args) if platform::runs_daemon(&args) => run_platform(args, cli.verbose),
        Command::Demo(args) => {
            init_logging(cli.verbose, &args.log_filter());
            block_on_multi(demo::run(args))
        }
        command => {
            init_logging(cli.verbose, "info");
            run(command)
        }
    };
    exit(result)
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Decode(args) => decode::run(args).map(|all_good| {
            if all_good {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }),
        Command::Identifiers(args) => identifiers::run(args).map(|()| ExitCode::SUCCESS),
        Command::SocEval(args) => soc_eval::run(args).map(|()| ExitCode::SUCCESS),
        Command::Config(args) => config::run(args),
        Command::Read(args) => block_on(read::run(args)),
        Command::Write(args) => block_on(write::run(args)),
        Command::Sim(args) => block_on(sim::run(args)),
        Command::Gateway(args) => {
            let config = gateway::load(&args)?;
            block_on(gateway::run(args, config))
        }
        Command::Platform(args) => {
            let config = platform::load(&args)?;
            block_on_multi(platform::run(args, config))
        }
        Command::Demo(args) => block_on_multi(demo::run(args)),
    }
}

fn exit(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the gateway's configuration, starts logging at its level, runs the gateway.
fn run_gateway(args: gateway::GatewayArgs, verbose: u8) -> anyhow::Result<ExitCode> {
    let config = gateway::load(&args)?;
    init_logging(verbose, config.log_level.name());
    block_on(gateway::run(args, config))
}

/// Loads the platform's configuration, starts logging at its level, runs the platform.
fn run_platform(args: platform::PlatformArgs, verbose: u8) -> anyhow::Result<ExitCode> {
    let config = platform::load(&args)?;
    init_logging(verbose, config.log_level.name());
    block_on_multi(platform::run(args, config))
}

/// A runtime on every core (the platform serves thousands of connections and a database).
fn block_on_multi(
    future: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(future).map(|()| ExitCode::SUCCESS)
}

fn block_on(
    future: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(future).map(|()| ExitCode::SUCCESS)
}
