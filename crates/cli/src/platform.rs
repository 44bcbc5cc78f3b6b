//! `bmslink platform`: the monitoring platform, its configuration, and its first admin.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use bmslink_platform::api::create_admin;
use bmslink_platform::config::{self, PlatformConfig};
use bmslink_platform::daemon::{open_store, AnyStore, Platform};
use clap::{Args, Subcommand};

/// `bmslink platform` options.
#[derive(Debug, Args)]
pub struct PlatformArgs {
    /// The platform's configuration (TOML). Without it, the embedded default (`bmslink
    /// platform print-config`): SQLite under ./bmslink-data, data boxes on 127.0.0.1:9100,
    /// HTTP on 127.0.0.1:8080.
    #[arg(short, long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<PlatformCommand>,
}

#[derive(Debug, Subcommand)]
enum PlatformCommand {
    /// Run the platform (the default).
    Run,
    /// Print the embedded default configuration (commented TOML).
    PrintConfig,
    /// Check a configuration file; report every error with its line and key.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Create an admin user and print its generated password (once; there is no default).
    CreateAdmin {
        /// The user name.
        name: String,
    },
}

fn read(path: &PathBuf) -> Result<(String, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((path.display().to_string(), text))
}

/// Loads the configuration the options name.
pub fn load(args: &PlatformArgs) -> Result<PlatformConfig> {
    let (name, text) = match &args.config {
        Some(path) => read(path)?,
        None => ("<embedded default>".into(), config::DEFAULT_CONFIG.into()),
    };
    config::load(&name, &text).map_err(|errors| {
        let count = errors.len();
        let plural = if count == 1 { "" } else { "s" };
        anyhow!("{errors}\n{name}: {count} error{plural}; nothing started")
    })
}

/// Whether this invocation runs the daemon (and so logs at the file's level).
pub fn runs_daemon(args: &PlatformArgs) -> bool {
    matches!(args.command, None | Some(PlatformCommand::Run))
}

/// Runs the subcommand with a loaded configuration.
pub async fn run(args: PlatformArgs, config: PlatformConfig) -> Result<()> {
    match args.command {
        None | Some(PlatformCommand::Run) => {
            let platform = Platform::start(&config).await?;
            println!(
                "bmslink platform: data boxes on {}, HTTP API on http://{}/api (Ctrl-C stops)",
                platform.devices_address, platform.http_address
            );
            wait_for_signal().await;
            tracing::info!("stopping: committing what was received");
            platform.stop().await;
            Ok(())
        }
        Some(PlatformCommand::PrintConfig) => {
            print!("{}", config::DEFAULT_CONFIG);
            Ok(())
        }
        Some(PlatformCommand::Check { file }) => {
            let (name, text) = read(&file)?;
            config::load(&name, &text).map_err(|errors| anyhow!("{errors}"))?;
            println!("{name}: ok");
            Ok(())
        }
        Some(PlatformCommand::CreateAdmin { name }) => {
            let password = match open_store(&config.database).await? {
                AnyStore::Sqlite(store) => create_admin(&store, &name).await,
                AnyStore::Postgres(store) => create_admin(&store, &name).await,
            }?;
            println!("admin {name:?} created; password (shown once, keep it safe): {password}");
            Ok(())
        }
    }
}

/// Waits for Ctrl-C or SIGTERM (`bmslink demo` stops on the same).
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
