//! The gateway's configuration: one TOML file.
//!
//! [`load`] parses a file into a [`GatewayConfig`] in two steps: the TOML is deserialized into
//! private file structures that keep every value's byte span (`toml::Spanned`), then every
//! setting is checked (ranges and cross-field rules) and turned into typed values. Every
//! problem found is reported, each as a [`ConfigError`] that names the file, line, column and
//! key path (`gateway.toml:12:17: racks[1].link.baud: 12345 is not a standard baud rate`). A
//! TOML syntax or type error stops at the first one, as the parser does.
//!
//! [`DEFAULT_CONFIG`] is the embedded, commented default file; it documents every key with its
//! unit, default and valid range, and parses to the same values as an empty file.
//!
//! The validation rules (beyond each key's range):
//! - `reply_timeout <= poll_interval`: one request per link at a time, so a longer reply would
//!   stretch every poll period to the timeout;
//! - `stale_timeout >= 2 x poll_interval`: one missed poll must not drop a rack;
//! - at least one rack; rack names unique; no two links (racks, and the SLCAN adapter) on the
//!   same serial port or TCP address;
//! - `baud` only on serial links; the CAN `port` only with `slcan`, `interface` only with
//!   `socketcan`; dry-contact keys only with their backend;
//! - `writes_enabled = true` needs an `unlock_code` (6 to 32 printable ASCII characters, not a
//!   well-known default) and a non-empty `write_allow` whose networks lie inside `allow`;
//! - the metrics listener does not take the EMS server's port;
//! - with an uplink, every rack has a terminal number, every terminal names a rack, and
//!   terminal numbers are unique; the upload interval is 1 s ..= 1 h (default 10 s).

mod checks;
mod error;
mod file;
mod model;
mod network;
mod validate;
mod values;

pub use error::{ConfigError, ConfigErrors, Location};
pub use model::{
    ActiveLevel, CanLink, CommandLine, DryContact, EmsConfig, EmsWrites, GatewayConfig,
    InverterConfig, LogLevel, PollingConfig, RackConfig, RackLink, SlcanPort, UnlockCode,
    UplinkConfig,
};
pub use network::{IpNetwork, NetworkError};

/// The embedded default configuration file, commented (`bmslink config print`).
pub const DEFAULT_CONFIG: &str = include_str!("../default-config.toml");

/// Parses and validates the configuration `text`, read from the file called `file_name` (used
/// in error messages only).
///
/// Returns every error found: one TOML syntax or type error, or every semantic one.
pub fn load(file_name: &str, text: &str) -> Result<GatewayConfig, ConfigErrors> {
    let parsed: file::FileConfig =
        toml::from_str(text).map_err(|error| ConfigErrors::from_toml(file_name, text, &error))?;
    validate::validate(file_name, text, &parsed)
}

/// The embedded default, parsed.
pub fn default_config() -> Result<GatewayConfig, ConfigErrors> {
    load("default-config.toml", DEFAULT_CONFIG)
}

#[cfg(test)]
mod tests;
