//! `bmslink gateway`: the site daemon, and `--test-contact` to check the dry contact's wiring.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bmslink_gateway::config::{self, GatewayConfig};
use bmslink_gateway::daemon::Gateway;
use clap::Args;

/// `bmslink gateway` options.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The site's configuration (TOML). Without it, the embedded default (`bmslink config
    /// print`): two simulated racks on 127.0.0.1:9000-9001.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Open the dry contact, hold it open, close it again, and exit (checks the wiring to the
    /// PCS's trip input).
    #[arg(long)]
    pub test_contact: bool,
    /// How long `--test-contact` holds the contact open.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
}

/// Loads the configuration the options name (checked; every error with its line and key).
pub fn load(args: &GatewayArgs) -> Result<GatewayConfig> {
    let (name, text) = match &args.config {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => (
            "<embedded default>".to_string(),
            config::DEFAULT_CONFIG.to_string(),
        ),
    };
    config::load(&name, &text).map_err(|errors| {
        let count = errors.len();
        let plural = if count == 1 { "" } else { "s" };
        anyhow!("{errors}\n{name}: {count} error{plural}; nothing started")
    })
}

/// Runs the daemon (or the contact test) with a loaded configuration.
pub async fn run(args: GatewayArgs, config: GatewayConfig) -> Result<()> {
    if args.test_contact {
        return test_contact(&config, args.hold).await;
    }
    let gateway = Gateway::start(&config).await?;
    gateway.run_until_signal().await;
    Ok(())
}

async fn test_contact(config: &GatewayConfig, hold: Duration) -> Result<()> {
    let backend = config.dry_contact.backend_name();
    println!(
        "dry contact ({backend}): opening, holding open for {:.1} s, then closing",
        hold.as_secs_f64()
    );
    bmslink_gateway::contact::test_contact(&config.dry_contact, hold)
        .await
        .map_err(|error| anyhow!("dry contact test failed: {error}"))?;
    println!("dry contact ({backend}): opened and closed again");
    Ok(())
}
