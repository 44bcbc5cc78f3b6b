//! The demo's monitoring platform: the embedded default configuration with SQLite in the
//! demo's data directory (a fresh temporary one unless `--data-dir`), the demo's listen
//! addresses, and an admin whose password is printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use bmslink_platform::api::{ensure_admin, generate_password, AdminAccount, CreateAdminError};
use bmslink_platform::config::{self, DatabaseConfig, PlatformConfig};
use bmslink_platform::daemon::{open_store, AnyStore, Platform, StartError};
use bmslink_platform::store::Store;
use tracing::info;

use super::ports::{bind_error, Listen};

/// The admin's user name.
pub const ADMIN: &str = "admin";

/// The SQLite file inside the data directory.
const DATABASE_FILE: &str = "platform.sqlite";

/// Where the demo keeps the platform's files.
#[derive(Debug)]
pub enum DataDir {
    /// A fresh directory, removed when the demo stops.
    Temporary(tempfile::TempDir),
    /// `--data-dir`: kept.
    Kept(PathBuf),
}

impl DataDir {
    /// `--data-dir DIR` (created if missing), else a fresh temporary directory.
    pub fn open(chosen: Option<&Path>) -> Result<DataDir> {
        match chosen {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create --data-dir {}", dir.display()))?;
                Ok(DataDir::Kept(dir.to_path_buf()))
            }
            None => tempfile::Builder::new()
                .prefix("bmslink-demo-")
                .tempdir()
                .map(DataDir::Temporary)
                .context("cannot create a temporary data directory (try --data-dir DIR)"),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        match self {
            DataDir::Temporary(dir) => dir.path(),
            DataDir::Kept(dir) => dir,
        }
    }

    /// Removes a temporary directory (a kept one stays); says what happened.
    pub fn finish(self) {
        match self {
            DataDir::Temporary(dir) => {
                let path = dir.path().display().to_string();
                match dir.close() {
                    Ok(()) => info!("temporary data directory {path} removed"),
                    Err(error) => tracing::warn!("cannot remove {path}: {error}"),
                }
            }
            DataDir::Kept(dir) => info!("data kept in {} (--data-dir)", dir.display()),
        }
    }
}

/// A running platform and its admin's password.
pub struct DemoPlatform {
    /// The platform.
    pub platform: Platform,
    /// The admin's password.
    pub admin_password: String,
}

/// The platform's configuration: the embedded default, with SQLite in `data_dir` and the
/// demo's addresses.
pub fn demo_config(
    data_dir: &Path,
    devices: SocketAddr,
    http: SocketAddr,
) -> Result<PlatformConfig> {
    let mut config = config::load("<embedded platform default>", config::DEFAULT_CONFIG)
        .map_err(|errors| anyhow!("the embedded platform configuration: {errors}"))?;
    config.data_dir = data_dir.to_path_buf();
    config.database = DatabaseConfig::Sqlite {
        path: data_dir.join(DATABASE_FILE),
    };
    config.devices.listen = devices;
    config.http.listen = http;
    Ok(config)
}

/// Opens the database, sets the admin's password (`chosen`, or a generated one), and starts
/// the platform on the `--devices` and `--http` addresses.
pub async fn start(
    data_dir: &Path,
    devices: Listen,
    http: Listen,
    chosen_password: Option<String>,
) -> Result<DemoPlatform> {
    let config = demo_config(data_dir, devices.address, http.address)?;
    let admin_password = chosen_password.unwrap_or_else(generate_password);
    let platform = match open_store(&config.database).await? {
        AnyStore::Sqlite(store) => start_with_admin(store, &config, &admin_password).await,
        AnyStore::Postgres(store) => start_with_admin(store, &config, &admin_password).await,
    };
    let platform = platform.map_err(|error| match error {
        StartOrAdmin::Start(StartError::Bind {
            address, source, ..
        }) => bind_error(&[devices, http], address, &source),
        StartOrAdmin::Start(error) => anyhow!("the platform cannot start: {error}"),
        StartOrAdmin::Admin(error) => error,
    })?;
    Ok(DemoPlatform {
        platform,
        admin_password,
    })
}

/// Why [`start_with_admin`] failed.
enum StartOrAdmin {
    Start(StartError),
    Admin(anyhow::Error),
}

fn admin_error(error: CreateAdminError) -> anyhow::Error {
    match error {
        CreateAdminError::InvalidPassword(why) => anyhow!("--admin-password: {why}"),
        other => anyhow!("cannot set up the admin login: {other}"),
    }
}

async fn start_with_admin<S: Store>(
    store: S,
    config: &PlatformConfig,
    password: &str,
) -> Result<Platform, StartOrAdmin> {
    let account = ensure_admin(&store, ADMIN, password)
        .await
        .map_err(|error| StartOrAdmin::Admin(admin_error(error)))?;
    match account {
        AdminAccount::Created => info!("admin user {ADMIN:?} created"),
        AdminAccount::PasswordReset => {
            info!("admin user {ADMIN:?} existed in the data directory: its password is reset")
        }
    }
    Platform::start_with(store, config)
        .await
        .map_err(StartOrAdmin::Start)
}
