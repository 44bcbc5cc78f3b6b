//! `bmslink config`: the gateway's embedded default configuration, and validation of a file.
//!
//! `print` writes the commented default to stdout (it passes `check`). `check FILE` prints a
//! one-line summary and exits 0, or prints every error found, one per line as
//! `FILE:LINE:COLUMN: KEY: message`, on stderr and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use bmslink_gateway::config::{self, GatewayConfig};
use clap::{Args, Subcommand};

/// `bmslink config` options.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the embedded default gateway configuration (commented TOML).
    Print,
    /// Validate a gateway configuration file; report every error with its line and key.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

/// Runs `bmslink config`.
pub fn run(args: ConfigArgs) -> Result<ExitCode> {
    match args.command {
        ConfigCommand::Print => {
            print!("{}", config::DEFAULT_CONFIG);
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check { file } => check(&file),
    }
}

fn check(path: &PathBuf) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.display().to_string();
    match config::load(&name, &text) {
        Ok(config) => {
            println!("{}", summary(&name, &config));
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            let count = errors.len();
            let plural = if count == 1 { "" } else { "s" };
            eprintln!("{name}: {count} error{plural}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `gateway.toml: ok, 4 racks, profile victron, EMS on 127.0.0.1:5020 (writes disabled)`.
fn summary(name: &str, config: &GatewayConfig) -> String {
    let racks = config.racks.len();
    let plural = if racks == 1 { "" } else { "s" };
    let writes = if config.ems.writes.enabled() {
        "writes enabled"
    } else {
        "writes disabled"
    };
    format!(
        "{name}: ok, {racks} rack{plural}, profile {}, EMS on {} ({writes})",
        config.inverter.profile.name(),
        config.ems.listen
    )
}
