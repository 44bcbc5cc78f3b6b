//! The platform's configuration: one TOML file, checked with errors located by file, line,
//! column and key (`platform.toml:7:10: devices.idle_timeout: 2s is outside 10s..=1h`).
//!
//! [`DEFAULT_CONFIG`] is the embedded, commented default; it documents every key with its
//! unit, default and range, and parses to the same values as an empty file. Rules beyond each
//! key's range: `retention.minute >= retention.raw`, `retention.hour >= retention.minute`,
//! `database.url` only (and required) with `backend = "postgres"`, `database.path` only with
//! `sqlite`, and the device and HTTP listeners on different addresses.

mod file;
mod model;
mod validate;

pub use model::{
    AlarmThresholds, ClusterConfig, DatabaseConfig, DevicesConfig, HttpConfig, PlatformConfig,
    RegistrationPolicy, Secret,
};

use bmslink_config::ConfigErrors;

/// The embedded default configuration file, commented.
pub const DEFAULT_CONFIG: &str = include_str!("../default-platform.toml");

/// Parses and checks `text`, read from `file_name` (for messages); every error found.
pub fn load(file_name: &str, text: &str) -> Result<PlatformConfig, ConfigErrors> {
    let parsed: file::FileConfig =
        toml::from_str(text).map_err(|error| ConfigErrors::from_toml(file_name, text, &error))?;
    validate::validate(file_name, text, &parsed)
}

#[cfg(test)]
mod tests;
